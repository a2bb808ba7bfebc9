/*
 * portowner: the listener requirements of a watch, their names, the rule of
 * which sockets serve them (see requirement.h), and the notification
 * identifier of an event (po_event_type_instance() of watch.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "portowner/owners.h"
#include "portowner/requirement.h"

static const char *proto_token(unsigned mask) {
  switch (mask) {
  case PO_TCP:
    return "tcp";
  case PO_TCP4:
    return "tcp4";
  case PO_TCP6:
    return "tcp6";
  case PO_UDP:
    return "udp";
  case PO_UDP4:
    return "udp4";
  case PO_UDP6:
    return "udp6";
  case PO_PROTO_ALL:
    return "all";
  }
  return "?";
}

/* "tcp/443", "tcp/8000-8099", "tcp/127.0.0.1:80", "tcp6/[::1]:80". */
static void req_name(const struct requirement *r, char *buf, size_t size) {
  char addr[INET6_ADDRSTRLEN + 3] = "", port[16];

  if (r->port.lo == r->port.hi)
    snprintf(port, sizeof(port), "%u", (unsigned)r->port.lo);
  else
    snprintf(port, sizeof(port), "%u-%u", (unsigned)r->port.lo,
             (unsigned)r->port.hi);
  if (r->has_addr) {
    char a[INET6_ADDRSTRLEN] = "";

    inet_ntop(r->addr.family, r->addr.a, a, sizeof(a));
    snprintf(addr, sizeof(addr),
             r->addr.family == AF_INET6 ? "[%s]:" : "%s:", a);
  }
  snprintf(buf, size, "%s/%s%s", proto_token(r->mask), addr, port);
}

void po_requirements_free(struct po_watch *w) {
  for (size_t i = 0; i < w->nreqs; i++) {
    free(w->reqs[i].name);
    po_identlist_free(&w->reqs[i].st.last);
  }
  free(w->reqs);
  w->reqs = NULL;
  w->nreqs = 0;
}

int po_requirements_build(struct po_watch *w) {
  static const unsigned tcp = PO_TCP;
  size_t naddrs = w->naddrs ? w->naddrs : 1;
  const unsigned *protos = w->nprotos ? w->protos : &tcp;
  size_t nprotos = w->nprotos ? w->nprotos : 1, max;

  po_requirements_free(w);
  if (w->nports == 0)
    return -EDESTADDRREQ;
  max = naddrs * nprotos * w->nports;
  w->reqs = calloc(max, sizeof(*w->reqs));
  if (!w->reqs)
    return -ENOMEM;
  for (size_t a = 0; a < naddrs; a++) {
    for (size_t p = 0; p < nprotos; p++) {
      for (size_t k = 0; k < w->nports; k++) {
        struct requirement r = {0};
        char name[PO_REQUIREMENT_NAME_MAX];

        r.mask = protos[p];
        r.port = w->ports[k];
        if (w->naddrs) {
          r.has_addr = 1;
          r.addr = w->addrs[a];
        }
        req_name(&r, name, sizeof(name));
        if (po_requirement_find(w, name))
          continue; /* named twice: one requirement */
        r.name = strdup(name);
        if (!r.name) {
          po_requirements_free(w);
          return -ENOMEM;
        }
        w->reqs[w->nreqs++] = r;
      }
    }
  }
  return 0;
}

struct requirement *po_requirement_find(const struct po_watch *w,
                                        const char *name) {
  for (size_t i = 0; i < w->nreqs; i++)
    if (strcmp(w->reqs[i].name, name) == 0)
      return &w->reqs[i];
  return NULL;
}

size_t po_watch_requirements(const struct po_watch *w) {
  return w->nreqs;
}

const char *po_watch_requirement_name(const struct po_watch *w, size_t i) {
  return i < w->nreqs ? w->reqs[i].name : NULL;
}

unsigned po_requirements_query_mask(unsigned mask) {
  if (mask & PO_TCP4)
    mask |= PO_TCP6;
  if (mask & PO_UDP4)
    mask |= PO_UDP6;
  return mask;
}

/* ---- the serves rule ----------------------------------------------------- */

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0,    0,
                                            0, 0, 0, 0, 0xff, 0xff};
static const uint8_t zeros[16];

/* An IPv6 socket bound to ::ffff:a.b.c.d. */
static int v4mapped(const struct po_socket *sk) {
  return sk->family == AF_INET6 &&
         memcmp(sk->addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0;
}

/* An IPv6 socket bound to ::. */
static int any6(const struct po_socket *sk) {
  return sk->family == AF_INET6 && memcmp(sk->addr, zeros, 16) == 0;
}

/*
 * Whether sk accepts IPv4 connections, and the IPv4 address it is bound to
 * for them (0.0.0.0 for every one) in a4: an IPv4 socket, a v4-mapped one,
 * or a dual-stack :: socket (v6only 0, or unknown: the Linux default).
 */
static int v4_view(const struct po_socket *sk, uint8_t a4[4]) {
  if (sk->family == AF_INET) {
    memcpy(a4, sk->addr, 4);
    return 1;
  }
  if (v4mapped(sk)) {
    memcpy(a4, sk->addr + 12, 4);
    return 1;
  }
  if (any6(sk) && sk->v6only != 1) {
    memset(a4, 0, 4);
    return 1;
  }
  return 0;
}

/* Whether sk accepts IPv6 connections (an IPv6 socket not v4-mapped). */
static int v6_view(const struct po_socket *sk) {
  return sk->family == AF_INET6 && !v4mapped(sk);
}

/* The address rule of requirement.h. */
static int addr_served(const struct addr *a, const struct po_socket *sk) {
  uint8_t a4[4];

  if (a->family == AF_INET)
    return v4_view(sk, a4) &&
           (memcmp(a4, a->a, 4) == 0 || memcmp(a4, zeros, 4) == 0);
  return sk->family == AF_INET6 &&
         (memcmp(sk->addr, a->a, 16) == 0 || any6(sk));
}

int po_requirement_serves(const struct requirement *r,
                          const struct po_socket *sk) {
  unsigned bit4, bit6;
  uint8_t a4[4];

  if (sk->proto == IPPROTO_TCP) {
    bit4 = PO_TCP4;
    bit6 = PO_TCP6;
  } else if (sk->proto == IPPROTO_UDP) {
    bit4 = PO_UDP4;
    bit6 = PO_UDP6;
  } else {
    return 0;
  }
  if (sk->port < r->port.lo || sk->port > r->port.hi)
    return 0;
  if (!(((r->mask & bit4) && v4_view(sk, a4)) ||
        ((r->mask & bit6) && v6_view(sk))))
    return 0;
  return !r->has_addr || addr_served(&r->addr, sk);
}

/* ---- the notification identifier of an event ----------------------------- */

int po_event_type_instance(const struct po_event *e, char *buf, size_t size) {
  const char *cond = po_event_condition(e->type);
  int n;

  if (!cond)
    return -EINVAL;
  if (!e->requirement) {
    n = snprintf(buf, size, "%s", cond);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
  }
  n = snprintf(buf, size, "%s-%s", cond, e->requirement);
  if (n < 0 || (size_t)n >= size)
    return -ENAMETOOLONG;
  for (char *p = buf + strlen(cond) + 1; *p; p++)
    if (*p == '/')
      *p = '-';
  return 0;
}
