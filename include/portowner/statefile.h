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

#include "portowner/fileio.h"
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
 * Opened through its directory with no symlink in any component of path
 * (po_dir_open() of fileio.h), and trusted only when nobody else could have
 * written it (po_trusted(): the file ours, the directory ours or root's,
 * neither writable by group or others). At most state_max_bytes() (about
 * 64 KiB a watch: what po_state_save() can write for these watches, and a
 * margin) and nesting [ and { at most 8 deep, checked before any JSON tree
 * is built.
 * Returns 0, -ENOENT (no file: normal on a first start), -ELOOP (path is a
 * symlink, or a component of its directory: refused), -EPERM (not trusted:
 * *why says which and why, when not NULL), -EPROTO (a version 1 file, from a
 * portowner before per-requirement state: not read), -EBADMSG (not a state
 * file: corrupt, truncated, nested too deep, unknown version), -EFBIG
 * (larger than these watches can write), -EINVAL (not a regular file),
 * -ENOMEM, or the -errno of open/read.
 */
int po_state_load_checked(struct po_watchset *set, const char *path,
                          const char *boot_id, struct po_untrusted *why);

/* po_state_load_checked() without the reason of an -EPERM. */
int po_state_load(struct po_watchset *set, const char *path,
                  const char *boot_id);

/*
 * Writes the state of the set's watches to path atomically, when it differs
 * from what the last save or load saw: a temporary file with a random name
 * in the same directory (po_tmp_create(): O_CREAT|O_EXCL|O_NOFOLLOW, mode
 * 0600), fsync, rename over path, fsync of the directory, each relative to
 * the directory's fd (opened with no symlink on the way and checked with
 * po_trusted() at each save: a directory swapped after the check cannot
 * redirect the write). A path that is a symlink is refused, never written
 * through. The file is bounded whatever the processes do (statefile.c: at
 * most 16 owners a list, exe paths cut): under 64 KiB for a watch with one
 * requirement, up to 24 KiB more for each further requirement.
 *
 * Paced: when what changed is only owners or counts (not a standing
 * FAILURE, its end, or a requirement's first start or first listener), it
 * is written only when min_interval seconds have passed since the last
 * write (now and the last write's now: any monotonic clock); min_interval
 * 0 writes every change (shutdown does).
 * Returns 1 (written), 0 (nothing written: unchanged, or paced), -ELOOP
 * (path or its directory through a symlink), -EPERM (the directory is not
 * trusted: *why, when not NULL), -ENOMEM, or the -errno of the file
 * operations (the temporary file is removed; an error of the directory's
 * fsync after the rename is returned although the file was replaced).
 */
int po_state_save_paced(struct po_watchset *set, const char *path,
                        const char *boot_id, double now, double min_interval,
                        struct po_untrusted *why);

/* po_state_save_paced() of every change (min_interval 0). */
int po_state_save(struct po_watchset *set, const char *path,
                  const char *boot_id);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_STATEFILE_H */
