/*
 * portowner: port and protocol values shared by the command line and the
 * collectd config.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "portowner/portspec.h"
#include "portowner/table.h"

/* Parses a decimal port in [s, end). Returns 0, -EINVAL or -ERANGE. */
static int port_number(const char *s, const char *end, uint16_t *port) {
  unsigned long v = 0;

  if (s == end)
    return -EINVAL;
  for (const char *p = s; p < end; p++) {
    if (*p < '0' || *p > '9')
      return -EINVAL;
    v = v * 10 + (unsigned long)(*p - '0');
    if (v > 65535)
      return -ERANGE;
  }
  if (v == 0)
    return -ERANGE;
  *port = (uint16_t)v;
  return 0;
}

static int port_service(const char *s, uint16_t *port) {
  struct servent sbuf, *se = NULL;
  char buf[1024];

  /* Service names are letters, digits and '-', starting with a letter. */
  if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
    return -EINVAL;
  if (getservbyname_r(s, "tcp", &sbuf, buf, sizeof(buf), &se) != 0 || !se)
    if (getservbyname_r(s, "udp", &sbuf, buf, sizeof(buf), &se) != 0 || !se)
      return -ENOENT;
  *port = ntohs((uint16_t)se->s_port);
  return 0;
}

int po_port_parse(const char *s, struct po_range *r) {
  const char *dash, *end;
  int err;

  if (!s || !r || !*s)
    return -EINVAL;
  end = s + strlen(s);
  if (*s < '0' || *s > '9') {
    /* A service name, which may itself contain '-' ("x11-ssh"). */
    uint16_t port;

    err = port_service(s, &port);
    if (err)
      return err;
    r->lo = r->hi = port;
    return 0;
  }
  dash = strchr(s, '-');
  if (!dash) {
    err = port_number(s, end, &r->lo);
    r->hi = r->lo;
    return err;
  }
  err = port_number(s, dash, &r->lo);
  if (!err)
    err = port_number(dash + 1, end, &r->hi);
  if (!err && r->lo > r->hi)
    err = -EINVAL;
  return err;
}

int po_ports_parse(const char *s, struct po_range **v, size_t *n,
                   const char **bad) {
  const char *item = s;

  if (!s || !v || !n)
    return -EINVAL;
  for (;;) {
    const char *comma = strchr(item, ',');
    size_t len = comma ? (size_t)(comma - item) : strlen(item);
    char tmp[256];
    struct po_range r, *nv;
    int err;

    if (len >= sizeof(tmp)) {
      err = -EINVAL;
    } else {
      memcpy(tmp, item, len);
      tmp[len] = '\0';
      err = po_port_parse(tmp, &r);
    }
    if (err) {
      if (bad)
        *bad = item;
      return err;
    }
    nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
      return -ENOMEM;
    *v = nv;
    nv[(*n)++] = r;
    if (!comma)
      return 0;
    item = comma + 1;
  }
}

size_t po_port_item_len(const char *item) {
  return item ? strcspn(item, ",") : 0;
}

int po_proto_parse(const char *s, unsigned *mask) {
  static const struct {
    const char *name;
    unsigned mask;
  } names[] = {
      {"tcp", PO_TCP},       {"tcp4", PO_TCP4}, {"tcp6", PO_TCP6},
      {"udp", PO_UDP},       {"udp4", PO_UDP4}, {"udp6", PO_UDP6},
      {"all", PO_PROTO_ALL},
  };

  if (!s || !mask)
    return -EINVAL;
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcasecmp(s, names[i].name) == 0) {
      *mask = names[i].mask;
      return 0;
    }
  }
  return -EINVAL;
}
