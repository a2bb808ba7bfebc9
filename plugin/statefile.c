/*
 * portowner: the StateFile (see statefile.h): the state of every watch of a
 * set, serialized as JSON (strings that are not UTF-8 as {"hex": ...}), read
 * back all or nothing, written atomically.
 *
 * Version 2:
 *   {"version": 2, "boot_id": "..." | null, "watches": [
 *     {"name": ..., "spec": "tcp 80,443 *", "all_namespaces": false,
 *      "unexpected_failure": false, "owners": [OWNER...], "owners_more": 0,
 *      "named": ["0123456789abcdef", ...],
 *      "requirements": [
 *        {"name": "tcp/443", "started": true, "ever_up": true,
 *         "empty_reads": 0, "listener_failure": false,
 *         "owners": [OWNER...], "owners_more": 0}, ...]}, ...]}
 *   OWNER: {"pid": 1311, "uid": 33 | null, "comm": ..., "exe": ... | null,
 *           "user": ...}
 * The watch's own state (owners, unexpected_failure, and named: the owners
 * a standing unexpected-owner FAILURE has named, as po_named_hash() in hex,
 * restored on the same boot) is restored when its spec is the same; each
 * requirement's state when a requirement of that name is configured and
 * AllNamespaces is the same. Version 1 (one listener state per watch) is
 * not read: -EPROTO, every watch starts fresh. owners_more and named are
 * optional (a file of an earlier version 2 writer has neither: its standing
 * FAILURE takes the owners of the first read as named, as before).
 *
 * Bounded whatever the processes do: a list keeps at most STATE_OWNERS_MAX
 * owners (a watch's: one of each program and user first, then the lowest
 * pids; a requirement's: the lowest pids) and counts the others in
 * owners_more (not read back: after a restart, "lost its listener" names
 * and counts the kept owners only); an exe path keeps its last
 * STATE_EXE_MAX bytes (the program's name); a string with control bytes or
 * bytes that are not UTF-8 is written in hex (2 bytes a byte, never the
 * 6 of \u00XX); named is written when it has at most STATE_NAMED_MAX
 * entries. A block with one requirement stays under 64 KiB.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "portowner/config_value.h"
#include "portowner/fileio.h"
#include "portowner/inventory.h"
#include "portowner/json.h"
#include "portowner/owners.h"
#include "portowner/requirement.h"
#include "portowner/statefile.h"
#include "portowner/watch_private.h"

#define STATE_VERSION 2
#define STATE_OWNERS_MAX 16
#define STATE_EXE_MAX 320
#define STATE_NAMED_MAX 256
/* The deepest nesting of our format: the root, watches, a watch,
 * requirements, a requirement, owners, an owner, {"hex": ...}. */
#define STATE_DEPTH_MAX 8
/* What a load accepts (state_max_bytes()): this per watch (its owners,
 * named, and its first requirement), this per further requirement, and a
 * margin (a file written by an earlier portowner, which kept every owner). */
#define STATE_WATCH_BYTES (64u << 10)
#define STATE_REQ_BYTES (24u << 10)
#define STATE_MARGIN_BYTES (256u << 10)
/* One saved endpoint of an inventory, at most: its program and user (63
 * bytes each, as hex when not plain text), address and keys. */
#define STATE_ENDPOINT_BYTES 640u

/* Whether the n bytes at s are valid UTF-8. */
static int utf8_valid(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t c = po_utf8_len(s + i, n - i);

    if (c == 0)
      return 0;
    i += c;
  }
  return 1;
}

/* Whether the n bytes at s hold a control byte (yajl writes \u00XX). */
static int has_control(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20)
      return 1;
  return 0;
}

/* n bytes as JSON, losslessly: a string when they are UTF-8 without
 * control bytes, else {"hex": "..."}. */
static int gen_bytes_n(yajl_gen g, const char *s, size_t n) {
  int bad = 0;

  if (utf8_valid(s, n) && !has_control(s, n))
    return yajl_gen_string(g, (const unsigned char *)s, n);
  {
    static const char hex[] = "0123456789abcdef";
    char *h = malloc(2 * n + 1);

    if (!h)
      return yajl_gen_generation_complete; /* any error */
    for (size_t i = 0; i < n; i++) {
      h[2 * i] = hex[(unsigned char)s[i] >> 4];
      h[2 * i + 1] = hex[(unsigned char)s[i] & 15];
    }
    bad |= yajl_gen_map_open(g);
    bad |= po_gen_key(g, "hex");
    bad |= yajl_gen_string(g, (const unsigned char *)h, 2 * n);
    bad |= yajl_gen_map_close(g);
    free(h);
  }
  return bad;
}

static int gen_bytes(yajl_gen g, const char *s) {
  return gen_bytes_n(g, s, strlen(s));
}

/* An exe path, at most STATE_EXE_MAX bytes: a longer one keeps its end from
 * a '/' on, after "/..." (the program's name, at most NAME_MAX bytes and
 * " (deleted)", is kept whole). */
static int gen_exe(yajl_gen g, const char *exe) {
  size_t n = strlen(exe), keep = STATE_EXE_MAX - 4;
  const char *tail, *slash;
  char buf[STATE_EXE_MAX + 1];

  if (n <= STATE_EXE_MAX)
    return gen_bytes_n(g, exe, n);
  tail = exe + n - keep;
  slash = memchr(tail, '/', keep);
  if (slash)
    tail = slash;
  memcpy(buf, "/...", 4);
  memcpy(buf + 4, tail, (size_t)(exe + n - tail));
  return gen_bytes_n(g, buf, 4 + (size_t)(exe + n - tail));
}

static int same_prog_user(const struct ident *a, const struct ident *b) {
  size_t na, nb;
  const char *pa = po_prog_name(a, &na), *pb = po_prog_name(b, &nb);

  return na == nb && (!na || memcmp(pa, pb, na) == 0) &&
         strcmp(a->user, b->user) == 0;
}

/* Which owners of l the file keeps (pick[i]): all when they are at most
 * STATE_OWNERS_MAX, else (reps) one of each (program, user) first, then
 * the lowest pids. Returns how many. */
static size_t pick_owners(const struct identlist *l, int reps,
                          unsigned char *pick) {
  size_t kept[STATE_OWNERS_MAX], n = 0;

  memset(pick, l->len <= STATE_OWNERS_MAX, l->len);
  if (l->len <= STATE_OWNERS_MAX)
    return l->len;
  for (size_t i = 0; reps && i < l->len && n < STATE_OWNERS_MAX; i++) {
    int seen = 0;

    for (size_t j = 0; j < n && !seen; j++)
      seen = same_prog_user(&l->v[kept[j]], &l->v[i]);
    if (!seen) {
      pick[i] = 1;
      kept[n++] = i;
    }
  }
  for (size_t i = 0; i < l->len && n < STATE_OWNERS_MAX; i++)
    if (!pick[i]) {
      pick[i] = 1;
      n++;
    }
  return n;
}

/*
 * "owners": [...] and "owners_more": N of a list. A watch's list (reps)
 * keeps one owner of each (program, user) first: after a restart its
 * programs and users are what an owner change is judged against. A
 * requirement's list only names the last owners in "lost its listener":
 * the lowest pids, as the notification's owners meta lists them.
 */
static int gen_owners(yajl_gen g, const struct identlist *l, int reps) {
  unsigned char *pick = malloc(l->len ? l->len : 1);
  size_t kept;
  int bad;

  if (!pick)
    return yajl_gen_generation_complete; /* any error */
  kept = pick_owners(l, reps, pick);
  bad = po_gen_key(g, "owners") | yajl_gen_array_open(g);
  for (size_t j = 0; j < l->len; j++) {
    const struct ident *o = &l->v[j];

    if (!pick[j])
      continue;
    bad |= yajl_gen_map_open(g);
    bad |= po_gen_key(g, "pid") | yajl_gen_integer(g, o->pid);
    bad |= po_gen_key(g, "uid");
    bad |= o->uid == PO_UID_UNKNOWN ? yajl_gen_null(g)
                                    : yajl_gen_integer(g, o->uid);
    bad |= po_gen_key(g, "comm") | gen_bytes(g, o->comm);
    bad |= po_gen_key(g, "exe");
    bad |= o->exe ? gen_exe(g, o->exe) : (int)yajl_gen_null(g);
    bad |= po_gen_key(g, "user") | gen_bytes(g, o->user);
    bad |= yajl_gen_map_close(g);
  }
  bad |= yajl_gen_array_close(g);
  bad |= po_gen_key(g, "owners_more") |
         yajl_gen_integer(g, (long long)(l->len - kept));
  free(pick);
  return bad;
}

/* "named": [...] of a standing unexpected-owner FAILURE, when short. */
static int gen_named(yajl_gen g, const struct watch_state *st) {
  int bad;

  if (!st->unexpected_failure || !st->nnamed || st->nnamed > STATE_NAMED_MAX)
    return 0;
  bad = po_gen_key(g, "named") | yajl_gen_array_open(g);
  for (size_t i = 0; i < st->nnamed; i++) {
    char h[17];

    snprintf(h, sizeof(h), "%016llx", (unsigned long long)st->named[i]);
    bad |= yajl_gen_string(g, (const unsigned char *)h, 16);
  }
  bad |= yajl_gen_array_close(g);
  return bad;
}

static int gen_requirement(yajl_gen g, const struct requirement *r) {
  const struct req_state *st = &r->st;
  int bad = yajl_gen_map_open(g);

  bad |= po_gen_key(g, "name") | gen_bytes(g, r->name);
  bad |= po_gen_key(g, "started") | yajl_gen_bool(g, st->started);
  bad |= po_gen_key(g, "ever_up") | yajl_gen_bool(g, st->ever_up);
  bad |= po_gen_key(g, "empty_reads") | yajl_gen_integer(g, st->empty_reads);
  bad |= po_gen_key(g, "listener_failure") | yajl_gen_bool(g, st->failure);
  bad |= gen_owners(g, &st->last, 0);
  bad |= yajl_gen_map_close(g);
  return bad;
}

/* "inventories": [{name, endpoints: [{protocol, family, address, port,
 * program, user, uid, known, reported, gone}]}] (inventory.h). */
static int gen_inventories(yajl_gen g, const struct po_watchset *set) {
  struct po_inv_endpoint *v;
  int bad = 0;

  if (set->ninv == 0)
    return 0;
  v = malloc(PO_INV_SAVED_MAX * sizeof(*v));
  if (!v)
    return 1;
  bad |= po_gen_key(g, "inventories") | yajl_gen_array_open(g);
  for (size_t i = 0; i < set->ninv && !bad; i++) {
    size_t n = po_inventory_state(set->inv[i], v, PO_INV_SAVED_MAX);

    bad |= yajl_gen_map_open(g);
    bad |= po_gen_key(g, "name") | gen_bytes(g, po_inventory_name(set->inv[i]));
    bad |= po_gen_key(g, "endpoints") | yajl_gen_array_open(g);
    for (size_t k = 0; k < n; k++) {
      char a[INET6_ADDRSTRLEN];

      if (!inet_ntop(v[k].family, v[k].addr, a, sizeof(a)))
        continue;
      bad |= yajl_gen_map_open(g);
      bad |= po_gen_key(g, "protocol") |
             gen_bytes(g, v[k].proto == IPPROTO_UDP ? "udp" : "tcp");
      bad |= po_gen_key(g, "address") | gen_bytes(g, a);
      bad |= po_gen_key(g, "port") | yajl_gen_integer(g, v[k].port);
      bad |= po_gen_key(g, "program") | gen_bytes(g, v[k].program);
      bad |= po_gen_key(g, "user") | gen_bytes(g, v[k].user);
      bad |= po_gen_key(g, "uid") | yajl_gen_integer(g, v[k].uid);
      bad |= po_gen_key(g, "known") | yajl_gen_bool(g, v[k].known);
      bad |= po_gen_key(g, "reported") | yajl_gen_bool(g, v[k].reported);
      bad |= po_gen_key(g, "gone") | yajl_gen_bool(g, v[k].gone);
      bad |= yajl_gen_map_close(g);
    }
    bad |= yajl_gen_array_close(g);
    bad |= yajl_gen_map_close(g);
  }
  bad |= yajl_gen_array_close(g);
  free(v);
  return bad;
}

static int state_serialize(const struct po_watchset *set, const char *boot_id,
                           char **out, size_t *len) {
  yajl_gen g = yajl_gen_alloc(NULL);
  int bad = 0;

  if (!g)
    return -ENOMEM;
  yajl_gen_config(g, yajl_gen_beautify, 1);
  bad |= yajl_gen_map_open(g);
  bad |= po_gen_key(g, "version") | yajl_gen_integer(g, STATE_VERSION);
  bad |= po_gen_key(g, "boot_id");
  bad |= boot_id ? gen_bytes(g, boot_id) : (int)yajl_gen_null(g);
  bad |= po_gen_key(g, "watches") | yajl_gen_array_open(g);
  for (size_t i = 0; i < set->len; i++) {
    const struct po_watch *w = set->v[i];
    const struct watch_state *st = &w->st;

    bad |= yajl_gen_map_open(g);
    bad |= po_gen_key(g, "name") | gen_bytes(g, w->name);
    bad |= po_gen_key(g, "spec") | gen_bytes(g, w->spec);
    bad |= po_gen_key(g, "all_namespaces") | yajl_gen_bool(g, w->all_ns);
    bad |= po_gen_key(g, "unexpected_failure") |
           yajl_gen_bool(g, st->unexpected_failure);
    bad |= gen_owners(g, &st->last, 1);
    bad |= gen_named(g, st);
    bad |= po_gen_key(g, "requirements") | yajl_gen_array_open(g);
    for (size_t j = 0; j < w->nreqs; j++)
      bad |= gen_requirement(g, &w->reqs[j]);
    bad |= yajl_gen_array_close(g);
    bad |= yajl_gen_map_close(g);
  }
  bad |= yajl_gen_array_close(g);
  bad |= gen_inventories(g, set);
  bad |= yajl_gen_map_close(g);
  return po_gen_finish(g, bad, out, len);
}

static yajl_val obj_get(yajl_val v, const char *key) {
  if (!YAJL_IS_OBJECT(v))
    return NULL;
  for (size_t i = 0; i < v->u.object.len; i++)
    if (strcmp(v->u.object.keys[i], key) == 0)
      return v->u.object.values[i];
  return NULL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Decodes what gen_bytes() wrote into a malloc'd string. -EBADMSG, -ENOMEM. */
static int get_bytes(yajl_val v, char **out) {
  yajl_val h;

  *out = NULL;
  if (YAJL_IS_STRING(v)) {
    const char *str = YAJL_GET_STRING(v);

    *out = strdup(str ? str : "");
    return *out ? 0 : -ENOMEM;
  }
  h = obj_get(v, "hex");
  if (YAJL_IS_STRING(h)) {
    const char *s = YAJL_GET_STRING(h);
    size_t n = strlen(s);
    char *b;

    if (n % 2)
      return -EBADMSG;
    b = malloc(n / 2 + 1);
    if (!b)
      return -ENOMEM;
    for (size_t i = 0; i < n / 2; i++) {
      int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
        free(b);
        return -EBADMSG;
      }
      b[i] = (char)(hi << 4 | lo);
    }
    b[n / 2] = '\0';
    *out = b;
    return 0;
  }
  return -EBADMSG;
}

static int get_bool(yajl_val v, int *b) {
  if (YAJL_IS_TRUE(v))
    *b = 1;
  else if (YAJL_IS_FALSE(v))
    *b = 0;
  else
    return -EBADMSG;
  return 0;
}

static int get_int(yajl_val v, long long lo, long long hi, long long *out) {
  if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < lo ||
      YAJL_GET_INTEGER(v) > hi)
    return -EBADMSG;
  *out = YAJL_GET_INTEGER(v);
  return 0;
}

/* Reads one saved owners array into *last (empty before). */
static int load_owners(yajl_val arr, struct identlist *last) {
  struct identlist loose = {0};
  char **strs;
  size_t n, nstrs = 0;
  int err = 0;

  if (!YAJL_IS_ARRAY(arr))
    return -EBADMSG;
  n = arr->u.array.len;
  if (n == 0)
    return 0;
  loose.v = calloc(n, sizeof(*loose.v));
  strs = calloc(3 * n, sizeof(*strs));
  if (!loose.v || !strs) {
    free(loose.v);
    free(strs);
    return -ENOMEM;
  }
  for (size_t i = 0; i < n && !err; i++) {
    yajl_val o = arr->u.array.values[i], uid = obj_get(o, "uid"),
             exe = obj_get(o, "exe");
    long long v;
    char *comm = NULL, *user = NULL, *exes = NULL;

    err = get_int(obj_get(o, "pid"), 1, INT32_MAX, &v);
    if (err)
      break;
    loose.v[i].pid = (pid_t)v;
    if (YAJL_IS_NULL(uid)) {
      loose.v[i].uid = PO_UID_UNKNOWN;
    } else {
      err = get_int(uid, 0, (long long)PO_UID_UNKNOWN - 1, &v);
      loose.v[i].uid = (uint32_t)v;
    }
    if (!err)
      err = get_bytes(obj_get(o, "comm"), &comm);
    if (comm)
      strs[nstrs++] = comm;
    if (!err)
      err = get_bytes(obj_get(o, "user"), &user);
    if (user)
      strs[nstrs++] = user;
    if (!err && !YAJL_IS_NULL(exe))
      err = get_bytes(exe, &exes);
    if (exes)
      strs[nstrs++] = exes;
    if (!err && (strlen(comm) >= sizeof((struct po_proc *)0)->comm ||
                 strlen(user) >= sizeof((struct po_proc *)0)->user))
      err = -EBADMSG;
    loose.v[i].comm = comm;
    loose.v[i].user = user;
    loose.v[i].exe = exes;
    loose.len = i + 1;
  }
  if (!err) {
    qsort(loose.v, loose.len, sizeof(*loose.v), po_ident_cmp_pid);
    for (size_t i = 1; i < loose.len && !err; i++)
      if (loose.v[i].pid == loose.v[i - 1].pid)
        err = -EBADMSG;
  }
  if (!err)
    err = po_identlist_copy(last, &loose);
  for (size_t i = 0; i < nstrs; i++)
    free(strs[i]);
  free(strs);
  free(loose.v);
  return err;
}

/* "owners_more" of o: absent (an earlier writer) or a count. */
static int check_more(yajl_val o) {
  yajl_val v = obj_get(o, "owners_more");
  long long n;

  return v ? get_int(v, 0, INT64_MAX, &n) : 0;
}

static int u64_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

  return (x > y) - (x < y);
}

/* "named" of a watch entry (absent: none) into st->named, sorted, without
 * duplicates. */
static int load_named(yajl_val o, struct watch_state *st) {
  yajl_val arr = obj_get(o, "named");
  size_t n, k = 0;

  if (!arr)
    return 0;
  if (!YAJL_IS_ARRAY(arr) || arr->u.array.len > STATE_NAMED_MAX)
    return -EBADMSG;
  n = arr->u.array.len;
  if (!n)
    return 0;
  st->named = malloc(n * sizeof(*st->named));
  if (!st->named)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const char *h = YAJL_GET_STRING(arr->u.array.values[i]);
    uint64_t v = 0;

    if (!h || strlen(h) != 16)
      return -EBADMSG;
    for (size_t j = 0; j < 16; j++) {
      int d = hexval(h[j]);

      if (d < 0)
        return -EBADMSG;
      v = v << 4 | (uint64_t)d;
    }
    st->named[i] = v;
  }
  qsort(st->named, n, sizeof(*st->named), u64_cmp);
  for (size_t i = 0; i < n; i++)
    if (k == 0 || st->named[k - 1] != st->named[i])
      st->named[k++] = st->named[i];
  st->nnamed = k;
  return 0;
}

/* Reads the saved state of one requirement entry; its name into *name. */
static int load_req(yajl_val o, struct req_state *st, unsigned hits,
                    char **name) {
  long long v;
  int err;

  memset(st, 0, sizeof(*st));
  err = get_bytes(obj_get(o, "name"), name);
  if (!err)
    err = get_bool(obj_get(o, "started"), &st->started);
  if (!err)
    err = get_bool(obj_get(o, "ever_up"), &st->ever_up);
  if (!err)
    err = get_int(obj_get(o, "empty_reads"), 0, PO_HITS_MAX, &v);
  if (!err)
    st->empty_reads = (unsigned)v < hits ? (unsigned)v : hits;
  if (!err)
    err = get_bool(obj_get(o, "listener_failure"), &st->failure);
  if (!err)
    err = load_owners(obj_get(o, "owners"), &st->last);
  if (!err)
    err = check_more(o);
  if (err) {
    po_identlist_free(&st->last);
    free(*name);
    *name = NULL;
  }
  return err;
}

/* What a load restores of one watch, until it is all read. */
struct loaded {
  int seen;               /* an entry of this watch was read */
  int have_st;            /* st is restored (same spec) */
  struct watch_state st;  /* the watch's own state */
  struct req_state *reqs; /* w->nreqs entries */
  unsigned char *have;    /* reqs[j] is restored */
};

static void loaded_free(struct loaded *l, size_t nreqs) {
  po_watch_state_release(&l->st);
  if (l->reqs)
    for (size_t j = 0; j < nreqs; j++)
      po_identlist_free(&l->reqs[j].last);
  free(l->reqs);
  free(l->have);
  memset(l, 0, sizeof(*l));
}

/*
 * Reads one watch entry: validated whole even when nothing of it is kept
 * (a corrupt entry is a corrupt file). w is the configured watch of that
 * name (NULL: none, the entry is dropped) and l what is kept of it.
 */
static int load_watch(yajl_val o, const struct po_watch *w, struct loaded *l,
                      const char *spec, int same_boot) {
  yajl_val reqs = obj_get(o, "requirements");
  struct watch_state st = {0};
  int err, all_ns = 0;

  err = get_bool(obj_get(o, "all_namespaces"), &all_ns);
  if (!err)
    err = get_bool(obj_get(o, "unexpected_failure"), &st.unexpected_failure);
  if (!err)
    err = load_owners(obj_get(o, "owners"), &st.last);
  if (!err)
    err = check_more(o);
  if (!err)
    err = load_named(o, &st);
  /* What was named means the same processes on the same boot only. */
  if (!err && (!same_boot || !st.unexpected_failure)) {
    free(st.named);
    st.named = NULL;
    st.nnamed = 0;
  }
  if (!err && !YAJL_IS_ARRAY(reqs))
    err = -EBADMSG;
  /* po_state_save() never writes a watch twice. */
  if (!err && w && l->seen)
    err = -EBADMSG;
  if (!err && w && !l->reqs) {
    l->reqs = calloc(w->nreqs ? w->nreqs : 1, sizeof(*l->reqs));
    l->have = calloc(w->nreqs ? w->nreqs : 1, 1);
    if (!l->reqs || !l->have)
      err = -ENOMEM;
  }
  for (size_t i = 0; !err && i < reqs->u.array.len; i++) {
    struct req_state rs;
    char *name = NULL;
    struct requirement *r;

    err = load_req(reqs->u.array.values[i], &rs, w ? w->hits : PO_HITS_MAX,
                   &name);
    if (err)
      break;
    r = w && all_ns == w->all_ns ? po_requirement_find(w, name) : NULL;
    free(name);
    if (r && l->have[r - w->reqs]) {
      err = -EBADMSG; /* nor a requirement twice */
    } else if (r) {
      l->reqs[r - w->reqs] = rs;
      l->have[r - w->reqs] = 1;
      continue;
    }
    po_identlist_free(&rs.last);
  }
  if (!err && w) {
    l->seen = 1;
    if (strcmp(spec, w->spec) == 0) {
      st.pids_valid = same_boot;
      l->st = st;
      l->have_st = 1;
      return 0;
    }
  }
  po_watch_state_release(&st);
  return err;
}

/* The saved endpoints of one inventory entry o into *v / *n (malloc'd;
 * their strings appended to *strs, which the caller frees). Returns 0,
 * -EBADMSG, -ENOMEM. */
static int load_inventory(yajl_val o, struct po_inv_endpoint **v, size_t *n,
                          char ***strs, size_t *nstrs) {
  yajl_val eps = obj_get(o, "endpoints");
  size_t len;

  *v = NULL;
  *n = 0;
  if (!YAJL_IS_ARRAY(eps) || eps->u.array.len > PO_INV_SAVED_MAX)
    return -EBADMSG;
  len = eps->u.array.len;
  if (len && !(*v = calloc(len, sizeof(**v))))
    return -ENOMEM;
  for (size_t i = 0; i < len; i++) {
    yajl_val e = eps->u.array.values[i];
    struct po_inv_endpoint *x = &(*v)[i];
    char *proto = NULL, *addr = NULL, *prog = NULL, *user = NULL;
    long long port, uid;
    int err = get_bytes(obj_get(e, "protocol"), &proto);

    if (!err)
      err = get_bytes(obj_get(e, "address"), &addr);
    if (!err)
      err = get_bytes(obj_get(e, "program"), &prog);
    if (!err)
      err = get_bytes(obj_get(e, "user"), &user);
    if (!err)
      err = get_int(obj_get(e, "port"), 1, 65535, &port);
    if (!err)
      err = get_int(obj_get(e, "uid"), 0, UINT32_MAX, &uid);
    if (!err)
      err = get_bool(obj_get(e, "known"), &x->known);
    if (!err)
      err = get_bool(obj_get(e, "reported"), &x->reported);
    if (!err)
      err = get_bool(obj_get(e, "gone"), &x->gone);
    if (!err && strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
      err = -EBADMSG;
    if (!err && strlen(prog) > 63)
      err = -EBADMSG;
    if (!err && strlen(user) > 63)
      err = -EBADMSG;
    if (!err) {
      x->proto = strcmp(proto, "udp") == 0 ? IPPROTO_UDP : IPPROTO_TCP;
      if (inet_pton(AF_INET, addr, x->addr) == 1)
        x->family = AF_INET;
      else if (inet_pton(AF_INET6, addr, x->addr) == 1)
        x->family = AF_INET6;
      else
        err = -EBADMSG;
      x->port = (uint16_t)port;
      x->uid = (uint32_t)uid;
    }
    free(proto);
    free(addr);
    if (!err) {
      char **ns = realloc(*strs, (*nstrs + 2) * sizeof(*ns));

      if (!ns) {
        err = -ENOMEM;
      } else {
        *strs = ns;
        ns[(*nstrs)++] = prog;
        ns[(*nstrs)++] = user;
        x->program = prog;
        x->user = user;
        prog = user = NULL;
      }
    }
    free(prog);
    free(user);
    if (err) {
      free(*v);
      *v = NULL;
      return err == -ENOMEM ? -ENOMEM : -EBADMSG;
    }
  }
  *n = len;
  return 0;
}

/* A hash of what matters to the notifications after a restart: each
 * standing FAILURE and whether each requirement has started and been up
 * (a change of it is saved at once, the rest at most once a min_interval). */
static uint64_t state_key(const struct po_watchset *set) {
  uint64_t h = PO_HASH_INIT;

  for (size_t i = 0; i < set->len; i++) {
    const struct po_watch *w = set->v[i];
    unsigned char b = (unsigned char)(w->st.unexpected_failure != 0);

    h = po_hash_bytes(h, &b, 1);
    for (size_t j = 0; j < w->nreqs; j++) {
      const struct req_state *st = &w->reqs[j].st;

      b = (unsigned char)((st->failure != 0) | (st->started != 0) << 1 |
                          (st->ever_up != 0) << 2);
      h = po_hash_bytes(h, &b, 1);
    }
  }
  return h;
}

/* The most a save of set writes, and a margin: what a load reads. Names
 * and specs come from the config (at most 6 bytes a byte, as \u00XX). */
static size_t state_max_bytes(const struct po_watchset *set) {
  size_t n = STATE_MARGIN_BYTES;

  for (size_t i = 0; i < set->len; i++) {
    const struct po_watch *w = set->v[i];

    n += STATE_WATCH_BYTES + 6 * (strlen(w->name) + strlen(w->spec));
    for (size_t j = 0; j < w->nreqs; j++)
      n += (j ? STATE_REQ_BYTES : 0) + 6 * strlen(w->reqs[j].name);
  }
  for (size_t i = 0; i < set->ninv; i++)
    n += 6 * strlen(po_inventory_name(set->inv[i])) +
         PO_INV_SAVED_MAX * STATE_ENDPOINT_BYTES;
  return n;
}

/*
 * Whether the JSON text s nests [ and { at most max deep, scanned before
 * yajl builds a tree (yajl_tree_free() recurses once a level: a deep file
 * would crash it). Outside strings our format has no '/': a comment, which
 * yajl_tree_parse() accepts and which could hide a '"' from this scan, is
 * refused.
 */
static int depth_ok(const char *s, unsigned max) {
  unsigned depth = 0;
  int in_str = 0;

  for (; *s; s++) {
    if (in_str) {
      if (*s == '\\' && s[1])
        s++;
      else if (*s == '"')
        in_str = 0;
    } else if (*s == '"') {
      in_str = 1;
    } else if (*s == '[' || *s == '{') {
      if (++depth > max)
        return 0;
    } else if (*s == ']' || *s == '}') {
      if (depth)
        depth--;
    } else if (*s == '/') {
      return 0;
    }
  }
  return 1;
}

int po_state_load(struct po_watchset *set, const char *path,
                  const char *boot_id) {
  return po_state_load_checked(set, path, boot_id, NULL);
}

int po_state_load_checked(struct po_watchset *set, const char *path,
                          const char *boot_id, struct po_untrusted *why) {
  struct loaded *loaded = NULL;
  yajl_val root = NULL, watches, saved_boot, version, inventories;
  struct po_inv_endpoint **inv_v = NULL;
  size_t *inv_n = NULL, inv_nstrs = 0;
  unsigned char *inv_found = NULL;
  char **inv_strs = NULL;
  char *buf = NULL, *saved_boot_id = NULL, errbuf[128];
  const char *base;
  long long v;
  int err, same_boot, dirfd;

  dirfd = po_dir_open_trusted(path, &base, why);
  if (dirfd < 0)
    return dirfd;
  err = po_file_read_text_at(dirfd, base, state_max_bytes(set), 1, why, &buf);
  close(dirfd);
  if (err)
    return err;
  if (!depth_ok(buf, STATE_DEPTH_MAX)) {
    free(buf);
    return -EBADMSG;
  }
  root = yajl_tree_parse(buf, errbuf, sizeof(errbuf));
  free(buf);
  if (!root)
    return -EBADMSG;
  version = obj_get(root, "version");
  err = get_int(version, 1, STATE_VERSION, &v);
  if (!err && v != STATE_VERSION)
    err = -EPROTO; /* an older portowner's: not read */
  watches = obj_get(root, "watches");
  saved_boot = obj_get(root, "boot_id");
  if (!err && !YAJL_IS_ARRAY(watches))
    err = -EBADMSG;
  if (!err && !YAJL_IS_NULL(saved_boot))
    err = get_bytes(saved_boot, &saved_boot_id);
  if (err)
    goto out;
  same_boot = boot_id && saved_boot_id && strcmp(boot_id, saved_boot_id) == 0;

  loaded = calloc(set->len ? set->len : 1, sizeof(*loaded));
  if (!loaded) {
    err = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < watches->u.array.len && !err; i++) {
    yajl_val o = watches->u.array.values[i];
    char *name = NULL, *spec = NULL;
    struct po_watch *w = NULL;
    size_t k = 0;

    err = get_bytes(obj_get(o, "name"), &name);
    if (!err)
      err = get_bytes(obj_get(o, "spec"), &spec);
    if (!err)
      w = po_watchset_find(set, name);
    while (w && set->v[k] != w)
      k++;
    if (!err)
      err = load_watch(o, w, w ? &loaded[k] : NULL, spec, same_boot);
    free(name);
    free(spec);
  }
  if (err)
    goto out;
  /* The inventories (none in a file of a portowner before them). */
  inv_v = calloc(set->ninv ? set->ninv : 1, sizeof(*inv_v));
  inv_n = calloc(set->ninv ? set->ninv : 1, sizeof(*inv_n));
  inv_found = calloc(set->ninv ? set->ninv : 1, sizeof(*inv_found));
  if (!inv_v || !inv_n || !inv_found) {
    err = -ENOMEM;
    goto out;
  }
  inventories = obj_get(root, "inventories");
  if (inventories && !YAJL_IS_ARRAY(inventories))
    err = -EBADMSG;
  for (size_t i = 0; inventories && !err && i < inventories->u.array.len; i++) {
    yajl_val o = inventories->u.array.values[i];
    char *name = NULL;
    size_t k = 0;
    struct po_inv_endpoint *ev = NULL;
    size_t en = 0;

    err = get_bytes(obj_get(o, "name"), &name);
    while (!err && k < set->ninv &&
           strcmp(po_inventory_name(set->inv[k]), name) != 0)
      k++;
    if (!err)
      err = load_inventory(o, &ev, &en, &inv_strs, &inv_nstrs);
    free(name);
    if (!err && k < set->ninv && !inv_found[k]) {
      inv_found[k] = 1;
      inv_v[k] = ev;
      inv_n[k] = en;
    } else {
      free(ev); /* not configured any more, or listed twice: dropped */
    }
  }
  /* An inventory the file has is restored (Learn does not learn again);
   * one new in the config starts fresh. */
  for (size_t i = 0; !err && i < set->ninv; i++)
    if (inv_found[i])
      err = po_inventory_restore(set->inv[i], inv_v[i], inv_n[i]);
  if (err)
    goto out;
  for (size_t i = 0; i < set->len; i++) {
    struct po_watch *w = set->v[i];
    struct loaded *l = &loaded[i];

    po_watch_state_release(&w->st);
    memset(&w->st, 0, sizeof(w->st));
    if (l->have_st) {
      w->st = l->st;
      memset(&l->st, 0, sizeof(l->st));
    }
    for (size_t j = 0; j < w->nreqs; j++) {
      po_identlist_free(&w->reqs[j].st.last);
      memset(&w->reqs[j].st, 0, sizeof(w->reqs[j].st));
      if (l->have && l->have[j]) {
        w->reqs[j].st = l->reqs[j];
        memset(&l->reqs[j], 0, sizeof(l->reqs[j]));
      }
    }
  }
  /* What was loaded counts as saved: no write until a read changes it. */
  free(set->saved);
  set->saved = NULL;
  if (state_serialize(set, boot_id, &set->saved, &set->saved_len) != 0)
    set->saved = NULL;
  set->saved_key = state_key(set);
  set->saved_written = 0;

out:
  if (loaded)
    for (size_t i = 0; i < set->len; i++)
      loaded_free(&loaded[i], set->v[i]->nreqs);
  free(loaded);
  for (size_t i = 0; inv_v && i < set->ninv; i++)
    free(inv_v[i]);
  free(inv_v);
  free(inv_n);
  free(inv_found);
  for (size_t i = 0; i < inv_nstrs; i++)
    free(inv_strs[i]);
  free(inv_strs);
  free(saved_boot_id);
  yajl_tree_free(root);
  return err;
}

/* Writes len bytes of buf as name in dirfd: a temporary file, fsync, rename
 * over name (*renamed), fsync of the directory. */
static int write_at(int dirfd, const char *name, const char *buf, size_t len,
                    int *renamed) {
  size_t tlen = strlen(name) + 32;
  char *tmp = malloc(tlen);
  struct stat sb;
  int fd, err = 0;

  if (!tmp)
    return -ENOMEM;
  if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISLNK(sb.st_mode)) {
    free(tmp);
    return -ELOOP;
  }
  fd = po_tmp_create(dirfd, name, tmp, tlen);
  if (fd < 0) {
    free(tmp);
    return fd;
  }
  err = po_write_all(fd, buf, len);
  if (!err && fsync(fd) != 0)
    err = -errno;
  if (close(fd) != 0 && !err)
    err = -errno;
  if (!err && renameat(dirfd, tmp, dirfd, name) != 0)
    err = -errno;
  if (err) {
    unlinkat(dirfd, tmp, 0);
  } else {
    *renamed = 1;
    err = po_fsync_fd_dir(dirfd);
  }
  free(tmp);
  return err;
}

int po_state_save(struct po_watchset *set, const char *path,
                  const char *boot_id) {
  return po_state_save_paced(set, path, boot_id, 0, 0, NULL);
}

int po_state_save_paced(struct po_watchset *set, const char *path,
                        const char *boot_id, double now, double min_interval,
                        struct po_untrusted *why) {
  const char *base;
  char *buf;
  size_t len;
  uint64_t key;
  int dirfd, err, renamed = 0;

  err = state_serialize(set, boot_id, &buf, &len);
  if (err)
    return err;
  if (set->saved && set->saved_len == len &&
      memcmp(set->saved, buf, len) == 0) {
    free(buf);
    return 0;
  }
  key = state_key(set);
  if (min_interval > 0 && set->saved_written && set->saved_key == key &&
      now >= set->saved_at && now - set->saved_at < min_interval) {
    free(buf);
    return 0; /* later */
  }
  dirfd = po_dir_open_trusted(path, &base, why);
  if (dirfd < 0) {
    free(buf);
    return dirfd;
  }
  err = write_at(dirfd, base, buf, len, &renamed);
  close(dirfd);
  if (!renamed) {
    free(buf);
    return err;
  }
  free(set->saved);
  set->saved = buf;
  set->saved_len = len;
  set->saved_key = key;
  set->saved_at = now;
  set->saved_written = 1;
  return err ? err : 1;
}
