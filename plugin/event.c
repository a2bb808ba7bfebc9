/*
 * portowner: making events, their owners JSON, and the events array (see
 * event.h and watch.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "portowner/event.h"
#include "portowner/json.h"
#include "portowner/owners.h"

const char *po_event_type_name(enum po_event_type t) {
  switch (t) {
  case PO_EVENT_LISTENER_LOST:
    return "listener_lost";
  case PO_EVENT_MISSING_AT_START:
    return "missing_at_start";
  case PO_EVENT_LISTENER_BACK:
    return "listener_back";
  case PO_EVENT_OWNER_CHANGED:
    return "owner_changed";
  case PO_EVENT_UNEXPECTED_OWNER:
    return "unexpected_owner";
  case PO_EVENT_EXPECTED_OWNER:
    return "expected_owner";
  case PO_EVENT_RESTARTED:
    return "restarted";
  }
  return NULL;
}

const char *po_event_condition(enum po_event_type t) {
  switch (t) {
  case PO_EVENT_LISTENER_LOST:
  case PO_EVENT_MISSING_AT_START:
  case PO_EVENT_LISTENER_BACK:
    return "listener";
  case PO_EVENT_OWNER_CHANGED:
    return "owner_change";
  case PO_EVENT_UNEXPECTED_OWNER:
  case PO_EVENT_EXPECTED_OWNER:
    return "unexpected_owner";
  case PO_EVENT_RESTARTED:
    return "restart";
  }
  return NULL;
}

static void event_release(struct po_event *e) {
  free(e->owners);
  free(e->previous_owners);
  free(e->units);
  e->owners = e->previous_owners = e->units = NULL;
}

void po_events_clear(struct po_events *e) {
  for (size_t i = 0; i < e->len; i++)
    event_release(&e->v[i]);
  e->len = 0;
}

void po_events_free(struct po_events *e) {
  po_events_clear(e);
  free(e->v);
  memset(e, 0, sizeof(*e));
}

int po_events_reserve(struct po_events *e, size_t more) {
  if (e->len + more > e->cap) {
    size_t cap = e->cap ? e->cap : 4;
    struct po_event *nv;

    while (cap < e->len + more)
      cap *= 2;
    nv = realloc(e->v, cap * sizeof(*nv));
    if (!nv)
      return -ENOMEM;
    e->v = nv;
    e->cap = cap;
  }
  return 0;
}

/* The distinct labels of l's owners, comma-separated (malloc'd), in *out;
 * NULL when none. Returns 0 or -ENOMEM. */
static int units_of(const struct identlist *l, char **out) {
  size_t len = 0, cap = 0;
  char *s = NULL;

  *out = NULL;
  for (size_t i = 0; i < l->len; i++) {
    char label[2 * PO_UNIT_NAME_MAX];
    size_t ll;
    int seen = 0;

    po_ident_label(&l->v[i], label, sizeof(label));
    ll = strlen(label);
    if (!ll)
      continue;
    for (const char *p = s; p && *p && !seen;) {
      const char *c = strchr(p, ',');
      size_t n = c ? (size_t)(c - p) : strlen(p);

      seen = n == ll && memcmp(p, label, n) == 0;
      p = c ? c + 1 : p + n;
    }
    if (seen)
      continue;
    if (len + ll + 2 > cap) {
      size_t ncap = (len + ll + 2) * 2;
      char *ns = realloc(s, ncap);

      if (!ns) {
        free(s);
        return -ENOMEM;
      }
      s = ns;
      cap = ncap;
    }
    if (len)
      s[len++] = ',';
    memcpy(s + len, label, ll + 1);
    len += ll;
  }
  *out = s;
  return 0;
}

/* Appends an event with its owners JSON (cur) and previous_owners (prev,
 * when not NULL). */
int po_event_add(struct po_events *ev, const struct po_watch *w,
                 enum po_event_type type, const struct msg *m,
                 const struct po_watch_values *v, const struct identlist *cur,
                 const struct identlist *prev) {
  struct po_event e = {0};
  int err;

  e.type = type;
  switch (type) {
  case PO_EVENT_LISTENER_LOST:
  case PO_EVENT_MISSING_AT_START:
  case PO_EVENT_UNEXPECTED_OWNER:
    e.severity = PO_SEVERITY_FAILURE;
    break;
  case PO_EVENT_OWNER_CHANGED:
  case PO_EVENT_RESTARTED:
    e.severity = PO_SEVERITY_WARNING;
    break;
  case PO_EVENT_LISTENER_BACK:
  case PO_EVENT_EXPECTED_OWNER:
    e.severity = PO_SEVERITY_OKAY;
    break;
  }
  e.watch = w;
  memcpy(e.message, m->b, m->len + 1);
  e.sockets = v->sockets;
  e.processes = v->processes;
  e.owners_total = cur->len;
  err = po_owners_json(cur, &e.owners);
  if (!err)
    err = units_of(cur, &e.units);
  if (!err && prev)
    err = po_owners_json(prev, &e.previous_owners);
  if (!err)
    err = po_events_reserve(ev, 1);
  if (err) {
    event_release(&e);
    return err;
  }
  ev->v[ev->len++] = e;
  return 0;
}

static yajl_gen_status gen_str_or_null(yajl_gen g, const char *s) {
  if (!s || !*s)
    return yajl_gen_null(g);
  return po_json_string(g, s, strlen(s));
}

/* The owners JSON of an event: at most PO_OWNERS_MAX {pid, comm, exe, user}. */
int po_owners_json(const struct identlist *l, char **out) {
  yajl_gen g = yajl_gen_alloc(NULL);
  int bad = 0;

  if (!g)
    return -ENOMEM;
  bad |= yajl_gen_array_open(g);
  for (size_t i = 0; i < l->len && i < PO_OWNERS_MAX; i++) {
    const struct ident *o = &l->v[i];

    bad |= yajl_gen_map_open(g);
    bad |= po_gen_key(g, "pid") | yajl_gen_integer(g, o->pid);
    bad |= po_gen_key(g, "comm") | gen_str_or_null(g, o->comm);
    bad |= po_gen_key(g, "exe") | gen_str_or_null(g, o->exe);
    bad |= po_gen_key(g, "user") | gen_str_or_null(g, o->user);
    bad |= yajl_gen_map_close(g);
  }
  bad |= yajl_gen_array_close(g);
  return po_gen_finish(g, bad, out, NULL);
}
