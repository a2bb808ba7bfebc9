/*
 * Unit tests: the inventory of listeners (inventory.h): an undeclared
 * listener after Hits reads and its end, Allow items (program by exe, never
 * comm; user by name or uid; ports), short-lived listeners, Learn and a
 * known listener that stops, restarts (no pid in the key), a changed
 * program, ephemeral UDP ports, sockets with no owner, the endpoint cap,
 * the ephemeral range file, and AllowUnit (the owners' unit, user unit,
 * container label, or the socket's cgroup). Snapshots are built by hand
 * (fx_snap_*, fixture.h).
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "portowner/inventory.h"
#include "portowner/statefile.h"
#include "portowner/watch.h"
#include "fixture.h"

#define OWN_NS FX_NETNS

/* ---- helpers ------------------------------------------------------------- */

/* A host: which listeners are up now. */
struct host {
  int sshd, nc, nc_pid, web, dns, eph, python_as_sshd;
};

static void snap_of(const struct host *h, struct po_snapshot *s) {
  memset(s, 0, sizeof(*s));
  s->netns = OWN_NS;
  if (h->sshd)
    fx_snap_own(s, fx_snap_sock(s, IPPROTO_TCP, "0.0.0.0", 22), 500, "sshd",
                "/usr/sbin/sshd", 0, "root");
  if (h->nc)
    fx_snap_own(s, fx_snap_sock(s, IPPROTO_TCP, "0.0.0.0", 4444),
                h->nc_pid ? h->nc_pid : 2345, "nc", "/usr/bin/nc", 65534,
                "nobody");
  if (h->web) { /* a prefork server: the parent and two workers */
    size_t v4 = fx_snap_sock(s, IPPROTO_TCP, "0.0.0.0", 80);

    fx_snap_own(s, v4, h->web, "nginx", "/usr/sbin/nginx", 0, "root");
    fx_snap_own(s, v4, h->web + 1, "nginx", "/usr/sbin/nginx", 33, "www-data");
    fx_snap_own(s, v4, h->web + 2, "nginx", "/usr/sbin/nginx", 33, "www-data");
  }
  if (h->dns)
    fx_snap_own(s, fx_snap_sock(s, IPPROTO_UDP, "127.0.0.1", 53), 600,
                "dnsmasq", "/usr/sbin/dnsmasq", 0, "root");
  if (h->eph)
    fx_snap_own(s, fx_snap_sock(s, IPPROTO_UDP, "0.0.0.0", 45000), 700,
                "resolver", "/usr/bin/resolver", 0, "root");
  if (h->python_as_sshd)
    fx_snap_own(s, fx_snap_sock(s, IPPROTO_TCP, "0.0.0.0", 2222), 800, "sshd",
                "/usr/bin/python3.11", 0, "root");
  fx_snap_finish(s);
}

/* Evaluates h; returns the number of events, *v the values. */
static size_t eval(struct po_inventory *inv, const struct host *h,
                   struct po_inventory_values *v, struct po_inv_events *ev) {
  struct po_snapshot s;

  po_inv_events_clear(ev);
  snap_of(h, &s);
  assert_int_equal(po_inventory_eval(inv, &s, OWN_NS, v, ev), 0);
  po_snapshot_free(&s);
  return ev->len;
}

static struct po_inventory *mkinv(unsigned hits) {
  struct po_inventory *inv = po_inventory_new("host");

  assert_non_null(inv);
  assert_int_equal(po_inventory_protocol_add(inv, "tcp"), 0);
  assert_int_equal(po_inventory_protocol_add(inv, "udp"), 0);
  assert_int_equal(po_inventory_set_hits(inv, hits), 0);
  return inv;
}

/* ---- tests --------------------------------------------------------------- */

static void test_undeclared_after_hits_and_its_end(void **state) {
  struct po_inventory *inv = mkinv(3);
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  struct host h = {.nc = 1};

  (void)state;
  assert_int_equal(po_inventory_finish(inv), 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  assert_int_equal(v.listeners, 1);
  assert_int_equal(v.undeclared, 1); /* counted at once, reported later */
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 1);
  assert_int_equal(ev.v[0].type, PO_INV_UNDECLARED);
  assert_int_equal(ev.v[0].severity, PO_SEVERITY_WARNING);
  assert_string_equal(ev.v[0].message,
                      "tcp 0.0.0.0:4444 (host) is listening and was not "
                      "declared; held by nc[2345] nobody");
  assert_string_equal(ev.v[0].type_instance,
                      "undeclared-tcp4-0.0.0.0-4444-nc-nobody");
  assert_string_equal(ev.v[0].endpoint, "tcp 0.0.0.0:4444");
  assert_string_equal(ev.v[0].program, "nc");
  assert_string_equal(ev.v[0].user, "nobody");
  assert_non_null(strstr(ev.v[0].owners, "\"pid\":2345"));
  /* Reported once, not every read. */
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  /* It stops: one OKAY with the same identifier. */
  h.nc = 0;
  assert_int_equal(eval(inv, &h, &v, &ev), 1);
  assert_int_equal(ev.v[0].type, PO_INV_UNDECLARED_END);
  assert_int_equal(ev.v[0].severity, PO_SEVERITY_OKAY);
  assert_string_equal(ev.v[0].type_instance,
                      "undeclared-tcp4-0.0.0.0-4444-nc-nobody");
  assert_string_equal(ev.v[0].owners, "[]");
  assert_int_equal(v.listeners, 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  po_inv_events_free(&ev);
  po_inventory_free(inv);
}

static void test_short_lived_listener_is_quiet(void **state) {
  struct po_inventory *inv = mkinv(3);
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  struct host up = {.nc = 1}, down = {0};

  (void)state;
  assert_int_equal(po_inventory_finish(inv), 0);
  for (int i = 0; i < 10; i++) { /* up for 2 reads, down for 1, again */
    assert_int_equal(eval(inv, &up, &v, &ev), 0);
    assert_int_equal(eval(inv, &up, &v, &ev), 0);
    assert_int_equal(eval(inv, &down, &v, &ev), 0);
  }
  po_inv_events_free(&ev);
  po_inventory_free(inv);
}

static void test_allow_items(void **state) {
  struct po_inventory *inv = mkinv(1);
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  struct host h = {.sshd = 1, .web = 900, .dns = 1, .python_as_sshd = 1};
  const char *bad = NULL;

  (void)state;
  assert_int_equal(po_inventory_allow_add(inv, "sshd", "root", "22", NULL), 0);
  /* nginx by any user on 80 and 443; dnsmasq as uid 0 on any port. */
  assert_int_equal(po_inventory_allow_add(inv, "nginx", "*", "80,443", NULL),
                   0);
  assert_int_equal(po_inventory_allow_add(inv, "dnsmasq", "0", NULL, NULL), 0);
  /* Bad items: a path as a program, an empty user, a bad port. */
  assert_int_equal(
      po_inventory_allow_add(inv, "/usr/sbin/sshd", "root", NULL, NULL),
      -EINVAL);
  assert_int_equal(po_inventory_allow_add(inv, "sshd", "", NULL, NULL),
                   -EINVAL);
  assert_int_equal(po_inventory_allow_add(inv, "sshd", "root", "22,0x50", &bad),
                   -EINVAL);
  assert_non_null(bad);
  assert_string_equal(bad, "0x50");
  assert_int_equal(po_inventory_finish(inv), 0);

  /* Only the python process that calls itself sshd on 2222 is reported:
   * its program is python3.11, and 2222 is not sshd's port anyway. */
  assert_int_equal(eval(inv, &h, &v, &ev), 1);
  assert_int_equal(v.listeners, 5); /* sshd, nginx x2 users, dns, python */
  assert_int_equal(v.undeclared, 1);
  assert_string_equal(ev.v[0].program, "python3.11");
  assert_string_equal(ev.v[0].message,
                      "tcp 0.0.0.0:2222 (host) is listening and was not "
                      "declared; held by sshd[800] root (exe python3.11)");
  po_inv_events_free(&ev);
  po_inventory_free(inv);
}

static void test_restart_and_changed_program(void **state) {
  struct po_inventory *inv = mkinv(1);
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  struct host h = {.nc = 1, .nc_pid = 2345};
  struct po_snapshot s;

  (void)state;
  assert_int_equal(po_inventory_finish(inv), 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 1);
  /* Restarted: another pid, same program and user: nothing. */
  h.nc_pid = 3456;
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  assert_int_equal(v.undeclared, 1);

  /* Another program on the same port: the old endpoint ends (OKAY first),
   * the new one is reported. */
  memset(&s, 0, sizeof(s));
  s.netns = OWN_NS;
  fx_snap_own(&s, fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 4444), 4000, "socat",
              "/usr/bin/socat", 65534, "nobody");
  fx_snap_finish(&s);
  po_inv_events_clear(&ev);
  assert_int_equal(po_inventory_eval(inv, &s, OWN_NS, &v, &ev), 0);
  po_snapshot_free(&s);
  assert_int_equal(ev.len, 2);
  assert_int_equal(ev.v[0].type, PO_INV_UNDECLARED_END);
  assert_string_equal(ev.v[0].program, "nc");
  assert_int_equal(ev.v[1].type, PO_INV_UNDECLARED);
  assert_string_equal(ev.v[1].program, "socat");
  assert_string_equal(ev.v[1].type_instance,
                      "undeclared-tcp4-0.0.0.0-4444-socat-nobody");
  po_inv_events_free(&ev);
  po_inventory_free(inv);
}

static void test_learn_and_gone(void **state) {
  struct po_inventory *inv = mkinv(2);
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  struct host h = {.sshd = 1, .web = 900};

  (void)state;
  po_inventory_set_learn(inv, 1);
  assert_int_equal(po_inventory_finish(inv), 0);
  /* The first read is learned: nothing undeclared, ever. */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(eval(inv, &h, &v, &ev), 0);
    assert_int_equal(v.undeclared, 0);
  }
  /* A prefork restart (other pids, same programs and users): nothing. */
  h.web = 950;
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  /* A new listener after the first read is not learned. */
  h.nc = 1;
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  assert_int_equal(v.undeclared, 1);
  assert_int_equal(eval(inv, &h, &v, &ev), 1);
  assert_int_equal(ev.v[0].type, PO_INV_UNDECLARED);
  /* sshd stops: gone after Hits (2) reads. */
  h.sshd = 0;
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 1);
  assert_int_equal(ev.v[0].type, PO_INV_GONE);
  assert_int_equal(ev.v[0].severity, PO_SEVERITY_WARNING);
  assert_string_equal(ev.v[0].message,
                      "tcp 0.0.0.0:22 (host) is no longer listening");
  assert_string_equal(ev.v[0].type_instance, "gone-tcp4-0.0.0.0-22-sshd-root");
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  /* Back: OKAY, at once. */
  h.sshd = 1;
  assert_int_equal(eval(inv, &h, &v, &ev), 1);
  assert_int_equal(ev.v[0].type, PO_INV_BACK);
  assert_int_equal(ev.v[0].severity, PO_SEVERITY_OKAY);
  assert_string_equal(ev.v[0].message, "tcp 0.0.0.0:22 (host) is listening "
                                       "again; held by sshd[500] root");
  assert_string_equal(ev.v[0].type_instance, "gone-tcp4-0.0.0.0-22-sshd-root");
  po_inv_events_free(&ev);
  po_inventory_free(inv);

  /* NotifyGone false: a learned listener that stops says nothing. */
  inv = mkinv(1);
  po_inventory_set_learn(inv, 1);
  po_inventory_set_notify_gone(inv, 0);
  assert_int_equal(po_inventory_finish(inv), 0);
  h = (struct host){.sshd = 1};
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  h.sshd = 0;
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  po_inv_events_free(&ev);
  po_inventory_free(inv);
}

static void test_allowed_with_ports_is_known(void **state) {
  struct po_inventory *inv = mkinv(1);
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  struct host h = {.sshd = 1, .dns = 1};

  (void)state;
  assert_int_equal(po_inventory_allow_add(inv, "sshd", "root", "22", NULL), 0);
  assert_int_equal(po_inventory_allow_add(inv, "dnsmasq", "*", "*", NULL), 0);
  assert_int_equal(po_inventory_finish(inv), 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  /* sshd was allowed by an explicit port: its loss is reported; dnsmasq
   * (any port) is not tracked once gone. */
  h.sshd = h.dns = 0;
  assert_int_equal(eval(inv, &h, &v, &ev), 1);
  assert_int_equal(ev.v[0].type, PO_INV_GONE);
  assert_string_equal(ev.v[0].program, "sshd");
  po_inv_events_free(&ev);
  po_inventory_free(inv);
}

static void test_ephemeral_udp_and_ports(void **state) {
  struct po_inventory *inv = mkinv(1);
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  struct host h = {.dns = 1, .eph = 1};

  (void)state;
  assert_int_equal(po_inventory_set_ephemeral_range(inv, 0, 10), -EINVAL);
  assert_int_equal(po_inventory_set_ephemeral_range(inv, 40000, 50000), 0);
  assert_int_equal(po_inventory_finish(inv), 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 1);
  assert_int_equal(v.listeners, 1);
  assert_string_equal(ev.v[0].endpoint, "udp 127.0.0.1:53");
  po_inv_events_free(&ev);
  po_inventory_free(inv);

  /* IgnoreEphemeral false: both. Port "1-1023": only the privileged. */
  inv = mkinv(1);
  po_inventory_set_ignore_ephemeral(inv, 0);
  assert_int_equal(po_inventory_set_ephemeral_range(inv, 40000, 50000), 0);
  assert_int_equal(po_inventory_finish(inv), 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 2);
  po_inv_events_free(&ev);
  po_inventory_free(inv);
  inv = mkinv(1);
  po_inventory_set_ignore_ephemeral(inv, 0);
  assert_int_equal(po_inventory_port_add_string(inv, "1-1023", NULL), 0);
  assert_int_equal(po_inventory_finish(inv), 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 1);
  assert_string_equal(ev.v[0].endpoint, "udp 127.0.0.1:53");
  po_inv_events_free(&ev);
  po_inventory_free(inv);
}

static void test_unowned_and_other_namespaces(void **state) {
  struct po_inventory *inv = mkinv(1);
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  struct po_snapshot s;
  size_t i;

  (void)state;
  assert_int_equal(po_inventory_finish(inv), 0);
  memset(&s, 0, sizeof(s));
  s.netns = OWN_NS;
  i = fx_snap_sock(&s, IPPROTO_TCP, "::", 8080);
  s.socks.v[i].uid = 0;
  i = fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 9090);
  s.socks.v[i].netns = OWN_NS + 1; /* another namespace: not the host's */
  fx_snap_finish(&s);
  assert_int_equal(po_inventory_eval(inv, &s, OWN_NS, &v, &ev), 0);
  po_snapshot_free(&s);
  assert_int_equal(v.listeners, 1);
  assert_int_equal(ev.len, 1);
  assert_string_equal(ev.v[0].endpoint, "tcp [::]:8080");
  assert_string_equal(ev.v[0].program, "");
  assert_string_equal(ev.v[0].type_instance,
                      "undeclared-tcp6-__-8080-unknown-root");
  assert_non_null(strstr(ev.v[0].message, "(no owner found)"));
  po_inv_events_free(&ev);
  po_inventory_free(inv);
}

static void test_endpoint_cap(void **state) {
  struct po_inventory *inv = mkinv(1);
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  struct po_snapshot s;
  const size_t n = PO_INV_ENDPOINTS_MAX + 10;

  (void)state;
  po_inventory_set_ignore_ephemeral(inv, 0);
  assert_int_equal(po_inventory_finish(inv), 0);
  memset(&s, 0, sizeof(s));
  s.netns = OWN_NS;
  for (size_t i = 0; i < n; i++)
    fx_snap_sock(&s, IPPROTO_TCP, "127.0.0.1", (uint16_t)(1000 + i));
  fx_snap_finish(&s);
  for (int r = 0; r < 2; r++) {
    po_inv_events_clear(&ev);
    assert_int_equal(po_inventory_eval(inv, &s, OWN_NS, &v, &ev), 0);
    assert_int_equal(v.listeners, n);
    assert_int_equal(v.untracked, 10);
    assert_int_equal(ev.len, r == 0 ? PO_INV_ENDPOINTS_MAX : 0);
  }
  po_snapshot_free(&s);
  po_inv_events_free(&ev);
  po_inventory_free(inv);
}

static void test_ephemeral_range_file(void **state) {
  char root[PATH_MAX], path[PATH_MAX];
  uint16_t lo = 0, hi = 0;

  (void)state;
  assert_int_equal(po_ephemeral_range_read("/proc", &lo, &hi), 0);
  assert_true(lo > 0 && lo <= hi);
  fx_root_make(root, sizeof(root), NULL, "eph");
  fx_mkdir(root, "sys");
  fx_mkdir(root, "sys/net");
  fx_mkdir(root, "sys/net/ipv4");
  fx_write(root, "sys/net/ipv4/ip_local_port_range", "1024\t65535\n", 11);
  assert_int_equal(po_ephemeral_range_read(root, &lo, &hi), 0);
  assert_int_equal(lo, 1024);
  assert_int_equal(hi, 65535);
  static const char *const bad[] = {"",          "1024",    "9 8\n", "0 10\n",
                                    "1 70000\n", "1 2 3\n", "1x 2\n"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    fx_write(root, "sys/net/ipv4/ip_local_port_range", bad[i], strlen(bad[i]));
    assert_int_equal(po_ephemeral_range_read(root, &lo, &hi), -EBADMSG);
  }
  fx_remove(root, "sys/net/ipv4/ip_local_port_range");
  assert_int_equal(po_ephemeral_range_read(root, &lo, &hi), -ENOENT);
  fx_path(root, path, sizeof(path), "sys/net/ipv4/ip_local_port_range");
  assert_int_equal(mkfifo(path, 0600), 0);
  assert_int_equal(po_ephemeral_range_read(root, &lo, &hi), -EINVAL);
  assert_int_equal(fx_root_remove(root), 0);
}

static void test_names_and_config(void **state) {
  struct po_inventory *inv;
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  struct po_snapshot s = {0};

  (void)state;
  assert_null(po_inventory_new(""));
  assert_null(po_inventory_new("a/b"));
  inv = po_inventory_new("host");
  assert_non_null(inv);
  assert_int_equal(po_inventory_protocol_add(inv, "sctp"), -EINVAL);
  assert_int_equal(po_inventory_set_hits(inv, 0), -EINVAL);
  /* Not finished: refused. */
  assert_int_equal(po_inventory_eval(inv, &s, OWN_NS, &v, &ev), -EINVAL);
  assert_int_equal(po_inventory_mask(inv), PO_TCP);
  assert_int_equal(po_inventory_finish(inv), 0);
  assert_string_equal(po_inventory_name(inv), "host");
  po_inventory_free(inv);
}

/* The StateFile keeps what an inventory knew and reported: after a
 * restart, Learn does not learn again (a listener new since is
 * undeclared), a reported listener still there is not reported again, and
 * one gone since gets its OKAY. */
static struct po_watchset *inv_set(struct po_inventory **out) {
  struct po_watchset *set = po_watchset_new();
  struct po_inventory *inv = mkinv(1);

  assert_non_null(set);
  po_inventory_set_learn(inv, 1);
  assert_int_equal(po_inventory_finish(inv), 0);
  assert_int_equal(po_watchset_add_inventory(set, inv), 0);
  assert_int_equal(po_watchset_add_inventory(set, inv), -EEXIST);
  *out = inv;
  return set;
}

static void test_state_across_restart(void **state) {
  char dir[PATH_MAX], path[PATH_MAX + 16];
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  struct po_inventory *inv;
  struct po_watchset *set;
  struct host h = {.sshd = 1};
  struct po_watch *w;

  (void)state;
  fx_root_make(dir, sizeof(dir), NULL, "invstate");
  snprintf(path, sizeof(path), "%s/state.json", dir);

  /* Run 1: sshd learned; nc appears and is reported. */
  set = inv_set(&inv);
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  h.nc = 1;
  assert_int_equal(eval(inv, &h, &v, &ev), 1);
  assert_int_equal(po_state_save(set, path, "boot-1"), 1);
  assert_int_equal(po_state_save(set, path, "boot-1"), 0); /* unchanged */
  po_watchset_free(set);

  /* Run 2, nc still there: nothing is said again, not even after a
   * reboot (endpoints have no pids). */
  set = inv_set(&inv);
  assert_int_equal(po_state_load(set, path, "boot-2"), 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  assert_int_equal(v.undeclared, 1);
  po_watchset_free(set);

  /* Run 3, nc gone while collectd was down and a new listener: nc's OKAY,
   * and the new one is not learned. */
  set = inv_set(&inv);
  assert_int_equal(po_state_load(set, path, "boot-2"), 0);
  h.nc = 0;
  h.dns = 1;
  assert_int_equal(eval(inv, &h, &v, &ev), 2);
  assert_int_equal(ev.v[0].type, PO_INV_UNDECLARED_END);
  assert_string_equal(ev.v[0].program, "nc");
  assert_int_equal(ev.v[1].type, PO_INV_UNDECLARED);
  assert_string_equal(ev.v[1].program, "dnsmasq");
  po_watchset_free(set);

  /* A <Port> block cannot take an inventory's name, nor the reverse. */
  set = inv_set(&inv);
  w = po_watch_new("host");
  assert_non_null(w);
  assert_int_equal(po_watch_port_add_string(w, "22", NULL), 0);
  assert_int_equal(po_watch_finish(w), 0);
  assert_int_equal(po_watchset_add(set, w), -EEXIST);
  po_watch_free(w);
  po_watchset_free(set);

  po_inv_events_free(&ev);
  assert_int_equal(fx_root_remove(dir), 0);
}

static void test_restore_refuses_bad_entries(void **state) {
  struct po_inventory *inv = mkinv(1);
  struct po_inv_endpoint e = {.proto = 132, /* SCTP */
                              .family = AF_INET,
                              .port = 22,
                              .program = "sshd",
                              .user = "root"};

  (void)state;
  assert_int_equal(po_inventory_finish(inv), 0);
  assert_int_equal(po_inventory_restore(inv, &e, 1), -EINVAL);
  e.proto = IPPROTO_TCP;
  e.port = 0;
  assert_int_equal(po_inventory_restore(inv, &e, 1), -EINVAL);
  e.port = 22;
  assert_int_equal(po_inventory_restore(inv, &e, PO_INV_SAVED_MAX + 1),
                   -EINVAL);
  assert_int_equal(po_inventory_restore(inv, &e, 1), 0);
  po_inventory_free(inv);
}

/* A socket whose owners are not all known yet (a full walk put off) is
 * neither a new endpoint nor the end of the known ones on its address. */
static void test_pending_socket_is_held(void **state) {
  struct po_inventory *inv = mkinv(1);
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  struct po_snapshot s;
  struct host h = {.web = 900};

  (void)state;
  po_inventory_set_learn(inv, 1);
  assert_int_equal(po_inventory_finish(inv), 0);
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  /* nginx reloads: a new socket on :80, the master (root, read before)
   * not found yet, a new worker found. For 5 reads: nothing. */
  for (int r = 0; r < 5; r++) {
    memset(&s, 0, sizeof(s));
    s.netns = OWN_NS;
    fx_snap_own(&s, fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 80), 990, "nginx",
                "/usr/sbin/nginx", 33, "www-data");
    s.socks.v[0].owner_pending = 1;
    fx_snap_finish(&s);
    po_inv_events_clear(&ev);
    assert_int_equal(po_inventory_eval(inv, &s, OWN_NS, &v, &ev), 0);
    po_snapshot_free(&s);
    assert_int_equal(ev.len, 0);
    assert_int_equal(v.listeners, 1);
    assert_int_equal(v.undeclared, 0);
  }
  /* Its owners known: as before, nothing. */
  h.web = 980;
  assert_int_equal(eval(inv, &h, &v, &ev), 0);
  /* The same without the mark: root's endpoint is gone at once. */
  memset(&s, 0, sizeof(s));
  s.netns = OWN_NS;
  fx_snap_own(&s, fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 80), 990, "nginx",
              "/usr/sbin/nginx", 33, "www-data");
  fx_snap_finish(&s);
  po_inv_events_clear(&ev);
  assert_int_equal(po_inventory_eval(inv, &s, OWN_NS, &v, &ev), 0);
  po_snapshot_free(&s);
  assert_int_equal(ev.len, 1);
  assert_int_equal(ev.v[0].type, PO_INV_GONE);
  po_inv_events_free(&ev);
  po_inventory_free(inv);
}

/* One read of tcp/4444 held by nc as nobody: one owner per cgroup of cg
 * (NULL: that owner's cgroup unreadable; none: a socket with no owner), the
 * socket made in sock_cg (NULL: unknown); cg NULL: no socket at all.
 * Returns the number of events. */
static size_t unit_read(struct po_inventory *inv, const char *const *cg,
                        size_t nowners, const char *sock_cg,
                        struct po_inventory_values *v,
                        struct po_inv_events *ev) {
  struct po_snapshot s;
  size_t k;

  memset(&s, 0, sizeof(s));
  s.netns = OWN_NS;
  k = cg ? fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 4444) : 0;
  for (size_t i = 0; cg && i < nowners; i++)
    fx_snap_own(&s, k, (pid_t)(2345 + i), "nc", "/usr/bin/nc", 65534, "nobody");
  fx_snap_finish(&s);
  for (size_t i = 0; cg && i < nowners; i++)
    if (cg[i]) {
      assert_true(i < s.nprocs);
      s.procs[i].cgroup.v2 = strdup(cg[i]);
      assert_non_null(s.procs[i].cgroup.v2);
    }
  if (cg && sock_cg) {
    s.sock_cgroups = calloc(s.socks.len, sizeof(*s.sock_cgroups));
    assert_non_null(s.sock_cgroups);
    s.sock_cgroups[k] = strdup(sock_cg);
    assert_non_null(s.sock_cgroups[k]);
  }
  po_inv_events_clear(ev);
  assert_int_equal(po_inventory_eval(inv, &s, OWN_NS, v, ev), 0);
  po_snapshot_free(&s);
  return ev->len;
}

static void test_allow_unit(void **state) {
  static const char pg[] = "/system.slice/system-postgresql.slice/"
                           "postgresql@15-main.service";
  static const char other[] = "/system.slice/other.service";
  static const char app[] = "/user.slice/user-1000.slice/user@1000.service/"
                            "app.slice/app.service";
  static const char docker[] =
      "/system.slice/docker-"
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope";
  struct po_inventory *inv = mkinv(1);
  struct po_inventory_values v;
  struct po_inv_events ev = {0};
  char big[PO_GLOB_MAX + 2];

  (void)state;
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  assert_int_equal(po_inventory_allow_unit_add(inv, ""), -EINVAL);
  assert_int_equal(po_inventory_allow_unit_add(inv, big), -EINVAL);
  assert_int_equal(po_inventory_allow_unit_add(inv, "postgresql@*.service"), 0);
  assert_int_equal(po_inventory_allow_unit_add(inv, "app.service"), 0);
  assert_int_equal(po_inventory_allow_unit_add(inv, "docker:0123456789ab"), 0);
  assert_int_equal(po_inventory_finish(inv), 0);

  /* The unit (a glob), the user unit, the container's label: declared. */
  assert_int_equal(unit_read(inv, (const char *[]){pg}, 1, NULL, &v, &ev), 0);
  assert_int_equal(v.listeners, 1);
  assert_int_equal(v.undeclared, 0);
  assert_int_equal(unit_read(inv, (const char *[]){app}, 1, NULL, &v, &ev), 0);
  assert_int_equal(unit_read(inv, (const char *[]){docker}, 1, NULL, &v, &ev),
                   0);
  /* Two owners of the same program and user: one in the unit is enough. */
  assert_int_equal(
      unit_read(inv, (const char *[]){other, pg}, 2, NULL, &v, &ev), 0);
  assert_int_equal(v.undeclared, 0);
  /* The owner's cgroup unreadable: judged by the socket's. */
  assert_int_equal(unit_read(inv, (const char *[]){NULL}, 1, pg, &v, &ev), 0);
  /* Its own cgroup wins over the socket's. */
  assert_int_equal(unit_read(inv, (const char *[]){other}, 1, pg, &v, &ev), 1);
  assert_int_equal(ev.v[0].type, PO_INV_UNDECLARED);
  assert_int_equal(v.undeclared, 1);
  /* Back in the unit: declared again, its WARNING ends. */
  assert_int_equal(unit_read(inv, (const char *[]){pg}, 1, NULL, &v, &ev), 1);
  assert_int_equal(ev.v[0].type, PO_INV_UNDECLARED_END);
  assert_int_equal(v.undeclared, 0);
  /* Nothing known of its cgroup: not declared by a unit. */
  assert_int_equal(unit_read(inv, (const char *[]){NULL}, 1, NULL, &v, &ev), 1);
  assert_int_equal(ev.v[0].type, PO_INV_UNDECLARED);
  /* A unit never makes an endpoint known: it stops, no GONE. */
  assert_int_equal(unit_read(inv, NULL, 0, NULL, &v, &ev), 1);
  assert_int_equal(ev.v[0].type, PO_INV_UNDECLARED_END);
  assert_int_equal(unit_read(inv, (const char *[]){pg}, 1, NULL, &v, &ev), 0);
  assert_int_equal(unit_read(inv, NULL, 0, NULL, &v, &ev), 0);
  assert_int_equal(unit_read(inv, NULL, 0, NULL, &v, &ev), 0);
  /* A socket with no owner: by its own cgroup. */
  assert_int_equal(unit_read(inv, (const char *[]){NULL}, 0, pg, &v, &ev), 0);
  assert_int_equal(v.listeners, 1);
  assert_int_equal(v.undeclared, 0);
  assert_int_equal(unit_read(inv, (const char *[]){NULL}, 0, other, &v, &ev),
                   1);
  assert_int_equal(ev.v[0].type, PO_INV_UNDECLARED);
  po_inv_events_free(&ev);
  po_inventory_free(inv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_undeclared_after_hits_and_its_end),
      cmocka_unit_test(test_short_lived_listener_is_quiet),
      cmocka_unit_test(test_allow_items),
      cmocka_unit_test(test_restart_and_changed_program),
      cmocka_unit_test(test_learn_and_gone),
      cmocka_unit_test(test_allowed_with_ports_is_known),
      cmocka_unit_test(test_ephemeral_udp_and_ports),
      cmocka_unit_test(test_unowned_and_other_namespaces),
      cmocka_unit_test(test_endpoint_cap),
      cmocka_unit_test(test_ephemeral_range_file),
      cmocka_unit_test(test_names_and_config),
      cmocka_unit_test(test_state_across_restart),
      cmocka_unit_test(test_restore_refuses_bad_entries),
      cmocka_unit_test(test_pending_socket_is_held),
      cmocka_unit_test(test_allow_unit),
  };

  fx_set_failure(fx_fail_cmocka);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
