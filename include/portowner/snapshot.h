/*
 * portowner: one answer to "which processes own the listening sockets on
 * these ports", built from the listener table, the owner resolver and the
 * process details. This is what portowner-dump prints and what the collectd
 * plugin reads every interval.
 *
 * Contract: 0 or a negative errno value. Nothing here logs or keeps globals:
 * all state lives in the po_ctx the caller passes.
 */
#ifndef PORTOWNER_SNAPSHOT_H
#define PORTOWNER_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "portowner/proc.h"
#include "portowner/resolve.h"
#include "portowner/table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* struct po_range (an inclusive port range) is in table.h. */

/*
 * Which network namespaces a query reads besides the caller's own (found in
 * <proc_root>/<pid>/ns/net), and a watch counts (AllNamespaces).
 * A namespace is trusted when its owning user namespace (NS_GET_USERNS) is
 * the initial one: the user namespace of <proc_root>/1/ns/user, the init
 * of the system proc_root shows, or the caller's own when PID 1's cannot be
 * read (no ptrace access to it). Only a process with CAP_SYS_ADMIN there
 * (root) makes such a namespace; any user makes one owned by a user
 * namespace of its own (unshare -rn), and can bind any port in it. A
 * namespace whose owner cannot be asked (the ioctl fails: an old kernel, no
 * permission) is not trusted. The caller's own namespace always counts.
 */
enum po_ns_scope {
  PO_NS_OWN = 0,     /* the caller's own only */
  PO_NS_TRUSTED = 1, /* and the trusted others; untrusted ones are counted
                        (stats.ns_untrusted), never read */
  PO_NS_ALL = 2,     /* and every other one, trusted or not */
};

struct po_query {
  unsigned mask;                /* PO_TCP4 ...; 0 means PO_PROTO_ALL */
  const struct po_range *ports; /* wanted ports; none means every port */
  size_t nports;
  enum po_source source; /* where the listener table comes from */
  int all_namespaces;    /* an enum po_ns_scope */
};

/* A network namespace a snapshot met, and who owns it. */
struct po_netns {
  uint64_t netns;    /* its inode (a socket's netns) */
  uint64_t userns;   /* inode of its owning user namespace; 0 unknown */
  int64_t owner_uid; /* that user namespace's owner (NS_GET_OWNER_UID), in
                        the caller's user namespace; -1 unknown */
  int own;           /* the caller's own: always counts */
  int trusted;       /* owned by the initial user namespace (po_ns_scope) */
  int read;          /* its sockets are in the snapshot */
};

struct po_stats {
  enum po_source source_used; /* PO_SOURCE_NETLINK or PO_SOURCE_PROC */
  uint64_t namespaces;        /* network namespaces read */
  uint64_t malformed;         /* /proc/net lines or netlink messages skipped */
  uint64_t retries;           /* netlink dumps restarted (NLM_F_DUMP_INTR) */
  uint64_t ns_failed;         /* namespaces whose table could not be read */
  uint64_t ns_untrusted;      /* other namespaces not trusted (po_ns_scope):
                                 not read unless the query is PO_NS_ALL */
  uint64_t ns_owner_unknown;  /* of those, the ones whose owning user
                                 namespace could not be asked */
  struct po_walk_stats walk;  /* the owner walk: walk.kind tells full or
                                 incremental, walk.procs and walk.fds the
                                 processes and fds read */
  uint64_t unowned_foreign;   /* matching sockets of another uid than the
                                 caller's effective uid with no owner found:
                                 their holders may be hidden from the caller
                                 (hidepid) or its fds unreadable */
  uint64_t scan_ns;           /* time spent finding the owners and reading
                                 their details (CLOCK_MONOTONIC) */
};

struct po_snapshot {
  uint64_t netns;          /* the network namespace read as the caller's
                              own: the calling thread's (po_netns_self()),
                              0 when unknown. A socket of it has this
                              netns; AllNamespaces adds sockets of others */
  struct po_table socks;   /* sorted (po_table_sort); owner_first/count set */
  struct po_owner *owners; /* grouped by socket, then by pid, then fd;
                              tid set for an owner found in a task's own
                              fd table */
  size_t nowners;
  struct po_proc *procs; /* one per distinct owner pid, sorted by pid */
  size_t nprocs;
  /* Per socket of socks (same index): the path of its cgroup_id
   * (cgroupid.h, malloc'd), NULL when unknown; the array is NULL when none
   * is known. */
  char **sock_cgroups;
  struct po_netns *nsv; /* the caller's own namespace (when its inode is
                           known) and, with q->all_namespaces, every other
                           one found, read or not; sorted by netns */
  size_t nns;
  struct po_stats stats;
};

struct po_ctx;

/*
 * A context for repeated snapshots under proc_root ("/proc" when NULL).
 * Keeps its netlink socket and scratch memory between calls.
 * Returns NULL with errno set on failure.
 */
struct po_ctx *po_ctx_new(const char *proc_root);
void po_ctx_free(struct po_ctx *ctx);
const char *po_ctx_proc_root(const struct po_ctx *ctx);

/* FullScanInterval's default, in seconds: see po_ctx_set_full_scan_interval
 * and docs/performance.md. */
#define PO_FULL_SCAN_INTERVAL_DEFAULT 60.0

/*
 * Incremental reads. A context remembers, from one po_snapshot_take() to
 * the next, which processes it has read and which processes owned the
 * wanted sockets (po_resolver_resolve() in resolve.h), and reads only what
 * may have changed; its first read is always a full walk. It walks every
 * process again when a new wanted socket appears (rate-limited: see
 * po_ctx_set_new_socket_interval()), when a remembered owner's
 * fd holds something else, when a socket that had owners has none left
 * that it knows, after po_ctx_request_full_scan(), and when seconds have
 * passed since the last full walk (CLOCK_BOOTTIME: a suspend counts). The
 * one thing an incremental read cannot see, a socket's fd passed over
 * SCM_RIGHTS (or pidfd_getfd, or dup) into a process that was already read,
 * is found by that full walk: seconds bounds how long it goes unseen.
 * seconds is also the look interval of the resolver: a socket with no
 * owner after the walk is looked for in the fd tables of tasks (resolve.h,
 * "Owners hidden from /proc/PID/fd") at most once in seconds.
 * seconds == 0 makes every read a full walk (as one po_snapshot_take() of a
 * new context always is: portowner-dump) with a look whenever a socket has
 * no owner. Default
 * PO_FULL_SCAN_INTERVAL_DEFAULT. Returns 0, -EINVAL (negative, NaN).
 */
int po_ctx_set_full_scan_interval(struct po_ctx *ctx, double seconds);
double po_ctx_full_scan_interval(const struct po_ctx *ctx);

/*
 * Full walks for new sockets are rate-limited (resolve.h): after one, the
 * next comes a sixth of FullScanInterval later at the earliest, and
 * PO_NEW_SOCKET_WALK_MAX seconds at most (10 s at the
 * default 60 s); po_ctx_set_full_scan_interval() sets it so. Meanwhile a
 * new socket has the owners found among new processes (those read in full
 * by that read: a new server's own listener is named at once), is counted
 * in stats.walk.deferred, and waits for the next allowed walk; one held
 * only by a process read before shows no owner until then (count-unowned;
 * ExpectUser judges it by the socket's uid, as any socket with no owner).
 * A listener that is gone is seen at once: the listener table is read in
 * full every read. po_ctx_set_new_socket_interval() sets it after
 * po_ctx_set_full_scan_interval(): 0 walks at every new socket (no
 * limit). Returns 0, -EINVAL (negative, NaN).
 */
#define PO_NEW_SOCKET_WALK_MAX 10.0
int po_ctx_set_new_socket_interval(struct po_ctx *ctx, double seconds);
double po_ctx_new_socket_interval(const struct po_ctx *ctx);

/* Makes the next po_snapshot_take() of ctx a full walk. */
void po_ctx_request_full_scan(struct po_ctx *ctx);

/* Attribution (on by default): the owners' cgroups (<pid>/cgroup) and the
 * sockets' (their cgroup ids) are read. Off, both stay empty: what the
 * benchmark compares against (make bench: attribution on / off). */
void po_ctx_set_attribution(struct po_ctx *ctx, int on);

/* The owner walk (resolve.h "Which walk"): po_ctx_use_bpf() switches to
 * the walk in the kernel (po_resolver_use_bpf(): 0, or -errno with *why
 * set, the readlink walk kept); po_ctx_resolver() says which is in use.
 * With BPF every read is a full walk: FullScanInterval does not apply. */
int po_ctx_use_bpf(struct po_ctx *ctx, const char **why);
enum po_resolver_kind po_ctx_resolver(const struct po_ctx *ctx);
/* The kinds of BPF walk allowed (po_bpf_set_walks(), resolve_bpf.h), for
 * the benchmark and the tests. */
void po_ctx_set_bpf_walks(struct po_ctx *ctx, unsigned mask);

/*
 * Takes a snapshot of the listening sockets that match q, with their owners
 * and the owners' process details, into *s (which it initialises; free with
 * po_snapshot_free even on failure). s->netns is the namespace it read as
 * its own: what po_watchset_eval() takes as own_netns.
 * With PO_SOURCE_AUTO, netlink is used and /proc/net is read instead when
 * netlink is not available (EOPNOTSUPP, EPROTONOSUPPORT, EACCES, EPERM).
 * Returns 0, or -errno when the caller's own listener table cannot be read
 * or memory runs out. Other namespaces that cannot be read are counted in
 * stats.ns_failed.
 */
int po_snapshot_take(struct po_ctx *ctx, const struct po_query *q,
                     struct po_snapshot *s);
void po_snapshot_free(struct po_snapshot *s);

/*
 * The inode of the calling thread's network namespace as proc_root shows it
 * (<proc_root>/thread-self/ns/net, else self/ns/net): what
 * po_snapshot_take() reads as its own and leaves in s->netns. Returns 0 or
 * -errno.
 */
int po_netns_self(const char *proc_root, uint64_t *netns);

/* The entry of s->nsv for netns, NULL when s did not meet it. */
const struct po_netns *po_snapshot_netns(const struct po_snapshot *s,
                                         uint64_t netns);

/* 1 when port is in one of the ranges (or there are none), else 0. */
int po_ranges_match(const struct po_range *r, size_t n, uint16_t port);

/* Returns the PO_TCP4... bit of a socket. */
unsigned po_socket_bit(const struct po_socket *s);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_SNAPSHOT_H */
