/*
 * portowner tests: the fixtures the unit tests and the fuzz targets share.
 *
 * - Fake ProcRoot trees: a mkdtemp() directory that the core reads as it
 *   reads /proc: <root>/<pid>/fd/<n> symlinks to "socket:[INODE]" (or any
 *   other target the kernel shows), <root>/<pid>/{stat,comm,status,exe},
 *   <root>/<pid>/task/<tid>/fd (the tasks' tables), <root>/net/tcp.
 * - Snapshots and listener tables built by hand, as po_snapshot_take()
 *   leaves them, for the watch model and the resolver.
 *
 * Contract: a builder does what it says or calls the failure handler with a
 * message that names the call, the path and strerror(errno); it never
 * returns an error. The default handler prints the message and calls
 * abort(), as FUZZ_CHECK does; a cmocka test calls
 * fx_set_failure(fx_fail_cmocka) first, so that a broken fixture fails the
 * test it is in and the next one runs. Paths are relative to the root given
 * (formatted as printf does where the argument is fmt); nothing here keeps
 * state but the handler. Only fx_root_remove() returns: 0 or -errno.
 *
 * No cmocka here: the fuzz targets link this file too (tests/fuzz/run-fuzz.sh
 * builds it with every target, Makefile.am with every test that uses it).
 */
#ifndef PORTOWNER_TESTS_FIXTURE_H
#define PORTOWNER_TESTS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <netinet/in.h>

#include "portowner/snapshot.h"

#define FX_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- failures ------------------------------------------------------------ */

/* Must not return (fail_msg() or abort()); a handler that returns is
 * followed by abort(). */
typedef void (*fx_failure_fn)(const char *msg);
void fx_set_failure(fx_failure_fn fn);

#ifdef CMOCKA_H_ /* included after cmocka.h */
static inline void fx_fail_cmocka(const char *msg) {
  fail_msg("%s", msg);
}
#endif

/* ---- fake ProcRoot trees ------------------------------------------------- */

/* Makes a new empty directory <base>/po-<tag>-XXXXXX (base NULL: /tmp, which
 * every user may traverse) and writes its path to root. */
void fx_root_make(char *root, size_t size, const char *base, const char *tag);
/* Gives back the access a test took away (mode 000 directories), then
 * removes root and all below it. 0 (also when root is gone) or -errno. */
int fx_root_remove(const char *root);

/* <root>/<fmt...> into buf. */
void fx_path(const char *root, char *buf, size_t size, const char *fmt, ...)
    FX_PRINTF(4, 5);
/* mkdir <root>/<fmt...> (mode 0755; it must not exist). */
void fx_mkdir(const char *root, const char *fmt, ...) FX_PRINTF(2, 3);
/* <root>/<fmt...> -> target. */
void fx_symlink(const char *root, const char *target, const char *fmt, ...)
    FX_PRINTF(3, 4);
/* <root>/rel holds exactly the len bytes at data (created or truncated). */
void fx_write(const char *root, const char *rel, const void *data, size_t len);
/* rm -r <root>/<fmt...>; nothing to do when it is not there. */
void fx_remove(const char *root, const char *fmt, ...) FX_PRINTF(2, 3);

/* A process: <root>/<pid>/ and its empty <root>/<pid>/fd/. */
void fx_proc(const char *root, pid_t pid);
/* <root>/<pid>/fd/<fd> -> target ("pipe:[5]", "/dev/null", ...). */
void fx_fd(const char *root, pid_t pid, int fd, const char *target);
/* <root>/<pid>/fd/<fd> -> "socket:[inode]". */
void fx_sockfd(const char *root, pid_t pid, int fd, uint64_t inode);
/* A task of process pid: <root>/<pid>/task/<tid>/ and its fd directory,
 * which is the table of task table as the resolver tells tables apart on a
 * file system that is not procfs: 0, a table of its own (an empty
 * directory); pid, the leader's (a symlink to ../../fd); another tid, that
 * task's (a symlink to ../<table>/fd, a task made before). */
void fx_task(const char *root, pid_t pid, pid_t tid, pid_t table);
/* <root>/<pid>/task/<tid>/fd/<fd> -> "socket:[inode]" (a table of its own). */
void fx_task_sockfd(const char *root, pid_t pid, pid_t tid, int fd,
                    uint64_t inode);
/* The details of a well-formed process: <root>/<pid>/comm ("comm\n"),
 * status (Name and Uid: uid as real, effective, saved and fs uid) and stat
 * with start time start (field 22) and "a) b" for its name, a ')' inside as
 * a hostile comm has it, so that a reader must look for the last one. */
void fx_proc_details(const char *root, pid_t pid, const char *comm,
                     uint32_t uid, uint64_t start);

/* One TCP listener of <root>/net/tcp; inode 0 is a free slot, not written. */
struct fx_listener {
  uint64_t inode;
  uint16_t port;
};
/* <root>/net/tcp (and <root>/net/): the header line, then a LISTEN line on
 * 127.0.0.1 for each listener of v[0..n) with an inode, in that order. */
void fx_net_tcp(const char *root, const struct fx_listener *v, size_t n);

/* ---- snapshots and listener tables by hand ------------------------------- */

/* The network namespace of every socket fx_snap_sock() adds: callers
 * evaluate with it as their own. */
#define FX_NETNS 4026531840ull

/*
 * Build a snapshot from memset(0): add sockets, then owners (fx_snap_own,
 * or fx_snap_proc and fx_snap_owner), then fx_snap_finish(), and free it
 * with po_snapshot_free().
 */
/* A socket of proto (IPPROTO_TCP or IPPROTO_UDP) on addr (IPv4 or IPv6
 * text) and port in FX_NETNS, inode 10000 + its index, v6only unknown (-1),
 * queues empty but a TCP backlog of 128. Returns its index in s->socks. */
size_t fx_snap_sock(struct po_snapshot *s, int proto, const char *addr,
                    uint16_t port);
/* A process (comm and user copied, exe copied or NULL). */
void fx_snap_proc(struct po_snapshot *s, pid_t pid, const char *comm,
                  const char *exe, uint32_t uid, const char *user);
/* pid holds socket sock at fd 3 + the owners there are already. */
void fx_snap_owner(struct po_snapshot *s, size_t sock, pid_t pid);
/* pid holds sock; the process is added unless its pid is there already. */
void fx_snap_own(struct po_snapshot *s, size_t sock, pid_t pid,
                 const char *comm, const char *exe, uint32_t uid,
                 const char *user);
/* One tcp 0.0.0.0:port socket held (at fd 3) by n processes with pids
 * base, base + 1, ..., all alike; built without a realloc per owner, and
 * finished. Returns the socket's index. */
size_t fx_snap_crowd(struct po_snapshot *s, uint16_t port, pid_t base, size_t n,
                     const char *comm, const char *exe, uint32_t uid,
                     const char *user);
/* Sorts processes by pid and owners by socket, pid and fd, and links them
 * (po_owner.proc, po_socket.owner_first/owner_count) as po_snapshot_take()
 * does; sockets keep their order, so that indexes stay valid. */
void fx_snap_finish(struct po_snapshot *s);

/* A listener table on the stack, for the resolver (table.c not needed):
 * FX_TABLE(t, FX_SOCK(5000), FX_SOCK(5001)) declares struct po_table t. */
#define FX_TABLE(name, ...)                                                    \
  struct po_socket name##_v[] = {__VA_ARGS__};                                 \
  struct po_table name = {.v = name##_v,                                       \
                          .len = sizeof(name##_v) / sizeof(name##_v[0]),       \
                          .cap = sizeof(name##_v) / sizeof(name##_v[0])}
#define FX_SOCK(ino)                                                           \
  { .inode = (ino), .proto = IPPROTO_TCP, .family = AF_INET }

#endif /* PORTOWNER_TESTS_FIXTURE_H */
