/*
 * portowner: the message builder of events (see message.h).
 */
#include <stdio.h>
#include <string.h>

#include "portowner/json.h"
#include "portowner/message.h"
#include "portowner/owners.h"

/* The valid UTF-8 character at s (n bytes left): its length, 0 if invalid. */
static size_t utf8_char(const unsigned char *s, size_t n) {
  return po_utf8_len((const char *)s, n);
}

/* Bytes that s (n bytes) takes in a message: control characters and bytes
 * that are not UTF-8 become '?'. */
static size_t text_width(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t w = 0;

  for (size_t i = 0; i < n;) {
    size_t c = utf8_char(u + i, n - i);

    if (c == 0 || u[i] < 0x20 || u[i] == 0x7f)
      c = 1;
    w += c;
    i += c;
  }
  return w;
}

/* Appends s (n bytes) sanitized, in at most max bytes (and what is left);
 * cut at a character boundary with "..." when it does not fit. */
void po_msg_text(struct msg *m, const char *s, size_t n, size_t max) {
  const unsigned char *u = (const unsigned char *)s;
  size_t room = sizeof(m->b) - 1 - m->len, limit;

  limit = max < room ? max : room;
  if (text_width(s, n) > limit)
    limit = limit >= 3 ? limit - 3 : 0;
  else
    limit = (size_t)-1;
  for (size_t i = 0; i < n;) {
    size_t c = utf8_char(u + i, n - i);
    int bad = c == 0 || u[i] < 0x20 || u[i] == 0x7f;
    size_t w = bad ? 1 : c;

    if (limit != (size_t)-1 && w > limit) {
      if (sizeof(m->b) - 1 - m->len >= 3) {
        memcpy(m->b + m->len, "...", 3);
        m->len += 3;
      }
      break;
    }
    if (bad)
      m->b[m->len] = '?';
    else
      memcpy(m->b + m->len, u + i, c);
    m->len += w;
    if (limit != (size_t)-1)
      limit -= w;
    i += bad ? 1 : c;
  }
  m->b[m->len] = '\0';
}

void po_msg_str(struct msg *m, const char *s) {
  po_msg_text(m, s, strlen(s), sizeof(m->b));
}

/* "nginx[1311] www-data" into e (at least 128 bytes). The name is the comm,
 * as ps, top, ss -p and lsof show it (an interpreter's exe says little:
 * python3.11); the exe basename only when the comm is unknown. */
static void owner_entry(const struct ident *o, struct msg *e) {
  char pid[24];
  size_t plen = strlen(o->comm);
  const char *prog = plen ? o->comm : po_prog_name(o, &plen);

  e->len = 0;
  e->b[0] = '\0';
  po_msg_text(e, plen ? prog : "?", plen ? plen : 1, MSG_PROG_MAX);
  snprintf(pid, sizeof(pid), "[%ld]", (long)o->pid);
  po_msg_str(e, pid);
  if (o->user[0]) {
    po_msg_str(e, " ");
    po_msg_text(e, o->user, strlen(o->user), MSG_USER_MAX);
  }
}

/* Appends the owners of l, in at most max bytes: ", ..." when cut. */
void po_msg_owners(struct msg *m, const struct identlist *l, size_t max) {
  size_t room = sizeof(m->b) - 1 - m->len, used = 0;

  if (max > room)
    max = room;
  for (size_t i = 0; i < l->len; i++) {
    const char *sep = i ? ", " : "";
    size_t need, reserve = i + 1 < l->len ? 5 : 0;
    struct msg e;

    owner_entry(&l->v[i], &e);
    need = strlen(sep) + e.len;
    if (used + need + reserve > max) {
      const char *more = i ? ", ..." : "...";

      if (used + strlen(more) <= max)
        po_msg_str(m, more);
      return;
    }
    po_msg_str(m, sep);
    po_msg_str(m, e.b);
    used += need;
  }
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
