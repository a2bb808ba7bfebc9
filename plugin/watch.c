/*
 * portowner: the watch model and its state machine (see watch.h).
 *
 * One watch per <Port> block. Every read, po_watch_eval() picks the block's
 * sockets out of the snapshot, counts them and their distinct owner
 * processes, and compares what it sees with the watch's state:
 *
 *   listener    FAILURE when sockets were there and none were for Hits reads
 *               (or none at the first read), OKAY when they are back;
 *   owner       WARNING when the set of (program, user) of the owners changed
 *               or every owner pid was replaced while the port stayed open;
 *   expectation FAILURE when an owner fails ExpectProcess/ExpectUser, OKAY
 *               when every owner passes again.
 *
 * The state (standing failures, last known owners) can be saved to a JSON
 * StateFile and read back, so that a restart neither repeats nor misses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "portowner/json.h"
#include "portowner/portspec.h"
#include "portowner/watch.h"

/* Largest StateFile read back. */
#define STATE_MAX_BYTES (64u << 20)
#define STATE_VERSION 1

/* In messages: longest program name, user name, port list, watch name. */
#define MSG_PROG_MAX 40
#define MSG_USER_MAX 32
#define MSG_PORTS_MAX 60
#define MSG_NAME_MAX 60

struct regex;

struct expect_proc {
  char *pattern;    /* the name, or the regex without its slashes */
  struct regex *re; /* when a regex */
  int is_path;      /* a name with '/': compared with the whole exe path */
};

struct expect_user {
  char *name;
  uint32_t uid; /* numeric, or what the name resolved to; or unknown */
  int numeric;
};

struct addr {
  int family;
  uint8_t a[16];
};

/* One owner process. The strings point into a snapshot or an arena. */
struct ident {
  pid_t pid;
  uint32_t uid;     /* PO_UID_UNKNOWN when unknown */
  const char *comm; /* "" when unknown */
  const char *exe;  /* NULL when unknown */
  const char *user; /* "" when unknown */
};

/* Owner processes sorted by pid; arena (if any) holds their strings. */
struct identlist {
  struct ident *v;
  size_t len;
  char *arena;
};

struct watch_state {
  int started;            /* evaluated at least once (or restored) */
  int ever_up;            /* had sockets at some read */
  unsigned empty_reads;   /* consecutive reads without sockets, <= hits */
  int listener_failure;   /* LOST / MISSING_AT_START sent, no BACK yet */
  int unexpected_failure; /* UNEXPECTED_OWNER sent, no EXPECTED yet */
  int pids_valid;         /* last's pids are this boot's */
  struct identlist last;  /* owners at the last read that had owners */
};

struct po_watch {
  char *name;
  struct po_range *ports;
  size_t nports;
  unsigned mask;
  int mask_set;
  struct addr *addrs;
  size_t naddrs;
  struct expect_proc *procs;
  size_t nprocs;
  struct expect_user *users;
  size_t nusers;
  unsigned hits;
  int notify_missing;
  int notify_change;
  int all_ns;
  int finished;
  int in_set;
  char *protocols_str;
  char *ports_str;
  char *addrs_str;
  char *spec; /* what the sockets are: a restored state must match it */
  struct watch_state st;
};

struct po_watchset {
  struct po_watch **v;
  size_t len;
  struct po_range *qports;
  char *saved; /* the state as last saved or loaded */
  size_t saved_len;
};

/* ---- ExpectProcess regexes (PCRE2) ---------------------------------------
 *
 * Every byte PCRE2 allocates for a regex (its contexts, the compiled code,
 * the match data and its backtracking frames) comes from regex_alloc(),
 * which counts it against the regex's budget and refuses past it: while
 * compiling the budget is PO_REGEX_MEM_MAX, so compile memory is bounded
 * whatever PCRE2 does; once compiled it becomes what is in use plus room for
 * the match data and twice the heap limit (a frames vector grows by
 * allocating the new one before freeing the old), so the heap limit, not
 * the budget, is what a match normally meets. The interpreter only: JIT
 * would add executable memory of its own and behave differently on limits.
 */

/* What regex_alloc() puts before each block: its size, keeping alignment. */
union regex_hdr {
  size_t size;
  max_align_t align;
};

struct regex_mem {
  size_t used;
  size_t budget;
  int refused; /* an allocation was refused for the budget */
};

struct regex {
  struct regex_mem mem; /* every block's memory_data points here */
  pcre2_general_context *gc;
  pcre2_match_context *mc;
  pcre2_code *code;
  pcre2_match_data *md; /* one per regex: matching allocates nothing new */
};

static void *regex_alloc(PCRE2_SIZE size, void *data) {
  struct regex_mem *m = data;
  union regex_hdr *h;

  if (size > m->budget - m->used || sizeof(*h) > m->budget - m->used - size) {
    m->refused = 1;
    return NULL;
  }
  h = malloc(sizeof(*h) + size);
  if (!h)
    return NULL;
  h->size = sizeof(*h) + size;
  m->used += h->size;
  return h + 1;
}

static void regex_release(void *p, void *data) {
  struct regex_mem *m = data;
  union regex_hdr *h;

  if (!p)
    return;
  h = (union regex_hdr *)p - 1;
  m->used -= h->size;
  free(h);
}

static void regex_free(struct regex *re) {
  if (!re)
    return;
  pcre2_match_data_free(re->md);
  pcre2_code_free(re->code);
  pcre2_match_context_free(re->mc);
  pcre2_general_context_free(re->gc);
  free(re);
}

/* Why a regex is refused, in err: -E2BIG for a limit, -EINVAL for syntax,
 * -ENOMEM when memory (not the budget) ran out. */
static int regex_error(const struct regex *re, int code, size_t offset,
                       char *err, size_t errsize) {
  PCRE2_UCHAR msg[128];
  int ret = -E2BIG;

  switch (code) {
  case PCRE2_ERROR_PATTERN_STRING_TOO_LONG:
    snprintf(err, errsize, "pattern too long (max %u bytes)",
             (unsigned)PO_REGEX_LEN_MAX);
    break;
  case PCRE2_ERROR_PARENTHESES_NEST_TOO_DEEP:
  case PCRE2_ERROR_PARENTHESES_STACK_CHECK:
    snprintf(err, errsize,
             "nested too deep (max %u levels of parentheses, at offset %zu)",
             (unsigned)PO_REGEX_NEST_MAX, offset);
    break;
  case PCRE2_ERROR_PATTERN_TOO_LARGE:
  case PCRE2_ERROR_HEAP_FAILED:
    if (code == PCRE2_ERROR_HEAP_FAILED && !re->mem.refused)
      return -ENOMEM;
    snprintf(err, errsize,
             "needs more than %u KiB to compile (a bounded repeat of a group "
             "is compiled as that many copies)",
             (unsigned)(PO_REGEX_MEM_MAX / 1024));
    break;
  default:
    if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
      snprintf((char *)msg, sizeof(msg), "PCRE2 error %d", code);
    snprintf(err, errsize, "%s at offset %zu", (const char *)msg, offset);
    ret = -EINVAL;
  }
  return ret;
}

/*
 * Compiles pattern (len bytes) into *out. Returns 0, -EINVAL (syntax),
 * -E2BIG (a limit), -ENOMEM; err says why unless -ENOMEM.
 */
static int regex_compile(struct regex **out, const char *pattern, size_t len,
                         char *err, size_t errsize) {
  char scratch[2];
  struct regex *re;
  pcre2_compile_context *cc;
  PCRE2_SIZE offset = 0;
  int code = 0, ret = -ENOMEM;

  if (!err || !errsize) {
    err = scratch;
    errsize = sizeof(scratch);
  }
  *out = NULL;
  if (len == 0) {
    snprintf(err, errsize, "empty regular expression");
    return -EINVAL;
  }
  if (len > PO_REGEX_LEN_MAX) {
    snprintf(err, errsize, "pattern too long (%zu bytes, max %u)", len,
             (unsigned)PO_REGEX_LEN_MAX);
    return -E2BIG;
  }
  re = calloc(1, sizeof(*re));
  if (!re)
    return -ENOMEM;
  re->mem.budget = PO_REGEX_MEM_MAX;
  re->gc = pcre2_general_context_create(regex_alloc, regex_release, &re->mem);
  cc = re->gc ? pcre2_compile_context_create(re->gc) : NULL;
  if (!cc)
    goto fail;
  pcre2_set_max_pattern_length(cc, PO_REGEX_LEN_MAX);
  pcre2_set_parens_nest_limit(cc, PO_REGEX_NEST_MAX);
  re->code = pcre2_compile((PCRE2_SPTR)pattern, len,
                           PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY |
                               PCRE2_NEVER_UTF | PCRE2_NEVER_UCP,
                           &code, &offset, cc);
  pcre2_compile_context_free(cc);
  if (!re->code) {
    ret = regex_error(re, code, offset, err, errsize);
    goto fail;
  }
  /* From here on, room for the match context and data and the frames. */
  re->mem.budget =
      re->mem.used + 4096 + 2 * (size_t)PO_REGEX_HEAP_LIMIT_KIB * 1024;
  re->mc = pcre2_match_context_create(re->gc);
  re->md = pcre2_match_data_create(1, re->gc);
  if (!re->mc || !re->md)
    goto fail;
  pcre2_set_match_limit(re->mc, PO_REGEX_MATCH_LIMIT);
  pcre2_set_depth_limit(re->mc, PO_REGEX_DEPTH_LIMIT);
  pcre2_set_heap_limit(re->mc, PO_REGEX_HEAP_LIMIT_KIB);
  *out = re;
  return 0;
fail:
  regex_free(re);
  return ret;
}

/* Whether len bytes of s match. Any error, a limit hit included, is "no":
 * for an expectation that is "unexpected owner", the safe answer. */
static int regex_matches(const struct regex *re, const char *s, size_t len) {
  return pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, re->md, re->mc) >= 0;
}

/* ---- small helpers ------------------------------------------------------- */

static void identlist_free(struct identlist *l) {
  free(l->v);
  free(l->arena);
  memset(l, 0, sizeof(*l));
}

/* Deep copy of src into dst (one arena for all strings). */
static int identlist_copy(struct identlist *dst, const struct identlist *src) {
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
    identlist_free(dst);
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

/* The valid UTF-8 character at s (n bytes left): its length, 0 if invalid. */
static size_t utf8_char(const unsigned char *s, size_t n) {
  return po_utf8_len((const char *)s, n);
}

static int utf8_valid(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;

  for (size_t i = 0; i < n;) {
    size_t c = utf8_char(u + i, n - i);

    if (c == 0)
      return 0;
    i += c;
  }
  return 1;
}

/* The program of an owner: the exe basename (" (deleted)" removed), or the
 * comm when the exe is unknown. Not NUL-terminated: *len bytes. */
static const char *prog_name(const struct ident *o, size_t *len) {
  static const char deleted[] = " (deleted)";
  const size_t dl = sizeof(deleted) - 1;

  if (o->exe && o->exe[0]) {
    const char *base = strrchr(o->exe, '/');
    size_t n;

    base = base ? base + 1 : o->exe;
    n = strlen(base);
    if (n > dl && memcmp(base + n - dl, deleted, dl) == 0)
      n -= dl;
    if (n) {
      *len = n;
      return base;
    }
  }
  *len = strlen(o->comm);
  return o->comm;
}

/* The exe path without " (deleted)". */
static size_t exe_len(const char *exe) {
  static const char deleted[] = " (deleted)";
  const size_t dl = sizeof(deleted) - 1;
  size_t n = strlen(exe);

  if (n > dl && memcmp(exe + n - dl, deleted, dl) == 0)
    n -= dl;
  return n;
}

/* ---- config values ------------------------------------------------------- */

int po_config_port_number(double v, struct po_range *r) {
  if (isnan(v))
    return -EINVAL;
  if (v < 1 || v > 65535)
    return -ERANGE;
  if (v != (double)(unsigned)v)
    return -EINVAL;
  r->lo = r->hi = (uint16_t)v;
  return 0;
}

int po_config_hits(double v, unsigned *hits) {
  if (isnan(v))
    return -EINVAL;
  if (v < 1 || v > PO_HITS_MAX)
    return -ERANGE;
  if (v != (double)(unsigned)v)
    return -EINVAL;
  *hits = (unsigned)v;
  return 0;
}

int po_config_bool(const char *s, int *b) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};

  if (!s)
    return -EINVAL;
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *b = 1;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *b = 0;
      return 0;
    }
  }
  return -EINVAL;
}

int po_config_source(const char *s, enum po_source *src) {
  if (!s)
    return -EINVAL;
  if (strcasecmp(s, "auto") == 0)
    *src = PO_SOURCE_AUTO;
  else if (strcasecmp(s, "netlink") == 0)
    *src = PO_SOURCE_NETLINK;
  else if (strcasecmp(s, "proc") == 0)
    *src = PO_SOURCE_PROC;
  else
    return -EINVAL;
  return 0;
}

/* ---- a watch ------------------------------------------------------------- */

struct po_watch *po_watch_new(const char *name) {
  struct po_watch *w;
  size_t n = name ? strlen(name) : 0;

  if (n == 0 || n >= PO_WATCH_NAME_MAX || strchr(name, '/')) {
    errno = EINVAL;
    return NULL;
  }
  w = calloc(1, sizeof(*w));
  if (!w || !(w->name = strdup(name))) {
    free(w);
    errno = ENOMEM;
    return NULL;
  }
  w->mask = PO_TCP;
  w->hits = 1;
  w->notify_missing = 1;
  w->notify_change = 1;
  return w;
}

void po_watch_free(struct po_watch *w) {
  if (!w)
    return;
  for (size_t i = 0; i < w->nprocs; i++) {
    regex_free(w->procs[i].re);
    free(w->procs[i].pattern);
  }
  for (size_t i = 0; i < w->nusers; i++)
    free(w->users[i].name);
  free(w->procs);
  free(w->users);
  free(w->ports);
  free(w->addrs);
  free(w->protocols_str);
  free(w->ports_str);
  free(w->addrs_str);
  free(w->spec);
  free(w->name);
  identlist_free(&w->st.last);
  free(w);
}

static int grow(void **v, size_t n, size_t size) {
  void *nv = realloc(*v, (n + 1) * size);

  if (!nv)
    return -ENOMEM;
  *v = nv;
  return 0;
}

int po_watch_port_add(struct po_watch *w, const struct po_range *r) {
  if (!r || r->lo == 0 || r->lo > r->hi)
    return -EINVAL;
  if (grow((void **)&w->ports, w->nports, sizeof(*w->ports)))
    return -ENOMEM;
  w->ports[w->nports++] = *r;
  return 0;
}

int po_watch_port_add_number(struct po_watch *w, double v) {
  struct po_range r;
  int err = po_config_port_number(v, &r);

  return err ? err : po_watch_port_add(w, &r);
}

int po_watch_port_add_string(struct po_watch *w, const char *s,
                             const char **bad) {
  struct po_range *v = NULL;
  size_t n = 0;
  int err;

  if (!s)
    return -EINVAL;
  err = po_ports_parse(s, &v, &n, bad);
  for (size_t i = 0; !err && i < n; i++)
    err = po_watch_port_add(w, &v[i]);
  free(v);
  return err;
}

int po_watch_protocol_add(struct po_watch *w, const char *name) {
  unsigned m;

  if (po_proto_parse(name, &m))
    return -EINVAL;
  w->mask = (w->mask_set ? w->mask : 0) | m;
  w->mask_set = 1;
  return 0;
}

int po_watch_address_add(struct po_watch *w, const char *s) {
  struct addr a = {0};

  if (!s)
    return -EINVAL;
  if (inet_pton(AF_INET, s, a.a) == 1)
    a.family = AF_INET;
  else if (inet_pton(AF_INET6, s, a.a) == 1)
    a.family = AF_INET6;
  else
    return -EINVAL;
  if (grow((void **)&w->addrs, w->naddrs, sizeof(*w->addrs)))
    return -ENOMEM;
  w->addrs[w->naddrs++] = a;
  return 0;
}

int po_watch_expect_process_add(struct po_watch *w, const char *pattern,
                                char *err, size_t errsize) {
  struct expect_proc e = {0};
  size_t n = pattern ? strlen(pattern) : 0;

  if (err && errsize)
    err[0] = '\0';
  if (n == 0)
    return -EINVAL;
  if (n >= 2 && pattern[0] == '/' && pattern[n - 1] == '/') {
    int rc;

    e.pattern = strndup(pattern + 1, n - 2);
    if (!e.pattern)
      return -ENOMEM;
    rc = regex_compile(&e.re, e.pattern, n - 2, err, errsize);
    if (rc) {
      free(e.pattern);
      return rc;
    }
  } else {
    e.is_path = !!strchr(pattern, '/');
    e.pattern = strdup(pattern);
    if (!e.pattern)
      return -ENOMEM;
  }
  if (grow((void **)&w->procs, w->nprocs, sizeof(*w->procs))) {
    regex_free(e.re);
    free(e.pattern);
    return -ENOMEM;
  }
  w->procs[w->nprocs++] = e;
  return 0;
}

int po_watch_expect_user_add(struct po_watch *w, const char *user) {
  struct expect_user u = {.uid = PO_UID_UNKNOWN};
  char *end;
  unsigned long v;

  if (!user || !*user)
    return -EINVAL;
  errno = 0;
  v = strtoul(user, &end, 10);
  if (user[0] >= '0' && user[0] <= '9' && !*end && errno == 0 &&
      v < PO_UID_UNKNOWN) {
    u.numeric = 1;
    u.uid = (uint32_t)v;
  } else {
    char buf[4096];
    struct passwd pw, *res = NULL;

    if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) == 0 && res)
      u.uid = (uint32_t)res->pw_uid;
  }
  u.name = strdup(user);
  if (!u.name)
    return -ENOMEM;
  if (grow((void **)&w->users, w->nusers, sizeof(*w->users))) {
    free(u.name);
    return -ENOMEM;
  }
  w->users[w->nusers++] = u;
  return 0;
}

int po_watch_set_hits(struct po_watch *w, unsigned hits) {
  if (hits == 0 || hits > PO_HITS_MAX)
    return -EINVAL;
  w->hits = hits;
  return 0;
}

void po_watch_set_notify_missing_at_start(struct po_watch *w, int on) {
  w->notify_missing = !!on;
}

void po_watch_set_notify_owner_change(struct po_watch *w, int on) {
  w->notify_change = !!on;
}

void po_watch_set_all_namespaces(struct po_watch *w, int on) {
  w->all_ns = !!on;
}

/* A growable string for descriptions. */
struct sbuf {
  char *b;
  size_t len;
  size_t cap;
  int oom;
};

static void sbuf_add(struct sbuf *s, const char *t) {
  size_t n = strlen(t);

  if (s->oom)
    return;
  if (s->len + n + 1 > s->cap) {
    size_t cap = s->cap ? s->cap : 64;
    char *nb;

    while (s->len + n + 1 > cap)
      cap *= 2;
    nb = realloc(s->b, cap);
    if (!nb) {
      s->oom = 1;
      return;
    }
    s->b = nb;
    s->cap = cap;
  }
  memcpy(s->b + s->len, t, n + 1);
  s->len += n;
}

/* Returns the string (the caller frees it), or NULL when out of memory. */
static char *sbuf_done(struct sbuf *s) {
  if (!s->b && !s->oom)
    sbuf_add(s, "");
  if (s->oom) {
    free(s->b);
    return NULL;
  }
  return s->b;
}

static char *describe_protocols(unsigned mask) {
  struct sbuf s = {0};
  const char *sep = "";

  if ((mask & PO_TCP) == PO_TCP) {
    sbuf_add(&s, "tcp");
    sep = ",";
  } else if (mask & PO_TCP) {
    sbuf_add(&s, mask & PO_TCP4 ? "tcp4" : "tcp6");
    sep = ",";
  }
  if ((mask & PO_UDP) == PO_UDP) {
    sbuf_add(&s, sep);
    sbuf_add(&s, "udp");
  } else if (mask & PO_UDP) {
    sbuf_add(&s, sep);
    sbuf_add(&s, mask & PO_UDP4 ? "udp4" : "udp6");
  }
  return sbuf_done(&s);
}

static char *describe_ports(const struct po_range *r, size_t n) {
  struct sbuf s = {0};

  for (size_t i = 0; i < n; i++) {
    char tmp[32];

    if (r[i].lo == r[i].hi)
      snprintf(tmp, sizeof(tmp), "%s%u", i ? "," : "", (unsigned)r[i].lo);
    else
      snprintf(tmp, sizeof(tmp), "%s%u-%u", i ? "," : "", (unsigned)r[i].lo,
               (unsigned)r[i].hi);
    sbuf_add(&s, tmp);
  }
  return sbuf_done(&s);
}

static char *describe_addrs(const struct addr *a, size_t n) {
  struct sbuf s = {0};

  for (size_t i = 0; i < n; i++) {
    char tmp[INET6_ADDRSTRLEN] = "";

    inet_ntop(a[i].family, a[i].a, tmp, sizeof(tmp));
    if (i)
      sbuf_add(&s, ",");
    sbuf_add(&s, tmp);
  }
  return sbuf_done(&s);
}

int po_watch_finish(struct po_watch *w) {
  struct sbuf spec = {0};

  if (w->nports == 0)
    return -EDESTADDRREQ;
  free(w->protocols_str);
  free(w->ports_str);
  free(w->addrs_str);
  free(w->spec);
  w->addrs_str = w->spec = NULL;
  w->protocols_str = describe_protocols(w->mask);
  w->ports_str = describe_ports(w->ports, w->nports);
  if (w->naddrs)
    w->addrs_str = describe_addrs(w->addrs, w->naddrs);
  if (!w->protocols_str || !w->ports_str || (w->naddrs && !w->addrs_str))
    return -ENOMEM;
  sbuf_add(&spec, w->protocols_str);
  sbuf_add(&spec, " ");
  sbuf_add(&spec, w->ports_str);
  sbuf_add(&spec, " ");
  sbuf_add(&spec, w->addrs_str ? w->addrs_str : "*");
  if (w->all_ns)
    sbuf_add(&spec, " all-namespaces");
  w->spec = sbuf_done(&spec);
  if (!w->spec)
    return -ENOMEM;
  w->finished = 1;
  return 0;
}

const char *po_watch_name(const struct po_watch *w) {
  return w->name;
}

const char *po_watch_protocols(const struct po_watch *w) {
  return w->protocols_str;
}

const char *po_watch_ports(const struct po_watch *w) {
  return w->ports_str;
}

const char *po_watch_addresses(const struct po_watch *w) {
  return w->addrs_str;
}

unsigned po_watch_hits(const struct po_watch *w) {
  return w->hits;
}

int po_watch_all_namespaces(const struct po_watch *w) {
  return w->all_ns;
}

/* ---- matching ------------------------------------------------------------ */

static int addr_matches(const struct po_watch *w, const struct po_socket *sk) {
  static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
  static const uint8_t any4[4] = {0};

  for (size_t i = 0; i < w->naddrs; i++) {
    const struct addr *a = &w->addrs[i];

    if (a->family == sk->family &&
        memcmp(a->a, sk->addr, a->family == AF_INET ? 4 : 16) == 0)
      return 1;
    /* 1.2.3.4 is ::ffff:1.2.3.4 on a v6 socket; 0.0.0.0 means v4 wildcard
     * binds only. */
    if (a->family == AF_INET && sk->family == AF_INET6 &&
        memcmp(sk->addr, v4mapped, 12) == 0 &&
        memcmp(sk->addr + 12, a->a, 4) == 0 && memcmp(a->a, any4, 4) != 0)
      return 1;
  }
  return 0;
}

static int socket_matches(const struct po_watch *w, const struct po_socket *sk,
                          uint64_t own_netns) {
  if (!(po_socket_bit(sk) & w->mask))
    return 0;
  if (!po_ranges_match(w->ports, w->nports, sk->port))
    return 0;
  if (!w->all_ns && sk->netns != own_netns)
    return 0;
  if (w->naddrs && !addr_matches(w, sk))
    return 0;
  return 1;
}

static int expect_proc_matches(const struct expect_proc *e,
                               const struct ident *o) {
  const char *base = NULL;
  size_t blen = 0;

  if (o->exe && o->exe[0]) {
    base = strrchr(o->exe, '/');
    base = base ? base + 1 : o->exe;
    blen = exe_len(base);
  }
  if (e->re)
    return (o->comm[0] && regex_matches(e->re, o->comm, strlen(o->comm))) ||
           (base && blen && regex_matches(e->re, base, blen));
  if (e->is_path)
    return o->exe && exe_len(o->exe) == strlen(e->pattern) &&
           memcmp(o->exe, e->pattern, strlen(e->pattern)) == 0;
  return strcmp(o->comm, e->pattern) == 0 ||
         (base && blen == strlen(e->pattern) &&
          memcmp(base, e->pattern, blen) == 0);
}

static int expect_user_matches(const struct expect_user *u,
                               const struct ident *o) {
  if (u->uid != PO_UID_UNKNOWN && o->uid == u->uid)
    return 1;
  return !u->numeric && o->user[0] && strcmp(o->user, u->name) == 0;
}

/*
 * Whether an owner passes the watch's expectations: 1 yes, 0 no, -1 cannot
 * tell (its details could not be read).
 */
static int owner_expected(const struct po_watch *w, const struct ident *o) {
  int judged = 0;

  if (w->nprocs && (o->comm[0] || (o->exe && o->exe[0]))) {
    int ok = 0;

    for (size_t i = 0; i < w->nprocs && !ok; i++)
      ok = expect_proc_matches(&w->procs[i], o);
    if (!ok)
      return 0;
    judged = 1;
  }
  if (w->nusers && o->uid != PO_UID_UNKNOWN) {
    int ok = 0;

    for (size_t i = 0; i < w->nusers && !ok; i++)
      ok = expect_user_matches(&w->users[i], o);
    if (!ok)
      return 0;
    judged = 1;
  }
  if (!w->nprocs && !w->nusers)
    return 1;
  return judged ? 1 : -1;
}

/* ---- owner sets ---------------------------------------------------------- */

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
    v[i].name = prog_name(&l->v[i], &v[i].len);
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
static int progs_differ(const struct identlist *a, const struct identlist *b) {
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
static int pids_disjoint(const struct identlist *a, const struct identlist *b) {
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

/* ---- JSON ---------------------------------------------------------------- */

static yajl_gen_status gen_key(yajl_gen g, const char *k) {
  return yajl_gen_string(g, (const unsigned char *)k, strlen(k));
}

static yajl_gen_status gen_str_or_null(yajl_gen g, const char *s) {
  if (!s || !*s)
    return yajl_gen_null(g);
  return po_json_string(g, s, strlen(s));
}

/* Takes g's buffer as a malloc'd string and frees g. */
static int gen_finish(yajl_gen g, int bad, char **out, size_t *outlen) {
  const unsigned char *buf;
  size_t len;

  *out = NULL;
  if (bad || yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
    yajl_gen_free(g);
    return -ENOMEM;
  }
  *out = malloc(len + 1);
  if (*out) {
    memcpy(*out, buf, len);
    (*out)[len] = '\0';
    if (outlen)
      *outlen = len;
  }
  yajl_gen_free(g);
  return *out ? 0 : -ENOMEM;
}

/* The owners JSON of an event: at most PO_OWNERS_MAX {pid, comm, exe, user}. */
static int owners_json(const struct identlist *l, char **out) {
  yajl_gen g = yajl_gen_alloc(NULL);
  int bad = 0;

  if (!g)
    return -ENOMEM;
  bad |= yajl_gen_array_open(g);
  for (size_t i = 0; i < l->len && i < PO_OWNERS_MAX; i++) {
    const struct ident *o = &l->v[i];

    bad |= yajl_gen_map_open(g);
    bad |= gen_key(g, "pid") | yajl_gen_integer(g, o->pid);
    bad |= gen_key(g, "comm") | gen_str_or_null(g, o->comm);
    bad |= gen_key(g, "exe") | gen_str_or_null(g, o->exe);
    bad |= gen_key(g, "user") | gen_str_or_null(g, o->user);
    bad |= yajl_gen_map_close(g);
  }
  bad |= yajl_gen_array_close(g);
  return gen_finish(g, bad, out, NULL);
}

/* ---- messages ------------------------------------------------------------ */

struct msg {
  char b[PO_MESSAGE_MAX];
  size_t len;
};

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
static void msg_text(struct msg *m, const char *s, size_t n, size_t max) {
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

static void msg_str(struct msg *m, const char *s) {
  msg_text(m, s, strlen(s), sizeof(m->b));
}

/* "nginx[1311] www-data" into e (at least 128 bytes). The name is the comm,
 * as ps, top, ss -p and lsof show it (an interpreter's exe says little:
 * python3.11); the exe basename only when the comm is unknown. */
static void owner_entry(const struct ident *o, struct msg *e) {
  char pid[24];
  size_t plen = strlen(o->comm);
  const char *prog = plen ? o->comm : prog_name(o, &plen);

  e->len = 0;
  e->b[0] = '\0';
  msg_text(e, plen ? prog : "?", plen ? plen : 1, MSG_PROG_MAX);
  snprintf(pid, sizeof(pid), "[%ld]", (long)o->pid);
  msg_str(e, pid);
  if (o->user[0]) {
    msg_str(e, " ");
    msg_text(e, o->user, strlen(o->user), MSG_USER_MAX);
  }
}

/* Appends the owners of l, in at most max bytes: ", ..." when cut. */
static void msg_owners(struct msg *m, const struct identlist *l, size_t max) {
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
        msg_str(m, more);
      return;
    }
    msg_str(m, sep);
    msg_str(m, e.b);
    used += need;
  }
}

/* "tcp/80,443 (web)". */
static void msg_label(struct msg *m, const struct po_watch *w) {
  for (const char *p = w->protocols_str; *p; p++) {
    char c[2] = {*p == ',' ? '+' : *p, '\0'};

    msg_str(m, c);
  }
  msg_str(m, "/");
  msg_text(m, w->ports_str, strlen(w->ports_str), MSG_PORTS_MAX);
  msg_str(m, " (");
  msg_text(m, w->name, strlen(w->name), MSG_NAME_MAX);
  msg_str(m, ")");
}

/* ---- events -------------------------------------------------------------- */

const char *po_event_type_name(enum po_event_type t) {
  switch (t) {
  case PO_EVENT_LISTENER_LOST:
    return "listener_lost";
  case PO_EVENT_MISSING_AT_START:
    return "missing_at_start";
  case PO_EVENT_LISTENER_BACK:
    return "listener_back";
  case PO_EVENT_OWNER_CHANGED:
    return "owner_changed";
  case PO_EVENT_UNEXPECTED_OWNER:
    return "unexpected_owner";
  case PO_EVENT_EXPECTED_OWNER:
    return "expected_owner";
  }
  return NULL;
}

const char *po_event_condition(enum po_event_type t) {
  switch (t) {
  case PO_EVENT_LISTENER_LOST:
  case PO_EVENT_MISSING_AT_START:
  case PO_EVENT_LISTENER_BACK:
    return "listener";
  case PO_EVENT_OWNER_CHANGED:
    return "owner_change";
  case PO_EVENT_UNEXPECTED_OWNER:
  case PO_EVENT_EXPECTED_OWNER:
    return "unexpected_owner";
  }
  return NULL;
}

static void event_release(struct po_event *e) {
  free(e->owners);
  free(e->previous_owners);
  e->owners = e->previous_owners = NULL;
}

void po_events_clear(struct po_events *e) {
  for (size_t i = 0; i < e->len; i++)
    event_release(&e->v[i]);
  e->len = 0;
}

void po_events_free(struct po_events *e) {
  po_events_clear(e);
  free(e->v);
  memset(e, 0, sizeof(*e));
}

static int events_reserve(struct po_events *e, size_t more) {
  if (e->len + more > e->cap) {
    size_t cap = e->cap ? e->cap : 4;
    struct po_event *nv;

    while (cap < e->len + more)
      cap *= 2;
    nv = realloc(e->v, cap * sizeof(*nv));
    if (!nv)
      return -ENOMEM;
    e->v = nv;
    e->cap = cap;
  }
  return 0;
}

/* Appends an event with its owners JSON (cur) and previous_owners (prev,
 * when not NULL). */
static int event_add(struct po_events *ev, const struct po_watch *w,
                     enum po_event_type type, const struct msg *m,
                     const struct po_watch_values *v,
                     const struct identlist *cur,
                     const struct identlist *prev) {
  struct po_event e = {0};
  int err;

  e.type = type;
  switch (type) {
  case PO_EVENT_LISTENER_LOST:
  case PO_EVENT_MISSING_AT_START:
  case PO_EVENT_UNEXPECTED_OWNER:
    e.severity = PO_SEVERITY_FAILURE;
    break;
  case PO_EVENT_OWNER_CHANGED:
    e.severity = PO_SEVERITY_WARNING;
    break;
  case PO_EVENT_LISTENER_BACK:
  case PO_EVENT_EXPECTED_OWNER:
    e.severity = PO_SEVERITY_OKAY;
    break;
  }
  e.watch = w;
  memcpy(e.message, m->b, m->len + 1);
  e.sockets = v->sockets;
  e.processes = v->processes;
  e.owners_total = cur->len;
  err = owners_json(cur, &e.owners);
  if (!err && prev)
    err = owners_json(prev, &e.previous_owners);
  if (!err)
    err = events_reserve(ev, 1);
  if (err) {
    event_release(&e);
    return err;
  }
  ev->v[ev->len++] = e;
  return 0;
}

/* ---- evaluation ---------------------------------------------------------- */

/* The values of w in s and its distinct owners (pointing into s). */
static int collect(const struct po_watch *w, const struct po_snapshot *s,
                   uint64_t own_netns, struct po_watch_values *v,
                   struct identlist *cur) {
  uint8_t *mark = NULL;

  memset(v, 0, sizeof(*v));
  memset(cur, 0, sizeof(*cur));
  if (s->nprocs) {
    mark = calloc(s->nprocs, 1);
    if (!mark)
      return -ENOMEM;
  }
  for (size_t i = 0; i < s->socks.len; i++) {
    const struct po_socket *sk = &s->socks.v[i];

    if (!socket_matches(w, sk, own_netns))
      continue;
    v->sockets++;
    if (sk->owner_count == 0)
      v->unowned++;
    if (sk->proto == IPPROTO_TCP) {
      v->accept += sk->rqueue == PO_QUEUE_UNKNOWN ? 0 : sk->rqueue;
      v->accept_max += sk->wqueue == PO_QUEUE_UNKNOWN ? 0 : sk->wqueue;
    }
    for (size_t j = 0; j < sk->owner_count; j++) {
      size_t k = sk->owner_first + j;

      if (k < s->nowners && s->owners[k].proc < s->nprocs &&
          !mark[s->owners[k].proc]) {
        mark[s->owners[k].proc] = 1;
        cur->len++;
      }
    }
  }
  if (cur->len) {
    size_t n = 0;

    cur->v = malloc(cur->len * sizeof(*cur->v));
    if (!cur->v) {
      free(mark);
      cur->len = 0;
      return -ENOMEM;
    }
    /* procs are sorted by pid: so is cur. */
    for (size_t i = 0; i < s->nprocs; i++) {
      const struct po_proc *p = &s->procs[i];

      if (!mark[i])
        continue;
      cur->v[n].pid = p->pid;
      cur->v[n].uid = p->uid;
      cur->v[n].comm = p->comm;
      cur->v[n].exe = p->exe;
      cur->v[n].user = p->user;
      n++;
    }
  }
  v->processes = cur->len;
  free(mark);
  return 0;
}

/*
 * An owner that exited between the fd walk and the read of its details has
 * none (comm "", exe NULL): keep what the last read knew of the same pid
 * (both lists are sorted by pid), so that a message never says "?[pid]" of a
 * process it named a moment ago. The strings stay in last's arena, which
 * outlives cur's use in this evaluation.
 */
static void details_keep(struct identlist *cur, const struct identlist *last) {
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

int po_watch_eval(struct po_watch *w, const struct po_snapshot *s,
                  uint64_t own_netns, struct po_watch_values *values,
                  struct po_events *ev) {
  struct watch_state ns = w->st;
  struct identlist cur, newlast = {0}, bad = {0};
  struct po_events local = {0};
  const struct identlist *last = &w->st.last;
  int err, back = 0, update_last = 0;
  struct msg m;

  if (!w->finished)
    return -EINVAL;
  err = collect(w, s, own_netns, values, &cur);
  if (err)
    return err;
  if (ns.pids_valid)
    details_keep(&cur, last);

  memset(&m, 0, sizeof(m));
  if (values->sockets == 0) {
    if (!ns.started) {
      if (w->notify_missing && !ns.listener_failure) {
        msg_label(&m, w);
        msg_str(&m, " has no listener at start");
        err = event_add(&local, w, PO_EVENT_MISSING_AT_START, &m, values, &cur,
                        NULL);
        ns.listener_failure = 1;
      }
    } else {
      if (ns.empty_reads < w->hits)
        ns.empty_reads++;
      if (ns.ever_up && !ns.listener_failure && ns.empty_reads >= w->hits) {
        msg_label(&m, w);
        msg_str(&m, " lost its listener");
        if (last->len) {
          msg_str(&m, "; last held by ");
          msg_owners(&m, last, sizeof(m.b));
        }
        err = event_add(&local, w, PO_EVENT_LISTENER_LOST, &m, values, &cur,
                        last);
        ns.listener_failure = 1;
      }
    }
    ns.started = 1;
    goto commit;
  }

  ns.started = 1;
  ns.ever_up = 1;
  ns.empty_reads = 0;
  if (ns.listener_failure) {
    msg_label(&m, w);
    if (cur.len) {
      msg_str(&m, " has a listener again; held by ");
      msg_owners(&m, &cur, sizeof(m.b));
    } else {
      msg_str(&m, " has a listener again; owner unknown");
    }
    err = event_add(&local, w, PO_EVENT_LISTENER_BACK, &m, values, &cur, NULL);
    if (err)
      goto fail;
    ns.listener_failure = 0;
    back = 1;
  }
  if (cur.len == 0)
    goto commit; /* owners unknown: nothing to compare or judge */

  if (!back && w->notify_change && last->len) {
    int differ = progs_differ(last, &cur), replaced = 0;

    if (differ < 0) {
      err = differ;
      goto fail;
    }
    if (!differ)
      replaced = ns.pids_valid && pids_disjoint(last, &cur);
    if (differ || replaced) {
      size_t half;

      memset(&m, 0, sizeof(m));
      msg_label(&m, w);
      msg_str(&m, differ ? " changed owner: "
                         : " changed owner (every process replaced): ");
      half = m.len + 4 < sizeof(m.b) ? (sizeof(m.b) - 1 - m.len - 4) / 2 : 0;
      msg_owners(&m, last, half);
      msg_str(&m, " -> ");
      msg_owners(&m, &cur, sizeof(m.b));
      err =
          event_add(&local, w, PO_EVENT_OWNER_CHANGED, &m, values, &cur, last);
      if (err)
        goto fail;
    }
  }

  {
    size_t judged = 0;

    bad.v = malloc(cur.len * sizeof(*bad.v));
    if (!bad.v) {
      err = -ENOMEM;
      goto fail;
    }
    for (size_t i = 0; i < cur.len; i++) {
      int ok = owner_expected(w, &cur.v[i]);

      if (ok >= 0)
        judged++;
      if (ok == 0)
        bad.v[bad.len++] = cur.v[i];
    }
    if (bad.len && !ns.unexpected_failure) {
      memset(&m, 0, sizeof(m));
      msg_label(&m, w);
      msg_str(&m, " is held by an unexpected owner: ");
      msg_owners(&m, &bad, sizeof(m.b));
      err = event_add(&local, w, PO_EVENT_UNEXPECTED_OWNER, &m, values, &cur,
                      NULL);
      if (err)
        goto fail;
      ns.unexpected_failure = 1;
    } else if (!bad.len && judged && ns.unexpected_failure) {
      memset(&m, 0, sizeof(m));
      msg_label(&m, w);
      msg_str(&m, " is held by expected owners again: ");
      msg_owners(&m, &cur, sizeof(m.b));
      err =
          event_add(&local, w, PO_EVENT_EXPECTED_OWNER, &m, values, &cur, NULL);
      if (err)
        goto fail;
      ns.unexpected_failure = 0;
    }
  }
  update_last = 1;

commit:
  if (err)
    goto fail;
  if (update_last) {
    err = identlist_copy(&newlast, &cur);
    if (err)
      goto fail;
    ns.pids_valid = 1;
  }
  err = events_reserve(ev, local.len);
  if (err)
    goto fail;
  if (local.len)
    memcpy(ev->v + ev->len, local.v, local.len * sizeof(*local.v));
  ev->len += local.len;
  free(local.v);
  if (update_last) {
    identlist_free(&w->st.last);
    ns.last = newlast;
  }
  w->st = ns;
  free(bad.v);
  free(cur.v);
  return 0;

fail:
  identlist_free(&newlast);
  po_events_free(&local);
  free(bad.v);
  free(cur.v);
  return err;
}

/* ---- the set ------------------------------------------------------------- */

struct po_watchset *po_watchset_new(void) {
  struct po_watchset *set = calloc(1, sizeof(*set));

  if (!set)
    errno = ENOMEM;
  return set;
}

void po_watchset_free(struct po_watchset *set) {
  if (!set)
    return;
  for (size_t i = 0; i < set->len; i++)
    po_watch_free(set->v[i]);
  free(set->v);
  free(set->qports);
  free(set->saved);
  free(set);
}

int po_watchset_add(struct po_watchset *set, struct po_watch *w) {
  if (!w || !w->finished || w->in_set)
    return -EINVAL;
  if (po_watchset_find(set, w->name))
    return -EEXIST;
  if (grow((void **)&set->v, set->len, sizeof(*set->v)))
    return -ENOMEM;
  set->v[set->len++] = w;
  w->in_set = 1;
  return 0;
}

size_t po_watchset_len(const struct po_watchset *set) {
  return set->len;
}

struct po_watch *po_watchset_get(const struct po_watchset *set, size_t i) {
  return i < set->len ? set->v[i] : NULL;
}

struct po_watch *po_watchset_find(const struct po_watchset *set,
                                  const char *name) {
  for (size_t i = 0; i < set->len; i++)
    if (strcmp(set->v[i]->name, name) == 0)
      return set->v[i];
  return NULL;
}

int po_watchset_query(struct po_watchset *set, struct po_query *q) {
  size_t n = 0, k = 0;
  struct po_range *r;

  for (size_t i = 0; i < set->len; i++)
    n += set->v[i]->nports;
  r = realloc(set->qports, (n ? n : 1) * sizeof(*r));
  if (!r)
    return -ENOMEM;
  set->qports = r;
  q->mask = 0;
  q->all_namespaces = 0;
  for (size_t i = 0; i < set->len; i++) {
    const struct po_watch *w = set->v[i];

    memcpy(r + k, w->ports, w->nports * sizeof(*r));
    k += w->nports;
    q->mask |= w->mask;
    q->all_namespaces |= w->all_ns;
  }
  q->ports = r;
  q->nports = k;
  if (q->mask == 0)
    q->mask = PO_TCP;
  return 0;
}

int po_watchset_eval(struct po_watchset *set, const struct po_snapshot *s,
                     uint64_t own_netns, struct po_watch_values *values,
                     struct po_events *ev) {
  for (size_t i = 0; i < set->len; i++) {
    int err = po_watch_eval(set->v[i], s, own_netns, &values[i], ev);

    if (err)
      return err;
  }
  return 0;
}

/* ---- the StateFile ------------------------------------------------------- */

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
    bad |= gen_key(g, "hex");
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
  bad |= gen_key(g, "version") | yajl_gen_integer(g, STATE_VERSION);
  bad |= gen_key(g, "boot_id");
  bad |= boot_id ? gen_bytes(g, boot_id) : (int)yajl_gen_null(g);
  bad |= gen_key(g, "watches") | yajl_gen_array_open(g);
  for (size_t i = 0; i < set->len; i++) {
    const struct po_watch *w = set->v[i];
    const struct watch_state *st = &w->st;

    bad |= yajl_gen_map_open(g);
    bad |= gen_key(g, "name") | gen_bytes(g, w->name);
    bad |= gen_key(g, "spec") | gen_bytes(g, w->spec);
    bad |= gen_key(g, "started") | yajl_gen_bool(g, st->started);
    bad |= gen_key(g, "ever_up") | yajl_gen_bool(g, st->ever_up);
    bad |= gen_key(g, "empty_reads") | yajl_gen_integer(g, st->empty_reads);
    bad |=
        gen_key(g, "listener_failure") | yajl_gen_bool(g, st->listener_failure);
    bad |= gen_key(g, "unexpected_failure") |
           yajl_gen_bool(g, st->unexpected_failure);
    bad |= gen_key(g, "owners") | yajl_gen_array_open(g);
    for (size_t j = 0; j < st->last.len; j++) {
      const struct ident *o = &st->last.v[j];

      bad |= yajl_gen_map_open(g);
      bad |= gen_key(g, "pid") | yajl_gen_integer(g, o->pid);
      bad |= gen_key(g, "uid");
      bad |= o->uid == PO_UID_UNKNOWN ? yajl_gen_null(g)
                                      : yajl_gen_integer(g, o->uid);
      bad |= gen_key(g, "comm") | gen_bytes(g, o->comm);
      bad |= gen_key(g, "exe");
      bad |= o->exe ? gen_bytes(g, o->exe) : (int)yajl_gen_null(g);
      bad |= gen_key(g, "user") | gen_bytes(g, o->user);
      bad |= yajl_gen_map_close(g);
    }
    bad |= yajl_gen_array_close(g);
    bad |= yajl_gen_map_close(g);
  }
  bad |= yajl_gen_array_close(g);
  bad |= yajl_gen_map_close(g);
  return gen_finish(g, bad, out, len);
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

static int ident_cmp(const void *a, const void *b) {
  const struct ident *x = a, *y = b;

  return (x->pid > y->pid) - (x->pid < y->pid);
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
    qsort(loose.v, loose.len, sizeof(*loose.v), ident_cmp);
    for (size_t i = 1; i < loose.len && !err; i++)
      if (loose.v[i].pid == loose.v[i - 1].pid)
        err = -EBADMSG;
  }
  if (!err)
    err = identlist_copy(&st->last, &loose);
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

static int read_file(const char *path, char **out) {
  struct stat sb;
  char *buf;
  size_t len = 0;
  int fd =
      open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

  *out = NULL;
  if (fd < 0)
    return -errno;
  if (fstat(fd, &sb) != 0) {
    int e = -errno;

    close(fd);
    return e;
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return -EINVAL;
  }
  if ((uintmax_t)sb.st_size > STATE_MAX_BYTES) {
    close(fd);
    return -EFBIG;
  }
  buf = malloc((size_t)sb.st_size + 1);
  if (!buf) {
    close(fd);
    return -ENOMEM;
  }
  for (;;) {
    ssize_t n = read(fd, buf + len, (size_t)sb.st_size - len);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = -errno;

      free(buf);
      close(fd);
      return e;
    }
    if (n == 0 || (len += (size_t)n) == (size_t)sb.st_size)
      break;
  }
  close(fd);
  buf[len] = '\0';
  if (strlen(buf) != len) { /* a NUL inside: not JSON */
    free(buf);
    return -EBADMSG;
  }
  *out = buf;
  return 0;
}

int po_state_load(struct po_watchset *set, const char *path,
                  const char *boot_id) {
  struct watch_state *states = NULL;
  unsigned char *seen = NULL;
  yajl_val root = NULL, watches, saved_boot;
  char *buf = NULL, *saved_boot_id = NULL, errbuf[128];
  long long version;
  int err, same_boot;

  err = read_file(path, &buf);
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
        identlist_free(&st.last);
      }
    } else if (!err) {
      struct watch_state st;

      err = load_watch(o, &st, PO_HITS_MAX);
      identlist_free(&st.last);
    }
    free(name);
    free(spec);
  }
  if (err)
    goto out;
  for (size_t i = 0; i < set->len; i++) {
    identlist_free(&set->v[i]->st.last);
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
      identlist_free(&states[i].last);
  free(states);
  free(seen);
  free(saved_boot_id);
  yajl_tree_free(root);
  return err;
}

static int write_all(int fd, const char *b, size_t n) {
  while (n) {
    ssize_t w = write(fd, b, n);

    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -errno;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

static int fsync_dir(const char *path) {
  char *dir = strdup(path), *slash;
  int fd, err = 0;

  if (!dir)
    return -ENOMEM;
  slash = strrchr(dir, '/');
  if (!slash)
    strcpy(dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  if (fd < 0)
    return -errno;
  if (fsync(fd) != 0 && errno != EINVAL)
    err = -errno;
  close(fd);
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
  err = write_all(fd, buf, len);
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
  err = fsync_dir(path);
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

/* ---- the system ---------------------------------------------------------- */

int po_boot_id_read(const char *proc_root, char *buf, size_t size) {
  char path[PATH_MAX], tmp[128];
  ssize_t n;
  int fd;

  snprintf(path, sizeof(path), "%s/sys/kernel/random/boot_id",
           proc_root ? proc_root : "/proc");
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return -errno;
  do
    n = read(fd, tmp, sizeof(tmp) - 1);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = -errno;

    close(fd);
    return e;
  }
  close(fd);
  while (n > 0 && (tmp[n - 1] == '\n' || tmp[n - 1] == ' '))
    n--;
  tmp[n] = '\0';
  if (n == 0 || strlen(tmp) != (size_t)n)
    return -EINVAL;
  if ((size_t)n >= size)
    return -ENOSPC;
  memcpy(buf, tmp, (size_t)n + 1);
  return 0;
}
