/*
 * portowner: the conditions of a watch, one file each, run by eval.c for
 * every read in this order:
 *
 *   cond_listener.c          per requirement (requirement.h): FAILURE
 *                            when it was served and no socket served it
 *                            for Hits reads (or none at the first read),
 *                            OKAY when one serves it again;
 *   cond_owner_change.c      WARNING when the set of (program, user) of the
 *                            owners is another one for OwnerChangeHits
 *                            reads; with NotifyRestart, WARNING when the
 *                            same ones re-created the sockets;
 *   cond_unexpected_owner.c  FAILURE when an owner (or the uid of a socket
 *                            without one) fails ExpectProcess / ExpectUser,
 *                            again for each one not named before; OKAY
 *                            when every owner passes again.
 *
 * Each takes the evaluation's context: it reads the watch, the values and
 * the owners of this read and the state before it (w->st), updates the new
 * state (ns) and appends its events to the local array. eval.c commits ns
 * and the events only when every condition succeeded.
 *
 * Contract: 0 or a negative errno value (-ENOMEM); on failure the caller
 * drops ns and the local events. Core only; nothing logs.
 */
#ifndef PORTOWNER_COND_H
#define PORTOWNER_COND_H

#include "portowner/watch_private.h"

struct req_state;

/* One evaluation of one watch for one snapshot. */
struct po_eval {
  const struct po_watch *w;
  struct watch_state *ns;               /* the new state, from w->st */
  const struct identlist *cur;          /* owners now (sorted by pid) */
  const struct identlist *last;         /* owners at the last read: w->st */
  const struct po_watch_values *values; /* this read's values */
  struct po_events *local;              /* this evaluation's events */
  const struct po_snapshot *snap;       /* the read */
  uint64_t own_netns;                   /* as po_watch_eval() got it */
  int back; /* the listener came back at this read (set by the listener) */
  unsigned replaced; /* PO_REPLACED_* (owners.h): what ns owns anew */
  /* The listener's new state of each requirement, until committed: */
  struct req_state *rns;
  unsigned char *rfresh; /* rns[i].last is a new copy */
};

/* The listener: runs at every read, first. Its state is per requirement:
 * eval.c ends every evaluation with po_cond_listener_commit() when it
 * keeps the new state, po_cond_listener_drop() when it does not. */
int po_cond_listener(struct po_eval *e);
void po_cond_listener_commit(struct po_eval *e);
void po_cond_listener_drop(struct po_eval *e);

/* Owner change: runs when the watch has sockets and known owners. */
int po_cond_owner_change(struct po_eval *e);

/* Unexpected owner: runs when the watch has sockets (the uid of a socket
 * with no owner found is judged by ExpectUser). */
int po_cond_unexpected_owner(struct po_eval *e);

#endif /* PORTOWNER_COND_H */
