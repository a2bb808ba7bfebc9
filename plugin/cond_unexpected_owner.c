/*
 * portowner: the unexpected owner condition (see cond.h). FAILURE "is held
 * by an unexpected owner" naming the owners that fail ExpectProcess /
 * ExpectUser (expect.c); while it stands, a new FAILURE for each read that
 * brings in unexpected owners not named before (program, user and pid),
 * naming those. OKAY "is held by expected owners again" once every owner
 * that can be judged passes. Owners whose details could not be read are not
 * judged either way; an owner whose exe is unknown is judged by its user
 * and named "(exe unknown)". A socket with no owner found is judged by
 * ExpectUser with the socket's own uid: "uid 65534 (no owner found)".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "portowner/cond.h"
#include "portowner/event.h"
#include "portowner/expect.h"
#include "portowner/message.h"
#include "portowner/owners.h"
#include "portowner/select.h"

/* Most names remembered while a FAILURE stands; past it, the names of the
 * last FAILURE only (so memory stays bounded whatever a user forks). */
#define NAMED_MAX 4096

static int u64_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

  return (x > y) - (x < y);
}

static int named(const struct watch_state *ns, uint64_t h) {
  return ns->nnamed && bsearch(&h, ns->named, ns->nnamed, sizeof(h), u64_cmp);
}

/* ns->named = (keep ? ns->named : none) + the names of l. */
static int name_all(struct po_eval *e, const struct identlist *l, int keep) {
  struct watch_state *ns = e->ns;
  size_t n = keep ? ns->nnamed : 0, k = 0;
  uint64_t *v;

  if (n + l->len > NAMED_MAX)
    n = 0;
  v = malloc((n + l->len ? n + l->len : 1) * sizeof(*v));
  if (!v)
    return -ENOMEM;
  if (n)
    memcpy(v, ns->named, n * sizeof(*v));
  for (size_t i = 0; i < l->len; i++)
    v[n + i] = po_named_hash(&l->v[i]);
  n += l->len;
  if (n)
    qsort(v, n, sizeof(*v), u64_cmp);
  for (size_t i = 0; i < n; i++)
    if (k == 0 || v[k - 1] != v[i])
      v[k++] = v[i];
  if (e->replaced & PO_REPLACED_NAMED)
    free(ns->named);
  ns->named = v;
  ns->nnamed = k;
  e->replaced |= PO_REPLACED_NAMED;
  return 0;
}

/* The distinct uids of the sockets w selects that have no owner and fail
 * ExpectUser, ExpectUnit or ExpectCgroup (judged by the socket's uid and
 * cgroup), appended to bad as owners with pid 0 (no owner found). */
static void unowned_bad(const struct po_eval *e, struct identlist *bad,
                        size_t cap) {
  const struct po_watch *w = e->w;
  const struct po_snapshot *s = e->snap;

  if (!w->nusers && !w->nunits && !w->ncgpats)
    return;
  for (size_t i = 0; i < s->socks.len && bad->len < cap; i++) {
    const struct po_socket *sk = &s->socks.v[i];
    struct ident o = {.uid = sk->uid, .comm = "", .user = ""};

    if (s->sock_cgroups)
      o.cgroup = s->sock_cgroups[i];
    int seen = 0;

    if (sk->owner_count || !po_select_socket(w, s, sk, e->own_netns) ||
        po_owner_expected(w, &o) != 0)
      continue;
    for (size_t j = 0; j < bad->len && !seen; j++)
      seen = bad->v[j].pid == 0 && bad->v[j].uid == sk->uid;
    if (!seen)
      bad->v[bad->len++] = o;
  }
}

static size_t unowned_count(const struct po_eval *e) {
  return e->w->nusers || e->w->nunits || e->w->ncgpats
             ? (size_t)e->values->unowned
             : 0;
}

int po_cond_unexpected_owner(struct po_eval *e) {
  const struct po_watch *w = e->w;
  const struct identlist *cur = e->cur;
  struct watch_state *ns = e->ns;
  struct identlist bad = {0}, fresh = {0};
  size_t judged = 0, cap = cur->len + unowned_count(e);
  struct msg m;
  int err = 0;

  if (!cap)
    return 0;
  bad.v = malloc(cap * sizeof(*bad.v));
  fresh.v = malloc(cap * sizeof(*fresh.v));
  if (!bad.v || !fresh.v) {
    free(bad.v);
    free(fresh.v);
    return -ENOMEM;
  }
  for (size_t i = 0; i < cur->len; i++) {
    int ok = po_owner_expected(w, &cur->v[i]);

    if (ok >= 0)
      judged++;
    if (ok == 0)
      bad.v[bad.len++] = cur->v[i];
  }
  unowned_bad(e, &bad, cap);
  judged += unowned_count(e);
  if (bad.len && ns->unexpected_failure && !ns->nnamed) {
    /* A FAILURE restored from the StateFile: what it named is not known;
     * the owners now are taken as named. */
    err = name_all(e, &bad, 0);
  } else if (bad.len) {
    for (size_t i = 0; i < bad.len; i++)
      if (!ns->unexpected_failure || !named(ns, po_named_hash(&bad.v[i])))
        fresh.v[fresh.len++] = bad.v[i];
    if (fresh.len) {
      memset(&m, 0, sizeof(m));
      po_msg_label(&m, w);
      po_msg_str(&m, " is held by an unexpected owner: ");
      po_msg_owners_flags(&m, &fresh, sizeof(m.b), PO_MSG_EXE_UNKNOWN);
      err = po_event_add(e->local, w, PO_EVENT_UNEXPECTED_OWNER, &m, e->values,
                         cur, NULL);
      if (!err)
        err = name_all(e, &fresh, ns->unexpected_failure);
      if (!err)
        ns->unexpected_failure = 1;
    }
  } else if (judged && ns->unexpected_failure) {
    memset(&m, 0, sizeof(m));
    po_msg_label(&m, w);
    po_msg_str(&m, " is held by expected owners again: ");
    if (cur->len)
      po_msg_owners(&m, cur, sizeof(m.b));
    else
      po_msg_str(&m, "no owner found");
    err = po_event_add(e->local, w, PO_EVENT_EXPECTED_OWNER, &m, e->values, cur,
                       NULL);
    if (!err)
      err = name_all(e, &(struct identlist){0}, 0);
    if (!err)
      ns->unexpected_failure = 0;
  }
  free(bad.v);
  free(fresh.v);
  return err;
}
