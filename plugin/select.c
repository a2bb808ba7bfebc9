/*
 * portowner: which sockets a watch selects, and what it counts of them (see
 * select.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "portowner/select.h"

static int addr_matches(const struct po_watch *w, const struct po_socket *sk) {
  static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
  static const uint8_t any4[4] = {0};

  for (size_t i = 0; i < w->naddrs; i++) {
    const struct addr *a = &w->addrs[i];

    if (a->family == sk->family &&
        memcmp(a->a, sk->addr, a->family == AF_INET ? 4 : 16) == 0)
      return 1;
    /* 1.2.3.4 is ::ffff:1.2.3.4 on a v6 socket; 0.0.0.0 means v4 wildcard
     * binds only. */
    if (a->family == AF_INET && sk->family == AF_INET6 &&
        memcmp(sk->addr, v4mapped, 12) == 0 &&
        memcmp(sk->addr + 12, a->a, 4) == 0 && memcmp(a->a, any4, 4) != 0)
      return 1;
  }
  return 0;
}

int po_select_socket(const struct po_watch *w, const struct po_socket *sk,
                     uint64_t own_netns) {
  if (!(po_socket_bit(sk) & w->mask))
    return 0;
  if (!po_ranges_match(w->ports, w->nports, sk->port))
    return 0;
  if (!w->all_ns && sk->netns != own_netns)
    return 0;
  if (w->naddrs && !addr_matches(w, sk))
    return 0;
  return 1;
}

/* The values of w in s and its distinct owners (pointing into s). */
int po_select_collect(const struct po_watch *w, const struct po_snapshot *s,
                      uint64_t own_netns, struct po_watch_values *v,
                      struct identlist *cur) {
  uint8_t *mark = NULL;

  memset(v, 0, sizeof(*v));
  memset(cur, 0, sizeof(*cur));
  if (s->nprocs) {
    mark = calloc(s->nprocs, 1);
    if (!mark)
      return -ENOMEM;
  }
  for (size_t i = 0; i < s->socks.len; i++) {
    const struct po_socket *sk = &s->socks.v[i];

    if (!po_select_socket(w, sk, own_netns))
      continue;
    v->sockets++;
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
      n++;
    }
  }
  v->processes = cur->len;
  free(mark);
  return 0;
}
