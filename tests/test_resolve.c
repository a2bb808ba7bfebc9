/*
 * portowner: tests of the owner resolver and the process details.
 *
 * Fixture trees (fixture.h) are built at run time under a mkdtemp()
 * directory used as proc_root: <root>/<pid>/fd/<n> symlinks to
 * "socket:[INODE]" and the other kinds of links the kernel shows,
 * <root>/<pid>/{comm,status,exe}. The live tests use the real /proc with
 * real sockets held by real processes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "portowner/proc.h"
#include "portowner/resolve.h"
#include "portowner/table.h"
#include "fixture.h"

static const char *prog_name; /* basename of argv[0] */

struct fx {
  char root[64];
  struct po_resolver *r;
  struct po_owners out;
  struct po_walk_stats st;
};

static int setup(void **state) {
  struct fx *f = calloc(1, sizeof(*f));
  if (!f)
    return -1;
  fx_root_make(f->root, sizeof(f->root), NULL, "resolve");
  if (!(f->r = po_resolver_new())) {
    fx_root_remove(f->root);
    free(f);
    return -1;
  }
  *state = f;
  return 0;
}

/* Removes the tree, giving back the access a test took away. */
static int teardown(void **state) {
  struct fx *f = *state;
  int rc = fx_root_remove(f->root);
  po_resolver_free(f->r);
  po_owners_free(&f->out);
  free(f);
  return rc;
}

/* ---- table and result helpers ------------------------------------------ */

static int walk(struct fx *f, const struct po_table *t) {
  return po_resolver_walk(f->r, f->root, t, &f->out, &f->st);
}

/* How many times (pid, fd, sock) is in the owners. */
static size_t count_owner(const struct po_owners *o, pid_t pid, int fd,
                          size_t sock) {
  size_t n = 0;
  for (size_t i = 0; i < o->len; i++)
    if (o->v[i].pid == pid && o->v[i].fd == fd && o->v[i].sock == sock)
      n++;
  return n;
}

/* How many owners socket sock has. */
static size_t owners_of(const struct po_owners *o, size_t sock) {
  size_t n = 0;
  for (size_t i = 0; i < o->len; i++)
    if (o->v[i].sock == sock)
      n++;
  return n;
}

/* ---- po_socket_link_parse ---------------------------------------------- */

static int parse(const char *s, uint64_t *inode) {
  return po_socket_link_parse(s, strlen(s), inode);
}

static void test_link_parse(void **state) {
  (void)state;
  uint64_t ino = 777;

  assert_int_equal(parse("socket:[12345]", &ino), 1);
  assert_true(ino == 12345);
  assert_int_equal(parse("socket:[0]", &ino), 1);
  assert_true(ino == 0);
  assert_int_equal(parse("socket:[18446744073709551615]", &ino), 1);
  assert_true(ino == UINT64_MAX);

  ino = 777;
  assert_int_equal(parse("socket:[18446744073709551616]", &ino), 0);
  assert_int_equal(parse("socket:[99999999999999999999999]", &ino), 0);
  assert_int_equal(parse("socket:[]", &ino), 0);
  assert_int_equal(parse("socket:[12a]", &ino), 0);
  assert_int_equal(parse("socket:[-1]", &ino), 0);
  assert_int_equal(parse("socket:[+1]", &ino), 0);
  assert_int_equal(parse("socket:[ 1]", &ino), 0);
  assert_int_equal(parse("socket:[1]x", &ino), 0);
  assert_int_equal(parse("socket:[1", &ino), 0);
  assert_int_equal(parse("socket:1]", &ino), 0);
  assert_int_equal(parse("Socket:[1]", &ino), 0);
  assert_int_equal(parse("pipe:[1]", &ino), 0);
  assert_int_equal(parse("anon_inode:[eventpoll]", &ino), 0);
  assert_int_equal(parse("/dev/null", &ino), 0);
  assert_int_equal(parse("", &ino), 0);
  assert_true(ino == 777); /* untouched when it is not a socket link */

  /* len is the readlink() length: bytes after it are not looked at, and
   * the buffer has no NUL. */
  const char raw[] = {'s', 'o', 'c', 'k', 'e', 't', ':',
                      '[', '4', '2', ']', '9', '9', ']'};
  assert_int_equal(po_socket_link_parse(raw, 11, &ino), 1);
  assert_true(ino == 42);
  assert_int_equal(po_socket_link_parse(raw, 10, &ino), 0);
  assert_int_equal(po_socket_link_parse(raw, 14, &ino), 0);
  assert_int_equal(po_socket_link_parse(raw, 0, &ino), 0);
}

/* ---- the resolver on fixture trees --------------------------------------- */

static void test_one_owner(void **state) {
  struct fx *f = *state;
  fx_proc(f->root, 100);
  fx_fd(f->root, 100, 0, "/dev/null");
  fx_fd(f->root, 100, 1, "pipe:[123]");
  fx_fd(f->root, 100, 2, "anon_inode:[eventpoll]");
  fx_sockfd(f->root, 100, 3, 5000);
  fx_sockfd(f->root, 100, 4, 5001); /* a socket nobody asked for */
  FX_TABLE(t, FX_SOCK(5000));

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(f->out.v[0].pid, 100);
  assert_int_equal(f->out.v[0].fd, 3);
  assert_int_equal(f->out.v[0].sock, 0);
  assert_int_equal(f->out.v[0].proc, 0);
  assert_true(f->st.procs == 1);
  assert_true(f->st.fds == 5);
  assert_true(f->st.denied == 0 && f->st.vanished == 0);
}

/* A parent and 4 forked workers that share one listening socket. */
static void test_shared_by_forked_children(void **state) {
  struct fx *f = *state;
  fx_proc(f->root, 200);
  fx_fd(f->root, 200, 0, "/dev/null");
  fx_sockfd(f->root, 200, 6, 7000);
  for (int pid = 201; pid <= 204; pid++) {
    fx_proc(f->root, pid);
    fx_fd(f->root, pid, 0, "/dev/null");
    fx_fd(f->root, pid, 1, "pipe:[99]");
    fx_sockfd(f->root, pid, 6, 7000);
    fx_sockfd(f->root, pid, 9, 7100 + (uint64_t)pid); /* per-child connection */
  }
  FX_TABLE(t, FX_SOCK(7000));

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 5);
  for (int pid = 200; pid <= 204; pid++)
    assert_int_equal(count_owner(&f->out, pid, 6, 0), 1);
  assert_true(f->st.procs == 5);
  assert_true(f->st.fds == 2 + 4 * 4);
}

static void test_two_sockets(void **state) {
  struct fx *f = *state;
  fx_proc(f->root, 300);
  fx_sockfd(f->root, 300, 3, 8000);
  fx_sockfd(f->root, 300, 4, 8001);
  fx_proc(f->root, 301);
  fx_fd(f->root, 301, 0, "/dev/null");
  fx_sockfd(f->root, 301, 7, 8001);
  FX_TABLE(t, FX_SOCK(8000), FX_SOCK(8001));

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 3);
  assert_int_equal(count_owner(&f->out, 300, 3, 0), 1);
  assert_int_equal(count_owner(&f->out, 300, 4, 1), 1);
  assert_int_equal(count_owner(&f->out, 301, 7, 1), 1);
  assert_int_equal(owners_of(&f->out, 0), 1);
  assert_int_equal(owners_of(&f->out, 1), 2);
}

static void test_socket_without_owner(void **state) {
  struct fx *f = *state;
  fx_proc(f->root, 400);
  fx_sockfd(f->root, 400, 3, 9000);
  fx_sockfd(f->root, 400, 4, 9002);
  FX_TABLE(t, FX_SOCK(9000), FX_SOCK(9001));

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(count_owner(&f->out, 400, 3, 0), 1);
  assert_int_equal(owners_of(&f->out, 1), 0);
}

static void test_inode_zero_never_matched(void **state) {
  struct fx *f = *state;
  fx_proc(f->root, 410);
  fx_sockfd(f->root, 410, 3, 0);
  fx_sockfd(f->root, 410, 4, 9100);
  FX_TABLE(t, FX_SOCK(0), FX_SOCK(9100));

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(count_owner(&f->out, 410, 4, 1), 1);
  assert_int_equal(owners_of(&f->out, 0), 0);

  /* A table of inode 0 only has nothing to find. */
  FX_TABLE(z, FX_SOCK(0));
  f->out.len = 0;
  assert_int_equal(walk(f, &z), 0);
  assert_int_equal(f->out.len, 0);
}

static void test_non_numeric_ignored(void **state) {
  struct fx *f = *state;
  /* Directories that are not processes, with socket links that would
   * match if they were walked. */
  const char *others[] = {"self", "net", "sys", "1a", "a1"};
  for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
    fx_mkdir(f->root, "%s", others[i]);
    fx_mkdir(f->root, "%s/fd", others[i]);
    fx_symlink(f->root, "socket:[9200]", "%s/fd/3", others[i]);
  }
  /* A numeric name that is a file, and one that is a symlink to a process
   * directory (d_type says it is no directory: never walked). */
  fx_write(f->root, "12345", "x", 1);
  fx_proc(f->root, 420);
  fx_symlink(f->root, "420", "421");
  fx_sockfd(f->root, 420, 5, 9200);
  /* Non-numeric entries of an fd directory. */
  fx_symlink(f->root, "socket:[9200]", "420/fd/x");
  fx_symlink(f->root, "socket:[9200]", "420/fd/5a");
  fx_symlink(f->root, "socket:[9200]", "420/fd/-5");
  FX_TABLE(t, FX_SOCK(9200));

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(count_owner(&f->out, 420, 5, 0), 1);
  assert_true(f->st.procs == 1);
  assert_true(f->st.fds == 1);
  assert_true(f->st.vanished == 0 && f->st.denied == 0);
}

static void test_vanished(void **state) {
  struct fx *f = *state;
  fx_mkdir(f->root, "430"); /* no fd directory: it exited */
  fx_proc(f->root, 431);
  fx_sockfd(f->root, 431, 3, 9300);
  FX_TABLE(t, FX_SOCK(9300));

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(count_owner(&f->out, 431, 3, 0), 1);
  assert_true(f->st.procs == 2);
  assert_true(f->st.vanished == 1);
  assert_true(f->st.denied == 0);
}

static void test_counts(void **state) {
  struct fx *f = *state;
  fx_proc(f->root, 440);
  fx_fd(f->root, 440, 0, "/dev/null");
  fx_fd(f->root, 440, 1, "/dev/null");
  fx_proc(f->root, 441); /* no fds at all, like a zombie */
  fx_proc(f->root, 442);
  for (int fd = 0; fd < 5; fd++)
    fx_fd(f->root, 442, fd, "pipe:[5]");
  FX_TABLE(t, FX_SOCK(9400));

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 0);
  assert_true(f->st.procs == 3);
  assert_true(f->st.fds == 7);

  /* Stats are added to, never reset. */
  assert_int_equal(walk(f, &t), 0);
  assert_true(f->st.procs == 6);
  assert_true(f->st.fds == 14);
}

/* Owners are appended; a reused resolver forgets the last walk's inodes. */
static void test_append_and_reuse(void **state) {
  struct fx *f = *state;
  fx_proc(f->root, 450);
  fx_sockfd(f->root, 450, 3, 9500);
  fx_sockfd(f->root, 450, 4, 9501);
  FX_TABLE(a, FX_SOCK(9500));
  FX_TABLE(b, FX_SOCK(1), FX_SOCK(9501), FX_SOCK(2));

  assert_int_equal(walk(f, &a), 0);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(walk(f, &b), 0);
  assert_int_equal(f->out.len, 2);
  assert_int_equal(count_owner(&f->out, 450, 3, 0), 1); /* first walk */
  assert_int_equal(count_owner(&f->out, 450, 4, 1), 1); /* second walk */
}

/* A table listing the same inode twice: each entry gets the owner. */
static void test_duplicate_inode_in_table(void **state) {
  struct fx *f = *state;
  fx_proc(f->root, 460);
  fx_sockfd(f->root, 460, 3, 9600);
  FX_TABLE(t, FX_SOCK(9600), FX_SOCK(9601), FX_SOCK(9600));

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 2);
  assert_int_equal(count_owner(&f->out, 460, 3, 0), 1);
  assert_int_equal(count_owner(&f->out, 460, 3, 2), 1);
}

/* Many sockets held by one process: the set and the owners array grow, and
 * every socket is found at its own fd. */
static void test_many_sockets(void **state) {
  struct fx *f = *state;
  enum { N = 3000 };
  struct po_socket *v = calloc(N, sizeof(*v));
  assert_non_null(v);
  fx_proc(f->root, 470);
  for (int i = 0; i < N; i++) {
    v[i].inode = 100000 + (uint64_t)i * 3; /* sequential-ish, like sockfs */
    fx_sockfd(f->root, 470, 10 + i, v[i].inode);
  }
  struct po_table t = {.v = v, .len = N, .cap = N};

  int rc = walk(f, &t);
  free(v);
  assert_int_equal(rc, 0);
  assert_int_equal(f->out.len, N);
  for (int i = 0; i < N; i++)
    assert_int_equal(count_owner(&f->out, 470, 10 + i, (size_t)i), 1);
  assert_true(f->st.fds == N);
}

static void test_bad_proc_root(void **state) {
  struct fx *f = *state;
  char p[PATH_MAX];
  FX_TABLE(t, FX_SOCK(1));

  fx_path(f->root, p, sizeof(p), "missing");
  assert_int_equal(po_resolver_walk(f->r, p, &t, &f->out, &f->st), -ENOENT);
  fx_write(f->root, "file", "x", 1);
  fx_path(f->root, p, sizeof(p), "file");
  assert_int_equal(po_resolver_walk(f->r, p, &t, &f->out, &f->st), -ENOTDIR);
  assert_int_equal(f->out.len, 0);
}

/* What a walk as an unprivileged user saw, sent back by the child. */
struct denied_result {
  int dropped; /* privileges dropped: euid 65534, no CAP_DAC_OVERRIDE */
  int rc;      /* the fixture walk */
  struct po_walk_stats st;
  size_t nowners;
  struct po_owner owners[4];
  int live_rc; /* the walk of the real /proc */
  struct po_walk_stats live_st;
};

static void test_denied(void **state) {
  struct fx *f = *state;
  char p[PATH_MAX];

  /* Readable by "nobody" except the fd directory of 480 (mode 000: open
   * fails) and that of 482 (mode 0444: it lists, but its links cannot be
   * read, as /proc answers for a process we may not ptrace). */
  assert_int_equal(chmod(f->root, 0755), 0);
  fx_proc(f->root, 480);
  fx_sockfd(f->root, 480, 3, 9800);
  fx_proc(f->root, 481);
  fx_sockfd(f->root, 481, 4, 9801);
  fx_proc(f->root, 482);
  fx_sockfd(f->root, 482, 5, 9800);
  fx_sockfd(f->root, 482, 6, 9801);
  fx_path(f->root, p, sizeof(p), "480/fd");
  assert_int_equal(chmod(p, 0), 0);
  fx_path(f->root, p, sizeof(p), "482/fd");
  assert_int_equal(chmod(p, 0444), 0);
  FX_TABLE(t, FX_SOCK(9800), FX_SOCK(9801));

  /* The same tree walked by someone who may read it: every owner. */
  if (geteuid() == 0) {
    assert_int_equal(walk(f, &t), 0);
    assert_int_equal(f->out.len, 4);
    assert_true(f->st.denied == 0);
    f->out.len = 0;
  }

  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    struct denied_result res = {0};
    struct po_owners out = {0};
    close(pfd[0]);
    if (geteuid() != 0 ||
        (setgroups(0, NULL) == 0 && setresgid(65534, 65534, 65534) == 0 &&
         setresuid(65534, 65534, 65534) == 0))
      res.dropped = geteuid() != 0;
    if (res.dropped) {
      res.rc = po_resolver_walk(f->r, f->root, &t, &out, &res.st);
      res.nowners = out.len;
      for (size_t i = 0; i < out.len && i < 4; i++)
        res.owners[i] = out.v[i];
      /* On the real /proc our parent's (root's) fd directory is closed to
       * us: at least that one is denied. */
      res.live_rc = po_resolver_walk(f->r, "/proc", &t, &out, &res.live_st);
    }
    po_owners_free(&out);
    ssize_t w = write(pfd[1], &res, sizeof(res));
    _exit(w == (ssize_t)sizeof(res) ? 0 : 1);
  }
  close(pfd[1]);
  struct denied_result res;
  ssize_t n = read(pfd[0], &res, sizeof(res));
  close(pfd[0]);
  int status;
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(n, sizeof(res));

  if (!res.dropped)
    fail_msg("could not drop privileges to uid 65534: EACCES not tested");
  assert_int_equal(res.rc, 0);
  assert_true(res.st.procs == 3);
  assert_true(res.st.denied == 2);
  assert_true(res.st.vanished == 0);
  assert_true(res.st.fds == 1); /* refused links are not counted read */
  assert_int_equal(res.nowners, 1);
  assert_int_equal(res.owners[0].pid, 481);
  assert_int_equal(res.owners[0].fd, 4);
  assert_int_equal(res.owners[0].sock, 1);
  if (geteuid() == 0) {
    assert_int_equal(res.live_rc, 0);
    assert_true(res.live_st.denied >= 1);
  }
}

/* ---- the resolver on the real /proc -------------------------------------- */

static void test_live_forked_holders(void **state) {
  struct fx *f = *state;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s >= 0);
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
  assert_int_equal(listen(s, 16), 0);
  struct stat sb;
  assert_int_equal(fstat(s, &sb), 0);
  assert_true(S_ISSOCK(sb.st_mode));

  int hold[2], ready[2];
  assert_int_equal(pipe(hold), 0);
  assert_int_equal(pipe(ready), 0);
  enum { FD2 = 100 }; /* the second child holds the socket elsewhere */
  pid_t kids[2];
  for (int i = 0; i < 2; i++) {
    kids[i] = fork();
    assert_true(kids[i] >= 0);
    if (kids[i] == 0) {
      char c = 'r';
      close(hold[1]);
      close(ready[0]);
      if (i == 1 && (dup2(s, FD2) != FD2 || close(s) != 0))
        _exit(1);
      if (write(ready[1], &c, 1) != 1)
        _exit(1);
      (void)read(hold[0], &c, 1); /* until the parent is done */
      _exit(0);
    }
  }
  close(hold[0]);
  close(ready[1]);
  char buf[2];
  ssize_t got = 0;
  while (got < 2) {
    ssize_t n = read(ready[0], buf + got, (size_t)(2 - got));
    if (n <= 0)
      break;
    got += n;
  }
  close(ready[0]);

  FX_TABLE(t, FX_SOCK(0), FX_SOCK((uint64_t)sb.st_ino));
  int rc = po_resolver_walk(f->r, "/proc", &t, &f->out, &f->st);

  close(hold[1]);
  for (int i = 0; i < 2; i++) {
    int status;
    kill(kids[i], SIGKILL);
    assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
  }
  close(s);

  assert_int_equal(got, 2);
  assert_int_equal(rc, 0);
  assert_int_equal(f->out.len, 3);
  assert_int_equal(count_owner(&f->out, getpid(), s, 1), 1);
  assert_int_equal(count_owner(&f->out, kids[0], s, 1), 1);
  assert_int_equal(count_owner(&f->out, kids[1], FD2, 1), 1);
  assert_true(f->st.procs >= 3);
  assert_true(f->st.fds >= 3 * 3);
}

/* Sets or clears CAP_SYS_PTRACE in the effective set (permitted kept). */
static int ptrace_cap_effective(int on) {
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) != 0)
    return -1;
  if (on)
    d[0].effective |= 1u << CAP_SYS_PTRACE;
  else
    d[0].effective &= ~(1u << CAP_SYS_PTRACE);
  return (int)syscall(SYS_capset, &h, d);
}

/*
 * The kernel refuses the fd links (not the fd directory) of a process that
 * is not dumpable to a root without CAP_SYS_PTRACE, as it does for
 * processes of a parent user namespace in a container. A real holder of a
 * real socket made not dumpable is counted as denied, not shown as owning
 * nothing silently.
 */
static void test_live_not_dumpable(void **state) {
  struct fx *f = *state;
  if (geteuid() != 0 || ptrace_cap_effective(1) != 0)
    skip(); /* needs root with CAP_SYS_PTRACE to set up */

  int s = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(s >= 0);
  struct stat sb;
  assert_int_equal(fstat(s, &sb), 0);
  FX_TABLE(t, FX_SOCK((uint64_t)sb.st_ino));

  int hold[2], ready[2];
  assert_int_equal(pipe(hold), 0);
  assert_int_equal(pipe(ready), 0);
  pid_t holder = fork();
  assert_true(holder >= 0);
  if (holder == 0) {
    char c = 'r';
    close(hold[1]);
    close(ready[0]);
    if (prctl(PR_SET_DUMPABLE, 0) != 0 || write(ready[1], &c, 1) != 1)
      _exit(1);
    (void)read(hold[0], &c, 1);
    _exit(0);
  }
  close(hold[0]);
  close(ready[1]);
  char c;
  ssize_t got = read(ready[0], &c, 1);
  close(ready[0]);

  /* With CAP_SYS_PTRACE: the holder and this process own it. */
  int rc = po_resolver_walk(f->r, "/proc", &t, &f->out, &f->st);
  size_t n_priv = f->out.len;
  size_t holder_priv = count_owner(&f->out, holder, s, 0);
  size_t self_priv = count_owner(&f->out, getpid(), s, 0);

  /* Without: the holder is denied; this process still owns it. */
  struct po_walk_stats st = {0};
  f->out.len = 0;
  int rc2 = -1;
  if (ptrace_cap_effective(0) == 0) {
    rc2 = po_resolver_walk(f->r, "/proc", &t, &f->out, &st);
    ptrace_cap_effective(1);
  }

  close(hold[1]);
  kill(holder, SIGKILL);
  int status;
  assert_int_equal(waitpid(holder, &status, 0), holder);
  close(s);

  assert_int_equal(got, 1);
  assert_int_equal(rc, 0);
  assert_int_equal(n_priv, 2);
  assert_int_equal(holder_priv, 1);
  assert_int_equal(self_priv, 1);
  assert_int_equal(rc2, 0);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(count_owner(&f->out, getpid(), s, 0), 1);
  assert_int_equal(count_owner(&f->out, holder, s, 0), 0);
  assert_true(st.denied >= 1);
}

/* ---- process details ----------------------------------------------------- */

static const char status_500[] = "Name:\tmy worker\n"
                                 "Umask:\t0022\n"
                                 "State:\tS (sleeping)\n"
                                 "Tgid:\t500\n"
                                 "Pid:\t500\n"
                                 "PPid:\t1\n"
                                 "TracerPid:\t0\n"
                                 "Uid:\t1000\t0\t0\t0\n"
                                 "Gid:\t1000\t1000\t1000\t1000\n";

static void test_proc_fixture(void **state) {
  struct fx *f = *state;
  struct po_proc p;
  fx_proc(f->root, 500);
  fx_write(f->root, "500/comm", "my worker \xff\n", 12);
  fx_write(f->root, "500/status", status_500, sizeof(status_500) - 1);
  fx_symlink(f->root, "/usr/sbin/my daemon", "500/exe");

  assert_int_equal(po_proc_read(f->root, 500, &p), 0);
  assert_int_equal(p.pid, 500);
  assert_string_equal(p.comm, "my worker \xff");
  assert_non_null(p.exe);
  assert_string_equal(p.exe, "/usr/sbin/my daemon");
  assert_true(p.uid == 0); /* effective, not the real 1000 */
  assert_string_equal(p.user, "root");
  po_proc_release(&p);
  assert_null(p.exe);
}

static void test_proc_unknown_uid(void **state) {
  struct fx *f = *state;
  struct po_proc p;
  static const char status[] = "Name:\tx\nUid:\t0\t4000000\t4000000\t4000000\n"
                               "Gid:\t0\t0\t0\t0\n";
  if (getpwuid(4000000))
    skip(); /* this machine names uid 4000000 */
  fx_proc(f->root, 501);
  fx_write(f->root, "501/comm", "x", 1); /* no newline */
  fx_write(f->root, "501/status", status, sizeof(status) - 1);

  assert_int_equal(po_proc_read(f->root, 501, &p), 0);
  assert_string_equal(p.comm, "x");
  assert_true(p.uid == 4000000);
  assert_string_equal(p.user, "4000000");
  assert_null(p.exe); /* no exe link: a kernel thread, or no privilege */
  po_proc_release(&p);
}

static void test_proc_missing_parts(void **state) {
  struct fx *f = *state;
  struct po_proc p;

  /* comm only: no status, no exe. */
  fx_proc(f->root, 502);
  fx_write(f->root, "502/comm", "\n", 1);
  assert_int_equal(po_proc_read(f->root, 502, &p), 0);
  assert_string_equal(p.comm, "");
  assert_true(p.uid == PO_UID_UNKNOWN);
  assert_string_equal(p.user, "");
  assert_null(p.exe);
  po_proc_release(&p);

  /* status without a usable Uid: line. */
  static const char *bad[] = {"Name:\ty\n", "Uid:\t5\n", "Uid:\tabc\tdef\n",
                              "Uid:\t1\t99999999999\t1\t1\n",
                              "Uid:\t1\t2x\t1\t1\n"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    fx_write(f->root, "502/status", bad[i], strlen(bad[i]));
    assert_int_equal(po_proc_read(f->root, 502, &p), 0);
    assert_true(p.uid == PO_UID_UNKNOWN);
    assert_string_equal(p.user, "");
    po_proc_release(&p);
  }

  /* No comm but a status: still there. */
  fx_proc(f->root, 503);
  fx_write(f->root, "503/status", status_500, sizeof(status_500) - 1);
  assert_int_equal(po_proc_read(f->root, 503, &p), 0);
  assert_string_equal(p.comm, "");
  assert_true(p.uid == 0);
  po_proc_release(&p);
}

static void test_proc_gone(void **state) {
  struct fx *f = *state;
  struct po_proc p;

  assert_int_equal(po_proc_read(f->root, 504, &p), -ENOENT);
  assert_null(p.exe);
  assert_string_equal(p.comm, "");
  assert_true(p.uid == PO_UID_UNKNOWN);
  po_proc_release(&p);

  /* A directory whose comm and status are gone: the process exited after
   * its directory was opened. */
  fx_proc(f->root, 505);
  assert_int_equal(po_proc_read(f->root, 505, &p), -ENOENT);
  assert_null(p.exe);
  po_proc_release(&p);
}

static void test_proc_live_self(void **state) {
  (void)state;
  struct po_proc p;
  char kcomm[17] = {0};
  assert_int_equal(prctl(PR_GET_NAME, kcomm), 0);

  assert_int_equal(po_proc_read("/proc", getpid(), &p), 0);
  assert_string_equal(p.comm, kcomm);
  assert_true(p.uid == geteuid());
  struct passwd *pw = getpwuid(geteuid());
  if (pw)
    assert_string_equal(p.user, pw->pw_name);
  assert_non_null(p.exe);
  /* Under valgrind the process is valgrind's tool binary
   * ("memcheck-amd64-linux"); the comm check above still holds. */
  if (!RUNNING_ON_VALGRIND) {
    assert_true(strncmp(p.comm, prog_name, 15) == 0);
    size_t le = strlen(p.exe), ln = strlen(prog_name);
    assert_true(le > ln && p.exe[le - ln - 1] == '/' &&
                strcmp(p.exe + le - ln, prog_name) == 0);
  }
  po_proc_release(&p);
}

/* A real process that exec'd another binary, then exited. */
static void test_proc_live_child(void **state) {
  (void)state;
  char sleep_path[PATH_MAX];
  assert_non_null(realpath("/bin/sleep", sleep_path));

  int exec_pipe[2];
  assert_int_equal(pipe2(exec_pipe, O_CLOEXEC), 0);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    close(exec_pipe[0]);
    execl(sleep_path, "sleep", "60", (char *)NULL);
    _exit(127);
  }
  close(exec_pipe[1]);
  char c;
  /* EOF once the exec closed the write end. */
  assert_int_equal(read(exec_pipe[0], &c, 1), 0);
  close(exec_pipe[0]);

  struct po_proc p;
  int rc = po_proc_read("/proc", child, &p);
  kill(child, SIGKILL);
  int status;
  assert_int_equal(waitpid(child, &status, 0), child);

  assert_int_equal(rc, 0);
  assert_string_equal(p.comm, "sleep");
  assert_non_null(p.exe);
  assert_string_equal(p.exe, sleep_path);
  assert_true(p.uid == geteuid());
  po_proc_release(&p);

  /* Reaped: gone. */
  assert_int_equal(po_proc_read("/proc", child, &p), -ENOENT);
  assert_null(p.exe);
  po_proc_release(&p);
}

int main(int argc, char **argv) {
  (void)argc;
  const char *slash = strrchr(argv[0], '/');
  prog_name = slash ? slash + 1 : argv[0];
  fx_set_failure(fx_fail_cmocka);

  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_link_parse),
      cmocka_unit_test_setup_teardown(test_one_owner, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shared_by_forked_children, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_two_sockets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_socket_without_owner, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_inode_zero_never_matched, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_non_numeric_ignored, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_vanished, setup, teardown),
      cmocka_unit_test_setup_teardown(test_counts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_append_and_reuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicate_inode_in_table, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_many_sockets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_proc_root, setup, teardown),
      cmocka_unit_test_setup_teardown(test_denied, setup, teardown),
      cmocka_unit_test_setup_teardown(test_live_forked_holders, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_live_not_dumpable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_proc_fixture, setup, teardown),
      cmocka_unit_test_setup_teardown(test_proc_unknown_uid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_proc_missing_parts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_proc_gone, setup, teardown),
      cmocka_unit_test(test_proc_live_self),
      cmocka_unit_test(test_proc_live_child),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
