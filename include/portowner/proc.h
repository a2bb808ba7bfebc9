/*
 * portowner: details of an owner process (comm, exe, uid, user name), read
 * lazily: only for processes that own a wanted socket, once per process.
 *
 * Contract: 0 or a negative errno value. Nothing here logs or keeps globals.
 */
#ifndef PORTOWNER_PROC_H
#define PORTOWNER_PROC_H

#include <stdint.h>
#include <sys/types.h>

#include "portowner/cgroup.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PO_UID_UNKNOWN UINT32_MAX

struct po_proc {
  pid_t pid;
  uint32_t uid;     /* effective uid (status "Uid:" 2nd field), or
                       PO_UID_UNKNOWN */
  char comm[64];    /* contents of /proc/PID/comm without the newline; raw
                       bytes, may be any byte but NUL; "" when unreadable */
  char *exe;        /* target of /proc/PID/exe (malloc'd), NULL when it cannot
                       be read (no privilege, kernel thread, process gone) */
  char user[64];    /* user name of uid, the number when it has no name, ""
                       when the uid is unknown */
  uint64_t start;   /* start time: field 22 of /proc/PID/stat (clock ticks
                       after boot); with pid, tells a process from a later
                       one that got its pid. 0 when unknown */
  int exe_id;       /* 1 when exe_dev and exe_ino are known */
  uint64_t exe_dev; /* stat() of /proc/PID/exe: the file the process runs, */
  uint64_t exe_ino; /* whatever path its mount namespace shows for it */
  uint64_t dir_ino; /* read with PO_PROC_PROCFS: the inode number of
                       <proc_root>/PID, which procfs gives anew to the
                       directory of a later process of the same pid; 0
                       otherwise */
  struct po_cgroup_paths cgroup; /* from <pid>/cgroup (cgroup.h): the v2
                                    and name=systemd paths, each NULL when
                                    unknown */
};

/*
 * Reads the details of process pid under proc_root into *p (which it
 * initialises). Missing parts are left empty as documented above.
 * Returns 0, -ENOENT / -ESRCH when the process is gone, -ENOMEM.
 */
int po_proc_read(const char *proc_root, pid_t pid, struct po_proc *p);

/*
 * po_proc_read(), and when the exe of pid cannot be read and tid is not 0,
 * the exe (link and stat) of its task tid (<pid>/task/<tid>/exe): a leader
 * that called pthread_exit() is a zombie whose exe is gone while its
 * threads run the same program. Same returns.
 */
int po_proc_read_task(const char *proc_root, pid_t pid, pid_t tid,
                      struct po_proc *p);

/*
 * The start time from the NUL-terminated text of /proc/PID/stat: field 22
 * (clock ticks after boot). The name (field 2) is in parentheses and may
 * hold anything, ')' and spaces included: the fields after it start after
 * the last ')'. 0 when it does not parse.
 */
uint64_t po_proc_stat_start(const char *buf);

/*
 * 1 when proc_root (NULL: "/proc") is a procfs mount, 0 when it is another
 * file system (a fixture tree), or -errno of statfs().
 */
int po_proc_root_is_procfs(const char *proc_root);

/* proc_root is procfs (po_proc_root_is_procfs()): its files are the
 * kernel's. Without it every file read must be a regular file. */
#define PO_PROC_PROCFS 1u
/* Leave p->user empty: the caller names the uid (po_proc_user_name()). */
#define PO_PROC_NO_USER 2u
/* Read <pid>/cgroup even when known has it for the same process. */
#define PO_PROC_CGROUP_AGAIN 4u
/* Do not read <pid>/cgroup: p->cgroup stays empty (attribution off). */
#define PO_PROC_NO_CGROUP 8u

/*
 * po_proc_read_task() with flags (PO_PROC_PROCFS or 0) and what an earlier
 * read of the same pid gave (known, or NULL). Files are opened O_NONBLOCK
 * and, without PO_PROC_PROCFS, read only when they are regular files (a
 * FIFO or a device in a fixture tree reads as unreadable), so a read never
 * blocks. With PO_PROC_PROCFS, when known->pid is pid and known->dir_ino
 * is this read's p->dir_ino, the start time is known->start and
 * <pid>/stat is not read (one fstat() instead of an open, a read of the
 * kernel's longest per-process text and a close); comm, exe, the exe's
 * file and the uid are read every time, as execve() and setuid() change
 * them. The cgroup paths are known's too (copied) when known has them for
 * the same process, unless flags has PO_PROC_CGROUP_AGAIN: a process can
 * be moved to another cgroup, so the caller asks again now and then
 * (snapshot.c: on every full walk). Same returns as po_proc_read().
 */
int po_proc_read_ex(const char *proc_root, pid_t pid, pid_t tid, unsigned flags,
                    const struct po_proc *known, struct po_proc *p);

/*
 * 1 when the calling process may read every process's fds and see every
 * process under a hidepid proc: CAP_SYS_PTRACE in its effective set (root
 * normally has it). 0 when not, or when that cannot be read.
 */
int po_proc_self_sees_all(void);

/*
 * The name of uid (getpwuid_r()) into user (size bytes): the number when it
 * has no name or the name does not fit, "" for PO_UID_UNKNOWN.
 */
void po_proc_user_name(uint32_t uid, char *user, size_t size);

/*
 * Names processes for a message into buf (size bytes, NUL-terminated, cut
 * with "..." when it does not fit): "1 (systemd), 57 (app)", each pid with
 * its comm from <proc_root>/PID/comm (proc_root NULL: "/proc") made
 * printable ('?' for what printable.h refuses; "?" when it cannot be read),
 * then ", and N more" when total is more than the n pids given.
 */
void po_proc_name_list(const char *proc_root, const pid_t *pids, size_t n,
                       uint64_t total, char *buf, size_t size);

/* Frees what po_proc_read() allocated. */
void po_proc_release(struct po_proc *p);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_PROC_H */
