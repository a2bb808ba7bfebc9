/*
 * portowner: the unexpected owner condition (see cond.h). FAILURE "is held
 * by an unexpected owner" naming the owners that fail ExpectProcess /
 * ExpectUser (expect.c), OKAY "is held by expected owners again" once
 * every owner that can be judged passes. Owners whose details could not be
 * read are not judged either way.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "portowner/cond.h"
#include "portowner/event.h"
#include "portowner/expect.h"
#include "portowner/message.h"

int po_cond_unexpected_owner(struct po_eval *e) {
  const struct po_watch *w = e->w;
  const struct identlist *cur = e->cur;
  struct watch_state *ns = e->ns;
  struct identlist bad = {0};
  size_t judged = 0;
  struct msg m;
  int err = 0;

  bad.v = malloc(cur->len * sizeof(*bad.v));
  if (!bad.v)
    return -ENOMEM;
  for (size_t i = 0; i < cur->len; i++) {
    int ok = po_owner_expected(w, &cur->v[i]);

    if (ok >= 0)
      judged++;
    if (ok == 0)
      bad.v[bad.len++] = cur->v[i];
  }
  if (bad.len && !ns->unexpected_failure) {
    memset(&m, 0, sizeof(m));
    po_msg_label(&m, w);
    po_msg_str(&m, " is held by an unexpected owner: ");
    po_msg_owners(&m, &bad, sizeof(m.b));
    err = po_event_add(e->local, w, PO_EVENT_UNEXPECTED_OWNER, &m, e->values,
                       cur, NULL);
    if (!err)
      ns->unexpected_failure = 1;
  } else if (!bad.len && judged && ns->unexpected_failure) {
    memset(&m, 0, sizeof(m));
    po_msg_label(&m, w);
    po_msg_str(&m, " is held by expected owners again: ");
    po_msg_owners(&m, cur, sizeof(m.b));
    err = po_event_add(e->local, w, PO_EVENT_EXPECTED_OWNER, &m, e->values, cur,
                       NULL);
    if (!err)
      ns->unexpected_failure = 0;
  }
  free(bad.v);
  return err;
}
