/*
 * portowner: sets of owner processes (struct identlist of watch_private.h,
 * sorted by pid): copying and freeing them, the program of an owner, and
 * how two sets compare (programs and users, pids), for the conditions and
 * the StateFile.
 *
 * Contract: 0 or a negative errno value unless stated. A list made by
 * po_identlist_copy() owns its strings (one arena); po_identlist_free()
 * frees a list's array and arena (lists whose strings point into a
 * snapshot have no arena). Core only; nothing logs.
 */
#ifndef PORTOWNER_OWNERS_H
#define PORTOWNER_OWNERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "portowner/watch_private.h"

/* Frees l's array and arena and zeroes it. */
void po_identlist_free(struct identlist *l);

/* Deep copy of src into dst (one arena for all strings): 0 or -ENOMEM (dst
 * then empty). */
int po_identlist_copy(struct identlist *dst, const struct identlist *src);

/* qsort() order of struct ident by pid. */
int po_ident_cmp_pid(const void *a, const void *b);

/* The length of an exe path without its " (deleted)" suffix. */
size_t po_exe_len(const char *exe);

/* The program of an owner: the exe basename (" (deleted)" removed), never
 * its comm (which any process sets). Not NUL-terminated: *len bytes. NULL
 * (*len 0) when the exe is unknown: the program is unknown. */
const char *po_prog_name(const struct ident *o, size_t *len);

/* The label of o's cgroup (po_cgroup_label(): the container, the unit and
 * user unit, or the unit) into buf: "" when none or unknown. */
void po_ident_label(const struct ident *o, char *buf, size_t size);

/* 1 when the comm of o names its program: equal, or the kernel's cut of
 * it (comm holds at most 15 bytes). Also 1 when either is unknown. */
int po_comm_is_prog(const struct ident *o);

/* 1 when the sets of (program, user, unit label) of a and b differ, 0
 * when equal, -ENOMEM. Owners whose program is unknown are left out of
 * both; when an owner's cgroup is unknown in either (a set restored from a
 * StateFile), the labels are not compared. */
int po_progs_differ(const struct identlist *a, const struct identlist *b);

/* A hash of the set of (program, user, unit label) of l (unknown programs left
 * out) into *hash. Returns the number of distinct (program, user), -ENOMEM. */
ssize_t po_progs_hash(const struct identlist *l, uint64_t *hash);

/* Copy of the owners of src whose program is known, as po_identlist_copy.
 */
int po_identlist_copy_known(struct identlist *dst, const struct identlist *src);

/* 1 when a and b hold the same pids (lists sorted by pid). */
int po_pids_same(const struct identlist *a, const struct identlist *b);

/* A hash of (program, user, pid) of o: how an unexpected owner that was
 * named is told from one that was not. */
uint64_t po_named_hash(const struct ident *o);

/* FNV-1a over n bytes at p, from h (start with PO_HASH_INIT). */
#define PO_HASH_INIT 0xcbf29ce484222325ull
uint64_t po_hash_bytes(uint64_t h, const void *p, size_t n);

/* 1 when no pid is in both lists. */
int po_pids_disjoint(const struct identlist *a, const struct identlist *b);

/*
 * An owner that is exiting (the kernel releases /proc/PID/exe before it
 * closes the fds: comm and status still read, exe does not) or that exited
 * between the fd walk and the read of its details (nothing reads) gets
 * what last knew of the same process: the same pid and, when its start
 * time reads, the same start time (a pid reused by another process is not
 * the same process). Never the comm in place of the exe. The strings stay
 * in last's arena, which must outlive cur's use.
 */
void po_details_keep(struct identlist *cur, const struct identlist *last);

/* Frees what a watch's state owns (last, accepted, named) and zeroes those
 * fields. */
void po_watch_state_release(struct watch_state *st);

/* What an evaluation replaced in its new state (struct po_eval.replaced):
 * ns owns the new ones, the old state the old ones. */
#define PO_REPLACED_ACCEPTED 1u
#define PO_REPLACED_NAMED 2u

/* After a successful evaluation: frees the parts of old that ns replaced
 * (then old = ns is the commit). */
void po_state_commit(struct watch_state *old, unsigned replaced);
/* After a failed one: frees the parts ns holds in place of old's. */
void po_state_rollback(struct watch_state *ns, unsigned replaced);

#endif /* PORTOWNER_OWNERS_H */
