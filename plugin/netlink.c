/*
 * portowner: the listener table from netlink sock_diag.
 *
 * One SOCK_DIAG_BY_FAMILY dump (struct inet_diag_req_v2) per family and
 * protocol. inet_diag_req_v2 covers TCP and UDP alike; the older
 * TCPDIAG_GETSOCK request covers TCP only. The kernel filters on
 * idiag_states itself; the parser checks the state again all the same.
 *
 * Each reply message is a struct nlmsghdr, a struct inet_diag_msg, then
 * netlink attributes (struct nlattr, the same layout as struct rtattr).
 */
#include "portowner/table.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* TCP_LISTEN and TCP_CLOSE of the kernel's TCP state enum. inet_diag uses it
 * for UDP too: a bound, unconnected UDP socket is in TCP_CLOSE, a connected
 * one in TCP_ESTABLISHED. */
#define PO_TCP_CLOSE 7
#define PO_TCP_LISTEN 10

/* The kernel never builds a dump datagram larger than 32 KiB (netlink_dump()
 * sizes it from the reader's last recvmsg() length, capped there); the buffer
 * still grows if it meets a larger one. */
#define PO_NL_BUF_MIN (32 * 1024)

/* The largest errno (the kernel's MAX_ERRNO): an error code in a reply
 * below -PO_MAX_ERRNO is no errno, and returned as such it would break the
 * -errno contract (strerror(-INT_MIN) overflows). */
#define PO_MAX_ERRNO 4095

/* INET_DIAG_CGROUP_ID of linux/inet_diag.h (Linux 5.8), which older
 * headers do not have. */
#define PO_INET_DIAG_CGROUP_ID 21

/* Re-dumps of one family/protocol after NLM_F_DUMP_INTR before giving up. */
#define PO_DUMP_RETRIES 3

int po_diag_request(void *buf, size_t size, int family, int proto,
                    uint32_t seq) {
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 req;
  } r;

  if (!buf || (family != AF_INET && family != AF_INET6) ||
      (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
    return -EINVAL;
  if (size < sizeof(r))
    return -ENOSPC;

  memset(&r, 0, sizeof(r));
  r.nlh.nlmsg_len = sizeof(r);
  r.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  r.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  r.nlh.nlmsg_seq = seq;
  r.req.sdiag_family = (uint8_t)family;
  r.req.sdiag_protocol = (uint8_t)proto;
  r.req.idiag_states =
      proto == IPPROTO_TCP ? 1u << PO_TCP_LISTEN : 1u << PO_TCP_CLOSE;
  /* No particular socket: dump them all. */
  r.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  r.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  memcpy(buf, &r, sizeof(r));
  return (int)sizeof(r);
}

/*
 * The kernel runs the program of an INET_DIAG_REQ_BYTECODE attribute on each
 * socket (inet_diag_bc_run()): every op is {code, yes, no}; the op's test
 * passes or fails, and the program advances by yes or by no bytes. The
 * socket is sent when the program ends exactly at its last byte; jumping
 * 4 bytes past it rejects. A port test is two ops: the second one's "no"
 * holds the port (host byte order). The kernel audits the program
 * (inet_diag_bc_audit()): yes must step to the next op, no must land on an
 * op boundary, the end, or 4 past it.
 *
 * For ranges [lo1,hi1] ... [loN,hiN] we emit, per range but the last:
 *   S_GE lo (no: next range)  S_LE hi (no: next range)  JMP (to the end)
 * and for the last range: S_GE lo (no: reject)  S_LE hi (no: reject).
 */
#define PO_BC_OP 4                 /* sizeof(struct inet_diag_bc_op) */
#define PO_BC_RANGE (4 * PO_BC_OP) /* S_GE + port, S_LE + port */
#define PO_BC_BLOCK (PO_BC_RANGE + PO_BC_OP) /* ... + JMP */

static void bc_put(unsigned char *p, uint8_t code, uint8_t yes, uint16_t no) {
  struct inet_diag_bc_op op = {.code = code, .yes = yes, .no = no};
  memcpy(p, &op, sizeof(op));
}

static int range_cmp(const void *a, const void *b) {
  const struct po_range *x = a, *y = b;
  return (x->lo > y->lo) - (x->lo < y->lo);
}

int po_diag_bytecode(void *buf, size_t size, const struct po_range *r,
                     size_t n) {
  struct po_range m[PO_DIAG_FILTER_MAX + 1];
  size_t k = 0, len;
  unsigned char *p = buf;

  if (n == 0)
    return 0;
  if (!buf || !r)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (r[i].lo > r[i].hi)
      return -EINVAL;

  /* Sort and merge: overlapping and adjacent ranges become one. m holds
   * one more than the limit so that "too many" is seen as it is. */
  for (size_t i = 0; i < n; i++) {
    struct po_range x = r[i];
    size_t j;
    int merged = 0;

    if (x.lo == 0 && x.hi == UINT16_MAX)
      return 0; /* every port */
    for (j = 0; j < k; j++)
      if (x.lo <= (uint32_t)m[j].hi + 1 && m[j].lo <= (uint32_t)x.hi + 1) {
        m[j].lo = x.lo < m[j].lo ? x.lo : m[j].lo;
        m[j].hi = x.hi > m[j].hi ? x.hi : m[j].hi;
        merged = 1;
        break;
      }
    if (!merged) {
      if (k == PO_DIAG_FILTER_MAX + 1)
        return 0; /* too many to merge here: no kernel filter */
      m[k++] = x;
    }
  }
  /* A merge can make a range touch earlier ones: merge again, sorted. */
  qsort(m, k, sizeof(m[0]), range_cmp);
  {
    size_t w = 0;
    for (size_t i = 0; i < k; i++) {
      if (w > 0 && m[i].lo <= (uint32_t)m[w - 1].hi + 1) {
        if (m[i].hi > m[w - 1].hi)
          m[w - 1].hi = m[i].hi;
      } else {
        m[w++] = m[i];
      }
    }
    k = w;
  }
  if (k > PO_DIAG_FILTER_MAX)
    return 0;
  if (k == 1 && m[0].lo <= 1 && m[0].hi == UINT16_MAX)
    return 0; /* port 0 never listens: every port */

  len = (k - 1) * PO_BC_BLOCK + PO_BC_RANGE;
  if (size < len)
    return -ENOSPC;
  for (size_t i = 0; i < k; i++) {
    int last = i + 1 == k;
    /* Bytes from this block's start to the end of the program. */
    size_t rest = len - i * PO_BC_BLOCK;
    /* Where a failed test goes, relative to the S_GE op: the next block,
     * or 4 bytes past the end (reject). */
    uint16_t fail = (uint16_t)(last ? rest + PO_BC_OP : PO_BC_BLOCK);

    bc_put(p, INET_DIAG_BC_S_GE, 2 * PO_BC_OP, fail);
    bc_put(p + PO_BC_OP, 0, 0, m[i].lo);
    bc_put(p + 2 * PO_BC_OP, INET_DIAG_BC_S_LE, 2 * PO_BC_OP,
           (uint16_t)(fail - 2 * PO_BC_OP));
    bc_put(p + 3 * PO_BC_OP, 0, 0, m[i].hi);
    if (!last) /* matched: jump to the end, accept */
      bc_put(p + PO_BC_RANGE, INET_DIAG_BC_JMP, PO_BC_OP,
             (uint16_t)(rest - PO_BC_RANGE));
    p += PO_BC_BLOCK;
  }
  return (int)len;
}

int po_diag_request_ports(void *buf, size_t size, int family, int proto,
                          uint32_t seq, const struct po_range *r, size_t n) {
  int len = po_diag_request(buf, size, family, proto, seq);
  struct nlattr a;
  struct nlmsghdr h;
  int bc;

  if (len < 0)
    return len;
  if (n > 0 && !r)
    return -EINVAL;
  if ((size_t)len + NLA_HDRLEN > size)
    return n == 0 ? len : -ENOSPC;
  bc = po_diag_bytecode((unsigned char *)buf + len + NLA_HDRLEN,
                        size - (size_t)len - NLA_HDRLEN, r, n);
  if (bc <= 0)
    return bc < 0 ? bc : len;
  a.nla_len = (uint16_t)(NLA_HDRLEN + bc);
  a.nla_type = INET_DIAG_REQ_BYTECODE;
  memcpy((unsigned char *)buf + len, &a, sizeof(a));
  memcpy(&h, buf, sizeof(h));
  h.nlmsg_len = (uint32_t)len + NLA_HDRLEN + (uint32_t)bc;
  memcpy(buf, &h, sizeof(h));
  return (int)h.nlmsg_len;
}

enum msg_result { MSG_MALFORMED = -1, MSG_SKIPPED = 0, MSG_KEPT = 1 };

/*
 * One SOCK_DIAG_BY_FAMILY message of nlmsg_len len (header included, len
 * within the buffer). Fills *s when the socket is one we keep.
 */
static enum msg_result parse_sock(const unsigned char *msg, size_t len,
                                  const struct po_diag_dump *d,
                                  struct po_socket *s) {
  struct inet_diag_msg m;
  size_t off;
  int v6only = -1;
  uint64_t cgroup_id = 0;

  if (len < NLMSG_HDRLEN + sizeof(m))
    return MSG_MALFORMED;
  memcpy(&m, msg + NLMSG_HDRLEN, sizeof(m));
  if (m.idiag_family != AF_INET && m.idiag_family != AF_INET6)
    return MSG_MALFORMED;

  /* The attributes: each nla_len covers its header and payload, and the
   * next one starts at the 4-byte aligned end. */
  off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(m));
  while (off < len) {
    struct nlattr a;
    size_t rem = len - off;

    if (rem < sizeof(a))
      return MSG_MALFORMED;
    memcpy(&a, msg + off, sizeof(a));
    if (a.nla_len < sizeof(a) || a.nla_len > rem)
      return MSG_MALFORMED;
    /* The kernel adds INET_DIAG_SKV6ONLY (a u8) unasked for AF_INET6
     * sockets in LISTEN or CLOSE (inet_diag_msg_attrs_fill()). */
    if ((a.nla_type & NLA_TYPE_MASK) == INET_DIAG_SKV6ONLY &&
        m.idiag_family == AF_INET6) {
      if (a.nla_len < sizeof(a) + 1)
        return MSG_MALFORMED;
      v6only = msg[off + sizeof(a)] != 0;
    }
    /* The socket's cgroup v2 id, a u64 (inet_diag_msg_attrs_fill()). */
    if ((a.nla_type & NLA_TYPE_MASK) == PO_INET_DIAG_CGROUP_ID) {
      if (a.nla_len < sizeof(a) + sizeof(cgroup_id))
        return MSG_MALFORMED;
      memcpy(&cgroup_id, msg + off + sizeof(a), sizeof(cgroup_id));
    }
    off +=
        (size_t)NLA_ALIGN(a.nla_len) < rem ? (size_t)NLA_ALIGN(a.nla_len) : rem;
  }

  if (d->proto == IPPROTO_TCP ? m.idiag_state != PO_TCP_LISTEN
                              : m.idiag_state != PO_TCP_CLOSE)
    return MSG_SKIPPED;

  memset(s, 0, sizeof(*s));
  s->inode = m.idiag_inode;
  s->netns = d->netns;
  /* idiag_src holds the address in network byte order; an AF_INET address
   * is in idiag_src[0] and the rest is zero. */
  memcpy(s->addr, m.id.idiag_src, m.idiag_family == AF_INET ? 4 : 16);
  s->port = ntohs(m.id.idiag_sport);
  s->proto = (uint8_t)d->proto;
  s->family = m.idiag_family;
  s->v6only = m.idiag_family == AF_INET6 ? (int8_t)v6only : 0;
  /* TCP LISTEN: idiag_rqueue is sk_ack_backlog (the accept queue now) and
   * idiag_wqueue sk_max_ack_backlog (its limit). UDP: receive and send
   * queues, as /proc/net/udp prints them. */
  s->rqueue = m.idiag_rqueue;
  s->wqueue = m.idiag_wqueue;
  s->uid = m.idiag_uid;
  s->cgroup_id = cgroup_id;
  return MSG_KEPT;
}

int po_table_parse_diag(struct po_table *t, struct po_diag_dump *d,
                        const void *buf, size_t len) {
  const unsigned char *p = buf;
  size_t off = 0;

  if (!d || (!buf && len > 0) ||
      (d->proto != IPPROTO_TCP && d->proto != IPPROTO_UDP))
    return -EINVAL;

  while (off < len) {
    const unsigned char *msg = p + off;
    size_t rem = len - off, plen;
    struct nlmsghdr h;
    struct po_socket s;

    if (rem < sizeof(h)) {
      d->malformed++; /* a truncated header */
      break;
    }
    memcpy(&h, msg, sizeof(h));
    if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > rem) {
      /* Without a length to trust there is no next message either. */
      d->malformed++;
      break;
    }
    off += NLMSG_ALIGN(h.nlmsg_len) < rem ? NLMSG_ALIGN(h.nlmsg_len) : rem;
    plen = h.nlmsg_len - NLMSG_HDRLEN;

    /* Left over from an earlier request, or not meant for us. */
    if (h.nlmsg_seq != d->seq || (d->portid && h.nlmsg_pid != d->portid)) {
      d->malformed++;
      continue;
    }
    /* The kernel sets NLM_F_DUMP_INTR on the messages built after the table
     * changed under the dump (its generation counter moved), NLMSG_DONE
     * included: what was read so far may miss or repeat sockets. */
    if (h.nlmsg_flags & NLM_F_DUMP_INTR)
      d->interrupted = 1;

    switch (h.nlmsg_type) {
    case NLMSG_NOOP:
      continue;
    case NLMSG_DONE:
      d->done = 1;
      /* Since Linux 4.x the payload is the dump's own return value: a
       * negative errno when the dump failed part way. */
      if (plen >= sizeof(int)) {
        int err;
        memcpy(&err, msg + NLMSG_HDRLEN, sizeof(err));
        if (err < -PO_MAX_ERRNO) {
          /* Not an errno: the dump failed, but we cannot say why. */
          d->malformed++;
          return -EPROTO;
        }
        if (err < 0)
          return err;
      }
      return 0;
    case NLMSG_ERROR: {
      int err;
      if (plen < sizeof(err)) {
        d->malformed++;
        continue;
      }
      /* struct nlmsgerr: a negative errno, or 0 for an acknowledgement. */
      memcpy(&err, msg + NLMSG_HDRLEN, sizeof(err));
      if (err > 0 || err < -PO_MAX_ERRNO) {
        d->malformed++;
        continue;
      }
      d->done = 1;
      return err;
    }
    case SOCK_DIAG_BY_FAMILY:
      switch (parse_sock(msg, h.nlmsg_len, d, &s)) {
      case MSG_MALFORMED:
        d->malformed++;
        break;
      case MSG_KEPT:
        if (po_table_push(t, &s) < 0)
          return -ENOMEM;
        break;
      case MSG_SKIPPED:
        break;
      }
      continue;
    default:
      d->malformed++;
      continue;
    }
  }
  return 0;
}

/* Throws away whatever is queued on the socket: the rest of a dump that an
 * earlier call gave up on. Each recv() lets the kernel queue the next part of
 * a dump in progress, so this reads to its end. */
static void drain(int fd) {
  unsigned char b[64];

  for (;;) {
    ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
  }
}

struct nl_buf {
  unsigned char *p;
  size_t cap;
};

/* Receives one datagram from the kernel into b, growing it if needed.
 * Returns its length, 0 for a datagram that is not from the kernel, or
 * -errno. */
static ssize_t recv_one(int fd, struct nl_buf *b) {
  struct sockaddr_nl from;
  struct iovec iov;
  struct msghdr mh;
  ssize_t n;

  /* MSG_PEEK | MSG_TRUNC returns the datagram's full length without
   * consuming it. */
  do
    n = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  if ((size_t)n > b->cap) {
    unsigned char *np = realloc(b->p, (size_t)n);
    if (!np)
      return -ENOMEM;
    b->p = np;
    b->cap = (size_t)n;
  }

  for (;;) {
    memset(&from, 0, sizeof(from));
    iov.iov_base = b->p;
    iov.iov_len = b->cap;
    memset(&mh, 0, sizeof(mh));
    mh.msg_name = &from;
    mh.msg_namelen = sizeof(from);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    n = recvmsg(fd, &mh, 0);
    if (n >= 0 || errno != EINTR)
      break;
  }
  if (n < 0)
    return -errno;
  if (n == 0)
    return -EIO; /* netlink never sends an empty datagram */
  if (mh.msg_flags & MSG_TRUNC)
    return -EMSGSIZE; /* the tail is lost: the dump would be incomplete */
  if (mh.msg_namelen < sizeof(from) || from.nl_family != AF_NETLINK ||
      from.nl_pid != 0)
    return 0;
  return n;
}

/* One dump of one family and protocol, appended to t. */
static int dump_one(struct po_table *t, int fd, struct nl_buf *b, int family,
                    int proto, uint32_t seq, uint64_t netns,
                    const struct po_range *r, size_t nr, uint64_t *malformed,
                    int *interrupted) {
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  struct sockaddr_nl self;
  socklen_t slen = sizeof(self);
  struct po_diag_dump d;
  unsigned char req[128 + PO_DIAG_FILTER_MAX * PO_BC_BLOCK];
  int len, ret = 0;
  ssize_t n;

  len = po_diag_request_ports(req, sizeof(req), family, proto, seq, r, nr);
  if (len < 0)
    return len;
  do
    n = sendto(fd, req, (size_t)len, 0, (struct sockaddr *)&kernel,
               sizeof(kernel));
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  if (n != len)
    return -EIO;

  memset(&d, 0, sizeof(d));
  d.seq = seq;
  d.netns = netns;
  d.proto = proto;
  /* An unbound netlink socket gets its port id on its first send. */
  memset(&self, 0, sizeof(self));
  if (getsockname(fd, (struct sockaddr *)&self, &slen) == 0 &&
      self.nl_family == AF_NETLINK)
    d.portid = self.nl_pid;

  while (!d.done) {
    n = recv_one(fd, b);
    if (n < 0) {
      ret = (int)n;
      break;
    }
    if (n == 0) {
      d.malformed++;
      continue;
    }
    ret = po_table_parse_diag(t, &d, b->p, (size_t)n);
    if (ret < 0)
      break;
  }
  if (malformed)
    *malformed += d.malformed;
  *interrupted = d.interrupted;
  return ret;
}

static uint32_t first_seq(void) {
  struct timespec ts;

  /* Not 1: replies to an earlier caller's requests on the same socket must
   * not look like ours. */
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint32_t)ts.tv_sec * 1000003u ^ (uint32_t)ts.tv_nsec;
}

int po_table_dump_netlink(struct po_table *t, int nl_fd, unsigned mask,
                          uint64_t netns, uint64_t *malformed,
                          uint64_t *retries) {
  return po_table_dump_netlink_ports(t, nl_fd, mask, netns, NULL, 0, malformed,
                                     retries);
}

int po_table_dump_netlink_ports(struct po_table *t, int nl_fd, unsigned mask,
                                uint64_t netns, const struct po_range *r,
                                size_t nr, uint64_t *malformed,
                                uint64_t *retries) {
  static const struct {
    unsigned bit;
    int family;
    int proto;
  } dumps[] = {
      {PO_TCP4, AF_INET, IPPROTO_TCP},
      {PO_TCP6, AF_INET6, IPPROTO_TCP},
      {PO_UDP4, AF_INET, IPPROTO_UDP},
      {PO_UDP6, AF_INET6, IPPROTO_UDP},
  };
  size_t start_len = t->len;
  struct nl_buf b;
  uint32_t seq = first_seq();
  int ret = 0;

  if (nl_fd < 0)
    return -EBADF;
  if (nr > 0 && !r)
    return -EINVAL;
  for (size_t i = 0; i < nr; i++)
    if (r[i].lo > r[i].hi)
      return -EINVAL;
  b.cap = PO_NL_BUF_MIN;
  b.p = malloc(b.cap);
  if (!b.p)
    return -ENOMEM;

  drain(nl_fd);
  for (size_t i = 0; i < sizeof(dumps) / sizeof(dumps[0]) && ret == 0; i++) {
    if (!(mask & dumps[i].bit))
      continue;
    for (int attempt = 0;; attempt++) {
      size_t before = t->len;
      int interrupted = 0;

      ret = dump_one(t, nl_fd, &b, dumps[i].family, dumps[i].proto, seq++,
                     netns, r, nr, malformed, &interrupted);
      if (ret == -EINVAL && nr > 0) {
        /* A kernel that refuses the filter program: the user-space
         * filter is enough, ask for every port from now on. */
        t->len = before;
        drain(nl_fd);
        nr = 0;
        attempt--;
        continue;
      }
      if (ret < 0 || !interrupted)
        break;
      t->len = before;
      if (attempt == PO_DUMP_RETRIES) {
        ret = -EINTR;
        break;
      }
      if (retries)
        (*retries)++;
    }
  }

  if (ret < 0) {
    t->len = start_len;
    drain(nl_fd);
    /* No diag handler for this family or protocol (inet_diag, tcp_diag or
     * udp_diag not built or not loadable): the kernel says ENOENT. */
    if (ret == -ENOENT)
      ret = -EPROTONOSUPPORT;
  }
  free(b.p);
  return ret;
}
