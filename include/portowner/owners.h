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

/* The program of an owner: the exe basename (" (deleted)" removed), or the
 * comm when the exe is unknown. Not NUL-terminated: *len bytes. */
const char *po_prog_name(const struct ident *o, size_t *len);

/* 1 when the sets of (program, user) of a and b differ, 0 when equal,
 * -ENOMEM. */
int po_progs_differ(const struct identlist *a, const struct identlist *b);

/* 1 when no pid is in both lists. */
int po_pids_disjoint(const struct identlist *a, const struct identlist *b);

/*
 * An owner that exited between the fd walk and the read of its details has
 * none (comm "", exe NULL): gives it what last knew of the same pid, so that
 * a message never says "?[pid]" of a process it named a moment ago. The
 * strings stay in last's arena, which must outlive cur's use.
 */
void po_details_keep(struct identlist *cur, const struct identlist *last);

#endif /* PORTOWNER_OWNERS_H */
