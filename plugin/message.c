/*
 * portowner: the message builder of events (see message.h).
 */
#include <stdio.h>
#include <string.h>

#include "portowner/message.h"
#include "portowner/owners.h"
#include "portowner/printable.h"

/* Bytes that s (n bytes) takes in a message: each character that is not
 * printable (printable.h), and each byte that is not UTF-8, becomes '?'. */
static size_t text_width(const char *s, size_t n) {
  size_t w = 0;

  for (size_t i = 0; i < n;) {
    size_t span, c = po_printable(s + i, n - i, &span);

    w += c ? c : 1;
    i += span;
  }
  return w;
}

/* Appends s (n bytes) sanitized, in at most max bytes (and what is left);
 * cut at a character boundary with "..." when it does not fit. */
void po_msg_text(struct msg *m, const char *s, size_t n, size_t max) {
  size_t room = sizeof(m->b) - 1 - m->len, limit;

  limit = max < room ? max : room;
  if (text_width(s, n) > limit)
    limit = limit >= 3 ? limit - 3 : 0;
  else
    limit = (size_t)-1;
  for (size_t i = 0; i < n;) {
    size_t span, c = po_printable(s + i, n - i, &span);
    size_t w = c ? c : 1;

    if (limit != (size_t)-1 && w > limit) {
      if (sizeof(m->b) - 1 - m->len >= 3) {
        memcpy(m->b + m->len, "...", 3);
        m->len += 3;
      }
      break;
    }
    if (!c)
      m->b[m->len] = '?';
    else
      memcpy(m->b + m->len, s + i, c);
    m->len += w;
    if (limit != (size_t)-1)
      limit -= w;
    i += span;
  }
  m->b[m->len] = '\0';
}

void po_msg_str(struct msg *m, const char *s) {
  po_msg_text(m, s, strlen(s), sizeof(m->b));
}

/* "uid 65534" of an owner with pid 0 (sockets without an owner). */
static void uid_text(const struct ident *o, struct msg *e) {
  char uid[32];

  snprintf(uid, sizeof(uid), "uid %lu", (unsigned long)o->uid);
  po_msg_str(e, uid);
}

/* " nginx.service" (the unit or container of o's cgroup) into e, when
 * there is one. */
static void unit_text(const struct ident *o, struct msg *e) {
  char label[2 * PO_UNIT_NAME_MAX];

  po_ident_label(o, label, sizeof(label));
  if (label[0]) {
    po_msg_str(e, " ");
    po_msg_text(e, label, strlen(label), MSG_UNIT_MAX);
  }
}

/* "nginx[1311] www-data nginx.service" into e (at least 256 bytes). The name is
 * the comm, as ps, top, ss -p and lsof show it; the program (the exe basename)
 * after it when they differ, as the comm is whatever the process says. The
 * program alone when the comm is unknown. */
static void owner_entry(const struct ident *o, struct msg *e, unsigned flags) {
  char pid[24];
  size_t clen = strlen(o->comm), plen;
  const char *prog = po_prog_name(o, &plen);

  e->len = 0;
  e->b[0] = '\0';
  if (o->pid == 0) {
    uid_text(o, e);
    unit_text(o, e);
    po_msg_str(e, " (no owner found)");
    return;
  }
  if (clen)
    po_msg_text(e, o->comm, clen, MSG_PROG_MAX);
  else if (prog)
    po_msg_text(e, prog, plen, MSG_PROG_MAX);
  else
    po_msg_str(e, "?");
  snprintf(pid, sizeof(pid), "[%ld]", (long)o->pid);
  po_msg_str(e, pid);
  if (o->user[0]) {
    po_msg_str(e, " ");
    po_msg_text(e, o->user, strlen(o->user), MSG_USER_MAX);
  }
  unit_text(o, e);
  if (prog && clen && !po_comm_is_prog(o)) {
    po_msg_str(e, " (exe ");
    po_msg_text(e, prog, plen, MSG_PROG_MAX);
    po_msg_str(e, ")");
  } else if (!prog && (flags & PO_MSG_EXE_UNKNOWN)) {
    po_msg_str(e, " (exe unknown)");
  }
}

/* One (program, user) of an owners summary. */
struct group {
  const struct ident *o; /* its first owner */
  const char *name;      /* the program; the comm when unknown; NULL: pid 0 */
  size_t len;
  size_t count;
};

static void group_of(const struct ident *o, struct group *g) {
  g->o = o;
  g->count = 1;
  g->name = NULL;
  g->len = 0;
  if (o->pid == 0)
    return;
  g->name = po_prog_name(o, &g->len);
  if (!g->name) {
    g->name = o->comm;
    g->len = strlen(o->comm);
  }
}

static int group_cmp(const void *a, const void *b) {
  const struct group *x = a, *y = b;
  size_t n;
  int c;

  if (!x->name || !y->name) {
    if (x->name || y->name)
      return x->name ? 1 : -1;
    return (x->o->uid > y->o->uid) - (x->o->uid < y->o->uid);
  }
  n = x->len < y->len ? x->len : y->len;
  c = memcmp(x->name, y->name, n);
  if (c)
    return c;
  if (x->len != y->len)
    return x->len < y->len ? -1 : 1;
  return strcmp(x->o->user, y->o->user);
}

/* "apache2 root (1), apache2 www-data (8)" into m, in at most max bytes
 * (", ..." when cut). Returns the bytes used, 0 when out of memory. */
static size_t owners_summary(struct msg *m, const struct identlist *l,
                             size_t max) {
  struct group *g = malloc(l->len * sizeof(*g));
  size_t n = 0, used = 0;

  if (!g)
    return 0;
  for (size_t i = 0; i < l->len; i++)
    group_of(&l->v[i], &g[i]);
  qsort(g, l->len, sizeof(*g), group_cmp);
  for (size_t i = 0; i < l->len; i++) {
    if (n && group_cmp(&g[n - 1], &g[i]) == 0)
      g[n - 1].count++;
    else
      g[n++] = g[i];
  }
  for (size_t i = 0; i < n; i++) {
    struct msg e = {0};
    char count[32];
    size_t need, reserve = i + 1 < n ? 5 : 0;

    if (g[i].name)
      po_msg_text(&e, g[i].len ? g[i].name : "?", g[i].len ? g[i].len : 1,
                  MSG_PROG_MAX);
    else
      uid_text(g[i].o, &e);
    if (g[i].name && g[i].o->user[0]) {
      po_msg_str(&e, " ");
      po_msg_text(&e, g[i].o->user, strlen(g[i].o->user), MSG_USER_MAX);
    }
    snprintf(count, sizeof(count), " (%zu)", g[i].count);
    po_msg_str(&e, count);
    need = (i ? 2 : 0) + e.len;
    if (used + need + reserve > max) {
      const char *more = i ? ", ..." : "...";

      if (used + strlen(more) <= max) {
        po_msg_str(m, more);
        used += strlen(more);
      }
      break;
    }
    po_msg_str(m, i ? ", " : "");
    po_msg_str(m, e.b);
    used += need;
  }
  free(g);
  return used ? used : 1;
}

/* Appends entries of l from the first, in at most max bytes: ", ..." when
 * cut. Returns 1 when all fit. */
static int owners_list(struct msg *m, const struct identlist *l, size_t max,
                       unsigned flags) {
  size_t used = 0;

  for (size_t i = 0; i < l->len; i++) {
    const char *sep = i ? ", " : "";
    size_t need, reserve = i + 1 < l->len ? 5 : 0;
    struct msg e;

    owner_entry(&l->v[i], &e, flags);
    need = strlen(sep) + e.len;
    if (used + need + reserve > max) {
      const char *more = i ? ", ..." : "...";

      if (used + strlen(more) <= max)
        po_msg_str(m, more);
      return 0;
    }
    po_msg_str(m, sep);
    po_msg_str(m, e.b);
    used += need;
  }
  return 1;
}

void po_msg_owners_flags(struct msg *m, const struct identlist *l, size_t max,
                         unsigned flags) {
  size_t room = sizeof(m->b) - 1 - m->len, used;
  struct msg all = *m;

  if (max > room)
    max = room;
  if (owners_list(&all, l, max, flags)) {
    *m = all;
    return;
  }
  /* Does not fit: every (program, user) first, then what fits of the
   * owners. */
  all = *m;
  used = owners_summary(&all, l, max);
  if (!used) { /* no memory for the summary */
    owners_list(m, l, max, flags);
    return;
  }
  *m = all;
  if (used + 2 + 3 <= max && m->b[m->len - 1] != '.') {
    po_msg_str(m, ": ");
    owners_list(m, l, max - used - 2, flags);
  }
}

void po_msg_owners(struct msg *m, const struct identlist *l, size_t max) {
  po_msg_owners_flags(m, l, max, 0);
}

/* "tcp/80,443 (web)". */
void po_msg_label(struct msg *m, const struct po_watch *w) {
  for (const char *p = w->protocols_str; *p; p++) {
    char c[2] = {*p == ',' ? '+' : *p, '\0'};

    po_msg_str(m, c);
  }
  po_msg_str(m, "/");
  po_msg_text(m, w->ports_str, strlen(w->ports_str), MSG_PORTS_MAX);
  po_msg_str(m, " (");
  po_msg_text(m, w->name, strlen(w->name), MSG_NAME_MAX);
  po_msg_str(m, ")");
}
