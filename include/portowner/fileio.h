/*
 * portowner: small file I/O for the core: the directory of a path, opening
 * a directory with no symlink on the way, telling whether a file or a
 * directory can be trusted (nobody but us could have written it), reading
 * a small text file whole, writing a buffer whole, creating a temporary
 * file under an unguessable name, making a rename durable, and reading the
 * kernel's boot id.
 *
 * Contract: 0 (or an fd where stated) or a negative errno value (EINTR
 * retried). Strings returned are malloc'd and the caller frees them.
 * Nothing logs; no globals.
 */
#ifndef PORTOWNER_FILEIO_H
#define PORTOWNER_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The directory of path into *dir (malloc'd: "." when path has no '/', "/"
 * for "/name") and its last component into *base (a pointer into path).
 * Returns 0, -EISDIR (path ends with '/': no file name), -EINVAL (empty),
 * -ENOMEM.
 */
int po_path_dir(const char *path, char **dir, const char **base);

/*
 * Opens the directory dir (O_RDONLY|O_DIRECTORY|O_CLOEXEC) with no symlink
 * in any of its components: openat2(2) with RESOLVE_NO_SYMLINKS, or, on a
 * kernel without it (ENOSYS), one openat(O_NOFOLLOW|O_DIRECTORY) per
 * component. Returns the fd, -ELOOP (a symlink on the way), -ENOTDIR, or
 * the -errno of open.
 */
int po_dir_open(const char *dir);

/* po_dir_open()'s way without openat2 (for the tests of it). */
int po_dir_open_walk(const char *dir);

/* Why a file or a directory is not trusted (po_trusted()). */
struct po_untrusted {
  int refused;   /* 1 once po_trusted() refused (an -EPERM of another cause
                    leaves it 0) */
  int is_dir;    /* 1: the directory, 0: the file */
  uint32_t uid;  /* its owner */
  uint32_t mode; /* its permission bits (st_mode & 07777) */
};

/*
 * Whether what sb describes can only have been written by us (the
 * effective uid): a file must be ours, a directory ours or root's, and
 * neither writable by group or others. Returns 0, or -EPERM with *why
 * filled (when not NULL).
 */
int po_trusted(const struct stat *sb, int is_dir, struct po_untrusted *why);

/*
 * Opens the directory of path (po_path_dir(), po_dir_open()) and checks it
 * with po_trusted(). Returns its fd and *base (the file name in it), or
 * -EPERM (*why filled), or an error of po_path_dir()/po_dir_open()/fstat.
 */
int po_dir_open_trusted(const char *path, const char **base,
                        struct po_untrusted *why);

/*
 * Reads the regular file name in the directory dirfd (openat, O_NOFOLLOW: a
 * symlink is refused) of at most max bytes into *out, NUL-terminated.
 * check: the file must also pass po_trusted() (else -EPERM, *why filled).
 * Returns 0, -ELOOP (a symlink), -EINVAL (not a regular file), -EFBIG (over
 * max), -EBADMSG (a NUL byte inside: not text), -EPERM, -ENOMEM, or the
 * -errno of open/fstat/read.
 */
int po_file_read_text_at(int dirfd, const char *name, size_t max, int check,
                         struct po_untrusted *why, char **out);

/* po_file_read_text_at(AT_FDCWD, path, max, 0, NULL, out). */
int po_file_read_text(const char *path, size_t max, char **out);

/* Writes the n bytes at b to fd. Returns 0 or the -errno of write. */
int po_write_all(int fd, const char *b, size_t n);

/*
 * Creates a new file "<base>.tmp.<16 random hex digits>" in dirfd
 * (O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, mode 0600), the digits
 * from getrandom(2), another name on EEXIST (so that names made in advance
 * cannot stop it). Its name into name (size bytes). Returns the fd,
 * -ENAMETOOLONG, or the -errno of getrandom/openat.
 */
int po_tmp_create(int dirfd, const char *base, char *name, size_t size);

/* fsync()s the directory fd, so that a rename in it is durable. Returns 0
 * or the -errno of fsync (EINVAL, a directory that cannot be synced: 0). */
int po_fsync_fd_dir(int dirfd);

/* fsync()s the directory that holds path (po_path_dir(), po_dir_open()).
 * Returns 0 or the -errno of po_path_dir/po_dir_open/fsync. */
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
