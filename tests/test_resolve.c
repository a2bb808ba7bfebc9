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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/kcmp.h>
#include <linux/seccomp.h>
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
  /* The warning names them: their pids, in the walk's (directory) order. */
  assert_int_equal(res.st.denied_pids, 2);
  assert_int_equal(res.st.denied_pid[0] + res.st.denied_pid[1], 480 + 482);
  assert_true(res.st.denied_pid[0] == 480 || res.st.denied_pid[0] == 482);
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

/* ---- owners hidden from <pid>/fd: task tables on fixture trees ----------- */

/* Which of the entries a and b readdir() of root gives first. */
static pid_t listed_first(const char *root, pid_t a, pid_t b) {
  DIR *d = opendir(root);
  struct dirent *e;
  pid_t first = 0;

  assert_non_null(d);
  while (!first && (e = readdir(d)))
    if (atoi(e->d_name) == a || atoi(e->d_name) == b)
      first = atoi(e->d_name);
  closedir(d);
  assert_true(first != 0);
  return first;
}

/* The owner (pid, fd) of socket sock, or NULL. */
static const struct po_owner *owner_at(const struct po_owners *o, pid_t pid,
                                       int fd, size_t sock) {
  for (size_t i = 0; i < o->len; i++)
    if (o->v[i].pid == pid && o->v[i].fd == fd && o->v[i].sock == sock)
      return &o->v[i];
  return NULL;
}

/* The owner of socket sock found in task tid's table of process pid. */
static const struct po_owner *owner_of_task(const struct po_owners *o,
                                            pid_t pid, pid_t tid, size_t sock) {
  for (size_t i = 0; i < o->len; i++)
    if (o->v[i].pid == pid && o->v[i].tid == tid && o->v[i].sock == sock)
      return &o->v[i];
  return NULL;
}

/*
 * A leader that called pthread_exit(): its <pid>/fd is empty (a zombie),
 * its threads keep the table. Two threads share it: it is read once, and
 * the owner is the process with the fd number and the first thread's tid.
 */
static void test_task_zombie_leader(void **state) {
  struct fx *f = *state;
  fx_proc(f->root, 600); /* the zombie leader: no fd */
  fx_task(f->root, 600, 600, 600);
  fx_task(f->root, 600, 601, 0);
  fx_task_sockfd(f->root, 600, 601, 0, 11009); /* not wanted */
  fx_task_sockfd(f->root, 600, 601, 5, 11000);
  fx_task(f->root, 600, 602, 601); /* shares 601's table */
  fx_proc(f->root, 610);
  fx_sockfd(f->root, 610, 3, 11001);
  FX_TABLE(t, FX_SOCK(11000), FX_SOCK(11001));

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 2);
  const struct po_owner *o = owner_at(&f->out, 600, 5, 0);
  assert_non_null(o);
  assert_int_equal(o->tid, 601);
  o = owner_at(&f->out, 610, 3, 1);
  assert_non_null(o);
  assert_int_equal(o->tid, 0);
  assert_true(f->st.looks == 1);
  assert_true(f->st.tasks == 2);  /* 601 and 602, the leader aside */
  assert_true(f->st.tables == 1); /* 602's is 601's */
  assert_true(f->st.tasks_skipped == 0);
  assert_true(f->st.procs == 2);
  assert_true(f->st.fds == 1 + 2); /* 610's, then 601's two */
}

/*
 * Threads that called unshare(CLONE_FILES): each has a copy of the table
 * (the leader's sockets too) and then opens its own. Only the socket that
 * no <pid>/fd holds is matched in them; a (pid, fd) found in two copies is
 * one owner, of the lowest tid.
 */
static void test_task_unshared_tables(void **state) {
  struct fx *f = *state;
  fx_proc(f->root, 620);
  fx_sockfd(f->root, 620, 3, 11100);
  fx_task(f->root, 620, 620, 620);
  fx_task(f->root, 620, 621, 620); /* the leader's table */
  fx_task(f->root, 620, 622, 0);
  fx_task_sockfd(f->root, 620, 622, 3, 11100); /* the copy */
  fx_task_sockfd(f->root, 620, 622, 4, 11101);
  fx_task(f->root, 620, 623, 0);
  fx_task_sockfd(f->root, 620, 623, 3, 11100);
  fx_task_sockfd(f->root, 620, 623, 4, 11101);
  fx_task_sockfd(f->root, 620, 623, 9, 11101);
  FX_TABLE(t, FX_SOCK(11100), FX_SOCK(11101), FX_SOCK(11102));

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 3);
  assert_int_equal(owners_of(&f->out, 0), 1);
  assert_int_equal(owner_at(&f->out, 620, 3, 0)->tid, 0);
  /* Two tables that hold 11101 on other fds: an owner each, with its fds
   * (623's fd 4 is 622's too, fd 9 is its own). */
  assert_int_equal(owners_of(&f->out, 1), 2);
  assert_int_equal(owner_at(&f->out, 620, 4, 1)->tid, 622);
  assert_non_null(owner_of_task(&f->out, 620, 622, 1));
  assert_int_equal(owner_of_task(&f->out, 620, 622, 1)->nfds, 1);
  const struct po_owner *o623 = owner_of_task(&f->out, 620, 623, 1);
  assert_non_null(o623);
  assert_int_equal(o623->nfds, 2);
  assert_int_equal(o623->fds[0], 4);
  assert_int_equal(o623->fds[1], 9);
  assert_int_equal(owners_of(&f->out, 2), 0); /* held by nobody */
  assert_true(f->st.looks == 1);
  assert_true(f->st.tasks == 3);
  assert_true(f->st.tables == 2);

  /* Remembered, both owners of 11101 are kept by the next reads, a full
   * walk (11102 is looked for again: interval 0) and an incremental one. */
  po_resolver_set_look_interval(f->r, 0);
  for (int call = 0; call < 3; call++) {
    memset(&f->st, 0, sizeof(f->st));
    f->out.len = 0;
    assert_int_equal(
        po_resolver_resolve(f->r, f->root, &t,
                            call == 1 ? PO_REASON_ASKED : PO_REASON_NONE,
                            &f->out, &f->st),
        0);
    assert_int_equal(f->st.kind,
                     call == 2 ? PO_WALK_INCREMENTAL : PO_WALK_FULL);
    assert_int_equal(f->out.len, 3);
    assert_int_equal(owner_at(&f->out, 620, 4, 1)->tid, 622);
    assert_non_null(owner_of_task(&f->out, 620, 623, 1));
    assert_int_equal(owner_of_task(&f->out, 620, 623, 1)->nfds, 2);
    assert_true(f->st.looks == 1); /* for 11102 */
    /* One readlink each (620 has no stat here: read in full every call,
     * its own fd 3 is not read again). */
    assert_true(f->st.verified == (call ? 2u : 0u));
  }
}

/*
 * Nothing more is read when every wanted socket has an owner, and a
 * process of one thread (st_nlink of <pid>/task 3) is not listed even when
 * a look is made.
 */
static void test_task_look_only_when_needed(void **state) {
  struct fx *f = *state;
  fx_proc(f->root, 630);
  fx_sockfd(f->root, 630, 3, 11200);
  fx_task(f->root, 630, 630, 0); /* would hold it, were it looked at */
  fx_task_sockfd(f->root, 630, 630, 7, 11201);
  fx_proc(f->root, 631);
  fx_task(f->root, 631, 631, 631);
  fx_task(f->root, 631, 632, 0);
  fx_task_sockfd(f->root, 631, 632, 8, 11201);
  FX_TABLE(owned, FX_SOCK(11200));

  assert_int_equal(walk(f, &owned), 0);
  assert_int_equal(f->out.len, 1);
  assert_true(f->st.looks == 0 && f->st.tasks == 0 && f->st.tables == 0);
  assert_true(f->st.fds == 1);

  /* Now 11201 has no owner in a <pid>/fd: 631's second task holds it;
   * 630, of one task, is not listed. */
  FX_TABLE(t, FX_SOCK(11200), FX_SOCK(11201));
  memset(&f->st, 0, sizeof(f->st));
  f->out.len = 0;
  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 2);
  assert_int_equal(owner_at(&f->out, 631, 8, 1)->tid, 632);
  assert_null(owner_at(&f->out, 630, 7, 1));
  assert_true(f->st.looks == 1 && f->st.tasks == 1 && f->st.tables == 1);
}

/* The process directory readdir() of root gives last. */
static pid_t listed_last(const char *root) {
  DIR *d = opendir(root);
  struct dirent *e;
  pid_t last = 0;

  assert_non_null(d);
  while ((e = readdir(d)))
    if (atoi(e->d_name) > 0)
      last = atoi(e->d_name);
  closedir(d);
  assert_true(last != 0);
  return last;
}

/*
 * A process of one thread costs a look one fstatat(): its tasks are not
 * listed. With a budget that the one process of two threads needs whole,
 * listed after 20 processes of one thread, its thread is still found.
 */
static void test_task_single_threads_cost_one_stat(void **state) {
  struct fx *f = *state;
  for (pid_t pid = 640; pid < 661; pid++)
    fx_proc(f->root, pid);
  pid_t two = listed_last(f->root);
  for (pid_t pid = 640; pid < 661; pid++)
    fx_task(f->root, pid, pid, pid);
  fx_task(f->root, two, 700, 0);
  fx_task_sockfd(f->root, two, 700, 3, 11250);
  FX_TABLE(t, FX_SOCK(11250));
  /* Its tasks listed (3), its fd directory stat'ed (1), task 700 stat'ed
   * (1), its fd directory opened (1) and its one fd read (1). */
  po_resolver_set_look_budget(f->r, 7);

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(owner_at(&f->out, two, 3, 0)->tid, 700);
  assert_true(f->st.tasks == 1 && f->st.tasks_skipped == 0);

  /* One call less: its fd is not read. */
  po_resolver_set_look_budget(f->r, 6);
  memset(&f->st, 0, sizeof(f->st));
  f->out.len = 0;
  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 0);
  assert_true(f->st.fds == 0);
}

/*
 * The budget of a look: a process of many threads, each with a table of
 * its own, spends it; the tasks left are counted, and the next look starts
 * after that process, so the thread of a later process is found then.
 */
static void test_task_look_budget(void **state) {
  struct fx *f = *state;
  enum { TASKS = 10 };
  /* A fixture tree lists in the file system's order (procfs lists by pid):
   * the process of many threads is the one listed first. */
  fx_proc(f->root, 800);
  fx_proc(f->root, 900);
  pid_t many = listed_first(f->root, 800, 900), one = many == 800 ? 900 : 800;
  fx_task(f->root, many, many, many);
  for (int i = 1; i <= TASKS; i++) {
    fx_task(f->root, many, many + i, 0);
    for (int fd = 0; fd < 3; fd++)
      fx_task_sockfd(f->root, many, many + i, fd, 20000 + (uint64_t)fd);
  }
  fx_task(f->root, one, one, one);
  fx_task(f->root, one, one + 1, 0);
  fx_task_sockfd(f->root, one, one + 1, 6, 11300);
  FX_TABLE(t, FX_SOCK(11300));
  /* Listing 800's tasks costs 3 (open, two getdents), the leader's fd
   * directory 1, each task 5 (a stat, an open, three fds): the fourth
   * task is stat'ed, not read. */
  po_resolver_set_look_budget(f->r, 20);

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 0);
  assert_true(f->st.looks == 1);
  assert_true(f->st.tables == 3);
  assert_true(f->st.tasks == 4);
  assert_true(f->st.tasks_skipped == TASKS - 4 + 1); /* one's task too */

  memset(&f->st, 0, sizeof(f->st));
  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(owner_at(&f->out, one, 6, 0)->tid, one + 1);
  assert_true(f->st.tables >= 1);

  /* The default budget reads everything. */
  po_resolver_set_look_budget(f->r, 0);
  memset(&f->st, 0, sizeof(f->st));
  f->out.len = 0;
  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 1);
  assert_true(f->st.tasks == TASKS + 1 && f->st.tasks_skipped == 0);
  assert_true(f->st.tables == TASKS + 1);
}

/* po_resolver_resolve() on the tree, with the look interval. */
static int resolve(struct fx *f, const struct po_table *t,
                   enum po_walk_reason why) {
  memset(&f->st, 0, sizeof(f->st));
  f->out.len = 0;
  return po_resolver_resolve(f->r, f->root, t, why, &f->out, &f->st);
}

/* ---- one owner per process and socket; new sockets' walks ---------------- */

/* A process of the tree with a start time (<pid>/stat field 22): the
 * identity that lets an incremental call skip it. */
static void proc_started(struct fx *f, pid_t pid, unsigned start) {
  char rel[32], stat[160];
  int n;

  fx_proc(f->root, pid);
  snprintf(rel, sizeof(rel), "%d/stat", (int)pid);
  n = snprintf(stat, sizeof(stat),
               "%d (holder) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %u 0 0\n",
               (int)pid, start);
  fx_write(f->root, rel, stat, (size_t)n);
}

/* The owner of sock that process pid is, or NULL. */
static const struct po_owner *owner_of(const struct po_owners *o, pid_t pid,
                                       size_t sock) {
  return owner_of_task(o, pid, 0, sock);
}

/*
 * A process that dup()s a socket 100 times is one owner with 101 fds (the
 * 16 lowest kept), not 101 owners; an incremental call checks one fd per
 * owner, and the next remembered fd when that one is closed.
 */
static void test_dup_flood_one_owner(void **state) {
  struct fx *f = *state;
  enum { DUPS = 100 };
  proc_started(f, 700, 11);
  fx_fd(f->root, 700, 0, "/dev/null");
  for (int fd = 3; fd < 3 + DUPS + 1; fd++)
    fx_sockfd(f->root, 700, fd, 12000);
  fx_sockfd(f->root, 700, 200, 12001);
  proc_started(f, 701, 12);
  fx_sockfd(f->root, 701, 5, 12000);
  FX_TABLE(t, FX_SOCK(12000), FX_SOCK(12001));

  assert_int_equal(walk(f, &t), 0);
  assert_int_equal(f->out.len, 3);
  const struct po_owner *o = owner_of(&f->out, 700, 0);
  assert_non_null(o);
  assert_int_equal(o->nfds, DUPS + 1);
  assert_int_equal(o->fd, 3);
  for (int i = 0; i < PO_OWNER_FDS; i++)
    assert_int_equal(o->fds[i], 3 + i);
  assert_int_equal(owner_of(&f->out, 700, 1)->nfds, 1);
  assert_int_equal(owner_of(&f->out, 700, 1)->fd, 200);
  assert_int_equal(owner_of(&f->out, 701, 0)->nfds, 1);
  assert_true(f->st.fds == DUPS + 4); /* every fd is still read */

  /* Incremental: one readlink per owner, 3, whatever the fds. */
  assert_int_equal(resolve(f, &t, PO_REASON_NONE), 0);
  assert_int_equal(f->st.kind, PO_WALK_FULL); /* the first */
  assert_int_equal(resolve(f, &t, PO_REASON_NONE), 0);
  assert_int_equal(f->st.kind, PO_WALK_INCREMENTAL);
  assert_true(f->st.verified == 3 && f->st.fds == 3);
  assert_int_equal(f->out.len, 3);
  assert_int_equal(owner_of(&f->out, 700, 0)->nfds, DUPS + 1);
  assert_int_equal(owner_of(&f->out, 700, 0)->fds[15], 18);

  /* fd 3 closed, fd 4 holds it: still incremental, one readlink more. */
  fx_remove(f->root, "700/fd/3");
  assert_int_equal(resolve(f, &t, PO_REASON_NONE), 0);
  assert_int_equal(f->st.kind, PO_WALK_INCREMENTAL);
  assert_true(f->st.verified == 4);
  o = owner_of(&f->out, 700, 0);
  assert_int_equal(o->fd, 4);
  assert_int_equal(o->nfds, DUPS);
  assert_int_equal(o->fds[0], 4);

  /* A full walk counts them again. */
  assert_int_equal(resolve(f, &t, PO_REASON_ASKED), 0);
  assert_int_equal(f->st.kind, PO_WALK_FULL);
  o = owner_of(&f->out, 700, 0);
  assert_int_equal(o->nfds, DUPS);
  assert_int_equal(o->fds[PO_OWNER_FDS - 1], 4 + PO_OWNER_FDS - 1);

  /* All of its fds closed but one not remembered: a full walk (VERIFY). */
  for (int fd = 4; fd < 4 + PO_OWNER_FDS; fd++)
    fx_remove(f->root, "700/fd/%d", fd);
  assert_int_equal(resolve(f, &t, PO_REASON_NONE), 0);
  assert_int_equal(f->st.kind, PO_WALK_FULL);
  assert_int_equal(f->st.reason, PO_REASON_VERIFY);
  o = owner_of(&f->out, 700, 0);
  assert_int_equal(o->fd, 4 + PO_OWNER_FDS);
  assert_int_equal(o->nfds, DUPS - PO_OWNER_FDS);
}

/* How many of calls resolve() calls with table t were full walks. */
static int full_walks(struct fx *f, const struct po_table *t, int calls) {
  int n = 0;
  for (int i = 0; i < calls; i++) {
    assert_int_equal(resolve(f, t, PO_REASON_NONE), 0);
    n += f->st.kind == PO_WALK_FULL;
  }
  return n;
}

/*
 * Full walks for new sockets are rate-limited: the first is made, the
 * next waits for the interval. Meanwhile a new socket has the owners among
 * new processes, counts as deferred and does not make the call walk for a
 * socket without owner; the next walk allowed finds its other owners.
 */
static void test_new_socket_walks_limited(void **state) {
  struct fx *f = *state;
  proc_started(f, 800, 21);
  fx_sockfd(f->root, 800, 3, 13000);
  FX_TABLE(t1, FX_SOCK(13000));
  FX_TABLE(t2, FX_SOCK(13000), FX_SOCK(13001));
  FX_TABLE(t3, FX_SOCK(13000), FX_SOCK(13001), FX_SOCK(13002), FX_SOCK(13003));
  FX_TABLE(none, FX_SOCK(0));

  po_resolver_set_new_walk_interval(f->r, UINT64_MAX); /* the first only */
  assert_int_equal(resolve(f, &t1, PO_REASON_NONE), 0);
  assert_int_equal(f->st.reason, PO_REASON_FIRST);

  /* The first new socket: a full walk at once. */
  fx_sockfd(f->root, 800, 4, 13001);
  assert_int_equal(resolve(f, &t2, PO_REASON_NONE), 0);
  assert_int_equal(f->st.kind, PO_WALK_FULL);
  assert_int_equal(f->st.reason, PO_REASON_NEW_INODE);
  assert_non_null(owner_of(&f->out, 800, 1));

  /* Two more: 13002 held by 800 (read before) and by 801 (new), 13003 by
   * 800 only. Incremental: 801's owner is found, 800's are not yet. */
  fx_sockfd(f->root, 800, 5, 13002);
  fx_sockfd(f->root, 800, 6, 13003);
  proc_started(f, 801, 22);
  fx_sockfd(f->root, 801, 3, 13002);
  for (int call = 0; call < 3; call++) {
    assert_int_equal(resolve(f, &t3, PO_REASON_NONE), 0);
    assert_int_equal(f->st.kind, PO_WALK_INCREMENTAL);
    assert_true(f->st.deferred == 2);
    assert_true(f->st.looks == 0); /* pending: no look either */
    assert_int_equal(owners_of(&f->out, 2), 1);
    assert_non_null(owner_of(&f->out, 801, 2));
    assert_int_equal(owners_of(&f->out, 3), 0);
    /* Both are pending: their owners are not all known (the snapshot marks
     * them, so that owner conditions wait); the old socket is not. */
    assert_int_equal(po_resolver_pending(f->r, 13002), 1);
    assert_int_equal(po_resolver_pending(f->r, 13003), 1);
    assert_int_equal(po_resolver_pending(f->r, 13001), 0);
  }

  /* A listener that comes and goes costs no walk now, nor does a call
   * with no socket in between. */
  assert_int_equal(full_walks(f, &t1, 1) + full_walks(f, &none, 1) +
                       full_walks(f, &t3, 1) + full_walks(f, &t1, 1),
                   0);

  /* The interval passes (0 here): the next call walks, and finds all. */
  po_resolver_set_new_walk_interval(f->r, 0);
  assert_int_equal(resolve(f, &t3, PO_REASON_NONE), 0);
  assert_int_equal(f->st.kind, PO_WALK_FULL);
  assert_int_equal(f->st.reason, PO_REASON_NEW_INODE);
  assert_true(f->st.deferred == 0);
  assert_int_equal(po_resolver_pending(f->r, 13002), 0);
  assert_int_equal(owners_of(&f->out, 2), 2);
  assert_non_null(owner_of(&f->out, 800, 2));
  assert_non_null(owner_of(&f->out, 800, 3));
  assert_int_equal(resolve(f, &t3, PO_REASON_NONE), 0);
  assert_int_equal(f->st.kind, PO_WALK_INCREMENTAL);
  assert_true(f->st.deferred == 0);
  assert_int_equal(f->out.len, 5);

  /* Any full walk resolves a pending socket: asked, here. */
  po_resolver_set_new_walk_interval(f->r, UINT64_MAX);
  FX_TABLE(t4, FX_SOCK(13000), FX_SOCK(13004));
  fx_sockfd(f->root, 800, 7, 13004);
  assert_int_equal(resolve(f, &t4, PO_REASON_NONE), 0);
  assert_true(f->st.kind == PO_WALK_INCREMENTAL && f->st.deferred == 1);
  assert_int_equal(resolve(f, &t4, PO_REASON_ASKED), 0);
  assert_true(f->st.kind == PO_WALK_FULL && f->st.deferred == 0);
  assert_non_null(owner_of(&f->out, 800, 1));
  assert_int_equal(resolve(f, &t4, PO_REASON_NONE), 0);
  assert_true(f->st.kind == PO_WALK_INCREMENTAL && f->st.deferred == 0);
  assert_non_null(owner_of(&f->out, 800, 1));
}

/*
 * A socket without an owner is looked for at most once per look interval;
 * an owner found in a task is kept by one readlink a read, on incremental
 * reads and full walks alike, while its fd holds the socket, and dropped
 * when it does not.
 */
static void test_task_look_interval(void **state) {
  struct fx *f = *state;
  fx_proc(f->root, 700);
  fx_task(f->root, 700, 700, 700);
  fx_task(f->root, 700, 701, 0);
  fx_task_sockfd(f->root, 700, 701, 3, 12000);
  fx_proc(f->root, 710);
  fx_fd(f->root, 710, 0, "/dev/null");
  FX_TABLE(t, FX_SOCK(12000), FX_SOCK(12001));
  po_resolver_set_look_interval(f->r, 3600 * UINT64_C(1000000000));

  /* The first read looks, and finds 12000 in 701's table. */
  assert_int_equal(resolve(f, &t, PO_REASON_NONE), 0);
  assert_int_equal(f->st.kind, PO_WALK_FULL);
  assert_true(f->st.looks == 1);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(owner_at(&f->out, 700, 3, 0)->tid, 701);

  /* An incremental read keeps it with one readlink; 12001, looked for a
   * moment ago, is not looked for again. */
  assert_int_equal(resolve(f, &t, PO_REASON_NONE), 0);
  assert_int_equal(f->st.kind, PO_WALK_INCREMENTAL);
  assert_true(f->st.looks == 0);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(owner_at(&f->out, 700, 3, 0)->tid, 701);

  /* 12001 arrives in 701's table: not seen before the interval... */
  fx_task_sockfd(f->root, 700, 701, 4, 12001);
  assert_int_equal(resolve(f, &t, PO_REASON_NONE), 0);
  assert_true(f->st.looks == 0);
  assert_int_equal(owners_of(&f->out, 1), 0);
  /* ... nor by a full walk, which keeps the owner found before. */
  assert_int_equal(resolve(f, &t, PO_REASON_ASKED), 0);
  assert_int_equal(f->st.kind, PO_WALK_FULL);
  assert_true(f->st.looks == 0);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(owner_at(&f->out, 700, 3, 0)->tid, 701);

  /* Interval 0: a look on every read that leaves a socket unowned. */
  po_resolver_set_look_interval(f->r, 0);
  assert_int_equal(resolve(f, &t, PO_REASON_NONE), 0);
  assert_true(f->st.looks == 1);
  assert_int_equal(f->out.len, 2);
  assert_int_equal(owner_at(&f->out, 700, 4, 1)->tid, 701);
  assert_int_equal(resolve(f, &t, PO_REASON_NONE), 0);
  assert_int_equal(f->st.kind, PO_WALK_INCREMENTAL);
  assert_true(f->st.looks == 0); /* both owned */
  assert_int_equal(f->out.len, 2);

  /* 701 closes fd 3: dropped; a socket that had an owner and has none is
   * a full walk, and (interval an hour again) no look. */
  po_resolver_set_look_interval(f->r, 3600 * UINT64_C(1000000000));
  fx_remove(f->root, "700/task/701/fd/3");
  assert_int_equal(resolve(f, &t, PO_REASON_NONE), 0);
  assert_int_equal(f->st.kind, PO_WALK_FULL);
  assert_int_equal(f->st.reason, PO_REASON_UNOWNED);
  assert_true(f->st.looks == 0);
  assert_int_equal(owners_of(&f->out, 0), 0);
  assert_int_equal(owners_of(&f->out, 1), 1);

  /* Forgetting forgets the looks' times too. */
  po_resolver_forget(f->r);
  assert_int_equal(resolve(f, &t, PO_REASON_NONE), 0);
  assert_true(f->st.looks == 1);
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

/* ---- owners hidden from <pid>/fd: real threads --------------------------- */

/* What the thread of a hidden_child() reports. */
struct hidden_info {
  int rc; /* 0, or -errno of the step that failed */
  int tid;
  int fd;
  uint64_t inode;
};

struct hidden_arg {
  int report, hold, unshare;
};

/* Opens a loopback listener (after unshare(CLONE_FILES) when asked),
 * reports it, and holds it until hold reaches EOF; then ends the process. */
static void *hidden_thread(void *p) {
  const struct hidden_arg *a = p;
  struct hidden_info info = {.tid = (int)syscall(SYS_gettid), .fd = -1};
  struct sockaddr_in sin = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct stat sb;
  char c;

  if (a->unshare && unshare(CLONE_FILES) != 0)
    info.rc = -errno;
  if (info.rc == 0) {
    info.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (info.fd < 0 || bind(info.fd, (struct sockaddr *)&sin, sizeof(sin)) ||
        listen(info.fd, 4) || fstat(info.fd, &sb))
      info.rc = -errno;
    else
      info.inode = (uint64_t)sb.st_ino;
  }
  if (write(a->report, &info, sizeof(info)) != (ssize_t)sizeof(info))
    _exit(1);
  (void)read(a->hold, &c, 1);
  _exit(0);
}

/*
 * A child process whose second thread holds a listener hidden from
 * /proc/PID/fd: after unshare(CLONE_FILES) (unshare), or in the table that
 * the leader left behind when it called pthread_exit() (leader_exits: the
 * leader is a zombie when this returns). *hold is the pipe end whose close
 * ends the child. Returns its pid, and fills *info.
 */
static pid_t hidden_child(int unshare_files, int leader_exits,
                          struct hidden_info *info, int *hold) {
  static struct hidden_arg arg; /* outlives the leader's stack */
  int rep[2], hp[2];

  assert_int_equal(pipe(rep), 0);
  assert_int_equal(pipe(hp), 0);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    pthread_t th;
    char c;
    close(rep[0]);
    close(hp[1]);
    arg = (struct hidden_arg){rep[1], hp[0], unshare_files};
    if (pthread_create(&th, NULL, hidden_thread, &arg) != 0)
      _exit(1);
    if (leader_exits)
      pthread_exit(NULL);
    (void)read(hp[0], &c, 1);
    _exit(0);
  }
  close(rep[1]);
  close(hp[0]);
  ssize_t n = read(rep[0], info, sizeof(*info));
  close(rep[0]);
  *hold = hp[1];
  if (n != (ssize_t)sizeof(*info) || info->rc != 0) {
    close(*hold);
    waitpid(child, NULL, 0);
    fail_msg("hidden_child: %s",
             n != (ssize_t)sizeof(*info) ? "no report" : strerror(-info->rc));
  }
  if (leader_exits) {
    /* Until the leader is a zombie (state Z, field 3 of stat). */
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)child);
    for (int i = 0; i < 2000; i++) {
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      ssize_t len = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
      if (fd >= 0)
        close(fd);
      buf[len > 0 ? len : 0] = '\0';
      char *p = strrchr(buf, ')');
      if (p && p[1] == ' ' && p[2] == 'Z')
        break;
      usleep(5000);
    }
  }
  return child;
}

static void hidden_end(pid_t child, int hold) {
  int status;
  close(hold);
  kill(child, SIGKILL);
  assert_int_equal(waitpid(child, &status, 0), child);
}

/* 1 when /proc/<pid>/fd/<fd> is socket:[inode]. */
static int leader_holds(pid_t pid, int fd, uint64_t inode) {
  char path[64], link[64], want[64];
  snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
  snprintf(want, sizeof(want), "socket:[%" PRIu64 "]", inode);
  ssize_t n = readlink(path, link, sizeof(link) - 1);
  if (n < 0)
    return 0;
  link[n] = '\0';
  return strcmp(link, want) == 0;
}

/* The walk, then two po_resolver_resolve() calls (a full walk with a look,
 * then an incremental read that keeps the owner with one readlink), each
 * finding exactly (pid, fd, tid) for inode. */
static void assert_hidden_found(struct fx *f, pid_t pid,
                                const struct hidden_info *info) {
  FX_TABLE(t, FX_SOCK(info->inode));

  int rc = po_resolver_walk(f->r, "/proc", &t, &f->out, &f->st);
  assert_int_equal(rc, 0);
  assert_int_equal(f->out.len, 1);
  assert_int_equal(f->out.v[0].pid, pid);
  assert_int_equal(f->out.v[0].fd, info->fd);
  assert_int_equal(f->out.v[0].tid, info->tid);
  assert_true(f->st.looks == 1 && f->st.tables >= 1);

  for (int call = 0; call < 2; call++) {
    memset(&f->st, 0, sizeof(f->st));
    f->out.len = 0;
    rc =
        po_resolver_resolve(f->r, "/proc", &t, PO_REASON_NONE, &f->out, &f->st);
    assert_int_equal(rc, 0);
    assert_int_equal(f->st.kind, call ? PO_WALK_INCREMENTAL : PO_WALK_FULL);
    assert_true(f->st.looks == (call ? 0u : 1u));
    assert_int_equal(f->out.len, 1);
    assert_int_equal(f->out.v[0].pid, pid);
    assert_int_equal(f->out.v[0].fd, info->fd);
    assert_int_equal(f->out.v[0].tid, info->tid);
  }
}

/* A leader that called pthread_exit(): a zombie with an empty
 * /proc/PID/fd, while its thread holds the listener. */
static void test_live_zombie_leader(void **state) {
  struct fx *f = *state;
  struct hidden_info info;
  int hold;
  pid_t child = hidden_child(0, 1, &info, &hold);

  int in_leader = leader_holds(child, info.fd, info.inode);
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/task/%d/fd", (int)child, info.tid);
  int in_task = access(path, F_OK) == 0;
  assert_false(in_leader); /* what hides it from ss and a plain walk */
  assert_true(in_task);
  assert_hidden_found(f, child, &info);
  hidden_end(child, hold);
}

/* A thread that called unshare(CLONE_FILES), then opened a listener: the
 * leader, alive, has no such fd. */
static void test_live_unshared_thread(void **state) {
  struct fx *f = *state;
  struct hidden_info info;
  int hold;
  pid_t child = hidden_child(1, 0, &info, &hold);

  assert_false(leader_holds(child, info.fd, info.inode));
  assert_hidden_found(f, child, &info);
  hidden_end(child, hold);
}

/* What a walk under a seccomp filter that refuses kcmp(2) saw. */
struct nokcmp_result {
  int filtered; /* the filter is in place: kcmp gives EPERM */
  int rc[2];
  size_t n[2];
  struct po_owner o[2];
  struct po_walk_stats st[2];
};

/*
 * Without kcmp(2) (a seccomp filter, a kernel without CONFIG_KCMP) the
 * tables cannot be told apart: only the zombie leader's thread is read,
 * and the unshared thread is counted as skipped, not found.
 */
static void test_live_without_kcmp(void **state) {
  struct fx *f = *state;
  struct hidden_info zi, ui;
  int zhold, uhold;
  pid_t zombie = hidden_child(0, 1, &zi, &zhold);
  pid_t unshared = hidden_child(1, 0, &ui, &uhold);

  int pfd[2];
  assert_int_equal(pipe(pfd), 0);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    struct nokcmp_result res = {0};
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_kcmp, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {
        .len = (unsigned short)(sizeof(filter) / sizeof(filter[0])),
        .filter = filter};
    close(pfd[0]);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0)
      res.filtered =
          syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILES, 0, 0) < 0 &&
          errno == EPERM;
    const uint64_t inode[2] = {zi.inode, ui.inode};
    for (int i = 0; i < 2 && res.filtered; i++) {
      struct po_owners out = {0};
      FX_TABLE(t, FX_SOCK(inode[i]));
      res.rc[i] = po_resolver_walk(f->r, "/proc", &t, &out, &res.st[i]);
      res.n[i] = out.len;
      if (out.len)
        res.o[i] = out.v[0];
      po_owners_free(&out);
    }
    ssize_t w = write(pfd[1], &res, sizeof(res));
    _exit(w == (ssize_t)sizeof(res) ? 0 : 1);
  }
  close(pfd[1]);
  struct nokcmp_result res;
  ssize_t n = read(pfd[0], &res, sizeof(res));
  close(pfd[0]);
  int status;
  assert_int_equal(waitpid(child, &status, 0), child);
  hidden_end(zombie, zhold);
  hidden_end(unshared, uhold);

  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(n, sizeof(res));
  if (!res.filtered)
    fail_msg("could not install a seccomp filter refusing kcmp");
  assert_int_equal(res.rc[0], 0);
  assert_int_equal(res.n[0], 1);
  assert_int_equal(res.o[0].pid, zombie);
  assert_int_equal(res.o[0].fd, zi.fd);
  assert_int_equal(res.o[0].tid, zi.tid);
  assert_int_equal(res.rc[1], 0);
  assert_int_equal(res.n[1], 0);
  assert_true(res.st[1].looks == 1);
  assert_true(res.st[1].tasks_skipped >= 1); /* the unshared thread */
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
      cmocka_unit_test_setup_teardown(test_task_zombie_leader, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_unshared_tables, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_task_look_only_when_needed, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_task_single_threads_cost_one_stat,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_look_budget, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_look_interval, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dup_flood_one_owner, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_new_socket_walks_limited, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_live_forked_holders, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_live_not_dumpable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_live_zombie_leader, setup, teardown),
      cmocka_unit_test_setup_teardown(test_live_unshared_thread, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_live_without_kcmp, setup, teardown),
      cmocka_unit_test_setup_teardown(test_proc_fixture, setup, teardown),
      cmocka_unit_test_setup_teardown(test_proc_unknown_uid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_proc_missing_parts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_proc_gone, setup, teardown),
      cmocka_unit_test(test_proc_live_self),
      cmocka_unit_test(test_proc_live_child),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
