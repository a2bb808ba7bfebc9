/*
 * portowner: the owner change condition (see cond.h). WARNING "changed
 * owner" when the set of (program, user) of the owners differs from the
 * last read's, or "changed owner (every process replaced)" when it is the
 * same but no pid is (pids of this boot only), while the port stayed open.
 * Not at a read where the listener came back, nor with NotifyOwnerChange
 * off. It has no OKAY: each change is one WARNING.
 */
#include <string.h>

#include "portowner/cond.h"
#include "portowner/event.h"
#include "portowner/message.h"
#include "portowner/owners.h"

int po_cond_owner_change(struct po_eval *e) {
  const struct po_watch *w = e->w;
  const struct identlist *last = e->last, *cur = e->cur;
  int differ, replaced = 0;
  size_t half;
  struct msg m;

  if (e->back || !w->notify_change || !last->len)
    return 0;
  differ = po_progs_differ(last, cur);
  if (differ < 0)
    return differ;
  if (!differ)
    replaced = e->ns->pids_valid && po_pids_disjoint(last, cur);
  if (!differ && !replaced)
    return 0;
  memset(&m, 0, sizeof(m));
  po_msg_label(&m, w);
  po_msg_str(&m, differ ? " changed owner: "
                        : " changed owner (every process replaced): ");
  half = m.len + 4 < sizeof(m.b) ? (sizeof(m.b) - 1 - m.len - 4) / 2 : 0;
  po_msg_owners(&m, last, half);
  po_msg_str(&m, " -> ");
  po_msg_owners(&m, cur, sizeof(m.b));
  return po_event_add(e->local, w, PO_EVENT_OWNER_CHANGED, &m, e->values, cur,
                      last);
}
