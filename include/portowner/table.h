/*
 * portowner: the listener table.
 *
 * Listening sockets of one network namespace: TCP sockets in LISTEN and UDP
 * sockets that are bound and unconnected (state 07, CLOSE), IPv4 and IPv6.
 * Read through netlink SOCK_DIAG_BY_FAMILY (inet_diag_req_v2) or, as a
 * fallback, from the text of /proc/net/{tcp,tcp6,udp,udp6}.
 *
 * The parsers take a buffer, never a socket or a file, so that tests can feed
 * them recorded dumps and malformed input. A malformed line or message is
 * skipped and counted, never fatal.
 *
 * Contract: functions return 0 (or a count where stated) on success and a
 * negative errno value on failure. Nothing here logs or keeps globals.
 */
#ifndef PORTOWNER_TABLE_H
#define PORTOWNER_TABLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An inclusive port range; a single port has lo == hi. */
struct po_range {
  uint16_t lo;
  uint16_t hi;
};

/* Protocol/family selection bits, used by queries and by the config. */
#define PO_TCP4 (1u << 0)
#define PO_TCP6 (1u << 1)
#define PO_UDP4 (1u << 2)
#define PO_UDP6 (1u << 3)
#define PO_TCP (PO_TCP4 | PO_TCP6)
#define PO_UDP (PO_UDP4 | PO_UDP6)
#define PO_PROTO_ALL (PO_TCP | PO_UDP)

/* A queue length the source cannot tell (the accept queue's limit is not in
 * /proc/net/tcp). */
#define PO_QUEUE_UNKNOWN UINT32_MAX

enum po_source {
  PO_SOURCE_AUTO = 0, /* netlink, /proc/net when netlink is not available */
  PO_SOURCE_NETLINK,
  PO_SOURCE_PROC,
};

struct po_socket {
  uint64_t inode;   /* socket inode; 0 has no owner */
  uint64_t netns;   /* inode of its network namespace; 0 when unknown */
  uint8_t addr[16]; /* network byte order; AF_INET uses the first 4 bytes */
  uint16_t port;    /* host byte order */
  uint8_t proto;    /* IPPROTO_TCP or IPPROTO_UDP */
  uint8_t family;   /* AF_INET or AF_INET6 */
  int8_t v6only;    /* AF_INET6: 1 or 0; -1 when the source cannot tell */
  uint32_t rqueue;  /* TCP LISTEN: accept queue now; UDP: receive queue */
  uint32_t wqueue;  /* TCP LISTEN: accept queue limit (backlog), or
                       PO_QUEUE_UNKNOWN; UDP: send queue */
  uint32_t uid;     /* owner uid of the socket as the kernel reports it */
  /* netlink: INET_DIAG_CGROUP_ID (Linux 5.8+), the v2 cgroup that created
   * the socket (the inode of its directory in the cgroup2 mount); 0 when
   * unknown (/proc/net, an older kernel). */
  uint64_t cgroup_id;
  /* Filled by po_snapshot_take(): this socket's owners are
   * snapshot->owners[owner_first .. owner_first + owner_count). */
  size_t owner_first;
  size_t owner_count;
  /* Set by po_snapshot_take(): 1 when the socket is new since the last
   * full walk and that walk was put off (rate-limited, resolve.h): the
   * owners found are those of new processes only, others may hold it. */
  uint8_t owner_pending;
};

/* A growable array of sockets. Zero-initialise before first use. */
struct po_table {
  struct po_socket *v;
  size_t len;
  size_t cap;
};

/* Appends a copy of *s. Returns 0 or -ENOMEM. */
int po_table_push(struct po_table *t, const struct po_socket *s);
/* Empties the table, keeping its memory. */
void po_table_clear(struct po_table *t);
/* Frees the table's memory and zeroes it. */
void po_table_free(struct po_table *t);
/* Sorts by protocol, family, port, address, inode (the output order). */
void po_table_sort(struct po_table *t);

/*
 * Parses the text of one /proc/net/{tcp,tcp6,udp,udp6} file (header line
 * included). proto is IPPROTO_TCP or IPPROTO_UDP and family AF_INET or
 * AF_INET6: which file it is. Keeps TCP sockets in state 0A (LISTEN) and UDP
 * sockets in state 07 (CLOSE); their netns is set to netns and v6only to -1.
 * Lines that do not parse are skipped and added to *malformed.
 * Returns the number of sockets appended, or -ENOMEM, -EINVAL (bad
 * proto/family).
 */
int po_table_parse_proc(struct po_table *t, const char *buf, size_t len,
                        int proto, int family, uint64_t netns,
                        uint64_t *malformed);

/* State of one SOCK_DIAG dump as its replies are parsed. */
struct po_diag_dump {
  uint32_t seq;       /* sequence number of the request */
  uint32_t portid;    /* our netlink port id, 0 to accept any */
  uint64_t netns;     /* netns inode to set on the sockets */
  int proto;          /* IPPROTO_TCP or IPPROTO_UDP of the request */
  int done;           /* set on NLMSG_DONE */
  int interrupted;    /* set when a message carries NLM_F_DUMP_INTR */
  uint64_t malformed; /* messages skipped: short, wrong length, other seq */
};

/*
 * Parses one buffer of netlink messages answering a SOCK_DIAG_BY_FAMILY dump
 * (as returned by one recv()). Appends TCP sockets in LISTEN and UDP sockets
 * in CLOSE state; sets d->done on NLMSG_DONE and d->interrupted when the
 * kernel flagged the dump as inconsistent (the caller dumps again). Messages
 * of another sequence number or with bad lengths are counted in
 * d->malformed and skipped.
 * Returns 0, -ENOMEM, the error (-errno) of an NLMSG_ERROR message or of
 * the NLMSG_DONE that ends a dump which failed part way, or -EPROTO for an
 * NLMSG_DONE whose error is no errno (an NLMSG_ERROR with one is counted in
 * d->malformed and skipped).
 */
int po_table_parse_diag(struct po_table *t, struct po_diag_dump *d,
                        const void *buf, size_t len);

/*
 * Builds the SOCK_DIAG_BY_FAMILY dump request for family/proto into buf
 * (at least 128 bytes). Returns its length, or -EINVAL / -ENOSPC.
 */
int po_diag_request(void *buf, size_t size, int family, int proto,
                    uint32_t seq);

/* Most port ranges (after merging overlapping and adjacent ones) that the
 * kernel-side port filter carries; beyond that the kernel is not asked to
 * filter and user space alone does it. */
#define PO_DIAG_FILTER_MAX 64

/*
 * Builds into buf the INET_DIAG_REQ_BYTECODE program that accepts a socket
 * whose local port is in one of the n ranges: for each range
 * "sport >= lo && sport <= hi" (INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE), the
 * ranges ORed with INET_DIAG_BC_JMP. Ranges are sorted and merged first.
 * Returns the program's length; 0 when no program is needed (n is 0, or a
 * range covers every port) or when the merged ranges are more than
 * PO_DIAG_FILTER_MAX (user space filters alone); -EINVAL (buf or r NULL
 * with n > 0, a range with lo > hi); -ENOSPC (size too small: 20 bytes per
 * range are always enough).
 */
int po_diag_bytecode(void *buf, size_t size, const struct po_range *r,
                     size_t n);

/*
 * As po_diag_request(), with the port filter of po_diag_bytecode() attached
 * as an INET_DIAG_REQ_BYTECODE attribute when there is one. buf needs 128
 * bytes plus 20 per range. Returns the request's length, -EINVAL, -ENOSPC.
 */
int po_diag_request_ports(void *buf, size_t size, int family, int proto,
                          uint32_t seq, const struct po_range *r, size_t n);

/*
 * Dumps the listening sockets of the netlink socket's namespace (nl_fd: an
 * AF_NETLINK/NETLINK_SOCK_DIAG socket) for the families and protocols in
 * mask (PO_TCP4...), appending to t. Dumps again, a bounded number of times,
 * when the kernel flags a dump as interrupted; *retries counts them.
 * *malformed counts skipped messages.
 * Returns 0 or -errno (EPROTONOSUPPORT, EOPNOTSUPP, EACCES: netlink not
 * available for this; EINTR: still inconsistent after the retries).
 */
int po_table_dump_netlink(struct po_table *t, int nl_fd, unsigned mask,
                          uint64_t netns, uint64_t *malformed,
                          uint64_t *retries);

/*
 * As po_table_dump_netlink(), asking the kernel to send only the sockets
 * whose local port is in one of the n ranges (po_diag_bytecode(); n == 0:
 * every port). The kernel filter only saves work: the caller still filters
 * the table itself, and a kernel that refuses the program (EINVAL) is asked
 * again without it. Returns as po_table_dump_netlink(), and -EINVAL for a
 * bad range (lo > hi, or r NULL with n > 0).
 */
int po_table_dump_netlink_ports(struct po_table *t, int nl_fd, unsigned mask,
                                uint64_t netns, const struct po_range *r,
                                size_t n, uint64_t *malformed,
                                uint64_t *retries);

/*
 * Reads <dir>/tcp, tcp6, udp, udp6 (dir is a /proc/net directory, such as
 * /proc/net or /proc/1234/net) for the families and protocols in mask,
 * appending to t. A missing file (no IPv6 in the kernel) is not an error.
 * Files are opened O_NONBLOCK and read only when they are regular files, so
 * that a FIFO in a fixture tree cannot block the read.
 * Returns 0, -EINVAL (a file that is not a regular file) or -errno of the
 * first file that cannot be read.
 */
int po_table_read_proc(struct po_table *t, const char *dir, unsigned mask,
                       uint64_t netns, uint64_t *malformed);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_TABLE_H */
