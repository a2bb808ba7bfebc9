/*
 * portowner: single config values that need more than collectd's
 * cf_util_get_* (a port number's range, Hits' range, a Source name), usable
 * without a watch. The glue reads the raw value with cf_util_get_*, then
 * checks it here.
 *
 * Contract: 0 on success (the result written through the pointer), a
 * negative errno value on failure (the result left as it was). Nothing is
 * allocated; nothing logs.
 */
#ifndef PORTOWNER_CONFIG_VALUE_H
#define PORTOWNER_CONFIG_VALUE_H

#include "portowner/snapshot.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest Hits value (a watch's too: po_watch_set_hits()). */
#define PO_HITS_MAX 1000000u

/*
 * A port given as a number (collectd passes numbers as doubles): accepts
 * only integers 1..65535. Returns 0, -ERANGE (out of range), -EINVAL (not an
 * integer, NaN).
 */
int po_config_port_number(double v, struct po_range *r);

/* Hits as a number: an integer 1..PO_HITS_MAX. Returns 0, -ERANGE, -EINVAL. */
int po_config_hits(double v, unsigned *hits);

/* "auto", "netlink" or "proc" (case-insensitive). Returns 0 or -EINVAL. */
int po_config_source(const char *s, enum po_source *src);

/*
 * AllNamespaces (and portowner-dump's --all-namespaces=) as a word:
 * "trusted" (PO_NS_TRUSTED) or "all" (PO_NS_ALL), case-insensitive, into
 * *scope (an enum po_ns_scope). The booleans are collectd's to read (true
 * is PO_NS_TRUSTED, false PO_NS_OWN). Returns 0 or -EINVAL.
 */
int po_config_namespaces(const char *s, int *scope);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_CONFIG_VALUE_H */
