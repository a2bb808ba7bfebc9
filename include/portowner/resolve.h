/*
 * portowner: the owner resolver.
 *
 * Walks <proc_root>/<pid>/fd with one readlinkat() per fd on the directory's
 * descriptor (d_type from readdir, never stat; never /proc/PID/task) and
 * matches "socket:[INODE]" links against a hash set of the wanted inodes
 * only. Every owner of a socket is kept: forked workers share one socket and
 * a socket can have hundreds of owners.
 *
 * Contract: 0 or a negative errno value. Nothing here logs or keeps globals.
 */
#ifndef PORTOWNER_RESOLVE_H
#define PORTOWNER_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "portowner/table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One fd of one process that holds a wanted socket. */
struct po_owner {
  pid_t pid;
  int fd;
  size_t sock; /* index of the socket in the table that was resolved */
  size_t proc; /* index into po_snapshot.procs; set by po_snapshot_take() */
};

struct po_owners {
  struct po_owner *v;
  size_t len;
  size_t cap;
};

void po_owners_free(struct po_owners *o);

/* How the owners of one read were found. */
enum po_walk_kind {
  PO_WALK_NONE = 0,    /* no wanted socket: /proc was not read */
  PO_WALK_FULL,        /* every process's fds were read */
  PO_WALK_INCREMENTAL, /* only new processes' fds, and the remembered
                          owners' fds once each */
};

/* Why a read was a full walk (PO_REASON_NONE for the others). */
enum po_walk_reason {
  PO_REASON_NONE = 0,
  PO_REASON_FIRST,     /* nothing remembered yet (first read, or after an
                          error or a read with no wanted socket) */
  PO_REASON_ASKED,     /* the caller asked for it (po_ctx_request_full_scan,
                          or incremental reads are off) */
  PO_REASON_INTERVAL,  /* FullScanInterval elapsed since the last one */
  PO_REASON_NEW_INODE, /* a wanted socket that the last read did not want */
  PO_REASON_VERIFY,    /* a remembered owner's fd holds another thing now */
  PO_REASON_UNOWNED,   /* a socket that had owners has none we know of */
};

/* What one walk saw. */
struct po_walk_stats {
  uint64_t procs;    /* process directories walked (fds read) */
  uint64_t fds;      /* fd entries read (one readlink each) */
  uint64_t denied;   /* processes whose fds could not be read for lack of
                        privilege (EACCES/EPERM opening the fd directory or
                        reading its links): their sockets may look unowned */
  uint64_t vanished; /* processes that exited during the walk */
  /* Set by po_resolver_resolve() only: */
  uint64_t listed;   /* processes listed in proc_root */
  uint64_t verified; /* remembered owner fds read again (incremental) */
  enum po_walk_kind kind;
  enum po_walk_reason reason; /* of a full walk */
};

/* Hash set of wanted inodes and the walk's scratch space. */
struct po_resolver;

/* Returns a new resolver, or NULL with errno set. */
struct po_resolver *po_resolver_new(void);
void po_resolver_free(struct po_resolver *r);

/*
 * Finds the owners of the sockets in t: walks <proc_root>, appending to out
 * one po_owner per (pid, fd) whose link is "socket:[INODE]" with INODE the
 * inode of a socket in t (sockets with inode 0 are never matched).
 * owner.sock is the socket's index in t. A process that exits mid-walk is
 * skipped and counted as vanished; a process whose fds cannot be read for
 * lack of privilege is counted as denied. out is appended to, unsorted.
 * A table with no inode but 0 returns 0 without reading proc_root.
 * Returns 0, -EINVAL (NULL argument), -ENOMEM, -EMFILE/-ENFILE (out of
 * descriptors: the walk would silently miss owners), or -errno when
 * proc_root itself cannot be read.
 */
int po_resolver_walk(struct po_resolver *r, const char *proc_root,
                     const struct po_table *t, struct po_owners *out,
                     struct po_walk_stats *st);

/*
 * Incremental resolution. po_resolver_resolve() gives the same owners as
 * po_resolver_walk() (same contract, same out and st), but remembers, from
 * one call to the next, the processes it has read (pid and identity) and
 * the (pid, fd) of every owner of a wanted socket. A later call, unless
 * full_reason asks for a full walk:
 *   - lists proc_root once;
 *   - reads the fds of the processes it has not read before only (a pid
 *     whose identity changed is a new process);
 *   - reads each remembered owner's fd again (one readlink) and keeps it
 *     when it still holds the same socket;
 * and falls back to a full walk, in the same call, when a wanted socket was
 * not wanted by the previous call (PO_REASON_NEW_INODE), a remembered fd of
 * a live process holds something else now (PO_REASON_VERIFY), or a socket
 * that had owners has none left that it knows (PO_REASON_UNOWNED).
 *
 * Identity of a process: on procfs, the inode number of <proc_root>/<pid>
 * as getdents64() reports it, which costs no system call: procfs gives the
 * directory of a new process a new inode (pid_revalidate() drops the dentry
 * of a dead task; proc_pid_instantiate() allocates a new inode bound to the
 * new struct pid), numbered from the kernel's 32-bit get_next_ino()
 * counter. A reused pid with an equal number needs that counter, which
 * every new socket and pipe also advances, to come round to exactly the old
 * value: as unlikely as the hole of the classic identity, the start time
 * (field 22 of stat, in clock ticks: equal for a pid reused within one
 * tick). A dentry the kernel evicted gives the same process a new number: it
 * is read again, which costs time, not correctness. On any other
 * file system (fixture trees, where a removed directory's inode number is
 * reused at once) the identity is the start time from <pid>/stat.
 *
 * The one thing an incremental call cannot see: a descriptor of a socket
 * that was wanted at the previous call arriving in a process that was
 * already read, without a new process or a new socket: passed over
 * SCM_RIGHTS or taken with pidfd_getfd(), or dup()ed by a process that
 * already owned it (the process is reported; the extra fd number is not).
 * The next full walk finds it. A caller bounds that by asking for a full
 * walk at an interval (po_ctx_set_full_scan_interval()).
 *
 * Memory grows with the processes and the owners, never with the fds: no
 * allocation per fd.
 *
 * full_reason: PO_REASON_NONE for an incremental call when possible, or the
 * reason to walk every process. On failure the memory is forgotten and the
 * next call is a full walk. A table with no inode but 0 forgets too and
 * returns 0 without reading proc_root (st->kind PO_WALK_NONE).
 * Returns as po_resolver_walk().
 */
int po_resolver_resolve(struct po_resolver *r, const char *proc_root,
                        const struct po_table *t,
                        enum po_walk_reason full_reason, struct po_owners *out,
                        struct po_walk_stats *st);

/* Forgets what po_resolver_resolve() remembers: the next call is a full
 * walk (PO_REASON_FIRST). */
void po_resolver_forget(struct po_resolver *r);

/*
 * Parses a readlink() result of len bytes (not NUL-terminated): "socket:[N]".
 * Returns 1 and sets *inode when it is one, 0 when it is not.
 */
int po_socket_link_parse(const char *link, size_t len, uint64_t *inode);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_RESOLVE_H */
