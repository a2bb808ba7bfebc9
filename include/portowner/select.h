/*
 * portowner: which sockets of a snapshot a watch selects (protocols, ports,
 * bind addresses, network namespace), and what it counts of them.
 *
 * Contract: 0 or a negative errno value. Core only; nothing logs.
 */
#ifndef PORTOWNER_SELECT_H
#define PORTOWNER_SELECT_H

#include <stdint.h>

#include "portowner/watch_private.h"

/*
 * Whether w selects sk, a socket of s: sk serves at least one of w's
 * requirements (requirement.h: protocol, family, port, address), and is of
 * netns own_netns, or w has AllNamespaces and sk's namespace is trusted in
 * s->nsv (snapshot.h) or w's AllNamespaces is PO_NS_ALL. A namespace s did
 * not meet is not trusted. 1 or 0.
 */
int po_select_socket(const struct po_watch *w, const struct po_snapshot *s,
                     const struct po_socket *sk, uint64_t own_netns);

/* The namespace half of po_select_socket(): whether a socket of netns
 * counts for w. 1 or 0. */
int po_select_netns(const struct po_watch *w, const struct po_snapshot *s,
                    uint64_t netns, uint64_t own_netns);

/*
 * The values of w in s (every field of *v: the counts of the sockets it
 * selects, and the requirements none serves) and the distinct owner
 * processes of the sockets it selects, sorted by pid, in *cur: cur's
 * strings point into s (no arena); the caller frees cur->v. Returns 0,
 * -ENOMEM (*cur then empty).
 */
int po_select_collect(const struct po_watch *w, const struct po_snapshot *s,
                      uint64_t own_netns, struct po_watch_values *v,
                      struct identlist *cur);

/* What one read shows of one requirement. */
struct req_read {
  uint64_t sockets;        /* sockets that serve it */
  struct identlist owners; /* their distinct owner processes, sorted by
                              pid: copies of cur's entries (owners.v is
                              malloc'd, the strings are cur's) */
};

/*
 * For each of w's requirements, in *out (w->nreqs entries, malloc'd): the
 * sockets of s that serve it (netns as po_select_socket()) and their
 * owners, taken from cur (po_select_collect()'s list, after whatever the
 * caller did to its details). Free with po_select_requirements_free().
 * Returns 0, -ENOMEM (*out then NULL).
 */
int po_select_requirements(const struct po_watch *w,
                           const struct po_snapshot *s, uint64_t own_netns,
                           const struct identlist *cur, struct req_read **out);
void po_select_requirements_free(const struct po_watch *w, struct req_read *rr);

#endif /* PORTOWNER_SELECT_H */
