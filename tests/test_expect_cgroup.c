/*
 * Unit tests: ExpectUnit and ExpectCgroup through the public API, on
 * snapshots built by hand (fixture.h) whose owners carry cgroup paths: the
 * unexpected-owner FAILURE and its OKAY, an owner whose cgroup is unknown
 * judged by its socket's cgroup, a socket with no owner judged by its own,
 * a change of unit as an owner change, and the unit in the message.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "portowner/snapshot.h"
#include "portowner/watch.h"

#include "fixture.h"

/* A watch on tcp/80; unit and cgroup globs may be NULL. */
static struct po_watch *watch_of(const char *unit, const char *cgroup,
                                 int notify_change) {
  struct po_watch *w = po_watch_new("web");

  assert_non_null(w);
  assert_int_equal(po_watch_port_add_string(w, "80", NULL), 0);
  if (unit)
    assert_int_equal(po_watch_expect_unit_add(w, unit), 0);
  if (cgroup)
    assert_int_equal(po_watch_expect_cgroup_add(w, cgroup), 0);
  po_watch_set_notify_owner_change(w, notify_change);
  po_watch_set_notify_missing_at_start(w, 0);
  assert_int_equal(po_watch_finish(w), 0);
  return w;
}

/*
 * One read: tcp/80 held by pid 4242 in cgroup proc_cg (NULL: unreadable),
 * the socket made in sock_cg (NULL: unknown), or no owner at all (owned 0).
 * Returns the type of the one event of the read, or -1 for none; the
 * message of it into msg.
 */
static int read_once(struct po_watch *w, int owned, const char *proc_cg,
                     const char *sock_cg, char *msg, size_t size) {
  struct po_snapshot s;
  struct po_watch_values v;
  struct po_events ev = {0};
  size_t k;
  int type = -1;

  memset(&s, 0, sizeof(s));
  k = fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 80);
  if (owned)
    fx_snap_own(&s, k, 4242, "nginx", "/usr/sbin/nginx", 33, "www-data");
  fx_snap_finish(&s);
  if (owned && proc_cg) {
    s.procs[0].cgroup.v2 = strdup(proc_cg);
    assert_non_null(s.procs[0].cgroup.v2);
  }
  if (sock_cg) {
    s.sock_cgroups = calloc(s.socks.len, sizeof(*s.sock_cgroups));
    assert_non_null(s.sock_cgroups);
    s.sock_cgroups[k] = strdup(sock_cg);
    assert_non_null(s.sock_cgroups[k]);
  }
  assert_int_equal(po_watch_eval(w, &s, FX_NETNS, &v, &ev), 0);
  assert_true(ev.len <= 1);
  if (ev.len) {
    type = (int)ev.v[0].type;
    if (msg)
      snprintf(msg, size, "%s", ev.v[0].message);
  }
  po_events_free(&ev);
  po_snapshot_free(&s);
  return type;
}

static void test_unit_failure_then_okay(void **state) {
  struct po_watch *w = watch_of("nginx.service", NULL, 0);
  char msg[512];

  (void)state;
  assert_int_equal(
      read_once(w, 1, "/system.slice/apache2.service", NULL, msg, sizeof(msg)),
      PO_EVENT_UNEXPECTED_OWNER);
  /* The unit follows the user. */
  assert_non_null(strstr(msg, "nginx[4242] www-data apache2.service"));
  assert_int_equal(
      read_once(w, 1, "/system.slice/apache2.service", NULL, NULL, 0), -1);
  assert_int_equal(
      read_once(w, 1, "/system.slice/nginx.service", NULL, msg, sizeof(msg)),
      PO_EVENT_EXPECTED_OWNER);
  po_watch_free(w);
}

static void test_globs_user_units_containers(void **state) {
  struct po_watch *w = watch_of("app-*.service", NULL, 0);
  struct po_watch *d = watch_of("docker:*", NULL, 0);

  (void)state;
  assert_int_equal(read_once(w, 1,
                             "/user.slice/user-1000.slice/user@1000.service/"
                             "app.slice/app-web.service",
                             NULL, NULL, 0),
                   -1);
  assert_int_equal(
      read_once(
          d, 1,
          "/system.slice/docker-"
          "4f3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e"
          ".scope",
          NULL, NULL, 0),
      -1);
  assert_int_equal(read_once(d, 1, "/system.slice/cron.service", NULL, NULL, 0),
                   PO_EVENT_UNEXPECTED_OWNER);
  po_watch_free(w);
  po_watch_free(d);
}

static void test_cgroup_glob(void **state) {
  struct po_watch *w = watch_of(NULL, "/system.slice/*", 0);

  (void)state;
  /* '*' matches '/' too: any depth. */
  assert_int_equal(
      read_once(w, 1, "/system.slice/a.slice/nginx.service", NULL, NULL, 0),
      -1);
  assert_int_equal(read_once(w, 1, "/user.slice/x.scope", NULL, NULL, 0),
                   PO_EVENT_UNEXPECTED_OWNER);
  po_watch_free(w);
  assert_int_equal(po_watch_expect_cgroup_add(w = po_watch_new("x"), "rel"),
                   -EINVAL);
  assert_int_equal(po_watch_expect_unit_add(w, ""), -EINVAL);
  po_watch_free(w);
}

/* The owner's cgroup unreadable: judged by its socket's; neither known:
 * not judged at all. A socket without owner: by its own cgroup. */
static void test_socket_cgroup_stands_in(void **state) {
  struct po_watch *w = watch_of("nginx.service", NULL, 0);
  char msg[512];

  (void)state;
  assert_int_equal(
      read_once(w, 1, NULL, "/system.slice/nginx.service", NULL, 0), -1);
  assert_int_equal(read_once(w, 1, NULL, NULL, NULL, 0), -1);
  assert_int_equal(read_once(w, 1, NULL, "/init.scope", msg, sizeof(msg)),
                   PO_EVENT_UNEXPECTED_OWNER);
  assert_non_null(strstr(msg, "www-data init.scope"));
  po_watch_free(w);

  w = watch_of("nginx.service", NULL, 0);
  assert_int_equal(
      read_once(w, 0, NULL, "/system.slice/evil.service", msg, sizeof(msg)),
      PO_EVENT_UNEXPECTED_OWNER);
  if (!strstr(msg, " evil.service (no owner found)"))
    fail_msg("%s", msg);
  po_watch_free(w);
}

/* The same program and user in another unit, for OwnerChangeHits reads. */
static void test_unit_change_is_owner_change(void **state) {
  struct po_watch *w = watch_of(NULL, NULL, 1);
  char msg[512];

  (void)state;
  assert_int_equal(read_once(w, 1, "/system.slice/a.service", NULL, NULL, 0),
                   -1);
  assert_int_equal(read_once(w, 1, "/system.slice/b.service", NULL, NULL, 0),
                   -1);
  assert_int_equal(
      read_once(w, 1, "/system.slice/b.service", NULL, msg, sizeof(msg)),
      PO_EVENT_OWNER_CHANGED);
  assert_non_null(strstr(msg, "a.service -> "));
  assert_non_null(strstr(msg, "b.service"));
  /* An unknown cgroup is no change. */
  assert_int_equal(read_once(w, 1, NULL, NULL, NULL, 0), -1);
  assert_int_equal(read_once(w, 1, NULL, NULL, NULL, 0), -1);
  assert_int_equal(read_once(w, 1, "/system.slice/b.service", NULL, NULL, 0),
                   -1);
  po_watch_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unit_failure_then_okay),
      cmocka_unit_test(test_globs_user_units_containers),
      cmocka_unit_test(test_cgroup_glob),
      cmocka_unit_test(test_socket_cgroup_stands_in),
      cmocka_unit_test(test_unit_change_is_owner_change),
  };

  fx_set_failure(fx_fail_cmocka);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
