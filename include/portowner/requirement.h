/*
 * portowner: the listener requirements of a watch, and which sockets serve
 * them.
 *
 * po_watch_finish() builds a watch's requirements from its config: each
 * Address (or any address when none is set) x each Protocol token as
 * written (tcp, tcp4, tcp6, udp, udp4, udp6, all; tcp when none is set) x
 * each port item (a single port: a number, a service name or one element of
 * "80,443"; or a range "LO-HI", one requirement met by any port in it), in
 * config order, addresses outermost, then protocols, then ports; a
 * requirement named twice is one. Its name is "<proto>/<port>" ("tcp/443",
 * "tcp/8000-8099"), with an address "<proto>/<addr>:<port>"
 * ("tcp/127.0.0.1:80", "tcp6/[::1]:80").
 *
 * A listening socket SERVES a requirement (po_requirement_serves()) when
 * all of these hold:
 * - protocol: tcp / udp, that protocol in either family; tcp4 / udp4, an
 *   IPv4 socket, an IPv6 socket bound to :: that is not v6only (dual
 *   stack), or an IPv6 socket bound to a v4-mapped address; tcp6 / udp6, an
 *   IPv6 socket not bound to a v4-mapped address; all, any of them;
 * - port: in the item;
 * - address A: an IPv4 A, a socket bound to A, to 0.0.0.0, to ::ffff:A or
 *   a dual-stack :: socket; 0.0.0.0, a socket bound to 0.0.0.0 (or
 *   ::ffff:0.0.0.0) or a dual-stack ::; an IPv6 A, a socket bound to A or
 *   to :: (v6only or not); ::, a socket bound to ::. A v6only :: socket
 *   never serves IPv4.
 * A socket whose v6only the source cannot tell (/proc/net) counts as dual
 * stack, the Linux default (net.ipv6.bindv6only = 0). The network namespace
 * is the watch's business (select.h), not the requirement's.
 *
 * Contract: 0 or a negative errno value. Core only; nothing logs.
 */
#ifndef PORTOWNER_REQUIREMENT_H
#define PORTOWNER_REQUIREMENT_H

#include <stddef.h>
#include <stdint.h>

#include "portowner/watch_private.h"

/* Longest requirement name with its NUL ("udp6/[v6 address]:65535-65535"
 * is 58 bytes). */
#define PO_REQUIREMENT_NAME_MAX 64

/* What the listener condition remembers of one requirement between reads
 * (and across restarts: statefile.c). */
struct req_state {
  int started;           /* evaluated at least once (or restored) */
  int ever_up;           /* served at some read */
  unsigned empty_reads;  /* consecutive reads unserved, <= hits */
  int failure;           /* LOST / MISSING_AT_START sent, no BACK yet */
  struct identlist last; /* the owners of the sockets that served it, at
                            the last read it was served with owners known;
                            owns its arena */
};

/* One listener requirement of a watch. */
struct requirement {
  char *name;           /* "tcp/443", "tcp/127.0.0.1:80", ... */
  unsigned mask;        /* the protocol token: PO_TCP, PO_TCP4, ... */
  struct po_range port; /* the port item */
  int has_addr;         /* an Address; else any */
  struct addr addr;
  struct req_state st;
};

/*
 * Builds w's requirements (w->reqs, w->nreqs) from its addresses, protocol
 * tokens and port items, replacing any it had (their state is dropped).
 * Returns 0, -EDESTADDRREQ (no port), -ENOMEM (w then has none).
 */
int po_requirements_build(struct po_watch *w);

/* Frees w's requirements and their state. */
void po_requirements_free(struct po_watch *w);

/* Whether sk serves r, as the header says (protocol, family, port,
 * address; not the namespace). 1 or 0. */
int po_requirement_serves(const struct requirement *r,
                          const struct po_socket *sk);

/* The requirement of w named name, or NULL. */
struct requirement *po_requirement_find(const struct po_watch *w,
                                        const char *name);

/*
 * The socket families a kernel query needs for a protocol mask: mask, and
 * IPv6 as well where it has IPv4 (a dual-stack or v4-mapped IPv6 socket
 * serves tcp4 / udp4).
 */
unsigned po_requirements_query_mask(unsigned mask);

#endif /* PORTOWNER_REQUIREMENT_H */
