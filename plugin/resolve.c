/*
 * portowner: the owner resolver.
 *
 * One walk reads <proc_root> and each <proc_root>/PID/fd with getdents64()
 * into two buffers the resolver keeps, and does one readlinkat() per fd
 * entry on the fd directory's descriptor. Links are matched against an
 * open-addressing hash set of the wanted inodes (linear probing, load factor
 * at most 1/2), rebuilt from the table at the start of every walk in memory
 * kept between walks. Nothing is allocated per process or per fd; only the
 * owners array grows (doubling), by one record per (fd table, socket): the
 * slot of a socket remembers its record of the table being read, so the
 * next fd of that table holding it is counted there.
 *
 * A look (resolve.h: owners hidden from /proc/PID/fd) lists proc_root again,
 * fstatat()s <pid>/task for the thread count, and for processes of more
 * than one thread lists the tasks into an array kept between looks (at most
 * PO_LOOK_BUDGET of them are examined) and reads the tables that kcmp(2)
 * says are new.
 */
#include "portowner/proc.h"
#include "portowner/resolve.h"
#include "portowner/resolve_bpf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

/* getdents64() buffer size, as glibc's readdir() uses. */
#define PO_DENTS_SIZE 32768
/* Longest link we need to read in full: "socket:[" 20 digits "]" is 29. */
#define PO_LINK_SIZE 64
/* Longest directory name taken as a pid ("4194304" in practice). */
#define PO_PID_DIGITS 10

/* The record getdents64() fills (linux_dirent64). */
struct po_dirent {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

struct po_slot {
  uint64_t inode;  /* 0: empty */
  size_t sock;     /* index in the table */
  int hit;         /* an owner was found this walk */
  int look;        /* looked for in task tables this call */
  int pending;     /* new since the last full walk (resolve.h) */
  uint64_t looked; /* CLOCK_BOOTTIME ns of its last look; 0: never */
  uint64_t gen;    /* the fd table (po_resolver.gen) whose record ... */
  size_t owner;    /* ... is out->v[owner] */
};

/* A process read by po_resolver_resolve(). */
struct po_pent {
  int pid;        /* 0: empty slot */
  unsigned flags; /* PO_PE_* */
  uint64_t ident; /* /proc/PID inode number, or start time; see resolve.h */
};
#define PO_PE_DENIED 1u /* its fds could not be read */
#define PO_PE_NEW 2u    /* read (again) by this call */
/* An identity that could not be read: never equal, read every time. */
#define PO_IDENT_UNKNOWN UINT64_MAX

/* Open-addressing set of processes keyed by pid, rebuilt every call. */
struct po_pmap {
  struct po_pent *v;
  size_t cap; /* a power of two, or 0 */
  size_t len;
};

/* A remembered owner. */
struct po_known {
  int pid;
  int tid; /* 0, or the task whose table holds it (found by a look) */
  uint64_t inode;
  uint32_t nfds;
  int fds[PO_OWNER_FDS]; /* as po_owner.fds */
};

/* A socket wanted by the last call, whether it had an owner, and when it
 * was last looked for in task tables. */
struct po_wanted {
  uint64_t inode;
  int owned;
  int pending; /* not seen by a full walk yet */
  uint64_t looked;
};

struct po_resolver {
  struct po_slot *slots;
  size_t cap;     /* slots allocated */
  size_t nslots;  /* slots in use this walk: a power of two, or 0 */
  unsigned shift; /* 64 - log2(nslots) */
  char *proc_buf; /* getdents64() of proc_root */
  char *fd_buf;   /* getdents64() of one fd directory */

  /* po_resolver_resolve()'s memory, valid when tracking is set. */
  int tracking;
  struct po_pmap procs[2]; /* [cur]: processes read; the other: scratch */
  int cur;
  struct po_known *known; /* owners at the last call */
  size_t nknown, known_cap;
  struct po_wanted *wanted; /* sorted by inode, unique */
  size_t nwanted, wanted_cap;

  /* Looks in task tables. */
  uint64_t look_interval_ns;
  uint64_t look_budget;
  int look_resume; /* the next look starts after this pid; 0: at the top */
  int *tids;       /* one process's tasks */
  size_t tids_cap;

  uint64_t gen; /* bumped for each fd table read: see po_slot.gen */
  /* Full walks for new sockets (resolve.h). */
  uint64_t new_walk_interval_ns;
  uint64_t last_new_walk_ns; /* CLOCK_BOOTTIME (+1); 0: none yet */

  struct po_bpf *bpf; /* the walk in the kernel, when in use */
};

struct po_resolver *po_resolver_new(void) {
  struct po_resolver *r = calloc(1, sizeof(*r));
  if (!r)
    return NULL;
  /* malloc() aligns for the 8-byte fields of the records. */
  r->look_interval_ns = PO_LOOK_INTERVAL_DEFAULT_NS;
  r->look_budget = PO_LOOK_BUDGET;
  r->new_walk_interval_ns = PO_NEW_WALK_INTERVAL_DEFAULT_NS;
  r->proc_buf = malloc(PO_DENTS_SIZE);
  r->fd_buf = malloc(PO_DENTS_SIZE);
  if (!r->proc_buf || !r->fd_buf) {
    po_resolver_free(r);
    errno = ENOMEM;
    return NULL;
  }
  return r;
}

void po_resolver_free(struct po_resolver *r) {
  if (!r)
    return;
  free(r->slots);
  free(r->proc_buf);
  free(r->fd_buf);
  free(r->procs[0].v);
  free(r->procs[1].v);
  free(r->known);
  free(r->wanted);
  free(r->tids);
  po_bpf_free(r->bpf);
  free(r);
}

int po_resolver_use_bpf(struct po_resolver *r, const char *proc_root,
                        const char **why) {
  struct po_bpf *b = NULL;
  int rc;

  if (!r || !proc_root)
    return -EINVAL;
  rc = po_bpf_open(proc_root, &b, why);
  if (rc)
    return rc;
  po_bpf_free(r->bpf);
  r->bpf = b;
  po_resolver_forget(r);
  return 0;
}

void po_resolver_set_bpf_walks(struct po_resolver *r, unsigned mask) {
  if (r)
    po_bpf_set_walks(r->bpf, mask);
}

enum po_resolver_kind po_resolver_kind(const struct po_resolver *r) {
  return r && r->bpf ? PO_RESOLVER_BPF : PO_RESOLVER_PROC;
}

const char *po_resolver_kind_name(enum po_resolver_kind k) {
  return k == PO_RESOLVER_BPF ? "bpf" : "proc";
}

/* Every call of the BPF resolver: one full walk in the kernel. */
static int bpf_resolve(struct po_resolver *r, const struct po_table *t,
                       struct po_owners *out, struct po_walk_stats *st) {
  struct po_walk_stats dummy = {0};
  int has = 0;

  if (!st)
    st = &dummy;
  for (size_t i = 0; i < t->len && !has; i++)
    has = t->v[i].inode != 0;
  if (!has) {
    st->kind = PO_WALK_NONE;
    return 0;
  }
  int rc = po_bpf_walk(r->bpf, t, out, st);
  if (rc)
    return rc;
  st->kind = PO_WALK_FULL;
  st->reason = PO_REASON_BPF;
  return 0;
}

void po_resolver_forget(struct po_resolver *r) {
  if (!r)
    return;
  r->tracking = 0;
  r->nknown = 0;
  r->nwanted = 0;
  r->procs[0].len = 0;
  r->procs[1].len = 0;
  r->look_resume = 0;
  r->last_new_walk_ns = 0;
}

void po_resolver_set_look_interval(struct po_resolver *r, uint64_t ns) {
  if (r)
    r->look_interval_ns = ns;
}

void po_resolver_set_new_walk_interval(struct po_resolver *r, uint64_t ns) {
  if (r)
    r->new_walk_interval_ns = ns;
}

void po_resolver_set_look_budget(struct po_resolver *r, uint64_t calls) {
  if (r)
    r->look_budget = calls ? calls : PO_LOOK_BUDGET;
}

void po_owners_free(struct po_owners *o) {
  if (!o)
    return;
  free(o->v);
  o->v = NULL;
  o->len = 0;
  o->cap = 0;
}

int po_socket_link_parse(const char *link, size_t len, uint64_t *inode) {
  static const char prefix[] = "socket:[";
  const size_t plen = sizeof(prefix) - 1;

  /* At least one digit between the brackets. */
  if (len < plen + 2 || memcmp(link, prefix, plen) != 0 || link[len - 1] != ']')
    return 0;

  uint64_t v = 0;
  for (size_t i = plen; i < len - 1; i++) {
    unsigned d = (unsigned char)link[i] - '0';
    if (d > 9)
      return 0;
    if (v > (UINT64_MAX - d) / 10)
      return 0; /* overflow */
    v = v * 10 + d;
  }
  *inode = v;
  return 1;
}

static size_t slot_of(const struct po_resolver *r, uint64_t inode) {
  /* Fibonacci hashing: socket inodes are close to sequential. */
  return (size_t)((inode * UINT64_C(0x9E3779B97F4A7C15)) >> r->shift);
}

/* Rebuilds the set from t. Returns the number of wanted inodes or -ENOMEM. */
static long set_build(struct po_resolver *r, const struct po_table *t) {
  size_t n = 0;
  for (size_t i = 0; i < t->len; i++)
    if (t->v[i].inode != 0)
      n++;
  r->nslots = 0;
  if (n == 0)
    return 0;
  if (n > SIZE_MAX / 4 / sizeof(struct po_slot))
    return -ENOMEM;

  size_t want = 16;
  unsigned bits = 4;
  while (want < 2 * n) {
    want *= 2;
    bits++;
  }
  if (want > r->cap) {
    struct po_slot *s = malloc(want * sizeof(*s));
    if (!s)
      return -ENOMEM;
    free(r->slots);
    r->slots = s;
    r->cap = want;
  }
  r->nslots = want;
  r->shift = 64 - bits;
  memset(r->slots, 0, want * sizeof(*r->slots));

  /* A duplicate inode in t takes a slot of its own: every entry of the
   * table gets the owners of its inode. */
  for (size_t i = 0; i < t->len; i++) {
    uint64_t inode = t->v[i].inode;
    if (inode == 0)
      continue;
    size_t j = slot_of(r, inode);
    while (r->slots[j].inode != 0)
      j = (j + 1) & (r->nslots - 1);
    r->slots[j].inode = inode;
    r->slots[j].sock = i;
  }
  return (long)n;
}

/* A new record at the end of o, or NULL (out of memory). */
static struct po_owner *owners_push(struct po_owners *o, pid_t pid, pid_t tid,
                                    size_t sock) {
  if (o->len == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 16;
    if (cap < o->cap || cap > SIZE_MAX / sizeof(*o->v))
      return NULL;
    struct po_owner *v = realloc(o->v, cap * sizeof(*v));
    if (!v)
      return NULL;
    o->v = v;
    o->cap = cap;
  }
  struct po_owner *w = &o->v[o->len++];
  *w = (struct po_owner){.pid = pid, .tid = tid, .sock = sock};
  return w;
}

/* Counts one more fd of o holding its socket, keeping the lowest
 * PO_OWNER_FDS numbers in order. */
static void owner_fd_add(struct po_owner *o, int fd) {
  size_t n = o->nfds < PO_OWNER_FDS ? o->nfds : PO_OWNER_FDS;

  if (o->nfds < UINT32_MAX)
    o->nfds++;
  if (n == PO_OWNER_FDS) {
    if (fd >= o->fds[n - 1])
      return;
    n--; /* the highest kept gives way */
  }
  size_t i = n;
  for (; i > 0 && o->fds[i - 1] > fd; i--)
    o->fds[i] = o->fds[i - 1];
  o->fds[i] = fd;
  o->fd = o->fds[0];
}

/* Where an fd directory is and what its matches are. */
struct fd_dir {
  pid_t pid;
  pid_t tid;        /* 0: <pid>/fd; else <pid>/task/<tid>/fd */
  int look;         /* match only the sockets marked for the look */
  uint64_t *budget; /* readlinks left (a look's), NULL: no limit */
};

/* Counts fd for every socket of the table with this inode (in a look:
 * every socket marked for it), in the record of the fd table being read
 * (r->gen), which the first such fd appends. */
static int set_match(struct po_resolver *r, uint64_t inode,
                     const struct fd_dir *dir, int fd, struct po_owners *out) {
  if (inode == 0)
    return 0;
  for (size_t j = slot_of(r, inode); r->slots[j].inode != 0;
       j = (j + 1) & (r->nslots - 1)) {
    struct po_slot *s = &r->slots[j];
    if (s->inode != inode || (dir->look && !s->look))
      continue;
    s->hit = 1;
    struct po_owner *o;
    if (s->gen == r->gen && s->owner < out->len) {
      o = &out->v[s->owner];
    } else {
      o = owners_push(out, dir->pid, dir->tid, s->sock);
      if (!o)
        return -ENOMEM;
      s->gen = r->gen;
      s->owner = out->len - 1;
    }
    owner_fd_add(o, fd);
  }
  return 0;
}

/* Parses a name made of 1 to max_digits digits into *v; 0 when it is not. */
static int parse_num(const char *name, size_t max_digits, int *v, size_t *len) {
  uint64_t n = 0;
  size_t i = 0;
  for (; name[i] != '\0'; i++) {
    unsigned d = (unsigned char)name[i] - '0';
    if (d > 9 || i == max_digits)
      return 0;
    n = n * 10 + d;
  }
  if (i == 0 || n > INT_MAX)
    return 0;
  *v = (int)n;
  *len = i;
  return 1;
}

/* Counts process pid as denied, its pid kept while there is room. */
static void count_denied(struct po_walk_stats *st, pid_t pid) {
  st->denied++;
  for (unsigned i = 0; i < st->denied_pids; i++)
    if (st->denied_pid[i] == pid)
      return;
  if (st->denied_pids < PO_WALK_DENIED_PIDS)
    st->denied_pid[st->denied_pids++] = pid;
}

/* Reads the fd directory at path (relative to pfd). */
static int walk_fds(struct po_resolver *r, int pfd, const char *path,
                    const struct fd_dir *dir, struct po_owners *out,
                    struct po_walk_stats *st) {
  int dfd = openat(pfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    switch (errno) {
    case ENOENT:
    case ESRCH:
      st->vanished++;
      return 0;
    case EACCES:
    case EPERM:
      count_denied(st, dir->pid);
      return 0;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      /* Every later process would fail alike: say so, do not return a
       * walk that silently misses owners. */
      return -errno;
    default:
      return 0; /* not a process directory (ENOTDIR...) */
    }
  }

  int rc = 0;
  r->gen++; /* a table of its own: records of its own */
  for (;;) {
    ssize_t n = getdents64(dfd, r->fd_buf, PO_DENTS_SIZE);
    if (n <= 0) {
      if (n < 0 && (errno == ENOENT || errno == ESRCH))
        st->vanished++;
      break;
    }
    for (ssize_t off = 0; off < n;) {
      const struct po_dirent *d = (const void *)(r->fd_buf + off);
      off += d->d_reclen;
      if (d->d_type != DT_LNK && d->d_type != DT_UNKNOWN)
        continue;
      int fd;
      size_t nlen;
      if (!parse_num(d->d_name, PO_PID_DIGITS, &fd, &nlen))
        continue;
      if (dir->budget) {
        if (*dir->budget == 0)
          goto out;
        --*dir->budget;
      }

      char link[PO_LINK_SIZE];
      ssize_t len = readlinkat(dfd, d->d_name, link, sizeof(link));
      if (len < 0) {
        if (errno != EACCES && errno != EPERM)
          continue; /* ENOENT: closed since getdents64() */
        /* The directory opened but the links are refused (ptrace access
         * check: a process of another user namespace, or not dumpable and
         * no CAP_SYS_PTRACE): they all will be. */
        count_denied(st, dir->pid);
        goto out;
      }
      st->fds++;

      uint64_t inode;
      if (!po_socket_link_parse(link, (size_t)len, &inode))
        continue;
      rc = set_match(r, inode, dir, fd, out);
      if (rc < 0)
        goto out;
    }
  }
out:
  close(dfd);
  return rc;
}

/* ---- processes read, for po_resolver_resolve() ------------------------- */

static size_t pmap_slot(const struct po_pmap *m, int pid) {
  return (size_t)(((uint64_t)(unsigned)pid * UINT64_C(0x9E3779B97F4A7C15)) >>
                  32) &
         (m->cap - 1);
}

static struct po_pent *pmap_find(const struct po_pmap *m, int pid) {
  if (m->cap == 0)
    return NULL;
  for (size_t j = pmap_slot(m, pid); m->v[j].pid != 0;
       j = (j + 1) & (m->cap - 1))
    if (m->v[j].pid == pid)
      return &m->v[j];
  return NULL;
}

/* Inserts (or overwrites) pid. Grows at a load of 1/2: memory follows the
 * number of processes. Returns 0 or -ENOMEM. */
static int pmap_put(struct po_pmap *m, int pid, unsigned flags,
                    uint64_t ident) {
  if (2 * (m->len + 1) > m->cap) {
    size_t cap = m->cap ? 2 * m->cap : 1024;
    if (cap > SIZE_MAX / sizeof(struct po_pent))
      return -ENOMEM;
    struct po_pent *v = calloc(cap, sizeof(*v));
    if (!v)
      return -ENOMEM;
    struct po_pmap n = {.v = v, .cap = cap, .len = 0};
    for (size_t i = 0; i < m->cap; i++) {
      if (m->v[i].pid == 0)
        continue;
      size_t j = pmap_slot(&n, m->v[i].pid);
      while (n.v[j].pid != 0)
        j = (j + 1) & (n.cap - 1);
      n.v[j] = m->v[i];
      n.len++;
    }
    free(m->v);
    *m = n;
  }
  size_t j = pmap_slot(m, pid);
  while (m->v[j].pid != 0 && m->v[j].pid != pid)
    j = (j + 1) & (m->cap - 1);
  if (m->v[j].pid == 0)
    m->len++;
  m->v[j] = (struct po_pent){.pid = pid, .flags = flags, .ident = ident};
  return 0;
}

static void pmap_clear(struct po_pmap *m) {
  if (m->len > 0)
    memset(m->v, 0, m->cap * sizeof(*m->v));
  m->len = 0;
}

/* The start time (field 22 of <pid>/stat, after the last ')': comm may hold
 * anything), or PO_IDENT_UNKNOWN. */
static uint64_t start_time(int pfd, const char *pid_name, size_t len) {
  char path[PO_PID_DIGITS + sizeof("/stat")];
  char buf[1024];
  memcpy(path, pid_name, len);
  memcpy(path + len, "/stat", sizeof("/stat"));
  /* Only off procfs: a FIFO or a device in a fixture tree is not read
   * (O_NONBLOCK, regular files only), so it cannot block the walk. */
  int fd = openat(pfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  struct stat st;
  if (fd < 0)
    return PO_IDENT_UNKNOWN;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return PO_IDENT_UNKNOWN;
  }
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0)
    return PO_IDENT_UNKNOWN;
  buf[n] = '\0';
  uint64_t v = po_proc_stat_start(buf);
  return v ? v : PO_IDENT_UNKNOWN;
}

static int is_procfs(int pfd) {
  struct statfs sf;
  return fstatfs(pfd, &sf) == 0 && sf.f_type == PROC_SUPER_MAGIC;
}

/* ---- walks -----------------------------------------------------------------
 */

/* What a walk over proc_root does with each process. */
struct walk_ctx {
  struct po_resolver *r;
  int pfd;
  int procfs;
  int track;       /* record processes into r->procs[!r->cur] */
  int incremental; /* only processes not in r->procs[r->cur] */
  struct po_owners *out;
  struct po_walk_stats *st;
};

/* One <pid> entry of proc_root. */
static int walk_proc(struct walk_ctx *w, const struct po_dirent *d, int pid,
                     size_t len) {
  struct po_resolver *r = w->r;
  uint64_t ident = 0;
  unsigned flags = PO_PE_NEW;

  w->st->listed++;
  if (w->track)
    ident = w->procfs ? d->d_ino : start_time(w->pfd, d->d_name, len);
  if (w->incremental) {
    const struct po_pent *old = pmap_find(&r->procs[r->cur], pid);
    if (old && old->ident == ident && ident != PO_IDENT_UNKNOWN) {
      /* Read before, the same process: its fds are known. */
      if (old->flags & PO_PE_DENIED)
        count_denied(w->st, (pid_t)pid);
      return pmap_put(&r->procs[!r->cur], pid, old->flags & PO_PE_DENIED,
                      ident);
    }
  }

  char path[PO_PID_DIGITS + sizeof("/fd")];
  memcpy(path, d->d_name, len);
  memcpy(path + len, "/fd", sizeof("/fd"));
  uint64_t denied = w->st->denied;
  w->st->procs++;
  const struct fd_dir dir = {.pid = (pid_t)pid};
  int rc = walk_fds(r, w->pfd, path, &dir, w->out, w->st);
  if (rc < 0 || !w->track)
    return rc;
  if (w->st->denied != denied)
    flags |= PO_PE_DENIED;
  return pmap_put(&r->procs[!r->cur], pid, flags, ident);
}

/* Calls fn(arg, entry, pid, length of its name) for each process directory
 * of proc_root (pfd, read from its offset) into r->proc_buf: the one
 * getdents64() loop of the walks and the looks. Stops at the first
 * negative return of fn. Returns 0 or -errno. */
static int each_pid(struct po_resolver *r, int pfd,
                    int (*fn)(void *arg, const struct po_dirent *d, int pid,
                              size_t len),
                    void *arg) {
  for (;;) {
    ssize_t n = getdents64(pfd, r->proc_buf, PO_DENTS_SIZE);
    if (n < 0)
      return -errno;
    if (n == 0)
      return 0;
    for (ssize_t off = 0; off < n;) {
      const struct po_dirent *d = (const void *)(r->proc_buf + off);
      int pid;
      size_t len;
      off += d->d_reclen;
      if (d->d_type != DT_DIR && d->d_type != DT_UNKNOWN)
        continue;
      if (!parse_num(d->d_name, PO_PID_DIGITS, &pid, &len) || pid == 0)
        continue;
      int rc = fn(arg, d, pid, len);
      if (rc < 0)
        return rc;
    }
  }
}

static int walk_one(void *arg, const struct po_dirent *d, int pid, size_t len) {
  return walk_proc(arg, d, pid, len);
}

static int walk_all(struct walk_ctx *w) {
  return each_pid(w->r, w->pfd, walk_one, w);
}

/* ---- owners hidden from <pid>/fd: looks in task tables ---------------------
 */

/* A task's fd table, as a look tells tables apart. */
struct look_table {
  int tid;
  dev_t dev; /* not procfs: the fd directory's device and inode */
  ino_t ino;
};

/* One look. */
struct look {
  struct po_resolver *r;
  int pfd;
  int procfs;
  int kcmp;        /* kcmp(2) tells tables apart */
  uint64_t budget; /* system calls left */
  int last;        /* the last process examined */
  struct po_owners *out;
  struct po_walk_stats *st;
};

/* kcmp(2) of the fd tables of tasks a and b: 0 the same, 1 or 2 (ordered)
 * or 3 different, or -errno. */
static int files_cmp(int a, int b) {
#ifdef SYS_kcmp
  long rc = syscall(SYS_kcmp, (pid_t)a, (pid_t)b, KCMP_FILES, 0UL, 0UL);
  return rc < 0 ? -errno : (int)rc;
#else
  (void)a;
  (void)b;
  return -ENOSYS;
#endif
}

/* 1 when kcmp(2) may compare the tasks of proc_root: procfs of our own pid
 * namespace (its "self" is our pid), and a kernel that answers. */
static int kcmp_usable(int pfd, int procfs) {
  char buf[PO_PID_DIGITS + 1];
  int pid;
  size_t len;

  if (!procfs)
    return 0;
  ssize_t n = readlinkat(pfd, "self", buf, sizeof(buf) - 1);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  if (!parse_num(buf, PO_PID_DIGITS, &pid, &len) || pid != (int)getpid())
    return 0;
  return files_cmp(pid, pid) == 0;
}

static int int_cmp(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;

  return (x > y) - (x < y);
}

/* Spends one system call of the look's budget; 0 when none is left. */
static int spend(struct look *lk) {
  if (lk->budget == 0)
    return 0;
  lk->budget--;
  return 1;
}

/* Fills the table identity of a fixture tree (not procfs): the device and
 * inode of its fd directory at path. Returns 0 or -errno. */
static int table_stat(struct look *lk, const char *path, struct look_table *t) {
  struct stat sb;

  if (!spend(lk))
    return -ENOSPC;
  if (fstatat(lk->pfd, path, &sb, 0) != 0)
    return -errno;
  t->dev = sb.st_dev;
  t->ino = sb.st_ino;
  return 0;
}

/* 1 when tables a and b are one, 0 when not, -ENOSPC when the budget is
 * spent, or -errno from kcmp(2). */
static int table_same(struct look *lk, const struct look_table *a,
                      const struct look_table *b) {
  if (!lk->kcmp)
    return a->dev == b->dev && a->ino == b->ino;
  if (!spend(lk))
    return -ENOSPC;
  int rc = files_cmp(a->tid, b->tid);
  return rc < 0 ? rc : rc == 0;
}

/* Lists the tasks of the process at path (<pid>/task) but the leader into
 * r->tids, at most a budget of them (no more can be examined).
 * Returns their number, -ENOSPC when the budget ran out before the list
 * was complete, or -errno. */
static long list_tasks(struct look *lk, const char *path, int leader) {
  struct po_resolver *r = lk->r;
  size_t n = 0;

  if (!spend(lk))
    return -ENOSPC;
  int dfd = openat(lk->pfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return -errno;
  for (;;) {
    if (!spend(lk) || n >= lk->r->look_budget) {
      close(dfd);
      return -ENOSPC;
    }
    ssize_t got = getdents64(dfd, r->fd_buf, PO_DENTS_SIZE);
    if (got <= 0)
      break;
    for (ssize_t off = 0; off < got;) {
      const struct po_dirent *d = (const void *)(r->fd_buf + off);
      int tid;
      size_t len;
      off += d->d_reclen;
      if (!parse_num(d->d_name, PO_PID_DIGITS, &tid, &len) || tid == leader ||
          tid == 0)
        continue;
      if (n == r->tids_cap) {
        size_t cap = r->tids_cap ? 2 * r->tids_cap : 64;
        int *v = cap > SIZE_MAX / sizeof(*v)
                     ? NULL
                     : realloc(r->tids, cap * sizeof(*v));
        if (!v) {
          close(dfd);
          return -ENOMEM;
        }
        r->tids = v;
        r->tids_cap = cap;
      }
      r->tids[n++] = tid;
    }
  }
  close(dfd);
  qsort(r->tids, n, sizeof(*r->tids), int_cmp); /* procfs lists them so */
  return (long)n;
}

/* 1 when the leader's table (<name>/fd) lists no fd: a zombie leader. */
static int leader_empty(struct look *lk, const char *name) {
  char path[PO_PID_DIGITS + sizeof("/fd")];
  int empty = 1;

  snprintf(path, sizeof(path), "%s/fd", name);
  if (!spend(lk))
    return 0;
  int dfd = openat(lk->pfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return 0;
  ssize_t got = spend(lk) ? getdents64(dfd, lk->r->fd_buf, PO_DENTS_SIZE) : -1;
  for (ssize_t off = 0; off < got && empty;) {
    const struct po_dirent *d = (const void *)(lk->r->fd_buf + off);
    off += d->d_reclen;
    empty = d->d_name[0] == '.';
  }
  close(dfd);
  return got >= 0 && empty;
}

/* Reads the table of task tid of process pid, matching the sockets marked
 * for the look. */
static int read_task_table(struct look *lk, int pid, int tid) {
  char path[2 * PO_PID_DIGITS + sizeof("/task//fd")];
  struct po_walk_stats st = {0};
  const struct fd_dir dir = {
      .pid = (pid_t)pid, .tid = (pid_t)tid, .look = 1, .budget = &lk->budget};

  snprintf(path, sizeof(path), "%d/task/%d/fd", pid, tid);
  if (!spend(lk))
    return 0;
  int rc = walk_fds(lk->r, lk->pfd, path, &dir, lk->out, &st);
  lk->st->fds += st.fds;
  lk->st->tables++;
  return rc;
}

/* Examines the tasks of one process. Returns 0 or -errno (out of memory or
 * descriptors). */
static int look_proc(struct look *lk, int pid, const char *name) {
  char path[2 * PO_PID_DIGITS + sizeof("/task//fd")];
  struct look_table kept[PO_LOOK_TABLES_KEPT + 1]; /* [0]: the leader's */
  size_t nkept = 1;
  struct stat sb;

  /* st_nlink is 2 + the threads, the leader counted even as a zombie (as
   * 2 + the subdirectories on most other file systems; one that does not
   * count them says 1: listed). */
  snprintf(path, sizeof(path), "%s/task", name);
  if (fstatat(lk->pfd, path, &sb, 0) != 0 || sb.st_nlink == 2 ||
      sb.st_nlink == 3)
    return 0;
  uint64_t others = sb.st_nlink > 3 ? (uint64_t)sb.st_nlink - 3 : 1;
  if (lk->budget == 0) {
    lk->st->tasks_skipped += others;
    return 0;
  }
  lk->last = pid;
  long n = list_tasks(lk, path, pid);
  if (n == -ENOMEM || n == -EMFILE || n == -ENFILE)
    return (int)n;
  if (n <= 0) {
    if (n == -ENOSPC)
      lk->st->tasks_skipped += others;
    return 0; /* gone, or the budget is spent */
  }

  size_t i = 0;
  if (lk->procfs && !lk->kcmp) {
    /* The kernel cannot tell tables apart for us: only a leader with an
     * empty table is seen, and its first thread's table read. */
    int rc = 0;
    if (leader_empty(lk, name)) {
      lk->st->tasks++;
      rc = read_task_table(lk, pid, lk->r->tids[0]);
      i = 1;
    }
    lk->st->tasks_skipped += (uint64_t)n - i;
    return rc;
  }

  kept[0] = (struct look_table){.tid = pid};
  if (!lk->kcmp) {
    snprintf(path, sizeof(path), "%s/fd", name);
    (void)table_stat(lk, path, &kept[0]); /* none: no task is the same */
  }
  for (; i < (size_t)n; i++) {
    struct look_table t = {.tid = lk->r->tids[i]};
    int same = 0, rc;

    if (!lk->kcmp) {
      snprintf(path, sizeof(path), "%d/task/%d/fd", pid, t.tid);
      rc = table_stat(lk, path, &t);
      if (rc == -ENOSPC)
        break;
      if (rc < 0)
        continue; /* the task is gone */
    }
    for (size_t k = 0; k < nkept && !same; k++) {
      rc = table_same(lk, &kept[k], &t);
      if (rc == -ENOSPC)
        goto spent;
      if (rc == -ESRCH && k > 0)
        continue; /* that kept task exited: no longer a table to skip */
      if (rc < 0)
        same = rc == -ESRCH ? 1 : -1; /* gone / refused: not looked at */
      else
        same = rc;
    }
    lk->st->tasks++;
    if (same < 0)
      return 0; /* no ptrace access: its fds are refused as well */
    if (same)
      continue;
    rc = read_task_table(lk, pid, t.tid);
    if (rc < 0)
      return rc;
    if (nkept < PO_LOOK_TABLES_KEPT + 1)
      kept[nkept++] = t;
    if (lk->budget == 0) {
      i++;
      break;
    }
  }
spent:
  lk->st->tasks_skipped += (uint64_t)n - i;
  return 0;
}

/* One pass of a look over proc_root. */
struct look_pass_arg {
  struct look *lk;
  int pass;
  int after;
};

static int look_one(void *arg, const struct po_dirent *d, int pid, size_t len) {
  const struct look_pass_arg *a = arg;
  (void)len;
  if ((a->pass == 0 && pid <= a->after) || (a->pass == 1 && pid >= a->after) ||
      (a->pass == 2 && pid != a->after))
    return 0;
  return look_proc(a->lk, pid, d->d_name);
}

/* Looks at the processes of proc_root with pid > after (pass 0), < after
 * (pass 1), or after itself (pass 2). */
static int look_pass(struct look *lk, int pass, int after) {
  struct look_pass_arg a = {.lk = lk, .pass = pass, .after = after};

  if (lseek(lk->pfd, 0, SEEK_SET) < 0)
    return -errno;
  return each_pid(lk->r, lk->pfd, look_one, &a);
}

/* 0 when a and b hold their socket on the same fds. */
static int owner_fds_cmp(const struct po_owner *x, const struct po_owner *y) {
  if (x->nfds != y->nfds)
    return x->nfds < y->nfds ? -1 : 1;
  for (size_t i = 0; i < x->nfds && i < PO_OWNER_FDS; i++)
    if (x->fds[i] != y->fds[i])
      return x->fds[i] < y->fds[i] ? -1 : 1;
  return 0;
}

/* Copies (same process, socket and fds) next to each other, lowest tid
 * first. */
static int owner_cmp(const void *a, const void *b) {
  const struct po_owner *x = a, *y = b;

  if (x->pid != y->pid)
    return x->pid < y->pid ? -1 : 1;
  if (x->sock != y->sock)
    return x->sock < y->sock ? -1 : 1;
  int c = owner_fds_cmp(x, y);
  if (c)
    return c;
  return (x->tid > y->tid) - (x->tid < y->tid);
}

/* A look for the sockets marked (slot.look) in the tasks of proc_root.
 * Tables of one process that hold a socket on the same fds (copies) make
 * one owner, with the lowest tid; other tables, one owner each. Returns 0
 * or -errno. */
static int look(struct po_resolver *r, int pfd, int procfs,
                struct po_owners *out, struct po_walk_stats *st) {
  struct look lk = {.r = r,
                    .pfd = pfd,
                    .procfs = procfs,
                    .kcmp = kcmp_usable(pfd, procfs),
                    .budget = r->look_budget,
                    .out = out,
                    .st = st};
  size_t base = out->len;
  int after = r->look_resume;

  /* After a look that spent its budget, the next one starts after the last
   * process it examined and ends with that one. */
  st->looks++;
  int rc = look_pass(&lk, 0, after);
  for (int pass = 1; pass <= 2 && rc == 0 && after > 0; pass++)
    rc = look_pass(&lk, pass, after);
  r->look_resume = lk.budget == 0 ? lk.last : 0;

  if (out->len - base > 1) {
    size_t w = base + 1;
    qsort(out->v + base, out->len - base, sizeof(*out->v), owner_cmp);
    for (size_t i = base + 1; i < out->len; i++) {
      const struct po_owner *p = &out->v[w - 1], *o = &out->v[i];
      if (o->pid == p->pid && o->sock == p->sock && !owner_fds_cmp(o, p))
        continue;
      out->v[w++] = *o;
    }
    out->len = w;
  }
  return rc;
}

static uint64_t boottime_ns(void) {
  struct timespec ts;

  if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
    return 1;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + 1;
}

/* 1 when slot s is left without an owner and may be looked for: a
 * pending socket (new since the last full walk) waits for that walk. */
static int look_wanted(const struct po_slot *s) {
  return s->inode != 0 && !s->hit && !s->pending;
}

/* Marks the sockets left without an owner for a look. With memory
 * (po_resolver_resolve(): slot.looked carried from the last call), only
 * when one of them is due; then every one of them is marked and its time
 * set. Returns 1 when a look is to be made. */
static int look_mark(struct po_resolver *r, int memory) {
  int any = 0, due = !memory;

  for (size_t j = 0; j < r->nslots; j++) {
    r->slots[j].look = 0;
    if (look_wanted(&r->slots[j]))
      any = 1;
  }
  if (!any)
    return 0;
  uint64_t now = boottime_ns();
  for (size_t j = 0; j < r->nslots && !due; j++) {
    const struct po_slot *s = &r->slots[j];
    if (look_wanted(s) &&
        (s->looked == 0 || now - s->looked >= r->look_interval_ns))
      due = 1;
  }
  if (!due)
    return 0;
  for (size_t j = 0; j < r->nslots; j++)
    if (look_wanted(&r->slots[j])) {
      r->slots[j].look = 1;
      r->slots[j].looked = now;
    }
  return 1;
}

int po_resolver_walk(struct po_resolver *r, const char *proc_root,
                     const struct po_table *t, struct po_owners *out,
                     struct po_walk_stats *st) {
  struct po_walk_stats dummy = {0};
  if (!r || !proc_root || !t || !out)
    return -EINVAL;
  if (r->bpf)
    return bpf_resolve(r, t, out, st);
  if (!st)
    st = &dummy;

  long wanted = set_build(r, t);
  if (wanted <= 0)
    return (int)wanted; /* nothing to look for: no walk */

  int pfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0)
    return -errno;

  uint64_t listed = st->listed;
  struct walk_ctx w = {.r = r, .pfd = pfd, .out = out, .st = st};
  int rc = walk_all(&w);
  if (rc == 0 && look_mark(r, 0))
    rc = look(r, pfd, is_procfs(pfd), out, st);
  st->listed = listed; /* not a field of this call */
  close(pfd);
  return rc;
}

/* ---- incremental resolution ------------------------------------------------
 */

static const struct po_wanted *wanted_find(const struct po_resolver *r,
                                           uint64_t inode) {
  size_t lo = 0, hi = r->nwanted;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->wanted[mid].inode == inode)
      return &r->wanted[mid];
    if (r->wanted[mid].inode < inode)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

int po_resolver_pending(const struct po_resolver *r, uint64_t inode) {
  const struct po_wanted *p;

  if (!r || r->bpf || inode == 0)
    return 0;
  p = wanted_find(r, inode);
  return p && p->pending;
}

static int wanted_cmp(const void *a, const void *b) {
  const struct po_wanted *x = a, *y = b;
  return (x->inode > y->inode) - (x->inode < y->inode);
}

/* Remembered owners by process, table and socket: one per triple. */
static int known_cmp(const void *a, const void *b) {
  const struct po_known *x = a, *y = b;

  if (x->pid != y->pid)
    return x->pid < y->pid ? -1 : 1;
  if (x->tid != y->tid)
    return x->tid < y->tid ? -1 : 1;
  return (x->inode > y->inode) - (x->inode < y->inode);
}

/* Remembers this call's wanted sockets (with their pending marks) and
 * owners (out->v[base..]). Returns 0 or -ENOMEM. */
static int remember(struct po_resolver *r, const struct po_table *t,
                    const struct po_owners *out, size_t base) {
  size_t n = 0;
  for (size_t j = 0; j < r->nslots; j++)
    if (r->slots[j].inode != 0)
      n++;
  if (n > r->wanted_cap) {
    struct po_wanted *v = realloc(r->wanted, n * sizeof(*v));
    if (!v)
      return -ENOMEM;
    r->wanted = v;
    r->wanted_cap = n;
  }
  r->nwanted = 0;
  for (size_t j = 0; j < r->nslots; j++)
    if (r->slots[j].inode != 0)
      r->wanted[r->nwanted++] = (struct po_wanted){
          .inode = r->slots[j].inode,
          .owned = r->slots[j].hit,
          .pending = r->slots[j].pending,
          .looked = r->slots[j].looked,
      };
  qsort(r->wanted, r->nwanted, sizeof(*r->wanted), wanted_cmp);
  /* A duplicate inode in the table has a slot per entry: one is enough. */
  size_t w = 0;
  for (size_t i = 0; i < r->nwanted; i++) {
    if (w > 0 && r->wanted[w - 1].inode == r->wanted[i].inode) {
      r->wanted[w - 1].owned |= r->wanted[i].owned;
      r->wanted[w - 1].pending |= r->wanted[i].pending;
      if (r->wanted[i].looked > r->wanted[w - 1].looked)
        r->wanted[w - 1].looked = r->wanted[i].looked;
      continue;
    }
    r->wanted[w++] = r->wanted[i];
  }
  r->nwanted = w;

  size_t need = out->len - base;
  if (need > r->known_cap) {
    struct po_known *v = realloc(r->known, need * sizeof(*v));
    if (!v)
      return -ENOMEM;
    r->known = v;
    r->known_cap = need;
  }
  r->nknown = 0;
  for (size_t i = base; i < out->len; i++) {
    const struct po_owner *o = &out->v[i];
    struct po_known *k = &r->known[r->nknown++];
    *k = (struct po_known){.pid = o->pid,
                           .tid = o->tid,
                           .inode = t->v[o->sock].inode,
                           .nfds = o->nfds};
    memcpy(k->fds, o->fds, sizeof(k->fds));
  }
  /* A duplicate inode in the table has an owner per entry (push_known()
   * gives them all again): one is enough. */
  qsort(r->known, r->nknown, sizeof(*r->known), known_cmp);
  size_t kw = 0;
  for (size_t i = 0; i < r->nknown; i++)
    if (kw == 0 || known_cmp(&r->known[kw - 1], &r->known[i]) != 0)
      r->known[kw++] = r->known[i];
  r->nknown = kw;
  return 0;
}

/* Appends a record of the remembered owner k for every socket of the table
 * with its inode, from its remembered fd number from on (those before it
 * were found closed). */
static int push_known(struct po_resolver *r, const struct po_known *k,
                      size_t from, struct po_owners *out) {
  size_t kept = k->nfds < PO_OWNER_FDS ? k->nfds : PO_OWNER_FDS;

  for (size_t j = slot_of(r, k->inode); r->slots[j].inode != 0;
       j = (j + 1) & (r->nslots - 1)) {
    struct po_slot *s = &r->slots[j];
    if (s->inode != k->inode)
      continue;
    s->hit = 1;
    struct po_owner *o =
        owners_push(out, (pid_t)k->pid, (pid_t)k->tid, s->sock);
    if (!o)
      return -ENOMEM;
    o->nfds = k->nfds - (uint32_t)from;
    memcpy(o->fds, k->fds + from, (kept - from) * sizeof(*o->fds));
    o->fd = o->fds[0];
  }
  return 0;
}

/* Reads again the fds of the remembered owner k, its lowest first, until
 * one holds its socket (one readlink when the lowest does). Returns 1 and
 * sets *at to that fd's place in k->fds, 0 when none does, or -ENOMEM. */
static int verify_fds(int pfd, const struct po_known *k, size_t *at,
                      struct po_walk_stats *st) {
  size_t kept = k->nfds < PO_OWNER_FDS ? k->nfds : PO_OWNER_FDS;

  for (size_t i = 0; i < kept; i++) {
    char path[PO_PID_DIGITS * 3 + sizeof("/task//fd/")];
    char link[PO_LINK_SIZE];
    uint64_t inode;
    if (k->tid)
      snprintf(path, sizeof(path), "%d/task/%d/fd/%d", k->pid, k->tid,
               k->fds[i]);
    else
      snprintf(path, sizeof(path), "%d/fd/%d", k->pid, k->fds[i]);
    ssize_t len = readlinkat(pfd, path, link, sizeof(link));
    st->verified++;
    st->fds++;
    if (len < 0 && errno == ENOMEM)
      return -ENOMEM;
    if (len < 0 && errno != ENOENT)
      return 0; /* the process is gone (ESRCH), or refused */
    if (len >= 0 && po_socket_link_parse(link, (size_t)len, &inode) &&
        inode == k->inode) {
      *at = i;
      return 1;
    }
  }
  return 0;
}

/* Reads the remembered owners' fds again. Returns 0, a positive
 * po_walk_reason to fall back to a full walk, or -errno. */
static int verify_known(struct po_resolver *r, int pfd, struct po_owners *out,
                        struct po_walk_stats *st) {
  const struct po_pmap *now = &r->procs[!r->cur];
  for (size_t i = 0; i < r->nknown; i++) {
    const struct po_known *k = &r->known[i];
    if (k->tid != 0)
      continue; /* found in a task's table: keep_hidden() */
    const struct po_pent *e = pmap_find(now, k->pid);
    if (!e || (e->flags & PO_PE_NEW))
      continue; /* exited, or read in full just now */

    /* Still wanted? A socket that left the table is not looked at. */
    int wanted = 0;
    for (size_t j = slot_of(r, k->inode); r->slots[j].inode != 0;
         j = (j + 1) & (r->nslots - 1))
      if (r->slots[j].inode == k->inode) {
        wanted = 1;
        break;
      }
    if (!wanted)
      continue;

    size_t at = 0;
    int rc = verify_fds(pfd, k, &at, st);
    if (rc < 0)
      return rc;
    /* Its fds are closed (ENOENT), hold something else, or the process
     * is gone since the listing, or refused: walk. */
    if (rc == 0)
      return PO_REASON_VERIFY;
    rc = push_known(r, k, at, out);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* The slot of a wanted inode, or NULL. */
static struct po_slot *slot_find(struct po_resolver *r, uint64_t inode) {
  for (size_t j = slot_of(r, inode); r->slots[j].inode != 0;
       j = (j + 1) & (r->nslots - 1))
    if (r->slots[j].inode == inode)
      return &r->slots[j];
  return NULL;
}

/* Reads again, with one readlink each, the remembered owners that a look
 * found in a task's table, of sockets with no other owner now, and keeps
 * those whose fd still holds the socket. Returns 0 or -ENOMEM. */
static int keep_hidden(struct po_resolver *r, int pfd, struct po_owners *out,
                       struct po_walk_stats *st) {
  /* slot.look, until look_mark(): no owner in a <pid>/fd. */
  for (size_t j = 0; j < r->nslots; j++)
    r->slots[j].look = r->slots[j].inode != 0 && !r->slots[j].hit;
  for (size_t i = 0; i < r->nknown; i++) {
    const struct po_known *k = &r->known[i];
    if (k->tid == 0)
      continue;
    const struct po_slot *s = slot_find(r, k->inode);
    if (!s || !s->look)
      continue; /* no longer wanted, or held in a <pid>/fd */

    size_t at = 0;
    int rc = verify_fds(pfd, k, &at, st);
    if (rc < 0)
      return rc;
    if (rc == 0)
      continue; /* closed, or the task is gone: dropped */
    rc = push_known(r, k, at, out);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Gives every slot the time of its socket's last look (from the last call's
 * memory). */
static void looked_carry(struct po_resolver *r) {
  for (size_t j = 0; j < r->nslots; j++) {
    if (r->slots[j].inode == 0)
      continue;
    const struct po_wanted *p = wanted_find(r, r->slots[j].inode);
    r->slots[j].looked = p ? p->looked : 0;
  }
}

/* An incremental call. Returns 0, a positive po_walk_reason to fall back
 * to a full walk, or -errno. */
static int resolve_incremental(struct walk_ctx *w) {
  struct po_resolver *r = w->r;

  /* A socket that the last call did not want, or that no full walk has
   * seen yet, may be owned by any process, read before or not: a full walk,
   * when one is allowed for new sockets; else it is pending (resolve.h). */
  uint64_t fresh = 0;
  for (size_t j = 0; j < r->nslots; j++) {
    struct po_slot *s = &r->slots[j];
    if (s->inode == 0)
      continue;
    const struct po_wanted *p = wanted_find(r, s->inode);
    s->pending = !p || p->pending;
    fresh += (uint64_t)s->pending;
  }
  if (fresh > 0) {
    uint64_t now = boottime_ns();
    if (r->last_new_walk_ns == 0 ||
        now - r->last_new_walk_ns >= r->new_walk_interval_ns)
      return PO_REASON_NEW_INODE;
  }

  int rc = walk_all(w);
  if (rc != 0)
    return rc;
  rc = verify_known(r, w->pfd, w->out, w->st);
  if (rc != 0)
    return rc;
  rc = keep_hidden(r, w->pfd, w->out, w->st);
  if (rc != 0)
    return rc;

  /* A socket with an owner last time and none known now may have moved to
   * a process read before (SCM_RIGHTS, then the sender exited). */
  for (size_t j = 0; j < r->nslots; j++) {
    if (r->slots[j].inode == 0 || r->slots[j].hit || r->slots[j].pending)
      continue;
    const struct po_wanted *p = wanted_find(r, r->slots[j].inode);
    if (!p || p->owned)
      return PO_REASON_UNOWNED;
  }
  w->st->deferred += fresh;
  return 0;
}

int po_resolver_resolve(struct po_resolver *r, const char *proc_root,
                        const struct po_table *t,
                        enum po_walk_reason full_reason, struct po_owners *out,
                        struct po_walk_stats *st) {
  struct po_walk_stats dummy = {0};
  if (!r || !proc_root || !t || !out)
    return -EINVAL;
  if (r->bpf)
    return bpf_resolve(r, t, out, st);
  if (!st)
    st = &dummy;

  long wanted = set_build(r, t);
  if (wanted <= 0) {
    /* Nothing wanted: what the last call with sockets knew stays true of
     * its sockets (the next call's others are new). Forgetting it would
     * make a listener that comes and goes a full walk every time. */
    if (wanted < 0)
      po_resolver_forget(r);
    st->kind = PO_WALK_NONE;
    return (int)wanted;
  }

  int pfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0) {
    po_resolver_forget(r);
    return -errno;
  }

  struct walk_ctx w = {.r = r,
                       .pfd = pfd,
                       .procfs = is_procfs(pfd),
                       .track = 1,
                       .out = out,
                       .st = st};
  size_t base = out->len;
  int rc;
  if (!r->tracking)
    full_reason = PO_REASON_FIRST;
  if (full_reason == PO_REASON_NONE) {
    struct po_walk_stats before = *st;
    w.incremental = 1;
    pmap_clear(&r->procs[!r->cur]);
    rc = resolve_incremental(&w);
    if (rc == 0) {
      st->kind = PO_WALK_INCREMENTAL;
      st->reason = PO_REASON_NONE;
      goto done;
    }
    if (rc < 0)
      goto fail;
    /* Fall back: drop this attempt's owners and marks, keep its counts. */
    full_reason = (enum po_walk_reason)rc;
    if (full_reason == PO_REASON_NEW_INODE)
      r->last_new_walk_ns = boottime_ns();
    out->len = base;
    for (size_t j = 0; j < r->nslots; j++) {
      r->slots[j].hit = 0;
      r->slots[j].pending = 0; /* a full walk sees them all */
    }
    before.procs = st->procs;
    before.fds = st->fds;
    before.verified = st->verified;
    before.listed = st->listed;
    *st = before;
    if (lseek(pfd, 0, SEEK_SET) < 0) {
      rc = -errno;
      goto fail;
    }
  }

  w.incremental = 0;
  pmap_clear(&r->procs[!r->cur]);
  rc = walk_all(&w);
  if (rc == 0)
    rc = keep_hidden(r, pfd, out, st);
  if (rc < 0)
    goto fail;
  st->kind = PO_WALK_FULL;
  st->reason = full_reason;

done:
  /* Sockets still without an owner: a look in task tables when due. */
  looked_carry(r);
  if (look_mark(r, 1)) {
    rc = look(r, pfd, w.procfs, out, st);
    if (rc < 0)
      goto fail;
  }
  rc = remember(r, t, out, base);
  if (rc < 0)
    goto fail;
  r->cur = !r->cur;
  r->tracking = 1;
  close(pfd);
  return 0;

fail:
  po_resolver_forget(r);
  close(pfd);
  return rc;
}
