/*
 * portowner: the evaluation of a watch for one snapshot (po_watch_eval(),
 * po_watchset_eval() of watch.h). It picks the watch's sockets and owners
 * out of the snapshot (select.c), runs each condition in turn on a copy of
 * the watch's state (cond.h: one file per condition), and commits the new
 * state and the events only when all of them succeeded.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "portowner/cond.h"
#include "portowner/event.h"
#include "portowner/expect.h"
#include "portowner/owners.h"
#include "portowner/select.h"
#include "portowner/watch_private.h"

int po_watch_eval(struct po_watch *w, const struct po_snapshot *s,
                  uint64_t own_netns, struct po_watch_values *values,
                  struct po_events *ev) {
  struct watch_state ns = w->st;
  struct identlist cur, newlast = {0};
  struct po_events local = {0};
  struct po_eval e;
  int err, update_last = 0;

  if (!w->finished)
    return -EINVAL;
  err = po_select_collect(w, s, own_netns, values, &cur);
  if (err)
    return err;
  if (ns.pids_valid)
    po_details_keep(&cur, &w->st.last);

  e = (struct po_eval){
      .w = w,
      .ns = &ns,
      .cur = &cur,
      .last = &w->st.last,
      .values = values,
      .local = &local,
      .snap = s,
      .own_netns = own_netns,
  };
  if (values->sockets)
    po_expect_refresh(w);
  err = po_cond_listener(&e);
  /* Owners unknown (or no sockets): nothing to compare or judge. Nor while
   * a socket's owners are not all known (its full walk was put off): the
   * owners seen would be a part of them; the next full walk has them. */
  if (!err && values->sockets && cur.len && !values->pending) {
    err = po_cond_owner_change(&e);
    update_last = 1;
  }
  if (!err && values->sockets && !values->pending)
    err = po_cond_unexpected_owner(&e);
  if (err)
    goto fail;

  if (update_last) {
    err = po_identlist_copy(&newlast, &cur);
    if (err)
      goto fail;
    ns.pids_valid = 1;
  }
  err = po_events_reserve(ev, local.len);
  if (err)
    goto fail;
  if (local.len)
    memcpy(ev->v + ev->len, local.v, local.len * sizeof(*local.v));
  ev->len += local.len;
  free(local.v);
  if (update_last) {
    po_identlist_free(&w->st.last);
    ns.last = newlast;
  }
  po_cond_listener_commit(&e);
  po_state_commit(&w->st, e.replaced);
  w->st = ns;
  free(cur.v);
  return 0;

fail:
  po_cond_listener_drop(&e);
  po_state_rollback(&ns, e.replaced);
  po_identlist_free(&newlast);
  po_events_free(&local);
  free(cur.v);
  return err;
}

int po_watchset_eval(struct po_watchset *set, const struct po_snapshot *s,
                     uint64_t own_netns, struct po_watch_values *values,
                     struct po_events *ev) {
  for (size_t i = 0; i < set->len; i++) {
    int err = po_watch_eval(set->v[i], s, own_netns, &values[i], ev);

    if (err)
      return err;
  }
  return 0;
}
