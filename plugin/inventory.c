/*
 * portowner: the inventory of listeners (see inventory.h).
 *
 * The state is an array of endpoints sorted by key. Each read builds the
 * sorted, deduplicated endpoints of the snapshot and merges the two: an
 * endpoint in both listens on, one only in the snapshot is new, one only in
 * the state is missing. The new state and the events are built aside and
 * committed together, so a failure changes nothing.
 */
#include "portowner/inventory.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "portowner/cgroup.h"
#include "portowner/config_value.h"
#include "portowner/event.h"
#include "portowner/message.h"
#include "portowner/owners.h"
#include "portowner/portspec.h"
#include "portowner/proc.h"

#define EPH_LO_DEFAULT 32768
#define EPH_HI_DEFAULT 60999

struct allow {
  char *prog;             /* NULL: any program */
  char *user;             /* NULL: any user */
  uint32_t uid;           /* a numeric user, or what the name resolved to */
  struct po_range *ports; /* none: any port */
  size_t nports;
};

/* One endpoint: its key and, in the state, what was seen of it. */
struct endpoint {
  uint8_t proto;
  uint8_t family;
  uint16_t port;
  uint8_t addr[16];
  char prog[64]; /* "" when unknown (no owner, or its exe unreadable) */
  char user[64];
  uint32_t uid;
  unsigned present;       /* reads in a row it listened (up to Hits) */
  unsigned absent;        /* reads in a row it did not (up to Hits) */
  unsigned char known;    /* learned, or allowed by explicit ports */
  unsigned char reported; /* UNDECLARED sent, no END yet */
  unsigned char gone;     /* GONE sent, no BACK yet */
  unsigned char unit_ok;  /* this read: an owner's unit matches an AllowUnit
                             (not part of the key, not kept) */
};

struct po_inventory {
  char *name;
  unsigned mask;
  int proto_set;
  struct po_range *ports;
  size_t nports;
  struct allow *allows;
  size_t nallows;
  char **units; /* AllowUnit globs */
  size_t nunits;
  int learn, notify_gone, ignore_eph, finished, first_done;
  unsigned hits;
  uint16_t eph_lo, eph_hi;
  struct endpoint *eps; /* the state, sorted by key */
  size_t neps;
};

struct po_inventory *po_inventory_new(const char *name) {
  struct po_inventory *inv;

  if (!name || !name[0] || strlen(name) >= PO_WATCH_NAME_MAX ||
      strchr(name, '/')) {
    errno = EINVAL;
    return NULL;
  }
  inv = calloc(1, sizeof(*inv));
  if (!inv || !(inv->name = strdup(name))) {
    free(inv);
    errno = ENOMEM;
    return NULL;
  }
  inv->mask = PO_TCP;
  inv->hits = 1;
  inv->notify_gone = 1;
  inv->ignore_eph = 1;
  inv->eph_lo = EPH_LO_DEFAULT;
  inv->eph_hi = EPH_HI_DEFAULT;
  return inv;
}

void po_inventory_free(struct po_inventory *inv) {
  if (!inv)
    return;
  for (size_t i = 0; i < inv->nallows; i++) {
    free(inv->allows[i].prog);
    free(inv->allows[i].user);
    free(inv->allows[i].ports);
  }
  free(inv->allows);
  for (size_t i = 0; i < inv->nunits; i++)
    free(inv->units[i]);
  free(inv->units);
  free(inv->ports);
  free(inv->eps);
  free(inv->name);
  free(inv);
}

int po_inventory_protocol_add(struct po_inventory *inv, const char *name) {
  unsigned m;

  if (!inv || !name || po_proto_parse(name, &m) != 0)
    return -EINVAL;
  inv->mask = inv->proto_set ? inv->mask | m : m;
  inv->proto_set = 1;
  return 0;
}

int po_inventory_port_add_string(struct po_inventory *inv, const char *s,
                                 const char **bad) {
  if (!inv || !s)
    return -EINVAL;
  return po_ports_parse(s, &inv->ports, &inv->nports, bad);
}

/* The uid a user item names: its number, or the uid of the name now
 * (PO_UID_UNKNOWN when it has none: it is matched by name alone). */
static uint32_t user_uid(const char *user) {
  char stack[1024], *end;
  struct passwd pw, *res = NULL;
  unsigned long v;

  errno = 0;
  v = strtoul(user, &end, 10);
  if (user[0] >= '0' && user[0] <= '9' && !*end && !errno && v < UINT32_MAX)
    return (uint32_t)v;
  if (getpwnam_r(user, &pw, stack, sizeof(stack), &res) == 0 && res)
    return (uint32_t)res->pw_uid;
  return PO_UID_UNKNOWN;
}

int po_inventory_allow_add(struct po_inventory *inv, const char *program,
                           const char *user, const char *ports,
                           const char **bad) {
  struct allow a = {0};
  struct allow *v;
  int err;

  if (!inv || !program || !user || !program[0] || !user[0] ||
      strchr(program, '/'))
    return -EINVAL;
  if (strcmp(program, "*") != 0 && !(a.prog = strdup(program)))
    return -ENOMEM;
  a.uid = PO_UID_UNKNOWN;
  if (strcmp(user, "*") != 0) {
    if (!(a.user = strdup(user))) {
      free(a.prog);
      return -ENOMEM;
    }
    a.uid = user_uid(user);
  }
  if (ports && strcmp(ports, "*") != 0) {
    err = po_ports_parse(ports, &a.ports, &a.nports, bad);
    if (err) {
      free(a.prog);
      free(a.user);
      free(a.ports);
      return err;
    }
  }
  v = realloc(inv->allows, (inv->nallows + 1) * sizeof(*v));
  if (!v) {
    free(a.prog);
    free(a.user);
    free(a.ports);
    return -ENOMEM;
  }
  inv->allows = v;
  inv->allows[inv->nallows++] = a;
  return 0;
}

int po_inventory_allow_unit_add(struct po_inventory *inv, const char *glob) {
  char **v, *c;

  if (!inv || !glob || !glob[0] || strlen(glob) > PO_GLOB_MAX)
    return -EINVAL;
  if (!(c = strdup(glob)))
    return -ENOMEM;
  v = realloc(inv->units, (inv->nunits + 1) * sizeof(*v));
  if (!v) {
    free(c);
    return -ENOMEM;
  }
  inv->units = v;
  inv->units[inv->nunits++] = c;
  return 0;
}

void po_inventory_set_learn(struct po_inventory *inv, int on) {
  if (inv)
    inv->learn = !!on;
}

int po_inventory_set_hits(struct po_inventory *inv, unsigned hits) {
  if (!inv || hits == 0 || hits > PO_HITS_MAX)
    return -EINVAL;
  inv->hits = hits;
  return 0;
}

void po_inventory_set_notify_gone(struct po_inventory *inv, int on) {
  if (inv)
    inv->notify_gone = !!on;
}

void po_inventory_set_ignore_ephemeral(struct po_inventory *inv, int on) {
  if (inv)
    inv->ignore_eph = !!on;
}

int po_inventory_set_ephemeral_range(struct po_inventory *inv, uint16_t lo,
                                     uint16_t hi) {
  if (!inv || lo == 0 || lo > hi)
    return -EINVAL;
  inv->eph_lo = lo;
  inv->eph_hi = hi;
  return 0;
}

int po_inventory_finish(struct po_inventory *inv) {
  if (!inv)
    return -EINVAL;
  inv->finished = 1;
  return 0;
}

const char *po_inventory_name(const struct po_inventory *inv) {
  return inv ? inv->name : NULL;
}

unsigned po_inventory_mask(const struct po_inventory *inv) {
  return inv ? inv->mask : 0;
}

const struct po_range *po_inventory_ports(const struct po_inventory *inv,
                                          size_t *n) {
  *n = inv ? inv->nports : 0;
  return inv ? inv->ports : NULL;
}

/* Parses "LO<blanks>HI<newline>" of at most len bytes. */
static int parse_range(const char *b, size_t len, uint16_t *lo, uint16_t *hi) {
  unsigned long v[2];
  size_t i = 0;

  for (int k = 0; k < 2; k++) {
    size_t start;

    while (i < len && (b[i] == ' ' || b[i] == '\t'))
      i++;
    start = i;
    v[k] = 0;
    while (i < len && b[i] >= '0' && b[i] <= '9' && i - start < 6)
      v[k] = v[k] * 10 + (unsigned long)(b[i++] - '0');
    if (i == start || v[k] == 0 || v[k] > 65535)
      return -EBADMSG;
  }
  while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n'))
    i++;
  if (i != len || v[0] > v[1])
    return -EBADMSG;
  *lo = (uint16_t)v[0];
  *hi = (uint16_t)v[1];
  return 0;
}

int po_ephemeral_range_read(const char *proc_root, uint16_t *lo, uint16_t *hi) {
  char path[PATH_MAX], buf[64];
  struct stat st;
  ssize_t n;
  int fd, err;

  if (!lo || !hi)
    return -EINVAL;
  if (snprintf(path, sizeof(path), "%s/sys/net/ipv4/ip_local_port_range",
               proc_root ? proc_root : "/proc") >= (int)sizeof(path))
    return -ENAMETOOLONG;
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return -EINVAL;
  }
  n = read(fd, buf, sizeof(buf));
  err = n < 0 ? -errno : 0;
  close(fd);
  if (err)
    return err;
  return parse_range(buf, (size_t)n, lo, hi);
}

void po_inv_events_clear(struct po_inv_events *e) {
  if (!e)
    return;
  for (size_t i = 0; i < e->len; i++)
    free(e->v[i].owners);
  e->len = 0;
}

void po_inv_events_free(struct po_inv_events *e) {
  if (!e)
    return;
  po_inv_events_clear(e);
  free(e->v);
  memset(e, 0, sizeof(*e));
}

/* ---- endpoints ----------------------------------------------------------- */

static int ep_cmp(const void *a, const void *b) {
  const struct endpoint *x = a, *y = b;
  int c;

  if (x->proto != y->proto)
    return x->proto < y->proto ? -1 : 1;
  if (x->family != y->family)
    return x->family < y->family ? -1 : 1;
  if (x->port != y->port)
    return x->port < y->port ? -1 : 1;
  c = memcmp(x->addr, y->addr, sizeof(x->addr));
  if (c)
    return c;
  c = strcmp(x->prog, y->prog);
  if (c)
    return c;
  if (x->uid != y->uid)
    return x->uid < y->uid ? -1 : 1;
  return strcmp(x->user, y->user);
}

/* Copies n bytes of s into a field of size bytes, cut, NUL-terminated. */
static void copy_field(char *dst, size_t size, const char *s, size_t n) {
  if (n >= size)
    n = size - 1;
  memcpy(dst, s, n);
  dst[n] = '\0';
}

static void ep_key(struct endpoint *e, const struct po_socket *sk,
                   const struct po_proc *p) {
  memset(e, 0, sizeof(*e));
  e->proto = sk->proto;
  e->family = sk->family;
  e->port = sk->port;
  memcpy(e->addr, sk->addr, sizeof(e->addr));
  if (p) {
    struct ident o = {.pid = p->pid, .comm = p->comm, .exe = p->exe};
    size_t n;
    const char *prog = po_prog_name(&o, &n);

    if (prog)
      copy_field(e->prog, sizeof(e->prog), prog, n);
    e->uid = p->uid;
    copy_field(e->user, sizeof(e->user), p->user, strlen(p->user));
  } else {
    e->uid = sk->uid;
    po_proc_user_name(sk->uid, e->user, sizeof(e->user));
  }
}

static int selected(const struct po_inventory *inv, const struct po_socket *sk,
                    uint64_t own_netns) {
  if (sk->netns != own_netns || !(po_socket_bit(sk) & inv->mask))
    return 0;
  if (!po_ranges_match(inv->ports, inv->nports, sk->port))
    return 0;
  return !(inv->ignore_eph && sk->proto == IPPROTO_UDP &&
           sk->port >= inv->eph_lo && sk->port <= inv->eph_hi);
}

/* The owner processes of socket i of s, their indices into s->procs. */
static size_t owner_procs(const struct po_snapshot *s,
                          const struct po_socket *sk, size_t *out) {
  size_t n = 0;

  for (size_t j = 0; j < sk->owner_count; j++) {
    size_t k = sk->owner_first + j, p;
    int dup = 0;

    if (k >= s->nowners || (p = s->owners[k].proc) >= s->nprocs)
      continue;
    for (size_t m = 0; m < n && !dup; m++)
      dup = out[m] == p;
    if (!dup)
      out[n++] = p;
  }
  return n;
}

/* 1 when the cgroup (v2 path, name=systemd path; either NULL) shows a unit,
 * user unit or label (cgroup.h) that an AllowUnit glob matches, as
 * ExpectUnit does. */
static int unit_allowed(const struct po_inventory *inv, const char *v2,
                        const char *systemd) {
  const struct po_cgroup_paths p = {(char *)v2, (char *)systemd};

  if (!inv->nunits || (!v2 && !systemd))
    return 0;
  return po_cgroup_units_match(&p, inv->units, inv->nunits);
}

/* The endpoints of s, sorted, without duplicates: *out (malloc'd). An
 * endpoint's unit_ok is that of any of its owners (an owner whose cgroup is
 * unknown is judged by its socket's, as ExpectUnit does). */
static int endpoints_of(const struct po_inventory *inv,
                        const struct po_snapshot *s, uint64_t own_netns,
                        struct endpoint **out, size_t *nout, size_t *npending) {
  struct endpoint *v = NULL;
  size_t n = 0, cap = 0, *procs = NULL;

  *out = NULL;
  *nout = 0;
  *npending = 0;
  if (s->nowners) {
    procs = malloc(s->nowners * sizeof(*procs));
    if (!procs)
      return -ENOMEM;
  }
  for (size_t i = 0; i < s->socks.len; i++) {
    const struct po_socket *sk = &s->socks.v[i];
    size_t np;

    if (!selected(inv, sk, own_netns))
      continue;
    if (sk->owner_pending) {
      /* Its owners are not all known yet (a full walk put off): it is
       * judged when they are (held(), below), not as an unowned socket. */
      (*npending)++;
      continue;
    }
    np = owner_procs(s, sk, procs);
    if (n + (np ? np : 1) > cap) {
      size_t ncap = cap ? cap * 2 : 16;
      struct endpoint *nv;

      while (ncap < n + (np ? np : 1))
        ncap *= 2;
      nv = realloc(v, ncap * sizeof(*nv));
      if (!nv) {
        free(v);
        free(procs);
        return -ENOMEM;
      }
      v = nv;
      cap = ncap;
    }
    {
      const char *skcg = s->sock_cgroups ? s->sock_cgroups[i] : NULL;

      if (!np) {
        ep_key(&v[n], sk, NULL);
        v[n++].unit_ok = (unsigned char)unit_allowed(inv, skcg, NULL);
      }
      for (size_t j = 0; j < np; j++) {
        const struct po_proc *p = &s->procs[procs[j]];

        ep_key(&v[n], sk, p);
        v[n++].unit_ok = (unsigned char)(p->cgroup.v2 || p->cgroup.systemd
                                             ? unit_allowed(inv, p->cgroup.v2,
                                                            p->cgroup.systemd)
                                             : unit_allowed(inv, skcg, NULL));
      }
    }
  }
  free(procs);
  if (n > 1) {
    size_t m = 1;

    qsort(v, n, sizeof(*v), ep_cmp);
    for (size_t i = 1; i < n; i++)
      if (ep_cmp(&v[m - 1], &v[i]) != 0)
        v[m++] = v[i];
      else
        v[m - 1].unit_ok |= v[i].unit_ok;
    n = m;
  }
  *out = v;
  *nout = n;
  return 0;
}

static int allow_matches(const struct allow *a, const struct endpoint *e) {
  if (a->prog && strcmp(a->prog, e->prog) != 0)
    return 0;
  if (a->user && strcmp(a->user, e->user) != 0 &&
      (a->uid == PO_UID_UNKNOWN || a->uid != e->uid))
    return 0;
  return po_ranges_match(a->ports, a->nports, e->port);
}

/* 1 when an Allow (or an AllowUnit, this read) matches e; 2 when an Allow
 * with explicit ports does. */
static int allowed(const struct po_inventory *inv, const struct endpoint *e) {
  int r = e->unit_ok ? 1 : 0;

  for (size_t i = 0; i < inv->nallows && r < 2; i++)
    if (allow_matches(&inv->allows[i], e))
      r = inv->allows[i].nports ? 2 : 1;
  return r;
}

/* ---- events -------------------------------------------------------------- */

static void endpoint_text(const struct endpoint *e, char *buf, size_t size) {
  char a[INET6_ADDRSTRLEN];
  const char *proto = e->proto == IPPROTO_UDP ? "udp" : "tcp";

  if (!inet_ntop(e->family, e->addr, a, sizeof(a)))
    strcpy(a, "?");
  if (e->family == AF_INET6)
    snprintf(buf, size, "%s [%s]:%u", proto, a, (unsigned)e->port);
  else
    snprintf(buf, size, "%s %s:%u", proto, a, (unsigned)e->port);
}

/* Appends s to an identifier at buf[at]: bytes outside [A-Za-z0-9._] as
 * '_' ('-' joins the parts), cut to fit. Returns the new length. */
static size_t put_id(char *buf, size_t at, size_t size, const char *s) {
  for (; *s && at + 1 < size; s++) {
    unsigned char c = (unsigned char)*s;

    buf[at++] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.')
                    ? (char)c
                    : '_';
  }
  buf[at] = '\0';
  return at;
}

static void type_instance(const struct endpoint *e, const char *kind, char *buf,
                          size_t size) {
  char a[INET6_ADDRSTRLEN], port[8];
  const char *parts[5];
  size_t at;

  if (!inet_ntop(e->family, e->addr, a, sizeof(a)))
    strcpy(a, "?");
  snprintf(port, sizeof(port), "%u", (unsigned)e->port);
  parts[0] = e->proto == IPPROTO_UDP
                 ? (e->family == AF_INET6 ? "udp6" : "udp4")
                 : (e->family == AF_INET6 ? "tcp6" : "tcp4");
  parts[1] = a;
  parts[2] = port;
  parts[3] = e->prog[0] ? e->prog : "unknown";
  parts[4] = e->user[0] ? e->user : "unknown";
  at = put_id(buf, 0, size, kind);
  for (size_t i = 0; i < 5 && at + 1 < size; i++) {
    buf[at++] = '-';
    buf[at] = '\0';
    at = put_id(buf, at, size, parts[i]);
  }
}

/* The owners of e in s, pointing into s (pid 0 with the socket's uid for a
 * socket with no owner found). */
static int owners_of(const struct po_snapshot *s, uint64_t own_netns,
                     const struct po_inventory *inv, const struct endpoint *e,
                     struct identlist *l) {
  size_t cap = 0;

  memset(l, 0, sizeof(*l));
  for (size_t i = 0; i < s->socks.len; i++) {
    const struct po_socket *sk = &s->socks.v[i];
    struct endpoint k;

    if (!selected(inv, sk, own_netns) || sk->port != e->port ||
        sk->proto != e->proto || sk->family != e->family ||
        memcmp(sk->addr, e->addr, sizeof(e->addr)) != 0)
      continue;
    for (size_t j = 0; j <= sk->owner_count; j++) {
      const struct po_proc *p = NULL;
      struct ident o = {0};

      if (j == sk->owner_count) {
        if (sk->owner_count)
          break;
        ep_key(&k, sk, NULL);
        o.uid = sk->uid;
        o.comm = "";
        o.user = e->user;
      } else {
        size_t idx = sk->owner_first + j;

        if (idx >= s->nowners || s->owners[idx].proc >= s->nprocs)
          continue;
        p = &s->procs[s->owners[idx].proc];
        ep_key(&k, sk, p);
        o.pid = p->pid;
        o.uid = p->uid;
        o.comm = p->comm;
        o.exe = p->exe;
        o.user = p->user;
        o.start = p->start;
      }
      if (strcmp(k.prog, e->prog) != 0 || k.uid != e->uid ||
          strcmp(k.user, e->user) != 0)
        continue;
      {
        int dup = 0;

        for (size_t m = 0; m < l->len && !dup; m++)
          dup = l->v[m].pid == o.pid;
        if (dup)
          continue;
      }
      if (l->len == cap) {
        size_t ncap = cap ? cap * 2 : 4;
        struct ident *nv = realloc(l->v, ncap * sizeof(*nv));

        if (!nv) {
          free(l->v);
          memset(l, 0, sizeof(*l));
          return -ENOMEM;
        }
        l->v = nv;
        cap = ncap;
      }
      l->v[l->len++] = o;
    }
  }
  if (l->len > 1)
    qsort(l->v, l->len, sizeof(*l->v), po_ident_cmp_pid);
  return 0;
}

static int event_add(struct po_inv_events *ev, const struct po_inventory *inv,
                     const struct po_snapshot *s, uint64_t own_netns,
                     const struct endpoint *e, enum po_inv_event_type type) {
  static const char *const what[] = {
      [PO_INV_UNDECLARED] = " is listening and was not declared; held by ",
      [PO_INV_UNDECLARED_END] = " stopped listening (it was not declared)",
      [PO_INV_GONE] = " is no longer listening",
      [PO_INV_BACK] = " is listening again; held by ",
  };
  struct identlist now = {0};
  struct po_inv_event *x;
  struct msg m = {0};
  int err;

  if (ev->len == ev->cap) {
    size_t ncap = ev->cap ? ev->cap * 2 : 8;
    struct po_inv_event *nv = realloc(ev->v, ncap * sizeof(*nv));

    if (!nv)
      return -ENOMEM;
    ev->v = nv;
    ev->cap = ncap;
  }
  x = &ev->v[ev->len];
  memset(x, 0, sizeof(*x));
  x->type = type;
  x->severity = type == PO_INV_UNDECLARED || type == PO_INV_GONE
                    ? PO_SEVERITY_WARNING
                    : PO_SEVERITY_OKAY;
  type_instance(e,
                type == PO_INV_UNDECLARED || type == PO_INV_UNDECLARED_END
                    ? "undeclared"
                    : "gone",
                x->type_instance, sizeof(x->type_instance));
  endpoint_text(e, x->endpoint, sizeof(x->endpoint));
  copy_field(x->program, sizeof(x->program), e->prog, strlen(e->prog));
  copy_field(x->user, sizeof(x->user), e->user, strlen(e->user));
  if (type == PO_INV_UNDECLARED || type == PO_INV_BACK) {
    err = owners_of(s, own_netns, inv, e, &now);
    if (err)
      return err;
  }
  po_msg_str(&m, x->endpoint);
  po_msg_str(&m, " (");
  po_msg_text(&m, inv->name, strlen(inv->name), MSG_NAME_MAX);
  po_msg_str(&m, ")");
  po_msg_str(&m, what[type]);
  if (type == PO_INV_UNDECLARED || type == PO_INV_BACK)
    po_msg_owners(&m, &now, PO_MESSAGE_MAX);
  memcpy(x->message, m.b, sizeof(x->message));
  err = po_owners_json(&now, &x->owners);
  free(now.v);
  if (err)
    return err;
  ev->len++;
  return 0;
}

/* 1 when a socket of s that inv selects, with its owners not all known
 * yet, has e's protocol, address and port: e is neither missing nor new
 * while that lasts. */
static int held(const struct po_inventory *inv, const struct po_snapshot *s,
                uint64_t own_netns, const struct endpoint *e) {
  for (size_t i = 0; i < s->socks.len; i++) {
    const struct po_socket *sk = &s->socks.v[i];

    if (sk->owner_pending && sk->port == e->port && sk->proto == e->proto &&
        sk->family == e->family &&
        memcmp(sk->addr, e->addr, sizeof(e->addr)) == 0 &&
        selected(inv, sk, own_netns))
      return 1;
  }
  return 0;
}

/* ---- evaluation ---------------------------------------------------------- */

int po_inventory_eval(struct po_inventory *inv, const struct po_snapshot *s,
                      uint64_t own_netns, struct po_inventory_values *v,
                      struct po_inv_events *ev) {
  struct endpoint *cur = NULL, *next = NULL;
  size_t ncur = 0, nnext = 0, i = 0, j = 0, ev0, npending = 0;
  struct po_inv_events okays = {0}, warns = {0};
  int err, first;

  if (!inv || !s || !v || !ev || !inv->finished)
    return -EINVAL;
  memset(v, 0, sizeof(*v));
  err = endpoints_of(inv, s, own_netns, &cur, &ncur, &npending);
  if (err)
    return err;
  next = malloc((ncur + inv->neps + 1) * sizeof(*next));
  if (!next) {
    free(cur);
    return -ENOMEM;
  }
  first = !inv->first_done;
  while (!err && (i < inv->neps || j < ncur)) {
    int c = i >= inv->neps ? 1 : j >= ncur ? -1 : ep_cmp(&inv->eps[i], &cur[j]);
    struct endpoint e;

    if (c < 0 && npending && held(inv, s, own_netns, &inv->eps[i])) {
      next[nnext++] = inv->eps[i++]; /* as it was, until its owners are known */
      continue;
    }
    if (c < 0) { /* missing now */
      e = inv->eps[i++];
      e.present = 0;
      if (e.absent < inv->hits)
        e.absent++;
      if (e.reported) {
        err = event_add(&okays, inv, s, own_netns, &e, PO_INV_UNDECLARED_END);
        e.reported = 0;
      }
      if (!err && e.known && inv->notify_gone && !e.gone &&
          e.absent >= inv->hits) {
        err = event_add(&warns, inv, s, own_netns, &e, PO_INV_GONE);
        e.gone = 1;
      }
      if (e.known || e.gone)
        next[nnext++] = e;
      continue;
    }
    if (c == 0) { /* listens on */
      e = inv->eps[i++];
      e.unit_ok = cur[j++].unit_ok;
      if (e.present < inv->hits)
        e.present++;
      e.absent = 0;
    } else { /* new */
      e = cur[j++];
      if (nnext >= PO_INV_ENDPOINTS_MAX) {
        v->untracked++;
        v->listeners++;
        continue;
      }
      e.present = 1;
      e.known = first && inv->learn;
    }
    v->listeners++;
    {
      int a = allowed(inv, &e);

      if (a == 2)
        e.known = 1;
      if (e.gone) {
        err = event_add(&okays, inv, s, own_netns, &e, PO_INV_BACK);
        e.gone = 0;
      }
      if (!a && !e.known) {
        v->undeclared++;
        if (!err && !e.reported && e.present >= inv->hits) {
          err = event_add(&warns, inv, s, own_netns, &e, PO_INV_UNDECLARED);
          e.reported = 1;
        }
      } else if (e.reported && !err) {
        /* Declared since (an Allow cannot change at run time, but Learn's
         * state can come from a StateFile): its WARNING ends. */
        err = event_add(&okays, inv, s, own_netns, &e, PO_INV_UNDECLARED_END);
        e.reported = 0;
      }
    }
    next[nnext++] = e;
  }
  free(cur);
  v->listeners += npending;
  ev0 = ev->len;
  if (!err) {
    size_t more = okays.len + warns.len;

    if (ev->cap - ev->len < more) {
      struct po_inv_event *nv = realloc(ev->v, (ev->len + more) * sizeof(*nv));

      if (!nv)
        err = -ENOMEM;
      else {
        ev->v = nv;
        ev->cap = ev->len + more;
      }
    }
  }
  if (err) {
    po_inv_events_free(&okays);
    po_inv_events_free(&warns);
    free(next);
    memset(v, 0, sizeof(*v));
    return err;
  }
  memcpy(ev->v + ev0, okays.v, okays.len * sizeof(*okays.v));
  memcpy(ev->v + ev0 + okays.len, warns.v, warns.len * sizeof(*warns.v));
  ev->len += okays.len + warns.len;
  free(okays.v);
  free(warns.v);
  free(inv->eps);
  inv->eps = next;
  inv->neps = nnext;
  inv->first_done = 1;
  return 0;
}

/* ---- the state across restarts ------------------------------------------ */

size_t po_inventory_state(const struct po_inventory *inv,
                          struct po_inv_endpoint *out, size_t max) {
  size_t n = 0;

  /* Known endpoints first: they are what Learn cannot learn again. */
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < inv->neps && n < max; i++) {
      const struct endpoint *e = &inv->eps[i];

      if (pass == 0 ? !e->known : e->known || !(e->reported || e->gone))
        continue;
      out[n] = (struct po_inv_endpoint){
          .proto = e->proto,
          .family = e->family,
          .port = e->port,
          .program = e->prog,
          .user = e->user,
          .uid = e->uid,
          .known = e->known,
          .reported = e->reported,
          .gone = e->gone,
      };
      memcpy(out[n].addr, e->addr, sizeof(e->addr));
      n++;
    }
  return n;
}

int po_inventory_restore(struct po_inventory *inv,
                         const struct po_inv_endpoint *v, size_t n) {
  struct endpoint *eps = NULL;
  size_t m = 0;

  if (!inv || (n && !v) || n > PO_INV_SAVED_MAX)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if ((v[i].proto != IPPROTO_TCP && v[i].proto != IPPROTO_UDP) ||
        (v[i].family != AF_INET && v[i].family != AF_INET6) || v[i].port == 0 ||
        !v[i].program || !v[i].user)
      return -EINVAL;
  if (n && !(eps = calloc(n, sizeof(*eps))))
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    struct endpoint *e = &eps[m++];

    e->proto = v[i].proto;
    e->family = v[i].family;
    e->port = v[i].port;
    memcpy(e->addr, v[i].addr, sizeof(e->addr));
    copy_field(e->prog, sizeof(e->prog), v[i].program, strlen(v[i].program));
    copy_field(e->user, sizeof(e->user), v[i].user, strlen(v[i].user));
    e->uid = v[i].uid;
    e->known = !!v[i].known;
    e->reported = !!v[i].reported;
    e->gone = !!v[i].gone;
    /* Not seen by this run yet: it must listen Hits reads again before
     * anything is said of it, as after any absence. */
    e->present = 0;
    e->absent = e->gone ? inv->hits : 0;
  }
  if (m > 1) {
    size_t k = 1;

    qsort(eps, m, sizeof(*eps), ep_cmp);
    for (size_t i = 1; i < m; i++)
      if (ep_cmp(&eps[k - 1], &eps[i]) != 0)
        eps[k++] = eps[i];
    m = k;
  }
  free(inv->eps);
  inv->eps = eps;
  inv->neps = m;
  inv->first_done = 1;
  return 0;
}
