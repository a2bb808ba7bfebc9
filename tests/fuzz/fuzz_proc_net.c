/*
 * Fuzz target: the /proc/net/{tcp,tcp6,udp,udp6} parser,
 * po_table_parse_proc(), on the input as each of the four files, and
 * po_table_read_proc() on the same bytes written to a directory (the
 * read(2)-in-pieces path) which must give the same sockets.
 *
 * Invariants: the call succeeds; every socket has the protocol and family
 * asked for, the netns passed, v6only -1 (inet6) or 0 (inet), an IPv4
 * address in the first 4 bytes only, and for TCP an unknown accept-queue
 * limit; sockets + malformed lines <= lines.
 */
#define FUZZ_WANT_TMPDIR
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "portowner/table.h"
#include "../fixture.h"
#include "fuzz.h"

#define NETNS 4026531840u

static const struct {
  const char *name;
  unsigned bit;
  int proto;
  int family;
} files[] = {
    {"tcp", PO_TCP4, IPPROTO_TCP, AF_INET},
    {"tcp6", PO_TCP6, IPPROTO_TCP, AF_INET6},
    {"udp", PO_UDP4, IPPROTO_UDP, AF_INET},
    {"udp6", PO_UDP6, IPPROTO_UDP, AF_INET6},
};
#define NFILES (sizeof(files) / sizeof(files[0]))

/* fuzz_tmpdir() as a ProcRoot's net/: one file under the four names, so
 * that one write per input serves them all. */
static const char *net_dir(void) {
  static int made;
  const char *dir = fuzz_tmpdir();

  if (!made) {
    fx_write(dir, files[0].name, "", 0);
    for (size_t i = 1; i < NFILES; i++) {
      char from[PATH_MAX], to[PATH_MAX];

      fx_path(dir, from, sizeof(from), "%s", files[0].name);
      fx_path(dir, to, sizeof(to), "%s", files[i].name);
      FUZZ_CHECK(link(from, to) == 0);
    }
    made = 1;
  }
  return dir;
}

static void check_socket(const struct po_socket *s, int proto, int family) {
  FUZZ_CHECK(s->proto == proto);
  FUZZ_CHECK(s->family == family);
  FUZZ_CHECK(s->netns == NETNS);
  FUZZ_CHECK(s->v6only == (family == AF_INET6 ? -1 : 0));
  FUZZ_CHECK(s->owner_first == 0 && s->owner_count == 0);
  if (family == AF_INET)
    for (size_t i = 4; i < sizeof(s->addr); i++)
      FUZZ_CHECK(s->addr[i] == 0);
  if (proto == IPPROTO_TCP)
    FUZZ_CHECK(s->wqueue == PO_QUEUE_UNKNOWN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *buf = (const char *)data;
  struct po_table all = {0};
  uint64_t all_malformed = 0;
  size_t lines = 0;

  /* The parser's notion of a line: up to a '\n', or to the end. */
  for (size_t i = 0; i < size; i++)
    lines += data[i] == '\n';
  if (size > 0 && data[size - 1] != '\n')
    lines++;

  for (size_t f = 0; f < NFILES; f++) {
    struct po_table t = {0};
    uint64_t malformed = 0;
    int n = po_table_parse_proc(&t, buf, size, files[f].proto, files[f].family,
                                NETNS, &malformed);

    FUZZ_CHECK(n >= 0);
    FUZZ_CHECK((size_t)n == t.len);
    FUZZ_CHECK(t.len + malformed <= lines);
    for (size_t i = 0; i < t.len; i++) {
      check_socket(&t.v[i], files[f].proto, files[f].family);
      FUZZ_CHECK(po_table_push(&all, &t.v[i]) == 0);
    }
    all_malformed += malformed;

    /* Appending to a table keeps what is there and counts only the new. */
    {
      uint64_t m2 = 0;
      size_t before = t.len;
      int n2 = po_table_parse_proc(&t, buf, size, files[f].proto,
                                   files[f].family, NETNS, &m2);
      FUZZ_CHECK(n2 == n && m2 == malformed && t.len == before * 2);
      FUZZ_CHECK(before == 0 || fuzz_tables_equal(t.v, t.v + before, before));
    }
    po_table_free(&t);
  }

  /* The same bytes as files, read in pieces by po_table_read_proc(). */
  {
    const char *dir = net_dir();
    struct po_table t = {0};
    uint64_t malformed = 0;
    int r;

    fx_write(dir, files[0].name, data, size);
    r = po_table_read_proc(&t, dir, PO_PROTO_ALL, NETNS, &malformed);
    FUZZ_CHECK(r == 0);
    FUZZ_CHECK(t.len == all.len);
    FUZZ_CHECK(malformed == all_malformed);
    FUZZ_CHECK(fuzz_tables_equal(t.v, all.v, t.len));
    po_table_free(&t);
  }
  po_table_free(&all);
  return 0;
}
