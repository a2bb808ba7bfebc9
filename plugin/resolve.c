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
#include <stdlib.h>
#include <string.h>
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
};

struct po_resolver {
  struct po_slot *slots;
  size_t cap;     /* slots allocated */
  size_t nslots;  /* slots in use this walk: a power of two, or 0 */
  unsigned shift; /* 64 - log2(nslots) */
  char *proc_buf; /* getdents64() of proc_root */
  char *fd_buf;   /* getdents64() of one fd directory */
};

struct po_resolver *po_resolver_new(void) {
  struct po_resolver *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return NULL;
  /* malloc() aligns for the 8-byte fields of the records. */
  r->proc_buf = malloc(PO_DENTS_SIZE);
  r->fd_buf = malloc(PO_DENTS_SIZE);
  if (r->proc_buf == NULL || r->fd_buf == NULL) {
    po_resolver_free(r);
    errno = ENOMEM;
    return NULL;
  }
  return r;
}

void po_resolver_free(struct po_resolver *r) {
  if (r == NULL)
    return;
  free(r->slots);
  free(r->proc_buf);
  free(r->fd_buf);
  free(r);
}

void po_owners_free(struct po_owners *o) {
  if (o == NULL)
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
    if (s == NULL)
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
    if (v == NULL)
      return -ENOMEM;
    o->v = v;
    o->cap = cap;
  }
  o->v[o->len++] = (struct po_owner){.pid = pid, .fd = fd, .sock = sock};
  return 0;
}

/* Appends an owner for every socket of the table with this inode. */
static int set_match(const struct po_resolver *r, uint64_t inode, pid_t pid,
                     int fd, struct po_owners *out) {
  if (inode == 0)
    return 0;
  for (size_t j = slot_of(r, inode); r->slots[j].inode != 0;
       j = (j + 1) & (r->nslots - 1)) {
    if (r->slots[j].inode != inode)
      continue;
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

int po_resolver_walk(struct po_resolver *r, const char *proc_root,
                     const struct po_table *t, struct po_owners *out,
                     struct po_walk_stats *st) {
  struct po_walk_stats dummy = {0};
  if (r == NULL || proc_root == NULL || t == NULL || out == NULL)
    return -EINVAL;
  if (st == NULL)
    st = &dummy;

  long wanted = set_build(r, t);
  if (wanted <= 0)
    return (int)wanted; /* nothing to look for: no walk */

  int pfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0)
    return -errno;

  int rc = 0;
  for (;;) {
    ssize_t n = getdents64(pfd, r->proc_buf, PO_DENTS_SIZE);
    if (n < 0) {
      rc = -errno;
      break;
    }
    if (n == 0)
      break;
    for (ssize_t off = 0; off < n;) {
      const struct po_dirent *d = (const void *)(r->proc_buf + off);
      off += d->d_reclen;
      if (d->d_type != DT_DIR && d->d_type != DT_UNKNOWN)
        continue;
      int pid;
      size_t len;
      if (!parse_num(d->d_name, PO_PID_DIGITS, &pid, &len))
        continue;

      char path[PO_PID_DIGITS + sizeof("/fd")];
      memcpy(path, d->d_name, len);
      memcpy(path + len, "/fd", sizeof("/fd"));
      st->procs++;
      rc = walk_fds(r, pfd, path, (pid_t)pid, out, st);
      if (rc < 0)
        goto out;
    }
  }
out:
  close(pfd);
  return rc;
}
