/*
 * portowner: the StateFile (see statefile.h): the state of every watch of a
 * set, serialized as JSON (strings that are not UTF-8 as {"hex": ...}), read
 * back all or nothing, written atomically.
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
#include "portowner/statefile.h"
#include "portowner/watch_private.h"

/* Largest StateFile read back. */
#define STATE_MAX_BYTES (64u << 20)
#define STATE_VERSION 1

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
    bad |= po_gen_key(g, "started") | yajl_gen_bool(g, st->started);
    bad |= po_gen_key(g, "ever_up") | yajl_gen_bool(g, st->ever_up);
    bad |= po_gen_key(g, "empty_reads") | yajl_gen_integer(g, st->empty_reads);
    bad |= po_gen_key(g, "listener_failure") |
           yajl_gen_bool(g, st->listener_failure);
    bad |= po_gen_key(g, "unexpected_failure") |
           yajl_gen_bool(g, st->unexpected_failure);
    bad |= po_gen_key(g, "owners") | yajl_gen_array_open(g);
    for (size_t j = 0; j < st->last.len; j++) {
      const struct ident *o = &st->last.v[j];

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

/* Reads one saved owners array into st->last. */
static int load_owners(yajl_val arr, struct watch_state *st) {
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
    err = po_identlist_copy(&st->last, &loose);
  for (size_t i = 0; i < nstrs; i++)
    free(strs[i]);
  free(strs);
  free(loose.v);
  return err;
}

/* Reads the saved state of one watch entry. */
static int load_watch(yajl_val o, struct watch_state *st, unsigned hits) {
  long long v;
  int err;

  memset(st, 0, sizeof(*st));
  err = get_bool(obj_get(o, "started"), &st->started);
  if (!err)
    err = get_bool(obj_get(o, "ever_up"), &st->ever_up);
  if (!err)
    err = get_int(obj_get(o, "empty_reads"), 0, PO_HITS_MAX, &v);
  if (!err)
    st->empty_reads = (unsigned)v < hits ? (unsigned)v : hits;
  if (!err)
    err = get_bool(obj_get(o, "listener_failure"), &st->listener_failure);
  if (!err)
    err = get_bool(obj_get(o, "unexpected_failure"), &st->unexpected_failure);
  if (!err)
    err = load_owners(obj_get(o, "owners"), st);
  return err;
}

int po_state_load(struct po_watchset *set, const char *path,
                  const char *boot_id) {
  struct watch_state *states = NULL;
  unsigned char *seen = NULL;
  yajl_val root = NULL, watches, saved_boot;
  char *buf = NULL, *saved_boot_id = NULL, errbuf[128];
  long long version;
  int err, same_boot;

  err = po_file_read_text(path, STATE_MAX_BYTES, &buf);
  if (err)
    return err;
  root = yajl_tree_parse(buf, errbuf, sizeof(errbuf));
  free(buf);
  if (!root)
    return -EBADMSG;
  err =
      get_int(obj_get(root, "version"), STATE_VERSION, STATE_VERSION, &version);
  watches = obj_get(root, "watches");
  saved_boot = obj_get(root, "boot_id");
  if (!err && !YAJL_IS_ARRAY(watches))
    err = -EBADMSG;
  if (!err && !YAJL_IS_NULL(saved_boot))
    err = get_bytes(saved_boot, &saved_boot_id);
  if (err)
    goto out;
  same_boot = boot_id && saved_boot_id && strcmp(boot_id, saved_boot_id) == 0;

  states = calloc(set->len ? set->len : 1, sizeof(*states));
  seen = calloc(set->len ? set->len : 1, 1);
  if (!states || !seen) {
    err = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < watches->u.array.len && !err; i++) {
    yajl_val o = watches->u.array.values[i];
    char *name = NULL, *spec = NULL;
    struct po_watch *w;

    err = get_bytes(obj_get(o, "name"), &name);
    if (!err)
      err = get_bytes(obj_get(o, "spec"), &spec);
    w = err ? NULL : po_watchset_find(set, name);
    if (w) {
      size_t k = 0;
      struct watch_state st;

      while (set->v[k] != w)
        k++;
      /* Validated even when ignored: a corrupt entry is a corrupt file, and
       * po_state_save() never writes a watch twice. */
      err = load_watch(o, &st, w->hits);
      if (!err && seen[k])
        err = -EBADMSG;
      if (!err)
        seen[k] = 1;
      if (!err && strcmp(spec, w->spec) == 0) {
        st.pids_valid = same_boot;
        states[k] = st;
      } else {
        po_identlist_free(&st.last);
      }
    } else if (!err) {
      struct watch_state st;

      err = load_watch(o, &st, PO_HITS_MAX);
      po_identlist_free(&st.last);
    }
    free(name);
    free(spec);
  }
  if (err)
    goto out;
  for (size_t i = 0; i < set->len; i++) {
    po_identlist_free(&set->v[i]->st.last);
    set->v[i]->st = states[i];
    memset(&states[i], 0, sizeof(states[i]));
  }
  /* What was loaded counts as saved: no write until a read changes it. */
  free(set->saved);
  set->saved = NULL;
  if (state_serialize(set, boot_id, &set->saved, &set->saved_len) != 0)
    set->saved = NULL;

out:
  if (states)
    for (size_t i = 0; i < set->len; i++)
      po_identlist_free(&states[i].last);
  free(states);
  free(seen);
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
