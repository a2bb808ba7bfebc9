/*
 * portowner: the listener condition (see cond.h). FAILURE "lost its
 * listener" when a watch that had sockets has none for Hits reads, FAILURE
 * "has no listener at start" when it has none at its first read
 * (NotifyMissingAtStart), OKAY "has a listener again" when sockets are back
 * after either.
 */
#include <string.h>

#include "portowner/cond.h"
#include "portowner/event.h"
#include "portowner/message.h"

/* A read without sockets. */
static int listener_none(struct po_eval *e) {
  const struct po_watch *w = e->w;
  struct watch_state *ns = e->ns;
  struct msg m;
  int err = 0;

  memset(&m, 0, sizeof(m));
  if (!ns->started) {
    if (w->notify_missing && !ns->listener_failure) {
      po_msg_label(&m, w);
      po_msg_str(&m, " has no listener at start");
      err = po_event_add(e->local, w, PO_EVENT_MISSING_AT_START, &m, e->values,
                         e->cur, NULL);
      ns->listener_failure = 1;
    }
  } else {
    if (ns->empty_reads < w->hits)
      ns->empty_reads++;
    if (ns->ever_up && !ns->listener_failure && ns->empty_reads >= w->hits) {
      po_msg_label(&m, w);
      po_msg_str(&m, " lost its listener");
      if (e->last->len) {
        po_msg_str(&m, "; last held by ");
        po_msg_owners(&m, e->last, sizeof(m.b));
      }
      err = po_event_add(e->local, w, PO_EVENT_LISTENER_LOST, &m, e->values,
                         e->cur, e->last);
      ns->listener_failure = 1;
    }
  }
  ns->started = 1;
  return err;
}

int po_cond_listener(struct po_eval *e) {
  const struct po_watch *w = e->w;
  struct watch_state *ns = e->ns;
  struct msg m;
  int err;

  if (e->values->sockets == 0)
    return listener_none(e);
  ns->started = 1;
  ns->ever_up = 1;
  ns->empty_reads = 0;
  if (!ns->listener_failure)
    return 0;
  memset(&m, 0, sizeof(m));
  po_msg_label(&m, w);
  if (e->cur->len) {
    po_msg_str(&m, " has a listener again; held by ");
    po_msg_owners(&m, e->cur, sizeof(m.b));
  } else {
    po_msg_str(&m, " has a listener again; owner unknown");
  }
  err = po_event_add(e->local, w, PO_EVENT_LISTENER_BACK, &m, e->values, e->cur,
                     NULL);
  if (err)
    return err;
  ns->listener_failure = 0;
  e->back = 1;
  return 0;
}
