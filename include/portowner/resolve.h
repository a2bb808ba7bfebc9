/*
 * portowner: the owner resolver.
 *
 * Walks <proc_root>/<pid>/fd with one readlinkat() per fd on the directory's
 * descriptor (d_type from readdir, never stat) and matches "socket:[INODE]"
 * links against a hash set of the wanted inodes only. Every owner of a
 * socket is kept: forked workers share one socket and a socket can have
 * hundreds of owners. <proc_root>/<pid>/task is read only for a socket that
 * no /proc/PID/fd holds ("Owners hidden from /proc/PID/fd" below).
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

/* How many fd numbers an owner keeps (its fd count has them all). */
#define PO_OWNER_FDS 16

/* One process (or one task's own fd table) that holds a wanted socket: one
 * record however many of its fds hold it (a process that dup()s a socket
 * 19,000 times is one owner with nfds 19001, not 19,001 owners). */
struct po_owner {
  pid_t pid;     /* the process: its thread group id */
  int fd;        /* the lowest fd number holding the socket, in the table
                    the owner was found in: the one an incremental read
                    verifies (one readlink) */
  pid_t tid;     /* 0: found in <pid>/fd; else the task whose own fd table
                    (<pid>/task/<tid>/fd) holds the socket (see "Owners
                    hidden from /proc/PID/fd") */
  size_t sock;   /* index of the socket in the table that was resolved */
  size_t proc;   /* index into po_snapshot.procs; set by po_snapshot_take() */
  uint32_t nfds; /* fds of that table holding the socket, >= 1 */
  int fds[PO_OWNER_FDS]; /* the lowest MIN(nfds, PO_OWNER_FDS) of them,
                            ascending: fds[0] == fd. An incremental read
                            gives them as the last read of the process
                            in full saw them, less those it found closed */
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
  PO_REASON_BPF,       /* the BPF resolver: every read is a full walk */
};

/* What one walk saw. */
#define PO_WALK_DENIED_PIDS 8
struct po_walk_stats {
  uint64_t procs;    /* process directories walked (fds read) */
  uint64_t fds;      /* fd entries read (one readlink each), a look's too */
  uint64_t denied;   /* processes whose fds could not be read for lack of
                        privilege (EACCES/EPERM opening the fd directory or
                        reading its links): their sockets may look unowned */
  uint64_t vanished; /* processes that exited during the walk */
  /* The first PO_WALK_DENIED_PIDS distinct pids counted in denied (the
   * walk's order), denied_pids of them: the warning names them. */
  pid_t denied_pid[PO_WALK_DENIED_PIDS];
  unsigned denied_pids;
  /* Set by po_resolver_resolve() only: */
  uint64_t listed;   /* processes listed in proc_root */
  uint64_t verified; /* remembered owner fds read again (incremental): one
                        per owner, whatever its number of fds */
  uint64_t deferred; /* wanted sockets new since the last full walk that
                        wait for the next walk allowed for new sockets
                        (po_resolver_set_new_walk_interval()); 0 on a
                        full walk */
  /* Looks in task fd tables (owners hidden from /proc/PID/fd): */
  uint64_t looks;         /* looks made (at most one per call) */
  uint64_t tasks;         /* tasks a look examined (the leaders aside) */
  uint64_t tables;        /* task fd tables a look read */
  uint64_t tasks_skipped; /* tasks of processes of more than one thread that
                             a look left out: its budget was spent, or the
                             kernel could not tell their tables apart */
  /* The BPF resolver (resolve_bpf.h): */
  uint64_t bpf_tables; /* 1 for a walk of fd tables (no file touched), 0
                          for a walk of files */
  enum po_walk_kind kind;
  enum po_walk_reason reason; /* of a full walk */
};

/* Hash set of wanted inodes and the walk's scratch space. */
struct po_resolver;

/* Returns a new resolver, or NULL with errno set. */
struct po_resolver *po_resolver_new(void);
void po_resolver_free(struct po_resolver *r);

/*
 * Owners hidden from /proc/PID/fd. A task's fd table can differ from its
 * leader's, and /proc/PID/fd shows the leader's only: a leader that called
 * pthread_exit() is a zombie with an empty /proc/PID/fd while its threads
 * keep the fds, and a thread that called unshare(CLONE_FILES) has a table
 * of its own. So a socket that has no owner after the walk is looked for in
 * the tables of tasks ("a look"), by this rule:
 *   - a look is made only when a wanted socket has no owner after the walk:
 *     a read where every wanted socket has an owner costs nothing more (no
 *     system call, no clock read);
 *   - it lists proc_root again and fstatat()s <pid>/task of each process:
 *     procfs gives its number of threads as st_nlink - 2, so a process of
 *     one thread (most processes) costs that one call and nothing else;
 *   - of a process with more threads it lists <pid>/task and, for each task
 *     but the leader, asks the kernel whether the task's table is the
 *     leader's (kcmp(2) KCMP_FILES: one call; a zombie leader has no table,
 *     so it differs from every live thread's) or that of a task of the same
 *     process read in this look (up to PO_LOOK_TABLES_KEPT of them, one
 *     call each); only a table not seen yet is read (<pid>/task/<tid>/fd,
 *     one readlink per fd), and it is matched against the sockets with no
 *     owner only (a copy made by unshare(CLONE_FILES) holds the leader's
 *     sockets too);
 *   - a look makes at most PO_LOOK_BUDGET system calls beyond the one
 *     fstatat() per process (each kcmp, each directory opened, each
 *     getdents64() of a task list and each fd read counts one; a hostile
 *     user's thousands of threads, each with a table of its own, cost that
 *     and no more): once it is spent, the tasks left are counted in
 *     tasks_skipped (their number comes from the same fstatat()), and the
 *     next look starts after the last process examined (procfs lists
 *     processes by pid) and ends with that one, so that a process of many
 *     threads cannot hide the others for ever;
 *   - a process whose tasks kcmp(2) refuses (no ptrace access: its fds are
 *     refused as well) is left at that;
 *   - kcmp(2) addresses tasks by pid in our own pid namespace: it is used
 *     only when proc_root is procfs of that namespace (<proc_root>/self is
 *     our pid) and the kernel lets us (CONFIG_KCMP, no seccomp filter
 *     refusing it: a kcmp of ourselves is tried once per look). Without it
 *     only the zombie leader is told apart: the first task's table is read
 *     when the leader's <pid>/fd lists nothing, and the other tasks are
 *     counted in tasks_skipped. On a file system other than procfs (fixture
 *     trees) two tasks share a table when their fd directories are the same
 *     directory (device and inode: a symlink to ../../fd).
 * An owner found so is the process (pid: the thread group id; its details
 * are <proc_root>/<pid>'s) with the fd number in that task's table, and tid
 * set. A look looks for every socket with no owner at that point at once.
 *
 * po_resolver_walk() has no memory: it looks on every call that leaves a
 * socket without an owner. po_resolver_resolve() makes a look only when one
 * of the sockets left without an owner was never looked for or not within
 * the look interval (po_resolver_set_look_interval(); the time of the last
 * look is kept per wanted socket, on CLOCK_BOOTTIME), so at most one look
 * per call and one per interval per socket. It remembers an owner found in
 * a task like any other and, on every later call (full walk or
 * incremental) where its socket has no other owner, reads
 * <pid>/task/<tid>/fd/<fd> again (one readlink): the owner is kept while
 * that fd holds the socket, and dropped, not looked for again before the
 * interval, when it does not.
 */
#define PO_LOOK_BUDGET 65536
#define PO_LOOK_TABLES_KEPT 4
/* The look interval's default (the plugin sets it to FullScanInterval). */
#define PO_LOOK_INTERVAL_DEFAULT_NS UINT64_C(60000000000)

/*
 * Finds the owners of the sockets in t: walks <proc_root>, appending to out
 * one po_owner per (pid, socket) (per (pid, tid, socket) for a task's own
 * table) for the fds whose link is "socket:[INODE]" with INODE the inode of
 * a socket in t (sockets with inode 0 are never matched); nfds counts those
 * fds and fds[] keeps the lowest PO_OWNER_FDS of them.
 * owner.sock is the socket's index in t. A process that exits mid-walk is
 * skipped and counted as vanished; a process whose fds cannot be read for
 * lack of privilege is counted as denied. A socket left without an owner
 * is looked for in task fd tables (above). out is appended to, unsorted.
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
 * po_resolver_walk() (same contract, same out and st; owners hidden from
 * /proc/PID/fd are looked for on the look interval, above), but remembers, from
 * one call to the next, the processes it has read (pid and identity) and
 * every owner of a wanted socket (pid, tid, its fd numbers). A later call,
 * unless full_reason asks for a full walk:
 *   - lists proc_root once;
 *   - reads the fds of the processes it has not read before only (a pid
 *     whose identity changed is a new process);
 *   - reads each remembered owner's lowest fd again (one readlink per
 *     owner, not per fd) and keeps the owner when it still holds the same
 *     socket; when it does not, the owner's next remembered fds are tried
 *     (up to PO_OWNER_FDS readlinks);
 * and falls back to a full walk, in the same call, when a wanted socket was
 * not wanted by the previous call (PO_REASON_NEW_INODE: rate-limited,
 * below), a remembered owner of a live process holds it on none of its
 * remembered fds now (PO_REASON_VERIFY), or a socket that had owners has
 * none left that it knows (PO_REASON_UNOWNED).
 *
 * Full walks for new sockets are rate-limited: after one, the next is
 * allowed only when po_resolver_set_new_walk_interval()'s interval has
 * passed (CLOCK_BOOTTIME; the first is always allowed). A call that meets
 * a new socket before that is incremental: the socket gets the owners found
 * in the processes read in full by that call (new processes), is "pending"
 * (counted in st->deferred) and is looked for by the next full walk of any
 * reason, which a pending socket asks for (PO_REASON_NEW_INODE) as soon as
 * it is allowed. A pending socket is not looked for in task tables and
 * never causes PO_REASON_UNOWNED. The listener table is read in full every
 * call: a socket that is gone is gone at once, whatever the walks.
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
 * Memory grows with the processes, the wanted sockets and the owners (one
 * record per owner, of PO_OWNER_FDS fd numbers at most), never with the
 * fds: nothing is allocated per fd (a look adds the list of one process's
 * tasks, at most its budget of them).
 *
 * full_reason: PO_REASON_NONE for an incremental call when possible, or the
 * reason to walk every process. On failure the memory is forgotten and the
 * next call is a full walk. A table with no inode but 0 returns 0 without
 * reading proc_root (st->kind PO_WALK_NONE) and keeps the memory of the
 * last call that wanted sockets: the next call compares with that one (so
 * a watched listener that comes and goes costs no full walk each time it
 * comes back beyond the rate limit of new sockets).
 * Returns as po_resolver_walk().
 */
int po_resolver_resolve(struct po_resolver *r, const char *proc_root,
                        const struct po_table *t,
                        enum po_walk_reason full_reason, struct po_owners *out,
                        struct po_walk_stats *st);

/* 1 when the last po_resolver_resolve() left the socket of inode pending
 * (new since the last full walk, which was put off: owners in processes
 * read before may be missing), else 0. Never with the BPF walk. */
int po_resolver_pending(const struct po_resolver *r, uint64_t inode);

/* Forgets what po_resolver_resolve() remembers: the next call is a full
 * walk (PO_REASON_FIRST), and every socket is due for a look. */
void po_resolver_forget(struct po_resolver *r);

/* The look interval of po_resolver_resolve(), in nanoseconds: 0 looks on
 * every call that leaves a socket without an owner, UINT64_MAX once per
 * socket. Default PO_LOOK_INTERVAL_DEFAULT_NS. */
void po_resolver_set_look_interval(struct po_resolver *r, uint64_t ns);

/* The least time between two full walks for new sockets
 * (PO_REASON_NEW_INODE), in nanoseconds: 0 walks at every new socket (no
 * limit), UINT64_MAX walks for the first only. Default
 * PO_NEW_WALK_INTERVAL_DEFAULT_NS (the plugin sets it from
 * FullScanInterval: po_ctx_set_full_scan_interval()). */
#define PO_NEW_WALK_INTERVAL_DEFAULT_NS UINT64_C(10000000000)
void po_resolver_set_new_walk_interval(struct po_resolver *r, uint64_t ns);

/* The budget of one look: system calls beyond the one fstatat() per
 * process. Default (and for 0) PO_LOOK_BUDGET. */
void po_resolver_set_look_budget(struct po_resolver *r, uint64_t calls);

/*
 * Which walk the resolver makes. PO_RESOLVER_PROC (the default) is the
 * readlink walk above; PO_RESOLVER_BPF is the walk in the kernel of
 * resolve_bpf.h: po_resolver_walk() and po_resolver_resolve() then make
 * that walk on every call (st->kind PO_WALK_FULL, st->reason PO_REASON_BPF:
 * no incremental read, no look, nothing remembered; full_reason, the look
 * and new-walk intervals do not apply) and fill out and st as that header
 * says.
 */
enum po_resolver_kind {
  PO_RESOLVER_PROC = 0,
  PO_RESOLVER_BPF,
};

/* Switches r to the BPF walk of proc_root (po_bpf_open(): 0, or its -errno
 * with *why set, and r stays as it was). */
int po_resolver_use_bpf(struct po_resolver *r, const char *proc_root,
                        const char **why);
enum po_resolver_kind po_resolver_kind(const struct po_resolver *r);
/* po_bpf_set_walks() of the BPF walk in use (none: nothing). */
void po_resolver_set_bpf_walks(struct po_resolver *r, unsigned mask);
/* "proc" or "bpf". */
const char *po_resolver_kind_name(enum po_resolver_kind k);

/*
 * Parses a readlink() result of len bytes (not NUL-terminated): "socket:[N]".
 * Returns 1 and sets *inode when it is one, 0 when it is not.
 */
int po_socket_link_parse(const char *link, size_t len, uint64_t *inode);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_RESOLVE_H */
