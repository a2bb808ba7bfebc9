/*
 * portowner: the listener table and its /proc/net parser.
 *
 * /proc/net/{tcp,tcp6,udp,udp6} are printed by the kernel's seq_file code
 * (tcp4_seq_show, tcp6_seq_show, udp4_format_sock, udp6_seq_show). Every line
 * starts with the same ten fields, whatever the protocol and state:
 *
 *   sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt
 *   uid timeout inode [more fields that differ between states and kernels]
 *
 * Only those (and that an eleventh field follows) are checked; the rest is
 * left alone, so that TIME_WAIT and SYN_RECV lines (which are shorter) and
 * newer kernels (which append fields) parse too.
 */
#include "portowner/table.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* TCP_LISTEN and TCP_CLOSE from the kernel's enum, as /proc/net prints them
 * (hex). An unconnected, bound UDP socket is in TCP_CLOSE. */
#define PO_STATE_CLOSE 0x07
#define PO_STATE_LISTEN 0x0A

/* The fields every line has: up to inode, which is always followed by at
 * least the socket's reference count. Requiring that one too means a line
 * cut short inside the inode field is not taken for a smaller inode. */
#define PO_PROC_FIELDS 11

/* First allocation of the table, in sockets. */
#define PO_TABLE_MIN_CAP 64

/* First read buffer of po_table_read_proc(): many lines per read(2). */
#define PO_READ_BUF_MIN (64 * 1024)

int po_table_push(struct po_table *t, const struct po_socket *s) {
  if (t->len == t->cap) {
    size_t ncap = t->cap ? t->cap : PO_TABLE_MIN_CAP / 2;
    struct po_socket *nv;

    if (ncap > SIZE_MAX / 2 / sizeof(*nv))
      return -ENOMEM;
    ncap *= 2;
    nv = realloc(t->v, ncap * sizeof(*nv));
    if (!nv)
      return -ENOMEM;
    t->v = nv;
    t->cap = ncap;
  }
  t->v[t->len++] = *s;
  return 0;
}

void po_table_clear(struct po_table *t) {
  t->len = 0;
}

void po_table_free(struct po_table *t) {
  free(t->v);
  t->v = NULL;
  t->len = 0;
  t->cap = 0;
}

static int cmp_u64(uint64_t a, uint64_t b) {
  return (a > b) - (a < b);
}

static int socket_cmp(const void *pa, const void *pb) {
  const struct po_socket *a = pa;
  const struct po_socket *b = pb;
  int c;

  /* IPPROTO_TCP (6) < IPPROTO_UDP (17), AF_INET (2) < AF_INET6 (10). */
  if ((c = cmp_u64(a->proto, b->proto)) != 0)
    return c;
  if ((c = cmp_u64(a->family, b->family)) != 0)
    return c;
  if ((c = cmp_u64(a->port, b->port)) != 0)
    return c;
  if ((c = memcmp(a->addr, b->addr, sizeof(a->addr))) != 0)
    return c;
  if ((c = cmp_u64(a->netns, b->netns)) != 0)
    return c;
  return cmp_u64(a->inode, b->inode);
}

void po_table_sort(struct po_table *t) {
  if (t->len > 1)
    qsort(t->v, t->len, sizeof(*t->v), socket_cmp);
}

/* A field of a line: [p, p + n). The buffer is not NUL-terminated. */
struct field {
  const char *p;
  size_t n;
};

static int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* [p, p + n) is 1 to 16 hex digits and nothing else. */
static int parse_hex(const char *p, size_t n, uint64_t *out) {
  uint64_t v = 0;

  if (n == 0 || n > 16)
    return -1;
  for (size_t i = 0; i < n; i++) {
    int d = hex_digit(p[i]);
    if (d < 0)
      return -1;
    v = v << 4 | (uint64_t)d;
  }
  *out = v;
  return 0;
}

/* [p, p + n) is a decimal number that fits in a uint64_t, and nothing else. */
static int parse_dec(const char *p, size_t n, uint64_t *out) {
  uint64_t v = 0;

  if (n == 0)
    return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned d;
    if (p[i] < '0' || p[i] > '9')
      return -1;
    d = (unsigned)(p[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

/* "HEX:HEX", each part at most max. */
static int parse_hex_pair(const struct field *f, uint64_t max, uint64_t *a,
                          uint64_t *b) {
  const char *colon = memchr(f->p, ':', f->n);
  size_t la;

  if (!colon)
    return -1;
  la = (size_t)(colon - f->p);
  if (parse_hex(f->p, la, a) < 0 || parse_hex(colon + 1, f->n - la - 1, b) < 0)
    return -1;
  return *a <= max && *b <= max ? 0 : -1;
}

/*
 * "ADDR:PORT". The kernel prints each 32-bit word of the address (which is in
 * network byte order in memory) with %08X, that is as a host-order integer:
 * on little endian 127.0.0.1 is "0100007F". Storing each parsed word back in
 * host order gives the network-order bytes again. tcp6 prints the four words
 * of the IPv6 address the same way, one after the other.
 */
static int parse_endpoint(const struct field *f, int family, uint8_t addr[16],
                          uint16_t *port) {
  size_t words = family == AF_INET ? 1 : 4;
  uint64_t v;

  if (f->n < words * 8 + 2 || f->p[words * 8] != ':')
    return -1;
  memset(addr, 0, 16);
  for (size_t i = 0; i < words; i++) {
    uint32_t w;
    if (parse_hex(f->p + i * 8, 8, &v) < 0)
      return -1;
    w = (uint32_t)v;
    memcpy(addr + i * 4, &w, 4);
  }
  if (parse_hex(f->p + words * 8 + 1, f->n - words * 8 - 1, &v) < 0 ||
      v > UINT16_MAX)
    return -1;
  *port = (uint16_t)v;
  return 0;
}

static int is_blank(char c) {
  return c == ' ' || c == '\t';
}

/* Splits a line into its first PO_PROC_FIELDS fields; returns how many of
 * them it has (at most PO_PROC_FIELDS). */
static size_t split_fields(const char *p, size_t n,
                           struct field f[PO_PROC_FIELDS]) {
  size_t nf = 0, i = 0;

  while (nf < PO_PROC_FIELDS) {
    size_t start;
    while (i < n && is_blank(p[i]))
      i++;
    if (i == n)
      break;
    start = i;
    while (i < n && !is_blank(p[i]))
      i++;
    f[nf].p = p + start;
    f[nf].n = i - start;
    nf++;
  }
  return nf;
}

enum line_result { LINE_MALFORMED = -1, LINE_SKIPPED = 0, LINE_KEPT = 1 };

static enum line_result parse_line(const char *p, size_t n, int proto,
                                   int family, uint64_t netns,
                                   struct po_socket *s) {
  struct field f[PO_PROC_FIELDS];
  uint8_t raddr[16];
  uint16_t rport;
  uint64_t v, st, txq, rxq, tr, when, uid, inode;

  if (split_fields(p, n, f) < PO_PROC_FIELDS)
    return LINE_MALFORMED;

  /* sl: "%4d:" */
  if (f[0].n < 2 || f[0].p[f[0].n - 1] != ':' ||
      parse_dec(f[0].p, f[0].n - 1, &v) < 0)
    return LINE_MALFORMED;

  memset(s, 0, sizeof(*s));
  if (parse_endpoint(&f[1], family, s->addr, &s->port) < 0 ||
      parse_endpoint(&f[2], family, raddr, &rport) < 0)
    return LINE_MALFORMED;
  if (parse_hex(f[3].p, f[3].n, &st) < 0 || st > 0xFF)
    return LINE_MALFORMED;
  if (parse_hex_pair(&f[4], UINT32_MAX, &txq, &rxq) < 0 ||
      parse_hex_pair(&f[5], UINT64_MAX, &tr, &when) < 0 ||
      parse_hex(f[6].p, f[6].n, &v) < 0)
    return LINE_MALFORMED;
  if (parse_dec(f[7].p, f[7].n, &uid) < 0 || uid > UINT32_MAX)
    return LINE_MALFORMED;
  /* timeout: %8d, signed. */
  if (f[8].n > 0 && f[8].p[0] == '-') {
    if (parse_dec(f[8].p + 1, f[8].n - 1, &v) < 0 || v > (uint64_t)INT_MAX + 1)
      return LINE_MALFORMED;
  } else if (parse_dec(f[8].p, f[8].n, &v) < 0 || v > INT_MAX) {
    return LINE_MALFORMED;
  }
  if (parse_dec(f[9].p, f[9].n, &inode) < 0)
    return LINE_MALFORMED;

  if (proto == IPPROTO_TCP ? st != PO_STATE_LISTEN : st != PO_STATE_CLOSE)
    return LINE_SKIPPED;

  s->inode = inode;
  s->netns = netns;
  s->proto = (uint8_t)proto;
  s->family = (uint8_t)family;
  /* /proc/net does not print IPV6_V6ONLY. */
  s->v6only = family == AF_INET6 ? -1 : 0;
  /* For a LISTEN socket rx_queue is the accept queue (sk_ack_backlog);
   * tx_queue is write_seq - snd_una, not the backlog limit, which only
   * netlink reports. For UDP they are the receive and send queues. */
  s->rqueue = (uint32_t)rxq;
  s->wqueue = proto == IPPROTO_TCP ? PO_QUEUE_UNKNOWN : (uint32_t)txq;
  s->uid = (uint32_t)uid;
  return LINE_KEPT;
}

/* The first line of the file: "  sl  local_address rem_address ...". */
static int is_header(const char *p, size_t n) {
  size_t i = 0;

  while (i < n && is_blank(p[i]))
    i++;
  return n - i >= 3 && p[i] == 's' && p[i + 1] == 'l' && is_blank(p[i + 2]);
}

/* Parses the complete lines in buf. The first one is taken for the header
 * only if at_start (the beginning of the file). */
static int parse_lines(struct po_table *t, const char *buf, size_t len,
                       int proto, int family, uint64_t netns,
                       uint64_t *malformed, int at_start) {
  size_t start_len = t->len, off = 0;
  uint64_t bad = 0;
  int first = at_start;

  while (off < len) {
    const char *line = buf + off;
    const char *nl = memchr(line, '\n', len - off);
    size_t n = nl ? (size_t)(nl - line) : len - off;
    struct po_socket s;
    enum line_result r;

    off += n + !!nl;
    if (first && is_header(line, n)) {
      first = 0;
      continue;
    }
    first = 0;
    r = parse_line(line, n, proto, family, netns, &s);
    if (r == LINE_MALFORMED) {
      bad++;
    } else if (r == LINE_KEPT && po_table_push(t, &s) < 0) {
      t->len = start_len;
      return -ENOMEM;
    }
  }
  if (malformed)
    *malformed += bad;
  return t->len - start_len > INT_MAX ? INT_MAX : (int)(t->len - start_len);
}

int po_table_parse_proc(struct po_table *t, const char *buf, size_t len,
                        int proto, int family, uint64_t netns,
                        uint64_t *malformed) {
  if ((proto != IPPROTO_TCP && proto != IPPROTO_UDP) ||
      (family != AF_INET && family != AF_INET6) || (!buf && len > 0))
    return -EINVAL;
  return parse_lines(t, buf, len, proto, family, netns, malformed, 1);
}

/*
 * Reads one file with read(2) and parses every complete line as it comes,
 * so that the buffer holds some pages however many connections the host
 * has; it grows only when one line does not fit. (procfs returns whole
 * lines per read, but a fixture tree may be a regular file.)
 */
static int read_one(struct po_table *t, int dirfd, const char *name, int proto,
                    int family, uint64_t netns, uint64_t *malformed, char **buf,
                    size_t *cap) {
  size_t have = 0;
  int at_start = 1, fd, ret = 0;

  /* Never blocks: a FIFO or a device in a fixture tree is refused (procfs
   * gives regular files). */
  fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return -errno;
  {
    struct stat st;

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      return -EINVAL;
    }
  }

  for (;;) {
    const char *last_nl;
    size_t done;
    ssize_t n;
    int r;

    if (have == *cap) {
      char *nb;
      if (*cap > SIZE_MAX / 2) {
        ret = -ENOMEM;
        break;
      }
      nb = realloc(*buf, *cap * 2);
      if (!nb) {
        ret = -ENOMEM;
        break;
      }
      *buf = nb;
      *cap *= 2;
    }
    n = read(fd, *buf + have, *cap - have);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      ret = -errno;
      break;
    }
    if (n == 0) {
      /* End of file: what is left is a last line without a newline. */
      r = parse_lines(t, *buf, have, proto, family, netns, malformed, at_start);
      if (r < 0)
        ret = r;
      break;
    }
    have += (size_t)n;
    last_nl = memrchr(*buf, '\n', have);
    if (!last_nl)
      continue;
    done = (size_t)(last_nl - *buf) + 1;
    r = parse_lines(t, *buf, done, proto, family, netns, malformed, at_start);
    if (r < 0) {
      ret = r;
      break;
    }
    at_start = 0;
    memmove(*buf, *buf + done, have - done);
    have -= done;
  }
  close(fd);
  return ret;
}

int po_table_read_proc(struct po_table *t, const char *dir, unsigned mask,
                       uint64_t netns, uint64_t *malformed) {
  static const struct {
    unsigned bit;
    const char *name;
    int proto;
    int family;
  } files[] = {
      {PO_TCP4, "tcp", IPPROTO_TCP, AF_INET},
      {PO_TCP6, "tcp6", IPPROTO_TCP, AF_INET6},
      {PO_UDP4, "udp", IPPROTO_UDP, AF_INET},
      {PO_UDP6, "udp6", IPPROTO_UDP, AF_INET6},
  };
  size_t start_len = t->len, cap = PO_READ_BUF_MIN;
  char *buf;
  int dirfd, ret = 0;

  if (!dir)
    return -EINVAL;
  dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0)
    return -errno;
  buf = malloc(cap);
  if (!buf) {
    close(dirfd);
    return -ENOMEM;
  }
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    if (!(mask & files[i].bit))
      continue;
    ret = read_one(t, dirfd, files[i].name, files[i].proto, files[i].family,
                   netns, malformed, &buf, &cap);
    /* Without IPv6 in the kernel there is no tcp6 or udp6. */
    if (ret == -ENOENT && files[i].family == AF_INET6)
      ret = 0;
    if (ret < 0) {
      t->len = start_len;
      break;
    }
  }
  free(buf);
  close(dirfd);
  return ret;
}
