/*
 * Unit tests: the listener requirements of a watch (requirement.h): how
 * Port / Protocol / Address derive them, which sockets serve them (wildcard
 * binds, dual stack, v6only, v4-mapped), one condition per requirement
 * (FAILURE after Hits reads or at start, OKAY, the owners of that
 * requirement's sockets), count-missing, the notification identifier, and
 * the StateFile's per-requirement state. Snapshots are built by hand
 * (fx_snap_*, fixture.h).
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
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "portowner/snapshot.h"
#include "portowner/statefile.h"
#include "portowner/watch.h"
#include "fixture.h"

#define OWN_NS FX_NETNS

/* ---- helpers ------------------------------------------------------------- */

/* A watch from config-like strings: ports as Port takes them ("80 443" is
 * two values, each parsed as one Port value: "80,443" is one), protocols
 * and addresses space-separated (NULL: none given). Not finished. */
static struct po_watch *mkwatch(const char *name, const char *ports,
                                const char *protos, const char *addrs) {
  struct po_watch *w = po_watch_new(name);
  char buf[256], *save = NULL;

  assert_non_null(w);
  snprintf(buf, sizeof(buf), "%s", ports);
  for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
    assert_int_equal(po_watch_port_add_string(w, t, NULL), 0);
  if (protos) {
    snprintf(buf, sizeof(buf), "%s", protos);
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
      assert_int_equal(po_watch_protocol_add(w, t), 0);
  }
  if (addrs) {
    snprintf(buf, sizeof(buf), "%s", addrs);
    for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
      assert_int_equal(po_watch_address_add(w, t), 0);
  }
  return w;
}

static struct po_watch *mkfinished(const char *name, const char *ports,
                                   const char *protos, const char *addrs) {
  struct po_watch *w = mkwatch(name, ports, protos, addrs);

  assert_int_equal(po_watch_finish(w), 0);
  return w;
}

/* The requirement names of w, joined by ' '. */
static const char *names(const struct po_watch *w) {
  static char buf[2048];
  size_t len = 0;

  buf[0] = '\0';
  for (size_t i = 0; i < po_watch_requirements(w); i++)
    len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? " " : "",
                            po_watch_requirement_name(w, i));
  assert_null(po_watch_requirement_name(w, po_watch_requirements(w)));
  return buf;
}

static size_t eval(struct po_watch *w, const struct po_snapshot *s,
                   struct po_watch_values *v, struct po_events *ev) {
  struct po_watch_values tmp;

  po_events_clear(ev);
  assert_int_equal(po_watch_eval(w, s, OWN_NS, v ? v : &tmp, ev), 0);
  return ev->len;
}

/* One TCP listener per port of ports[0..n) (0 ends early), each on
 * 0.0.0.0, held by pid pids[i] (nginx, www-data). */
static size_t eval_ports(struct po_watch *w, const uint16_t *ports,
                         const pid_t *pids, size_t n, struct po_watch_values *v,
                         struct po_events *ev) {
  struct po_snapshot s;
  size_t r;

  memset(&s, 0, sizeof(s));
  for (size_t i = 0; i < n; i++)
    fx_snap_own(&s, fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", ports[i]), pids[i],
                "nginx", "/usr/sbin/nginx", 33, "www-data");
  fx_snap_finish(&s);
  r = eval(w, &s, v, ev);
  po_snapshot_free(&s);
  return r;
}

/* Event i of ev: of type type, about requirement req, saying message
 * (unless NULL), with the identifier listener-<req with '/' as '-'>. */
static const struct po_event *
expect_req_event(const struct po_events *ev, size_t i, enum po_event_type type,
                 const char *req, const char *message) {
  const struct po_event *e;
  char ti[128], want[128];

  assert_true(i < ev->len);
  e = &ev->v[i];
  assert_int_equal(e->type, type);
  assert_non_null(e->requirement);
  assert_string_equal(e->requirement, req);
  if (message)
    assert_string_equal(e->message, message);
  assert_true(strlen(e->message) < PO_MESSAGE_MAX);
  snprintf(want, sizeof(want), "listener-%s", req);
  for (char *p = want; *p; p++)
    if (*p == '/')
      *p = '-';
  assert_int_equal(po_event_type_instance(e, ti, sizeof(ti)), 0);
  assert_string_equal(ti, want);
  return e;
}

/* The pids of a JSON owners array, as "1311,1312". */
static const char *owner_pids(const char *json) {
  static char buf[256];
  const char *kp[] = {"pid", NULL};
  yajl_val v = yajl_tree_parse(json, NULL, 0);
  size_t len = 0;

  assert_non_null(v);
  assert_true(YAJL_IS_ARRAY(v));
  buf[0] = '\0';
  for (size_t i = 0; i < v->u.array.len; i++)
    len +=
        (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%lld", i ? "," : "",
                         YAJL_GET_INTEGER(yajl_tree_get(v->u.array.values[i],
                                                        kp, yajl_t_number)));
  yajl_tree_free(v);
  return buf;
}

/* ---- derivation from Port / Protocol / Address --------------------------- */

static void test_derive_ports(void **state) {
  struct po_watch *w;

  (void)state;
  /* Each port named singly is one, a range is one, a list's elements are
   * one each, a service name is its number; the default protocol is tcp. */
  w = mkfinished("web", "80 443 8000-8099 ssh 9000,9100-9101", NULL, NULL);
  assert_int_equal(po_watch_requirements(w), 6);
  assert_string_equal(names(w), "tcp/80 tcp/443 tcp/8000-8099 tcp/22 tcp/9000 "
                                "tcp/9100-9101");
  /* The block's port list stays as configured. */
  assert_string_equal(po_watch_ports(w), "80,443,8000-8099,22,9000,9100-9101");
  po_watch_free(w);

  /* Named twice: one requirement. Overlapping items stay two. */
  w = mkfinished("dup", "80 80,443 80-90", "tcp TCP", NULL);
  assert_string_equal(names(w), "tcp/80 tcp/443 tcp/80-90");
  po_watch_free(w);

  /* Before po_watch_finish(): none. */
  w = mkwatch("unfinished", "80", NULL, NULL);
  assert_int_equal(po_watch_requirements(w), 0);
  assert_null(po_watch_requirement_name(w, 0));
  po_watch_free(w);
}

static void test_derive_protocols_and_addresses(void **state) {
  struct po_watch *w;

  (void)state;
  /* Protocol tokens as written, in config order. */
  w = mkfinished("dns", "53", "udp tcp4 all udp6 tcp6 TCP udp4", NULL);
  assert_string_equal(names(w),
                      "udp/53 tcp4/53 all/53 udp6/53 tcp6/53 tcp/53 udp4/53");
  po_watch_free(w);

  /* Addresses outermost, then protocols, then ports. */
  w = mkfinished("x", "53 8000-8001", "tcp4 udp6", "127.0.0.1 ::1");
  assert_int_equal(po_watch_requirements(w), 8);
  assert_string_equal(names(w),
                      "tcp4/127.0.0.1:53 tcp4/127.0.0.1:8000-8001 "
                      "udp6/127.0.0.1:53 udp6/127.0.0.1:8000-8001 "
                      "tcp4/[::1]:53 tcp4/[::1]:8000-8001 udp6/[::1]:53 "
                      "udp6/[::1]:8000-8001");
  po_watch_free(w);

  /* Wildcards and the text form of IPv6. */
  w = mkfinished("w", "80", NULL, "0.0.0.0 :: 2001:DB8:0:0::1");
  assert_string_equal(names(w),
                      "tcp/0.0.0.0:80 tcp/[::]:80 tcp/[2001:db8::1]:80");
  po_watch_free(w);

  /* The longest name fits. */
  w = mkfinished("long", "10000-65535", "udp6",
                 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
  assert_string_equal(
      names(w), "udp6/[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:10000-65535");
  po_watch_free(w);
}

/* A tcp4 or udp4 requirement asks the kernel for IPv6 sockets too: a
 * dual-stack [::] may serve it. */
static void test_query_asks_for_ipv6_for_ipv4(void **state) {
  static const struct {
    const char *protos;
    unsigned mask;
  } cases[] = {
      {"tcp4", PO_TCP},
      {"udp4", PO_UDP},
      {"tcp6", PO_TCP6},
      {"udp6", PO_UDP6},
      {"tcp6 udp4", PO_TCP6 | PO_UDP},
      {"all", PO_PROTO_ALL},
  };

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct po_watchset *set = po_watchset_new();
    struct po_query q;

    assert_non_null(set);
    assert_int_equal(
        po_watchset_add(set, mkfinished("q", "80", cases[i].protos, NULL)), 0);
    memset(&q, 0, sizeof(q));
    assert_int_equal(po_watchset_query(set, &q), 0);
    if (q.mask != cases[i].mask)
      print_error("Protocol %s: mask %#x\n", cases[i].protos, q.mask);
    assert_int_equal(q.mask, cases[i].mask);
    po_watchset_free(set);
  }
}

/* ---- the serves rule ----------------------------------------------------- */

/* Whether the socket (proto, addr, port, v6only) is counted by a block of
 * that Port / Protocol / Address: 1 or 0 (count-sockets). */
static uint64_t counted(const char *ports, const char *protos,
                        const char *addrs, int proto, const char *addr,
                        uint16_t port, int v6only) {
  struct po_watch *w = mkfinished("t", ports, protos, addrs);
  struct po_snapshot s;
  struct po_watch_values v;
  struct po_events ev = {0};
  size_t k;

  memset(&s, 0, sizeof(s));
  k = fx_snap_sock(&s, proto, addr, port);
  s.socks.v[k].v6only = (int8_t)v6only;
  fx_snap_finish(&s);
  eval(w, &s, &v, &ev);
  assert_int_equal(v.missing, v.sockets ? 0 : 1);
  po_events_free(&ev);
  po_snapshot_free(&s);
  po_watch_free(w);
  return v.sockets;
}

#define TCP IPPROTO_TCP
#define UDP IPPROTO_UDP
#define DUAL 0
#define V6ONLY 1
#define UNKNOWN (-1)

static void test_serves(void **state) {
  static const struct {
    const char *protos, *addrs; /* the block (Port 80) */
    int proto;                  /* the socket */
    const char *addr;
    int v6only;
    uint64_t want;
  } cases[] = {
      /* Address "0.0.0.0": the v4 wildcard, or a dual-stack [::]. */
      {NULL, "0.0.0.0", TCP, "0.0.0.0", UNKNOWN, 1},
      {NULL, "0.0.0.0", TCP, "::", DUAL, 1},
      {NULL, "0.0.0.0", TCP, "::", UNKNOWN, 1}, /* /proc/net: dual stack */
      {NULL, "0.0.0.0", TCP, "::", V6ONLY, 0},
      {NULL, "0.0.0.0", TCP, "::ffff:0.0.0.0", DUAL, 1},
      {NULL, "0.0.0.0", TCP, "127.0.0.1", UNKNOWN, 0},
      {NULL, "0.0.0.0", TCP, "::1", DUAL, 0},
      /* Address "127.0.0.1": itself, its v4-mapped form, the wildcards. */
      {NULL, "127.0.0.1", TCP, "127.0.0.1", UNKNOWN, 1},
      {NULL, "127.0.0.1", TCP, "0.0.0.0", UNKNOWN, 1},
      {NULL, "127.0.0.1", TCP, "::", DUAL, 1},
      {NULL, "127.0.0.1", TCP, "::", UNKNOWN, 1},
      {NULL, "127.0.0.1", TCP, "::", V6ONLY, 0},
      {NULL, "127.0.0.1", TCP, "::ffff:127.0.0.1", DUAL, 1},
      {NULL, "127.0.0.1", TCP, "::ffff:127.0.0.2", DUAL, 0},
      {NULL, "127.0.0.1", TCP, "127.0.0.2", UNKNOWN, 0},
      {NULL, "127.0.0.1", TCP, "::1", DUAL, 0},
      {NULL, "127.0.0.1", UDP, "0.0.0.0", UNKNOWN, 0}, /* tcp by default */
      /* Protocol tcp4: IPv4, dual-stack [::], v4-mapped. */
      {"tcp4", NULL, TCP, "0.0.0.0", UNKNOWN, 1},
      {"tcp4", NULL, TCP, "192.0.2.1", UNKNOWN, 1},
      {"tcp4", NULL, TCP, "::", DUAL, 1},
      {"tcp4", NULL, TCP, "::", UNKNOWN, 1},
      {"tcp4", NULL, TCP, "::", V6ONLY, 0},
      {"tcp4", NULL, TCP, "::ffff:127.0.0.1", DUAL, 1},
      {"tcp4", NULL, TCP, "::1", DUAL, 0},
      {"tcp4", NULL, UDP, "0.0.0.0", UNKNOWN, 0},
      /* Protocol tcp6: IPv6 not v4-mapped, v6only or not. */
      {"tcp6", NULL, TCP, "::", DUAL, 1},
      {"tcp6", NULL, TCP, "::", V6ONLY, 1},
      {"tcp6", NULL, TCP, "::1", UNKNOWN, 1},
      {"tcp6", NULL, TCP, "::ffff:127.0.0.1", DUAL, 0},
      {"tcp6", NULL, TCP, "0.0.0.0", UNKNOWN, 0},
      /* Protocol tcp: either family; udp ones the same for UDP. */
      {"tcp", NULL, TCP, "::1", V6ONLY, 1},
      {"tcp", NULL, TCP, "::ffff:10.0.0.1", DUAL, 1},
      {"tcp", NULL, TCP, "10.0.0.1", UNKNOWN, 1},
      {"tcp", NULL, UDP, "10.0.0.1", UNKNOWN, 0},
      {"udp", NULL, UDP, "::", V6ONLY, 1},
      {"udp4", NULL, UDP, "::", UNKNOWN, 1},
      {"udp4", NULL, UDP, "::", V6ONLY, 0},
      {"udp4", NULL, TCP, "0.0.0.0", UNKNOWN, 0},
      {"udp6", NULL, UDP, "::", V6ONLY, 1},
      {"udp6", NULL, UDP, "0.0.0.0", UNKNOWN, 0},
      {"all", NULL, UDP, "0.0.0.0", UNKNOWN, 1},
      {"all", NULL, TCP, "::1", V6ONLY, 1},
      /* Address "::": bound to :: only, v6only or not. */
      {NULL, "::", TCP, "::", V6ONLY, 1},
      {NULL, "::", TCP, "::", DUAL, 1},
      {NULL, "::", TCP, "::1", DUAL, 0},
      {NULL, "::", TCP, "0.0.0.0", UNKNOWN, 0},
      /* An IPv6 address: itself or [::], v6only or not. */
      {NULL, "::1", TCP, "::1", V6ONLY, 1},
      {NULL, "::1", TCP, "::", V6ONLY, 1},
      {NULL, "::1", TCP, "::", DUAL, 1},
      {NULL, "::1", TCP, "::2", DUAL, 0},
      {NULL, "::1", TCP, "0.0.0.0", UNKNOWN, 0},
      {NULL, "::1", TCP, "127.0.0.1", UNKNOWN, 0},
      /* Both rules hold: tcp6 on 127.0.0.1 is a dual-stack [::] only. */
      {"tcp6", "127.0.0.1", TCP, "::", DUAL, 1},
      {"tcp6", "127.0.0.1", TCP, "127.0.0.1", UNKNOWN, 0},
      {"tcp6", "127.0.0.1", TCP, "::ffff:127.0.0.1", DUAL, 0},
      {"tcp4", "::1", TCP, "::1", DUAL, 0},
  };

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint64_t got = counted("80", cases[i].protos, cases[i].addrs,
                           cases[i].proto, cases[i].addr, 80, cases[i].v6only);

    if (got != cases[i].want)
      print_error("case %zu: Protocol %s Address %s, socket %s %s v6only %d: "
                  "counted %llu, want %llu\n",
                  i, cases[i].protos ? cases[i].protos : "-",
                  cases[i].addrs ? cases[i].addrs : "-",
                  cases[i].proto == TCP ? "tcp" : "udp", cases[i].addr,
                  cases[i].v6only, (unsigned long long)got,
                  (unsigned long long)cases[i].want);
    assert_int_equal(got, cases[i].want);
  }
  /* The port: in the item, a range met by any port in it. */
  assert_int_equal(counted("80", NULL, NULL, TCP, "0.0.0.0", 81, UNKNOWN), 0);
  assert_int_equal(
      counted("8000-8099", NULL, NULL, TCP, "0.0.0.0", 8050, UNKNOWN), 1);
  assert_int_equal(
      counted("8000-8099", NULL, NULL, TCP, "0.0.0.0", 8100, UNKNOWN), 0);
}

/* A block counts each socket that serves at least one requirement once;
 * count-missing is the number no socket serves. */
static void test_counts_and_missing(void **state) {
  struct po_watch *w = mkfinished("lo", "80 81", NULL, "127.0.0.1 ::1");
  struct po_snapshot s;
  struct po_watch_values v;
  struct po_events ev = {0};
  size_t a, b;

  (void)state;
  memset(&s, 0, sizeof(s));
  /* [::]:80 dual stack serves both addresses on 80; 127.0.0.1:81 serves
   * one on 81; tcp/[::1]:81 is missing. */
  a = fx_snap_sock(&s, IPPROTO_TCP, "::", 80);
  s.socks.v[a].v6only = 0;
  fx_snap_own(&s, a, 10, "apache2", "/usr/sbin/apache2", 0, "root");
  b = fx_snap_sock(&s, IPPROTO_TCP, "127.0.0.1", 81);
  fx_snap_own(&s, b, 11, "redis-server", "/usr/bin/redis-check-rdb", 100,
              "redis");
  fx_snap_sock(&s, IPPROTO_TCP, "10.0.0.1", 80); /* serves none */
  fx_snap_finish(&s);
  assert_int_equal(eval(w, &s, &v, &ev), 1);
  assert_int_equal(v.sockets, 2);
  assert_int_equal(v.processes, 2);
  assert_int_equal(v.missing, 1);
  expect_req_event(&ev, 0, PO_EVENT_MISSING_AT_START, "tcp/[::1]:81",
                   "tcp/[::1]:81 (lo) has no listener at start");
  /* The event counts its requirement's sockets and owners. */
  assert_int_equal(ev.v[0].sockets, 0);
  assert_int_equal(ev.v[0].processes, 0);
  assert_string_equal(ev.v[0].owners, "[]");
  po_events_free(&ev);
  po_snapshot_free(&s);
  po_watch_free(w);
}

/* ---- one condition per requirement --------------------------------------- */

/* Port 80 443, 443 stops: one FAILURE for tcp/443 only, naming its own
 * owner; back: its OKAY. */
static void test_one_port_of_two_lost_and_back(void **state) {
  static const uint16_t both[] = {80, 443}, only80[] = {80};
  static const pid_t pids[] = {1311, 1312}, back[] = {1311, 2000};
  struct po_watch *w = mkfinished("web", "80 443", NULL, NULL);
  struct po_watch_values v;
  struct po_events ev = {0};
  const struct po_event *e;

  (void)state;
  assert_int_equal(eval_ports(w, both, pids, 2, &v, &ev), 0);
  assert_int_equal(v.sockets, 2);
  assert_int_equal(v.missing, 0);

  assert_int_equal(eval_ports(w, only80, pids, 1, &v, &ev), 1);
  e = expect_req_event(
      &ev, 0, PO_EVENT_LISTENER_LOST, "tcp/443",
      "tcp/443 (web) lost its listener; last held by nginx[1312] www-data");
  assert_int_equal(e->severity, PO_SEVERITY_FAILURE);
  assert_ptr_equal(e->watch, w);
  assert_int_equal(e->sockets, 0);
  assert_string_equal(owner_pids(e->owners), "");
  assert_non_null(e->previous_owners);
  assert_string_equal(owner_pids(e->previous_owners), "1312");
  assert_int_equal(v.sockets, 1);
  assert_int_equal(v.missing, 1);

  /* Still down: nothing more, about either port. */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(eval_ports(w, only80, pids, 1, &v, &ev), 0);
    assert_int_equal(v.missing, 1);
  }

  /* Back, held by another nginx: the OKAY of tcp/443 naming it. */
  assert_int_equal(eval_ports(w, both, back, 2, &v, &ev), 1);
  e = expect_req_event(
      &ev, 0, PO_EVENT_LISTENER_BACK, "tcp/443",
      "tcp/443 (web) has a listener again; held by nginx[2000] www-data");
  assert_int_equal(e->severity, PO_SEVERITY_OKAY);
  assert_int_equal(e->sockets, 1);
  assert_int_equal(e->processes, 1);
  assert_string_equal(owner_pids(e->owners), "2000");
  assert_null(e->previous_owners);
  assert_int_equal(v.missing, 0);

  /* Both lost: one FAILURE each, in config order, each its own owner. */
  assert_int_equal(eval_ports(w, both, back, 0, &v, &ev), 2);
  expect_req_event(
      &ev, 0, PO_EVENT_LISTENER_LOST, "tcp/80",
      "tcp/80 (web) lost its listener; last held by nginx[1311] www-data");
  expect_req_event(
      &ev, 1, PO_EVENT_LISTENER_LOST, "tcp/443",
      "tcp/443 (web) lost its listener; last held by nginx[2000] www-data");
  assert_int_equal(v.missing, 2);
  po_events_free(&ev);
  po_watch_free(w);
}

/* Hits: the FAILURE waits for Hits reads unmet (count-missing does not); a
 * blip shorter than that is nothing. */
static void test_hits_per_requirement(void **state) {
  static const uint16_t both[] = {80, 443}, only80[] = {80}, only443[] = {443};
  static const pid_t pids[] = {1, 2}, pid2[] = {2};
  struct po_watch *w = mkwatch("web", "80 443", NULL, NULL);
  struct po_watch_values v;
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(po_watch_set_hits(w, 3), 0);
  assert_int_equal(po_watch_finish(w), 0);
  assert_int_equal(eval_ports(w, both, pids, 2, &v, &ev), 0);
  /* 443 away for 2 reads: nothing; 80 away for 1 read in between. */
  assert_int_equal(eval_ports(w, only80, pids, 1, &v, &ev), 0);
  assert_int_equal(v.missing, 1);
  assert_int_equal(eval_ports(w, only80, pids, 1, &v, &ev), 0);
  assert_int_equal(eval_ports(w, both, pids, 2, &v, &ev), 0);
  assert_int_equal(eval_ports(w, only443, pid2, 1, &v, &ev), 0);
  assert_int_equal(v.missing, 1);
  assert_int_equal(eval_ports(w, both, pids, 2, &v, &ev), 0);
  /* 443 away for 3 reads: the FAILURE with the third. */
  assert_int_equal(eval_ports(w, only80, pids, 1, &v, &ev), 0);
  assert_int_equal(eval_ports(w, only80, pids, 1, &v, &ev), 0);
  assert_int_equal(eval_ports(w, only80, pids, 1, &v, &ev), 1);
  expect_req_event(&ev, 0, PO_EVENT_LISTENER_LOST, "tcp/443", NULL);
  assert_int_equal(v.missing, 1);
  po_events_free(&ev);
  po_watch_free(w);
}

/* At start: a FAILURE for each requirement nothing serves at the first
 * read (not waiting for Hits), none for the others; NotifyMissingAtStart
 * off: none, but a loss after it was served is a loss. */
static void test_at_start_per_requirement(void **state) {
  static const uint16_t p80[] = {80}, both[] = {22, 80};
  static const pid_t pid[] = {7}, pids[] = {6, 7};
  struct po_watch *w = mkwatch("ssh", "22 80", NULL, NULL);
  struct po_watch_values v;
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(po_watch_set_hits(w, 5), 0);
  assert_int_equal(po_watch_finish(w), 0);
  assert_int_equal(eval_ports(w, p80, pid, 1, &v, &ev), 1);
  expect_req_event(&ev, 0, PO_EVENT_MISSING_AT_START, "tcp/22",
                   "tcp/22 (ssh) has no listener at start");
  assert_int_equal(ev.v[0].severity, PO_SEVERITY_FAILURE);
  assert_null(ev.v[0].previous_owners);
  assert_int_equal(v.missing, 1);
  for (int i = 0; i < 6; i++)
    assert_int_equal(eval_ports(w, p80, pid, 1, &v, &ev), 0);
  assert_int_equal(eval_ports(w, both, pids, 2, &v, &ev), 1);
  expect_req_event(
      &ev, 0, PO_EVENT_LISTENER_BACK, "tcp/22",
      "tcp/22 (ssh) has a listener again; held by nginx[6] www-data");
  po_watch_free(w);

  w = mkwatch("ssh", "22 80", NULL, NULL);
  po_watch_set_notify_missing_at_start(w, 0);
  assert_int_equal(po_watch_finish(w), 0);
  assert_int_equal(eval_ports(w, p80, pid, 1, &v, &ev), 0);
  assert_int_equal(v.missing, 1);
  assert_int_equal(eval_ports(w, both, pids, 2, &v, &ev), 0);
  assert_int_equal(eval_ports(w, p80, pid, 1, &v, &ev), 1);
  expect_req_event(&ev, 0, PO_EVENT_LISTENER_LOST, "tcp/22", NULL);
  po_events_free(&ev);
  po_watch_free(w);
}

/* Address "127.0.0.1" on a dual-stack [::] listener (Debian's apache): no
 * FAILURE at start. On a v6only one: the FAILURE names the requirement. */
static void test_dual_stack_listener_at_start(void **state) {
  struct po_events ev = {0};
  struct po_watch_values v;

  (void)state;
  for (int v6only = 0; v6only <= 1; v6only++) {
    struct po_watch *w = mkfinished("apache", "80", NULL, "127.0.0.1");
    struct po_snapshot s;
    size_t k;

    memset(&s, 0, sizeof(s));
    k = fx_snap_sock(&s, IPPROTO_TCP, "::", 80);
    s.socks.v[k].v6only = (int8_t)v6only;
    fx_snap_own(&s, k, 2564, "apache2", "/usr/sbin/apache2", 0, "root");
    fx_snap_finish(&s);
    if (!v6only) {
      assert_int_equal(eval(w, &s, &v, &ev), 0);
      assert_int_equal(v.sockets, 1);
      assert_int_equal(v.processes, 1);
      assert_int_equal(v.missing, 0);
    } else {
      assert_int_equal(eval(w, &s, &v, &ev), 1);
      expect_req_event(&ev, 0, PO_EVENT_MISSING_AT_START, "tcp/127.0.0.1:80",
                       "tcp/127.0.0.1:80 (apache) has no listener at start");
      assert_int_equal(v.sockets, 0);
      assert_int_equal(v.missing, 1);
    }
    po_snapshot_free(&s);
    po_watch_free(w);
  }
  po_events_free(&ev);
}

/* The identifier of each kind of event, and a buffer too small for one. */
static void test_type_instance(void **state) {
  static const struct {
    const char *ports, *protos, *addrs, *want;
  } cases[] = {
      {"443", NULL, NULL, "listener-tcp-443"},
      {"8000-8099", NULL, NULL, "listener-tcp-8000-8099"},
      {"80", NULL, "127.0.0.1", "listener-tcp-127.0.0.1:80"},
      {"80", "tcp6", "::1", "listener-tcp6-[::1]:80"},
      {"53", "udp4", "0.0.0.0", "listener-udp4-0.0.0.0:53"},
  };
  struct po_events ev = {0};
  struct po_snapshot none;
  char ti[128];

  (void)state;
  memset(&none, 0, sizeof(none));
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct po_watch *w =
        mkfinished("n", cases[i].ports, cases[i].protos, cases[i].addrs);

    assert_int_equal(eval(w, &none, NULL, &ev), 1);
    assert_int_equal(po_event_type_instance(&ev.v[0], ti, sizeof(ti)), 0);
    assert_string_equal(ti, cases[i].want);
    assert_int_equal(po_event_type_instance(&ev.v[0], ti, strlen(ti)),
                     -ENAMETOOLONG);
    assert_int_equal(
        po_event_type_instance(&ev.v[0], ti, strlen(cases[i].want) + 1), 0);
    po_events_free(&ev);
    po_watch_free(w);
  }

  /* The other conditions keep theirs, per block, with no requirement. */
  {
    struct po_watch *w = mkwatch("ssh", "22 2222", NULL, NULL);
    struct po_snapshot s;

    assert_int_equal(po_watch_expect_user_add(w, "root"), 0);
    assert_int_equal(po_watch_finish(w), 0);
    memset(&s, 0, sizeof(s));
    fx_snap_own(&s, fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 22), 5, "sshd",
                "/usr/sbin/sshd", 1000, "alice");
    fx_snap_own(&s, fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 2222), 5, "sshd",
                "/usr/sbin/sshd", 1000, "alice");
    fx_snap_finish(&s);
    assert_int_equal(eval(w, &s, NULL, &ev), 1);
    assert_int_equal(ev.v[0].type, PO_EVENT_UNEXPECTED_OWNER);
    assert_null(ev.v[0].requirement);
    assert_int_equal(po_event_type_instance(&ev.v[0], ti, sizeof(ti)), 0);
    assert_string_equal(ti, "unexpected_owner");
    assert_true(strncmp(ev.v[0].message, "tcp/22,2222 (ssh) ", 18) == 0);
    po_events_free(&ev);
    po_snapshot_free(&s);
    po_watch_free(w);
  }
}

/* 50 ranges: 50 requirements, each its own FAILURE with its own short
 * label; the block's port list, in the other conditions' messages, is cut
 * with "..." and the message stays under PO_MESSAGE_MAX. */
static void test_many_items(void **state) {
  struct po_watch *w = po_watch_new("many");
  struct po_events ev = {0};
  struct po_snapshot s;
  char want[80], req[32];

  (void)state;
  assert_non_null(w);
  for (unsigned p = 1000; p < 1100; p += 2) {
    struct po_range r = {(uint16_t)p, (uint16_t)(p + 1)};

    assert_int_equal(po_watch_port_add(w, &r), 0);
  }
  assert_int_equal(po_watch_expect_user_add(w, "root"), 0);
  assert_int_equal(po_watch_finish(w), 0);
  assert_int_equal(po_watch_requirements(w), 50);
  memset(&s, 0, sizeof(s));
  fx_snap_own(&s, fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 1051), 9, "x",
              "/usr/bin/x", 1, "daemon");
  fx_snap_finish(&s);
  assert_int_equal(eval(w, &s, NULL, &ev), 50); /* 49 missing, 1 owner */
  for (size_t i = 0, k = 0; i < 49; i++, k++) {
    if (k == 25) /* 1050-1051 is served */
      k++;
    snprintf(req, sizeof(req), "tcp/%zu-%zu", 1000 + 2 * k, 1001 + 2 * k);
    snprintf(want, sizeof(want), "%s (many) has no listener at start", req);
    expect_req_event(&ev, i, PO_EVENT_MISSING_AT_START, req, want);
  }
  assert_int_equal(ev.v[49].type, PO_EVENT_UNEXPECTED_OWNER);
  assert_true(strncmp(ev.v[49].message, "tcp/1000-1001,1002-1003,", 24) == 0);
  assert_non_null(strstr(ev.v[49].message, "... (many) is held by"));
  assert_true(strlen(ev.v[49].message) < PO_MESSAGE_MAX);
  po_events_free(&ev);
  po_snapshot_free(&s);
  po_watch_free(w);
}

/* ---- the StateFile ------------------------------------------------------- */

static char tmpdir[64];

static int setup_dir(void **state) {
  (void)state;
  fx_root_make(tmpdir, sizeof(tmpdir), NULL, "requirements");
  return 0;
}

static int teardown_dir(void **state) {
  (void)state;
  return fx_root_remove(tmpdir) == 0 ? 0 : -1;
}

/* A set of one watch "web" on ports (mkwatch's form), Hits hits, with the
 * StateFile at path loaded (when path is not NULL) for boot "b". */
static struct po_watchset *web_set(const char *ports, unsigned hits,
                                   const char *path, int want_load) {
  struct po_watchset *set = po_watchset_new();
  struct po_watch *w = mkwatch("web", ports, NULL, NULL);

  assert_non_null(set);
  assert_int_equal(po_watch_set_hits(w, hits), 0);
  assert_int_equal(po_watch_finish(w), 0);
  assert_int_equal(po_watchset_add(set, w), 0);
  if (path)
    assert_int_equal(po_state_load(set, path, "b"), want_load);
  return set;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");

  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

/* Each requirement's state comes back: a standing FAILURE is not sent
 * again, a requirement served before the restart still has its owners, and
 * the reads unmet so far still count toward Hits. */
static void test_state_round_trip(void **state) {
  static const uint16_t both[] = {80, 443}, only80[] = {80}, only443[] = {443};
  static const pid_t pids[] = {1311, 1312}, back[] = {1311, 2000};
  char path[128];
  struct po_watchset *set;
  struct po_watch *w;
  struct po_watch_values v;
  struct po_events ev = {0};

  (void)state;
  snprintf(path, sizeof(path), "%s/round.json", tmpdir);
  set = web_set("80 443", 2, NULL, 0);
  w = po_watchset_get(set, 0);
  assert_int_equal(eval_ports(w, both, pids, 2, &v, &ev), 0);
  assert_int_equal(eval_ports(w, only80, pids, 1, &v, &ev), 0);
  assert_int_equal(eval_ports(w, only80, pids, 1, &v, &ev), 1);
  expect_req_event(&ev, 0, PO_EVENT_LISTENER_LOST, "tcp/443", NULL);
  assert_int_equal(po_state_save(set, path, "b"), 1);
  po_watchset_free(set);

  /* Restart, 443 still down: nothing; tcp/80 fine. Saved as loaded. */
  set = web_set("80 443", 2, path, 0);
  w = po_watchset_get(set, 0);
  assert_int_equal(po_state_save(set, path, "b"), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(eval_ports(w, only80, pids, 1, &v, &ev), 0);
  assert_int_equal(v.missing, 1);
  po_watchset_free(set);

  /* Restart, 443 back while stopped: its OKAY at the first read. */
  set = web_set("80 443", 2, path, 0);
  w = po_watchset_get(set, 0);
  assert_int_equal(eval_ports(w, both, back, 2, &v, &ev), 1);
  expect_req_event(
      &ev, 0, PO_EVENT_LISTENER_BACK, "tcp/443",
      "tcp/443 (web) has a listener again; held by nginx[2000] www-data");
  /* One read unmet for 80 (of Hits 2), then a restart. */
  assert_int_equal(eval_ports(w, only443, back + 1, 1, &v, &ev), 0);
  assert_int_equal(po_state_save(set, path, "b"), 1);
  po_watchset_free(set);

  /* The second unmet read after the restart is the FAILURE, naming the
   * owner tcp/80 had before the restart. */
  set = web_set("80 443", 2, path, 0);
  w = po_watchset_get(set, 0);
  assert_int_equal(eval_ports(w, only443, back + 1, 1, &v, &ev), 1);
  expect_req_event(
      &ev, 0, PO_EVENT_LISTENER_LOST, "tcp/80",
      "tcp/80 (web) lost its listener; last held by nginx[1311] www-data");
  assert_string_equal(owner_pids(ev.v[0].previous_owners), "1311");
  assert_int_equal(po_state_save(set, path, "b"), 1);
  po_watchset_free(set);

  /* The config changes to Port 80 8080: tcp/80 keeps its standing FAILURE
   * (nothing while still down), tcp/8080 is new (its FAILURE at start),
   * tcp/443 is dropped from the file. */
  set = web_set("80 8080", 2, path, 0);
  w = po_watchset_get(set, 0);
  assert_int_equal(eval_ports(w, only443, back + 1, 1, &v, &ev), 1);
  expect_req_event(&ev, 0, PO_EVENT_MISSING_AT_START, "tcp/8080", NULL);
  assert_int_equal(v.missing, 2);
  assert_int_equal(po_state_save(set, path, "b"), 1);
  {
    FILE *f = fopen(path, "r");
    char text[8192];
    size_t n;

    assert_non_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "\"version\": 2"));
    assert_non_null(strstr(text, "\"tcp/80\""));
    assert_non_null(strstr(text, "\"tcp/8080\""));
    assert_null(strstr(text, "\"tcp/443\""));
  }
  po_watchset_free(set);

  /* AllNamespaces on: other sockets, every requirement starts fresh. */
  set = po_watchset_new();
  assert_non_null(set);
  w = mkwatch("web", "80 8080", NULL, NULL);
  po_watch_set_all_namespaces(w, 1);
  assert_int_equal(po_watch_finish(w), 0);
  assert_int_equal(po_watchset_add(set, w), 0);
  assert_int_equal(po_state_load(set, path, "b"), 0);
  assert_int_equal(eval_ports(w, only443, back + 1, 1, &v, &ev), 2);
  expect_req_event(&ev, 0, PO_EVENT_MISSING_AT_START, "tcp/80", NULL);
  expect_req_event(&ev, 1, PO_EVENT_MISSING_AT_START, "tcp/8080", NULL);
  po_watchset_free(set);
  po_events_free(&ev);
}

/* A version 1 file (one listener state per block) is not read: -EPROTO and
 * a fresh start. A requirement listed twice is a corrupt file. */
static void test_state_old_and_bad(void **state) {
  static const char v1[] =
      "{\"version\":1,\"boot_id\":\"b\",\"watches\":[{\"name\":\"web\","
      "\"spec\":\"tcp 80 *\",\"started\":true,\"ever_up\":true,"
      "\"empty_reads\":0,\"listener_failure\":true,\"unexpected_failure\":"
      "false,\"owners\":[]}]}";
  static const char twice[] =
      "{\"version\":2,\"boot_id\":\"b\",\"watches\":[{\"name\":\"web\","
      "\"spec\":\"tcp 80 *\",\"all_namespaces\":false,"
      "\"unexpected_failure\":false,\"owners\":[],\"requirements\":["
      "{\"name\":\"tcp/80\",\"started\":true,\"ever_up\":true,"
      "\"empty_reads\":0,\"listener_failure\":true,\"owners\":[]},"
      "{\"name\":\"tcp/80\",\"started\":true,\"ever_up\":true,"
      "\"empty_reads\":0,\"listener_failure\":true,\"owners\":[]}]}]}";
  static const char once[] =
      "{\"version\":2,\"boot_id\":\"b\",\"watches\":[{\"name\":\"web\","
      "\"spec\":\"tcp 80 *\",\"all_namespaces\":false,"
      "\"unexpected_failure\":false,\"owners\":[],\"requirements\":["
      "{\"name\":\"tcp/80\",\"started\":true,\"ever_up\":true,"
      "\"empty_reads\":0,\"listener_failure\":true,\"owners\":[]},"
      "{\"name\":\"tcp/9\",\"started\":true,\"ever_up\":true,"
      "\"empty_reads\":0,\"listener_failure\":true,\"owners\":[]}]}]}";
  char path[128];
  struct po_watchset *set;
  struct po_events ev = {0};

  (void)state;
  snprintf(path, sizeof(path), "%s/old.json", tmpdir);
  write_text(path, v1);
  set = web_set("80", 1, path, -EPROTO);
  assert_int_equal(
      eval_ports(po_watchset_get(set, 0), NULL, NULL, 0, NULL, &ev), 1);
  expect_req_event(&ev, 0, PO_EVENT_MISSING_AT_START, "tcp/80", NULL);
  /* Replaced by a version 2 file at the next save. */
  assert_int_equal(po_state_save(set, path, "b"), 1);
  po_watchset_free(set);
  set = web_set("80", 1, path, 0);
  po_watchset_free(set);

  write_text(path, twice);
  set = web_set("80", 1, path, -EBADMSG);
  assert_int_equal(
      eval_ports(po_watchset_get(set, 0), NULL, NULL, 0, NULL, &ev), 1);
  expect_req_event(&ev, 0, PO_EVENT_MISSING_AT_START, "tcp/80", NULL);
  po_watchset_free(set);

  /* The same with the second entry another (unconfigured) requirement:
   * read, tcp/80's FAILURE stands, tcp/9 dropped. */
  write_text(path, once);
  set = web_set("80", 1, path, 0);
  assert_int_equal(
      eval_ports(po_watchset_get(set, 0), NULL, NULL, 0, NULL, &ev), 0);
  po_watchset_free(set);
  po_events_free(&ev);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_derive_ports),
      cmocka_unit_test(test_derive_protocols_and_addresses),
      cmocka_unit_test(test_query_asks_for_ipv6_for_ipv4),
      cmocka_unit_test(test_serves),
      cmocka_unit_test(test_counts_and_missing),
      cmocka_unit_test(test_one_port_of_two_lost_and_back),
      cmocka_unit_test(test_hits_per_requirement),
      cmocka_unit_test(test_at_start_per_requirement),
      cmocka_unit_test(test_dual_stack_listener_at_start),
      cmocka_unit_test(test_type_instance),
      cmocka_unit_test(test_many_items),
      cmocka_unit_test(test_state_round_trip),
      cmocka_unit_test(test_state_old_and_bad),
  };

  fx_set_failure(fx_fail_cmocka);
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
