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
 * 1 when the calling process may read every process's fds and see every
 * process under a hidepid proc: CAP_SYS_PTRACE in its effective set (root
 * normally has it). 0 when not, or when that cannot be read.
 */
int po_proc_self_sees_all(void);

/* Frees what po_proc_read() allocated. */
void po_proc_release(struct po_proc *p);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_PROC_H */
