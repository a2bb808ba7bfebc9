/*
 * portowner: parsers for the port and protocol values that the command line
 * and the collectd config share.
 *
 * Contract: 0 or a negative errno value; nothing logs.
 */
#ifndef PORTOWNER_PORTSPEC_H
#define PORTOWNER_PORTSPEC_H

#include <stddef.h>

#include "portowner/snapshot.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Parses one port item: a number ("80"), a range ("8000-8099") or a service
 * name from the services database ("ssh", looked up for tcp then udp).
 * Returns 0, -EINVAL (not a port, inverted range), -ERANGE (0 or > 65535),
 * -ENOENT (unknown service name).
 */
int po_port_parse(const char *s, struct po_range *r);

/*
 * Parses a comma-separated list of port items ("22", "80,443",
 * "8000-8099,ssh") and appends them to *v (realloc'd, *n updated).
 * On failure *bad points at the start of the offending item inside s: the
 * rest of the list follows it, so name the item with
 * po_port_item_len(*bad) bytes ("%.*s"), never *bad as a string.
 * Returns 0 or the error of po_port_parse(), -ENOMEM.
 */
int po_ports_parse(const char *s, struct po_range **v, size_t *n,
                   const char **bad);

/* The length of the port item at item: up to its ',' or the end. */
size_t po_port_item_len(const char *item);

/*
 * Parses a protocol name: tcp (v4 and v6), tcp4, tcp6, udp, udp4, udp6, or
 * "all", into a PO_TCP4... mask. Case-insensitive. Returns 0 or -EINVAL.
 */
int po_proto_parse(const char *s, unsigned *mask);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_PORTSPEC_H */
