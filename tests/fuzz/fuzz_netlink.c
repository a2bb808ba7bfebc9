/*
 * Fuzz target: the netlink SOCK_DIAG_BY_FAMILY reply parser,
 * po_table_parse_diag().
 *
 * Input: one flags byte, then the bytes the kernel would have sent.
 *   bit 0     the dump's protocol: 0 TCP, 1 UDP
 *   bit 1     check the port id (taken from the first message), else any
 *   bits 2-7  for the third round: the size of each recv() buffer
 * The dump's sequence number is the first message's, so that mutated
 * recordings reach past the sequence check.
 *
 * Three rounds: the whole input as one buffer; the same messages in buffers
 * of 1 to 4 whole messages each, as successive recv()s deliver them (must
 * give exactly what one buffer gave); and buffers cut at arbitrary bytes.
 *
 * Invariants: the return is 0 or a negative errno (-4095..-1), and an error
 * ends the dump; every socket has the dump's protocol, family inet or inet6,
 * the netns passed, v6only 0 for inet and -1/0/1 for inet6, an IPv4 address
 * in the first 4 bytes only; messages are at least 16 bytes, so sockets +
 * malformed <= bytes / 16 + 1 (a truncated header at the end), + 1 per
 * buffer when cut anywhere.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "portowner/table.h"
#include "fuzz.h"

#define NETNS 4026532000u

struct round {
  struct po_table t;
  struct po_diag_dump d;
  int ret;
};

static void round_init(struct round *r, int proto, uint32_t seq,
                       uint32_t portid) {
  memset(r, 0, sizeof(*r));
  r->d.seq = seq;
  r->d.portid = portid;
  r->d.netns = NETNS;
  r->d.proto = proto;
}

/* Feeds one recv() buffer, as dump_one() does: not after the end. */
static void feed(struct round *r, const uint8_t *p, size_t n) {
  if (r->d.done || r->ret < 0)
    return;
  r->ret = po_table_parse_diag(&r->t, &r->d, p, n);
}

/* bound: the most messages the buffers can hold. */
static void check_round(const struct round *r, size_t bound) {
  FUZZ_CHECK(r->ret == 0 || (r->ret >= -4095 && r->ret < 0));
  FUZZ_CHECK(r->ret == 0 || r->d.done);
  FUZZ_CHECK(r->t.len + r->d.malformed <= bound);
  for (size_t i = 0; i < r->t.len; i++) {
    const struct po_socket *s = &r->t.v[i];

    FUZZ_CHECK(s->proto == r->d.proto);
    FUZZ_CHECK(s->family == AF_INET || s->family == AF_INET6);
    FUZZ_CHECK(s->netns == NETNS);
    FUZZ_CHECK(s->owner_first == 0 && s->owner_count == 0);
    if (s->family == AF_INET) {
      FUZZ_CHECK(s->v6only == 0);
      for (size_t k = 4; k < sizeof(s->addr); k++)
        FUZZ_CHECK(s->addr[k] == 0);
    } else {
      FUZZ_CHECK(s->v6only >= -1 && s->v6only <= 1);
    }
  }
}

static int rounds_equal(const struct round *a, const struct round *b) {
  return a->ret == b->ret && a->d.done == b->d.done &&
         a->d.interrupted == b->d.interrupted &&
         a->d.malformed == b->d.malformed && a->t.len == b->t.len &&
         fuzz_tables_equal(a->t.v, b->t.v, a->t.len);
}

/* End of the message at off as the parser walks: its aligned length, but
 * not past the end; a bad or cut header takes the rest. */
static size_t next_boundary(const uint8_t *p, size_t len, size_t off) {
  struct nlmsghdr h;
  size_t rem = len - off;

  if (rem < sizeof(h))
    return len;
  memcpy(&h, p + off, sizeof(h));
  if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > rem)
    return len;
  return off +
         (NLMSG_ALIGN(h.nlmsg_len) < rem ? NLMSG_ALIGN(h.nlmsg_len) : rem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *p;
  size_t len, per_buffer, cut;
  uint32_t seq = 0, portid = 0;
  int proto;
  struct round a, b, c;

  if (size < 1)
    return 0;
  proto = data[0] & 1 ? IPPROTO_UDP : IPPROTO_TCP;
  per_buffer = 1 + ((data[0] >> 2) & 3);
  cut = 1 + (size_t)(data[0] >> 2) * 13;
  p = data + 1;
  len = size - 1;
  if (len >= sizeof(struct nlmsghdr)) {
    struct nlmsghdr h;
    memcpy(&h, p, sizeof(h));
    seq = h.nlmsg_seq;
    if (data[0] & 2)
      portid = h.nlmsg_pid;
  }

  /* One buffer. */
  round_init(&a, proto, seq, portid);
  feed(&a, p, len);
  check_round(&a, len / NLMSG_HDRLEN + 1);

  /* Whole messages in successive buffers: the same answer. */
  round_init(&b, proto, seq, portid);
  for (size_t off = 0; off < len;) {
    size_t end = off;
    for (size_t k = 0; k < per_buffer && end < len; k++)
      end = next_boundary(p, len, end);
    feed(&b, p + off, end - off);
    off = end;
  }
  check_round(&b, len / NLMSG_HDRLEN + 1);
  FUZZ_CHECK(rounds_equal(&a, &b));

  /* Buffers cut anywhere: no message is trusted across a cut. */
  round_init(&c, proto, seq, portid);
  for (size_t off = 0; off < len; off += cut)
    feed(&c, p + off, len - off < cut ? len - off : cut);
  /* Each buffer may end in a cut header. */
  check_round(&c, len / NLMSG_HDRLEN + (len + cut - 1) / cut);

  po_table_free(&a.t);
  po_table_free(&b.t);
  po_table_free(&c.t);
  return 0;
}
