/*
 * Fuzz target: the config-value parsers of config_value.h and a watch
 * built from arbitrary values.
 *
 * Input: two doubles (8 bytes each: a Port given as a number, and Hits),
 * then newline-separated strings: watch name, Port string, Protocol, Address,
 * ExpectProcess, ExpectUser, an unused field (a boolean once: booleans are
 * collectd's cf_util_get_boolean() now, so the seeds keep their layout), a
 * Source.
 *
 * Invariants: each parser accepts exactly what a plain reference accepts, to
 * the same value, with the documented errors; po_watch_new() refuses exactly
 * empty, too long and '/' names; adding values to a watch agrees with the
 * parsers underneath; po_watch_finish() fails exactly when no port was
 * added; the descriptions it builds (ports, protocols, addresses, as the
 * notifications carry them) parse back to the same ports, protocols and
 * number of addresses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>

#include "portowner/config_value.h"
#include "portowner/portspec.h"
#include "portowner/watch.h"
#include "fuzz.h"

#define MAX_INPUT 1024
#define NFIELDS 8

/* An integer in [lo, hi], NaN aside: -ERANGE outside, -EINVAL when not
 * whole. */
static int ref_number(double v, double lo, double hi) {
  if (v != v)
    return -EINVAL;
  if (v < lo || v > hi)
    return -ERANGE;
  return v == (double)(long)v ? 0 : -EINVAL;
}

static void check_numbers(double port, double hits) {
  struct po_range r = {0, 0};
  unsigned h = 0;
  int err = po_config_port_number(port, &r);

  FUZZ_CHECK(err == ref_number(port, 1, 65535));
  if (err == 0)
    FUZZ_CHECK(r.lo == r.hi && r.lo == (uint16_t)port);
  err = po_config_hits(hits, &h);
  FUZZ_CHECK(err == ref_number(hits, 1, PO_HITS_MAX));
  if (err == 0)
    FUZZ_CHECK(h == (unsigned)hits);
}

static void check_source(const char *src) {
  static const char *const sources[] = {"auto", "netlink", "proc"};
  int want = -1;
  enum po_source s;
  int err;

  for (size_t i = 0; i < 3; i++)
    if (strcasecmp(src, sources[i]) == 0)
      want = (int)i;
  err = po_config_source(src, &s);
  if (want < 0) {
    FUZZ_CHECK(err == -EINVAL);
  } else {
    FUZZ_CHECK(err == 0);
    FUZZ_CHECK(s == (want == 0   ? PO_SOURCE_AUTO
                     : want == 1 ? PO_SOURCE_NETLINK
                                 : PO_SOURCE_PROC));
  }
}

static void mark(unsigned char *ports, const struct po_range *r) {
  for (unsigned p = r->lo; p <= r->hi; p++)
    ports[p / 8] |= (unsigned char)(1u << (p % 8));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unsigned char want_ports[65536 / 8] = {0}, got_ports[65536 / 8] = {0};
  char *buf, *field[NFIELDS] = {0};
  double port = 0, hits = 0;
  size_t nf = 0, naddrs = 0, name_len;
  unsigned want_mask = 0;
  int nports = 0, err;
  struct po_watch *w;

  if (size < 16 || size > MAX_INPUT)
    return 0;
  memcpy(&port, data, 8);
  memcpy(&hits, data + 8, 8);
  check_numbers(port, hits);

  buf = malloc(size - 16 + 1);
  FUZZ_CHECK(buf);
  memcpy(buf, data + 16, size - 16);
  buf[size - 16] = '\0';
  for (char *p = buf; nf < NFIELDS;) {
    char *nl = strchr(p, '\n');
    field[nf++] = p;
    if (!nl)
      break;
    *nl = '\0';
    p = nl + 1;
  }
  for (size_t i = nf; i < NFIELDS; i++)
    field[i] = "";

  check_source(field[7]);

  name_len = strlen(field[0]);
  w = po_watch_new(field[0]);
  if (name_len == 0 || name_len >= PO_WATCH_NAME_MAX || strchr(field[0], '/')) {
    FUZZ_CHECK(!w && errno == EINVAL);
    free(buf);
    return 0;
  }
  FUZZ_CHECK(w);
  FUZZ_CHECK(strcmp(po_watch_name(w), field[0]) == 0);

  /* Port as a number. */
  err = po_watch_port_add_number(w, port);
  FUZZ_CHECK(err == ref_number(port, 1, 65535));
  if (err == 0) {
    struct po_range r = {(uint16_t)port, (uint16_t)port};
    mark(want_ports, &r);
    nports++;
  }

  /* Port as a string: what po_ports_parse() says, all or nothing. */
  {
    struct po_range *v = NULL;
    size_t n = 0;
    const char *bad1 = NULL, *bad2 = NULL;
    int perr = po_ports_parse(field[1], &v, &n, &bad1);

    err = po_watch_port_add_string(w, field[1], &bad2);
    FUZZ_CHECK(err == perr);
    if (err == 0) {
      for (size_t i = 0; i < n; i++)
        mark(want_ports, &v[i]);
      nports += (int)n;
    } else {
      FUZZ_CHECK(bad1 == bad2);
    }
    free(v);
  }

  /* Protocol. */
  {
    unsigned m;
    int perr = po_proto_parse(field[2], &m);

    err = po_watch_protocol_add(w, field[2]);
    FUZZ_CHECK(perr == 0 ? err == 0 : err == -EINVAL);
    if (err == 0)
      want_mask |= m;
  }

  /* Address. */
  {
    unsigned char a[16];
    int ok = inet_pton(AF_INET, field[3], a) == 1 ||
             inet_pton(AF_INET6, field[3], a) == 1;

    err = po_watch_address_add(w, field[3]);
    FUZZ_CHECK(ok ? err == 0 : err == -EINVAL);
    naddrs += ok;
  }

  /* ExpectProcess: a name, a path (which must exist: stat's error, said
   * in msg), or /REGEX/ (bounded: PCRE2 with PO_REGEX_* limits, -E2BIG
   * past them, any pattern). */
  {
    char msg[128];
    const char *f = field[4];
    int regex = f[0] == '/' && strlen(f) >= 2 && f[strlen(f) - 1] == '/';
    struct stat st;

    memset(msg, 'x', sizeof(msg));
    err = po_watch_expect_process_add(w, f, msg, sizeof(msg));
    FUZZ_CHECK(strnlen(msg, sizeof(msg)) < sizeof(msg));
    if (f[0] == '\0') {
      FUZZ_CHECK(err == -EINVAL);
    } else if (regex) {
      FUZZ_CHECK(err == 0 || err == -EINVAL || err == -E2BIG || err == -ENOMEM);
    } else if (strchr(f, '/')) {
      int e = stat(f, &st) == 0 ? 0 : -errno;

      FUZZ_CHECK(err == e || err == -ENOMEM);
      FUZZ_CHECK(err == 0 || err == -ENOMEM || msg[0] != '\0');
    } else {
      FUZZ_CHECK(err == 0 || err == -ENOMEM);
    }
  }

  /* ExpectUser: anything but empty. */
  err = po_watch_expect_user_add(w, field[5]);
  FUZZ_CHECK(field[5][0] ? err == 0 : err == -EINVAL);

  err = po_watch_finish(w);
  if (nports == 0) {
    FUZZ_CHECK(err == -EDESTADDRREQ);
  } else {
    struct po_range *v = NULL;
    size_t n = 0;
    const char *addrs = po_watch_addresses(w);
    char *protos;
    unsigned got_mask = 0;

    FUZZ_CHECK(err == 0);
    /* The ports description lists the same ports. */
    FUZZ_CHECK(po_ports_parse(po_watch_ports(w), &v, &n, NULL) == 0);
    for (size_t i = 0; i < n; i++)
      mark(got_ports, &v[i]);
    free(v);
    FUZZ_CHECK(memcmp(want_ports, got_ports, sizeof(want_ports)) == 0);
    /* The protocols description: the same protocols (tcp by default). */
    protos = strdup(po_watch_protocols(w));
    FUZZ_CHECK(protos);
    for (char *save = NULL, *t = strtok_r(protos, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
      unsigned m;
      FUZZ_CHECK(po_proto_parse(t, &m) == 0);
      got_mask |= m;
    }
    free(protos);
    FUZZ_CHECK(got_mask == (want_mask ? want_mask : PO_TCP));
    /* One address per Address given, each an address. */
    if (naddrs == 0) {
      FUZZ_CHECK(!addrs);
    } else {
      char *copy = strdup(addrs);
      size_t count = 0;

      FUZZ_CHECK(copy);
      for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
           t = strtok_r(NULL, ",", &save)) {
        unsigned char a[16];
        FUZZ_CHECK(inet_pton(AF_INET, t, a) == 1 ||
                   inet_pton(AF_INET6, t, a) == 1);
        count++;
      }
      free(copy);
      FUZZ_CHECK(count == naddrs);
    }
  }
  po_watch_free(w);
  free(buf);
  return 0;
}
