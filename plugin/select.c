/*
 * portowner: which sockets a watch selects, and what it counts of them (see
 * select.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "portowner/requirement.h"
#include "portowner/select.h"

int po_select_netns(const struct po_watch *w, const struct po_snapshot *s,
                    uint64_t netns, uint64_t own_netns) {
  const struct po_netns *n;

  if (netns == own_netns)
    return 1;
  if (!w->all_ns)
    return 0;
  if (w->ns_untrusted)
    return 1;
  n = po_snapshot_netns(s, netns);
  return n && n->trusted;
}

int po_select_socket(const struct po_watch *w, const struct po_snapshot *s,
                     const struct po_socket *sk, uint64_t own_netns) {
  if (!po_select_netns(w, s, sk->netns, own_netns))
    return 0;
  if (!po_ranges_match(w->ports, w->nports, sk->port))
    return 0;
  for (size_t i = 0; i < w->nreqs; i++)
    if (po_requirement_serves(&w->reqs[i], sk))
      return 1;
  return 0;
}

/* The cgroup of the owner of s->procs[i]: its own, else that of the first
 * socket it holds that has one (the socket's creator's). */
static void set_cgroup(const struct po_snapshot *s, size_t i, struct ident *o) {
  const struct po_proc *p = &s->procs[i];

  o->cgroup = p->cgroup.v2;
  o->cgroup_systemd = p->cgroup.systemd;
  if (o->cgroup || o->cgroup_systemd || !s->sock_cgroups)
    return;
  for (size_t k = 0; k < s->nowners && !o->cgroup; k++)
    if (s->owners[k].proc == i && s->owners[k].sock < s->socks.len)
      o->cgroup = s->sock_cgroups[s->owners[k].sock];
}

/* The values of w in s and its distinct owners (pointing into s). */
int po_select_collect(const struct po_watch *w, const struct po_snapshot *s,
                      uint64_t own_netns, struct po_watch_values *v,
                      struct identlist *cur) {
  uint8_t *mark = NULL, *served;
  size_t nserved = 0;

  memset(v, 0, sizeof(*v));
  memset(cur, 0, sizeof(*cur));
  served = calloc(w->nreqs ? w->nreqs : 1, 1);
  if (s->nprocs)
    mark = calloc(s->nprocs, 1);
  if (!served || (s->nprocs && !mark)) {
    free(served);
    free(mark);
    return -ENOMEM;
  }
  for (size_t i = 0; i < s->socks.len; i++) {
    const struct po_socket *sk = &s->socks.v[i];

    if (!po_select_socket(w, s, sk, own_netns))
      continue;
    for (size_t r = 0; nserved < w->nreqs && r < w->nreqs; r++) {
      if (!served[r] && po_requirement_serves(&w->reqs[r], sk)) {
        served[r] = 1;
        nserved++;
      }
    }
    v->sockets++;
    v->pending += sk->owner_pending;
    if (sk->owner_count == 0)
      v->unowned++;
    if (sk->proto == IPPROTO_TCP) {
      v->accept += sk->rqueue == PO_QUEUE_UNKNOWN ? 0 : sk->rqueue;
      v->accept_max += sk->wqueue == PO_QUEUE_UNKNOWN ? 0 : sk->wqueue;
    }
    for (size_t j = 0; j < sk->owner_count; j++) {
      size_t k = sk->owner_first + j;

      if (k < s->nowners && s->owners[k].proc < s->nprocs &&
          !mark[s->owners[k].proc]) {
        mark[s->owners[k].proc] = 1;
        cur->len++;
      }
    }
  }
  if (cur->len) {
    size_t n = 0;

    cur->v = malloc(cur->len * sizeof(*cur->v));
    if (!cur->v) {
      free(mark);
      free(served);
      cur->len = 0;
      return -ENOMEM;
    }
    /* procs are sorted by pid: so is cur. */
    for (size_t i = 0; i < s->nprocs; i++) {
      const struct po_proc *p = &s->procs[i];

      if (!mark[i])
        continue;
      cur->v[n].pid = p->pid;
      cur->v[n].uid = p->uid;
      cur->v[n].comm = p->comm;
      cur->v[n].exe = p->exe;
      cur->v[n].user = p->user;
      cur->v[n].start = p->start;
      cur->v[n].exe_id = p->exe_id;
      cur->v[n].exe_file.dev = p->exe_dev;
      cur->v[n].exe_file.ino = p->exe_ino;
      set_cgroup(s, i, &cur->v[n]);
      n++;
    }
  }
  v->processes = cur->len;
  v->missing = w->nreqs - nserved;
  free(mark);
  free(served);
  return 0;
}

static int ident_cmp_pid_key(const void *key, const void *elem) {
  pid_t a = *(const pid_t *)key, b = ((const struct ident *)elem)->pid;

  return a < b ? -1 : a > b;
}

void po_select_requirements_free(const struct po_watch *w,
                                 struct req_read *rr) {
  if (!rr)
    return;
  for (size_t i = 0; i < w->nreqs; i++)
    free(rr[i].owners.v);
  free(rr);
}

int po_select_requirements(const struct po_watch *w,
                           const struct po_snapshot *s, uint64_t own_netns,
                           const struct identlist *cur, struct req_read **out) {
  struct req_read *rr = calloc(w->nreqs ? w->nreqs : 1, sizeof(*rr));
  uint8_t *mark = calloc(cur->len ? cur->len : 1, 1);
  int err = 0;

  *out = NULL;
  if (!rr || !mark) {
    free(rr);
    free(mark);
    return -ENOMEM;
  }
  for (size_t r = 0; r < w->nreqs && !err; r++) {
    const struct requirement *req = &w->reqs[r];
    size_t n = 0;

    memset(mark, 0, cur->len);
    for (size_t i = 0; i < s->socks.len; i++) {
      const struct po_socket *sk = &s->socks.v[i];

      if (!po_select_netns(w, s, sk->netns, own_netns) ||
          !po_requirement_serves(req, sk))
        continue;
      rr[r].sockets++;
      for (size_t j = 0; j < sk->owner_count; j++) {
        size_t k = sk->owner_first + j;
        const struct ident *o;

        if (k >= s->nowners || s->owners[k].proc >= s->nprocs)
          continue;
        o = bsearch(&s->procs[s->owners[k].proc].pid, cur->v, cur->len,
                    sizeof(*cur->v), ident_cmp_pid_key);
        if (o && !mark[o - cur->v]) {
          mark[o - cur->v] = 1;
          n++;
        }
      }
    }
    if (n == 0)
      continue;
    rr[r].owners.v = malloc(n * sizeof(*rr[r].owners.v));
    if (!rr[r].owners.v) {
      err = -ENOMEM;
      break;
    }
    for (size_t i = 0; i < cur->len; i++)
      if (mark[i])
        rr[r].owners.v[rr[r].owners.len++] = cur->v[i];
  }
  free(mark);
  if (err) {
    po_select_requirements_free(w, rr);
    return err;
  }
  *out = rr;
  return 0;
}
