/*
 * portowner: a watch's expectations of its owners, ExpectProcess and
 * ExpectUser (and ExpectUnit, ExpectCgroup: globs kept in the watch):
 * parsing one item and judging one owner against them.
 *
 * ExpectProcess "/REGEX/" is compiled with PCRE2 under the PO_REGEX_* bounds
 * of watch.h (see po_watch_expect_process_add() there for the syntax and
 * the limits).
 *
 * Contract: 0 or a negative errno value. An item owns its strings and its
 * regex; po_expect_*_release() frees them (and accepts a zeroed item).
 * Core only (uses watch_private.h); nothing logs.
 */
#ifndef PORTOWNER_EXPECT_H
#define PORTOWNER_EXPECT_H

#include <stddef.h>

#include "portowner/watch_private.h"

/*
 * Parses an ExpectProcess item into *e (zeroed first): a name (the exe's
 * basename), a name with '/' (a path: stat'ed now, the file it names is
 * what matches), or "/REGEX/" (matched against the exe path). err (when
 * not NULL) is emptied first and, for a refused regex or a path that
 * cannot be stat'ed, says why. Returns 0, -EINVAL (empty, bad syntax),
 * -E2BIG (a PO_REGEX_* limit), -ENOMEM, or stat()'s error for a path
 * (-ENOENT, -EACCES, ...); on failure *e holds nothing to free.
 */
int po_expect_proc_parse(struct expect_proc *e, const char *pattern, char *err,
                         size_t errsize);
void po_expect_proc_release(struct expect_proc *e);

/*
 * Parses an ExpectUser item into *u: a numeric uid, or a user name and the
 * uid it resolves to now (getpwnam_r), if any. Returns 0, -EINVAL (empty),
 * -ENOMEM; on failure *u holds nothing to free.
 */
int po_expect_user_parse(struct expect_user *u, const char *user);
void po_expect_user_release(struct expect_user *u);

/* Stats each ExpectProcess path of w again: a path that names another file
 * now (an upgrade) names it too from now on (the last EXPECT_PATH_IDS
 * files are kept: the old one runs until a restart). One stat() per path;
 * a failed one keeps what the path named. */
void po_expect_refresh(struct po_watch *w);

/*
 * Whether an owner passes w's expectations: 1 yes, 0 no, -1 cannot tell.
 * ExpectProcess judges the exe (never the comm): an owner whose exe is
 * unknown is judged by ExpectUser only, and is -1 (not judged, not
 * reported) when the watch has no ExpectUser or its uid is unknown too.
 * ExpectUnit and ExpectCgroup judge o->cgroup and o->cgroup_systemd (the
 * socket's cgroup when the process's could not be read: select.c), and do
 * not judge an owner whose cgroup is unknown. A watch without expectations
 * passes every owner.
 */
int po_owner_expected(const struct po_watch *w, const struct ident *o);

#endif /* PORTOWNER_EXPECT_H */
