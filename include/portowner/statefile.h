/*
 * portowner: the StateFile, the state of a set's watches (standing
 * failures, last known owners, each listener requirement's own) kept
 * across restarts as JSON (version 2: statefile.c), so that a restart
 * neither repeats nor misses a notification.
 *
 * Contract: 0 (or 1 where stated) on success, a negative errno value on
 * failure. Nothing logs; the glue says what an error means.
 */
#ifndef PORTOWNER_STATEFILE_H
#define PORTOWNER_STATEFILE_H

#include "portowner/watch.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Reads the state of the set's watches from path (JSON written by
 * po_state_save()). A watch whose name is not in the file starts fresh;
 * one whose ports, protocols or addresses changed since keeps the state of
 * each listener requirement whose name is still configured (with the same
 * AllNamespaces), and starts fresh for the rest (its owners, the
 * requirements new in the config). Entries of watches or requirements that
 * are no longer configured are dropped. boot_id (po_boot_id_read() of
 * fileio.h, or NULL) tells whether the saved pids still mean the same
 * processes. All or nothing: on failure every watch starts fresh.
 * Returns 0, -ENOENT (no file: normal on a first start), -ELOOP (path is a
 * symlink: refused), -EPROTO (a version 1 file, from a portowner before
 * per-requirement state: not read), -EBADMSG (not a state file: corrupt,
 * truncated, unknown version), -EFBIG, -EINVAL (not a regular file),
 * -ENOMEM, or the -errno of open/read.
 */
int po_state_load(struct po_watchset *set, const char *path,
                  const char *boot_id);

/*
 * Writes the state of the set's watches to path atomically, when it differs
 * from what the last po_state_save() or po_state_load() saw: a temporary
 * file in the same directory (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600),
 * fsync, rename over path, fsync of the directory. A path that is a symlink
 * is refused, never written through.
 * Returns 1 (written), 0 (unchanged, nothing written), -ELOOP (path is a
 * symlink), -ENOMEM, or the -errno of the file operations (the temporary
 * file is removed).
 */
int po_state_save(struct po_watchset *set, const char *path,
                  const char *boot_id);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_STATEFILE_H */
