/*
 * portowner tests: fake ProcRoot trees and hand-built snapshots, shared by
 * the unit tests and the fuzz targets. The contract is in fixture.h: every
 * builder succeeds or calls the failure handler, which does not return.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"

/* ---- failures ------------------------------------------------------------ */

static void default_failure(const char *msg) {
  fprintf(stderr, "fixture: %s\n", msg);
  fflush(stderr);
  abort();
}

static fx_failure_fn on_failure = default_failure;

void fx_set_failure(fx_failure_fn fn) {
  on_failure = fn ? fn : default_failure;
}

static void fail(const char *fmt, ...) FX_PRINTF(1, 2)
    __attribute__((noreturn));

static void fail(const char *fmt, ...) {
  char msg[PATH_MAX + 256];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  on_failure(msg);
  abort(); /* the handler returned */
}

/* ---- fake ProcRoot trees ------------------------------------------------- */

static void vpath(const char *root, char *buf, size_t size, const char *fmt,
                  va_list ap) FX_PRINTF(4, 0);

static void vpath(const char *root, char *buf, size_t size, const char *fmt,
                  va_list ap) {
  int n = snprintf(buf, size, "%s/", root);
  int m;

  if (n < 0 || (size_t)n >= size)
    fail("path under %s: too long", root);
  m = vsnprintf(buf + n, size - (size_t)n, fmt, ap);
  if (m < 0 || (size_t)(n + m) >= size)
    fail("path under %s: too long", root);
}

void fx_path(const char *root, char *buf, size_t size, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vpath(root, buf, size, fmt, ap);
  va_end(ap);
}

void fx_root_make(char *root, size_t size, const char *base, const char *tag) {
  int n = snprintf(root, size, "%s/po-%s-XXXXXX", base ? base : "/tmp", tag);

  if (n < 0 || (size_t)n >= size)
    fail("root for %s under %s: too long", tag, base ? base : "/tmp");
  if (!mkdtemp(root))
    fail("mkdtemp %s: %s", root, strerror(errno));
}

static int give_back(const char *path, const struct stat *sb, int type,
                     struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  if (type == FTW_D || type == FTW_DNR)
    chmod(path, 0700);
  return 0;
}

static int remove_one(const char *path, const struct stat *sb, int type,
                      struct FTW *ftw) {
  (void)sb;
  (void)ftw;
  if (type == FTW_DP || type == FTW_D || type == FTW_DNR)
    return rmdir(path);
  return unlink(path);
}

static int tree_remove(const char *path) {
  struct stat sb;

  if (lstat(path, &sb) != 0)
    return errno == ENOENT ? 0 : -errno;
  nftw(path, give_back, 16, FTW_PHYS);
  errno = 0;
  if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
    return errno ? -errno : -EIO;
  return 0;
}

int fx_root_remove(const char *root) {
  return tree_remove(root);
}

void fx_mkdir(const char *root, const char *fmt, ...) {
  char p[PATH_MAX];
  va_list ap;

  va_start(ap, fmt);
  vpath(root, p, sizeof(p), fmt, ap);
  va_end(ap);
  if (mkdir(p, 0755) != 0)
    fail("mkdir %s: %s", p, strerror(errno));
}

void fx_symlink(const char *root, const char *target, const char *fmt, ...) {
  char p[PATH_MAX];
  va_list ap;

  va_start(ap, fmt);
  vpath(root, p, sizeof(p), fmt, ap);
  va_end(ap);
  if (symlink(target, p) != 0)
    fail("symlink %s -> %s: %s", p, target, strerror(errno));
}

void fx_write(const char *root, const char *rel, const void *data, size_t len) {
  const char *b = data;
  char p[PATH_MAX];
  int fd;

  fx_path(root, p, sizeof(p), "%s", rel);
  fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    fail("open %s: %s", p, strerror(errno));
  while (len > 0) {
    ssize_t n = write(fd, b, len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      fail("write %s: %s", p, n < 0 ? strerror(errno) : "nothing written");
    b += n;
    len -= (size_t)n;
  }
  if (close(fd) != 0)
    fail("close %s: %s", p, strerror(errno));
}

void fx_remove(const char *root, const char *fmt, ...) {
  char p[PATH_MAX];
  va_list ap;
  int rc;

  va_start(ap, fmt);
  vpath(root, p, sizeof(p), fmt, ap);
  va_end(ap);
  rc = tree_remove(p);
  if (rc < 0)
    fail("remove %s: %s", p, strerror(-rc));
}

void fx_proc(const char *root, pid_t pid) {
  fx_mkdir(root, "%d", (int)pid);
  fx_mkdir(root, "%d/fd", (int)pid);
}

void fx_fd(const char *root, pid_t pid, int fd, const char *target) {
  fx_symlink(root, target, "%d/fd/%d", (int)pid, fd);
}

void fx_sockfd(const char *root, pid_t pid, int fd, uint64_t inode) {
  char target[64];

  snprintf(target, sizeof(target), "socket:[%" PRIu64 "]", inode);
  fx_fd(root, pid, fd, target);
}

void fx_task(const char *root, pid_t pid, pid_t tid, pid_t table) {
  char p[PATH_MAX];

  fx_path(root, p, sizeof(p), "%d/task", (int)pid);
  if (mkdir(p, 0755) != 0 && errno != EEXIST)
    fail("mkdir %s: %s", p, strerror(errno));
  fx_mkdir(root, "%d/task/%d", (int)pid, (int)tid);
  if (table == 0) {
    fx_mkdir(root, "%d/task/%d/fd", (int)pid, (int)tid);
  } else if (table == pid) {
    fx_symlink(root, "../../fd", "%d/task/%d/fd", (int)pid, (int)tid);
  } else {
    char target[32];

    snprintf(target, sizeof(target), "../%d/fd", (int)table);
    fx_symlink(root, target, "%d/task/%d/fd", (int)pid, (int)tid);
  }
}

void fx_task_sockfd(const char *root, pid_t pid, pid_t tid, int fd,
                    uint64_t inode) {
  char target[64];

  snprintf(target, sizeof(target), "socket:[%" PRIu64 "]", inode);
  fx_symlink(root, target, "%d/task/%d/fd/%d", (int)pid, (int)tid, fd);
}

/* <root>/<pid>/name holds the formatted text. */
static void proc_text(const char *root, pid_t pid, const char *name,
                      const char *fmt, ...) FX_PRINTF(4, 5);

static void proc_text(const char *root, pid_t pid, const char *name,
                      const char *fmt, ...) {
  char rel[64], text[512];
  va_list ap;
  int n;

  snprintf(rel, sizeof(rel), "%d/%s", (int)pid, name);
  va_start(ap, fmt);
  n = vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(text))
    fail("%s/%s: text too long", root, rel);
  fx_write(root, rel, text, (size_t)n);
}

void fx_proc_details(const char *root, pid_t pid, const char *comm,
                     uint32_t uid, uint64_t start) {
  proc_text(root, pid, "comm", "%s\n", comm);
  proc_text(root, pid, "status", "Name:\t%s\nUid:\t%u\t%u\t%u\t%u\n", comm, uid,
            uid, uid, uid);
  proc_text(root, pid, "stat",
            "%d (a) b) S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 %" PRIu64
            " 0 0\n",
            (int)pid, start);
}

void fx_net_tcp(const char *root, const struct fx_listener *v, size_t n) {
  char p[PATH_MAX];
  FILE *f;
  int sl = 0;

  fx_path(root, p, sizeof(p), "net");
  if (mkdir(p, 0755) != 0 && errno != EEXIST)
    fail("mkdir %s: %s", p, strerror(errno));
  fx_path(root, p, sizeof(p), "net/tcp");
  f = fopen(p, "we");
  if (!f)
    fail("open %s: %s", p, strerror(errno));
  fputs("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when "
        "retrnsmt   uid  timeout inode\n",
        f);
  for (size_t i = 0; i < n; i++) {
    if (!v[i].inode)
      continue;
    fprintf(f,
            "%4d: 0100007F:%04X 00000000:0000 0A 00000000:00000000 "
            "00:00000000 00000000     0        0 %" PRIu64
            " 1 0000000000000000 100 0 0 10 0\n",
            sl++, v[i].port, v[i].inode);
  }
  if (ferror(f) | fclose(f))
    fail("write %s: %s", p, strerror(errno));
}

/* ---- snapshots by hand --------------------------------------------------- */

size_t fx_snap_sock(struct po_snapshot *s, int proto, const char *addr,
                    uint16_t port) {
  struct po_socket sk;

  memset(&sk, 0, sizeof(sk));
  if (inet_pton(AF_INET, addr, sk.addr) == 1)
    sk.family = AF_INET;
  else if (inet_pton(AF_INET6, addr, sk.addr) == 1)
    sk.family = AF_INET6;
  else
    fail("fx_snap_sock: '%s' is no IPv4 or IPv6 address", addr);
  sk.proto = (uint8_t)proto;
  sk.port = port;
  sk.netns = FX_NETNS;
  sk.inode = 10000 + s->socks.len;
  sk.v6only = -1;
  sk.rqueue = 0;
  sk.wqueue = proto == IPPROTO_TCP ? 128 : 0;
  if (po_table_push(&s->socks, &sk) != 0)
    fail("fx_snap_sock: out of memory");
  return s->socks.len - 1;
}

static void set_proc(struct po_proc *p, pid_t pid, const char *comm,
                     const char *exe, uint32_t uid, const char *user) {
  memset(p, 0, sizeof(*p));
  p->pid = pid;
  p->uid = uid;
  snprintf(p->comm, sizeof(p->comm), "%s", comm);
  snprintf(p->user, sizeof(p->user), "%s", user);
  if (exe && !(p->exe = strdup(exe)))
    fail("fx_snap_proc: out of memory");
}

void fx_snap_proc(struct po_snapshot *s, pid_t pid, const char *comm,
                  const char *exe, uint32_t uid, const char *user) {
  struct po_proc *v = realloc(s->procs, (s->nprocs + 1) * sizeof(*v));

  if (!v)
    fail("fx_snap_proc: out of memory");
  s->procs = v;
  set_proc(&s->procs[s->nprocs++], pid, comm, exe, uid, user);
}

void fx_snap_owner(struct po_snapshot *s, size_t sock, pid_t pid) {
  struct po_owner *v = realloc(s->owners, (s->nowners + 1) * sizeof(*v));

  if (!v)
    fail("fx_snap_owner: out of memory");
  s->owners = v;
  s->owners[s->nowners] = (struct po_owner){.pid = pid,
                                            .fd = 3 + (int)s->nowners,
                                            .sock = sock,
                                            .nfds = 1,
                                            .fds = {3 + (int)s->nowners}};
  s->nowners++;
}

void fx_snap_own(struct po_snapshot *s, size_t sock, pid_t pid,
                 const char *comm, const char *exe, uint32_t uid,
                 const char *user) {
  int known = 0;

  for (size_t i = 0; i < s->nprocs; i++)
    known |= s->procs[i].pid == pid;
  if (!known)
    fx_snap_proc(s, pid, comm, exe, uid, user);
  fx_snap_owner(s, sock, pid);
}

size_t fx_snap_crowd(struct po_snapshot *s, uint16_t port, pid_t base, size_t n,
                     const char *comm, const char *exe, uint32_t uid,
                     const char *user) {
  size_t k = fx_snap_sock(s, IPPROTO_TCP, "0.0.0.0", port);
  struct po_proc *procs = realloc(s->procs, (s->nprocs + n) * sizeof(*procs));
  struct po_owner *owners;

  if (!procs)
    fail("fx_snap_crowd: out of memory");
  s->procs = procs;
  owners = realloc(s->owners, (s->nowners + n) * sizeof(*owners));
  if (!owners)
    fail("fx_snap_crowd: out of memory");
  s->owners = owners;
  for (size_t i = 0; i < n; i++) {
    pid_t pid = base + (pid_t)i;

    set_proc(&s->procs[s->nprocs++], pid, comm, exe, uid, user);
    s->owners[s->nowners++] = (struct po_owner){
        .pid = pid, .fd = 3, .sock = k, .nfds = 1, .fds = {3}};
  }
  fx_snap_finish(s);
  return k;
}

static int proc_cmp(const void *a, const void *b) {
  const struct po_proc *x = a, *y = b;

  return (x->pid > y->pid) - (x->pid < y->pid);
}

static int owner_cmp(const void *a, const void *b) {
  const struct po_owner *x = a, *y = b;

  if (x->sock != y->sock)
    return x->sock < y->sock ? -1 : 1;
  if (x->pid != y->pid)
    return (x->pid > y->pid) - (x->pid < y->pid);
  return (x->fd > y->fd) - (x->fd < y->fd);
}

void fx_snap_finish(struct po_snapshot *s) {
  if (s->nprocs)
    qsort(s->procs, s->nprocs, sizeof(*s->procs), proc_cmp);
  if (s->nowners)
    qsort(s->owners, s->nowners, sizeof(*s->owners), owner_cmp);
  for (size_t i = 0; i < s->socks.len; i++)
    s->socks.v[i].owner_count = 0;
  for (size_t i = 0; i < s->nowners; i++) {
    struct po_proc key = {.pid = s->owners[i].pid};
    struct po_proc *p =
        bsearch(&key, s->procs, s->nprocs, sizeof(key), proc_cmp);
    struct po_socket *sk;

    if (!p)
      fail("fx_snap_finish: owner pid %d has no process", (int)key.pid);
    if (s->owners[i].sock >= s->socks.len)
      fail("fx_snap_finish: owner of socket %zu, of %zu", s->owners[i].sock,
           s->socks.len);
    sk = &s->socks.v[s->owners[i].sock];
    s->owners[i].proc = (size_t)(p - s->procs);
    if (sk->owner_count++ == 0)
      sk->owner_first = i;
  }
}
