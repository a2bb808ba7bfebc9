/*
 * portowner: small file I/O for the core: reading a small text file whole
 * (never through a symlink), writing a buffer whole, making a rename
 * durable, and reading the kernel's boot id.
 *
 * Contract: 0 or a negative errno value (EINTR retried). Strings returned
 * are malloc'd and the caller frees them. Nothing logs; no globals.
 */
#ifndef PORTOWNER_FILEIO_H
#define PORTOWNER_FILEIO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Reads the regular file path (O_NOFOLLOW: a symlink is refused) of at most
 * max bytes into *out, NUL-terminated. Returns 0, -ELOOP (a symlink),
 * -EINVAL (not a regular file), -EFBIG (over max), -EBADMSG (a NUL byte
 * inside: not text), -ENOMEM, or the -errno of open/fstat/read.
 */
int po_file_read_text(const char *path, size_t max, char **out);

/* Writes the n bytes at b to fd. Returns 0 or the -errno of write. */
int po_write_all(int fd, const char *b, size_t n);

/* fsync()s the directory that holds path ("." when path has no '/'), so
 * that a rename into it is durable. Returns 0, -ENOMEM, or the -errno of
 * open/fsync (EINVAL, a directory that cannot be synced, is 0). */
int po_fsync_dir(const char *path);

/*
 * Reads the boot id (<proc_root>/sys/kernel/random/boot_id) into buf without
 * its newline. Returns 0, -ENOSPC (buf too small), -EINVAL (empty), or the
 * -errno of the read.
 */
int po_boot_id_read(const char *proc_root, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_FILEIO_H */
