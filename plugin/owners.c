/*
 * portowner: sets of owner processes (see owners.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "portowner/owners.h"

void po_identlist_free(struct identlist *l) {
  free(l->v);
  free(l->arena);
  memset(l, 0, sizeof(*l));
}

/* Deep copy of src into dst (one arena for all strings). */
int po_identlist_copy(struct identlist *dst, const struct identlist *src) {
  size_t bytes = 0, off = 0;

  memset(dst, 0, sizeof(*dst));
  if (src->len == 0)
    return 0;
  for (size_t i = 0; i < src->len; i++) {
    bytes += strlen(src->v[i].comm) + 1 + strlen(src->v[i].user) + 1;
    if (src->v[i].exe)
      bytes += strlen(src->v[i].exe) + 1;
  }
  dst->v = malloc(src->len * sizeof(*dst->v));
  dst->arena = malloc(bytes);
  if (!dst->v || !dst->arena) {
    po_identlist_free(dst);
    return -ENOMEM;
  }
  for (size_t i = 0; i < src->len; i++) {
    const struct ident *s = &src->v[i];
    struct ident *d = &dst->v[i];
    size_t n;

    *d = *s;
    n = strlen(s->comm) + 1;
    d->comm = memcpy(dst->arena + off, s->comm, n);
    off += n;
    n = strlen(s->user) + 1;
    d->user = memcpy(dst->arena + off, s->user, n);
    off += n;
    if (s->exe) {
      n = strlen(s->exe) + 1;
      d->exe = memcpy(dst->arena + off, s->exe, n);
      off += n;
    }
  }
  dst->len = src->len;
  return 0;
}

int po_ident_cmp_pid(const void *a, const void *b) {
  const struct ident *x = a, *y = b;

  return (x->pid > y->pid) - (x->pid < y->pid);
}

/* The exe path without " (deleted)". */
size_t po_exe_len(const char *exe) {
  static const char deleted[] = " (deleted)";
  const size_t dl = sizeof(deleted) - 1;
  size_t n = strlen(exe);

  if (n > dl && memcmp(exe + n - dl, deleted, dl) == 0)
    n -= dl;
  return n;
}

const char *po_prog_name(const struct ident *o, size_t *len) {
  if (o->exe && o->exe[0]) {
    const char *base = strrchr(o->exe, '/');
    size_t n;

    base = base ? base + 1 : o->exe;
    n = po_exe_len(base);
    if (n) {
      *len = n;
      return base;
    }
  }
  *len = strlen(o->comm);
  return o->comm;
}

struct prog {
  const char *name;
  size_t len;
  const char *user;
};

static int prog_cmp(const void *a, const void *b) {
  const struct prog *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->name, y->name, n);

  if (c)
    return c;
  if (x->len != y->len)
    return x->len < y->len ? -1 : 1;
  return strcmp(x->user, y->user);
}

/* The distinct (program, user) of l, sorted. Returns the count or -ENOMEM. */
static ssize_t progs_of(const struct identlist *l, struct prog **out) {
  struct prog *v;
  size_t n = 0;

  *out = NULL;
  if (l->len == 0)
    return 0;
  v = malloc(l->len * sizeof(*v));
  if (!v)
    return -ENOMEM;
  for (size_t i = 0; i < l->len; i++) {
    v[i].name = po_prog_name(&l->v[i], &v[i].len);
    v[i].user = l->v[i].user;
  }
  qsort(v, l->len, sizeof(*v), prog_cmp);
  for (size_t i = 0; i < l->len; i++)
    if (n == 0 || prog_cmp(&v[n - 1], &v[i]) != 0)
      v[n++] = v[i];
  *out = v;
  return (ssize_t)n;
}

/* 1 when the (program, user) sets differ, 0 when equal, -ENOMEM. */
int po_progs_differ(const struct identlist *a, const struct identlist *b) {
  struct prog *pa, *pb;
  ssize_t na = progs_of(a, &pa), nb;
  int differ;

  if (na < 0)
    return (int)na;
  nb = progs_of(b, &pb);
  if (nb < 0) {
    free(pa);
    return (int)nb;
  }
  differ = na != nb;
  for (ssize_t i = 0; !differ && i < na; i++)
    differ = prog_cmp(&pa[i], &pb[i]) != 0;
  free(pa);
  free(pb);
  return differ;
}

/* 1 when no pid is in both (lists sorted by pid). */
int po_pids_disjoint(const struct identlist *a, const struct identlist *b) {
  size_t i = 0, j = 0;

  while (i < a->len && j < b->len) {
    if (a->v[i].pid == b->v[j].pid)
      return 0;
    if (a->v[i].pid < b->v[j].pid)
      i++;
    else
      j++;
  }
  return 1;
}

/*
 * An owner that exited between the fd walk and the read of its details has
 * none (comm "", exe NULL): keep what the last read knew of the same pid
 * (both lists are sorted by pid), so that a message never says "?[pid]" of a
 * process it named a moment ago. The strings stay in last's arena, which
 * outlives cur's use in this evaluation.
 */
void po_details_keep(struct identlist *cur, const struct identlist *last) {
  size_t j = 0;

  for (size_t i = 0; i < cur->len; i++) {
    struct ident *o = &cur->v[i];

    if (o->comm[0] || o->exe)
      continue;
    while (j < last->len && last->v[j].pid < o->pid)
      j++;
    if (j < last->len && last->v[j].pid == o->pid) {
      o->comm = last->v[j].comm;
      o->exe = last->v[j].exe;
      o->user = last->v[j].user;
      o->uid = last->v[j].uid;
    }
  }
}
