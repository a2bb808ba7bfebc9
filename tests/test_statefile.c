/*
 * Unit tests: a StateFile nobody can forge or crash (issue 11). The path
 * helpers of fileio (po_path_dir, po_dir_open with and without openat2,
 * po_trusted, po_tmp_create); a load that refuses a file or directory
 * someone else could have written, a file nested deeper than our format
 * (before any JSON tree is built) or larger than our save can write; a save
 * whose temporary names cannot be taken in advance, whose file stays small
 * whatever the processes are, and that is paced but never late for a
 * standing FAILURE; and the owners a standing unexpected-owner FAILURE
 * named, kept across a restart.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "portowner/fileio.h"
#include "portowner/snapshot.h"
#include "portowner/statefile.h"
#include "portowner/watch.h"
#include "fixture.h"

static char tmpdir[64];

static int setup_dir(void **state) {
  (void)state;
  fx_set_failure(fx_fail_cmocka);
  fx_root_make(tmpdir, sizeof(tmpdir), NULL, "statefile");
  return 0;
}

static int teardown_dir(void **state) {
  (void)state;
  return fx_root_remove(tmpdir) == 0 ? 0 : -1;
}

static void in_tmp(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *text, size_t len,
                       mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

  assert_true(fd >= 0);
  assert_int_equal(po_write_all(fd, text, len), 0);
  assert_int_equal(fchmod(fd, mode), 0);
  assert_int_equal(close(fd), 0);
}

static char *slurp(const char *path, size_t *len) {
  char *buf;

  assert_int_equal(po_file_read_text(path, 64u << 20, &buf), 0);
  if (len)
    *len = strlen(buf);
  return buf;
}

/* A set of one watch "web" on tcp port 80 (one requirement, tcp/80),
 * ExpectUser user when not NULL. */
static struct po_watchset *web_set(const char *user) {
  struct po_watchset *set = po_watchset_new();
  struct po_watch *w = po_watch_new("web");

  assert_non_null(set);
  assert_non_null(w);
  assert_int_equal(po_watch_port_add_string(w, "80", NULL), 0);
  if (user)
    assert_int_equal(po_watch_expect_user_add(w, user), 0);
  assert_int_equal(po_watch_finish(w), 0);
  assert_int_equal(po_watchset_add(set, w), 0);
  return set;
}

/* One read of set: tcp 0.0.0.0:80 held by n processes pid, pid + 1, ...
 * (none: no listener), all with comm, exe, uid and user. Returns the
 * number of events. */
static size_t eval_owners(struct po_watchset *set, pid_t pid, size_t n,
                          const char *comm, const char *exe, uint32_t uid,
                          const char *user, struct po_events *ev) {
  struct po_snapshot s = {0};
  struct po_watch_values v;

  if (n)
    fx_snap_crowd(&s, 80, pid, n, comm, exe, uid, user);
  else
    fx_snap_finish(&s);
  po_events_clear(ev);
  assert_int_equal(po_watchset_eval(set, &s, FX_NETNS, &v, ev), 0);
  po_snapshot_free(&s);
  return ev->len;
}

/* The entries of tmpdir (but "." and ".."). */
static size_t dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  size_t n = 0;

  assert_non_null(d);
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
      n++;
  closedir(d);
  return n;
}

/* ---- fileio ---------------------------------------------------------------
 */

static void expect_dir(const char *path, const char *dir, const char *base) {
  const char *b;
  char *d;

  assert_int_equal(po_path_dir(path, &d, &b), 0);
  assert_string_equal(d, dir);
  assert_string_equal(b, base);
  free(d);
}

static void test_path_dir(void **state) {
  const char *b;
  char *d;

  (void)state;
  expect_dir("state.json", ".", "state.json");
  expect_dir("/state.json", "/", "state.json");
  expect_dir("/var/lib/collectd/portowner.json", "/var/lib/collectd",
             "portowner.json");
  expect_dir("a//b", "a/", "b");
  assert_int_equal(po_path_dir("/var/lib/", &d, &b), -EISDIR);
  assert_null(d);
  assert_int_equal(po_path_dir("", &d, &b), -EINVAL);
}

/* Both ways refuse a symlink in any component, and open the same
 * directory otherwise. */
static void test_dir_open_no_symlink(void **state) {
  int (*open_fn[])(const char *) = {po_dir_open, po_dir_open_walk};
  char real[128], sub[128], link[128], via[128], rel[128];
  struct stat want, got;

  (void)state;
  in_tmp(real, sizeof(real), "real");
  in_tmp(sub, sizeof(sub), "real/sub");
  in_tmp(link, sizeof(link), "link");
  in_tmp(via, sizeof(via), "link/sub");
  assert_int_equal(mkdir(real, 0700), 0);
  assert_int_equal(mkdir(sub, 0700), 0);
  assert_int_equal(symlink(real, link), 0);
  assert_int_equal(stat(sub, &want), 0);
  snprintf(rel, sizeof(rel), "%s/./real//sub/", tmpdir);
  for (size_t i = 0; i < 2; i++) {
    int fd = open_fn[i](sub);

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &got), 0);
    assert_true(got.st_ino == want.st_ino && got.st_dev == want.st_dev);
    close(fd);
    fd = open_fn[i](rel);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(open_fn[i](link), -ELOOP);
    assert_int_equal(open_fn[i](via), -ELOOP);
    assert_int_equal(open_fn[i]("/nonexistent-po-dir/x"), -ENOENT);
  }
  unlink(link);
  rmdir(sub);
  rmdir(real);
}

static void test_trusted(void **state) {
  struct stat sb = {.st_uid = geteuid(), .st_mode = S_IFREG | 0600};
  struct po_untrusted why = {0};

  (void)state;
  assert_int_equal(po_trusted(&sb, 0, &why), 0);
  sb.st_mode = S_IFREG | 0644; /* readable by others: fine */
  assert_int_equal(po_trusted(&sb, 0, &why), 0);
  sb.st_mode = S_IFREG | 0620;
  assert_int_equal(po_trusted(&sb, 0, &why), -EPERM);
  assert_int_equal(why.is_dir, 0);
  assert_int_equal(why.mode, 0620);
  sb.st_mode = S_IFDIR | 01777; /* /tmp: anyone may swap the file */
  assert_int_equal(po_trusted(&sb, 1, &why), -EPERM);
  assert_int_equal(why.is_dir, 1);
  assert_int_equal(why.mode, 01777);
  sb.st_uid = geteuid() + 1;
  sb.st_mode = S_IFREG | 0600;
  assert_int_equal(po_trusted(&sb, 0, &why), -EPERM);
  assert_int_equal(why.uid, geteuid() + 1);
  /* A directory of root's (/var/lib/collectd, 0755) is trusted by any
   * daemon user; a file of root's is not, but for root. */
  sb.st_uid = 0;
  sb.st_mode = S_IFDIR | 0755;
  assert_int_equal(po_trusted(&sb, 1, NULL), 0);
  sb.st_mode = S_IFREG | 0600;
  assert_int_equal(po_trusted(&sb, 0, NULL), geteuid() == 0 ? 0 : -EPERM);
}

/* ---- load: forged, deep, large ------------------------------------------ */

/* A forged file (a standing unexpected-owner FAILURE, already sent) in a
 * place someone else could have written: not trusted, a fresh start, and
 * the FAILURE comes at the first read. */
static void test_untrusted_file_refused(void **state) {
  char dir[128], path[128], text[1024];
  struct po_untrusted why = {0};
  struct po_watchset *set;
  struct po_events ev = {0};
  int n;

  (void)state;
  in_tmp(dir, sizeof(dir), "forged");
  in_tmp(path, sizeof(path), "forged/state.json");
  assert_int_equal(mkdir(dir, 0700), 0);
  n = snprintf(text, sizeof(text),
               "{\"version\": 2, \"boot_id\": \"b\", \"watches\": [{\"name\": "
               "\"web\", \"spec\": \"tcp 80 *\", \"all_namespaces\": false, "
               "\"unexpected_failure\": true, \"owners\": [], "
               "\"requirements\": [{\"name\": \"tcp/80\", \"started\": true, "
               "\"ever_up\": true, \"empty_reads\": 0, \"listener_failure\": "
               "false, \"owners\": []}]}]}");
  write_file(path, text, (size_t)n, 0600);
  /* Trusted, it silences the FAILURE (what the forger wants). */
  set = web_set("root");
  assert_int_equal(po_state_load_checked(set, path, "b", &why), 0);
  assert_int_equal(
      eval_owners(set, 500, 1, "evil", "/tmp/evil", 65534, "nobody", &ev), 0);
  po_watchset_free(set);

  /* Group-writable file: refused, named with its mode. */
  assert_int_equal(chmod(path, 0660), 0);
  set = web_set("root");
  assert_int_equal(po_state_load_checked(set, path, "b", &why), -EPERM);
  assert_int_equal(why.is_dir, 0);
  assert_int_equal(why.mode, 0660);
  assert_int_equal(why.uid, geteuid());
  assert_int_equal(
      eval_owners(set, 500, 1, "evil", "/tmp/evil", 65534, "nobody", &ev), 1);
  assert_int_equal(ev.v[0].type, PO_EVENT_UNEXPECTED_OWNER);
  po_watchset_free(set);

  /* A directory others may write to: refused, both ways. */
  assert_int_equal(chmod(path, 0600), 0);
  assert_int_equal(chmod(dir, 0777), 0);
  set = web_set("root");
  assert_int_equal(po_state_load_checked(set, path, "b", &why), -EPERM);
  assert_int_equal(why.is_dir, 1);
  assert_int_equal(why.mode, 0777);
  assert_int_equal(
      eval_owners(set, 500, 1, "evil", "/tmp/evil", 65534, "nobody", &ev), 1);
  memset(&why, 0, sizeof(why));
  assert_int_equal(po_state_save_paced(set, path, "b", 0, 0, &why), -EPERM);
  assert_int_equal(why.is_dir, 1);
  po_watchset_free(set);
  assert_int_equal(chmod(dir, 0700), 0);

  /* Another user's file (root only: chown). */
  if (geteuid() == 0) {
    assert_int_equal(chown(path, 65534, 65534), 0);
    set = web_set("root");
    assert_int_equal(po_state_load_checked(set, path, "b", &why), -EPERM);
    assert_int_equal(why.is_dir, 0);
    assert_int_equal(why.uid, 65534);
    po_watchset_free(set);
  }
  po_events_free(&ev);
  unlink(path);
  rmdir(dir);
}

/* A good state file with key = value added to the exe object ({"hex": ...})
 * of its last owner, a requirement's: the deepest place of our format
 * (level 8). */
static char *with_exe_key(const char *good, const char *kv) {
  const char *at = NULL;
  size_t n = strlen(good) + strlen(kv) + 4, head;
  char *out = malloc(n);

  for (const char *p = good; (p = strstr(p, "\"hex\"")); p++)
    at = p;
  assert_non_null(at);
  assert_non_null(out);
  head = (size_t)(at - good);
  snprintf(out, n, "%.*s%s, %s", (int)head, good, kv, at);
  return out;
}

/* Nesting deeper than 8 is refused before yajl builds a tree: a key our
 * loader ignores loads at level 8 but not with one more level; a comment
 * (which yajl accepts) cannot hide a quote from the scan; a large deep
 * file is refused for its size first. */
static void test_depth_and_size_limits(void **state) {
  static const char exe[] = "/usr/sbin/\x01nginx";
  char path[128], *good, *bad;
  struct po_watchset *set = web_set(NULL);
  struct po_events ev = {0};
  size_t n;

  (void)state;
  in_tmp(path, sizeof(path), "deep.json");
  eval_owners(set, 100, 1, "nginx", exe, 0, "root", &ev);
  assert_int_equal(po_state_save(set, path, "b"), 1);
  po_watchset_free(set);
  good = slurp(path, NULL);
  assert_non_null(strstr(good, "\"hex\"")); /* a control byte: in hex */

  bad = with_exe_key(good, "\"x\": 1");
  write_file(path, bad, strlen(bad), 0600);
  set = web_set(NULL);
  assert_int_equal(po_state_load(set, path, "b"), 0);
  po_watchset_free(set);
  free(bad);

  bad = with_exe_key(good, "\"x\": [1]");
  write_file(path, bad, strlen(bad), 0600);
  set = web_set(NULL);
  assert_int_equal(po_state_load(set, path, "b"), -EBADMSG);
  po_watchset_free(set);
  free(bad);

  bad = with_exe_key(good, "\"x\": \"[[[[[\\\"{{{{\"");
  write_file(path, bad, strlen(bad), 0600); /* brackets in a string */
  set = web_set(NULL);
  assert_int_equal(po_state_load(set, path, "b"), 0);
  po_watchset_free(set);
  free(bad);

  bad = with_exe_key(good, "/* \" */ \"x\": 1");
  write_file(path, bad, strlen(bad), 0600);
  set = web_set(NULL);
  assert_int_equal(po_state_load(set, path, "b"), -EBADMSG);
  po_watchset_free(set);
  free(bad);
  free(good);

  /* 100,000 levels (200 KB, under the size limit): refused at once. */
  n = 200000;
  bad = malloc(n + 1);
  assert_non_null(bad);
  memset(bad, '[', n / 2);
  memset(bad + n / 2, ']', n / 2);
  bad[n] = '\0';
  write_file(path, bad, n, 0600);
  set = web_set(NULL);
  assert_int_equal(po_state_load(set, path, "b"), -EBADMSG);
  po_watchset_free(set);
  free(bad);

  /* 2 MB: larger than one watch's state can be. */
  n = 2u << 20;
  bad = malloc(n);
  assert_non_null(bad);
  memset(bad, '[', n);
  write_file(path, bad, n, 0600);
  set = web_set(NULL);
  assert_int_equal(po_state_load(set, path, "b"), -EFBIG);
  po_watchset_free(set);
  free(bad);
  po_events_free(&ev);
  unlink(path);
}

/* ---- save: bounded, random names, paced ---------------------------------- */

static yajl_val parse_file(const char *path) {
  char *text = slurp(path, NULL);
  yajl_val v = yajl_tree_parse(text, NULL, 0);

  free(text);
  assert_non_null(v);
  return v;
}

static yajl_val get(yajl_val v, const char *key) {
  const char *p[] = {key, NULL};
  yajl_val r = yajl_tree_get(v, p, yajl_t_any);

  assert_non_null(r);
  return r;
}

/* The worst a user can do to one watch's file: many owners, each with the
 * longest exe path, comm and user, all in control bytes (6 bytes each as
 * \u00XX). The file keeps 16 owners a list (one of each program first),
 * counts the rest, keeps the end of each exe path, and stays under 64 KiB. */
static void test_file_bounded(void **state) {
  char path[128], exe[4096], comm[16], user[64];
  struct po_watchset *set = web_set(NULL);
  struct po_events ev = {0};
  struct po_snapshot s = {0};
  struct po_watch_values v;
  yajl_val root, w, owners, req;
  struct stat sb;
  size_t k;
  int found_other = 0;

  (void)state;
  in_tmp(path, sizeof(path), "big.json");
  memset(exe, 1, sizeof(exe) - 1);
  exe[0] = '/';
  exe[sizeof(exe) - 256 - 1] = '/'; /* a 255-byte program name */
  exe[sizeof(exe) - 1] = '\0';
  memset(comm, 2, sizeof(comm) - 1);
  comm[sizeof(comm) - 1] = '\0';
  memset(user, 3, sizeof(user) - 1);
  user[sizeof(user) - 1] = '\0';
  k = fx_snap_crowd(&s, 80, 1000, 3000, comm, exe, 7, user);
  /* One other program, at the highest pid: kept all the same. */
  fx_snap_own(&s, k, 9000, "other", "/usr/bin/other", 7, user);
  fx_snap_finish(&s);
  assert_int_equal(po_watchset_eval(set, &s, FX_NETNS, &v, &ev), 0);
  po_snapshot_free(&s);
  assert_int_equal(v.processes, 3001);
  assert_int_equal(po_state_save(set, path, "b"), 1);
  assert_int_equal(stat(path, &sb), 0);
  assert_true(sb.st_size < 64 << 10);

  root = parse_file(path);
  w = YAJL_GET_ARRAY(get(root, "watches"))->values[0];
  owners = get(w, "owners");
  assert_int_equal(YAJL_GET_ARRAY(owners)->len, 16);
  assert_int_equal(YAJL_GET_INTEGER(get(w, "owners_more")), 3001 - 16);
  for (size_t i = 0; i < 16; i++) {
    yajl_val o = YAJL_GET_ARRAY(owners)->values[i];
    yajl_val e = get(o, "exe");

    if (YAJL_IS_STRING(e)) {
      assert_string_equal(YAJL_GET_STRING(e), "/usr/bin/other");
      found_other = 1;
    } else {
      const char *h = YAJL_GET_STRING(get(e, "hex"));

      /* "/..." then the last '/' and the 255-byte name: 260 bytes. */
      assert_int_equal(strlen(h), 2 * 260);
      assert_true(strncmp(h, "2f2e2e2e2f01", 12) == 0);
    }
  }
  assert_true(found_other);
  req = YAJL_GET_ARRAY(get(w, "requirements"))->values[0];
  owners = get(req, "owners"); /* the lowest pids */
  assert_int_equal(YAJL_GET_ARRAY(owners)->len, 16);
  for (size_t i = 0; i < 16; i++)
    assert_int_equal(
        YAJL_GET_INTEGER(get(YAJL_GET_ARRAY(owners)->values[i], "pid")),
        1000 + (long long)i);
  assert_int_equal(YAJL_GET_INTEGER(get(req, "owners_more")), 3001 - 16);
  yajl_tree_free(root);

  /* It loads back, and saving what was loaded writes nothing. */
  po_watchset_free(set);
  set = web_set(NULL);
  assert_int_equal(po_state_load(set, path, "b"), 0);
  assert_int_equal(po_state_save(set, path, "b"), 0);
  po_watchset_free(set);
  po_events_free(&ev);
  unlink(path);
}

/* The old names (<path>.tmp.<pid>.0..99) all taken: saving works, and
 * leaves what others made alone and no temporary file of its own. */
static void test_tmp_names_random(void **state) {
  char dir[128], path[160], name[200], a[128], b[128];
  struct po_watchset *set = web_set(NULL);
  struct po_events ev = {0};
  int fd1, fd2, dfd;

  (void)state;
  in_tmp(dir, sizeof(dir), "tmpnames");
  assert_int_equal(mkdir(dir, 0700), 0);
  snprintf(path, sizeof(path), "%s/state.json", dir);
  for (int i = 0; i < 100; i++) {
    snprintf(name, sizeof(name), "%s.tmp.%ld.%d", path, (long)getpid(), i);
    write_file(name, "x", 1, 0600);
  }
  eval_owners(set, 100, 1, "nginx", "/usr/sbin/nginx", 0, "root", &ev);
  assert_int_equal(po_state_save(set, path, "b"), 1);
  assert_int_equal(dir_entries(dir), 101);

  dfd = po_dir_open(dir);
  assert_true(dfd >= 0);
  fd1 = po_tmp_create(dfd, "state.json", a, sizeof(a));
  fd2 = po_tmp_create(dfd, "state.json", b, sizeof(b));
  assert_true(fd1 >= 0 && fd2 >= 0);
  assert_string_not_equal(a, b);
  assert_int_equal(strlen(a), strlen("state.json.tmp.") + 16);
  assert_int_equal(po_tmp_create(dfd, "state.json", a, 20), -ENAMETOOLONG);
  close(fd1);
  close(fd2);
  close(dfd);
  po_watchset_free(set);
  po_events_free(&ev);
  fx_remove(tmpdir, "tmpnames");
}

/* Owners that change every read are written at most once a min_interval;
 * a standing FAILURE and its end are written at the read that made them. */
static void test_save_paced(void **state) {
  char path[128];
  struct po_watchset *set = web_set(NULL);
  struct po_events ev = {0};
  char *text;

  (void)state;
  in_tmp(path, sizeof(path), "paced.json");
  eval_owners(set, 100, 1, "nginx", "/usr/sbin/nginx", 0, "root", &ev);
  assert_int_equal(po_state_save_paced(set, path, "b", 100, 10, NULL), 1);
  eval_owners(set, 200, 1, "nginx", "/usr/sbin/nginx", 0, "root", &ev);
  assert_int_equal(po_state_save_paced(set, path, "b", 101, 10, NULL), 0);
  eval_owners(set, 300, 1, "nginx", "/usr/sbin/nginx", 0, "root", &ev);
  assert_int_equal(po_state_save_paced(set, path, "b", 109.9, 10, NULL), 0);
  text = slurp(path, NULL);
  assert_non_null(strstr(text, "\"pid\": 100"));
  free(text);
  assert_int_equal(po_state_save_paced(set, path, "b", 110, 10, NULL), 1);
  text = slurp(path, NULL);
  assert_non_null(strstr(text, "\"pid\": 300"));
  free(text);
  /* The listener goes: its FAILURE is saved at once. */
  assert_int_equal(eval_owners(set, 0, 0, NULL, NULL, 0, NULL, &ev), 1);
  assert_int_equal(po_state_save_paced(set, path, "b", 111, 10, NULL), 1);
  text = slurp(path, NULL);
  assert_non_null(strstr(text, "\"listener_failure\": true"));
  free(text);
  /* Back: the OKAY, saved at once too. */
  assert_int_equal(
      eval_owners(set, 400, 1, "nginx", "/usr/sbin/nginx", 0, "root", &ev), 1);
  assert_int_equal(po_state_save_paced(set, path, "b", 112, 10, NULL), 1);
  /* A clock that went back does not hold a write for ever. */
  eval_owners(set, 500, 1, "nginx", "/usr/sbin/nginx", 0, "root", &ev);
  assert_int_equal(po_state_save_paced(set, path, "b", 50, 10, NULL), 1);
  /* Unpaced (shutdown): every change. */
  eval_owners(set, 600, 1, "nginx", "/usr/sbin/nginx", 0, "root", &ev);
  assert_int_equal(po_state_save(set, path, "b"), 1);
  po_watchset_free(set);
  po_events_free(&ev);
  unlink(path);
}

/* ---- what a standing FAILURE named ---------------------------------------
 */

/* A restart while an unexpected-owner FAILURE stands: the owners it named
 * are not named again, a new one is (same boot); after a reboot the pids
 * mean nothing and the owners then present are taken as named. */
static void test_named_kept(void **state) {
  char path[128], *text;
  struct po_watchset *set = web_set("root");
  struct po_events ev = {0};

  (void)state;
  in_tmp(path, sizeof(path), "named.json");
  assert_int_equal(
      eval_owners(set, 700, 2, "evil", "/tmp/evil", 65534, "nobody", &ev), 1);
  assert_int_equal(ev.v[0].type, PO_EVENT_UNEXPECTED_OWNER);
  assert_int_equal(po_state_save(set, path, "boot-1"), 1);
  text = slurp(path, NULL);
  assert_non_null(strstr(text, "\"named\""));
  free(text);
  po_watchset_free(set);

  /* Same boot: 700 and 701 were named; 702 is new. */
  set = web_set("root");
  assert_int_equal(po_state_load(set, path, "boot-1"), 0);
  assert_int_equal(po_state_save(set, path, "boot-1"), 0); /* as loaded */
  assert_int_equal(
      eval_owners(set, 700, 3, "evil", "/tmp/evil", 65534, "nobody", &ev), 1);
  assert_int_equal(ev.v[0].type, PO_EVENT_UNEXPECTED_OWNER);
  assert_non_null(strstr(ev.v[0].message, "702"));
  assert_null(strstr(ev.v[0].message, "701"));
  assert_int_equal(
      eval_owners(set, 700, 3, "evil", "/tmp/evil", 65534, "nobody", &ev), 0);
  po_watchset_free(set);

  /* Another boot: as a file without "named". */
  set = web_set("root");
  assert_int_equal(po_state_load(set, path, "boot-2"), 0);
  assert_int_equal(
      eval_owners(set, 700, 3, "evil", "/tmp/evil", 65534, "nobody", &ev), 0);
  po_watchset_free(set);
  po_events_free(&ev);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_path_dir),
      cmocka_unit_test(test_dir_open_no_symlink),
      cmocka_unit_test(test_trusted),
      cmocka_unit_test(test_untrusted_file_refused),
      cmocka_unit_test(test_depth_and_size_limits),
      cmocka_unit_test(test_file_bounded),
      cmocka_unit_test(test_tmp_names_random),
      cmocka_unit_test(test_save_paced),
      cmocka_unit_test(test_named_kept),
  };

  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
