/*
 * portowner: the listener condition (see cond.h), one per requirement of a
 * watch (requirement.h). FAILURE "tcp/443 (web) lost its listener; last
 * held by ..." when a requirement that was served has had no socket serving
 * it for Hits reads, FAILURE "tcp/22 (ssh) has no listener at start" when
 * none serves it at its first read (NotifyMissingAtStart), OKAY "tcp/443
 * (web) has a listener again; held by ..." when one serves it again after
 * either. The owners named are those of the sockets that served that
 * requirement.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "portowner/cond.h"
#include "portowner/event.h"
#include "portowner/message.h"
#include "portowner/owners.h"
#include "portowner/requirement.h"
#include "portowner/select.h"

/* "tcp/443 (web)". */
static void req_label(struct msg *m, const struct po_watch *w,
                      const struct requirement *r) {
  po_msg_text(m, r->name, strlen(r->name), PO_REQUIREMENT_NAME_MAX);
  po_msg_str(m, " (");
  po_msg_text(m, w->name, strlen(w->name), MSG_NAME_MAX);
  po_msg_str(m, ")");
}

static int str_same(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* Whether a and b name the same processes with the same details. */
static int idents_same(const struct identlist *a, const struct identlist *b) {
  if (a->len != b->len)
    return 0;
  for (size_t i = 0; i < a->len; i++) {
    const struct ident *x = &a->v[i], *y = &b->v[i];

    if (x->pid != y->pid || x->uid != y->uid || !str_same(x->comm, y->comm) ||
        !str_same(x->exe, y->exe) || !str_same(x->user, y->user))
      return 0;
  }
  return 1;
}

/* Appends an event of requirement r with its own counts and owners. */
static int req_event(struct po_eval *e, const struct requirement *r,
                     enum po_event_type type, const struct msg *m,
                     const struct req_read *now, const struct identlist *prev) {
  struct po_watch_values v = *e->values;
  int err;

  v.sockets = now->sockets;
  v.processes = now->owners.len;
  err = po_event_add(e->local, e->w, type, m, &v, &now->owners, prev);
  if (!err)
    e->local->v[e->local->len - 1].requirement = r->name;
  return err;
}

/* A read where no socket serves r. */
static int req_unserved(struct po_eval *e, const struct requirement *r,
                        struct req_state *ns, const struct req_read *now) {
  const struct po_watch *w = e->w;
  struct msg m;
  int err = 0;

  memset(&m, 0, sizeof(m));
  if (!ns->started) {
    if (w->notify_missing && !ns->failure) {
      req_label(&m, w, r);
      po_msg_str(&m, " has no listener at start");
      err = req_event(e, r, PO_EVENT_MISSING_AT_START, &m, now, NULL);
      ns->failure = 1;
    }
  } else {
    if (ns->empty_reads < w->hits)
      ns->empty_reads++;
    if (ns->ever_up && !ns->failure && ns->empty_reads >= w->hits) {
      req_label(&m, w, r);
      po_msg_str(&m, " lost its listener");
      if (ns->last.len) {
        po_msg_str(&m, "; last held by ");
        po_msg_owners(&m, &ns->last, sizeof(m.b));
      }
      err = req_event(e, r, PO_EVENT_LISTENER_LOST, &m, now, &ns->last);
      ns->failure = 1;
    }
  }
  ns->started = 1;
  return err;
}

/* A read where sockets serve r. */
static int req_served(struct po_eval *e, const struct requirement *r,
                      struct req_state *ns, unsigned char *fresh,
                      const struct req_read *now) {
  struct msg m;
  int err;

  ns->started = 1;
  ns->ever_up = 1;
  ns->empty_reads = 0;
  if (now->owners.len && !idents_same(&now->owners, &ns->last)) {
    struct identlist copy;

    err = po_identlist_copy(&copy, &now->owners);
    if (err)
      return err;
    ns->last = copy;
    *fresh = 1;
  }
  if (!ns->failure)
    return 0;
  memset(&m, 0, sizeof(m));
  req_label(&m, e->w, r);
  if (now->owners.len) {
    po_msg_str(&m, " has a listener again; held by ");
    po_msg_owners(&m, &now->owners, sizeof(m.b));
  } else {
    po_msg_str(&m, " has a listener again; owner unknown");
  }
  err = req_event(e, r, PO_EVENT_LISTENER_BACK, &m, now, NULL);
  if (err)
    return err;
  ns->failure = 0;
  e->back = 1;
  return 0;
}

int po_cond_listener(struct po_eval *e) {
  const struct po_watch *w = e->w;
  struct req_read *now = NULL;
  int err;

  po_cond_listener_drop(e);
  e->rns = calloc(w->nreqs ? w->nreqs : 1, sizeof(*e->rns));
  e->rfresh = calloc(w->nreqs ? w->nreqs : 1, 1);
  if (!e->rns || !e->rfresh) {
    po_cond_listener_drop(e);
    return -ENOMEM;
  }
  err = po_select_requirements(w, e->snap, e->own_netns, e->cur, &now);
  for (size_t i = 0; !err && i < w->nreqs; i++) {
    const struct requirement *r = &w->reqs[i];

    e->rns[i] = r->st;
    if (now[i].sockets == 0)
      err = req_unserved(e, r, &e->rns[i], &now[i]);
    else
      err = req_served(e, r, &e->rns[i], &e->rfresh[i], &now[i]);
  }
  po_select_requirements_free(w, now);
  if (err)
    po_cond_listener_drop(e);
  return err;
}

void po_cond_listener_commit(struct po_eval *e) {
  struct requirement *reqs = e->w->reqs;

  if (!e->rns)
    return;
  for (size_t i = 0; i < e->w->nreqs; i++) {
    if (e->rfresh[i])
      po_identlist_free(&reqs[i].st.last);
    reqs[i].st = e->rns[i];
  }
  free(e->rns);
  free(e->rfresh);
  e->rns = NULL;
  e->rfresh = NULL;
}

void po_cond_listener_drop(struct po_eval *e) {
  if (e->rns && e->rfresh)
    for (size_t i = 0; i < e->w->nreqs; i++)
      if (e->rfresh[i])
        po_identlist_free(&e->rns[i].last);
  free(e->rns);
  free(e->rfresh);
  e->rns = NULL;
  e->rfresh = NULL;
}
