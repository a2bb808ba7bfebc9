/*
 * portowner: cgroup v2 ids (INET_DIAG_CGROUP_ID of a socket) to paths.
 *
 * A v2 cgroup's id is the inode number of its directory in the cgroup2
 * mount (kernfs node id). An id is resolved with open_by_handle_at() on
 * the cgroup2 mount (a kernfs file handle is the id itself) and a readlink
 * of the descriptor: one lookup per id, exact, and ids are never reused
 * (64-bit kernfs ids only grow). Without CAP_DAC_READ_SEARCH (EPERM) the
 * cache is filled by one walk of the cgroup2 mount instead (stat of every
 * directory), redone when an id is not found, at most once per epoch.
 * Results are cached per id, misses too, until po_cgroup_ids_new_epoch().
 *
 * Contract: 0 or a negative errno value. Nothing logs or keeps globals.
 */
#ifndef PORTOWNER_CGROUPID_H
#define PORTOWNER_CGROUPID_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct po_cgroup_ids;

/* An empty cache; the cgroup2 mount is found (in /proc/self/mountinfo) on
 * the first lookup. NULL when out of memory. */
struct po_cgroup_ids *po_cgroup_ids_new(void);
void po_cgroup_ids_free(struct po_cgroup_ids *c);

/*
 * Sets *path to the path of cgroup id as /proc/PID/cgroup writes it (from
 * the cgroup2 mount's root: "/" for the root), owned by the cache and valid
 * until the next call on c. Returns 0, -ENOENT (no such cgroup, or no
 * cgroup2 mount), -ENOMEM.
 */
int po_cgroup_ids_lookup(struct po_cgroup_ids *c, uint64_t id,
                         const char **path);

/* Forgets the misses and allows one more walk: the snapshot calls it on
 * every full walk of the processes. */
void po_cgroup_ids_new_epoch(struct po_cgroup_ids *c);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_CGROUPID_H */
