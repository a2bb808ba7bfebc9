/*
 * Fuzz target: the owners JSON and the messages of events (watch.c) on
 * arbitrary process names, and the StateFile written from them.
 *
 * The input describes two sets of owner processes of one tcp/80 socket
 * (pids, uids, and comm, exe and user as arbitrary bytes). One watch sees:
 * no listener (missing at start), the first set (listener back), the second
 * twice (an owner change, at the second read, when the two sets of
 * (program, user) differ: the program is the exe's basename, an owner
 * whose exe is unknown is left out), no listener (lost). Between the last
 * two the state is saved, loaded into a second identical watch, and both
 * watches must then behave the same.
 *
 * Invariants: the expected events come, with the right severities; every
 * message is non-empty, under PO_MESSAGE_MAX bytes, UTF-8 without control
 * characters; owners (and previous_owners, present exactly for LOST and
 * OWNER_CHANGED, whose previous owners are the first set's with known
 * programs) parse with yajl_tree_parse as an array of the first
 * PO_OWNERS_MAX owners by pid, each {pid, comm, exe, user} with the names as
 * given but for bytes that are not UTF-8 (U+FFFD), null when unknown;
 * owners_total is the number of owner processes; the StateFile round trip
 * is exact (loading what was saved and saving again writes nothing). The
 * StateFile keeps 16 owners a list: with more, the restored watch's "lost
 * its listener" names the same owners (the lowest pids) in its meta, and
 * its message counts the 16 kept.
 */
#define FUZZ_WANT_TMPDIR
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <yajl/yajl_tree.h>

#include "portowner/statefile.h"
#include "portowner/watch.h"
#include "../fixture.h"
#include "fuzz.h"

#define NETNS FX_NETNS
#define MAX_OWNERS 24 /* more than PO_OWNERS_MAX: the cap is exercised */

struct input {
  const uint8_t *p;
  size_t n;
};

static unsigned take(struct input *in) {
  if (in->n == 0)
    return 0;
  in->n--;
  return *in->p++;
}

/* Up to max - 1 bytes, NUL-terminated (a NUL inside ends the C string, as
 * it would in the kernel's). */
static void take_str(struct input *in, char *dst, size_t max) {
  size_t len = take(in) % max;

  if (len > in->n)
    len = in->n;
  memcpy(dst, in->p, len);
  dst[len] = '\0';
  in->p += len;
  in->n -= len;
}

struct owners {
  struct po_proc procs[MAX_OWNERS];
  size_t n;
};

static void take_owners(struct input *in, struct owners *o, pid_t *pid) {
  memset(o, 0, sizeof(*o));
  o->n = 1 + take(in) % MAX_OWNERS;
  for (size_t i = 0; i < o->n; i++) {
    struct po_proc *p = &o->procs[i];
    unsigned uid = take(in), exe_len;

    /* Ascending and never repeated, as the snapshot has them. */
    *pid += 1 + (pid_t)((take(in) | take(in) << 8) % 4096);
    p->pid = *pid;
    p->uid = uid == 0xff ? PO_UID_UNKNOWN : uid * 1000;
    take_str(in, p->comm, sizeof(p->comm));
    exe_len = take(in);
    if (exe_len > 0) {
      p->exe = malloc(exe_len + 1);
      FUZZ_CHECK(p->exe);
      in->p--, in->n++; /* take_str reads the length byte itself */
      take_str(in, p->exe, exe_len + 1);
    }
    take_str(in, p->user, sizeof(p->user));
  }
}

static void free_owners(struct owners *o) {
  for (size_t i = 0; i < o->n; i++)
    free(o->procs[i].exe);
}

/* The program of p: the exe's basename without " (deleted)"; len 0 when
 * unknown. */
static const char *prog_of(const struct po_proc *p, size_t *len) {
  static const char del[] = " (deleted)";
  const char *base;
  size_t n;

  *len = 0;
  if (!p->exe)
    return NULL;
  base = strrchr(p->exe, '/');
  base = base ? base + 1 : p->exe;
  n = strlen(base);
  if (n > sizeof(del) - 1 && strcmp(base + n - (sizeof(del) - 1), del) == 0)
    n -= sizeof(del) - 1;
  *len = n;
  return n ? base : NULL;
}

/* Whether o has an owner of program name (len bytes) and user. */
static int has_prog(const struct owners *o, const char *name, size_t len,
                    const char *user) {
  for (size_t i = 0; i < o->n; i++) {
    size_t l;
    const char *p = prog_of(&o->procs[i], &l);

    if (p && l == len && memcmp(p, name, len) == 0 &&
        strcmp(o->procs[i].user, user) == 0)
      return 1;
  }
  return 0;
}

/* Whether every known (program, user) of a is one of b's. */
static int progs_within(const struct owners *a, const struct owners *b) {
  for (size_t i = 0; i < a->n; i++) {
    size_t l;
    const char *p = prog_of(&a->procs[i], &l);

    if (p && !has_prog(b, p, l, a->procs[i].user))
      return 0;
  }
  return 1;
}

/* The owners of o whose program is known (exe strings shared with o). */
static void known_of(const struct owners *o, struct owners *k) {
  memset(k, 0, sizeof(*k));
  for (size_t i = 0; i < o->n; i++) {
    size_t l;

    if (prog_of(&o->procs[i], &l))
      k->procs[k->n++] = o->procs[i];
  }
}

static int known_of_any(const struct owners *o) {
  struct owners k;

  known_of(o, &k);
  return k.n != 0;
}

/* One tcp4 socket on port 80 held by o's processes, or none (o NULL). */
static void make_snapshot(struct po_snapshot *s, const struct owners *o) {
  memset(s, 0, sizeof(*s));
  if (!o)
    return;
  {
    size_t k = fx_snap_sock(s, IPPROTO_TCP, "0.0.0.0", 80);

    for (size_t i = 0; i < o->n; i++) {
      const struct po_proc *p = &o->procs[i];

      fx_snap_own(s, k, p->pid, p->comm, p->exe, p->uid, p->user);
    }
  }
  fx_snap_finish(s);
}

/* A JSON string member that must be name (replaced), or null when unknown. */
static void check_name(yajl_val v, const char *name) {
  if (!name || name[0] == '\0') {
    FUZZ_CHECK(YAJL_IS_NULL(v));
    return;
  }
  FUZZ_CHECK(YAJL_IS_STRING(v));
  {
    char *want = fuzz_replaced(name, strlen(name));
    const char *got = YAJL_GET_STRING(v);
    FUZZ_CHECK(want && got);
    FUZZ_CHECK(strcmp(got, want) == 0);
    free(want);
  }
}

static void check_owners_json(const char *json, const struct owners *o) {
  char err[128];
  yajl_val root = yajl_tree_parse(json, err, sizeof(err));
  size_t n = o ? o->n : 0, listed = n < PO_OWNERS_MAX ? n : PO_OWNERS_MAX;

  if (!root)
    fprintf(stderr, "owners JSON does not parse: %s: %s\n", err, json);
  FUZZ_CHECK(root);
  FUZZ_CHECK(YAJL_IS_ARRAY(root));
  FUZZ_CHECK(YAJL_GET_ARRAY(root)->len == listed);
  for (size_t i = 0; i < listed; i++) {
    const char *pid_path[] = {"pid", NULL}, *comm_path[] = {"comm", NULL},
               *exe_path[] = {"exe", NULL}, *user_path[] = {"user", NULL};
    yajl_val e = YAJL_GET_ARRAY(root)->values[i], pid;

    FUZZ_CHECK(YAJL_IS_OBJECT(e) && YAJL_GET_OBJECT(e)->len == 4);
    pid = yajl_tree_get(e, pid_path, yajl_t_number);
    FUZZ_CHECK(pid && YAJL_IS_INTEGER(pid));
    FUZZ_CHECK(YAJL_GET_INTEGER(pid) == o->procs[i].pid);
    check_name(yajl_tree_get(e, comm_path, yajl_t_any), o->procs[i].comm);
    check_name(yajl_tree_get(e, exe_path, yajl_t_any), o->procs[i].exe);
    check_name(yajl_tree_get(e, user_path, yajl_t_any), o->procs[i].user);
  }
  yajl_tree_free(root);
}

/* cur: the owners now; prev: the last owners before. */
static void check_event(const struct po_event *e, const struct owners *cur,
                        const struct owners *prev) {
  size_t len = strnlen(e->message, sizeof(e->message));

  FUZZ_CHECK(len > 0 && len < PO_MESSAGE_MAX);
  FUZZ_CHECK(fuzz_clean_text(e->message, len));
  FUZZ_CHECK(po_event_type_name(e->type));
  FUZZ_CHECK(po_event_condition(e->type));
  switch (e->type) {
  case PO_EVENT_LISTENER_LOST:
  case PO_EVENT_MISSING_AT_START:
  case PO_EVENT_UNEXPECTED_OWNER:
    FUZZ_CHECK(e->severity == PO_SEVERITY_FAILURE);
    break;
  case PO_EVENT_OWNER_CHANGED:
  case PO_EVENT_RESTARTED:
    FUZZ_CHECK(e->severity == PO_SEVERITY_WARNING);
    break;
  case PO_EVENT_LISTENER_BACK:
  case PO_EVENT_EXPECTED_OWNER:
    FUZZ_CHECK(e->severity == PO_SEVERITY_OKAY);
    break;
  }
  FUZZ_CHECK(e->owners_total == (cur ? cur->n : 0));
  FUZZ_CHECK(e->processes == e->owners_total);
  FUZZ_CHECK(e->owners);
  check_owners_json(e->owners, cur);
  if (e->type == PO_EVENT_LISTENER_LOST || e->type == PO_EVENT_OWNER_CHANGED ||
      e->type == PO_EVENT_RESTARTED) {
    FUZZ_CHECK(e->previous_owners);
    check_owners_json(e->previous_owners, prev);
  } else {
    FUZZ_CHECK(!e->previous_owners);
  }
}

static struct po_watchset *new_set(unsigned flags) {
  struct po_watchset *set = po_watchset_new();
  struct po_watch *w = po_watch_new("web");

  FUZZ_CHECK(set && w);
  FUZZ_CHECK(po_watch_port_add_string(w, "80", NULL) == 0);
  if (flags & 1)
    FUZZ_CHECK(po_watch_expect_process_add(w, "nginx", NULL, 0) == 0);
  if (flags & 2)
    FUZZ_CHECK(po_watch_expect_process_add(w, "/^ngi.x$/", NULL, 0) == 0);
  if (flags & 4)
    FUZZ_CHECK(po_watch_expect_user_add(w, "0") == 0);
  FUZZ_CHECK(po_watch_finish(w) == 0);
  FUZZ_CHECK(po_watchset_add(set, w) == 0);
  return set;
}

/* Evaluates sn in set; checks the events and returns them in ev. */
static void eval(struct po_watchset *set, const struct po_snapshot *s,
                 struct po_events *ev, const struct owners *cur,
                 const struct owners *prev) {
  struct po_watch_values v;

  po_events_clear(ev);
  FUZZ_CHECK(po_watchset_eval(set, s, NETNS, &v, ev) == 0);
  FUZZ_CHECK(v.sockets == (cur ? 1u : 0u));
  FUZZ_CHECK(v.processes == (cur ? cur->n : 0));
  for (size_t i = 0; i < ev->len; i++)
    check_event(&ev->v[i], cur, prev);
}

static int count(const struct po_events *ev, enum po_event_type t) {
  int n = 0;

  for (size_t i = 0; i < ev->len; i++)
    n += ev->v[i].type == t;
  return n;
}

/* What the StateFile keeps of a list of owners (statefile.c). */
#define STATE_OWNERS_KEPT 16

/* a and b alike; their messages too when messages. */
static int events_equal(const struct po_events *a, const struct po_events *b,
                        int messages) {
  if (a->len != b->len)
    return 0;
  for (size_t i = 0; i < a->len; i++) {
    const struct po_event *x = &a->v[i], *y = &b->v[i];

    if (x->type != y->type ||
        (messages && strcmp(x->message, y->message) != 0) ||
        strcmp(x->owners, y->owners) != 0 ||
        (!x->previous_owners) != (!y->previous_owners) ||
        (x->previous_owners &&
         strcmp(x->previous_owners, y->previous_owners) != 0))
      return 0;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct input in = {data, size};
  struct owners one, two, one_known;
  struct po_snapshot empty, s1, s2;
  struct po_events ev = {0}, ev2 = {0};
  struct po_watchset *a, *b;
  char path[600], path2[600];
  unsigned flags = take(&in);
  pid_t pid = 0;

  take_owners(&in, &one, &pid);
  take_owners(&in, &two, &pid);
  make_snapshot(&empty, NULL);
  make_snapshot(&s1, &one);
  make_snapshot(&s2, &two);
  a = new_set(flags);

  eval(a, &empty, &ev, NULL, NULL);
  FUZZ_CHECK(ev.len == 1 && ev.v[0].type == PO_EVENT_MISSING_AT_START);

  eval(a, &s1, &ev, &one, NULL);
  FUZZ_CHECK(ev.len >= 1 && ev.v[0].type == PO_EVENT_LISTENER_BACK);
  FUZZ_CHECK(ev.len == 1 + (size_t)count(&ev, PO_EVENT_UNEXPECTED_OWNER));

  /* Every pid is new: that alone is no change. Another set of (program,
   * user) is, at its second read (OwnerChangeHits 2). */
  known_of(&one, &one_known);
  eval(a, &s2, &ev, &two, &one_known);
  FUZZ_CHECK(count(&ev, PO_EVENT_OWNER_CHANGED) == 0);
  FUZZ_CHECK(count(&ev, PO_EVENT_LISTENER_BACK) == 0);
  FUZZ_CHECK(count(&ev, PO_EVENT_RESTARTED) == 0);
  eval(a, &s2, &ev, &two, &one_known);
  FUZZ_CHECK(count(&ev, PO_EVENT_OWNER_CHANGED) ==
             (one_known.n && known_of_any(&two) &&
              !(progs_within(&one, &two) && progs_within(&two, &one))));
  FUZZ_CHECK(count(&ev, PO_EVENT_UNEXPECTED_OWNER) == 0);

  /* The StateFile: save, load into a second set, save again: unchanged. */
  snprintf(path, sizeof(path), "%s/state", fuzz_tmpdir());
  snprintf(path2, sizeof(path2), "%s/state2", fuzz_tmpdir());
  FUZZ_CHECK(po_state_save(a, path, "boot-1") == 1);
  FUZZ_CHECK(po_state_save(a, path, "boot-1") == 0);
  b = new_set(flags);
  FUZZ_CHECK(po_state_load(b, path, "boot-1") == 0);
  FUZZ_CHECK(po_state_save(b, path2, "boot-1") == 0);

  /* Both lose the listener the same way. */
  eval(a, &empty, &ev, NULL, &two);
  FUZZ_CHECK(ev.len == 1 && ev.v[0].type == PO_EVENT_LISTENER_LOST);
  eval(b, &empty, &ev2, NULL, &two);
  FUZZ_CHECK(events_equal(&ev, &ev2, two.n <= STATE_OWNERS_KEPT));

  po_events_free(&ev);
  po_events_free(&ev2);
  po_snapshot_free(&s1);
  po_snapshot_free(&s2);
  po_watchset_free(a);
  po_watchset_free(b);
  free_owners(&one);
  free_owners(&two);
  return 0;
}
