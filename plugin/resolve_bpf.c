/*
 * portowner: the owner walk in the kernel (see resolve_bpf.h).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "portowner/resolve_bpf.h"

#include <errno.h>
#include <stddef.h>

#ifndef HAVE_BPF

int po_bpf_built(void) {
  return 0;
}

int po_bpf_open(const char *proc_root, struct po_bpf **out, const char **why) {
  (void)proc_root;
  if (out)
    *out = NULL;
  if (why)
    *why = "built without BPF support";
  return -EOPNOTSUPP;
}

void po_bpf_free(struct po_bpf *b) {
  (void)b;
}

int po_bpf_walk(struct po_bpf *b, const struct po_table *t,
                struct po_owners *out, struct po_walk_stats *st) {
  (void)b;
  (void)t;
  (void)out;
  (void)st;
  return -EOPNOTSUPP;
}

enum po_bpf_walk_kind po_bpf_last_walk(const struct po_bpf *b) {
  (void)b;
  return PO_BPF_WALK_NONE;
}

void po_bpf_set_walks(struct po_bpf *b, unsigned mask) {
  (void)b;
  (void)mask;
}

#else /* HAVE_BPF */

#include <limits.h>
#include <linux/bpf.h>
#include <linux/types.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "owners_rec.h"
/* The light skeleton (bpftool gen skeleton -L): a loader program that the
 * kernel runs creates the maps and loads the programs, relocating them
 * against its own BTF (CO-RE in the kernel), so no BTF is read here, and
 * nothing of libbpf's runs in this process. */
/* Generated code: arithmetic on void * (a GNU extension) in it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpointer-arith"
#include "owners.lskel.h"
#pragma GCC diagnostic pop

_Static_assert(PO_BPF_MAX_WANTED == PO_BPF_WANTED_MAX, "map size");
_Static_assert(PO_BPF_KEEP_FDS == PO_OWNER_FDS, "the fds an owner keeps");
/* One table's records fit the seq file's buffer (8 pages of 4 KiB). */
_Static_assert(PO_BPF_SHOW_MAX * sizeof(struct po_bpf_rec) <= 8 * 4096,
               "records of one table");

/* An inode of the table and its index: sorted by inode, then index. */
struct want {
  uint64_t inode;
  size_t sock;
};

/* A wanted socket's struct file, as a walk of files saw it: sorted by
 * inode. */
struct learned {
  uint64_t inode;
  uint64_t file;
};

struct po_bpf {
  struct po_owners_bpf *skel; /* its links: po_owners (a walk of files),
                                 po_tables (of fd tables), po_learn_tcp and
                                 po_learn_udp */
  uint64_t *inmap;            /* the inodes in "wanted", ascending */
  size_t ninmap, inmap_cap;
  struct learned *fmap; /* the pairs in "wanted_files" (and filt) */
  size_t nfmap, fmap_cap;
  struct learned *learned; /* the files known of wanted inodes */
  size_t nlearned, learned_cap;
  struct learned *next; /* scratch: the next walk's pairs */
  size_t next_cap;
  struct want *want;
  size_t want_cap;
  struct po_bpf_rec *recs;
  size_t nrecs, recs_cap;
  enum po_bpf_walk_kind last;
  unsigned walks; /* PO_BPF_TABLES | PO_BPF_LEARN_SOCKETS */
};

int po_bpf_built(void) {
  return 1;
}

/* bpf(2) without libbpf: skel_internal.h's wrapper. 0 or -errno. */
static int map_update(int fd, const void *key, const void *value) {
  return skel_map_update_elem(fd, key, value, BPF_ANY) < 0 ? -errno : 0;
}

static void map_delete(int fd, const void *key) {
  skel_map_delete_elem(fd, key);
}

/* A new seq file of link's iterator, or -errno. */
static int iter_create(int link_fd) {
  union bpf_attr a;
  int fd;

  memset(&a, 0, sizeof(a));
  a.iter_create.link_fd = (__u32)link_fd;
  fd = skel_sys_bpf(BPF_ITER_CREATE, &a, sizeof(a));
  return fd < 0 ? -errno : fd;
}

/* 0 when <proc_root>/self is our pid, -EXDEV when not, or -errno. */
static int own_procfs(const char *proc_root, unsigned *inum) {
  char path[PATH_MAX], link[32], pid[32];
  struct stat sb;
  ssize_t n;

  if (snprintf(path, sizeof(path), "%s/self", proc_root) >= (int)sizeof(path))
    return -ENAMETOOLONG;
  n = readlink(path, link, sizeof(link) - 1);
  if (n < 0)
    return errno == ENOENT ? -EXDEV : -errno;
  link[n] = '\0';
  snprintf(pid, sizeof(pid), "%ld", (long)getpid());
  if (strcmp(link, pid) != 0)
    return -EXDEV;
  if (snprintf(path, sizeof(path), "%s/self/ns/pid", proc_root) >=
      (int)sizeof(path))
    return -ENAMETOOLONG;
  if (stat(path, &sb) != 0)
    return -errno;
  *inum = (unsigned)sb.st_ino;
  return 0;
}

int po_bpf_open(const char *proc_root, struct po_bpf **out, const char **why) {
  const char *dummy;
  struct po_bpf *b;
  unsigned inum = 0;
  int rc;

  if (!why)
    why = &dummy;
  if (!proc_root || !out) {
    *why = "invalid argument";
    return -EINVAL;
  }
  *out = NULL;
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
    *why = "no kernel BTF (/sys/kernel/btf/vmlinux)";
    return -errno;
  }
  rc = own_procfs(proc_root, &inum);
  if (rc) {
    *why = "ProcRoot is not procfs of our own pid namespace";
    return rc;
  }
  if (!(b = calloc(1, sizeof(*b)))) {
    *why = "out of memory";
    return -ENOMEM;
  }
  if (!(b->skel = po_owners_bpf__open())) {
    rc = -ENOMEM;
    *why = "opening the BPF object";
    goto fail;
  }
  b->skel->rodata->pidns_inum = inum;
  errno = 0;
  rc = po_owners_bpf__load(b->skel);
  if (rc) {
    rc = rc < 0 ? rc : errno ? -errno : -EINVAL;
    *why = "loading the BPF programs (needs root or CAP_BPF and CAP_PERFMON, "
           "and Linux 5.17 or later)";
    goto fail;
  }
  errno = 0;
  rc = po_owners_bpf__attach(b->skel);
  if (rc < 0) {
    rc = errno ? -errno : rc;
    *why = "attaching the BPF iterators";
    goto fail;
  }
  b->walks = PO_BPF_ALL;
  *out = b;
  return 0;

fail:
  po_bpf_free(b);
  return rc < 0 ? rc : -EINVAL;
}

void po_bpf_free(struct po_bpf *b) {
  if (!b)
    return;
  po_owners_bpf__destroy(b->skel);
  free(b->inmap);
  free(b->fmap);
  free(b->learned);
  free(b->next);
  free(b->want);
  free(b->recs);
  free(b);
}

static int want_cmp(const void *a, const void *b) {
  const struct want *x = a, *y = b;

  if (x->inode != y->inode)
    return x->inode < y->inode ? -1 : 1;
  return x->sock < y->sock ? -1 : x->sock > y->sock;
}

/* By process, table, inode, then fd. */
static int rec_cmp(const void *a, const void *b) {
  const struct po_bpf_rec *x = a, *y = b;

  if (x->tgid != y->tgid)
    return x->tgid < y->tgid ? -1 : 1;
  if (x->table != y->table)
    return x->table < y->table ? -1 : 1;
  if (x->inode != y->inode)
    return x->inode < y->inode ? -1 : 1;
  return x->fd < y->fd ? -1 : x->fd > y->fd;
}

static int grow(void **v, size_t *cap, size_t need, size_t size) {
  size_t n = *cap ? *cap : 16;
  void *p;

  if (need <= *cap)
    return 0;
  while (n < need) {
    if (n > SIZE_MAX / 2 / size)
      return -ENOMEM;
    n *= 2;
  }
  if (!(p = realloc(*v, n * size)))
    return -ENOMEM;
  *v = p;
  *cap = n;
  return 0;
}

/* "wanted" holds exactly the inodes of b->want[0..n) (sorted), and
 * b->inmap[0..ninmap) lists them, each once, ascending (what plan() and
 * learn() go by). Only what changed since the last walk is written: a
 * plugin's wanted set is the same read after read. More than
 * PO_BPF_WANTED_MAX distinct inodes: -E2BIG, the map as it was. */
static int map_set(struct po_bpf *b, size_t n) {
  int fd = b->skel->maps.wanted.map_fd;
  uint8_t one = 1;
  size_t i = 0, j = 0, k = 0;
  uint64_t *next;
  int rc;

  rc = grow((void **)&b->next, &b->next_cap, n ? n : 1, sizeof(*b->next));
  if (rc)
    return rc;
  next = (uint64_t *)b->next; /* sizeof(struct learned) > sizeof(uint64_t) */
  for (size_t w = 0; w < n; w++)
    if (w == 0 || b->want[w].inode != b->want[w - 1].inode)
      next[k++] = b->want[w].inode;
  if (k > PO_BPF_WANTED_MAX)
    return -E2BIG;
  /* Merge the old list (i) with the new (j). */
  while (i < b->ninmap || j < k) {
    if (j == k || (i < b->ninmap && b->inmap[i] < next[j])) {
      map_delete(fd, &b->inmap[i++]);
    } else if (i == b->ninmap || next[j] < b->inmap[i]) {
      if ((rc = map_update(fd, &next[j], &one)) != 0) {
        /* What the map holds is not known now: empty it. */
        for (size_t d = 0; d < b->ninmap; d++)
          map_delete(fd, &b->inmap[d]);
        for (size_t d = 0; d < j; d++)
          map_delete(fd, &next[d]);
        b->ninmap = 0;
        return rc;
      }
      j++;
    } else {
      i++;
      j++;
    }
  }
  rc = grow((void **)&b->inmap, &b->inmap_cap, k ? k : 1, sizeof(*b->inmap));
  if (rc) {
    b->ninmap = 0;
    return rc;
  }
  memcpy(b->inmap, next, k * sizeof(*next));
  b->ninmap = k;
  return 0;
}

/* "wanted_files" and the filter hold exactly the pairs of b->next[0..n)
 * (sorted by inode). */
static int fmap_set(struct po_bpf *b, size_t n) {
  int fd = b->skel->maps.wanted_files.map_fd;
  int rc;

  if (n == b->nfmap && memcmp(b->fmap, b->next, n * sizeof(*b->next)) == 0)
    return 0;
  for (size_t i = 0; i < b->nfmap; i++)
    map_delete(fd, &b->fmap[i].file);
  b->nfmap = 0;
  memset(b->skel->bss->filt, 0, sizeof(b->skel->bss->filt));
  rc = grow((void **)&b->fmap, &b->fmap_cap, n ? n : 1, sizeof(*b->fmap));
  if (rc)
    return rc;
  for (size_t i = 0; i < n; i++) {
    uint64_t h = po_bpf_filt_bit(b->next[i].file);

    if ((rc = map_update(fd, &b->next[i].file, &b->next[i].inode)) != 0) {
      /* Out again what went in: nothing half-set stays. */
      for (size_t k = 0; k <= i; k++)
        map_delete(fd, &b->next[k].file);
      memset(b->skel->bss->filt, 0, sizeof(b->skel->bss->filt));
      return rc;
    }
    b->skel->bss->filt[h >> 6] |= 1ULL << (h & 63);
  }
  memcpy(b->fmap, b->next, n * sizeof(*b->next));
  b->nfmap = n;
  return 0;
}

/* The entry of v[0..n) (sorted by inode) for inode, or NULL. */
static struct learned *learned_find(struct learned *v, size_t n,
                                    uint64_t inode) {
  size_t lo = 0, hi = n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (v[mid].inode < inode)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && v[lo].inode == inode ? &v[lo] : NULL;
}

/* The file learned for inode, or 0. */
static uint64_t learned_file(struct po_bpf *b, uint64_t inode) {
  const struct learned *l = learned_find(b->learned, b->nlearned, inode);

  return l ? l->file : 0;
}

/* b->next[0..*n): the wanted inodes (b->inmap) with the file each is known
 * by, from b->learned; returns 1 when every wanted inode has one. */
static int plan(struct po_bpf *b, size_t *n) {
  int all = 1;

  *n = 0;
  for (size_t i = 0; i < b->ninmap; i++) {
    uint64_t f = learned_file(b, b->inmap[i]);

    if (!f) {
      all = 0;
      continue;
    }
    b->next[(*n)++] = (struct learned){.inode = b->inmap[i], .file = f};
  }
  return all;
}

/* b->learned: for each wanted inode, the file of a record of this walk, or
 * the one known before (a walk of tables finds only files it knew). */
static int learn(struct po_bpf *b) {
  size_t k = b->ninmap, m = 0;
  int rc = grow((void **)&b->next, &b->next_cap, k ? k : 1, sizeof(*b->next));

  if (rc)
    return rc;
  for (size_t i = 0; i < k; i++)
    b->next[i] = (struct learned){.inode = b->inmap[i]};
  for (size_t i = 0; i < b->nrecs; i++) {
    struct learned *l = learned_find(b->next, k, b->recs[i].inode);

    if (l && b->recs[i].file)
      l->file = b->recs[i].file;
  }
  for (size_t i = 0; i < k; i++) {
    if (!b->next[i].file)
      b->next[i].file = learned_file(b, b->next[i].inode);
    if (b->next[i].file)
      b->next[m++] = b->next[i];
  }
  rc = grow((void **)&b->learned, &b->learned_cap, m ? m : 1,
            sizeof(*b->learned));
  if (rc) {
    b->nlearned = 0;
    return rc;
  }
  memcpy(b->learned, b->next, m * sizeof(*b->next));
  b->nlearned = m;
  return 0;
}

/* Reads the records of link's iterator into b->recs. With upto > 0, reads
 * at most upto records at a time and stops at a marker (a record of inode
 * 0, not kept): the kernel's seq read stops as soon as the bytes asked for
 * are written, so the iteration ends there and what follows the marker is
 * never walked. */
static int run_iter(struct po_bpf *b, int link, size_t upto) {
  int fd = iter_create(link);
  int rc = 0;

  if (fd < 0)
    return fd;
  b->nrecs = 0;
  for (;;) {
    ssize_t n;

    rc =
        grow((void **)&b->recs, &b->recs_cap, b->nrecs + 256, sizeof(*b->recs));
    if (rc)
      break;
    size_t room = b->recs_cap - b->nrecs;

    if (upto && room > upto)
      room = upto;
    n = read(fd, (char *)(b->recs + b->nrecs), room * sizeof(*b->recs));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      rc = -errno;
      break;
    }
    if (n == 0)
      break;
    /* The seq file hands out whole records (one bpf_seq_write each). */
    if (n % (ssize_t)sizeof(*b->recs) != 0) {
      rc = -EIO;
      break;
    }
    if (upto) {
      size_t got = (size_t)n / sizeof(*b->recs), k = 0;

      while (k < got && b->recs[b->nrecs + k].inode != 0)
        k++;
      b->nrecs += k;
      if (k < got)
        break; /* the marker */
      continue;
    }
    b->nrecs += (size_t)n / sizeof(*b->recs);
  }
  close(fd);
  return rc;
}

/* Runs the learning iterators of the protocols whose wanted sockets have no
 * file known, and learns from their records. */
static int learn_from_sockets(struct po_bpf *b, const struct po_table *t,
                              size_t nwant) {
  size_t ntcp = 0;
  int tcp = 0, udp = 0, rc;

  for (size_t w = 0; w < nwant; w++) {
    int is_udp = t->v[b->want[w].sock].proto == IPPROTO_UDP;

    ntcp += !is_udp && (w == 0 || b->want[w].inode != b->want[w - 1].inode);
    if (!learned_file(b, b->want[w].inode)) {
      if (is_udp)
        udp = 1;
      else
        tcp = 1;
    }
  }
  /* TCP: the listeners come first, then the established hash (every
   * bucket walked, hundreds of thousands on a big host): po_learn_tcp marks
   * where that starts, and the read stops there. At most one record per
   * wanted TCP inode comes before it. */
  if (tcp) {
    b->skel->bss->tcp_marked = 0;
    if ((rc = run_iter(b, b->skel->links.po_learn_tcp_fd, ntcp + 1)) != 0 ||
        (rc = learn(b)) != 0)
      return rc;
  }
  if (udp) {
    if ((rc = run_iter(b, b->skel->links.po_learn_udp_fd, 0)) != 0 ||
        (rc = learn(b)) != 0)
      return rc;
  }
  return 0;
}

static struct po_owner *push(struct po_owners *o, pid_t pid, pid_t tid,
                             size_t sock) {
  struct po_owner *w;

  if (grow((void **)&o->v, &o->cap, o->len + 1, sizeof(*o->v)))
    return NULL;
  w = &o->v[o->len++];
  *w = (struct po_owner){.pid = pid, .tid = tid, .sock = sock};
  return w;
}

/* 1 when a record of b->recs for inode is in its process's main table. */
static int held_in_main(const struct po_bpf *b, uint64_t inode) {
  for (size_t i = 0; i < b->nrecs; i++)
    if (b->recs[i].inode == inode && b->recs[i].tid == 0)
      return 1;
  return 0;
}

int po_bpf_walk(struct po_bpf *b, const struct po_table *t,
                struct po_owners *out, struct po_walk_stats *st) {
  struct po_walk_stats dummy = {0};
  size_t n = 0, base;
  int rc;

  if (!b || !t || !out)
    return -EINVAL;
  if (!st)
    st = &dummy;
  rc = grow((void **)&b->want, &b->want_cap, t->len ? t->len : 1,
            sizeof(*b->want));
  if (rc)
    return rc;
  for (size_t i = 0; i < t->len; i++)
    if (t->v[i].inode != 0)
      b->want[n++] = (struct want){.inode = t->v[i].inode, .sock = i};
  if (n == 0)
    return 0;
  qsort(b->want, n, sizeof(*b->want), want_cmp);
  rc = grow((void **)&b->next, &b->next_cap, n, sizeof(*b->next));
  if (rc)
    return rc;
  rc = map_set(b, n);
  if (rc)
    return rc;
  b->skel->bss->nfiles = 0;
  b->skel->bss->ntasks = 0;
  b->skel->bss->last_task = NULL;
  {
    size_t nf;
    int tables = (b->walks & PO_BPF_TABLES) != 0;
    int all = tables && plan(b, &nf);

    /* Files not known yet are learned from the sockets' side (the TCP
     * listeners and UDP sockets of our network namespace: a few
     * microseconds per socket); what is still unknown after that (a socket
     * of another namespace) makes this a walk of files, which learns it. */
    if (tables && !all && (b->walks & PO_BPF_LEARN_SOCKETS)) {
      rc = learn_from_sockets(b, t, n);
      if (rc)
        return rc;
      all = plan(b, &nf);
    }
    if (all) {
      rc = fmap_set(b, nf);
      if (rc)
        return rc;
      b->last = PO_BPF_WALK_TABLES;
      b->skel->bss->truncated = 0;
      rc = run_iter(b, b->skel->links.po_tables_fd, 0);
      /* A table with more records than one seq write holds (many sockets
       * with many fds each): this walk is not whole, walk files. */
      if (!rc && b->skel->bss->truncated)
        all = 0;
    }
    if (!rc && !all) {
      b->skel->bss->nfiles = 0;
      b->skel->bss->ntasks = 0;
      b->skel->bss->last_task = NULL;
      b->last = PO_BPF_WALK_FILES;
      rc = run_iter(b, b->skel->links.po_owners_fd, 0);
    }
  }
  if (rc)
    return rc;
  rc = learn(b);
  if (rc)
    return rc;
  st->procs += b->skel->bss->ntasks;
  st->listed += b->skel->bss->ntasks;
  st->fds += b->skel->bss->nfiles;
  st->bpf_tables = b->last == PO_BPF_WALK_TABLES;
  if (b->nrecs > 1)
    qsort(b->recs, b->nrecs, sizeof(*b->recs), rec_cmp);

  /* One owner per (process, table, socket entry of t). The tid of a table
   * of tasks' own is the lowest tid seen with it. */
  base = out->len;
  for (size_t i = 0; i < b->nrecs;) {
    const struct po_bpf_rec *r = &b->recs[i];
    size_t j = i, lo = 0, hi = n;
    pid_t tid = (pid_t)r->tid;

    while (j < b->nrecs && b->recs[j].tgid == r->tgid &&
           b->recs[j].table == r->table && b->recs[j].inode == r->inode) {
      if (b->recs[j].tid && (pid_t)b->recs[j].tid < tid)
        tid = (pid_t)b->recs[j].tid;
      j++;
    }
    /* A task's own table counts, as a look's does, only for a socket that
     * no process's main table holds. */
    if (tid != 0 && held_in_main(b, r->inode)) {
      i = j;
      continue;
    }
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;

      if (b->want[mid].inode < r->inode)
        lo = mid + 1;
      else
        hi = mid;
    }
    for (; lo < n && b->want[lo].inode == r->inode; lo++) {
      struct po_owner *o = push(out, (pid_t)r->tgid, tid, b->want[lo].sock);

      if (!o) {
        out->len = base;
        return -ENOMEM;
      }
      o->fd = (int)r->fd;
      for (size_t k = i; k < j; k++) {
        /* Ascending already: keep the lowest PO_OWNER_FDS. Tasks that
         * share a table of their own give its fds once each. A walk of
         * tables gives the lowest PO_BPF_KEEP_FDS, then their number. */
        if (b->recs[k].fd == PO_BPF_FD_COUNT) {
          if (b->recs[k].count > o->nfds)
            o->nfds = b->recs[k].count;
          continue;
        }
        if (k > i && b->recs[k].fd == b->recs[k - 1].fd)
          continue;
        if (o->nfds < PO_OWNER_FDS)
          o->fds[o->nfds] = (int)b->recs[k].fd;
        if (o->nfds < UINT32_MAX)
          o->nfds++;
      }
    }
    i = j;
  }
  return 0;
}

enum po_bpf_walk_kind po_bpf_last_walk(const struct po_bpf *b) {
  return b ? b->last : PO_BPF_WALK_NONE;
}

void po_bpf_set_walks(struct po_bpf *b, unsigned mask) {
  if (b)
    b->walks = mask & PO_BPF_ALL;
}

#endif /* HAVE_BPF */
