/*
 * portowner: the owner resolver.
 *
 * One walk reads <proc_root> and each <proc_root>/PID/fd with getdents64()
 * into two buffers the resolver keeps, and does one readlinkat() per fd
 * entry on the fd directory's descriptor. Links are matched against an
 * open-addressing hash set of the wanted inodes (linear probing, load factor
 * at most 1/2), rebuilt from the table at the start of every walk in memory
 * kept between walks. Nothing is allocated per process or per fd; only the
 * owners array grows (doubling).
 */
#include "portowner/resolve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
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
  uint64_t inode; /* 0: empty */
  size_t sock;    /* index in the table */
  int hit;        /* an owner was found this walk */
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
  int fd;
  uint64_t inode;
};

/* A socket wanted by the last call, and whether it had an owner. */
struct po_wanted {
  uint64_t inode;
  int owned;
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
};

struct po_resolver *po_resolver_new(void) {
  struct po_resolver *r = calloc(1, sizeof(*r));
  if (!r)
    return NULL;
  /* malloc() aligns for the 8-byte fields of the records. */
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
  free(r);
}

void po_resolver_forget(struct po_resolver *r) {
  if (!r)
    return;
  r->tracking = 0;
  r->nknown = 0;
  r->nwanted = 0;
  r->procs[0].len = 0;
  r->procs[1].len = 0;
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

static int owners_push(struct po_owners *o, pid_t pid, int fd, size_t sock) {
  if (o->len == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 16;
    if (cap < o->cap || cap > SIZE_MAX / sizeof(*o->v))
      return -ENOMEM;
    struct po_owner *v = realloc(o->v, cap * sizeof(*v));
    if (!v)
      return -ENOMEM;
    o->v = v;
    o->cap = cap;
  }
  o->v[o->len++] = (struct po_owner){.pid = pid, .fd = fd, .sock = sock};
  return 0;
}

/* Appends an owner for every socket of the table with this inode. */
static int set_match(struct po_resolver *r, uint64_t inode, pid_t pid, int fd,
                     struct po_owners *out) {
  if (inode == 0)
    return 0;
  for (size_t j = slot_of(r, inode); r->slots[j].inode != 0;
       j = (j + 1) & (r->nslots - 1)) {
    if (r->slots[j].inode != inode)
      continue;
    r->slots[j].hit = 1;
    int rc = owners_push(out, pid, fd, r->slots[j].sock);
    if (rc < 0)
      return rc;
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

/* Reads the fd directory at path (relative to pfd) of process pid. */
static int walk_fds(struct po_resolver *r, int pfd, const char *path, pid_t pid,
                    struct po_owners *out, struct po_walk_stats *st) {
  int dfd = openat(pfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    switch (errno) {
    case ENOENT:
    case ESRCH:
      st->vanished++;
      return 0;
    case EACCES:
    case EPERM:
      st->denied++;
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

      char link[PO_LINK_SIZE];
      ssize_t len = readlinkat(dfd, d->d_name, link, sizeof(link));
      if (len < 0) {
        if (errno != EACCES && errno != EPERM)
          continue; /* ENOENT: closed since getdents64() */
        /* The directory opened but the links are refused (ptrace access
         * check: a process of another user namespace, or not dumpable and
         * no CAP_SYS_PTRACE): they all will be. */
        st->denied++;
        goto out;
      }
      st->fds++;

      uint64_t inode;
      if (!po_socket_link_parse(link, (size_t)len, &inode))
        continue;
      rc = set_match(r, inode, pid, fd, out);
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
  int fd = openat(pfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return PO_IDENT_UNKNOWN;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0)
    return PO_IDENT_UNKNOWN;
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p)
    return PO_IDENT_UNKNOWN;
  p++;
  /* Fields 3 (state) to 21, then 22. */
  for (int field = 2; field < 22; field++) {
    p = strchr(p, ' ');
    if (!p)
      return PO_IDENT_UNKNOWN;
    p++;
  }
  uint64_t v = 0;
  if (*p < '0' || *p > '9')
    return PO_IDENT_UNKNOWN;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (UINT64_MAX - 10) / 10)
      return PO_IDENT_UNKNOWN;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  return v;
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
        w->st->denied++;
      return pmap_put(&r->procs[!r->cur], pid, old->flags & PO_PE_DENIED,
                      ident);
    }
  }

  char path[PO_PID_DIGITS + sizeof("/fd")];
  memcpy(path, d->d_name, len);
  memcpy(path + len, "/fd", sizeof("/fd"));
  uint64_t denied = w->st->denied;
  w->st->procs++;
  int rc = walk_fds(r, w->pfd, path, (pid_t)pid, w->out, w->st);
  if (rc < 0 || !w->track)
    return rc;
  if (w->st->denied != denied)
    flags |= PO_PE_DENIED;
  return pmap_put(&r->procs[!r->cur], pid, flags, ident);
}

static int walk_all(struct walk_ctx *w) {
  struct po_resolver *r = w->r;
  for (;;) {
    ssize_t n = getdents64(w->pfd, r->proc_buf, PO_DENTS_SIZE);
    if (n < 0)
      return -errno;
    if (n == 0)
      return 0;
    for (ssize_t off = 0; off < n;) {
      const struct po_dirent *d = (const void *)(r->proc_buf + off);
      off += d->d_reclen;
      if (d->d_type != DT_DIR && d->d_type != DT_UNKNOWN)
        continue;
      int pid;
      size_t len;
      if (!parse_num(d->d_name, PO_PID_DIGITS, &pid, &len) || pid == 0)
        continue;
      int rc = walk_proc(w, d, pid, len);
      if (rc < 0)
        return rc;
    }
  }
}

int po_resolver_walk(struct po_resolver *r, const char *proc_root,
                     const struct po_table *t, struct po_owners *out,
                     struct po_walk_stats *st) {
  struct po_walk_stats dummy = {0};
  if (!r || !proc_root || !t || !out)
    return -EINVAL;
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

static int wanted_cmp(const void *a, const void *b) {
  const struct po_wanted *x = a, *y = b;
  return (x->inode > y->inode) - (x->inode < y->inode);
}

/* Remembers this call's wanted sockets and owners (out->v[base..]).
 * Returns 0 or -ENOMEM. */
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
      r->wanted[r->nwanted++] =
          (struct po_wanted){r->slots[j].inode, r->slots[j].hit};
  qsort(r->wanted, r->nwanted, sizeof(*r->wanted), wanted_cmp);
  /* A duplicate inode in the table has a slot per entry: one is enough. */
  size_t w = 0;
  for (size_t i = 0; i < r->nwanted; i++) {
    if (w > 0 && r->wanted[w - 1].inode == r->wanted[i].inode) {
      r->wanted[w - 1].owned |= r->wanted[i].owned;
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
    struct po_known k = {o->pid, o->fd, t->v[o->sock].inode};
    /* set_match() pushes one owner per table entry of an inode, in a row. */
    if (r->nknown > 0 && r->known[r->nknown - 1].pid == k.pid &&
        r->known[r->nknown - 1].fd == k.fd &&
        r->known[r->nknown - 1].inode == k.inode)
      continue;
    r->known[r->nknown++] = k;
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

    char path[PO_PID_DIGITS * 2 + sizeof("/fd/")];
    char link[PO_LINK_SIZE];
    uint64_t inode;
    snprintf(path, sizeof(path), "%d/fd/%d", k->pid, k->fd);
    ssize_t len = readlinkat(pfd, path, link, sizeof(link));
    st->verified++;
    st->fds++;
    if (len < 0) {
      if (errno == ENOMEM)
        return -ENOMEM;
      /* The fd is closed (ENOENT), or the process is gone since the
       * listing (ESRCH, ENOENT on its directory), or refused: walk. */
      return PO_REASON_VERIFY;
    }
    if (!po_socket_link_parse(link, (size_t)len, &inode) || inode != k->inode)
      return PO_REASON_VERIFY;
    int rc = set_match(r, inode, k->pid, k->fd, out);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* An incremental call. Returns 0, a positive po_walk_reason to fall back
 * to a full walk, or -errno. */
static int resolve_incremental(struct walk_ctx *w) {
  struct po_resolver *r = w->r;

  /* Every wanted socket must have been wanted last time: owners of a new
   * one may be any process, read before or not. */
  for (size_t j = 0; j < r->nslots; j++)
    if (r->slots[j].inode != 0 && !wanted_find(r, r->slots[j].inode))
      return PO_REASON_NEW_INODE;

  int rc = walk_all(w);
  if (rc != 0)
    return rc;
  rc = verify_known(r, w->pfd, w->out, w->st);
  if (rc != 0)
    return rc;

  /* A socket with an owner last time and none known now may have moved to
   * a process read before (SCM_RIGHTS, then the sender exited). */
  for (size_t j = 0; j < r->nslots; j++) {
    if (r->slots[j].inode == 0 || r->slots[j].hit)
      continue;
    const struct po_wanted *p = wanted_find(r, r->slots[j].inode);
    if (!p || p->owned)
      return PO_REASON_UNOWNED;
  }
  return 0;
}

int po_resolver_resolve(struct po_resolver *r, const char *proc_root,
                        const struct po_table *t,
                        enum po_walk_reason full_reason, struct po_owners *out,
                        struct po_walk_stats *st) {
  struct po_walk_stats dummy = {0};
  if (!r || !proc_root || !t || !out)
    return -EINVAL;
  if (!st)
    st = &dummy;

  long wanted = set_build(r, t);
  if (wanted <= 0) {
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
    out->len = base;
    for (size_t j = 0; j < r->nslots; j++)
      r->slots[j].hit = 0;
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
  if (rc < 0)
    goto fail;
  st->kind = PO_WALK_FULL;
  st->reason = full_reason;

done:
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
