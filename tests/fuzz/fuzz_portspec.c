/*
 * Fuzz target: the port and protocol parsers of the command line and the
 * collectd config, po_port_parse(), po_ports_parse() and po_proto_parse(),
 * on a NUL-terminated copy of the input.
 *
 * Invariants: errors are only the documented ones; a parsed range has
 * 1 <= lo <= hi; a numeric item ("80", "8000-8099") parses exactly when a
 * plain reference parser accepts it, to the same range; a list parses to
 * one range per comma-separated item, each what po_port_parse() gives for
 * that item alone, and a failing list points *bad at the start of its first
 * failing item; a protocol name parses exactly when it is one of the seven
 * names (any case), to that name's mask.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "portowner/portspec.h"
#include "portowner/table.h"
#include "fuzz.h"

#define MAX_INPUT 4096

/* Reference: 1 when s is DIGITS or DIGITS-DIGITS, both 1..65535, lo <= hi. */
static int ref_numeric(const char *s, struct po_range *r) {
  unsigned long v[2] = {0, 0};
  int part = 0, digits = 0;

  for (const char *p = s;; p++) {
    if (*p >= '0' && *p <= '9') {
      if (v[part] <= 65535)
        v[part] = v[part] * 10 + (unsigned long)(*p - '0');
      digits++;
    } else if (*p == '-' && part == 0 && digits > 0) {
      part = 1;
      digits = 0;
    } else if (*p == '\0' && digits > 0) {
      break;
    } else {
      return 0;
    }
  }
  if (part == 0)
    v[1] = v[0];
  if (v[0] < 1 || v[0] > 65535 || v[1] < 1 || v[1] > 65535 || v[0] > v[1])
    return 0;
  r->lo = (uint16_t)v[0];
  r->hi = (uint16_t)v[1];
  return 1;
}

static void check_port(const char *s) {
  struct po_range r = {0, 0}, ref;
  int err = po_port_parse(s, &r);

  FUZZ_CHECK(err == 0 || err == -EINVAL || err == -ERANGE || err == -ENOENT);
  if (err == 0)
    FUZZ_CHECK(r.lo >= 1 && r.lo <= r.hi);
  if (s[0] >= '0' && s[0] <= '9') {
    /* Numbers never go to the services database. */
    FUZZ_CHECK(err != -ENOENT);
    if (ref_numeric(s, &ref))
      FUZZ_CHECK(err == 0 && r.lo == ref.lo && r.hi == ref.hi);
    else
      FUZZ_CHECK(err != 0);
  } else if (err == 0) {
    /* A service name: one port. */
    FUZZ_CHECK(r.lo == r.hi);
  }
}

static void check_list(const char *s) {
  struct po_range *v = NULL;
  size_t n = 0, items = 0, good = 0;
  const char *bad = NULL, *item = s;
  int err = po_ports_parse(s, &v, &n, &bad);

  FUZZ_CHECK(err == 0 || err == -EINVAL || err == -ERANGE || err == -ENOENT);
  /* Walk the items as a user reads the list. */
  for (;;) {
    const char *comma = strchr(item, ',');
    size_t ilen = comma ? (size_t)(comma - item) : strlen(item);
    char *copy = strndup(item, ilen);
    struct po_range r;
    int ierr;

    FUZZ_CHECK(copy);
    ierr = ilen >= 256 ? -EINVAL : po_port_parse(copy, &r);
    free(copy);
    items++;
    if (ierr != 0) {
      /* The list fails at its first bad item, and says which. */
      FUZZ_CHECK(err == ierr);
      FUZZ_CHECK(bad == item);
      break;
    }
    FUZZ_CHECK(good < n);
    FUZZ_CHECK(v[good].lo == r.lo && v[good].hi == r.hi);
    FUZZ_CHECK(v[good].lo >= 1 && v[good].lo <= v[good].hi);
    good++;
    if (!comma) {
      FUZZ_CHECK(err == 0);
      break;
    }
    item = comma + 1;
  }
  FUZZ_CHECK(n == good);
  FUZZ_CHECK(err != 0 || n == items);
  free(v);
}

static void check_proto(const char *s) {
  static const struct {
    const char *name;
    unsigned mask;
  } names[] = {
      {"tcp", PO_TCP},       {"tcp4", PO_TCP4}, {"tcp6", PO_TCP6},
      {"udp", PO_UDP},       {"udp4", PO_UDP4}, {"udp6", PO_UDP6},
      {"all", PO_PROTO_ALL},
  };
  unsigned mask = 0, want = 0;
  int err = po_proto_parse(s, &mask);

  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strlen(s) == strlen(names[i].name) &&
        strncasecmp(s, names[i].name, strlen(s)) == 0)
      want = names[i].mask;
  if (want) {
    FUZZ_CHECK(err == 0 && mask == want);
  } else {
    FUZZ_CHECK(err == -EINVAL);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s;

  if (size > MAX_INPUT)
    return 0;
  s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  check_port(s);
  check_list(s);
  check_proto(s);
  free(s);
  return 0;
}
