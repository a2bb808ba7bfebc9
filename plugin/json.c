/*
 * portowner: JSON output through yajl.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "portowner/json.h"
#include "portowner/printable.h"

size_t po_utf8_len(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t len;
  unsigned cp;

  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    len = 2, cp = s[0] & 0x1f;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    len = 3, cp = s[0] & 0x0f;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    len = 4, cp = s[0] & 0x07;
  else
    return 0;
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  /* Overlong forms, surrogates and code points past U+10FFFF. */
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    return 0;
  return len;
}

/* Writes the JSON string literal of the n bytes at s (valid UTF-8) into
 * out (room for 6 * n + 2 bytes): quote, backslash and C0 escaped as yajl
 * does, and every other character that is not printable (printable.h: DEL,
 * C1, bidi controls, line separators) as \uXXXX. Returns its length. */
static size_t literal(const char *s, size_t n, char *out) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  size_t w = 0;

  out[w++] = '"';
  for (size_t i = 0; i < n;) {
    size_t span, c = po_printable(s + i, n - i, &span);
    const char *esc = NULL;

    switch (u[i]) {
    case '"':
      esc = "\\\"";
      break;
    case '\\':
      esc = "\\\\";
      break;
    case '\b':
      esc = "\\b";
      break;
    case '\f':
      esc = "\\f";
      break;
    case '\n':
      esc = "\\n";
      break;
    case '\r':
      esc = "\\r";
      break;
    case '\t':
      esc = "\\t";
      break;
    }
    if (esc) {
      memcpy(out + w, esc, 2);
      w += 2;
    } else if (c) {
      memcpy(out + w, u + i, c);
      w += c;
    } else {
      /* Not printable: the code point (at most U+2069 here) as \uXXXX. */
      unsigned cp = span == 1 ? u[i]
                    : span == 2
                        ? ((u[i] & 0x1fu) << 6) | (u[i + 1] & 0x3fu)
                        : ((u[i] & 0x0fu) << 12) | ((u[i + 1] & 0x3fu) << 6) |
                              (u[i + 2] & 0x3fu);

      out[w++] = '\\';
      out[w++] = 'u';
      for (int k = 12; k >= 0; k -= 4)
        out[w++] = hex[(cp >> k) & 0xf];
    }
    i += span;
  }
  out[w++] = '"';
  return w;
}

yajl_gen_status po_json_string(yajl_gen g, const char *s, size_t len) {
  static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
  const unsigned char *u = (const unsigned char *)s;
  char stackbuf[256] = "";
  char *buf = stackbuf, *lit;
  size_t w = 0, cap = sizeof(stackbuf), litlen;
  yajl_gen_status st;

  if (len == 0)
    return yajl_gen_string(g, (const unsigned char *)"", 0);
  /* Worst case every byte becomes three. */
  if (len * 3 > cap) {
    cap = len * 3;
    buf = malloc(cap);
    if (!buf)
      return yajl_gen_generation_complete; /* any error status */
  }
  for (size_t i = 0; i < len;) {
    size_t n = po_utf8_len(s + i, len - i);

    if (n == 0) {
      memcpy(buf + w, replacement, 3);
      w += 3;
      i++;
    } else {
      memcpy(buf + w, u + i, n);
      w += n;
      i += n;
    }
  }
  if (po_printable_all(buf, w)) {
    st = yajl_gen_string(g, (const unsigned char *)buf, w);
  } else {
    /* yajl escapes C0 only: the literal is ours, written as it is (a
     * value, never a key: yajl refuses that). */
    lit = malloc(6 * w + 2);
    if (!lit) {
      st = yajl_gen_generation_complete;
    } else {
      litlen = literal(buf, w, lit);
      st = yajl_gen_number(g, lit, litlen);
      free(lit);
    }
  }
  if (buf != stackbuf)
    free(buf);
  return st;
}

static yajl_gen_status key(yajl_gen g, const char *k) {
  return yajl_gen_string(g, (const unsigned char *)k, strlen(k));
}

static yajl_gen_status str(yajl_gen g, const char *s) {
  return po_json_string(g, s, strlen(s));
}

static yajl_gen_status queue(yajl_gen g, const struct po_socket *s,
                             uint32_t v) {
  if (s->proto != IPPROTO_TCP || v == PO_QUEUE_UNKNOWN)
    return yajl_gen_null(g);
  return yajl_gen_integer(g, v);
}

static yajl_gen_status str_or_null(yajl_gen g, const char *s) {
  return s && s[0] ? str(g, s) : yajl_gen_null(g);
}

/* The cgroup fields of an owner or a socket (json.h). */
static int gen_cgroup(yajl_gen g, const struct po_cgroup_paths *cg,
                      int with_systemd) {
  struct po_cgroup_info info;
  int bad = 0;

  po_cgroup_classify_paths(cg, &info);
  bad |= key(g, "cgroup") | str_or_null(g, cg->v2);
  if (with_systemd)
    bad |= key(g, "cgroup_systemd") | str_or_null(g, cg->systemd);
  bad |= key(g, "unit") | str_or_null(g, info.unit);
  bad |= key(g, "user_unit") | str_or_null(g, info.user_unit);
  bad |= key(g, "container");
  if (info.runtime == PO_RUNTIME_NONE) {
    bad |= yajl_gen_null(g);
  } else {
    bad |= yajl_gen_map_open(g);
    bad |= key(g, "runtime") | str(g, po_runtime_name(info.runtime));
    bad |= key(g, "id") | str(g, info.container);
    bad |= yajl_gen_map_close(g);
  }
  bad |= key(g, "pod") | str_or_null(g, info.pod);
  return bad;
}

static int gen_owner(yajl_gen g, const struct po_snapshot *s,
                     const struct po_owner *o) {
  const struct po_proc *p = s->nprocs ? &s->procs[o->proc] : NULL;
  int bad = 0;

  bad |= yajl_gen_map_open(g);
  bad |= key(g, "pid") | yajl_gen_integer(g, o->pid);
  bad |= key(g, "fd") | yajl_gen_integer(g, o->fd);
  /* One record per process and socket: its fds, the lowest PO_OWNER_FDS,
   * and how many there are. */
  bad |= key(g, "fds") | yajl_gen_array_open(g);
  for (uint32_t i = 0; i < o->nfds && i < PO_OWNER_FDS; i++)
    bad |= yajl_gen_integer(g, o->fds[i]);
  bad |= yajl_gen_array_close(g);
  bad |= key(g, "fd_count") | yajl_gen_integer(g, o->nfds);
  bad |=
      key(g, "tid") | (o->tid ? yajl_gen_integer(g, o->tid) : yajl_gen_null(g));
  bad |= key(g, "comm") | (p ? str(g, p->comm) : yajl_gen_null(g));
  bad |= key(g, "exe") | (p && p->exe ? str(g, p->exe) : yajl_gen_null(g));
  bad |= key(g, "uid") |
         (p && p->uid != PO_UID_UNKNOWN ? yajl_gen_integer(g, p->uid)
                                        : yajl_gen_null(g));
  bad |=
      key(g, "user") | (p && p->user[0] ? str(g, p->user) : yajl_gen_null(g));
  if (p) {
    bad |= gen_cgroup(g, &p->cgroup, 1);
  } else {
    const struct po_cgroup_paths none = {NULL, NULL};
    bad |= gen_cgroup(g, &none, 1);
  }
  bad |= yajl_gen_map_close(g);
  return bad;
}

/* The socket's own cgroup: the one that created it (INET_DIAG_CGROUP_ID). */
static int gen_sock_cgroup(yajl_gen g, const struct po_snapshot *s,
                           const struct po_socket *sk) {
  struct po_cgroup_paths cg = {NULL, NULL};
  size_t i = (size_t)(sk - s->socks.v);

  if (s->sock_cgroups && i < s->socks.len)
    cg.v2 = s->sock_cgroups[i];
  return (key(g, "cgroup_id") |
          (sk->cgroup_id ? yajl_gen_integer(g, (long long)sk->cgroup_id)
                         : yajl_gen_null(g))) |
         gen_cgroup(g, &cg, 0);
}

/* Who owns the socket's network namespace: netns_trusted (its user
 * namespace is the initial one), netns_userns (that user namespace's inode)
 * and netns_owner_uid (who made it), null when unknown. */
static int gen_netns_owner(yajl_gen g, const struct po_netns *n) {
  int bad = 0;

  bad |= key(g, "netns_trusted") | yajl_gen_bool(g, n && n->trusted);
  bad |= key(g, "netns_userns") |
         (n && n->userns ? yajl_gen_integer(g, (long long)n->userns)
                         : yajl_gen_null(g));
  bad |= key(g, "netns_owner_uid") |
         (n && n->owner_uid >= 0 ? yajl_gen_integer(g, (long long)n->owner_uid)
                                 : yajl_gen_null(g));
  return bad;
}

static int gen_socket(yajl_gen g, const struct po_snapshot *s,
                      const struct po_socket *sk) {
  char addr[INET6_ADDRSTRLEN] = "";
  int bad = 0;

  inet_ntop(sk->family, sk->addr, addr, sizeof(addr));
  bad |= yajl_gen_map_open(g);
  bad |= key(g, "protocol") | str(g, sk->proto == IPPROTO_TCP ? "tcp" : "udp");
  bad |= key(g, "family") | str(g, sk->family == AF_INET ? "inet" : "inet6");
  bad |= key(g, "v6only");
  if (sk->family == AF_INET6 && sk->v6only >= 0)
    bad |= yajl_gen_bool(g, sk->v6only);
  else if (sk->family == AF_INET)
    bad |= yajl_gen_bool(g, 0);
  else
    bad |= yajl_gen_null(g);
  bad |= key(g, "address") | str(g, addr);
  bad |= key(g, "port") | yajl_gen_integer(g, sk->port);
  bad |= key(g, "inode") | yajl_gen_integer(g, (long long)sk->inode);
  bad |= key(g, "netns") | yajl_gen_integer(g, (long long)sk->netns);
  bad |= gen_netns_owner(g, po_snapshot_netns(s, sk->netns));
  bad |= key(g, "uid") | yajl_gen_integer(g, sk->uid);
  bad |= key(g, "accept_queue") | queue(g, sk, sk->rqueue);
  bad |= key(g, "accept_queue_max") | queue(g, sk, sk->wqueue);
  bad |= gen_sock_cgroup(g, s, sk);
  bad |= key(g, "owners") | yajl_gen_array_open(g);
  for (size_t i = 0; i < sk->owner_count; i++)
    bad |= gen_owner(g, s, &s->owners[sk->owner_first + i]);
  bad |= yajl_gen_array_close(g);
  bad |= yajl_gen_map_close(g);
  return bad;
}

int po_json_snapshot(const struct po_snapshot *s, int pretty, char **out,
                     size_t *len) {
  return po_json_snapshot_some(s, NULL, pretty, out, len);
}

int po_json_snapshot_some(const struct po_snapshot *s, const uint8_t *keep,
                          int pretty, char **out, size_t *len) {
  yajl_gen g = yajl_gen_alloc(NULL);
  const unsigned char *buf;
  size_t blen;
  int bad = 0;

  if (!g)
    return -ENOMEM;
  yajl_gen_config(g, yajl_gen_beautify, pretty ? 1 : 0);
  bad |= yajl_gen_array_open(g);
  for (size_t i = 0; i < s->socks.len; i++)
    if (!keep || keep[i])
      bad |= gen_socket(g, s, &s->socks.v[i]);
  bad |= yajl_gen_array_close(g);
  if (bad || yajl_gen_get_buf(g, &buf, &blen) != yajl_gen_status_ok) {
    yajl_gen_free(g);
    return -ENOMEM;
  }
  *out = malloc(blen + 1);
  if (!*out) {
    yajl_gen_free(g);
    return -ENOMEM;
  }
  memcpy(*out, buf, blen);
  (*out)[blen] = '\0';
  if (len)
    *len = blen;
  yajl_gen_free(g);
  return 0;
}
