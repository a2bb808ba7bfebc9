/*
 * portowner: the owner change condition (see cond.h).
 *
 * The program of an owner is its exe's basename (owners.h): an owner whose
 * exe is unknown (exiting with nothing known of it, unreadable) is left out,
 * never compared by its comm. The watch keeps an accepted set of (program,
 * user) (ns->accepted, its owners): WARNING "changed owner" when the set of
 * this read differs from it on OwnerChangeHits reads in a row, the same new
 * set each time; that set is then the accepted one. Other pids alone are
 * no change: a handover of the same sockets to the same program and user is
 * nothing, and so is a restart (the same programs and users, the sockets
 * re-created: other inodes, none of the old pids), unless NotifyRestart:
 * then one WARNING "restarted". Not at a read where the listener came back
 * (after that FAILURE, the owners then are the accepted ones), nor with
 * NotifyOwnerChange off (the accepted set still follows). No OKAY: each
 * change is one WARNING.
 */
#include <string.h>

#include "portowner/cond.h"
#include "portowner/event.h"
#include "portowner/message.h"
#include "portowner/owners.h"
#include "portowner/select.h"

/* ns->accepted = the owners of l with known programs. */
static int accept(struct po_eval *e, const struct identlist *l) {
  struct identlist copy;
  int err = po_identlist_copy_known(&copy, l);

  if (err)
    return err;
  if (e->replaced & PO_REPLACED_ACCEPTED)
    po_identlist_free(&e->ns->accepted);
  e->ns->accepted = copy;
  e->replaced |= PO_REPLACED_ACCEPTED;
  return 0;
}

/* A hash of the inodes of the sockets the watch selects (in table order). */
static uint64_t socket_hash(const struct po_eval *e) {
  uint64_t h = PO_HASH_INIT;

  for (size_t i = 0; i < e->snap->socks.len; i++) {
    const struct po_socket *sk = &e->snap->socks.v[i];

    if (po_select_socket(e->w, e->snap, sk, e->own_netns))
      h = po_hash_bytes(h, &sk->inode, sizeof(sk->inode));
  }
  return h;
}

/* "LABEL WHAT: a -> b", the first list in about half of the room. */
static int changed_event(struct po_eval *e, enum po_event_type type,
                         const char *what, const struct identlist *from) {
  struct msg m;
  size_t half;

  memset(&m, 0, sizeof(m));
  po_msg_label(&m, e->w);
  po_msg_str(&m, what);
  half = m.len + 4 < sizeof(m.b) ? (sizeof(m.b) - 1 - m.len - 4) / 2 : 0;
  po_msg_owners(&m, from, half);
  po_msg_str(&m, " -> ");
  po_msg_owners(&m, e->cur, sizeof(m.b));
  return po_event_add(e->local, e->w, type, &m, e->values, e->cur, from);
}

int po_cond_owner_change(struct po_eval *e) {
  const struct po_watch *w = e->w;
  struct watch_state *ns = e->ns;
  const struct identlist *cur = e->cur;
  uint64_t inodes = socket_hash(e), h;
  int same_inodes = ns->sock_hash_valid && ns->sock_hash == inodes;
  ssize_t known, accepted;
  int differ, err;

  ns->sock_hash = inodes;
  ns->sock_hash_valid = 1;
  known = po_progs_hash(cur, &h);
  if (known <= 0)
    return (int)known; /* no known program now: nothing to compare */
  if (!ns->accepted.len) {
    /* The first set known (or the one restored from the StateFile). */
    err = accept(e, e->last->len ? e->last : cur);
    if (err)
      return err;
  }
  accepted = ns->accepted.len;
  if (e->back || !accepted) {
    ns->change_reads = 0;
    return accept(e, cur);
  }
  differ = po_progs_differ(&ns->accepted, cur);
  if (differ < 0)
    return differ;
  if (!differ) {
    ns->change_reads = 0;
    if (w->notify_restart && !same_inodes && ns->pids_valid && e->last->len &&
        po_pids_disjoint(e->last, cur)) {
      err = changed_event(e, PO_EVENT_RESTARTED, " restarted: ", e->last);
      if (err)
        return err;
    }
    /* The same set: its owners as they are now, for the next message. */
    return po_pids_same(&ns->accepted, cur) ? 0 : accept(e, cur);
  }
  if (ns->change_reads && ns->change_hash == h)
    ns->change_reads++;
  else {
    ns->change_hash = h;
    ns->change_reads = 1;
  }
  if (ns->change_reads < w->change_hits)
    return 0;
  if (w->notify_change) {
    err = changed_event(e, PO_EVENT_OWNER_CHANGED,
                        " changed owner: ", &ns->accepted);
    if (err)
      return err;
  }
  ns->change_reads = 0;
  return accept(e, cur);
}
