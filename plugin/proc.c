/*
 * portowner: details of an owner process (comm, exe, uid, start time,
 * cgroup).
 *
 * comm, exe and status are read with openat()/readlinkat() on one descriptor
 * of <proc_root>/PID, so that the three reads go to the same process
 * directory even if the pid is reused meanwhile.
 */
#include "portowner/proc.h"
#include "portowner/printable.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <unistd.h>

/* Longest exe path we read: the kernel gives at most PATH_MAX - 1. */
#define PO_EXE_MAX (1u << 16)

/*
 * Reads up to size bytes of name under dfd. Never blocks: the file is opened
 * O_NONBLOCK (a FIFO in a fixture tree opens at once and reads EAGAIN or
 * end of file) and, unless the directory is procfs (whose files are the
 * kernel's), must be a regular file (-EINVAL). Returns the length or -errno.
 */
static ssize_t read_small(int dfd, const char *name, unsigned flags, char *buf,
                          size_t size) {
  int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return -errno;
  if (!(flags & PO_PROC_PROCFS)) {
    struct stat st;

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      return -EINVAL;
    }
  }
  size_t len = 0;
  while (len < size) {
    ssize_t n = read(fd, buf + len, size - len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int e = errno;
      close(fd);
      return -e;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  return (ssize_t)len;
}

/* Returns 0 or -errno of the read. */
static int read_comm(int dfd, unsigned flags, char *comm, size_t size) {
  ssize_t n = read_small(dfd, "comm", flags, comm, size - 1);
  if (n < 0) {
    comm[0] = '\0';
    return (int)n;
  }
  size_t len = strnlen(comm, (size_t)n);
  if (len > 0 && comm[len - 1] == '\n')
    len--;
  comm[len] = '\0';
  return 0;
}

/* Sets *exe to a malloc'd copy of the link name under dfd (the exe), or
 * NULL when it cannot be read. Returns 0, -ENOMEM, or the readlink error
 * (with *exe NULL). */
static int read_exe(int dfd, const char *name, char **exe) {
  char stack[PATH_MAX];
  char *buf = stack, *heap = NULL;
  size_t size = sizeof(stack);
  ssize_t len;

  *exe = NULL;
  for (;;) {
    len = readlinkat(dfd, name, buf, size);
    if (len < 0) {
      int e = errno;
      free(heap);
      return -e;
    }
    if ((size_t)len < size)
      break;
    if (size >= PO_EXE_MAX) { /* not a path the kernel would give */
      free(heap);
      return -ENAMETOOLONG;
    }
    size *= 2;
    char *b = realloc(heap, size);
    if (!b) {
      free(heap);
      return -ENOMEM;
    }
    buf = heap = b;
  }
  *exe = strndup(buf, (size_t)len);
  free(heap);
  return *exe ? 0 : -ENOMEM;
}

/* Parses a decimal number of at most 32 bits at *s, advancing *s.
 * Returns 1, or 0 when there is none or it overflows. */
static int parse_u32(const char **s, uint32_t *v) {
  const char *p = *s;
  uint64_t n = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    n = n * 10 + (unsigned)(*p - '0');
    if (n > UINT32_MAX)
      return 0;
  }
  if (p == *s)
    return 0;
  *v = (uint32_t)n;
  *s = p;
  return 1;
}

/* The effective uid from status text: "Uid:\tREAL\tEFFECTIVE\t...". */
static uint32_t status_euid(const char *buf) {
  for (const char *line = buf; line;) {
    if (strncmp(line, "Uid:", 4) == 0) {
      const char *p = line + 4;
      uint32_t real, eff;
      p += strspn(p, " \t");
      if (!parse_u32(&p, &real) || (*p != ' ' && *p != '\t'))
        return PO_UID_UNKNOWN;
      p += strspn(p, " \t");
      if (!parse_u32(&p, &eff) ||
          (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\0'))
        return PO_UID_UNKNOWN;
      return eff;
    }
    line = strchr(line, '\n');
    if (line)
      line++;
  }
  return PO_UID_UNKNOWN;
}

/* Returns 0 or -errno of the read; *uid is PO_UID_UNKNOWN when unread. */
static int read_uid(int dfd, unsigned flags, uint32_t *uid) {
  char buf[4096];
  ssize_t n = read_small(dfd, "status", flags, buf, sizeof(buf) - 1);
  *uid = PO_UID_UNKNOWN;
  if (n < 0)
    return (int)n;
  buf[n] = '\0';
  *uid = status_euid(buf);
  return 0;
}

uint64_t po_proc_stat_start(const char *buf) {
  const char *p = strrchr(buf, ')');
  uint64_t v = 0;

  if (!p)
    return 0;
  p++;
  /* Fields 3 (state) to 21 come first. */
  for (int field = 3; field < 22; field++) {
    p += strspn(p, " ");
    if (!*p)
      return 0;
    p += strcspn(p, " ");
  }
  p += strspn(p, " ");
  if (*p < '0' || *p > '9')
    return 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (UINT64_MAX - 9) / 10)
      return 0;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  return *p == ' ' || *p == '\n' || *p == '\0' ? v : 0;
}

/* *start from <dfd>/stat, 0 when it cannot be read. */
static void read_start(int dfd, unsigned flags, uint64_t *start) {
  char buf[2048];
  ssize_t n = read_small(dfd, "stat", flags, buf, sizeof(buf) - 1);

  *start = 0;
  if (n <= 0)
    return;
  buf[n] = '\0';
  if (strnlen(buf, (size_t)n) != (size_t)n)
    return; /* a NUL inside is not stat text */
  *start = po_proc_stat_start(buf);
}

/* Longest <pid>/cgroup text read: a hybrid host has a dozen lines. */
#define PO_CGROUP_TEXT_MAX (16u * 1024)

/* p->cgroup from <dfd>/cgroup; both paths NULL when it cannot be read.
 * A read that fills the buffer keeps only its whole lines. Returns 0 or
 * -ENOMEM. */
static int read_cgroup(int dfd, unsigned flags, struct po_proc *p) {
  char *buf = malloc(PO_CGROUP_TEXT_MAX);
  ssize_t n;
  int err;

  if (!buf)
    return -ENOMEM;
  n = read_small(dfd, "cgroup", flags, buf, PO_CGROUP_TEXT_MAX);
  if (n == (ssize_t)PO_CGROUP_TEXT_MAX) {
    char *nl = memrchr(buf, '\n', (size_t)n);
    n = nl ? nl - buf + 1 : 0;
  }
  err = n > 0 ? po_cgroup_parse(buf, (size_t)n, &p->cgroup) : 0;
  free(buf);
  return err;
}

/* A copy of known's cgroup paths into p. Returns 0 or -ENOMEM. */
static int copy_cgroup(const struct po_cgroup_paths *known, struct po_proc *p) {
  if (known->v2 && !(p->cgroup.v2 = strdup(known->v2)))
    return -ENOMEM;
  if (known->systemd && !(p->cgroup.systemd = strdup(known->systemd)))
    return -ENOMEM;
  return 0;
}

/* The file the exe link under dfd names (stat follows it). */
static void stat_exe(int dfd, const char *name, struct po_proc *p) {
  struct stat st;

  if (fstatat(dfd, name, &st, 0) != 0)
    return;
  p->exe_id = 1;
  p->exe_dev = (uint64_t)st.st_dev;
  p->exe_ino = (uint64_t)st.st_ino;
}

void po_proc_user_name(uint32_t uid, char *user, size_t size) {
  user[0] = '\0';
  if (uid == PO_UID_UNKNOWN)
    return;

  char stack[1024];
  char *buf = stack, *heap = NULL;
  size_t bsize = sizeof(stack);
  struct passwd pw, *res = NULL;
  for (;;) {
    int e = getpwuid_r((uid_t)uid, &pw, buf, bsize, &res);
    if (e != ERANGE || bsize >= (1u << 20))
      break;
    bsize *= 2;
    char *b = realloc(heap, bsize);
    if (!b)
      break;
    buf = heap = b;
  }
  /* A name that does not fit is not cut: the number is unambiguous. */
  if (res && res->pw_name && res->pw_name[0] != '\0' &&
      strlen(res->pw_name) < size)
    strcpy(user, res->pw_name);
  else
    snprintf(user, size, "%" PRIu32, uid);
  free(heap);
}

static int is_gone(int err) {
  return err == -ENOENT || err == -ESRCH;
}

int po_proc_read(const char *proc_root, pid_t pid, struct po_proc *p) {
  return po_proc_read_ex(proc_root, pid, 0, 0, NULL, p);
}

int po_proc_read_task(const char *proc_root, pid_t pid, pid_t tid,
                      struct po_proc *p) {
  return po_proc_read_ex(proc_root, pid, tid, 0, NULL, p);
}

int po_proc_root_is_procfs(const char *proc_root) {
  struct statfs sf;

  if (statfs(proc_root ? proc_root : "/proc", &sf) != 0)
    return -errno;
  return sf.f_type == PROC_SUPER_MAGIC;
}

int po_proc_read_ex(const char *proc_root, pid_t pid, pid_t tid, unsigned flags,
                    const struct po_proc *known, struct po_proc *p) {
  struct stat dst;

  memset(p, 0, sizeof(*p));
  p->pid = pid;
  p->uid = PO_UID_UNKNOWN;
  if (!proc_root)
    proc_root = "/proc";

  char path[PATH_MAX];
  int n = snprintf(path, sizeof(path), "%s/%d", proc_root, (int)pid);
  if (n < 0 || (size_t)n >= sizeof(path))
    return -ENAMETOOLONG;
  int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return -errno;
  if ((flags & PO_PROC_PROCFS) && fstat(dfd, &dst) == 0)
    p->dir_ino = (uint64_t)dst.st_ino;

  int ecomm = read_comm(dfd, flags, p->comm, sizeof(p->comm));
  int eexe = read_exe(dfd, "exe", &p->exe);
  int euid = read_uid(dfd, flags, &p->uid);

  if (!p->exe && eexe != -ENOMEM && tid > 0) {
    char task[48];

    snprintf(task, sizeof(task), "task/%d/exe", (int)tid);
    eexe = read_exe(dfd, task, &p->exe);
    if (p->exe)
      stat_exe(dfd, task, p);
  } else if (p->exe) {
    stat_exe(dfd, "exe", p);
  }
  /* A process's start time never changes, and on procfs the directory of
   * a later process of the same pid has another inode. */
  if (p->dir_ino && known && known->pid == pid &&
      known->dir_ino == p->dir_ino && known->start)
    p->start = known->start;
  else
    read_start(dfd, flags, &p->start);
  /* The same for the cgroup, until the caller asks again. */
  int ecg = 0;
  if (flags & PO_PROC_NO_CGROUP)
    ; /* attribution off */
  else if (p->dir_ino && known && known->pid == pid &&
           known->dir_ino == p->dir_ino &&
           (known->cgroup.v2 || known->cgroup.systemd) &&
           !(flags & PO_PROC_CGROUP_AGAIN))
    ecg = copy_cgroup(&known->cgroup, p);
  else
    ecg = read_cgroup(dfd, flags, p);
  close(dfd);

  if (eexe == -ENOMEM || ecg == -ENOMEM) {
    po_proc_release(p);
    return -ENOMEM;
  }
  /* The directory was there but the process exited before its files could
   * be read: /proc answers ESRCH on read, ENOENT on lookup. Every process
   * directory has comm and status, so both missing means gone. */
  if (ecomm == -ESRCH || euid == -ESRCH || (is_gone(ecomm) && is_gone(euid))) {
    int e = (ecomm == -ESRCH || euid == -ESRCH) ? -ESRCH : -ENOENT;
    po_proc_release(p);
    p->comm[0] = '\0';
    p->uid = PO_UID_UNKNOWN;
    p->start = 0;
    p->dir_ino = 0;
    p->exe_id = 0;
    return e;
  }
  if (!(flags & PO_PROC_NO_USER))
    po_proc_user_name(p->uid, p->user, sizeof(p->user));
  return 0;
}

void po_proc_release(struct po_proc *p) {
  if (!p)
    return;
  free(p->exe);
  p->exe = NULL;
  po_cgroup_paths_release(&p->cgroup);
}

int po_proc_self_sees_all(void) {
  char line[256];
  unsigned long long cap = 0;
  int found = 0;
  FILE *f = fopen("/proc/self/status", "re");

  if (!f)
    return 0;
  while (!found && fgets(line, sizeof(line), f))
    found = sscanf(line, "CapEff: %llx", &cap) == 1;
  fclose(f);
  return found && (cap >> 19) & 1; /* CAP_SYS_PTRACE */
}

/* Appends s (n bytes) made printable to buf at *len (size bytes).
 * Returns 0 when it did not all fit. */
static int append_printable(char *buf, size_t size, size_t *len, const char *s,
                            size_t n) {
  for (size_t i = 0; i < n;) {
    size_t span, ok = po_printable(s + i, n - i, &span);
    size_t out = ok ? ok : 1;

    if (*len + out >= size)
      return 0;
    if (ok)
      memcpy(buf + *len, s + i, ok);
    else
      buf[*len] = '?';
    *len += out;
    buf[*len] = '\0';
    i += span;
  }
  return 1;
}

void po_proc_name_list(const char *proc_root, const pid_t *pids, size_t n,
                       uint64_t total, char *buf, size_t size) {
  size_t len = 0;
  char part[64];
  int fits = 1;

  if (!buf || size == 0)
    return;
  buf[0] = '\0';
  for (size_t i = 0; i < n && fits; i++) {
    struct po_proc p;
    int err = po_proc_read_ex(proc_root, pids[i], 0,
                              PO_PROC_NO_USER | PO_PROC_NO_CGROUP, NULL, &p);
    const char *comm = !err && p.comm[0] ? p.comm : "?";

    snprintf(part, sizeof(part), "%s%d (", i ? ", " : "", (int)pids[i]);
    fits = append_printable(buf, size, &len, part, strlen(part)) &&
           append_printable(buf, size, &len, comm, strlen(comm)) &&
           append_printable(buf, size, &len, ")", 1);
    po_proc_release(&p);
  }
  if (fits && total > n) {
    snprintf(part, sizeof(part), "%sand %llu more", n ? ", " : "",
             (unsigned long long)(total - n));
    fits = append_printable(buf, size, &len, part, strlen(part));
  }
  if (!fits && size > 4) {
    /* Cut at a character boundary. */
    size_t k = len < size - 4 ? len : size - 4;

    while (k > 0 && ((unsigned char)buf[k] & 0xc0) == 0x80)
      k--;
    memcpy(buf + k, "...", 4);
  }
}
