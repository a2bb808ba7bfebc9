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
 * Whether w selects sk: one of its protocols and ports, one of its
 * addresses (if any; po_watch_address_add() says how they match), and
 * netns own_netns unless w has AllNamespaces. 1 or 0.
 */
int po_select_socket(const struct po_watch *w, const struct po_socket *sk,
                     uint64_t own_netns);

/*
 * The values of w in s (every field of *v) and the distinct owner processes
 * of the sockets it selects, sorted by pid, in *cur: cur's strings point
 * into s (no arena); the caller frees cur->v. Returns 0, -ENOMEM (*cur
 * then empty).
 */
int po_select_collect(const struct po_watch *w, const struct po_snapshot *s,
                      uint64_t own_netns, struct po_watch_values *v,
                      struct identlist *cur);

#endif /* PORTOWNER_SELECT_H */
