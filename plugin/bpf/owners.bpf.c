// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * portowner: the owner walk in the kernel (issue 14). Two iterators over
 * every task of the reader's pid namespace, each visiting a task only when
 * it is its group's leader or its fd table is not its leader's (one visit
 * per table), each writing one struct po_bpf_rec to its seq file per fd that
 * holds a wanted socket:
 *
 *   po_owners (iter/task_file): the kernel calls it for every open file; it
 *     keeps a file whose inode is a socket whose number is in the map
 *     "wanted". The record names the struct file too: a socket has exactly
 *     one (sock_alloc_file(); dup, fork, SCM_RIGHTS and pidfd_getfd share
 *     it, and a socket cannot be opened again through /proc), so
 *   po_tables (iter/task): given the struct files of the wanted sockets
 *     (the map "wanted_files", and the bit filter "filt" in front of it),
 *     reads each task's fd table itself, 64 slots at a time and only where
 *     the open-fd bitmap has bits, and compares the pointers: no file is
 *     touched (the iterator above takes and drops a reference on each, two
 *     cache misses per file), only a match is checked (its inode is the
 *     wanted one, so a file freed and reused since is not taken).
 *
 * and two that learn the struct files from the sockets' side, one record
 * (tgid 0) per wanted socket of the reader's network namespace:
 *   po_learn_tcp (iter/tcp, TCP listeners) and po_learn_udp (iter/udp).
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

struct fdtable {
  unsigned int max_fds;
  struct file **fd;
  unsigned long *open_fds;
} __attribute__((preserve_access_index));

struct files_struct {
  struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct {
  int pid;
  int tgid;
  struct task_struct *group_leader;
  struct files_struct *files;
  struct pid *thread_pid;
} __attribute__((preserve_access_index));

struct sock_common {
  unsigned char skc_state;
} __attribute__((preserve_access_index));

struct socket {
  struct file *file;
} __attribute__((preserve_access_index));

struct sock {
  struct socket *sk_socket;
} __attribute__((preserve_access_index));

struct udp_sock;

struct bpf_iter__tcp {
  struct bpf_iter_meta *meta;
  struct sock_common *sk_common;
} __attribute__((preserve_access_index));

struct bpf_iter__udp {
  struct bpf_iter_meta *meta;
  struct udp_sock *udp_sk;
} __attribute__((preserve_access_index));

struct bpf_iter__task {
  struct bpf_iter_meta *meta;
  struct task_struct *task;
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
#define PO_TCP_LISTEN 10

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

/* The hash maps allocate their entries as the reader adds them
 * (BPF_F_NO_PREALLOC): a plugin wants a few sockets, not 65,536, and
 * preallocating both maps would hold ~8 MiB of kernel memory. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, PO_BPF_MAX_WANTED);
  __type(key, __u64);
  __type(value, __u8);
} wanted SEC(".maps");

/* po_tables: struct file address -> its socket's inode number. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, PO_BPF_MAX_WANTED);
  __type(key, __u64);
  __type(value, __u64);
} wanted_files SEC(".maps");

/* A bit per po_bpf_filt_bit() of each wanted file: most slots are told
 * apart by one load from this (hot) array, without a map lookup. Written
 * by the reader through the mmaped .bss. */
__u64 filt[PO_BPF_FILT_WORDS] = {};

/* Set by po_tables when a table had more records than one seq write may
 * hold: the reader then walks files (reset by the reader). */
__u8 truncated = 0;
/* Records written for the table being walked (in the map, not on the
 * stack: a counter compared on the stack would make the verifier walk the
 * loops once per value). */
__u32 written = 0;

/* One chunk of fd slots and one block of open_fds words, read from the
 * kernel's table (one reader at a time: the po_bpf that owns this
 * object). */
__u64 slots[PO_BPF_CHUNK] = {};
__u64 words[PO_BPF_CHUNK] = {};

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

/* The task's tgid in the reader's pid namespace (high 32 bits) and, when
 * its fd table is its own (not its leader's), its tid (low 32 bits); 0 for
 * a task not visible in the reader's namespace. */
static __always_inline __u64 owner_ids(struct task_struct *task) {
  struct task_struct *leader = BPF_CORE_READ(task, group_leader);
  __u32 tgid = ns_nr(BPF_CORE_READ(leader, thread_pid)), tid = 0;

  if (!tgid)
    return 0;
  if (BPF_CORE_READ(task, files) != BPF_CORE_READ(leader, files))
    tid = ns_nr(BPF_CORE_READ(task, thread_pid));
  return (__u64)tgid << 32 | tid;
}

/* The same as a global function, which the verifier checks once, not at
 * every call site (in po_tables's loops that would be too many states):
 * task_addr is a struct task_struct *, as a number (all its reads are
 * probe reads). */
__noinline __u64 po_owner_ids(__u64 task_addr) {
  return owner_ids((struct task_struct *)task_addr);
}

/* The sockets a table holds and how many fds hold each (the first
 * PO_BPF_TASK_INODES sockets found in it). */
struct table_keep {
  __u32 ninodes;
  __u32 count[PO_BPF_TASK_INODES];
  __u64 inode[PO_BPF_TASK_INODES];
};

struct table_walk {
  struct seq_file *seq;
  __u64 task; /* the task's address, a number (po_owner_ids()) */
  struct file **fd;
  unsigned long *open_fds;
  __u64 table;
  __u32 max_fds;
  __u32 word0; /* the first open_fds word of the block in words */
  __u32 base;  /* the first slot of the chunk in slots */
  __u32 files;
  int tgid; /* -1 until a match needs it */
  __u32 tid;
  struct table_keep keep;
};

/* One record for w's table, unless its budget is spent (then the walk is
 * marked truncated). */
static __always_inline void table_write(struct table_walk *w, __u32 fd,
                                        __u32 count, __u64 ino, __u64 f) {
  struct po_bpf_rec rec;

  if (written >= PO_BPF_SHOW_MAX) {
    truncated = 1;
    return;
  }
  written++;
  rec.tgid = w->tgid;
  rec.tid = w->tid;
  rec.fd = fd;
  rec.count = count;
  rec.inode = ino;
  rec.table = w->table;
  rec.file = f;
  bpf_seq_write(w->seq, &rec, sizeof(rec));
}

/* 1 when this fd of ino gets a record: one of the socket's first
 * PO_BPF_KEEP_FDS in the table, or a socket past the first
 * PO_BPF_TASK_INODES (not counted). A global function: the verifier
 * checks it once (inline in table_slot, its loop made too many states);
 * it is given only the table_keep, which it may change. */
__noinline int po_table_keep(struct table_keep *k, __u64 ino) {
  if (!k)
    return 0;
  for (__u32 i = 0; i < PO_BPF_TASK_INODES; i++) {
    if (i >= k->ninodes) {
      k->inode[i] = ino;
      k->count[i] = 1;
      k->ninodes = i + 1;
      return 1;
    }
    if (k->inode[i] == ino)
      return ++k->count[i] <= PO_BPF_KEEP_FDS;
  }
  return 1;
}

/* The slot base + k, of the chunk in slots (bpf_loop). */
static long table_slot(__u32 k, void *arg) {
  struct table_walk *w = arg;
  __u64 f = slots[k & (PO_BPF_CHUNK - 1)], h, *ino;
  struct file *file;

  if (!f)
    return 0;
  w->files++;
  h = po_bpf_filt_bit(f);
  if (!(filt[(h >> 6) & (PO_BPF_FILT_WORDS - 1)] & (1ULL << (h & 63))))
    return 0;
  ino = bpf_map_lookup_elem(&wanted_files, &f);
  if (!ino)
    return 0;
  file = (struct file *)f;
  if (BPF_CORE_READ(file, f_inode, i_ino) != *ino)
    return 0;
  if (w->tgid < 0) {
    __u64 ids = po_owner_ids(w->task);

    w->tgid = (int)(ids >> 32);
    w->tid = (__u32)ids;
  }
  if (!w->tgid)
    return 1;
  /* The lowest PO_BPF_KEEP_FDS fds of each socket, then a count. */
  if (po_table_keep(&w->keep, *ino))
    table_write(w, w->base + k, 0, *ino, f);
  return 0;
}

/* The slots of open_fds word j of the block in words (bpf_loop). */
static long table_word(__u32 j, void *arg) {
  struct table_walk *w = arg;
  __u32 base = (w->word0 + j) * PO_BPF_CHUNK, n;
  __u64 sz;

  if (!words[j & (PO_BPF_CHUNK - 1)])
    return 0;
  if (base >= w->max_fds)
    return 1;
  n = w->max_fds - base;
  if (n > PO_BPF_CHUNK)
    n = PO_BPF_CHUNK;
  sz = (__u64)n * sizeof(__u64);
  barrier_var(sz); /* the verifier sees the bound checked next */
  if (sz == 0 || sz > sizeof(slots))
    return 1;
  if (bpf_probe_read_kernel(slots, sz, w->fd + base) != 0)
    return 1;
  w->base = base;
  bpf_loop(n, table_slot, w, 0);
  return w->tgid == 0; /* the task is not visible to the reader: done */
}

/* Block i of the table: PO_BPF_CHUNK words of open_fds, each of which
 * covers PO_BPF_CHUNK slots (bpf_loop). A sparse table (one fd far up) costs
 * one read per 4,096 slots, not one per 64. */
static long table_block(__u32 i, void *arg) {
  struct table_walk *w = arg;
  __u32 nwords = (w->max_fds + PO_BPF_CHUNK - 1) / PO_BPF_CHUNK, n;
  __u64 sz;

  w->word0 = i * PO_BPF_CHUNK;
  if (w->word0 >= nwords)
    return 1;
  n = nwords - w->word0;
  if (n > PO_BPF_CHUNK)
    n = PO_BPF_CHUNK;
  sz = (__u64)n * sizeof(__u64);
  barrier_var(sz);
  if (sz == 0 || sz > sizeof(words))
    return 1;
  if (bpf_probe_read_kernel(words, sz, w->open_fds + w->word0) != 0)
    return 1;
  bpf_loop(n, table_word, w, 0);
  return w->tgid == 0;
}

/* The learning of files from the sockets' side: one record (tgid 0, fd 0,
 * table 0) for a wanted socket sk, naming its struct file. */
static __always_inline void learn_sock(struct seq_file *seq, struct sock *sk) {
  struct po_bpf_rec rec = {0};
  struct file *file = BPF_CORE_READ(sk, sk_socket, file);
  __u64 ino;

  if (!file)
    return;
  ino = BPF_CORE_READ(file, f_inode, i_ino);
  if (!bpf_map_lookup_elem(&wanted, &ino))
    return;
  rec.inode = ino;
  rec.file = (__u64)file;
  bpf_seq_write(seq, &rec, sizeof(rec));
}

/* TCP listeners of the reader's network namespace (the only TCP sockets
 * the table holds), which the kernel's iterator gives before the sockets of
 * the established hash (which have no file or are not wanted). Set by the
 * reader before a walk: */
__u8 tcp_marked = 0;

SEC("iter/tcp")
int po_learn_tcp(struct bpf_iter__tcp *ctx) {
  struct sock_common *skc = ctx->sk_common;

  if (!skc)
    return 0;
  if (skc->skc_state != PO_TCP_LISTEN) {
    /* The first socket past the listeners: a marker (inode 0), where the
     * reader stops. */
    if (!tcp_marked) {
      struct po_bpf_rec m = {0};

      tcp_marked = 1;
      bpf_seq_write(ctx->meta->seq, &m, sizeof(m));
    }
    return 0;
  }
  learn_sock(ctx->meta->seq, (struct sock *)skc);
  return 0;
}

/* UDP sockets of the reader's network namespace. */
SEC("iter/udp")
int po_learn_udp(struct bpf_iter__udp *ctx) {
  struct udp_sock *udp = ctx->udp_sk;

  if (!udp)
    return 0;
  learn_sock(ctx->meta->seq, (struct sock *)udp);
  return 0;
}

/* The count record of socket i of the table, when it has more fds than
 * records (bpf_loop). */
static long table_count(__u32 i, void *arg) {
  struct table_walk *w = arg;
  __u32 n = w->keep.count[i & (PO_BPF_TASK_INODES - 1)];

  if (n > PO_BPF_KEEP_FDS)
    table_write(w, PO_BPF_FD_COUNT, n,
                w->keep.inode[i & (PO_BPF_TASK_INODES - 1)], 0);
  return 0;
}

SEC("iter/task")
int po_tables(struct bpf_iter__task *ctx) {
  struct task_struct *task = ctx->task;
  struct task_struct *leader;
  struct files_struct *files;
  struct fdtable *fdt;
  struct table_walk w = {0};
  __u32 blocks;

  if (!task)
    return 0;
  files = task->files;
  if (!files)
    return 0;
  leader = task->group_leader;
  if (leader != task && leader && leader->files == files)
    return 0;
  ntasks++;
  fdt = files->fdt;
  if (!fdt)
    return 0;
  w.seq = ctx->meta->seq;
  /* Read as a number, not a pointer the verifier tracks. */
  if (bpf_probe_read_kernel(&w.task, sizeof(w.task), &ctx->task) != 0)
    return 0;
  w.fd = fdt->fd;
  w.open_fds = fdt->open_fds;
  w.max_fds = fdt->max_fds;
  w.table = (__u64)files;
  w.tgid = -1;
  written = 0;
  blocks = (w.max_fds + PO_BPF_BLOCK - 1) / PO_BPF_BLOCK;
  bpf_loop(blocks, table_block, &w, 0);
  nfiles += w.files;
  bpf_loop(w.keep.ninodes, table_count, &w, 0);
  return 0;
}

SEC("iter/task_file")
int po_owners(struct bpf_iter__task_file *ctx) {
  struct seq_file *seq = ctx->meta->seq;
  struct task_struct *task = ctx->task;
  struct file *file = ctx->file;
  struct po_bpf_rec rec;
  struct inode *inode;
  __u64 ino, ids;

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
  /* A table of the task's own (not its leader's): the task is named. */
  ids = owner_ids(task);
  rec.tgid = (__u32)(ids >> 32);
  if (!rec.tgid)
    return 0;
  rec.tid = (__u32)ids;
  rec.fd = ctx->fd;
  rec.count = 0;
  rec.inode = ino;
  rec.table = (__u64)BPF_CORE_READ(task, files);
  rec.file = (__u64)file;
  bpf_seq_write(seq, &rec, sizeof(rec));
  return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
