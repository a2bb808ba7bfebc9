/*
 * portowner: the watch model and the set of watches (see watch.h).
 *
 * One watch per <Port> block: what it selects (ports, protocols, addresses,
 * namespaces), what it expects of the owners (expect.c parses each item),
 * its options, and the descriptions po_watch_finish() builds from them. The
 * set holds the watches of one plugin instance and the query that serves
 * them all. What happens at a read is eval.c and the cond_*.c files; the
 * StateFile is statefile.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "portowner/config_value.h"
#include "portowner/expect.h"
#include "portowner/inventory.h"
#include "portowner/owners.h"
#include "portowner/portspec.h"
#include "portowner/requirement.h"
#include "portowner/watch.h"
#include "portowner/watch_private.h"

/* ---- a watch ------------------------------------------------------------- */

struct po_watch *po_watch_new(const char *name) {
  struct po_watch *w;
  size_t n = name ? strlen(name) : 0;

  if (n == 0 || n >= PO_WATCH_NAME_MAX || strchr(name, '/')) {
    errno = EINVAL;
    return NULL;
  }
  w = calloc(1, sizeof(*w));
  if (!w || !(w->name = strdup(name))) {
    free(w);
    errno = ENOMEM;
    return NULL;
  }
  w->mask = PO_TCP;
  w->hits = 1;
  w->change_hits = 2;
  w->notify_missing = 1;
  w->notify_change = 1;
  return w;
}

void po_watch_free(struct po_watch *w) {
  if (!w)
    return;
  for (size_t i = 0; i < w->nprocs; i++)
    po_expect_proc_release(&w->procs[i]);
  for (size_t i = 0; i < w->nusers; i++)
    po_expect_user_release(&w->users[i]);
  free(w->procs);
  free(w->users);
  for (size_t i = 0; i < w->nunits; i++)
    free(w->units[i]);
  free(w->units);
  for (size_t i = 0; i < w->ncgpats; i++)
    free(w->cgpats[i]);
  free(w->cgpats);
  po_requirements_free(w);
  free(w->ports);
  free(w->protos);
  free(w->addrs);
  free(w->protocols_str);
  free(w->ports_str);
  free(w->addrs_str);
  free(w->spec);
  free(w->name);
  po_watch_state_release(&w->st);
  free(w);
}

static int grow(void **v, size_t n, size_t size) {
  void *nv = realloc(*v, (n + 1) * size);

  if (!nv)
    return -ENOMEM;
  *v = nv;
  return 0;
}

int po_watch_port_add(struct po_watch *w, const struct po_range *r) {
  if (!r || r->lo == 0 || r->lo > r->hi)
    return -EINVAL;
  if (grow((void **)&w->ports, w->nports, sizeof(*w->ports)))
    return -ENOMEM;
  w->ports[w->nports++] = *r;
  return 0;
}

int po_watch_port_add_number(struct po_watch *w, double v) {
  struct po_range r;
  int err = po_config_port_number(v, &r);

  return err ? err : po_watch_port_add(w, &r);
}

int po_watch_port_add_string(struct po_watch *w, const char *s,
                             const char **bad) {
  struct po_range *v = NULL;
  size_t n = 0;
  int err;

  if (!s)
    return -EINVAL;
  err = po_ports_parse(s, &v, &n, bad);
  for (size_t i = 0; !err && i < n; i++)
    err = po_watch_port_add(w, &v[i]);
  free(v);
  return err;
}

int po_watch_protocol_add(struct po_watch *w, const char *name) {
  unsigned m;

  if (po_proto_parse(name, &m))
    return -EINVAL;
  if (grow((void **)&w->protos, w->nprotos, sizeof(*w->protos)))
    return -ENOMEM;
  w->mask = (w->nprotos ? w->mask : 0) | m;
  w->protos[w->nprotos++] = m;
  return 0;
}

int po_watch_address_add(struct po_watch *w, const char *s) {
  struct addr a = {0};

  if (!s)
    return -EINVAL;
  if (inet_pton(AF_INET, s, a.a) == 1)
    a.family = AF_INET;
  else if (inet_pton(AF_INET6, s, a.a) == 1)
    a.family = AF_INET6;
  else
    return -EINVAL;
  if (grow((void **)&w->addrs, w->naddrs, sizeof(*w->addrs)))
    return -ENOMEM;
  w->addrs[w->naddrs++] = a;
  return 0;
}

int po_watch_expect_process_add(struct po_watch *w, const char *pattern,
                                char *err, size_t errsize) {
  struct expect_proc e;
  int rc = po_expect_proc_parse(&e, pattern, err, errsize);

  if (rc)
    return rc;
  if (grow((void **)&w->procs, w->nprocs, sizeof(*w->procs))) {
    po_expect_proc_release(&e);
    return -ENOMEM;
  }
  w->procs[w->nprocs++] = e;
  return 0;
}

int po_watch_expect_user_add(struct po_watch *w, const char *user) {
  struct expect_user u;
  int rc = po_expect_user_parse(&u, user);

  if (rc)
    return rc;
  if (grow((void **)&w->users, w->nusers, sizeof(*w->users))) {
    po_expect_user_release(&u);
    return -ENOMEM;
  }
  w->users[w->nusers++] = u;
  return 0;
}

/* Appends a copy of glob to *v. */
static int add_glob(char ***v, size_t *n, const char *glob) {
  char *c;

  if (!glob[0] || strlen(glob) > PO_GLOB_MAX)
    return -EINVAL;
  c = strdup(glob);
  if (!c || grow((void **)v, *n, sizeof(**v))) {
    free(c);
    return -ENOMEM;
  }
  (*v)[(*n)++] = c;
  return 0;
}

int po_watch_expect_unit_add(struct po_watch *w, const char *glob) {
  return add_glob(&w->units, &w->nunits, glob);
}

int po_watch_expect_cgroup_add(struct po_watch *w, const char *glob) {
  if (glob[0] != '/' && glob[0] != '*')
    return -EINVAL;
  return add_glob(&w->cgpats, &w->ncgpats, glob);
}

int po_watch_set_hits(struct po_watch *w, unsigned hits) {
  if (hits == 0 || hits > PO_HITS_MAX)
    return -EINVAL;
  w->hits = hits;
  return 0;
}

void po_watch_set_notify_missing_at_start(struct po_watch *w, int on) {
  w->notify_missing = !!on;
}

void po_watch_set_notify_owner_change(struct po_watch *w, int on) {
  w->notify_change = !!on;
}

int po_watch_set_owner_change_hits(struct po_watch *w, unsigned hits) {
  if (hits == 0 || hits > PO_HITS_MAX)
    return -EINVAL;
  w->change_hits = hits;
  return 0;
}

void po_watch_set_notify_restart(struct po_watch *w, int on) {
  w->notify_restart = !!on;
}

void po_watch_set_all_namespaces(struct po_watch *w, int scope) {
  w->all_ns = scope != PO_NS_OWN;
  w->ns_untrusted = scope == PO_NS_ALL;
}

/* A growable string for descriptions. */
struct sbuf {
  char *b;
  size_t len;
  size_t cap;
  int oom;
};

static void sbuf_add(struct sbuf *s, const char *t) {
  size_t n = strlen(t);

  if (s->oom)
    return;
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 64;
    char *nb;

    while (s->len + n + 1 > cap)
      cap *= 2;
    nb = realloc(s->b, cap);
    if (!nb) {
      s->oom = 1;
      return;
    }
    s->b = nb;
    s->cap = cap;
  }
  memcpy(s->b + s->len, t, n + 1);
  s->len += n;
}

/* Returns the string (the caller frees it), or NULL when out of memory. */
static char *sbuf_done(struct sbuf *s) {
  if (!s->b && !s->oom)
    sbuf_add(s, "");
  if (s->oom) {
    free(s->b);
    return NULL;
  }
  return s->b;
}

static char *describe_protocols(unsigned mask) {
  struct sbuf s = {0};
  const char *sep = "";

  if ((mask & PO_TCP) == PO_TCP) {
    sbuf_add(&s, "tcp");
    sep = ",";
  } else if (mask & PO_TCP) {
    sbuf_add(&s, mask & PO_TCP4 ? "tcp4" : "tcp6");
    sep = ",";
  }
  if ((mask & PO_UDP) == PO_UDP) {
    sbuf_add(&s, sep);
    sbuf_add(&s, "udp");
  } else if (mask & PO_UDP) {
    sbuf_add(&s, sep);
    sbuf_add(&s, mask & PO_UDP4 ? "udp4" : "udp6");
  }
  return sbuf_done(&s);
}

static char *describe_ports(const struct po_range *r, size_t n) {
  struct sbuf s = {0};

  for (size_t i = 0; i < n; i++) {
    char tmp[32];

    if (r[i].lo == r[i].hi)
      snprintf(tmp, sizeof(tmp), "%s%u", i ? "," : "", (unsigned)r[i].lo);
    else
      snprintf(tmp, sizeof(tmp), "%s%u-%u", i ? "," : "", (unsigned)r[i].lo,
               (unsigned)r[i].hi);
    sbuf_add(&s, tmp);
  }
  return sbuf_done(&s);
}

static char *describe_addrs(const struct addr *a, size_t n) {
  struct sbuf s = {0};

  for (size_t i = 0; i < n; i++) {
    char tmp[INET6_ADDRSTRLEN] = "";

    inet_ntop(a[i].family, a[i].a, tmp, sizeof(tmp));
    if (i)
      sbuf_add(&s, ",");
    sbuf_add(&s, tmp);
  }
  return sbuf_done(&s);
}

int po_watch_finish(struct po_watch *w) {
  struct sbuf spec = {0};

  if (w->nports == 0)
    return -EDESTADDRREQ;
  free(w->protocols_str);
  free(w->ports_str);
  free(w->addrs_str);
  free(w->spec);
  w->addrs_str = w->spec = NULL;
  w->protocols_str = describe_protocols(w->mask);
  w->ports_str = describe_ports(w->ports, w->nports);
  if (w->naddrs)
    w->addrs_str = describe_addrs(w->addrs, w->naddrs);
  if (!w->protocols_str || !w->ports_str || (w->naddrs && !w->addrs_str))
    return -ENOMEM;
  sbuf_add(&spec, w->protocols_str);
  sbuf_add(&spec, " ");
  sbuf_add(&spec, w->ports_str);
  sbuf_add(&spec, " ");
  sbuf_add(&spec, w->addrs_str ? w->addrs_str : "*");
  if (w->all_ns)
    sbuf_add(&spec, " all-namespaces");
  w->spec = sbuf_done(&spec);
  if (!w->spec || po_requirements_build(w) != 0)
    return -ENOMEM;
  w->finished = 1;
  return 0;
}

const char *po_watch_name(const struct po_watch *w) {
  return w->name;
}

const char *po_watch_protocols(const struct po_watch *w) {
  return w->protocols_str;
}

const char *po_watch_ports(const struct po_watch *w) {
  return w->ports_str;
}

const char *po_watch_addresses(const struct po_watch *w) {
  return w->addrs_str;
}

unsigned po_watch_hits(const struct po_watch *w) {
  return w->hits;
}

int po_watch_all_namespaces(const struct po_watch *w) {
  return !w->all_ns ? PO_NS_OWN : w->ns_untrusted ? PO_NS_ALL : PO_NS_TRUSTED;
}

/* ---- the set ------------------------------------------------------------- */

struct po_watchset *po_watchset_new(void) {
  struct po_watchset *set = calloc(1, sizeof(*set));

  if (!set)
    errno = ENOMEM;
  return set;
}

void po_watchset_free(struct po_watchset *set) {
  if (!set)
    return;
  for (size_t i = 0; i < set->len; i++)
    po_watch_free(set->v[i]);
  for (size_t i = 0; i < set->ninv; i++)
    po_inventory_free(set->inv[i]);
  free(set->inv);
  free(set->v);
  free(set->qports);
  free(set->saved);
  free(set);
}

int po_watchset_add(struct po_watchset *set, struct po_watch *w) {
  if (!w || !w->finished || w->in_set)
    return -EINVAL;
  if (po_watchset_find(set, w->name))
    return -EEXIST;
  for (size_t i = 0; i < set->ninv; i++)
    if (strcmp(po_inventory_name(set->inv[i]), w->name) == 0)
      return -EEXIST;
  if (grow((void **)&set->v, set->len, sizeof(*set->v)))
    return -ENOMEM;
  set->v[set->len++] = w;
  w->in_set = 1;
  return 0;
}

size_t po_watchset_len(const struct po_watchset *set) {
  return set->len;
}

int po_watchset_add_inventory(struct po_watchset *set,
                              struct po_inventory *inv) {
  const char *name = po_inventory_name(inv);

  if (!set || !inv)
    return -EINVAL;
  if (po_watchset_find(set, name))
    return -EEXIST;
  for (size_t i = 0; i < set->ninv; i++)
    if (set->inv[i] == inv || strcmp(po_inventory_name(set->inv[i]), name) == 0)
      return -EEXIST;
  if (grow((void **)&set->inv, set->ninv, sizeof(*set->inv)))
    return -ENOMEM;
  set->inv[set->ninv++] = inv;
  return 0;
}

size_t po_watchset_inventories(const struct po_watchset *set) {
  return set->ninv;
}

struct po_inventory *po_watchset_inventory(const struct po_watchset *set,
                                           size_t i) {
  return i < set->ninv ? set->inv[i] : NULL;
}

struct po_watch *po_watchset_get(const struct po_watchset *set, size_t i) {
  return i < set->len ? set->v[i] : NULL;
}

struct po_watch *po_watchset_find(const struct po_watchset *set,
                                  const char *name) {
  for (size_t i = 0; i < set->len; i++)
    if (strcmp(set->v[i]->name, name) == 0)
      return set->v[i];
  return NULL;
}

int po_watchset_query(struct po_watchset *set, struct po_query *q) {
  size_t n = 0, k = 0;
  struct po_range *r;
  int every = 0;

  for (size_t i = 0; i < set->len; i++)
    n += set->v[i]->nports;
  for (size_t i = 0; i < set->ninv; i++) {
    size_t m;

    po_inventory_ports(set->inv[i], &m);
    every |= m == 0;
    n += m;
  }
  r = realloc(set->qports, (n ? n : 1) * sizeof(*r));
  if (!r)
    return -ENOMEM;
  set->qports = r;
  q->mask = 0;
  q->all_namespaces = 0;
  for (size_t i = 0; i < set->len; i++) {
    const struct po_watch *w = set->v[i];

    memcpy(r + k, w->ports, w->nports * sizeof(*r));
    k += w->nports;
    q->mask |= po_requirements_query_mask(w->mask);
    if (po_watch_all_namespaces(w) > q->all_namespaces)
      q->all_namespaces = po_watch_all_namespaces(w);
  }
  for (size_t i = 0; i < set->ninv; i++) {
    size_t m;
    const struct po_range *ir = po_inventory_ports(set->inv[i], &m);

    memcpy(r + k, ir, m * sizeof(*r));
    k += m;
    q->mask |= po_inventory_mask(set->inv[i]);
  }
  q->ports = every ? NULL : r;
  q->nports = every ? 0 : k;
  if (q->mask == 0)
    q->mask = PO_TCP;
  return 0;
}
