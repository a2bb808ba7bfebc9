/*
 * portowner: the owner walk in the kernel (issue 14), BPF iterators
 * (plugin/bpf/owners.bpf.c, built with clang -target bpf and loaded through
 * a light skeleton, bpftool gen skeleton -L: the kernel runs its loader
 * program, which creates the maps and loads the programs relocated against
 * the kernel's own BTF; no BTF is read in this process and no libbpf code
 * runs here).
 *
 * One walk visits every fd table of every task of our pid namespace in the
 * kernel and keeps the fds that hold a wanted socket. It is one of two
 * kinds, both exact:
 *   - a walk of files (iter/task_file) looks at every open file: is it a
 *     socket, is its inode wanted. It also learns the struct file of each
 *     wanted socket found (a socket has one);
 *   - a walk of tables (iter/task) reads the fd slots and
 *     compares them with the struct files learned: no file is touched. It
 *     is chosen when every wanted socket's file is known, so a plugin that
 *     watches the same sockets read after read walks files once per new
 *     socket (and every time while a wanted socket is held by no task of
 *     our namespace: then nothing tells its file).
 * It gives the
 * owners po_resolver_walk() gives, filled the same way (resolve.h: one
 * record per (pid, fd table, socket), nfds, the lowest PO_OWNER_FDS fds
 * ascending), with these differences:
 *   - no process is denied: the kernel reads every table (PID 1's here);
 *   - every task's own fd table is visited on every walk (the kernel skips
 *     a task whose table is its leader's): an owner hidden from
 *     /proc/PID/fd is found without a look, and reported, as a look
 *     reports it, only for a socket that no <pid>/fd holds (tid: the first
 *     task with that table);
 *   - pids are numbered in our pid namespace; a task not visible in it is
 *     not visited.
 * Loading needs root (or CAP_BPF and CAP_PERFMON), kernel BTF
 * (/sys/kernel/btf/vmlinux) and Linux 5.17 or later (bpf_loop, the loader
 * program and CO-RE in the kernel); built
 * without BPF support (./configure --disable-bpf, or libbpf, clang or
 * bpftool missing) po_bpf_open() returns -EOPNOTSUPP.
 *
 * Contract: 0 or a negative errno value. Nothing here logs.
 */
#ifndef PORTOWNER_RESOLVE_BPF_H
#define PORTOWNER_RESOLVE_BPF_H

#include "portowner/resolve.h"
#include "portowner/table.h"

#ifdef __cplusplus
extern "C" {
#endif

struct po_bpf;

/* 1 when this build has BPF support, 0 when not. */
int po_bpf_built(void);

/*
 * Loads the program for walks of proc_root, which must be procfs of our own
 * pid namespace (<proc_root>/self is our pid: -EXDEV otherwise). On
 * failure *why (when why is not NULL) says which step failed, in a few
 * words ("built without BPF support", "no kernel BTF
 * (/sys/kernel/btf/vmlinux)", "loading the BPF program", ...), and the
 * errno is returned: -EOPNOTSUPP, -ENOENT, -EPERM, -EXDEV, -ENOMEM, ...
 */
int po_bpf_open(const char *proc_root, struct po_bpf **out, const char **why);
void po_bpf_free(struct po_bpf *b);

/*
 * One walk: the owners of the sockets of t appended to out (unsorted), as
 * above. st gets procs (tasks visited), fds (files visited), listed (=
 * procs); the other counts are 0 and kind/reason are the caller's. More
 * than PO_BPF_WANTED_MAX wanted inodes: -E2BIG. A table with no inode but 0
 * returns 0 without a walk. Returns 0, -EINVAL, -ENOMEM, -E2BIG or the
 * -errno of a failed bpf(2) or read(2).
 */
#define PO_BPF_WANTED_MAX 65536
int po_bpf_walk(struct po_bpf *b, const struct po_table *t,
                struct po_owners *out, struct po_walk_stats *st);

/* The kind of b's last walk (NONE before the first, or without BPF). */
enum po_bpf_walk_kind {
  PO_BPF_WALK_NONE = 0,
  PO_BPF_WALK_FILES,
  PO_BPF_WALK_TABLES,
};
enum po_bpf_walk_kind po_bpf_last_walk(const struct po_bpf *b);

/*
 * What a walk may use (PO_BPF_ALL, the default, after po_bpf_open()): walks
 * of tables (PO_BPF_TABLES), and the learning of files from the sockets'
 * side (PO_BPF_LEARN_SOCKETS: the TCP listeners and UDP sockets of our
 * network namespace, iter/tcp and iter/udp). 0: every walk is a walk of
 * files. The benchmark and the tests compare them; nothing else needs to.
 */
#define PO_BPF_TABLES 1u
#define PO_BPF_LEARN_SOCKETS 2u
#define PO_BPF_ALL (PO_BPF_TABLES | PO_BPF_LEARN_SOCKETS)
void po_bpf_set_walks(struct po_bpf *b, unsigned mask);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_RESOLVE_BPF_H */
