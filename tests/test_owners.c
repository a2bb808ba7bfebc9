/*
 * Unit tests: who an owner is (issue 10): the program is the exe, never the
 * comm; ExpectProcess names, paths (the file, by device and inode) and
 * regexes (the exe path); the exit window (exe gone, the same process
 * keeps what was known of it); OwnerChangeHits, handovers and restarts
 * (NotifyRestart); a new unexpected owner while the FAILURE stands; the
 * uid of a socket with no owner; the messages' owners summary. Snapshots
 * are built by hand (fx_snap_*, fixture.h); process details come from a
 * fake ProcRoot (po_proc_read), files are real files in a temp directory.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "portowner/proc.h"
#include "portowner/snapshot.h"
#include "portowner/watch.h"
#include "fixture.h"

/* Owners are written {pid, comm, exe, uid, user[, start[, exe_file]]}. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* ---- helpers ------------------------------------------------------------- */

static struct po_watch *mkwatch(const char *name) {
  struct po_watch *w = po_watch_new(name);

  assert_non_null(w);
  assert_int_equal(po_watch_port_add_string(w, "80", NULL), 0);
  return w;
}

static void finish(struct po_watch *w) {
  assert_int_equal(po_watch_finish(w), 0);
}

/* One owner of a snapshot: what a test says of it. */
struct own {
  pid_t pid;
  const char *comm;
  const char *exe; /* NULL: unreadable */
  uint32_t uid;
  const char *user;
  uint64_t start;       /* 0: unknown */
  const char *exe_file; /* the file stat(/proc/PID/exe) gives; NULL: none */
};

/* The process of pid in s. */
static struct po_proc *proc_of(struct po_snapshot *s, pid_t pid) {
  for (size_t i = 0; i < s->nprocs; i++)
    if (s->procs[i].pid == pid)
      return &s->procs[i];
  fail_msg("no process %d", (int)pid);
  return NULL;
}

/* One tcp 0.0.0.0:80 socket (inode inode, uid 0) held by the n owners of
 * o (none: no owner found); inode 0: none at all. */
static void snap(struct po_snapshot *s, uint64_t inode, const struct own *o,
                 size_t n) {
  size_t k;

  memset(s, 0, sizeof(*s));
  if (!inode)
    return;
  k = fx_snap_sock(s, IPPROTO_TCP, "0.0.0.0", 80);
  s->socks.v[k].inode = inode;
  for (size_t i = 0; i < n; i++) {
    struct po_proc *p;

    fx_snap_own(s, k, o[i].pid, o[i].comm, o[i].exe, o[i].uid, o[i].user);
    p = proc_of(s, o[i].pid);
    p->start = o[i].start;
    if (o[i].exe_file) {
      struct stat st;

      assert_int_equal(stat(o[i].exe_file, &st), 0);
      p->exe_id = 1;
      p->exe_dev = (uint64_t)st.st_dev;
      p->exe_ino = (uint64_t)st.st_ino;
    }
  }
  fx_snap_finish(s);
}

/* Evaluates one read (inode 0: no socket); returns the events' count. */
static size_t read_once(struct po_watch *w, uint64_t inode, const struct own *o,
                        size_t n, struct po_events *ev) {
  struct po_snapshot s;
  struct po_watch_values v;

  snap(&s, inode, o, n);
  po_events_clear(ev);
  assert_int_equal(po_watch_eval(w, &s, FX_NETNS, &v, ev), 0);
  po_snapshot_free(&s);
  return ev->len;
}

#define READ(w, inode, ev, ...)                                                \
  read_once(w, inode, (const struct own[]){__VA_ARGS__},                       \
            sizeof((const struct own[]){__VA_ARGS__}) / sizeof(struct own),    \
            ev)

/* Event i is of type t and, unless msg is NULL, says exactly msg. */
static const struct po_event *expect(const struct po_events *ev, size_t i,
                                     enum po_event_type t, const char *msg) {
  assert_true(i < ev->len);
  assert_int_equal(ev->v[i].type, t);
  assert_true(strlen(ev->v[i].message) < PO_MESSAGE_MAX);
  if (msg)
    assert_string_equal(ev->v[i].message, msg);
  return &ev->v[i];
}

/* A temp directory with a regular file "real", a symlink "link" to it and
 * "copy", a copy of its bytes. */
struct files {
  char dir[PATH_MAX];
  char real[PATH_MAX + 8];
  char link[PATH_MAX + 8];
  char copy[PATH_MAX + 8];
};

static void files_make(struct files *f) {
  fx_root_make(f->dir, sizeof(f->dir), NULL, "owners");
  fx_write(f->dir, "real", "#!\n", 3);
  fx_write(f->dir, "copy", "#!\n", 3);
  fx_symlink(f->dir, "real", "link");
  snprintf(f->real, sizeof(f->real), "%s/real", f->dir);
  snprintf(f->link, sizeof(f->link), "%s/link", f->dir);
  snprintf(f->copy, sizeof(f->copy), "%s/copy", f->dir);
}

#define NGINX(pid)                                                             \
  { pid, "nginx", "/usr/sbin/nginx", 0, "root", 0, NULL }

/* ---- process details: start time, exe identity, a zombie leader ---------- */

/* A known start time is reused only on procfs and for the same process
 * directory; files in a fixture tree are read only when regular, never
 * blocking on a FIFO (issue 11). */
static void test_proc_read_known_and_nonblocking(void **state) {
  char root[PATH_MAX], path[PATH_MAX];
  struct po_proc p, known;

  (void)state;
  assert_int_equal(po_proc_root_is_procfs("/proc"), 1);
  assert_int_equal(
      po_proc_read_ex("/proc", getpid(), 0, PO_PROC_PROCFS, NULL, &known), 0);
  assert_true(known.dir_ino != 0);
  assert_true(known.start != 0);
  assert_true(known.user[0] != '\0');
  /* The same directory: stat is not read again (a start time no process
   * has proves it came from known). */
  known.start = 42;
  assert_int_equal(
      po_proc_read_ex("/proc", getpid(), 0, PO_PROC_PROCFS, &known, &p), 0);
  assert_int_equal(p.start, 42);
  po_proc_release(&p);
  /* Another directory (a later process of this pid): read again. */
  known.dir_ino++;
  assert_int_equal(
      po_proc_read_ex("/proc", getpid(), 0, PO_PROC_PROCFS, &known, &p), 0);
  assert_true(p.start != 42 && p.start != 0);
  po_proc_release(&p);
  known.dir_ino--;
  /* Another pid's known details are never taken. */
  known.pid = getpid() + 1;
  assert_int_equal(
      po_proc_read_ex("/proc", getpid(), 0, PO_PROC_PROCFS, &known, &p), 0);
  assert_true(p.start != 42);
  po_proc_release(&p);
  po_proc_release(&known);
  /* PO_PROC_NO_USER leaves the name to the caller. */
  assert_int_equal(po_proc_read_ex("/proc", getpid(), 0,
                                   PO_PROC_PROCFS | PO_PROC_NO_USER, NULL, &p),
                   0);
  assert_string_equal(p.user, "");
  po_proc_user_name(p.uid, p.user, sizeof(p.user));
  assert_true(p.user[0] != '\0');
  po_proc_release(&p);

  /* A fixture tree is not procfs: known is ignored, whatever it says. */
  fx_root_make(root, sizeof(root), NULL, "proc");
  fx_proc(root, 700);
  fx_proc_details(root, 700, "srv", 33, 123456789);
  assert_int_equal(po_proc_root_is_procfs(root), 0);
  assert_int_equal(po_proc_read_ex(root, 700, 0, 0, NULL, &known), 0);
  assert_int_equal(known.dir_ino, 0);
  known.start = 42;
  assert_int_equal(po_proc_read_ex(root, 700, 0, 0, &known, &p), 0);
  assert_int_equal(p.start, 123456789);
  po_proc_release(&p);
  po_proc_release(&known);

  /* FIFOs for comm, status and stat: the read returns at once, with what
   * could not be read left empty (the process is there: not gone). A FIFO
   * as /proc/net/tcp is refused. */
  fx_remove(root, "700/comm");
  fx_remove(root, "700/status");
  fx_remove(root, "700/stat");
  fx_path(root, path, sizeof(path), "700/comm");
  assert_int_equal(mkfifo(path, 0600), 0);
  fx_path(root, path, sizeof(path), "700/status");
  assert_int_equal(mkfifo(path, 0600), 0);
  fx_path(root, path, sizeof(path), "700/stat");
  assert_int_equal(mkfifo(path, 0600), 0);
  assert_int_equal(po_proc_read(root, 700, &p), 0);
  assert_string_equal(p.comm, "");
  assert_int_equal(p.uid, PO_UID_UNKNOWN);
  assert_int_equal(p.start, 0);
  po_proc_release(&p);
  fx_mkdir(root, "net");
  fx_path(root, path, sizeof(path), "net/tcp");
  assert_int_equal(mkfifo(path, 0600), 0);
  {
    struct po_table t = {0};
    uint64_t malformed = 0;

    fx_path(root, path, sizeof(path), "net");
    assert_int_equal(po_table_read_proc(&t, path, PO_TCP4, 0, &malformed),
                     -EINVAL);
    assert_int_equal(t.len, 0);
    po_table_free(&t);
  }
  assert_int_equal(fx_root_remove(root), 0);
}

static void test_proc_read_identity(void **state) {
  struct files f;
  char root[PATH_MAX];
  struct po_proc p;
  struct stat st;

  (void)state;
  files_make(&f);
  fx_root_make(root, sizeof(root), NULL, "proc");
  fx_proc(root, 700);
  /* comm "a) b" in stat: the fields after it start after the last ')'. */
  fx_proc_details(root, 700, "srv", 33, 123456789);
  fx_symlink(root, f.link, "700/exe");
  assert_int_equal(po_proc_read(root, 700, &p), 0);
  assert_string_equal(p.comm, "srv");
  assert_int_equal(p.start, 123456789);
  assert_string_equal(p.exe, f.link); /* the link's text... */
  assert_int_equal(stat(f.real, &st), 0);
  assert_int_equal(p.exe_id, 1); /* ...and the file it is */
  assert_int_equal(p.exe_dev, (uint64_t)st.st_dev);
  assert_int_equal(p.exe_ino, (uint64_t)st.st_ino);
  po_proc_release(&p);

  /* The exit window: exe gone, comm and stat still read. */
  fx_remove(root, "700/exe");
  assert_int_equal(po_proc_read(root, 700, &p), 0);
  assert_null(p.exe);
  assert_int_equal(p.exe_id, 0);
  assert_int_equal(p.start, 123456789);
  po_proc_release(&p);

  /* A zombie leader (no exe) whose task 701 runs the program: read from
   * the task when the snapshot says the owner is in that task's table. */
  fx_task(root, 700, 701, 0);
  fx_symlink(root, f.real, "700/task/701/exe");
  assert_int_equal(po_proc_read_task(root, 700, 701, &p), 0);
  assert_string_equal(p.exe, f.real);
  assert_int_equal(p.exe_id, 1);
  assert_int_equal(p.exe_ino, (uint64_t)st.st_ino);
  po_proc_release(&p);
  assert_int_equal(po_proc_read_task(root, 700, 0, &p), 0);
  assert_null(p.exe);
  po_proc_release(&p);

  /* A stat line that does not parse: start unknown, nothing else lost. */
  fx_write(root, "700/stat", "700 (srv) S 1 2", 15);
  assert_int_equal(po_proc_read(root, 700, &p), 0);
  assert_int_equal(p.start, 0);
  assert_string_equal(p.comm, "srv");
  po_proc_release(&p);
  assert_int_equal(fx_root_remove(root), 0);
  assert_int_equal(fx_root_remove(f.dir), 0);
}

/* ---- identities ---------------------------------------------------------- */

/* A root process that calls itself sshd but runs python3.11. */
static void test_comm_spoofing(void **state) {
  struct po_watch *w = mkwatch("ssh");
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(po_watch_expect_process_add(w, "sshd", NULL, 0), 0);
  finish(w);
  assert_int_equal(
      READ(w, 10, &ev, {4640, "sshd", "/usr/bin/python3.11", 65534, "nobody"}),
      1);
  expect(&ev, 0, PO_EVENT_UNEXPECTED_OWNER,
         "tcp/80 (ssh) is held by an unexpected owner: sshd[4640] nobody "
         "(exe python3.11)");
  /* The real sshd passes, whatever it calls itself. */
  assert_int_equal(
      READ(w, 10, &ev, {4700, "sshd: listener", "/usr/sbin/sshd", 0, "root"}),
      1);
  expect(&ev, 0, PO_EVENT_EXPECTED_OWNER,
         "tcp/80 (ssh) is held by expected owners again: sshd: "
         "listener[4700] root (exe sshd)");
  po_events_free(&ev);
  po_watch_free(w);
}

/* A name only matches the basename; a comm cut by the kernel at 15 bytes is
 * not "another name" than its program. */
static void test_name_and_comm_cut(void **state) {
  struct po_watch *w = mkwatch("dns");
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(po_watch_expect_process_add(w, "systemd-resolved", NULL, 0),
                   0);
  assert_int_equal(po_watch_expect_user_add(w, "root"), 0);
  finish(w);
  assert_int_equal(READ(w, 10, &ev,
                        {9, "systemd-resolve", "/lib/systemd/systemd-resolved",
                         101, "systemd-resolve"}),
                   1);
  expect(&ev, 0, PO_EVENT_UNEXPECTED_OWNER,
         "tcp/80 (dns) is held by an unexpected owner: systemd-resolve[9] "
         "systemd-resolve");
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_path_through_symlink(void **state) {
  struct files f;
  struct po_watch *w, *cp;
  struct po_events ev = {0};
  char err[256];

  (void)state;
  files_make(&f);
  w = mkwatch("redis");
  cp = mkwatch("copy");
  /* The path as configured is a symlink: it names the file it leads to. */
  assert_int_equal(po_watch_expect_process_add(w, f.link, NULL, 0), 0);
  assert_int_equal(po_watch_expect_process_add(cp, f.copy, NULL, 0), 0);
  finish(w);
  finish(cp);
  {
    const struct own real = {5, "redis-server", f.real, 0, "root", 1, f.real};

    assert_int_equal(read_once(w, 10, &real, 1, &ev), 0);
    /* The same bytes at another path are another file. */
    assert_int_equal(read_once(cp, 10, &real, 1, &ev), 1);
    expect(&ev, 0, PO_EVENT_UNEXPECTED_OWNER, NULL);
  }
  {
    /* A mount namespace that shows the configured path for another file:
     * the file decides, not the text. */
    const struct own fake = {6, "redis-server", f.link, 0, "root", 1, f.copy};

    assert_int_equal(read_once(w, 10, &fake, 1, &ev), 1);
    expect(&ev, 0, PO_EVENT_UNEXPECTED_OWNER, NULL);
  }
  /* A path that does not exist is a config error that says why. */
  {
    char missing[PATH_MAX + 16];

    snprintf(missing, sizeof(missing), "%s/missing", f.dir);
    assert_int_equal(po_watch_expect_process_add(w, missing, err, sizeof(err)),
                     -ENOENT);
    assert_string_equal(err, "cannot stat the path: No such file or directory");
  }
  po_watch_free(w);
  po_watch_free(cp);

  /* The file is replaced (an upgrade: rename over it) while the old one
   * runs: both the old file and the new one pass. */
  w = mkwatch("upgrade");
  assert_int_equal(po_watch_expect_process_add(w, f.real, NULL, 0), 0);
  finish(w);
  {
    char old[PATH_MAX + 16], tmp[PATH_MAX + 16];
    const struct own o = {7, "srv", f.real, 0, "root", 1, f.real};

    snprintf(old, sizeof(old), "%s/old", f.dir);
    snprintf(tmp, sizeof(tmp), "%s/new", f.dir);
    assert_int_equal(read_once(w, 10, &o, 1, &ev), 0);
    assert_int_equal(link(f.real, old), 0); /* keeps the old file */
    fx_write(f.dir, "new", "#!\n\n", 4);
    assert_int_equal(rename(tmp, f.real), 0);
    assert_int_equal(read_once(w, 10, &o, 1, &ev), 0); /* the new one */
    {
      const struct own was = {7, "srv", f.real, 0, "root", 1, old};

      assert_int_equal(read_once(w, 10, &was, 1, &ev), 0);
    }
  }
  po_events_free(&ev);
  po_watch_free(w);
  assert_int_equal(fx_root_remove(f.dir), 0);
}

static void test_regex_on_exe_path(void **state) {
  struct po_watch *w = mkwatch("app");
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(po_watch_expect_process_add(
                       w, "/^\\/opt\\/app\\/bin\\/[a-z]+$/", NULL, 0),
                   0);
  finish(w);
  assert_int_equal(READ(w, 10, &ev, {1, "web", "/opt/app/bin/web", 0, "root"}),
                   0);
  /* The whole path: the same basename elsewhere does not match. */
  assert_int_equal(
      READ(w, 10, &ev, {2, "web", "/tmp/opt/app/bin/web", 0, "root"}), 1);
  expect(&ev, 0, PO_EVENT_UNEXPECTED_OWNER,
         "tcp/80 (app) is held by an unexpected owner: web[2] root");
  /* A comm that looks like the path counts for nothing. */
  assert_int_equal(
      READ(w, 10, &ev, {3, "/opt/app/bin/x", "/usr/bin/nc", 0, "root"}), 1);
  expect(&ev, 0, PO_EVENT_UNEXPECTED_OWNER,
         "tcp/80 (app) is held by an unexpected owner: /opt/app/bin/x[3] root "
         "(exe nc)");
  po_events_free(&ev);
  po_watch_free(w);
}

/* An owner whose exe is unknown is judged by its user only, and says so. */
static void test_exe_unknown_judged_by_user(void **state) {
  struct po_watch *w = mkwatch("svc");
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(po_watch_expect_process_add(w, "nginx", NULL, 0), 0);
  assert_int_equal(po_watch_expect_user_add(w, "root"), 0);
  finish(w);
  /* Passes by user, whatever its comm (the program cannot be told). */
  assert_int_equal(READ(w, 10, &ev, {1, "nc", NULL, 0, "root"}), 0);
  assert_int_equal(READ(w, 10, &ev, {2, "nginx", NULL, 65534, "nobody"}), 1);
  expect(&ev, 0, PO_EVENT_UNEXPECTED_OWNER,
         "tcp/80 (svc) is held by an unexpected owner: nginx[2] nobody (exe "
         "unknown)");
  po_events_free(&ev);
  po_watch_free(w);
}

/* ---- the exit window ----------------------------------------------------- */

static void test_exit_window(void **state) {
  struct files f;
  struct po_watch *w;
  struct po_events ev = {0};

  (void)state;
  files_make(&f);
  w = mkwatch("heap");
  assert_int_equal(po_watch_expect_process_add(w, f.real, NULL, 0), 0);
  finish(w);
  {
    const struct own alive = {10, "bigheap", f.real, 0, "root", 777, f.real};
    /* Exiting: comm, status and stat read, exe does not. */
    const struct own exiting = {10, "bigheap", NULL, 0, "root", 777, NULL};

    assert_int_equal(read_once(w, 10, &alive, 1, &ev), 0);
    for (int i = 0; i < 4; i++) /* no WARNING, no unexpected owner */
      assert_int_equal(read_once(w, 10, &exiting, 1, &ev), 0);
    assert_int_equal(read_once(w, 0, NULL, 0, &ev), 1);
    expect(&ev, 0, PO_EVENT_LISTENER_LOST,
           "tcp/80 (heap) lost its listener; last held by bigheap[10] root "
           "(exe real)");
  }
  po_watch_free(w);

  /* Another process with the same pid (another start time) is not the one
   * that was known: nothing of it is kept, its program is unknown. */
  w = mkwatch("reuse");
  finish(w);
  {
    const struct own alive = {10, "bigheap", f.real, 0, "root", 777, f.real};
    const struct own other = {10, "bigheap", NULL, 0, "root", 999, NULL};

    assert_int_equal(read_once(w, 10, &alive, 1, &ev), 0);
    assert_int_equal(read_once(w, 10, &other, 1, &ev), 0);
    assert_int_equal(read_once(w, 10, &other, 1, &ev), 0);
    assert_int_equal(read_once(w, 0, NULL, 0, &ev), 1);
    expect(&ev, 0, PO_EVENT_LISTENER_LOST,
           "tcp/80 (reuse) lost its listener; last held by bigheap[10] root");
  }
  po_events_free(&ev);
  po_watch_free(w);
  assert_int_equal(fx_root_remove(f.dir), 0);
}

/* An owner with an unknown program is never compared by its comm. */
static void test_unknown_program_not_compared(void **state) {
  struct po_watch *w = mkwatch("web");
  struct po_events ev = {0};

  (void)state;
  po_watch_set_notify_restart(w, 1);
  finish(w);
  assert_int_equal(READ(w, 10, &ev, NGINX(1)), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(READ(w, 10, &ev, {2, "python3", NULL, 0, "root", 5}), 0);
  /* Known again and the same: nothing either. */
  assert_int_equal(READ(w, 10, &ev, NGINX(1)), 0);
  po_events_free(&ev);
  po_watch_free(w);
}

/* ---- owner change: OwnerChangeHits, handover, restart -------------------- */

static void test_owner_change_hits(void **state) {
  struct po_watch *w = mkwatch("web");
  struct po_events ev = {0};
#define APACHE(pid) {pid, "apache2", "/usr/sbin/apache2", 33, "www-data", 0}
#define HAPROXY(pid)                                                           \
  { pid, "haproxy", "/usr/sbin/haproxy", 0, "root", 0 }

  (void)state;
  assert_int_equal(po_watch_set_owner_change_hits(w, 0), -EINVAL);
  assert_int_equal(po_watch_set_owner_change_hits(w, PO_HITS_MAX + 1), -EINVAL);
  finish(w);
  /* Default 2: one read of another set is nothing, two are a WARNING. */
  assert_int_equal(READ(w, 10, &ev, NGINX(1)), 0);
  assert_int_equal(READ(w, 10, &ev, APACHE(2)), 0);
  assert_int_equal(READ(w, 10, &ev, NGINX(1)), 0); /* back: nothing */
  assert_int_equal(READ(w, 10, &ev, APACHE(2)), 0);
  assert_int_equal(READ(w, 10, &ev, HAPROXY(3)), 0); /* not the same set */
  assert_int_equal(READ(w, 10, &ev, HAPROXY(3)), 1);
  expect(&ev, 0, PO_EVENT_OWNER_CHANGED,
         "tcp/80 (web) changed owner: nginx[1] root -> haproxy[3] root");
  assert_int_equal(READ(w, 10, &ev, HAPROXY(3)), 0);
  po_watch_free(w);

  /* OwnerChangeHits 3 and 1. */
  w = mkwatch("web3");
  assert_int_equal(po_watch_set_owner_change_hits(w, 3), 0);
  finish(w);
  assert_int_equal(READ(w, 10, &ev, NGINX(1)), 0);
  assert_int_equal(READ(w, 10, &ev, APACHE(2)), 0);
  assert_int_equal(READ(w, 10, &ev, APACHE(2)), 0);
  assert_int_equal(READ(w, 10, &ev, APACHE(2)), 1);
  expect(&ev, 0, PO_EVENT_OWNER_CHANGED, NULL);
  po_watch_free(w);
  w = mkwatch("web1");
  assert_int_equal(po_watch_set_owner_change_hits(w, 1), 0);
  finish(w);
  assert_int_equal(READ(w, 10, &ev, NGINX(1)), 0);
  assert_int_equal(READ(w, 10, &ev, APACHE(2)), 1);
  expect(&ev, 0, PO_EVENT_OWNER_CHANGED,
         "tcp/80 (web1) changed owner: nginx[1] root -> apache2[2] www-data");
  po_events_free(&ev);
  po_watch_free(w);
}

/* apache's graceful restart: the root parent alone for one read. */
static void test_graceful_restart(void **state) {
  struct po_watch *w = mkwatch("apache");
  struct po_events ev = {0};
#define PARENT {100, "apache2", "/usr/sbin/apache2", 0, "root", 0}

  (void)state;
  finish(w);
  assert_int_equal(READ(w, 10, &ev, PARENT, APACHE(101), APACHE(102)), 0);
  assert_int_equal(READ(w, 10, &ev, PARENT), 0);
  assert_int_equal(READ(w, 10, &ev, PARENT, APACHE(201), APACHE(202)), 0);
  assert_int_equal(READ(w, 10, &ev, PARENT, APACHE(201), APACHE(202)), 0);
  po_events_free(&ev);
  po_watch_free(w);
}

/* haproxy's reload: the same socket inodes, other pids. */
static void test_handover(void **state) {
  struct po_watch *w = mkwatch("lb");
  struct po_events ev = {0};

  (void)state;
  po_watch_set_notify_restart(w, 1);
  finish(w);
  assert_int_equal(READ(w, 10, &ev, HAPROXY(1)), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(READ(w, 10, &ev, HAPROXY(2)), 0);
  /* Both for a read, then the new one alone. */
  assert_int_equal(READ(w, 10, &ev, HAPROXY(2), HAPROXY(3)), 0);
  assert_int_equal(READ(w, 10, &ev, HAPROXY(3)), 0);
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_restart(void **state) {
  struct po_watch *quiet = mkwatch("quiet"), *loud = mkwatch("web");
  struct po_events ev = {0};
  const struct po_event *e;

  (void)state;
  po_watch_set_notify_restart(loud, 1);
  assert_int_equal(po_watch_set_hits(quiet, 3), 0);
  assert_int_equal(po_watch_set_hits(loud, 3), 0);
  finish(quiet);
  finish(loud);
  /* Between two reads: a new socket, a new pid. */
  assert_int_equal(READ(quiet, 10, &ev, NGINX(1311)), 0);
  assert_int_equal(READ(quiet, 11, &ev, NGINX(2000)), 0);
  assert_int_equal(READ(quiet, 11, &ev, NGINX(2000)), 0);
  assert_int_equal(READ(loud, 10, &ev, NGINX(1311)), 0);
  assert_int_equal(READ(loud, 11, &ev, NGINX(2000)), 1);
  e = expect(&ev, 0, PO_EVENT_RESTARTED,
             "tcp/80 (web) restarted: nginx[1311] root -> nginx[2000] root");
  assert_int_equal(e->severity, PO_SEVERITY_WARNING);
  assert_string_equal(po_event_type_name(e->type), "restarted");
  assert_string_equal(po_event_condition(e->type), "restart");
  assert_non_null(e->previous_owners);
  assert_int_equal(READ(loud, 11, &ev, NGINX(2000)), 0); /* once */

  /* Unmet for fewer than Hits reads, then back with a new socket. */
  assert_int_equal(read_once(quiet, 0, NULL, 0, &ev), 0);
  assert_int_equal(READ(quiet, 12, &ev, NGINX(3000)), 0);
  assert_int_equal(read_once(loud, 0, NULL, 0, &ev), 0);
  assert_int_equal(read_once(loud, 0, NULL, 0, &ev), 0);
  assert_int_equal(READ(loud, 12, &ev, NGINX(3000)), 1);
  expect(&ev, 0, PO_EVENT_RESTARTED,
         "tcp/80 (web) restarted: nginx[2000] root -> nginx[3000] root");

  /* A new socket while an old pid stays (a reload that re-opened it): not a
   * restart. */
  assert_int_equal(READ(loud, 13, &ev, NGINX(3000), NGINX(3001)), 0);
  /* Unmet for Hits reads: a lost listener and its return, no restart. */
  for (int i = 0; i < 2; i++)
    assert_int_equal(read_once(loud, 0, NULL, 0, &ev), 0);
  assert_int_equal(read_once(loud, 0, NULL, 0, &ev), 1);
  expect(&ev, 0, PO_EVENT_LISTENER_LOST, NULL);
  assert_int_equal(READ(loud, 14, &ev, NGINX(4000)), 1);
  expect(&ev, 0, PO_EVENT_LISTENER_BACK, NULL);
  po_events_free(&ev);
  po_watch_free(quiet);
  po_watch_free(loud);
}

/* ---- unexpected owners --------------------------------------------------- */

static void test_unexpected_replaced_by_unexpected(void **state) {
  struct po_watch *w = mkwatch("svc");
  struct po_events ev = {0};
#define NOBODY(pid) {pid, "svc", "/usr/bin/svc", 65534, "nobody", 0}
#define DAEMON(pid)                                                            \
  { pid, "svc", "/usr/bin/svc", 1, "daemon", 0 }

  (void)state;
  assert_int_equal(po_watch_expect_user_add(w, "root"), 0);
  po_watch_set_notify_owner_change(w, 0);
  finish(w);
  assert_int_equal(READ(w, 10, &ev, NOBODY(5)), 1);
  expect(&ev, 0, PO_EVENT_UNEXPECTED_OWNER,
         "tcp/80 (svc) is held by an unexpected owner: svc[5] nobody");
  assert_int_equal(READ(w, 10, &ev, NOBODY(5)), 0);
  assert_int_equal(READ(w, 11, &ev, DAEMON(6)), 1);
  expect(&ev, 0, PO_EVENT_UNEXPECTED_OWNER,
         "tcp/80 (svc) is held by an unexpected owner: svc[6] daemon");
  /* Both, then the first alone: named before, nothing new. */
  assert_int_equal(READ(w, 11, &ev, NOBODY(5), DAEMON(6)), 0);
  assert_int_equal(READ(w, 11, &ev, NOBODY(5)), 0);
  /* One new among named ones: only the new one is named. */
  assert_int_equal(READ(w, 11, &ev, NOBODY(5), DAEMON(7)), 1);
  expect(&ev, 0, PO_EVENT_UNEXPECTED_OWNER,
         "tcp/80 (svc) is held by an unexpected owner: svc[7] daemon");
  assert_int_equal(READ(w, 12, &ev, {8, "svc", "/usr/bin/svc", 0, "root"}), 1);
  expect(&ev, 0, PO_EVENT_EXPECTED_OWNER, NULL);
  /* After the OKAY, a name is new again. */
  assert_int_equal(READ(w, 12, &ev, NOBODY(5)), 1);
  expect(&ev, 0, PO_EVENT_UNEXPECTED_OWNER, NULL);
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_unowned_socket_judged_by_uid(void **state) {
  struct po_watch *w = mkwatch("orphan"), *any = mkwatch("any");
  struct po_events ev = {0};
  struct po_snapshot s;
  struct po_watch_values v;

  (void)state;
  assert_int_equal(po_watch_expect_user_add(w, "root"), 0);
  assert_int_equal(po_watch_expect_process_add(any, "sshd", NULL, 0), 0);
  finish(w);
  finish(any);
  snap(&s, 10, NULL, 0);
  s.socks.v[0].uid = 65534;
  assert_int_equal(po_watch_eval(w, &s, FX_NETNS, &v, &ev), 0);
  assert_int_equal(v.unowned, 1);
  assert_int_equal(ev.len, 1);
  expect(&ev, 0, PO_EVENT_UNEXPECTED_OWNER,
         "tcp/80 (orphan) is held by an unexpected owner: uid 65534 (no "
         "owner found)");
  assert_int_equal(ev.v[0].owners_total, 0);
  /* Without ExpectUser the uid is not judged. */
  po_events_clear(&ev);
  assert_int_equal(po_watch_eval(any, &s, FX_NETNS, &v, &ev), 0);
  assert_int_equal(ev.len, 0);
  /* A root socket: expected again. */
  s.socks.v[0].uid = 0;
  po_events_clear(&ev);
  assert_int_equal(po_watch_eval(w, &s, FX_NETNS, &v, &ev), 0);
  assert_int_equal(ev.len, 1);
  expect(&ev, 0, PO_EVENT_EXPECTED_OWNER,
         "tcp/80 (orphan) is held by expected owners again: no owner found");
  po_snapshot_free(&s);
  po_events_free(&ev);
  po_watch_free(w);
  po_watch_free(any);
}

/* ---- messages: every program and user before the pids ---------------------
 */

static void test_message_summary(void **state) {
  struct po_watch *w = mkwatch("web");
  struct po_events ev = {0};
#define WWW(pid) {pid, "apache2", "/usr/sbin/apache2", 33, "www-data", 0}

  (void)state;
  finish(w);
  assert_int_equal(READ(w, 10, &ev,
                        {12564, "apache2", "/usr/sbin/apache2", 0, "root"},
                        WWW(12570), WWW(12571), WWW(12572), WWW(12573),
                        WWW(12574), WWW(12575), WWW(12576), WWW(12577)),
                   0);
  assert_int_equal(read_once(w, 0, NULL, 0, &ev), 1);
  expect(&ev, 0, PO_EVENT_LISTENER_LOST,
         "tcp/80 (web) lost its listener; last held by apache2 root (1), "
         "apache2 www-data (8): apache2[12564] root, apache2[12570] "
         "www-data, apache2[12571] www-data, apache2[12572] www-data, "
         "apache2[12573] www-data, apache2[12574] www-data, ...");
  po_events_free(&ev);
  po_watch_free(w);

  /* When they fit, the owners alone, as before. */
  w = mkwatch("two");
  finish(w);
  assert_int_equal(READ(w, 10, &ev, WWW(1), WWW(2)), 0);
  assert_int_equal(read_once(w, 0, NULL, 0, &ev), 1);
  expect(&ev, 0, PO_EVENT_LISTENER_LOST,
         "tcp/80 (two) lost its listener; last held by apache2[1] www-data, "
         "apache2[2] www-data");
  po_events_free(&ev);
  po_watch_free(w);
}

/* A socket whose owners are not all known (its full walk put off: only its
 * new processes were read) does not count as an owner change or an
 * unexpected owner; the next read with its owners known is judged. */
static void test_pending_owners_wait(void **state) {
  struct po_watch *w = mkwatch("pend");
  struct po_events ev = {0};
  struct po_snapshot s;
  struct po_watch_values v;
  const struct own master = {1, "nginx", "/usr/sbin/nginx", 0, "root", 0};
  const struct own worker = {5, "nginx", "/usr/sbin/nginx", 33, "www-data", 0};

  (void)state;
  assert_int_equal(po_watch_expect_user_add(w, "root"), 0);
  assert_int_equal(po_watch_expect_user_add(w, "www-data"), 0);
  finish(w);
  assert_int_equal(READ(w, 10, &ev, master, worker), 0);
  /* A new socket: the new worker found, the master not yet, 5 reads. */
  for (int r = 0; r < 5; r++) {
    snap(&s, 11, &worker, 1);
    s.socks.v[0].owner_pending = 1;
    po_events_clear(&ev);
    assert_int_equal(po_watch_eval(w, &s, FX_NETNS, &v, &ev), 0);
    po_snapshot_free(&s);
    assert_int_equal(v.pending, 1);
    assert_int_equal(ev.len, 0);
  }
  /* Known again: the same owners, nothing. */
  assert_int_equal(READ(w, 11, &ev, master, worker), 0);
  assert_int_equal(READ(w, 11, &ev, master, worker), 0);
  /* The same 3 reads without the mark: the owner change is seen. */
  assert_int_equal(READ(w, 12, &ev, worker), 0);
  assert_int_equal(READ(w, 12, &ev, worker), 1);
  expect(&ev, 0, PO_EVENT_OWNER_CHANGED, NULL);
  po_events_free(&ev);
  po_watch_free(w);
}

/* The names of the processes a warning lists: pid and printable comm, an
 * unreadable one as "?", the ones beyond the list counted, a cut with
 * "..." at a character boundary. */
static void test_proc_name_list(void **state) {
  char root[PATH_MAX], buf[256];
  const pid_t pids[] = {1, 57, 99};

  (void)state;
  fx_root_make(root, sizeof(root), NULL, "names");
  fx_proc(root, 1);
  fx_proc_details(root, 1, "init", 0, 1);
  fx_proc(root, 57);
  fx_proc_details(root, 57, "a\x1b[2J\xc3\xa9", 0, 2); /* ESC: '?' */
  /* 99: no such process. */
  po_proc_name_list(root, pids, 3, 3, buf, sizeof(buf));
  assert_string_equal(buf, "1 (init), 57 (a?[2J\xc3\xa9), 99 (?)");
  po_proc_name_list(root, pids, 1, 12, buf, sizeof(buf));
  assert_string_equal(buf, "1 (init), and 11 more");
  po_proc_name_list(root, pids, 0, 4, buf, sizeof(buf));
  assert_string_equal(buf, "and 4 more");
  /* Cut: "1 (init), 57 (a?[2J" + the 2-byte e-acute does not fit in 22. */
  po_proc_name_list(root, pids, 3, 3, buf, 22);
  assert_true(strlen(buf) < 22);
  assert_int_equal(strcmp(buf + strlen(buf) - 3, "..."), 0);
  assert_int_equal(strncmp(buf, "1 (init), 57 (a?[2J", strlen(buf) - 3), 0);
  assert_int_equal(fx_root_remove(root), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_proc_read_identity),
      cmocka_unit_test(test_proc_name_list),
      cmocka_unit_test(test_comm_spoofing),
      cmocka_unit_test(test_name_and_comm_cut),
      cmocka_unit_test(test_path_through_symlink),
      cmocka_unit_test(test_regex_on_exe_path),
      cmocka_unit_test(test_exe_unknown_judged_by_user),
      cmocka_unit_test(test_exit_window),
      cmocka_unit_test(test_unknown_program_not_compared),
      cmocka_unit_test(test_owner_change_hits),
      cmocka_unit_test(test_graceful_restart),
      cmocka_unit_test(test_handover),
      cmocka_unit_test(test_restart),
      cmocka_unit_test(test_unexpected_replaced_by_unexpected),
      cmocka_unit_test(test_unowned_socket_judged_by_uid),
      cmocka_unit_test(test_message_summary),
      cmocka_unit_test(test_proc_read_known_and_nonblocking),
      cmocka_unit_test(test_pending_owners_wait),
  };

  fx_set_failure(fx_fail_cmocka);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
