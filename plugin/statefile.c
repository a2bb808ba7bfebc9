/*
 * portowner: the StateFile (see statefile.h): the state of every watch of a
 * set, serialized as JSON (strings that are not UTF-8 as {"hex": ...}), read
 * back all or nothing, written atomically.
 *
 * Version 2:
 *   {"version": 2, "boot_id": "..." | null, "watches": [
 *     {"name": ..., "spec": "tcp 80,443 *", "all_namespaces": false,
 *      "unexpected_failure": false, "owners": [OWNER...],
 *      "requirements": [
 *        {"name": "tcp/443", "started": true, "ever_up": true,
 *         "empty_reads": 0, "listener_failure": false,
 *         "owners": [OWNER...]}, ...]}, ...]}
 *   OWNER: {"pid": 1311, "uid": 33 | null, "comm": ..., "exe": ... | null,
 *           "user": ...}
 * The watch's own state (owners, unexpected_failure) is restored when its
 * spec is the same; each requirement's state when a requirement of that
 * name is configured and AllNamespaces is the same. Version 1 (one listener
 * state per watch) is not read: -EPROTO, every watch starts fresh.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "portowner/config_value.h"
#include "portowner/fileio.h"
#include "portowner/json.h"
#include "portowner/owners.h"
#include "portowner/requirement.h"
#include "portowner/statefile.h"
#include "portowner/watch_private.h"

/* Largest StateFile read back. */
#define STATE_MAX_BYTES (64u << 20)
#define STATE_VERSION 2

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

/* A string as JSON, losslessly: a string when it is UTF-8, else
 * {"hex": "..."}. */
static int gen_bytes(yajl_gen g, const char *s) {
  size_t n = strlen(s);
  int bad = 0;

  if (utf8_valid(s, n))
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

static int gen_owners(yajl_gen g, const struct identlist *l) {
  int bad = yajl_gen_array_open(g);

  for (size_t j = 0; j < l->len; j++) {
    const struct ident *o = &l->v[j];

    bad |= yajl_gen_map_open(g);
    bad |= po_gen_key(g, "pid") | yajl_gen_integer(g, o->pid);
    bad |= po_gen_key(g, "uid");
    bad |= o->uid == PO_UID_UNKNOWN ? yajl_gen_null(g)
                                    : yajl_gen_integer(g, o->uid);
    bad |= po_gen_key(g, "comm") | gen_bytes(g, o->comm);
    bad |= po_gen_key(g, "exe");
    bad |= o->exe ? gen_bytes(g, o->exe) : (int)yajl_gen_null(g);
    bad |= po_gen_key(g, "user") | gen_bytes(g, o->user);
    bad |= yajl_gen_map_close(g);
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
  bad |= po_gen_key(g, "owners") | gen_owners(g, &st->last);
  bad |= yajl_gen_map_close(g);
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
    bad |= po_gen_key(g, "owners") | gen_owners(g, &st->last);
    bad |= po_gen_key(g, "requirements") | yajl_gen_array_open(g);
    for (size_t j = 0; j < w->nreqs; j++)
      bad |= gen_requirement(g, &w->reqs[j]);
    bad |= yajl_gen_array_close(g);
    bad |= yajl_gen_map_close(g);
  }
  bad |= yajl_gen_array_close(g);
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
  po_identlist_free(&l->st.last);
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
  po_identlist_free(&st.last);
  return err;
}

int po_state_load(struct po_watchset *set, const char *path,
                  const char *boot_id) {
  struct loaded *loaded = NULL;
  yajl_val root = NULL, watches, saved_boot, version;
  char *buf = NULL, *saved_boot_id = NULL, errbuf[128];
  long long v;
  int err, same_boot;

  err = po_file_read_text(path, STATE_MAX_BYTES, &buf);
  if (err)
    return err;
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

out:
  if (loaded)
    for (size_t i = 0; i < set->len; i++)
      loaded_free(&loaded[i], set->v[i]->nreqs);
  free(loaded);
  free(saved_boot_id);
  yajl_tree_free(root);
  return err;
}

int po_state_save(struct po_watchset *set, const char *path,
                  const char *boot_id) {
  char *buf, *tmp;
  size_t len, tlen = strlen(path) + 48;
  struct stat sb;
  int fd = -1, err;

  err = state_serialize(set, boot_id, &buf, &len);
  if (err)
    return err;
  if (set->saved && set->saved_len == len &&
      memcmp(set->saved, buf, len) == 0) {
    free(buf);
    return 0;
  }
  if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
    free(buf);
    return -ELOOP;
  }
  tmp = malloc(tlen);
  if (!tmp) {
    free(buf);
    return -ENOMEM;
  }
  for (unsigned i = 0; i < 100; i++) {
    snprintf(tmp, tlen, "%s.tmp.%ld.%u", path, (long)getpid(), i);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0 || errno != EEXIST)
      break;
  }
  if (fd < 0) {
    err = -errno;
    goto out;
  }
  err = po_write_all(fd, buf, len);
  if (!err && fsync(fd) != 0)
    err = -errno;
  if (close(fd) != 0 && !err)
    err = -errno;
  if (!err && rename(tmp, path) != 0)
    err = -errno;
  if (err) {
    unlink(tmp);
    goto out;
  }
  err = po_fsync_dir(path);
  free(set->saved);
  set->saved = buf;
  set->saved_len = len;
  buf = NULL;
  if (!err)
    err = 1;

out:
  free(tmp);
  free(buf);
  return err;
}
