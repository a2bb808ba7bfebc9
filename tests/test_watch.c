/*
 * Unit tests: the watch model and its state machine, on snapshots built by
 * hand (fx_snap_*, fixture.h), each event checked by the expect_event()
 * family; the owners JSON through yajl's own parser; the StateFile; the
 * config value parsers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
#include <yajl/yajl_tree.h>

#include "portowner/portspec.h"
#include "portowner/snapshot.h"
#include "portowner/config_value.h"
#include "portowner/fileio.h"
#include "portowner/statefile.h"
#include "portowner/watch.h"
#include "fixture.h"

#define OWN_NS FX_NETNS
#define OTHER_NS 4026532000ull

/* ---- helpers
 * ------------------------------------------------------------------ */

static struct po_watch *mkwatch(const char *name, const char *ports,
                                const char *proto) {
  struct po_watch *w = po_watch_new(name);

  assert_non_null(w);
  assert_int_equal(po_watch_port_add_string(w, ports, NULL), 0);
  if (proto)
    assert_int_equal(po_watch_protocol_add(w, proto), 0);
  return w;
}

static void finish(struct po_watch *w) {
  assert_int_equal(po_watch_finish(w), 0);
}

/* Evaluates s for w; returns the number of new events. */
static size_t eval(struct po_watch *w, const struct po_snapshot *s,
                   struct po_watch_values *v, struct po_events *ev) {
  struct po_watch_values tmp;

  po_events_clear(ev);
  assert_int_equal(po_watch_eval(w, s, OWN_NS, v ? v : &tmp, ev), 0);
  return ev->len;
}

/* An empty snapshot. */
static size_t eval_empty(struct po_watch *w, struct po_events *ev) {
  struct po_snapshot s;
  size_t n;

  memset(&s, 0, sizeof(s));
  n = eval(w, &s, NULL, ev);
  po_snapshot_free(&s);
  return n;
}

/* One tcp/80 listener held by one process. */
static size_t eval_one(struct po_watch *w, pid_t pid, const char *comm,
                       const char *exe, uint32_t uid, const char *user,
                       struct po_events *ev) {
  struct po_snapshot s;
  size_t n;

  memset(&s, 0, sizeof(s));
  fx_snap_own(&s, fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 80), pid, comm, exe,
              uid, user);
  fx_snap_finish(&s);
  n = eval(w, &s, NULL, ev);
  po_snapshot_free(&s);
  return n;
}

static int netns_cmp(const void *a, const void *b) {
  const struct po_netns *x = a, *y = b;

  return (x->netns > y->netns) - (x->netns < y->netns);
}

/* Records netns in s->nsv as po_snapshot_take() does for a namespace it
 * met: trusted (owned by the initial user namespace) or a user's own
 * (uid 65534's). */
static void snap_netns(struct po_snapshot *s, uint64_t netns, int trusted) {
  struct po_netns *v = realloc(s->nsv, (s->nns + 1) * sizeof(*v));

  assert_non_null(v);
  s->nsv = v;
  memset(&v[s->nns], 0, sizeof(*v));
  v[s->nns].netns = netns;
  v[s->nns].userns = trusted ? 4026531837ull : 4026532100ull;
  v[s->nns].owner_uid = trusted ? 0 : 65534;
  v[s->nns].trusted = trusted;
  v[s->nns].read = 1;
  s->nns++;
  qsort(s->nsv, s->nns, sizeof(*s->nsv), netns_cmp);
}

static size_t eval_nginx(struct po_watch *w, pid_t pid, struct po_events *ev) {
  return eval_one(w, pid, "nginx", "/usr/sbin/nginx", 33, "www-data", ev);
}

static int utf8_clean(const char *s) {
  const unsigned char *u = (const unsigned char *)s;

  for (size_t i = 0; u[i];) {
    size_t n = u[i] < 0x80         ? 1
               : (u[i] >> 5) == 6  ? 2
               : (u[i] >> 4) == 14 ? 3
               : (u[i] >> 3) == 30 ? 4
                                   : 0;
    if (n == 0 || u[i] < 0x20 || u[i] == 0x7f)
      return 0;
    for (size_t k = 1; k < n; k++)
      if ((u[i + k] & 0xc0) != 0x80)
        return 0;
    i += n;
  }
  return 1;
}

/*
 * The expect_* family: each checks one event the way a user reading the
 * notification would, and a failure names the line that called it (the
 * checks are cmocka's, given the caller's __FILE__ and __LINE__).
 */
#define AT_TRUE(c)                                                             \
  _assert_true(cast_to_largest_integral_type(c), #c, file, line)
#define AT_INT(a, b)                                                           \
  _assert_int_equal(cast_to_largest_integral_type(a),                          \
                    cast_to_largest_integral_type(b), file, line)
#define AT_STR(a, b) _assert_string_equal((a), (b), file, line)

/* The length of a JSON array (which it must be). */
static size_t json_array_len_at(const char *file, int line, const char *json) {
  char err[128];
  yajl_val v;
  size_t n;

  AT_TRUE(!!json);
  v = yajl_tree_parse(json, err, sizeof(err));
  if (!v)
    print_error("not JSON (%s): %s\n", err, json);
  AT_TRUE(v && YAJL_IS_ARRAY(v));
  n = v->u.array.len;
  yajl_tree_free(v);
  return n;
}
#define json_array_len(json) json_array_len_at(__FILE__, __LINE__, json)

/* What every event is, whatever it says (watch.h): a message of clean
 * UTF-8 under PO_MESSAGE_MAX; the severity, name and condition of its type;
 * owners a JSON array of its owners_total (== processes) owners, at most
 * PO_OWNERS_MAX; previous_owners such an array for a loss or an owner
 * change, and NULL for every other type. */
static void check_event_at(const char *file, int line,
                           const struct po_event *e) {
  static const struct {
    enum po_event_type type;
    enum po_severity severity;
    const char *name, *condition;
    int previous;
  } types[] = {
      {PO_EVENT_LISTENER_LOST, PO_SEVERITY_FAILURE, "listener_lost", "listener",
       1},
      {PO_EVENT_MISSING_AT_START, PO_SEVERITY_FAILURE, "missing_at_start",
       "listener", 0},
      {PO_EVENT_LISTENER_BACK, PO_SEVERITY_OKAY, "listener_back", "listener",
       0},
      {PO_EVENT_OWNER_CHANGED, PO_SEVERITY_WARNING, "owner_changed",
       "owner_change", 1},
      {PO_EVENT_UNEXPECTED_OWNER, PO_SEVERITY_FAILURE, "unexpected_owner",
       "unexpected_owner", 0},
      {PO_EVENT_EXPECTED_OWNER, PO_SEVERITY_OKAY, "expected_owner",
       "unexpected_owner", 0},
      {PO_EVENT_RESTARTED, PO_SEVERITY_WARNING, "restarted", "restart", 1},
  };
  size_t t = 0;

  while (t < sizeof(types) / sizeof(types[0]) && types[t].type != e->type)
    t++;
  AT_TRUE(t < sizeof(types) / sizeof(types[0])); /* a known type */
  AT_INT(e->severity, types[t].severity);
  AT_STR(po_event_type_name(e->type), types[t].name);
  AT_STR(po_event_condition(e->type), types[t].condition);
  /* A listener event names its requirement, and its message starts so. */
  if (strcmp(types[t].condition, "listener") == 0)
    AT_TRUE(e->requirement &&
            strncmp(e->message, e->requirement, strlen(e->requirement)) == 0);
  else
    AT_TRUE(!e->requirement);
  AT_TRUE(e->message[0] != '\0');
  AT_TRUE(strlen(e->message) < PO_MESSAGE_MAX);
  AT_TRUE(utf8_clean(e->message));
  AT_INT(e->processes, e->owners_total);
  AT_INT(json_array_len_at(file, line, e->owners),
         e->owners_total < PO_OWNERS_MAX ? e->owners_total : PO_OWNERS_MAX);
  if (types[t].previous)
    AT_TRUE(json_array_len_at(file, line, e->previous_owners) <= PO_OWNERS_MAX);
  else
    AT_TRUE(!e->previous_owners);
}

/* Event i of ev: there is one, of type type, all that check_event_at()
 * checks, and, unless message is NULL, saying exactly message. */
static const struct po_event *expect_event_at(const char *file, int line,
                                              const struct po_events *ev,
                                              size_t i, enum po_event_type type,
                                              const char *message) {
  const struct po_event *e;

  AT_TRUE(i < ev->len);
  e = &ev->v[i];
  AT_INT(e->type, type);
  check_event_at(file, line, e);
  if (message)
    AT_STR(e->message, message);
  return e;
}
#define expect_event(ev, i, type, message)                                     \
  expect_event_at(__FILE__, __LINE__, ev, i, type, message)

/* expect_event() for a message that says part somewhere. */
static const struct po_event *
expect_event_saying_at(const char *file, int line, const struct po_events *ev,
                       size_t i, enum po_event_type type, const char *part) {
  const struct po_event *e = expect_event_at(file, line, ev, i, type, NULL);

  if (!strstr(e->message, part))
    print_error("event %zu says \"%s\", not \"%s\"\n", i, e->message, part);
  AT_TRUE(!!strstr(e->message, part));
  return e;
}
#define expect_event_saying(ev, i, type, part)                                 \
  expect_event_saying_at(__FILE__, __LINE__, ev, i, type, part)

/* Owner i of the owners JSON array json has pid and, where not NULL, comm,
 * exe and user (as strings). */
static void expect_owner_at(const char *file, int line, const char *json,
                            size_t i, long long pid, const char *comm,
                            const char *exe, const char *user) {
  const char *kp[] = {"pid", NULL}, *kc[] = {"comm", NULL},
             *ke[] = {"exe", NULL}, *ku[] = {"user", NULL};
  yajl_val v, o;

  AT_TRUE(i < json_array_len_at(file, line, json));
  v = yajl_tree_parse(json, NULL, 0);
  o = v->u.array.values[i];
  AT_INT(YAJL_GET_INTEGER(yajl_tree_get(o, kp, yajl_t_number)), pid);
  if (comm)
    AT_STR(YAJL_GET_STRING(yajl_tree_get(o, kc, yajl_t_string)), comm);
  if (exe)
    AT_STR(YAJL_GET_STRING(yajl_tree_get(o, ke, yajl_t_string)), exe);
  if (user)
    AT_STR(YAJL_GET_STRING(yajl_tree_get(o, ku, yajl_t_string)), user);
  yajl_tree_free(v);
}
#define expect_owner(json, i, pid, comm, exe, user)                            \
  expect_owner_at(__FILE__, __LINE__, json, i, pid, comm, exe, user)

/* The event counts sockets matching listeners, and owners processes. */
static void expect_counts_at(const char *file, int line,
                             const struct po_event *e, uint64_t sockets,
                             uint64_t owners) {
  AT_INT(e->sockets, sockets);
  AT_INT(e->processes, owners);
  AT_INT(e->owners_total, owners);
}
#define expect_counts(e, sockets, owners)                                      \
  expect_counts_at(__FILE__, __LINE__, e, sockets, owners)

/* ---- values
 * -------------------------------------------------------------------- */

static void test_values(void **state) {
  struct po_watch *w = mkwatch("web", "80,8000-8099", NULL);
  struct po_watch *u = mkwatch("dns", "53", "udp");
  struct po_snapshot s;
  struct po_watch_values v;
  struct po_events ev = {0};
  size_t a, b, c;

  (void)state;
  finish(w);
  finish(u);
  memset(&s, 0, sizeof(s));
  /* Prefork: one socket, a parent and three workers. */
  a = fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 80);
  s.socks.v[a].rqueue = 3;
  s.socks.v[a].wqueue = 511;
  fx_snap_own(&s, a, 100, "nginx", "/usr/sbin/nginx", 0, "root");
  for (pid_t p = 101; p <= 103; p++)
    fx_snap_own(&s, a, p, "nginx", "/usr/sbin/nginx", 33, "www-data");
  /* The same workers on [::]:80. */
  b = fx_snap_sock(&s, IPPROTO_TCP, "::", 80);
  s.socks.v[b].rqueue = 2;
  s.socks.v[b].wqueue = PO_QUEUE_UNKNOWN; /* /proc/net: limit unknown */
  fx_snap_own(&s, b, 101, "nginx", "/usr/sbin/nginx", 33, "www-data");
  /* Unowned (no privilege to see its owner). */
  c = fx_snap_sock(&s, IPPROTO_TCP, "127.0.0.1", 8080);
  s.socks.v[c].wqueue = 10;
  /* Not ours: a UDP socket on 80, a TCP socket on 8100, another netns. */
  fx_snap_sock(&s, IPPROTO_UDP, "0.0.0.0", 80);
  fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 8100);
  c = fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 8000);
  s.socks.v[c].netns = OTHER_NS;
  /* UDP 53: its receive queue is not an accept queue. */
  c = fx_snap_sock(&s, IPPROTO_UDP, "0.0.0.0", 53);
  s.socks.v[c].rqueue = 999;
  fx_snap_finish(&s);

  eval(w, &s, &v, &ev);
  assert_int_equal(v.sockets, 3);
  assert_int_equal(v.processes, 4);
  assert_int_equal(v.unowned, 1);
  assert_int_equal(v.accept, 5);
  assert_int_equal(v.accept_max, 511 + 0 + 10);

  eval(u, &s, &v, &ev);
  assert_int_equal(v.sockets, 1);
  assert_int_equal(v.processes, 0);
  assert_int_equal(v.unowned, 1);
  assert_int_equal(v.accept, 0);
  assert_int_equal(v.accept_max, 0);

  /* AllNamespaces (true: trusted) counts the other namespace's socket
   * too when it is trusted; one the snapshot knows nothing of is not. */
  po_watch_free(w);
  w = mkwatch("web", "80,8000-8099", NULL);
  po_watch_set_all_namespaces(w, 1);
  finish(w);
  assert_int_equal(po_watch_all_namespaces(w), PO_NS_TRUSTED);
  eval(w, &s, &v, &ev);
  assert_int_equal(v.sockets, 3);
  snap_netns(&s, OTHER_NS, 1);
  eval(w, &s, &v, &ev);
  assert_int_equal(v.sockets, 4);

  po_events_free(&ev);
  po_snapshot_free(&s);
  po_watch_free(w);
  po_watch_free(u);
}

static void test_values_addresses(void **state) {
  struct po_snapshot s;
  struct po_watch_values v;
  struct po_events ev = {0};
  struct po_watch *any4, *any6, *lo4, *lo6;

  (void)state;
  memset(&s, 0, sizeof(s));
  fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 80);
  fx_snap_sock(&s, IPPROTO_TCP, "::", 80);
  fx_snap_sock(&s, IPPROTO_TCP, "127.0.0.1", 80);
  fx_snap_sock(&s, IPPROTO_TCP, "::ffff:127.0.0.1", 80); /* tcp6, v4-mapped */
  fx_snap_sock(&s, IPPROTO_TCP, "::1", 80);
  fx_snap_sock(&s, IPPROTO_TCP, "192.0.2.1", 80);
  fx_snap_finish(&s);

  any4 = mkwatch("a", "80", NULL);
  assert_int_equal(po_watch_address_add(any4, "0.0.0.0"), 0);
  finish(any4);
  any6 = mkwatch("b", "80", NULL);
  assert_int_equal(po_watch_address_add(any6, "::"), 0);
  finish(any6);
  lo4 = mkwatch("c", "80", NULL);
  assert_int_equal(po_watch_address_add(lo4, "127.0.0.1"), 0);
  finish(lo4);
  lo6 = mkwatch("d", "80", NULL);
  assert_int_equal(po_watch_address_add(lo6, "::1"), 0);
  assert_int_equal(po_watch_address_add(lo6, "0.0.0.0"), 0);
  finish(lo6);
  assert_string_equal(po_watch_addresses(lo6), "::1,0.0.0.0");

  /* [::] has v6only unknown (as /proc/net shows it): dual stack, so it
   * accepts IPv4 too. */
  eval(any4, &s, &v, &ev);
  assert_int_equal(v.sockets, 2); /* the v4 wildcard and dual-stack [::] */
  eval(any6, &s, &v, &ev);
  assert_int_equal(v.sockets, 1); /* only the v6 wildcard */
  eval(lo4, &s, &v, &ev);
  assert_int_equal(v.sockets, 4); /* 127.0.0.1, ::ffff:127.0.0.1 and the
                                     wildcards 0.0.0.0 and [::] */
  eval(lo6, &s, &v, &ev);
  assert_int_equal(v.sockets, 3); /* ::1 and [::] (::1), 0.0.0.0 and [::]
                                     (0.0.0.0) */

  po_events_free(&ev);
  po_snapshot_free(&s);
  po_watch_free(any4);
  po_watch_free(any6);
  po_watch_free(lo4);
  po_watch_free(lo6);
}

/* ---- listener lost / back
 * ---------------------------------------------------- */

/* An owner that exits between the fd walk and the details read has no
 * details in that read: the loss still names it as the read before knew it,
 * never "?[1311]". */
static void test_lost_owner_gone_before_details_keeps_name(void **state) {
  struct po_watch *w = mkwatch("web", "80", NULL);
  struct po_events ev = {0};

  (void)state;
  finish(w);
  assert_int_equal(eval_nginx(w, 1311, &ev), 0);
  /* Same pid, details unreadable (comm "", exe NULL, uid and user unknown). */
  assert_int_equal(eval_one(w, 1311, "", NULL, PO_UID_UNKNOWN, "", &ev), 0);
  assert_int_equal(eval_empty(w, &ev), 1);
  expect_event(
      &ev, 0, PO_EVENT_LISTENER_LOST,
      "tcp/80 (web) lost its listener; last held by nginx[1311] www-data");
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_lost_after_hits_and_back(void **state) {
  struct po_watch *w = mkwatch("web", "80", NULL);
  struct po_events ev = {0};
  const struct po_event *e;

  (void)state;
  assert_int_equal(po_watch_set_hits(w, 2), 0);
  finish(w);
  assert_int_equal(eval_nginx(w, 1311, &ev), 0); /* up at start: silent */
  assert_int_equal(eval_nginx(w, 1311, &ev), 0);
  assert_int_equal(eval_empty(w, &ev), 0); /* 1 of 2 empty reads */
  assert_int_equal(eval_empty(w, &ev), 1); /* 2 of 2: FAILURE */
  e = expect_event(
      &ev, 0, PO_EVENT_LISTENER_LOST,
      "tcp/80 (web) lost its listener; last held by nginx[1311] www-data");
  expect_counts(e, 0, 0);
  assert_string_equal(e->owners, "[]");
  assert_int_equal(json_array_len(e->previous_owners), 1);
  expect_owner(e->previous_owners, 0, 1311, "nginx", "/usr/sbin/nginx",
               "www-data");

  /* Still down: no repeat, ever. */
  for (int i = 0; i < 5; i++)
    assert_int_equal(eval_empty(w, &ev), 0);

  /* Back, held by a new process: OKAY naming it, no owner-change WARNING. */
  assert_int_equal(
      eval_one(w, 2000, "apache2", "/usr/sbin/apache2", 33, "www-data", &ev),
      1);
  e = expect_event(&ev, 0, PO_EVENT_LISTENER_BACK,
                   "tcp/80 (web) has a listener again; held "
                   "by apache2[2000] www-data");
  expect_counts(e, 1, 1);
  assert_int_equal(
      eval_one(w, 2000, "apache2", "/usr/sbin/apache2", 33, "www-data", &ev),
      0);

  /* Lost again: a second FAILURE, naming the last owner. */
  assert_int_equal(eval_empty(w, &ev), 0);
  assert_int_equal(eval_empty(w, &ev), 1);
  expect_event_saying(&ev, 0, PO_EVENT_LISTENER_LOST, "apache2[2000]");

  po_events_free(&ev);
  po_watch_free(w);
}

static void test_blip_shorter_than_hits(void **state) {
  struct po_watch *w = mkwatch("web", "80", NULL);
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(po_watch_set_hits(w, 3), 0);
  finish(w);
  assert_int_equal(eval_nginx(w, 10, &ev), 0);
  assert_int_equal(eval_empty(w, &ev), 0);
  assert_int_equal(eval_empty(w, &ev), 0);
  assert_int_equal(eval_nginx(w, 10, &ev), 0);
  assert_int_equal(eval_empty(w, &ev), 0);
  assert_int_equal(eval_empty(w, &ev), 0);
  assert_int_equal(eval_empty(w, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_LISTENER_LOST, NULL);
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_missing_at_start(void **state) {
  struct po_watch *w = mkwatch("web", "80", NULL);
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(po_watch_set_hits(w, 5), 0); /* not waited for at start */
  finish(w);
  assert_int_equal(eval_empty(w, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_MISSING_AT_START,
               "tcp/80 (web) has no listener at start");
  for (int i = 0; i < 10; i++)
    assert_int_equal(eval_empty(w, &ev), 0);
  assert_int_equal(eval_nginx(w, 7, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_LISTENER_BACK, NULL);
  assert_int_equal(eval_nginx(w, 7, &ev), 0);
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_missing_at_start_off(void **state) {
  struct po_watch *w = mkwatch("web", "80", NULL);
  struct po_events ev = {0};

  (void)state;
  po_watch_set_notify_missing_at_start(w, 0);
  finish(w);
  assert_int_equal(eval_empty(w, &ev), 0);
  assert_int_equal(eval_empty(w, &ev), 0);
  assert_int_equal(eval_nginx(w, 7, &ev), 0); /* nothing was standing */
  assert_int_equal(eval_empty(w, &ev), 1);    /* but a loss is a loss */
  expect_event(&ev, 0, PO_EVENT_LISTENER_LOST, NULL);
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_unowned_socket_is_a_listener(void **state) {
  struct po_watch *w = mkwatch("web", "80", NULL);
  struct po_events ev = {0};
  struct po_snapshot s;
  struct po_watch_values v;

  (void)state;
  finish(w);
  memset(&s, 0, sizeof(s));
  fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 80);
  fx_snap_finish(&s);
  assert_int_equal(eval_empty(w, &ev), 1); /* missing at start */
  expect_event(&ev, 0, PO_EVENT_MISSING_AT_START, NULL);
  assert_int_equal(eval(w, &s, &v, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_LISTENER_BACK,
               "tcp/80 (web) has a listener again; owner unknown");
  assert_int_equal(v.unowned, 1);
  /* Owners unknown: no owner change, no expectation verdict. */
  assert_int_equal(eval(w, &s, &v, &ev), 0);
  assert_int_equal(eval_nginx(w, 9, &ev), 0);
  assert_int_equal(eval(w, &s, &v, &ev), 0);
  assert_int_equal(eval_nginx(w, 9, &ev), 0);
  po_snapshot_free(&s);
  po_events_free(&ev);
  po_watch_free(w);
}

/* ---- owner changed ----------------------------------------------------------
 */

static void test_owner_changed_program(void **state) {
  struct po_watch *w = mkwatch("web", "80", NULL);
  struct po_events ev = {0};
  const struct po_event *e;

  (void)state;
  finish(w);
  assert_int_equal(eval_nginx(w, 1311, &ev), 0);
  /* OwnerChangeHits (2): the first read of another program is not yet. */
  assert_int_equal(
      eval_one(w, 1400, "apache2", "/usr/sbin/apache2", 33, "www-data", &ev),
      0);
  assert_int_equal(
      eval_one(w, 1400, "apache2", "/usr/sbin/apache2", 33, "www-data", &ev),
      1);
  e = expect_event(&ev, 0, PO_EVENT_OWNER_CHANGED,
                   "tcp/80 (web) changed owner: nginx[1311] www-data -> "
                   "apache2[1400] www-data");
  expect_owner(e->previous_owners, 0, 1311, "nginx", "/usr/sbin/nginx",
               "www-data");
  expect_owner(e->owners, 0, 1400, "apache2", "/usr/sbin/apache2", "www-data");
  /* Stable again: silent. */
  assert_int_equal(
      eval_one(w, 1400, "apache2", "/usr/sbin/apache2", 33, "www-data", &ev),
      0);
  /* Same program, another user: a change. */
  assert_int_equal(
      eval_one(w, 1400, "apache2", "/usr/sbin/apache2", 0, "root", &ev), 0);
  assert_int_equal(
      eval_one(w, 1400, "apache2", "/usr/sbin/apache2", 0, "root", &ev), 1);
  expect_event(&ev, 0, PO_EVENT_OWNER_CHANGED, NULL);
  /* The binary upgraded under a running process: not a change. */
  assert_int_equal(eval_one(w, 1400, "apache2", "/usr/sbin/apache2 (deleted)",
                            0, "root", &ev),
                   0);
  po_events_free(&ev);
  po_watch_free(w);
}

/* One tcp/80 listener held by two nginx processes, a and b. */
static size_t eval_nginx_pair(struct po_watch *w, pid_t a, pid_t b,
                              struct po_events *ev) {
  struct po_snapshot s;
  size_t k, n;

  memset(&s, 0, sizeof(s));
  k = fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 80);
  fx_snap_own(&s, k, a, "nginx", "/usr/sbin/nginx", 33, "www-data");
  fx_snap_own(&s, k, b, "nginx", "/usr/sbin/nginx", 33, "www-data");
  fx_snap_finish(&s);
  n = eval(w, &s, NULL, ev);
  po_snapshot_free(&s);
  return n;
}

static void test_owner_changed_pids_replaced(void **state) {
  struct po_watch *w = mkwatch("web", "80", NULL);
  struct po_events ev = {0};

  (void)state;
  finish(w);
  /* master 100 and worker 101 */
  assert_int_equal(eval_nginx_pair(w, 100, 101, &ev), 0);
  /* A reload: the master stays, workers are replaced: no change. */
  assert_int_equal(eval_nginx_pair(w, 100, 150, &ev), 0);
  /* Every pid is new, the same program, user and socket: a handover, no
   * change (every pid replaced alone is none). */
  assert_int_equal(eval_nginx_pair(w, 200, 201, &ev), 0);
  assert_int_equal(eval_nginx_pair(w, 200, 201, &ev), 0);
  assert_int_equal(eval_nginx_pair(w, 300, 301, &ev), 0);
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_owner_change_within_hits(void **state) {
  struct po_watch *w = mkwatch("web", "80", NULL);
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(po_watch_set_hits(w, 3), 0);
  finish(w);
  assert_int_equal(eval_nginx(w, 10, &ev), 0);
  assert_int_equal(eval_empty(w, &ev), 0); /* a restart shorter than Hits */
  /* The same program and user: no change (NotifyRestart off). */
  assert_int_equal(eval_nginx(w, 11, &ev), 0);
  assert_int_equal(eval_nginx(w, 11, &ev), 0);
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_owner_change_off(void **state) {
  struct po_watch *w = mkwatch("web", "80", NULL);
  struct po_events ev = {0};

  (void)state;
  po_watch_set_notify_owner_change(w, 0);
  finish(w);
  assert_int_equal(eval_nginx(w, 10, &ev), 0);
  assert_int_equal(eval_nginx(w, 11, &ev), 0);
  assert_int_equal(
      eval_one(w, 12, "apache2", "/usr/sbin/apache2", 0, "root", &ev), 0);
  po_events_free(&ev);
  po_watch_free(w);
}

/* ---- expectations
 * --------------------------------------------------------------- */

static void test_unexpected_process(void **state) {
  struct po_watch *w = mkwatch("ssh", "80", "tcp");
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(po_watch_expect_process_add(w, "sshd", NULL, 0), 0);
  po_watch_set_notify_owner_change(w, 0);
  finish(w);
  /* Its exe unknown: not judged by ExpectProcess (never by the comm). */
  assert_int_equal(eval_one(w, 800, "sshd", NULL, 0, "root", &ev), 0);
  /* Matches by exe basename although comm differs. */
  assert_int_equal(
      eval_one(w, 801, "sshd: listener", "/usr/sbin/sshd", 0, "root", &ev), 0);
  /* dropbear: FAILURE once. */
  assert_int_equal(
      eval_one(w, 900, "dropbear", "/usr/sbin/dropbear", 0, "root", &ev), 1);
  expect_event(
      &ev, 0, PO_EVENT_UNEXPECTED_OWNER,
      "tcp/80 (ssh) is held by an unexpected owner: dropbear[900] root");
  for (int i = 0; i < 3; i++)
    assert_int_equal(
        eval_one(w, 900, "dropbear", "/usr/sbin/dropbear", 0, "root", &ev), 0);
  /* While the port is down the condition stands: no OKAY, no repeat. */
  po_watch_set_notify_missing_at_start(w, 0);
  assert_int_equal(eval_empty(w, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_LISTENER_LOST, NULL);
  assert_int_equal(eval_one(w, 901, "sshd", "/usr/sbin/sshd", 0, "root", &ev),
                   2);
  expect_event(&ev, 0, PO_EVENT_LISTENER_BACK, NULL);
  expect_event(&ev, 1, PO_EVENT_EXPECTED_OWNER,
               "tcp/80 (ssh) is held by expected owners again: sshd[901] root");
  assert_int_equal(eval_one(w, 901, "sshd", "/usr/sbin/sshd", 0, "root", &ev),
                   0);
  /* An owner whose details could not be read is not judged. */
  assert_int_equal(eval_one(w, 902, "", NULL, PO_UID_UNKNOWN, "", &ev), 0);
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_unexpected_regex_and_path(void **state) {
  struct po_watch *w = mkwatch("web", "80", NULL);
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(
      po_watch_expect_process_add(w, "/\\/(nginx|apache2)$/", NULL, 0), 0);
  /* A path must name a file now (paths that do: test_owners.c). */
  assert_int_equal(
      po_watch_expect_process_add(w, "/opt/web/bin/server", NULL, 0), -ENOENT);
  po_watch_set_notify_owner_change(w, 0);
  finish(w);
  assert_int_equal(eval_nginx(w, 1, &ev), 0);
  assert_int_equal(
      eval_one(w, 2, "apache2", "/usr/sbin/apache2", 0, "root", &ev), 0);
  /* Anchored: "nginx-debug" does not match /nginx$. */
  assert_int_equal(
      eval_one(w, 4, "nginx-debug", "/usr/sbin/nginx-debug", 0, "root", &ev),
      1);
  expect_event(&ev, 0, PO_EVENT_UNEXPECTED_OWNER, NULL);
  /* Another unexpected owner while the FAILURE stands: named again. */
  assert_int_equal(eval_one(w, 5, "server", "/tmp/server", 0, "root", &ev), 1);
  expect_event(&ev, 0, PO_EVENT_UNEXPECTED_OWNER,
               "tcp/80 (web) is held by an unexpected owner: server[5] root");
  assert_int_equal(eval_one(w, 5, "server", "/tmp/server", 0, "root", &ev),
                   0); /* standing */
  assert_int_equal(eval_nginx(w, 6, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_EXPECTED_OWNER, NULL);
  assert_int_equal(eval_one(w, 5, "server", "/tmp/server", 0, "root", &ev), 1);
  expect_event(&ev, 0, PO_EVENT_UNEXPECTED_OWNER, NULL);
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_unexpected_user(void **state) {
  struct po_watch *w = mkwatch("ssh", "80", NULL);
  struct po_watch *n = mkwatch("num", "80", NULL);
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(po_watch_expect_user_add(w, "root"), 0);
  po_watch_set_notify_owner_change(w, 0);
  finish(w);
  assert_int_equal(eval_one(w, 1, "sshd", "/usr/sbin/sshd", 0, "root", &ev), 0);
  assert_int_equal(eval_one(w, 1, "sshd", "/usr/sbin/sshd", 1000, "alice", &ev),
                   1);
  expect_event_saying(&ev, 0, PO_EVENT_UNEXPECTED_OWNER, "sshd[1] alice");
  assert_int_equal(eval_one(w, 1, "sshd", "/usr/sbin/sshd", 0, "root", &ev), 1);
  expect_event(&ev, 0, PO_EVENT_EXPECTED_OWNER, NULL);

  /* A numeric uid matches the uid, whatever the name. */
  assert_int_equal(po_watch_expect_user_add(n, "1000"), 0);
  po_watch_set_notify_owner_change(n, 0);
  finish(n);
  assert_int_equal(eval_one(n, 1, "x", NULL, 1000, "alice", &ev), 0);
  assert_int_equal(eval_one(n, 1, "x", NULL, 1001, "1000", &ev), 1);
  expect_event(&ev, 0, PO_EVENT_UNEXPECTED_OWNER, NULL);
  po_events_free(&ev);
  po_watch_free(w);
  po_watch_free(n);
}

/* Process and user both given: an owner must pass both. */
static void test_unexpected_both(void **state) {
  struct po_watch *w = mkwatch("ssh", "80", NULL);
  struct po_events ev = {0};

  (void)state;
  assert_int_equal(po_watch_expect_process_add(w, "sshd", NULL, 0), 0);
  assert_int_equal(po_watch_expect_user_add(w, "root"), 0);
  po_watch_set_notify_owner_change(w, 0);
  finish(w);
  assert_int_equal(eval_one(w, 1, "sshd", "/usr/sbin/sshd", 0, "root", &ev), 0);
  assert_int_equal(
      eval_one(w, 1, "sshd", "/usr/sbin/sshd", 33, "www-data", &ev), 1);
  expect_event(&ev, 0, PO_EVENT_UNEXPECTED_OWNER, NULL);
  /* Another unexpected owner, not named before: FAILURE again. */
  assert_int_equal(eval_one(w, 1, "nc", "/bin/nc", 0, "root", &ev), 1);
  expect_event(&ev, 0, PO_EVENT_UNEXPECTED_OWNER,
               "tcp/80 (ssh) is held by an unexpected owner: nc[1] root");
  assert_int_equal(eval_one(w, 1, "sshd", "/usr/sbin/sshd", 0, "root", &ev), 1);
  expect_event(&ev, 0, PO_EVENT_EXPECTED_OWNER, NULL);
  po_events_free(&ev);
  po_watch_free(w);
}

/* ---- messages and JSON
 * ------------------------------------------------------------ */

static void test_message_10000_owners(void **state) {
  struct po_watch *w = mkwatch("web", "80", NULL);
  struct po_events ev = {0};
  struct po_snapshot s;

  (void)state;
  assert_int_equal(po_watch_expect_user_add(w, "root"), 0);
  finish(w);
  assert_int_equal(eval_empty(w, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_MISSING_AT_START, NULL);
  memset(&s, 0, sizeof(s));
  fx_snap_crowd(&s, 80, 1000, 10000, "worker", "/usr/bin/worker", 33,
                "www-data");
  /* BACK and UNEXPECTED, each listing the owners. */
  assert_int_equal(eval(w, &s, NULL, &ev), 2);
  for (size_t i = 0; i < ev.len; i++) {
    const struct po_event *e = expect_event(
        &ev, i, i == 0 ? PO_EVENT_LISTENER_BACK : PO_EVENT_UNEXPECTED_OWNER,
        NULL);
    size_t len = strlen(e->message);

    assert_true(len > 200); /* filled, not cut early */
    assert_string_equal(e->message + len - 5, ", ...");
    expect_counts(e, 1, 10000);
    assert_int_equal(json_array_len(e->owners), PO_OWNERS_MAX);
    /* Lowest pids first. */
    expect_owner(e->owners, 0, 1000, "worker", "/usr/bin/worker", "www-data");
  }
  po_snapshot_free(&s);

  /* A change between two big sets: both lists cut, still < 256. */
  memset(&s, 0, sizeof(s));
  fx_snap_crowd(&s, 80, 20000, 10000, "other", "/usr/bin/other", 0, "root");
  assert_int_equal(eval(w, &s, NULL, &ev), 1); /* expected again */
  expect_event(&ev, 0, PO_EVENT_EXPECTED_OWNER, NULL);
  assert_int_equal(eval(w, &s, NULL, &ev), 1); /* OwnerChangeHits: changed */
  expect_event_saying(&ev, 0, PO_EVENT_OWNER_CHANGED,
                      "changed owner: worker www-data (10000): worker[1000] "
                      "www-data, ");
  expect_event_saying(&ev, 0, PO_EVENT_OWNER_CHANGED,
                      ", ... -> other root (10000): other[20000] root, ");
  assert_int_equal(json_array_len(ev.v[0].previous_owners), PO_OWNERS_MAX);
  po_snapshot_free(&s);
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_owners_json_hostile_names(void **state) {
  static const char comm[] = "a\"b\\c\nd\te\x01\xff\xc3";
  static const char exe[] = "/opt/\"q\"/\xe9t\xe9\n";
  static const char user[] = "\xc3\xa9ve"; /* "éve": valid UTF-8 */
  struct po_watch *w = mkwatch("we\"ird\n\xff", "80", NULL);
  struct po_events ev = {0};
  const struct po_event *e;

  (void)state;
  finish(w);
  assert_int_equal(eval_empty(w, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_MISSING_AT_START, NULL);
  assert_int_equal(eval_one(w, 42, comm, exe, 7, user, &ev), 1);
  /* The owner is named by its comm, then its program (the exe basename)
   * that differs; control characters and bad bytes become '?' in the
   * message (clean UTF-8: expect_event checks). */
  e = expect_event(&ev, 0, PO_EVENT_LISTENER_BACK,
                   "tcp/80 (we\"ird?\?) has a listener again; held by "
                   "a\"b\\c?d?e?\?\?[42] \xc3\xa9ve (exe ?t?\?)");
  assert_null(strchr(e->message, '\n'));
  assert_non_null(strstr(e->message, "[42] \xc3\xa9ve"));

  /* Quotes, backslashes and control characters survive; bytes that are not
   * UTF-8 become U+FFFD. */
  assert_int_equal(json_array_len(e->owners), 1);
  expect_owner(e->owners, 0, 42, "a\"b\\c\nd\te\x01\xef\xbf\xbd\xef\xbf\xbd",
               "/opt/\"q\"/\xef\xbf\xbdt\xef\xbf\xbd\n", user);
  /* No raw newline in the JSON (one line in an exec handler's input). */
  assert_null(strchr(e->owners, '\n'));
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_message_long_names(void **state) {
  char name[PO_WATCH_NAME_MAX], exe[300], comm[64], user[64];
  struct po_watch *w;
  struct po_events ev = {0};

  (void)state;
  /* 127 bytes of 2-byte characters and one byte: cut on a boundary. */
  memset(name, 0, sizeof(name));
  for (int i = 0; i < 63; i++)
    memcpy(name + 2 * i, "\xc3\xa9", 2);
  name[126] = 'x';
  w = po_watch_new(name);
  assert_non_null(w);
  for (unsigned p = 1000; p < 1100; p += 2) {
    struct po_range r = {(uint16_t)p, (uint16_t)(p + 1)};

    assert_int_equal(po_watch_port_add(w, &r), 0);
  }
  finish(w);
  strcpy(exe, "/usr/bin/");
  memset(exe + 9, 'e', 255);
  exe[264] = '\0';
  memset(comm, 'c', 63);
  comm[63] = '\0';
  memset(user, 'u', 63);
  user[63] = '\0';
  /* One requirement per range, each with its FAILURE. */
  assert_int_equal(eval_empty(w, &ev), 50);
  for (size_t i = 0; i < 50; i++)
    expect_event(&ev, i, PO_EVENT_MISSING_AT_START, NULL);
  expect_event_saying(&ev, 0, PO_EVENT_MISSING_AT_START, "tcp/1000-1001 (");
  {
    struct po_snapshot s;
    size_t k;

    memset(&s, 0, sizeof(s));
    k = fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 1000);
    for (pid_t p = 1; p <= 5; p++)
      fx_snap_own(&s, k, p, comm, exe, 1, user);
    fx_snap_finish(&s);
    assert_int_equal(eval(w, &s, NULL, &ev), 1);
    /* Five owners that do not fit: their program and user, cut, with
     * the count. */
    expect_event_saying(&ev, 0, PO_EVENT_LISTENER_BACK, "held by eeee");
    expect_event_saying(&ev, 0, PO_EVENT_LISTENER_BACK, "e... uuu");
    expect_event_saying(&ev, 0, PO_EVENT_LISTENER_BACK, "u... (5): ...");
    po_snapshot_free(&s);
  }
  po_events_free(&ev);
  po_watch_free(w);
}

static void test_message_protocols(void **state) {
  struct po_watch *w = po_watch_new("dns");
  struct po_events ev = {0};

  (void)state;
  assert_non_null(w);
  assert_int_equal(po_watch_port_add_number(w, 53), 0);
  assert_int_equal(po_watch_protocol_add(w, "udp"), 0);
  assert_int_equal(po_watch_protocol_add(w, "tcp4"), 0);
  finish(w);
  assert_string_equal(po_watch_protocols(w), "tcp4,udp");
  assert_string_equal(po_watch_ports(w), "53");
  assert_null(po_watch_addresses(w));
  /* One FAILURE per protocol token, in config order. */
  assert_int_equal(eval_empty(w, &ev), 2);
  expect_event(&ev, 0, PO_EVENT_MISSING_AT_START,
               "udp/53 (dns) has no listener at start");
  expect_event(&ev, 1, PO_EVENT_MISSING_AT_START,
               "tcp4/53 (dns) has no listener at start");
  po_events_free(&ev);
  po_watch_free(w);
}

/* ---- the set
 * ------------------------------------------------------------------------ */

/* ---- AllNamespaces and trust
 * ------------------------------------------------------------ */

/* One read of tcp/22: the host's sshd (pid 1, root) in our own namespace
 * when host; a listener in OTHER_NS when other is not -1, its namespace
 * trusted (1) or a user's own (0), held by pid 900 of uid owner_uid. */
static void snap_22(struct po_snapshot *s, int host, int other,
                    uint32_t owner_uid) {
  memset(s, 0, sizeof(*s));
  if (host)
    fx_snap_own(s, fx_snap_sock(s, IPPROTO_TCP, "0.0.0.0", 22), 1, "sshd",
                "/usr/sbin/sshd", 0, "root");
  if (other >= 0) {
    size_t i = fx_snap_sock(s, IPPROTO_TCP, "0.0.0.0", 22);

    s->socks.v[i].netns = OTHER_NS;
    s->socks.v[i].uid = owner_uid;
    fx_snap_own(s, i, 900, "sshd", "/usr/sbin/sshd", owner_uid,
                owner_uid ? "nobody" : "root");
    snap_netns(s, OTHER_NS, other);
  }
  fx_snap_finish(s);
}

static size_t count_events(const struct po_events *ev,
                           enum po_event_type type) {
  size_t n = 0;

  for (size_t i = 0; i < ev->len; i++)
    n += ev->v[i].type == type;
  return n;
}

/* The attack of issue 11: a user's own namespace (unshare -rn) listening on
 * 22 neither keeps the requirement met nor sets the owner that ExpectUser
 * judges, unless AllNamespaces is "all"; a trusted namespace does both. */
static void test_all_namespaces_trust(void **state) {
  static const int scopes[] = {PO_NS_OWN, PO_NS_TRUSTED, PO_NS_ALL};
  struct po_watch *w[3];
  struct po_watch_values v;
  struct po_events ev = {0};
  struct po_snapshot s;

  (void)state;
  for (size_t i = 0; i < 3; i++) {
    w[i] = mkwatch("ssh", "22", "tcp");
    assert_int_equal(po_watch_expect_user_add(w[i], "root"), 0);
    po_watch_set_notify_owner_change(w[i], 0);
    po_watch_set_all_namespaces(w[i], scopes[i]);
    finish(w[i]);
    assert_int_equal(po_watch_all_namespaces(w[i]), scopes[i]);
  }

  /* 1. The host's sshd, and nobody's listener in its own namespace. */
  snap_22(&s, 1, 0, 65534);
  for (size_t i = 0; i < 3; i++) {
    size_t n = eval(w[i], &s, &v, &ev);

    assert_int_equal(v.sockets, scopes[i] == PO_NS_ALL ? 2 : 1);
    assert_int_equal(v.processes, scopes[i] == PO_NS_ALL ? 2 : 1);
    assert_int_equal(v.missing, 0);
    if (scopes[i] == PO_NS_ALL) {
      assert_int_equal(n, 1);
      expect_event_saying(&ev, 0, PO_EVENT_UNEXPECTED_OWNER,
                          "sshd[900] nobody");
    } else {
      assert_int_equal(n, 0);
    }
  }
  po_snapshot_free(&s);

  /* 2. sshd killed: only nobody's listener is left. */
  snap_22(&s, 0, 0, 65534);
  for (size_t i = 0; i < 3; i++) {
    eval(w[i], &s, &v, &ev);
    if (scopes[i] == PO_NS_ALL) {
      assert_int_equal(v.sockets, 1);
      assert_int_equal(count_events(&ev, PO_EVENT_LISTENER_LOST), 0);
    } else {
      assert_int_equal(v.sockets, 0);
      assert_int_equal(v.processes, 0);
      assert_int_equal(v.missing, 1);
      assert_int_equal(ev.len, 1);
      expect_event(&ev, 0, PO_EVENT_LISTENER_LOST,
                   "tcp/22 (ssh) lost its listener; last held by sshd[1] root");
    }
  }
  po_snapshot_free(&s);

  /* 3. The same listener unowned (its holder's fds not readable): its
   * socket's uid is not judged either. */
  memset(&s, 0, sizeof(s));
  {
    size_t i = fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 22);

    s.socks.v[i].netns = OTHER_NS;
    s.socks.v[i].uid = 65534;
    snap_netns(&s, OTHER_NS, 0);
    fx_snap_finish(&s);
  }
  eval(w[1], &s, &v, &ev);
  assert_int_equal(v.sockets, 0);
  assert_int_equal(v.unowned, 0);
  assert_int_equal(ev.len, 0);
  po_snapshot_free(&s);

  /* 4. A trusted namespace (ip netns add) with root's sshd: met again for
   * "trusted" and "all", still lost for the own namespace only. */
  snap_22(&s, 0, 1, 0);
  for (size_t i = 0; i < 3; i++) {
    eval(w[i], &s, &v, &ev);
    assert_int_equal(v.sockets, scopes[i] == PO_NS_OWN ? 0 : 1);
    if (scopes[i] == PO_NS_TRUSTED) {
      assert_int_equal(ev.len, 1);
      expect_event(&ev, 0, PO_EVENT_LISTENER_BACK,
                   "tcp/22 (ssh) has a listener again; held by sshd[900] "
                   "root");
    } else if (scopes[i] == PO_NS_OWN) {
      assert_int_equal(ev.len, 0);
    } else {
      /* "all": the unexpected owner is gone. */
      assert_int_equal(count_events(&ev, PO_EVENT_EXPECTED_OWNER), 1);
    }
  }
  po_snapshot_free(&s);
  po_events_free(&ev);
  for (size_t i = 0; i < 3; i++)
    po_watch_free(w[i]);
}

/* A set reads the widest AllNamespaces of its watches. */
static void test_query_widest_namespaces(void **state) {
  struct po_watchset *set = po_watchset_new();
  struct po_watch *a = mkwatch("a", "22", NULL), *b = mkwatch("b", "23", NULL);
  struct po_query q;

  (void)state;
  po_watch_set_all_namespaces(a, PO_NS_ALL);
  po_watch_set_all_namespaces(b, PO_NS_TRUSTED);
  finish(a);
  finish(b);
  assert_int_equal(po_watchset_add(set, b), 0);
  memset(&q, 0, sizeof(q));
  assert_int_equal(po_watchset_query(set, &q), 0);
  assert_int_equal(q.all_namespaces, PO_NS_TRUSTED);
  assert_int_equal(po_watchset_add(set, a), 0);
  assert_int_equal(po_watchset_query(set, &q), 0);
  assert_int_equal(q.all_namespaces, PO_NS_ALL);
  po_watchset_free(set);
}

static void test_watchset(void **state) {
  struct po_watchset *set = po_watchset_new();
  struct po_watch *a = mkwatch("ssh", "22", "tcp");
  struct po_watch *b = mkwatch("dns", "53", "udp");
  struct po_watch *dup = mkwatch("ssh", "2222", NULL);
  struct po_watch *unfinished = mkwatch("x", "1", NULL);
  struct po_query q;
  struct po_snapshot s;
  struct po_watch_values v[2];
  struct po_events ev = {0};

  (void)state;
  assert_non_null(set);
  finish(a);
  po_watch_set_all_namespaces(b, 1);
  finish(b);
  finish(dup);
  assert_int_equal(po_watchset_add(set, unfinished), -EINVAL);
  assert_int_equal(po_watchset_add(set, a), 0);
  assert_int_equal(po_watchset_add(set, b), 0);
  assert_int_equal(po_watchset_add(set, dup), -EEXIST);
  assert_int_equal(po_watchset_len(set), 2);
  assert_ptr_equal(po_watchset_find(set, "dns"), b);
  assert_ptr_equal(po_watchset_get(set, 0), a);
  assert_null(po_watchset_find(set, "nope"));

  memset(&q, 0, sizeof(q));
  q.source = PO_SOURCE_PROC;
  assert_int_equal(po_watchset_query(set, &q), 0);
  assert_int_equal(q.mask, PO_TCP | PO_UDP);
  assert_int_equal(q.nports, 2);
  assert_true(po_ranges_match(q.ports, q.nports, 22));
  assert_true(po_ranges_match(q.ports, q.nports, 53));
  assert_false(po_ranges_match(q.ports, q.nports, 80));
  assert_int_equal(q.all_namespaces, 1);
  assert_int_equal(q.source, PO_SOURCE_PROC);

  memset(&s, 0, sizeof(s));
  fx_snap_own(&s, fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 22), 5, "sshd", NULL,
              0, "root");
  fx_snap_finish(&s);
  assert_int_equal(po_watchset_eval(set, &s, OWN_NS, v, &ev), 0);
  assert_int_equal(v[0].sockets, 1);
  assert_int_equal(v[1].sockets, 0);
  assert_int_equal(ev.len, 1);
  assert_ptr_equal(expect_event(&ev, 0, PO_EVENT_MISSING_AT_START, NULL)->watch,
                   b);

  po_events_free(&ev);
  po_snapshot_free(&s);
  po_watch_free(dup);
  po_watch_free(unfinished);
  po_watchset_free(set);
}

/* ---- the StateFile
 * ----------------------------------------------------------------- */

static char tmpdir[64];

static int setup_dir(void **state) {
  (void)state;
  fx_root_make(tmpdir, sizeof(tmpdir), NULL, "watch");
  return 0;
}

static int teardown_dir(void **state) {
  (void)state;
  return fx_root_remove(tmpdir) == 0 ? 0 : -1;
}

static struct po_watchset *web_set(void) {
  struct po_watchset *set = po_watchset_new();
  struct po_watch *w = mkwatch("web", "80", NULL);

  assert_non_null(set);
  assert_int_equal(po_watch_set_hits(w, 2), 0);
  finish(w);
  assert_int_equal(po_watchset_add(set, w), 0);
  return set;
}

/* A new web_set() with the StateFile at path loaded for boot id boot (NULL:
 * none known), as after a restart; its watch in *w. */
static struct po_watchset *web_set_restored(const char *path, const char *boot,
                                            struct po_watch **w) {
  struct po_watchset *set = web_set();

  *w = po_watchset_get(set, 0);
  assert_int_equal(po_state_load(set, path, boot), 0);
  return set;
}

static void path_in_tmp(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *text, size_t len) {
  FILE *f = fopen(path, "w");

  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  char *buf = calloc(1, 1 << 20);
  size_t n;

  assert_non_null(f);
  assert_non_null(buf);
  n = fread(buf, 1, (1 << 20) - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* Down with the FAILURE sent, restart while still down: no second FAILURE;
 * restart after it came back: OKAY at the first read. */
static void test_state_down_restart(void **state) {
  char path[128];
  struct po_watchset *set = web_set();
  struct po_watch *w = po_watchset_get(set, 0);
  struct po_events ev = {0};
  struct stat sb;

  (void)state;
  path_in_tmp(path, sizeof(path), "down.json");
  assert_int_equal(eval_nginx(w, 1311, &ev), 0);
  assert_int_equal(po_state_save(set, path, "boot-1"), 1);
  assert_int_equal(po_state_save(set, path, "boot-1"), 0); /* unchanged */
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(eval_empty(w, &ev), 0);
  assert_int_equal(eval_empty(w, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_LISTENER_LOST, NULL);
  assert_int_equal(po_state_save(set, path, "boot-1"), 1);
  assert_int_equal(eval_empty(w, &ev), 0);
  assert_int_equal(po_state_save(set, path, "boot-1"), 0); /* stable */
  po_watchset_free(set);

  /* Restart, still down. */
  set = web_set_restored(path, "boot-1", &w);
  assert_int_equal(po_state_save(set, path, "boot-1"), 0); /* as loaded */
  assert_int_equal(eval_empty(w, &ev), 0);
  assert_int_equal(eval_empty(w, &ev), 0);
  po_watchset_free(set);

  /* Restart after it came back while collectd was stopped. */
  set = web_set_restored(path, "boot-1", &w);
  assert_int_equal(eval_nginx(w, 1500, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_LISTENER_BACK, NULL);
  assert_int_equal(po_state_save(set, path, "boot-1"), 1);
  po_watchset_free(set);
  po_events_free(&ev);
}

/* Up at shutdown: a loss while stopped is reported after Hits reads, with
 * the saved owners; a restart of the owner while stopped is a change. */
static void test_state_up_restart(void **state) {
  char path[128];
  struct po_watchset *set = web_set();
  struct po_watch *w = po_watchset_get(set, 0);
  struct po_events ev = {0};

  (void)state;
  path_in_tmp(path, sizeof(path), "up.json");
  assert_int_equal(eval_nginx(w, 1311, &ev), 0);
  assert_int_equal(po_state_save(set, path, "boot-1"), 1);
  po_watchset_free(set);

  set = web_set_restored(path, "boot-1", &w);
  assert_int_equal(eval_empty(w, &ev), 0); /* not "missing at start" */
  assert_int_equal(eval_empty(w, &ev), 1);
  expect_event(
      &ev, 0, PO_EVENT_LISTENER_LOST,
      "tcp/80 (web) lost its listener; last held by nginx[1311] www-data");
  po_watchset_free(set);

  /* Same boot, new pid, the same program: it restarted while collectd was
   * down, no change (NotifyRestart off). */
  set = web_set_restored(path, "boot-1", &w);
  assert_int_equal(eval_nginx(w, 1400, &ev), 0);
  assert_int_equal(eval_nginx(w, 1400, &ev), 0);
  po_watchset_free(set);

  /* Same boot, another program: the restored owners are the accepted ones,
   * a change at the second read. */
  set = web_set_restored(path, "boot-1", &w);
  assert_int_equal(
      eval_one(w, 1400, "apache2", "/usr/sbin/apache2", 33, "www-data", &ev),
      0);
  assert_int_equal(
      eval_one(w, 1400, "apache2", "/usr/sbin/apache2", 33, "www-data", &ev),
      1);
  expect_event(&ev, 0, PO_EVENT_OWNER_CHANGED,
               "tcp/80 (web) changed owner: nginx[1311] www-data -> "
               "apache2[1400] www-data");
  po_watchset_free(set);

  /* Another boot: pids mean nothing, the same program is no change. */
  set = web_set_restored(path, "boot-2", &w);
  assert_int_equal(eval_nginx(w, 1400, &ev), 0);
  assert_int_equal(eval_nginx(w, 1401, &ev), 0);
  po_watchset_free(set);

  /* No boot id known: same as another boot. */
  set = web_set_restored(path, NULL, &w);
  assert_int_equal(eval_nginx(w, 1400, &ev), 0);
  po_watchset_free(set);
  po_events_free(&ev);
}

static void test_state_unexpected_and_names(void **state) {
  static const char comm[] = "we\xff\"ird\n";
  char path[128];
  struct po_watchset *set = po_watchset_new();
  struct po_watch *w = mkwatch("ssh\xfe", "80", NULL);
  struct po_events ev = {0};

  (void)state;
  path_in_tmp(path, sizeof(path), "names.json");
  assert_int_equal(po_watch_expect_process_add(w, "sshd", NULL, 0), 0);
  finish(w);
  assert_int_equal(po_watchset_add(set, w), 0);
  assert_int_equal(eval_one(w, 5, comm, "/usr/bin/python3.11", 0, "root", &ev),
                   1);
  expect_event(&ev, 0, PO_EVENT_UNEXPECTED_OWNER, NULL);
  assert_int_equal(po_state_save(set, path, "b"), 1);
  po_watchset_free(set);

  set = po_watchset_new();
  w = mkwatch("ssh\xfe", "80", NULL);
  assert_int_equal(po_watch_expect_process_add(w, "sshd", NULL, 0), 0);
  finish(w);
  assert_int_equal(po_watchset_add(set, w), 0);
  assert_int_equal(po_state_load(set, path, "b"), 0);
  /* The odd name came back byte for byte: no change, no repeat. */
  assert_int_equal(eval_one(w, 5, comm, "/usr/bin/python3.11", 0, "root", &ev),
                   0);
  assert_int_equal(eval_one(w, 5, "sshd", "/usr/sbin/sshd", 0, "root", &ev), 1);
  expect_event(&ev, 0, PO_EVENT_EXPECTED_OWNER, NULL);
  assert_int_equal(eval_one(w, 5, "sshd", "/usr/sbin/sshd", 0, "root", &ev), 1);
  expect_event(&ev, 0, PO_EVENT_OWNER_CHANGED, NULL);
  po_watchset_free(set);
  po_events_free(&ev);
}

static void test_state_spec_changed(void **state) {
  char path[128];
  struct po_watchset *set = web_set();
  struct po_events ev = {0};
  struct po_watch *w;

  (void)state;
  path_in_tmp(path, sizeof(path), "spec.json");
  assert_int_equal(eval_empty(po_watchset_get(set, 0), &ev), 1);
  expect_event(&ev, 0, PO_EVENT_MISSING_AT_START, NULL);
  assert_int_equal(po_state_save(set, path, "b"), 1);
  po_watchset_free(set);

  /* Same name, another port: the saved state is not about it. */
  set = po_watchset_new();
  w = mkwatch("web", "8080", NULL);
  finish(w);
  assert_int_equal(po_watchset_add(set, w), 0);
  assert_int_equal(po_state_load(set, path, "b"), 0);
  assert_int_equal(eval_empty(w, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_MISSING_AT_START, NULL);
  po_watchset_free(set);
  po_events_free(&ev);
}

static void expect_fresh(struct po_watchset *set) {
  struct po_events ev = {0};

  assert_int_equal(eval_empty(po_watchset_get(set, 0), &ev), 1);
  expect_event(&ev, 0, PO_EVENT_MISSING_AT_START, NULL);
  po_events_free(&ev);
}

static void test_state_bad_files(void **state) {
  static const char *const corrupt[] = {
      "",
      "not json",
      "[]",
      "{\"version\":3,\"boot_id\":null,\"watches\":[]}",
      "{\"version\":2,\"boot_id\":null,\"watches\":{}}",
      "{\"version\":2,\"boot_id\":null,\"watches\":[{\"name\":\"web\"}]}",
      "{\"version\":2,\"boot_id\":null,\"watches\":[{\"name\":\"web\",\"spec\":"
      "\"tcp 80 *\",\"all_namespaces\":false,\"unexpected_failure\":false,"
      "\"owners\":[{\"pid\":-4,\"uid\":0,\"comm\":\"x\",\"exe\":null,"
      "\"user\":\"\"}],\"requirements\":[]}]}",
      "{\"version\":2,\"boot_id\":null,\"watches\":[{\"name\":\"web\",\"spec\":"
      "\"tcp 80 *\",\"all_namespaces\":false,\"unexpected_failure\":false,"
      "\"owners\":[],\"requirements\":[{\"name\":\"tcp/80\",\"started\":"
      "true,\"ever_up\":true,\"empty_reads\":-1,\"listener_failure\":true,"
      "\"owners\":[]}]}]}",
  };
  char path[128], link[140], *good, *text;
  struct po_watchset *set;
  size_t len;

  (void)state;
  path_in_tmp(path, sizeof(path), "bad.json");

  /* Missing: -ENOENT, fresh. */
  set = web_set();
  assert_int_equal(po_state_load(set, path, "b"), -ENOENT);
  expect_fresh(set);
  po_watchset_free(set);

  for (size_t i = 0; i < sizeof(corrupt) / sizeof(corrupt[0]); i++) {
    write_file(path, corrupt[i], strlen(corrupt[i]));
    set = web_set();
    assert_int_equal(po_state_load(set, path, "b"), -EBADMSG);
    expect_fresh(set);
    po_watchset_free(set);
  }

  /* A good file, then truncated at every length: never accepted half. */
  set = web_set();
  {
    struct po_events ev = {0};

    assert_int_equal(eval_nginx(po_watchset_get(set, 0), 1, &ev), 0);
    assert_int_equal(eval_empty(po_watchset_get(set, 0), &ev), 0);
    assert_int_equal(eval_empty(po_watchset_get(set, 0), &ev), 1);
    expect_event(&ev, 0, PO_EVENT_LISTENER_LOST, NULL);
    po_events_free(&ev);
  }
  unlink(path);
  assert_int_equal(po_state_save(set, path, "b"), 1);
  po_watchset_free(set);
  good = slurp(path);
  len = strlen(good);
  text = strdup(good);
  assert_non_null(text);
  for (size_t cut = 0; cut + 2 < len; cut += 7) {
    write_file(path, good, cut);
    set = web_set();
    assert_int_equal(po_state_load(set, path, "b"), -EBADMSG);
    expect_fresh(set);
    po_watchset_free(set);
  }
  /* The whole file loads (the loop above did test something). */
  write_file(path, good, len);
  set = web_set();
  assert_int_equal(po_state_load(set, path, "b"), 0);
  po_watchset_free(set);

  /* A symlink is refused, both ways, and its target is left alone. */
  path_in_tmp(link, sizeof(link), "link.json");
  assert_int_equal(symlink(path, link), 0);
  set = web_set();
  assert_int_equal(po_state_load(set, link, "b"), -ELOOP);
  expect_fresh(set);
  assert_int_equal(po_state_save(set, link, "b"), -ELOOP);
  po_watchset_free(set);
  free(good);
  good = slurp(path);
  assert_string_equal(good, text);
  {
    struct stat sb;

    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
  }

  /* A directory is not a state file. */
  path_in_tmp(link, sizeof(link), "a-dir");
  assert_int_equal(mkdir(link, 0700), 0);
  set = web_set();
  assert_int_equal(po_state_load(set, link, "b"), -EINVAL);
  po_watchset_free(set);
  assert_int_equal(rmdir(link), 0);

  /* An unwritable place: the error, and no temporary file left behind. */
  set = web_set();
  expect_fresh(set);
  path_in_tmp(link, sizeof(link), "nodir/state.json");
  assert_int_equal(po_state_save(set, link, "b"), -ENOENT);
  po_watchset_free(set);

  free(good);
  free(text);
}

static void test_state_other_watches_dropped(void **state) {
  char path[128], *text;
  struct po_watchset *set = po_watchset_new();
  struct po_watch *a = mkwatch("a", "1", NULL), *b = mkwatch("b", "2", NULL);
  struct po_events ev = {0};

  (void)state;
  path_in_tmp(path, sizeof(path), "two.json");
  finish(a);
  finish(b);
  assert_int_equal(po_watchset_add(set, a), 0);
  assert_int_equal(po_watchset_add(set, b), 0);
  assert_int_equal(eval_empty(a, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_MISSING_AT_START, NULL);
  assert_int_equal(eval_empty(b, &ev), 1);
  expect_event(&ev, 0, PO_EVENT_MISSING_AT_START, NULL);
  assert_int_equal(po_state_save(set, path, NULL), 1);
  po_watchset_free(set);

  set = po_watchset_new();
  b = mkwatch("b", "2", NULL);
  finish(b);
  assert_int_equal(po_watchset_add(set, b), 0);
  assert_int_equal(po_state_load(set, path, NULL), 0);
  assert_int_equal(eval_empty(b, &ev), 0);             /* b's FAILURE stands */
  assert_int_equal(po_state_save(set, path, NULL), 1); /* a is gone */
  text = slurp(path);
  assert_null(strstr(text, "\"a\""));
  assert_non_null(strstr(text, "\"b\""));
  free(text);
  po_watchset_free(set);
  po_events_free(&ev);
}

/* ---- config values
 * ------------------------------------------------------------------- */

static void test_config_ports(void **state) {
  struct po_range r;
  struct po_watch *w = po_watch_new("p");
  const char *bad = NULL;

  (void)state;
  assert_int_equal(po_config_port_number(22, &r), 0);
  assert_int_equal(r.lo, 22);
  assert_int_equal(r.hi, 22);
  assert_int_equal(po_config_port_number(65535, &r), 0);
  assert_int_equal(po_config_port_number(1, &r), 0);
  assert_int_equal(po_config_port_number(0, &r), -ERANGE);
  assert_int_equal(po_config_port_number(-1, &r), -ERANGE);
  assert_int_equal(po_config_port_number(65536, &r), -ERANGE);
  assert_int_equal(po_config_port_number(1e300, &r), -ERANGE);
  assert_int_equal(po_config_port_number(22.5, &r), -EINVAL);
  assert_int_equal(po_config_port_number(NAN, &r), -EINVAL);
  assert_int_equal(po_config_port_number(INFINITY, &r), -ERANGE);

  assert_non_null(w);
  assert_int_equal(po_watch_finish(w), -EDESTADDRREQ); /* no Port */
  assert_int_equal(po_watch_port_add_number(w, 80), 0);
  assert_int_equal(po_watch_port_add_string(w, "443", NULL), 0);
  assert_int_equal(po_watch_port_add_string(w, "8000-8099", NULL), 0);
  assert_int_equal(po_watch_port_add_string(w, "ssh", NULL), 0);
  assert_int_equal(po_watch_port_add_string(w, "9000,9100-9101", NULL), 0);
  assert_int_equal(po_watch_port_add_string(w, "nosuchservice", &bad), -ENOENT);
  assert_int_equal(po_watch_port_add_string(w, "90-80", NULL), -EINVAL);
  assert_int_equal(po_watch_port_add_string(w, "0", NULL), -ERANGE);
  assert_int_equal(po_watch_port_add_string(w, "65536", NULL), -ERANGE);
  assert_int_equal(po_watch_port_add_string(w, "1,2,99999", &bad), -ERANGE);
  assert_string_equal(bad, "99999"); /* and 1, 2 were not added */
  assert_int_equal(po_watch_port_add_string(w, "", NULL), -EINVAL);
  assert_int_equal(po_watch_port_add_number(w, 0), -ERANGE);
  assert_int_equal(po_watch_port_add(w, &(struct po_range){10, 9}), -EINVAL);
  assert_int_equal(po_watch_finish(w), 0);
  assert_string_equal(po_watch_ports(w), "80,443,8000-8099,22,9000,9100-9101");
  assert_string_equal(po_watch_protocols(w), "tcp"); /* the default */
  po_watch_free(w);
}

static void test_config_other_values(void **state) {
  struct po_watch *w = po_watch_new("v");
  char err[128];
  unsigned hits;
  enum po_source src;
  int scope;

  (void)state;
  assert_non_null(w);
  /* Protocols */
  assert_int_equal(po_watch_protocol_add(w, "udp6"), 0);
  assert_int_equal(po_watch_protocol_add(w, "TCP"), 0);
  assert_int_equal(po_watch_protocol_add(w, "sctp"), -EINVAL);
  assert_int_equal(po_watch_protocol_add(w, ""), -EINVAL);
  /* Addresses */
  assert_int_equal(po_watch_address_add(w, "192.0.2.1"), 0);
  assert_int_equal(po_watch_address_add(w, "2001:db8::1"), 0);
  assert_int_equal(po_watch_address_add(w, "localhost"), -EINVAL);
  assert_int_equal(po_watch_address_add(w, "256.1.1.1"), -EINVAL);
  assert_int_equal(po_watch_address_add(w, "10.0.0.0/8"), -EINVAL);
  /* ExpectProcess */
  assert_int_equal(
      po_watch_expect_process_add(w, "/^ssh(d)?$/", err, sizeof(err)), 0);
  assert_int_equal(po_watch_expect_process_add(w, "/(/", err, sizeof(err)),
                   -EINVAL);
  assert_true(strlen(err) > 0); /* regerror's text */
  assert_int_equal(po_watch_expect_process_add(w, "/a{2,1}/", err, sizeof(err)),
                   -EINVAL);
  assert_int_equal(po_watch_expect_process_add(w, "//", err, sizeof(err)),
                   -EINVAL);
  assert_int_equal(po_watch_expect_process_add(w, "", err, sizeof(err)),
                   -EINVAL);
  assert_int_equal(po_watch_expect_process_add(w, "/", err, sizeof(err)), 0);
  /* ExpectUser */
  assert_int_equal(po_watch_expect_user_add(w, "root"), 0);
  assert_int_equal(po_watch_expect_user_add(w, "0"), 0);
  assert_int_equal(po_watch_expect_user_add(w, ""), -EINVAL);
  /* Hits */
  assert_int_equal(po_config_hits(2, &hits), 0);
  assert_int_equal(hits, 2);
  assert_int_equal(po_config_hits(0, &hits), -ERANGE);
  assert_int_equal(po_config_hits(-3, &hits), -ERANGE);
  assert_int_equal(po_config_hits(1.5, &hits), -EINVAL);
  assert_int_equal(po_config_hits(PO_HITS_MAX + 1.0, &hits), -ERANGE);
  assert_int_equal(po_watch_set_hits(w, 0), -EINVAL);
  assert_int_equal(po_watch_set_hits(w, 3), 0);
  assert_int_equal(po_watch_hits(w), 3);
  /* Source */
  assert_int_equal(po_config_source("auto", &src), 0);
  assert_int_equal(src, PO_SOURCE_AUTO);
  assert_int_equal(po_config_source("Netlink", &src), 0);
  assert_int_equal(src, PO_SOURCE_NETLINK);
  assert_int_equal(po_config_source("proc", &src), 0);
  assert_int_equal(src, PO_SOURCE_PROC);
  assert_int_equal(po_config_source("sysfs", &src), -EINVAL);
  /* AllNamespaces' words (the booleans are collectd's) */
  scope = -1;
  assert_int_equal(po_config_namespaces("trusted", &scope), 0);
  assert_int_equal(scope, PO_NS_TRUSTED);
  assert_int_equal(po_config_namespaces("ALL", &scope), 0);
  assert_int_equal(scope, PO_NS_ALL);
  assert_int_equal(po_config_namespaces("true", &scope), -EINVAL);
  assert_int_equal(po_config_namespaces("trusted ", &scope), -EINVAL);
  assert_int_equal(po_config_namespaces("", &scope), -EINVAL);
  assert_int_equal(po_config_namespaces(NULL, &scope), -EINVAL);
  assert_int_equal(scope, PO_NS_ALL);

  assert_int_equal(po_watch_port_add_number(w, 22), 0);
  assert_int_equal(po_watch_finish(w), 0);
  assert_string_equal(po_watch_protocols(w), "tcp,udp6");
  assert_string_equal(po_watch_addresses(w), "192.0.2.1,2001:db8::1");
  po_watch_free(w);
}

static void test_config_names(void **state) {
  char longname[PO_WATCH_NAME_MAX + 1];
  struct po_watch *w;

  (void)state;
  errno = 0;
  assert_null(po_watch_new(""));
  assert_int_equal(errno, EINVAL);
  assert_null(po_watch_new("a/b"));
  assert_null(po_watch_new(NULL));
  memset(longname, 'n', sizeof(longname) - 1);
  longname[PO_WATCH_NAME_MAX] = '\0';
  assert_null(po_watch_new(longname));
  longname[PO_WATCH_NAME_MAX - 1] = '\0';
  w = po_watch_new(longname);
  assert_non_null(w);
  assert_string_equal(po_watch_name(w), longname);
  po_watch_free(w);
  w = po_watch_new("my web");
  assert_non_null(w);
  po_watch_free(w);
}

static void test_boot_id_and_netns(void **state) {
  char id[64], small[4];
  uint64_t ns = 0;

  (void)state;
  assert_int_equal(po_boot_id_read("/proc", id, sizeof(id)), 0);
  assert_int_equal(strlen(id), 36);
  assert_int_equal(po_boot_id_read("/proc", small, sizeof(small)), -ENOSPC);
  assert_int_equal(po_boot_id_read("/nonexistent", id, sizeof(id)), -ENOENT);
  assert_int_equal(po_netns_self("/proc", &ns), 0);
  assert_true(ns != 0);
  assert_int_equal(po_netns_self("/nonexistent", &ns), -ENOENT);
}

/* The real /proc: the snapshot knows our own namespace and who owns it (the
 * user namespace we are in, which is the initial one or stands for it). */
static void test_snapshot_own_netns_owner(void **state) {
  struct po_range none = {.lo = 1, .hi = 1};
  struct po_query q = {.mask = PO_TCP4,
                       .ports = &none,
                       .nports = 1,
                       .source = PO_SOURCE_AUTO,
                       .all_namespaces = PO_NS_TRUSTED};
  struct po_ctx *ctx = po_ctx_new("/proc");
  const struct po_netns *n;
  struct po_snapshot s;
  struct stat user;

  (void)state;
  assert_non_null(ctx);
  assert_int_equal(po_snapshot_take(ctx, &q, &s), 0);
  assert_true(s.netns != 0);
  n = po_snapshot_netns(&s, s.netns);
  assert_non_null(n);
  assert_true(n->own && n->read);
  assert_int_equal(stat("/proc/self/ns/user", &user), 0);
  assert_true(n->userns == (uint64_t)user.st_ino);
  assert_true(n->owner_uid >= 0);
  assert_null(po_snapshot_netns(&s, 1));
  for (size_t i = 1; i < s.nns; i++)
    assert_true(s.nsv[i - 1].netns < s.nsv[i].netns);
  po_snapshot_free(&s);
  po_ctx_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_values_addresses),
      cmocka_unit_test(test_lost_after_hits_and_back),
      cmocka_unit_test(test_blip_shorter_than_hits),
      cmocka_unit_test(test_missing_at_start),
      cmocka_unit_test(test_missing_at_start_off),
      cmocka_unit_test(test_unowned_socket_is_a_listener),
      cmocka_unit_test(test_owner_changed_program),
      cmocka_unit_test(test_owner_changed_pids_replaced),
      cmocka_unit_test(test_owner_change_within_hits),
      cmocka_unit_test(test_owner_change_off),
      cmocka_unit_test(test_unexpected_process),
      cmocka_unit_test(test_unexpected_regex_and_path),
      cmocka_unit_test(test_unexpected_user),
      cmocka_unit_test(test_unexpected_both),
      cmocka_unit_test(test_message_10000_owners),
      cmocka_unit_test(test_owners_json_hostile_names),
      cmocka_unit_test(test_message_long_names),
      cmocka_unit_test(test_lost_owner_gone_before_details_keeps_name),
      cmocka_unit_test(test_message_protocols),
      cmocka_unit_test(test_all_namespaces_trust),
      cmocka_unit_test(test_query_widest_namespaces),
      cmocka_unit_test(test_watchset),
      cmocka_unit_test(test_state_down_restart),
      cmocka_unit_test(test_state_up_restart),
      cmocka_unit_test(test_state_unexpected_and_names),
      cmocka_unit_test(test_state_spec_changed),
      cmocka_unit_test(test_state_bad_files),
      cmocka_unit_test(test_state_other_watches_dropped),
      cmocka_unit_test(test_config_ports),
      cmocka_unit_test(test_config_other_values),
      cmocka_unit_test(test_config_names),
      cmocka_unit_test(test_boot_id_and_netns),
      cmocka_unit_test(test_snapshot_own_netns_owner),
  };

  fx_set_failure(fx_fail_cmocka);
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
