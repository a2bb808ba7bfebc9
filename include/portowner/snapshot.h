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

/* An inclusive port range; a single port has lo == hi. */
struct po_range {
  uint16_t lo;
  uint16_t hi;
};

struct po_query {
  unsigned mask;                /* PO_TCP4 ...; 0 means PO_PROTO_ALL */
  const struct po_range *ports; /* wanted ports; none means every port */
  size_t nports;
  enum po_source source;        /* where the listener table comes from */
  int all_namespaces;           /* also every other network namespace found
                                   in <proc_root>/<pid>/ns/net */
};

struct po_stats {
  enum po_source source_used; /* PO_SOURCE_NETLINK or PO_SOURCE_PROC */
  uint64_t namespaces;        /* network namespaces read */
  uint64_t malformed;         /* /proc/net lines or netlink messages skipped */
  uint64_t retries;           /* netlink dumps restarted (NLM_F_DUMP_INTR) */
  uint64_t ns_failed;         /* namespaces whose table could not be read */
  struct po_walk_stats walk;  /* the owner walk */
};

struct po_snapshot {
  struct po_table socks;   /* sorted (po_table_sort); owner_first/count set */
  struct po_owner *owners; /* grouped by socket, then by pid, then fd */
  size_t nowners;
  struct po_proc *procs;   /* one per distinct owner pid, sorted by pid */
  size_t nprocs;
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

/*
 * Takes a snapshot of the listening sockets that match q, with their owners
 * and the owners' process details, into *s (which it initialises; free with
 * po_snapshot_free even on failure).
 * With PO_SOURCE_AUTO, netlink is used and /proc/net is read instead when
 * netlink is not available (EOPNOTSUPP, EPROTONOSUPPORT, EACCES, EPERM).
 * Returns 0, or -errno when the caller's own listener table cannot be read
 * or memory runs out. Other namespaces that cannot be read are counted in
 * stats.ns_failed.
 */
int po_snapshot_take(struct po_ctx *ctx, const struct po_query *q,
                     struct po_snapshot *s);
void po_snapshot_free(struct po_snapshot *s);

/* 1 when port is in one of the ranges (or there are none), else 0. */
int po_ranges_match(const struct po_range *r, size_t n, uint16_t port);

/* Returns the PO_TCP4... bit of a socket. */
unsigned po_socket_bit(const struct po_socket *s);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_SNAPSHOT_H */
