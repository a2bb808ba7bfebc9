// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * portowner: the owner walk in the kernel (issue 14).
 *
 * An iter/task_file program: the kernel calls it for every open file of
 * every task of the reader's pid namespace (a task whose fd table is its
 * group leader's is skipped by the kernel: one visit per table). It keeps a
 * file only when its inode is a socket whose inode number is in the map
 * "wanted", and writes one struct po_bpf_rec to the iterator's seq file.
 *
 * CO-RE: the few kernel types used are declared here with
 * preserve_access_index; libbpf relocates their fields against the running
 * kernel's BTF (/sys/kernel/btf/vmlinux) at load time.
 */
#include <linux/bpf.h>
#include <linux/types.h>

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "owners_rec.h"

struct seq_file;

struct bpf_iter_meta {
  struct seq_file *seq;
  __u64 session_id;
  __u64 seq_num;
} __attribute__((preserve_access_index));

struct super_block {
  unsigned long s_magic;
} __attribute__((preserve_access_index));

struct inode {
  unsigned short i_mode;
  struct super_block *i_sb;
  unsigned long i_ino;
} __attribute__((preserve_access_index));

struct file {
  const void *f_op;
  struct inode *f_inode;
} __attribute__((preserve_access_index));

struct ns_common {
  unsigned int inum;
} __attribute__((preserve_access_index));

struct pid_namespace {
  struct ns_common ns;
} __attribute__((preserve_access_index));

struct upid {
  int nr;
  struct pid_namespace *ns;
} __attribute__((preserve_access_index));

struct pid {
  unsigned int level;
  struct upid numbers[1];
} __attribute__((preserve_access_index));

struct files_struct;

struct task_struct {
  int pid;
  int tgid;
  struct task_struct *group_leader;
  struct files_struct *files;
  struct pid *thread_pid;
} __attribute__((preserve_access_index));

struct bpf_iter__task_file {
  struct bpf_iter_meta *meta;
  struct task_struct *task;
  __u32 fd;
  struct file *file;
} __attribute__((preserve_access_index));

#define PO_S_IFMT 00170000
#define PO_S_IFSOCK 0140000
#define PO_MAX_LEVEL 32
#define PO_SOCKFS_MAGIC 0x534F434B

/* The reader's pid namespace (st_ino of /proc/self/ns/pid): pids are given
 * as that namespace numbers them. Set before load. */
const volatile __u32 pidns_inum = 0;

/* What the walk saw: files visited, tasks visited. */
__u64 nfiles = 0;
__u64 ntasks = 0;
/* The file operations of sockets (socket_file_ops, which every socket
 * file has), learned from the first sockfs file met: then a file that is
 * not a socket is told by its f_op, in the struct file the iterator holds,
 * without a load from its inode (a cache miss per file). An S_IFSOCK inode
 * of another file system (an O_PATH open of a unix socket's path) is not a
 * socket: its number is that file system's. */
const void *sock_fops = 0;
/* The last task visited, to count tasks (one seq reader at a time). */
void *last_task = 0;

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, PO_BPF_MAX_WANTED);
  __type(key, __u64);
  __type(value, __u8);
} wanted SEC(".maps");

/* The number of pid p in the reader's pid namespace, or 0 when p is not
 * visible there. */
static __always_inline int ns_nr(struct pid *p) {
  unsigned int level;
  unsigned long off = bpf_core_field_offset(struct pid, numbers);
  unsigned long sz = bpf_core_type_size(struct upid);

  if (!p)
    return 0;
  level = BPF_CORE_READ(p, level);
  for (unsigned int i = 0; i < PO_MAX_LEVEL; i++) {
    struct upid *u;

    if (i > level)
      break;
    u = (struct upid *)((char *)p + off + i * sz);
    if (BPF_CORE_READ(u, ns, ns.inum) == pidns_inum)
      return BPF_CORE_READ(u, nr);
  }
  return 0;
}

SEC("iter/task_file")
int po_owners(struct bpf_iter__task_file *ctx) {
  struct seq_file *seq = ctx->meta->seq;
  struct task_struct *task = ctx->task;
  struct file *file = ctx->file;
  struct po_bpf_rec rec;
  struct task_struct *leader;
  struct inode *inode;
  __u64 ino;

  if (!task || !file)
    return 0;
  nfiles++;
  if (last_task != task) {
    last_task = task;
    ntasks++;
  }
  /* Direct loads through the iterator's BTF pointers (CO-RE relocated),
   * not probe-read helper calls: this runs for every open file. */
  inode = file->f_inode;
  if (!inode)
    return 0;
  if (sock_fops) {
    if (file->f_op != sock_fops)
      return 0;
  } else {
    if ((inode->i_mode & PO_S_IFMT) != PO_S_IFSOCK ||
        BPF_CORE_READ(inode, i_sb, s_magic) != PO_SOCKFS_MAGIC)
      return 0;
    sock_fops = file->f_op;
  }
  ino = inode->i_ino;
  if (!bpf_map_lookup_elem(&wanted, &ino))
    return 0;
  leader = BPF_CORE_READ(task, group_leader);
  rec.tgid = ns_nr(BPF_CORE_READ(leader, thread_pid));
  if (!rec.tgid)
    return 0;
  /* A table of the task's own (not its leader's): the task is named. */
  if (BPF_CORE_READ(task, files) != BPF_CORE_READ(leader, files))
    rec.tid = ns_nr(BPF_CORE_READ(task, thread_pid));
  else
    rec.tid = 0;
  rec.fd = ctx->fd;
  rec.pad = 0;
  rec.inode = ino;
  rec.table = (__u64)BPF_CORE_READ(task, files);
  bpf_seq_write(seq, &rec, sizeof(rec));
  return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
