/*
 * portowner: small file I/O and the boot id (see fileio.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef SYS_openat2
#include <linux/openat2.h>
#endif

#include "portowner/fileio.h"

int po_path_dir(const char *path, char **dir, const char **base) {
  const char *slash = strrchr(path, '/');
  size_t n;

  *dir = NULL;
  *base = NULL;
  if (!*path)
    return -EINVAL;
  if (slash && !slash[1])
    return -EISDIR;
  n = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
  *dir = malloc(n ? n + 1 : 2);
  if (!*dir)
    return -ENOMEM;
  if (n) {
    memcpy(*dir, path, n);
    (*dir)[n] = '\0';
  } else {
    strcpy(*dir, ".");
  }
  *base = slash ? slash + 1 : path;
  return 0;
}

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_CLOEXEC)

int po_dir_open_walk(const char *dir) {
  char *copy = strdup(dir), *save = NULL, *c;
  int fd, err = 0;

  if (!copy)
    return -ENOMEM;
  fd = open(dir[0] == '/' ? "/" : ".", DIR_FLAGS);
  if (fd < 0)
    err = -errno;
  for (c = strtok_r(copy, "/", &save); c && !err;
       c = strtok_r(NULL, "/", &save)) {
    int next;

    if (strcmp(c, ".") == 0)
      continue;
    next = openat(fd, c, DIR_FLAGS | O_NOFOLLOW);
    if (next < 0) {
      struct stat sb;

      err = -errno;
      /* Some kernels say ENOTDIR for a symlink opened O_DIRECTORY. */
      if (err == -ENOTDIR && fstatat(fd, c, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(sb.st_mode))
        err = -ELOOP;
      break;
    }
    close(fd);
    fd = next;
  }
  free(copy);
  if (err) {
    if (fd >= 0)
      close(fd);
    return err;
  }
  return fd;
}

int po_dir_open(const char *dir) {
#ifdef SYS_openat2
  struct open_how how = {.flags = DIR_FLAGS, .resolve = RESOLVE_NO_SYMLINKS};
  long fd = syscall(SYS_openat2, AT_FDCWD, dir, &how, sizeof(how));

  if (fd >= 0)
    return (int)fd;
  if (errno != ENOSYS)
    return -errno;
#endif
  return po_dir_open_walk(dir);
}

int po_trusted(const struct stat *sb, int is_dir, struct po_untrusted *why) {
  uid_t me = geteuid();
  int ok = sb->st_uid == me || (is_dir && sb->st_uid == 0);

  if (ok && !(sb->st_mode & (S_IWGRP | S_IWOTH)))
    return 0;
  if (why) {
    why->refused = 1;
    why->is_dir = is_dir;
    why->uid = (uint32_t)sb->st_uid;
    why->mode = (uint32_t)(sb->st_mode & 07777);
  }
  return -EPERM;
}

/* po_dir_open() of the directory of path (po_path_dir()): an fd or -errno;
 * *base is the file's name in it. */
static int open_dir_of(const char *path, const char **base) {
  char *dir;
  int fd, err = po_path_dir(path, &dir, base);

  if (err)
    return err;
  fd = po_dir_open(dir);
  free(dir);
  return fd;
}

int po_dir_open_trusted(const char *path, const char **base,
                        struct po_untrusted *why) {
  struct stat sb;
  int err, fd = open_dir_of(path, base);

  if (fd < 0)
    return fd;
  if (fstat(fd, &sb) != 0)
    err = -errno;
  else
    err = po_trusted(&sb, 1, why);
  if (err) {
    close(fd);
    return err;
  }
  return fd;
}

int po_file_read_text_at(int dirfd, const char *name, size_t max, int check,
                         struct po_untrusted *why, char **out) {
  struct stat sb;
  char *buf;
  size_t len = 0;
  int err = 0,
      fd = openat(dirfd, name,
                  O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

  *out = NULL;
  if (fd < 0)
    return -errno;
  if (fstat(fd, &sb) != 0)
    err = -errno;
  else if (!S_ISREG(sb.st_mode))
    err = -EINVAL;
  else if (check)
    err = po_trusted(&sb, 0, why);
  if (!err && (uintmax_t)sb.st_size > max)
    err = -EFBIG;
  if (err) {
    close(fd);
    return err;
  }
  buf = malloc((size_t)sb.st_size + 1);
  if (!buf) {
    close(fd);
    return -ENOMEM;
  }
  for (;;) {
    ssize_t n = read(fd, buf + len, (size_t)sb.st_size - len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = -errno;

      free(buf);
      close(fd);
      return e;
    }
    if (n == 0 || (len += (size_t)n) == (size_t)sb.st_size)
      break;
  }
  close(fd);
  buf[len] = '\0';
  if (strlen(buf) != len) { /* a NUL inside: not JSON */
    free(buf);
    return -EBADMSG;
  }
  *out = buf;
  return 0;
}

int po_file_read_text(const char *path, size_t max, char **out) {
  return po_file_read_text_at(AT_FDCWD, path, max, 0, NULL, out);
}

int po_write_all(int fd, const char *b, size_t n) {
  while (n) {
    ssize_t w = write(fd, b, n);

    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -errno;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Tries before giving up: 64 random bits each, so only a failing
 * getrandom() or a full directory ends it. */
#define TMP_TRIES 16

int po_tmp_create(int dirfd, const char *base, char *name, size_t size) {
  for (unsigned i = 0; i < TMP_TRIES; i++) {
    uint64_t r;
    ssize_t got;
    int n, fd;

    do
      got = getrandom(&r, sizeof(r), 0);
    while (got < 0 && errno == EINTR);
    if (got < 0)
      return -errno;
    if (got != (ssize_t)sizeof(r))
      return -EIO;
    n = snprintf(name, size, "%s.tmp.%016llx", base, (unsigned long long)r);
    if (n < 0 || (size_t)n >= size)
      return -ENAMETOOLONG;
    fd = openat(dirfd, name,
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0)
      return fd;
    if (errno != EEXIST)
      return -errno;
  }
  return -EEXIST;
}

int po_fsync_fd_dir(int dirfd) {
  if (fsync(dirfd) != 0 && errno != EINVAL)
    return -errno;
  return 0;
}

int po_fsync_dir(const char *path) {
  const char *base;
  int err, fd = open_dir_of(path, &base);

  if (fd < 0)
    return fd;
  err = po_fsync_fd_dir(fd);
  close(fd);
  return err;
}

int po_boot_id_read(const char *proc_root, char *buf, size_t size) {
  char path[PATH_MAX], tmp[128];
  ssize_t n;
  int fd;

  snprintf(path, sizeof(path), "%s/sys/kernel/random/boot_id",
           proc_root ? proc_root : "/proc");
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  do
    n = read(fd, tmp, sizeof(tmp) - 1);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = -errno;

    close(fd);
    return e;
  }
  close(fd);
  while (n > 0 && (tmp[n - 1] == '\n' || tmp[n - 1] == ' '))
    n--;
  tmp[n] = '\0';
  if (n == 0 || strlen(tmp) != (size_t)n)
    return -EINVAL;
  if ((size_t)n >= size)
    return -ENOSPC;
  memcpy(buf, tmp, (size_t)n + 1);
  return 0;
}
