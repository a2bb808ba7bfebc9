/*
 * portowner: ExpectProcess and ExpectUser (see expect.h): parsing an item,
 * the PCRE2 regexes with their bounds, and judging one owner.
 */
#include <errno.h>
#include <fnmatch.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "portowner/expect.h"
#include "portowner/owners.h"

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
/* ---- parsing an item ----------------------------------------------------- */

int po_expect_proc_parse(struct expect_proc *e, const char *pattern, char *err,
                         size_t errsize) {
  size_t n = pattern ? strlen(pattern) : 0;

  memset(e, 0, sizeof(*e));
  if (err && errsize)
    err[0] = '\0';
  if (n == 0)
    return -EINVAL;
  if (n >= 2 && pattern[0] == '/' && pattern[n - 1] == '/') {
    int rc;

    e->pattern = strndup(pattern + 1, n - 2);
    if (!e->pattern)
      return -ENOMEM;
    rc = regex_compile(&e->re, e->pattern, n - 2, err, errsize);
    if (rc) {
      free(e->pattern);
      e->pattern = NULL;
      return rc;
    }
  } else {
    e->is_path = !!strchr(pattern, '/');
    if (e->is_path) {
      struct stat st;

      /* The file the path names now, or a config error naming it. */
      if (stat(pattern, &st) != 0) {
        int rc = -errno;

        if (err && errsize)
          snprintf(err, errsize, "cannot stat the path: %s", strerror(errno));
        return rc;
      }
      e->ids[0].dev = (uint64_t)st.st_dev;
      e->ids[0].ino = (uint64_t)st.st_ino;
      e->nids = 1;
    }
    e->pattern = strdup(pattern);
    if (!e->pattern)
      return -ENOMEM;
  }
  return 0;
}

/* The file a path names now becomes the newest of the files it named. */
static void expect_path_refresh(struct expect_proc *e) {
  struct stat st;
  struct file_id id;
  size_t at;

  if (stat(e->pattern, &st) != 0)
    return; /* keep what it named: a replace by rename leaves no gap */
  id.dev = (uint64_t)st.st_dev;
  id.ino = (uint64_t)st.st_ino;
  for (at = 0; at < e->nids; at++)
    if (e->ids[at].dev == id.dev && e->ids[at].ino == id.ino)
      break;
  if (at == 0 && e->nids)
    return;
  if (at == e->nids) /* new: the oldest goes when full */
    at = e->nids < EXPECT_PATH_IDS ? e->nids++ : EXPECT_PATH_IDS - 1;
  memmove(&e->ids[1], &e->ids[0], at * sizeof(e->ids[0]));
  e->ids[0] = id;
}

void po_expect_refresh(struct po_watch *w) {
  for (size_t i = 0; i < w->nprocs; i++)
    if (w->procs[i].is_path)
      expect_path_refresh(&w->procs[i]);
}

void po_expect_proc_release(struct expect_proc *e) {
  regex_free(e->re);
  free(e->pattern);
  e->re = NULL;
  e->pattern = NULL;
}

int po_expect_user_parse(struct expect_user *u, const char *user) {
  char *end;
  unsigned long v;

  memset(u, 0, sizeof(*u));
  u->uid = PO_UID_UNKNOWN;
  if (!user || !*user)
    return -EINVAL;
  errno = 0;
  v = strtoul(user, &end, 10);
  if (user[0] >= '0' && user[0] <= '9' && !*end && errno == 0 &&
      v < PO_UID_UNKNOWN) {
    u->numeric = 1;
    u->uid = (uint32_t)v;
  } else {
    char buf[4096];
    struct passwd pw, *res = NULL;

    if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) == 0 && res)
      u->uid = (uint32_t)res->pw_uid;
  }
  u->name = strdup(user);
  if (!u->name)
    return -ENOMEM;
  return 0;
}

void po_expect_user_release(struct expect_user *u) {
  free(u->name);
  u->name = NULL;
}

/* ---- judging an owner ---------------------------------------------------- */

/* A path: the file the owner runs (stat of /proc/PID/exe) is one the path
 * named; or the owner runs a deleted file that had that path, on the file
 * system the path is on (an upgrade replaced it before we saw it). The
 * text of the exe link alone never passes: a mount namespace can make it
 * say anything. */
static int expect_path_matches(const struct expect_proc *e,
                               const struct ident *o) {
  size_t n = po_exe_len(o->exe);

  if (!o->exe_id)
    return 0;
  for (size_t i = 0; i < e->nids; i++)
    if (e->ids[i].dev == o->exe_file.dev && e->ids[i].ino == o->exe_file.ino)
      return 1;
  return n != strlen(o->exe) && e->nids && n == strlen(e->pattern) &&
         memcmp(o->exe, e->pattern, n) == 0 && e->ids[0].dev == o->exe_file.dev;
}

/* o's exe is known. */
static int expect_proc_matches(const struct expect_proc *e,
                               const struct ident *o) {
  size_t blen;
  const char *base;

  if (e->re)
    return regex_matches(e->re, o->exe, po_exe_len(o->exe));
  if (e->is_path)
    return expect_path_matches(e, o);
  base = po_prog_name(o, &blen);
  return base && blen == strlen(e->pattern) &&
         memcmp(base, e->pattern, blen) == 0;
}

static int expect_user_matches(const struct expect_user *u,
                               const struct ident *o) {
  if (u->uid != PO_UID_UNKNOWN && o->uid == u->uid)
    return 1;
  return !u->numeric && o->user[0] && strcmp(o->user, u->name) == 0;
}

/* ExpectUnit and ExpectCgroup: 1 pass, 0 fail, -1 not judged (the
 * cgroup is unknown, or the watch has neither). */
static int expect_cgroup_matches(const struct po_watch *w,
                                 const struct ident *o) {
  const struct po_cgroup_paths p = {(char *)o->cgroup,
                                    (char *)o->cgroup_systemd};
  int ok;

  if ((!w->nunits && !w->ncgpats) || (!p.v2 && !p.systemd))
    return -1;
  if (w->nunits && !po_cgroup_units_match(&p, w->units, w->nunits))
    return 0;
  ok = !w->ncgpats;
  for (size_t i = 0; i < w->ncgpats && !ok; i++)
    ok = (p.v2 && fnmatch(w->cgpats[i], p.v2, 0) == 0) ||
         (p.systemd && fnmatch(w->cgpats[i], p.systemd, 0) == 0);
  return ok;
}

/*
 * Whether an owner passes the watch's expectations: 1 yes, 0 no, -1 cannot
 * tell (its details could not be read).
 */
int po_owner_expected(const struct po_watch *w, const struct ident *o) {
  int judged = 0, cg = expect_cgroup_matches(w, o);

  if (cg == 0)
    return 0;
  judged = cg == 1;

  /* An owner whose exe is unknown is judged by ExpectUser only; never by
   * its comm. */
  if (w->nprocs && po_prog_name(o, &(size_t){0})) {
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
  if (!w->nprocs && !w->nusers && !w->nunits && !w->ncgpats)
    return 1;
  return judged ? 1 : -1;
}
