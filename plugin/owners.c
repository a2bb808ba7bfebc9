/*
 * portowner: sets of owner processes (see owners.h).
 */
#include <errno.h>
#include <stdint.h>
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
    if (src->v[i].cgroup)
      bytes += strlen(src->v[i].cgroup) + 1;
    if (src->v[i].cgroup_systemd)
      bytes += strlen(src->v[i].cgroup_systemd) + 1;
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
    if (s->cgroup) {
      n = strlen(s->cgroup) + 1;
      d->cgroup = memcpy(dst->arena + off, s->cgroup, n);
      off += n;
    }
    if (s->cgroup_systemd) {
      n = strlen(s->cgroup_systemd) + 1;
      d->cgroup_systemd = memcpy(dst->arena + off, s->cgroup_systemd, n);
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
  *len = 0;
  return NULL;
}

/* The kernel keeps TASK_COMM_LEN - 1 bytes of a name. */
#define COMM_CUT 15

int po_comm_is_prog(const struct ident *o) {
  size_t plen, clen = strlen(o->comm);
  const char *prog = po_prog_name(o, &plen);

  if (!prog || !clen)
    return 1;
  if (clen == plen)
    return memcmp(prog, o->comm, plen) == 0;
  return clen == COMM_CUT && plen > COMM_CUT &&
         memcmp(prog, o->comm, COMM_CUT) == 0;
}

uint64_t po_hash_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;

  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t po_named_hash(const struct ident *o) {
  size_t plen;
  const char *prog = po_prog_name(o, &plen);
  uint64_t h = PO_HASH_INIT, pid = (uint64_t)o->pid, uid = o->uid;

  h = po_hash_bytes(h, &pid, sizeof(pid));
  h = po_hash_bytes(h, &uid, sizeof(uid));
  h = po_hash_bytes(h, &plen, sizeof(plen));
  if (prog)
    h = po_hash_bytes(h, prog, plen);
  return po_hash_bytes(h, o->user, strlen(o->user) + 1);
}

int po_pids_same(const struct identlist *a, const struct identlist *b) {
  if (a->len != b->len)
    return 0;
  for (size_t i = 0; i < a->len; i++)
    if (a->v[i].pid != b->v[i].pid)
      return 0;
  return 1;
}

int po_identlist_copy_known(struct identlist *dst,
                            const struct identlist *src) {
  struct identlist view = {0};
  size_t len;
  int err;

  memset(dst, 0, sizeof(*dst));
  if (src->len == 0)
    return 0;
  view.v = malloc(src->len * sizeof(*view.v));
  if (!view.v)
    return -ENOMEM;
  for (size_t i = 0; i < src->len; i++)
    if (po_prog_name(&src->v[i], &len))
      view.v[view.len++] = src->v[i];
  err = po_identlist_copy(dst, &view);
  free(view.v);
  return err;
}

struct prog {
  const char *name;
  size_t len;
  const char *user;
  uint64_t unit;  /* hash of po_ident_label() */
  int unit_known; /* the cgroup is known */
};

void po_ident_label(const struct ident *o, char *buf, size_t size) {
  const struct po_cgroup_paths p = {(char *)o->cgroup,
                                    (char *)o->cgroup_systemd};
  struct po_cgroup_info info;

  po_cgroup_classify_paths(&p, &info);
  po_cgroup_label(&info, buf, size);
}

static int prog_cmp_name_user(const struct prog *x, const struct prog *y) {
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->name, y->name, n);

  if (c)
    return c;
  if (x->len != y->len)
    return x->len < y->len ? -1 : 1;
  return strcmp(x->user, y->user);
}

/* (program, user), then the unit: a change of unit is a change of owner. */
static int prog_cmp(const void *a, const void *b) {
  const struct prog *x = a, *y = b;
  int c = prog_cmp_name_user(x, y);

  return c ? c : (x->unit > y->unit) - (x->unit < y->unit);
}

static int prog_cmp_no_unit(const void *a, const void *b) {
  return prog_cmp_name_user(a, b);
}

/* The distinct (program, user, unit) of l (with_unit) or (program, user),
 * sorted. *unknown (when not NULL) is set when an owner's cgroup is
 * unknown. Returns the count or -ENOMEM. */
static ssize_t progs_of(const struct identlist *l, struct prog **out,
                        int with_unit, int *unknown) {
  int (*cmp)(const void *, const void *) =
      with_unit ? prog_cmp : prog_cmp_no_unit;
  struct prog *v;
  size_t n = 0, known;

  *out = NULL;
  if (l->len == 0)
    return 0;
  v = malloc(l->len * sizeof(*v));
  if (!v)
    return -ENOMEM;
  for (size_t i = 0; i < l->len; i++) {
    const struct ident *o = &l->v[i];
    char label[2 * PO_UNIT_NAME_MAX];

    v[n].name = po_prog_name(o, &v[n].len);
    v[n].user = o->user;
    v[n].unit_known = o->cgroup || o->cgroup_systemd;
    v[n].unit = PO_HASH_INIT;
    if (with_unit && v[n].unit_known) {
      po_ident_label(o, label, sizeof(label));
      v[n].unit = po_hash_bytes(PO_HASH_INIT, label, strlen(label));
    }
    if (unknown && v[n].name && !v[n].unit_known)
      *unknown = 1;
    if (v[n].name) /* an unknown program is left out */
      n++;
  }
  if (n)
    qsort(v, n, sizeof(*v), cmp);
  known = n;
  n = 0;
  for (size_t i = 0; i < known; i++)
    if (n == 0 || cmp(&v[n - 1], &v[i]) != 0)
      v[n++] = v[i];
  *out = v;
  return (ssize_t)n;
}

ssize_t po_progs_hash(const struct identlist *l, uint64_t *hash) {
  struct prog *v;
  ssize_t n = progs_of(l, &v, 1, NULL);
  uint64_t h = PO_HASH_INIT;

  if (n < 0)
    return n;
  for (ssize_t i = 0; i < n; i++) {
    h = po_hash_bytes(h, &v[i].len, sizeof(v[i].len));
    h = po_hash_bytes(h, v[i].name, v[i].len);
    h = po_hash_bytes(h, v[i].user, strlen(v[i].user) + 1);
    h = po_hash_bytes(h, &v[i].unit, sizeof(v[i].unit));
  }
  free(v);
  *hash = h;
  return n;
}

/* 1 when the (program, user, unit) sets differ, 0 when equal, -ENOMEM.
 * When an owner of either has an unknown cgroup (a set restored from a
 * StateFile), units are not compared. */
int po_progs_differ(const struct identlist *a, const struct identlist *b) {
  struct prog *pa, *pb;
  int unknown = 0, with_unit;
  ssize_t na, nb;
  int differ;

  /* A first pass only to learn whether every cgroup is known. */
  na = progs_of(a, &pa, 0, &unknown);
  if (na < 0)
    return (int)na;
  free(pa);
  nb = progs_of(b, &pb, 0, &unknown);
  if (nb < 0)
    return (int)nb;
  free(pb);
  with_unit = !unknown;
  na = progs_of(a, &pa, with_unit, NULL);
  if (na < 0)
    return (int)na;
  nb = progs_of(b, &pb, with_unit, NULL);
  if (nb < 0) {
    free(pa);
    return (int)nb;
  }
  differ = na != nb;
  for (ssize_t i = 0; !differ && i < na; i++)
    differ = (with_unit ? prog_cmp : prog_cmp_no_unit)(&pa[i], &pb[i]) != 0;
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
 * An owner without an exe now (exiting, or gone): keep what the last read
 * knew of the same process (both lists are sorted by pid). The same
 * process: the same pid, and the same start time when it reads now (a
 * process that has exited entirely reads nothing: its pid is all there
 * is). The strings stay in last's arena, which outlives cur's use in this
 * evaluation.
 */
void po_details_keep(struct identlist *cur, const struct identlist *last) {
  size_t j = 0;

  for (size_t i = 0; i < cur->len; i++) {
    struct ident *o = &cur->v[i];
    const struct ident *l;

    if (o->exe)
      continue;
    while (j < last->len && last->v[j].pid < o->pid)
      j++;
    if (j >= last->len || last->v[j].pid != o->pid)
      continue;
    l = &last->v[j];
    if (o->start ? o->start != l->start : o->comm[0] != '\0')
      continue;
    o->exe = l->exe;
    if (!o->cgroup && !o->cgroup_systemd) {
      o->cgroup = l->cgroup;
      o->cgroup_systemd = l->cgroup_systemd;
    }
    o->exe_id = l->exe_id;
    o->exe_file = l->exe_file;
    o->start = l->start;
    if (!o->comm[0])
      o->comm = l->comm;
    if (o->uid == PO_UID_UNKNOWN) {
      o->uid = l->uid;
      o->user = l->user;
    }
  }
}

void po_watch_state_release(struct watch_state *st) {
  po_identlist_free(&st->last);
  po_identlist_free(&st->accepted);
  free(st->named);
  st->named = NULL;
  st->nnamed = 0;
}

void po_state_commit(struct watch_state *old, unsigned replaced) {
  if (replaced & PO_REPLACED_ACCEPTED)
    po_identlist_free(&old->accepted);
  if (replaced & PO_REPLACED_NAMED)
    free(old->named);
}

void po_state_rollback(struct watch_state *ns, unsigned replaced) {
  if (replaced & PO_REPLACED_ACCEPTED)
    po_identlist_free(&ns->accepted);
  if (replaced & PO_REPLACED_NAMED)
    free(ns->named);
}
