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
#include <sys/stat.h>
#include <unistd.h>

#include "portowner/fileio.h"

int po_file_read_text(const char *path, size_t max, char **out) {
  struct stat sb;
  char *buf;
  size_t len = 0;
  int fd =
      open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

  *out = NULL;
  if (fd < 0)
    return -errno;
  if (fstat(fd, &sb) != 0) {
    int e = -errno;

    close(fd);
    return e;
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return -EINVAL;
  }
  if ((uintmax_t)sb.st_size > max) {
    close(fd);
    return -EFBIG;
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

int po_fsync_dir(const char *path) {
  char *dir = strdup(path), *slash;
  int fd, err = 0;

  if (!dir)
    return -ENOMEM;
  slash = strrchr(dir, '/');
  if (!slash)
    strcpy(dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  if (fd < 0)
    return -errno;
  if (fsync(fd) != 0 && errno != EINVAL)
    err = -errno;
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
