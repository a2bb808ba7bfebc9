/*
 * Unit tests: ExpectProcess "/REGEX/" (PCRE2) through the public API. The
 * config-time limits (pattern length, nesting, compile memory) refuse with
 * -E2BIG and a message that says which; ordinary patterns match the exe
 * path (never the comm) as POSIX regcomp() would; at match time a hostile
 * process name that makes a pattern backtrack without end gets "no match", so
 * its owner is judged unexpected, on snapshots built by hand (fx_snap_*,
 * fixture.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "portowner/snapshot.h"
#include "portowner/watch.h"

#include "fixture.h"

/* A watch on tcp/80 with one ExpectProcess, which must be accepted. */
static struct po_watch *watch_expecting(const char *pattern) {
  struct po_watch *w = po_watch_new("web");
  char err[256];

  assert_non_null(w);
  assert_int_equal(po_watch_port_add_string(w, "80", NULL), 0);
  if (po_watch_expect_process_add(w, pattern, err, sizeof(err)) != 0)
    fail_msg("ExpectProcess \"%s\" refused: %s", pattern, err);
  po_watch_set_notify_owner_change(w, 0);
  po_watch_set_notify_missing_at_start(w, 0);
  assert_int_equal(po_watch_finish(w), 0);
  return w;
}

/*
 * One read where one process (comm, exe) holds tcp/80: the expectation
 * event it brings, PO_EVENT_UNEXPECTED_OWNER or PO_EVENT_EXPECTED_OWNER (an
 * unexpected owner's condition ended), or -1 for none (the judgement did not
 * change: expected at a first read, or a condition that stands).
 */
static int judge(struct po_watch *w, const char *comm, const char *exe) {
  struct po_snapshot s;
  struct po_watch_values v;
  struct po_events ev = {0};
  int type = -1;

  memset(&s, 0, sizeof(s));
  fx_snap_own(&s, fx_snap_sock(&s, IPPROTO_TCP, "0.0.0.0", 80), 4242, comm, exe,
              1000, "alice");
  fx_snap_finish(&s);
  assert_int_equal(po_watch_eval(w, &s, FX_NETNS, &v, &ev), 0);
  assert_int_equal(v.sockets, 1);
  assert_int_equal(v.processes, 1);
  for (size_t i = 0; i < ev.len; i++) {
    if (ev.v[i].type == PO_EVENT_UNEXPECTED_OWNER ||
        ev.v[i].type == PO_EVENT_EXPECTED_OWNER) {
      assert_int_equal(type, -1);
      type = (int)ev.v[i].type;
    }
  }
  po_events_free(&ev);
  po_snapshot_free(&s);
  return type;
}

/* Whether a fresh watch with this one ExpectProcess takes (comm, exe) as
 * an expected owner at its first read. */
static int pattern_accepts(const char *pattern, const char *comm,
                           const char *exe) {
  struct po_watch *w = watch_expecting(pattern);
  int type = judge(w, comm, exe);

  po_watch_free(w);
  assert_true(type == -1 || type == PO_EVENT_UNEXPECTED_OWNER);
  return type == -1;
}

/* judge() of a fresh watch with this one ExpectProcess at its first read. */
static int judge_once(const char *pattern, const char *comm, const char *exe) {
  struct po_watch *w = watch_expecting(pattern);
  int type = judge(w, comm, exe);

  po_watch_free(w);
  return type;
}

/* Adds pattern to a scratch watch: the return value, err filled. */
static int add(const char *pattern, char *err, size_t errsize) {
  struct po_watch *w = po_watch_new("web");
  int rc;

  assert_non_null(w);
  memset(err, 'x', errsize);
  rc = po_watch_expect_process_add(w, pattern, err, errsize);
  assert_true(strnlen(err, errsize) < errsize);
  po_watch_free(w);
  return rc;
}

/* "/" + n copies of unit + "/", malloc'd. */
static char *repeat(const char *prefix, const char *unit, size_t n,
                    const char *suffix) {
  size_t plen = strlen(prefix), ulen = strlen(unit), slen = strlen(suffix);
  char *s = malloc(plen + n * ulen + slen + 1);

  assert_non_null(s);
  memcpy(s, prefix, plen);
  for (size_t i = 0; i < n; i++)
    memcpy(s + plen + i * ulen, unit, ulen);
  memcpy(s + plen + n * ulen, suffix, slen + 1);
  return s;
}

/* ---- config-time limits ------------------------------------------------- */

static void test_too_long(void **state) {
  char err[256], want[64];
  char *ok = repeat("/", "a", PO_REGEX_LEN_MAX, "/");
  char *bad = repeat("/", "a", PO_REGEX_LEN_MAX + 1, "/");

  (void)state;
  assert_int_equal(add(ok, err, sizeof(err)), 0);
  assert_string_equal(err, "");
  assert_int_equal(add(bad, err, sizeof(err)), -E2BIG);
  snprintf(want, sizeof(want), "pattern too long (%u bytes, max %u)",
           PO_REGEX_LEN_MAX + 1, PO_REGEX_LEN_MAX);
  assert_string_equal(err, want);
  free(ok);
  free(bad);
}

static void test_too_deep(void **state) {
  char err[256];
  char *ok, *bad, *open_ok, *open_bad;

  (void)state;
  open_ok = repeat("/", "(", PO_REGEX_NEST_MAX, "a");
  ok = repeat(open_ok, ")", PO_REGEX_NEST_MAX, "/");
  open_bad = repeat("/", "(", PO_REGEX_NEST_MAX + 1, "a");
  bad = repeat(open_bad, ")", PO_REGEX_NEST_MAX + 1, "/");
  assert_int_equal(add(ok, err, sizeof(err)), 0);
  assert_int_equal(add(bad, err, sizeof(err)), -E2BIG);
  assert_non_null(strstr(err, "nested too deep"));
  assert_non_null(strstr(err, "max 32 levels of parentheses"));
  /* Non-capturing groups and lookarounds nest the same. */
  free(open_bad);
  free(bad);
  open_bad = repeat("/", "(?:", PO_REGEX_NEST_MAX + 1, "a");
  bad = repeat(open_bad, ")", PO_REGEX_NEST_MAX + 1, "/");
  assert_int_equal(add(bad, err, sizeof(err)), -E2BIG);
  assert_non_null(strstr(err, "nested too deep"));
  free(open_ok);
  free(ok);
  free(open_bad);
  free(bad);
}

static void test_compile_memory(void **state) {
  char err[256];
  /* About 38 KiB compiled: within PCRE2's own 64 KiB code limit, so only
   * our allocator's budget refuses it. */
  static const char *const over_budget[] = {
      "/((ab){1,1000}c){1,2}/",
      "/(?:abcdefgh){1,1200}/",
  };
  /* Far past any budget: PCRE2 sizes them before allocating, or glibc's
   * regcomp() took seconds and GiBs on them. */
  static const char *const huge[] = {
      "/((a{0,1000}){0,1000}){0,1000}/",
      "/((a{1,100}){1,100}){1,100}/",
      "/(((a{255}){255}){255}){255}/",
  };

  (void)state;
  for (size_t i = 0; i < sizeof(over_budget) / sizeof(over_budget[0]); i++) {
    assert_int_equal(add(over_budget[i], err, sizeof(err)), -E2BIG);
    assert_non_null(strstr(err, "needs more than 32 KiB to compile"));
  }
  for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
    assert_int_equal(add(huge[i], err, sizeof(err)), -E2BIG);
    assert_non_null(strstr(err, "needs more than 32 KiB to compile"));
  }
  /* Bounded repetition that fits is fine (the last one took glibc's
   * regcomp() 2.3 s and 3.8 GiB). */
  assert_int_equal(add("/(?:abcdefgh){1,900}/", err, sizeof(err)), 0);
  assert_int_equal(
      add("/(a{0,1000}b{0,1000}c{0,1000}){0,1000}/", err, sizeof(err)), 0);
}

/* The value that made fuzz_config run out of memory inside regcomp(): in
 * PCRE2 "a++" is possessive and a third "+" is a syntax error. */
static void test_fuzz_input(void **state) {
  char err[256];
  char *p = repeat("/\xad\xad\xad\xad\xad\xad\xad"
                   "4\xad\xad\xad\xad\xad\xad\xad",
                   "+", 42, "\xad\xad\xad\xad\xad\xad\xad\xad\xad\xad/");

  (void)state;
  assert_int_equal(add(p, err, sizeof(err)), -EINVAL);
  assert_string_equal(err,
                      "quantifier does not follow a repeatable item at offset "
                      "17");
  free(p);
}

static void test_syntax_errors(void **state) {
  char err[256];

  (void)state;
  assert_int_equal(add("/(/", err, sizeof(err)), -EINVAL);
  assert_string_equal(err, "missing closing parenthesis at offset 1");
  assert_int_equal(add("/[/", err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "missing terminating ] for character class"));
  assert_int_equal(add("/a{2,1}/", err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "numbers out of order"));
  assert_int_equal(add("//", err, sizeof(err)), -EINVAL);
  assert_string_equal(err, "empty regular expression");
  /* Byte semantics are not negotiable from inside the pattern. */
  assert_int_equal(add("/(*UTF)nginx/", err, sizeof(err)), -EINVAL);
  assert_non_null(strstr(err, "UTF"));
  assert_int_equal(add("/(*UCP)nginx/", err, sizeof(err)), -EINVAL);
  /* No message and no errno other than these for the rest. */
  assert_int_equal(add("", err, sizeof(err)), -EINVAL);
  assert_int_equal(add("sshd", err, sizeof(err)), 0);
  assert_int_equal(add("/", err, sizeof(err)), 0); /* a path */
}

/* NULL err is allowed. */
static void test_no_err_buffer(void **state) {
  struct po_watch *w = po_watch_new("web");

  (void)state;
  assert_non_null(w);
  assert_int_equal(po_watch_expect_process_add(w, "/(/", NULL, 0), -EINVAL);
  assert_int_equal(
      po_watch_expect_process_add(w, "/((ab){1,1000}c){1,2}/", NULL, 0),
      -E2BIG);
  assert_int_equal(po_watch_expect_process_add(w, "/^a$/", NULL, 0), 0);
  po_watch_free(w);
}

/* ---- ordinary patterns -------------------------------------------------- */

static void test_ordinary_patterns(void **state) {
  (void)state;
  /* Against the whole exe path, never the comm. */
  assert_true(pattern_accepts("/\\/nginx$/", "nginx", "/usr/sbin/nginx"));
  assert_true(
      pattern_accepts("/\\/nginx$/", "nginx: worker", "/usr/sbin/nginx"));
  assert_true(
      pattern_accepts("/^\\/usr\\/sbin\\/nginx$/", "x", "/usr/sbin/nginx"));
  assert_false(pattern_accepts("/^nginx$/", "nginx", "/usr/sbin/nginx"));
  assert_false(
      pattern_accepts("/\\/nginx$/", "nginx", "/usr/sbin/nginx-debug"));
  assert_false(pattern_accepts("/\\/nginx$/", "nginx", "/tmp/xnginx"));
  assert_true(
      pattern_accepts("/\\/(sshd|dropbear)$/", "sshd", "/usr/sbin/sshd"));
  assert_true(pattern_accepts("/\\/(sshd|dropbear)$/", "dropbear",
                              "/usr/sbin/dropbear"));
  assert_false(pattern_accepts("/\\/(sshd|dropbear)$/", "sshd", "/opt/sshd2"));
  assert_false(
      pattern_accepts("/\\/(sshd|dropbear)$/", "sshd", "/usr/bin/ssh"));
  assert_true(pattern_accepts("/python3\\.[0-9]+$/", "python3.11",
                              "/usr/bin/python3.11"));
  assert_true(pattern_accepts("/python3\\.[0-9]+$/", "gunicorn",
                              "/usr/bin/python3.11"));
  assert_false(
      pattern_accepts("/python3\\.[0-9]+$/", "python3.11", "/usr/bin/python3"));
  assert_false(pattern_accepts("/python3\\.[0-9]+$/", "python3x11",
                               "/usr/bin/python3x11"));
  /* POSIX classes and bounds, as regcomp() took them. */
  assert_true(
      pattern_accepts("/\\/[[:alpha:]]{3,8}d$/", "x", "/usr/sbin/sshd"));
  assert_false(
      pattern_accepts("/\\/[[:alpha:]]{3,8}d$/", "sshd", "/usr/sbin/ss1d"));
  /* " (deleted)" is not part of the path. */
  assert_true(pattern_accepts("/\\/nginx$/", "x", "/usr/sbin/nginx (deleted)"));
  /* An owner whose exe is unknown is not judged by ExpectProcess (the comm
   * would say whatever the process wants): no FAILURE, nothing to match. */
  assert_int_equal(judge_once("/\\/nginx$/", "nginx", NULL), -1);
  assert_int_equal(judge_once("/\\/nginx$/", "evil", NULL), -1);
}

/* Bytes, not UTF-8: invalid UTF-8 is a subject like any other. */
static void test_bytes(void **state) {
  (void)state;
  assert_true(pattern_accepts("/^\\/x\\/nginx/", "x", "/x/nginx\xff\xfe"));
  assert_true(pattern_accepts("/^\\/.{2}$/", "x", "/\xc3\xa9")); /* 2 bytes */
  assert_true(pattern_accepts("/\\/caf\xc3\xa9$/", "x", "/x/caf\xc3\xa9"));
  assert_false(pattern_accepts("/\\/caf\xc3\xa9$/", "caf\xc3\xa9", "/x/cafe"));
  /* As in POSIX: "$" is the very end, "." matches a newline. A name that
   * ends in a newline is not "nginx". */
  assert_false(pattern_accepts("/\\/nginx$/", "nginx", "/tmp/nginx\n"));
  assert_true(pattern_accepts("/\\/ngin.$/", "x", "/tmp/ngin\n"));
}

/* ---- match-time limits -------------------------------------------------- */

/* A hostile exe path (any user can name a file so and run it) against a
 * pattern that backtracks exponentially: without the match limit this would
 * not finish (2^250 steps); with it the match ends with "no match" and the
 * owner is unexpected. */
static void test_catastrophic_backtracking(void **state) {
  struct po_watch *w = watch_expecting("/^(a+)+$/");
  char *exe = repeat("", "a", 250, "!");

  (void)state;
  alarm(120); /* a hang detector, not a speed target */
  assert_int_equal(judge(w, "mallory", exe), PO_EVENT_UNEXPECTED_OWNER);
  /* The pattern still matches what it matches... */
  assert_int_equal(judge(w, "x", "aaaa"), PO_EVENT_EXPECTED_OWNER);
  /* ...and the same hostile name gets the same answer again. */
  assert_int_equal(judge(w, "mallory", exe), PO_EVENT_UNEXPECTED_OWNER);
  free(exe);
  po_watch_free(w);

  /* Nested quantified alternation: the same. */
  exe = repeat("", "a", 250, "b");
  assert_false(pattern_accepts("/^(a|aa)+$/", "x", exe));
  assert_true(pattern_accepts("/^(a|aa)+$/", "x", "aaaaaaaaaaaaaaaaaaaaaaaaa"));
  free(exe);
  alarm(0);
}

/* A match cut short by a limit is "no match" even where the pattern would
 * match in the end: the second alternative matches this name, but the
 * first one runs into the limit first. Unexpected, never expected by an
 * error. */
static void test_limit_is_no_match(void **state) {
  char *exe = repeat("", "a", 250, "!x");

  (void)state;
  alarm(120);
  assert_false(pattern_accepts("/^(a+)+$|x$/", "mallory", exe));
  /* Without the exploding alternative it matches. */
  assert_true(pattern_accepts("/x$/", "mallory", exe));
  free(exe);
  alarm(0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_too_long),
      cmocka_unit_test(test_too_deep),
      cmocka_unit_test(test_compile_memory),
      cmocka_unit_test(test_fuzz_input),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_no_err_buffer),
      cmocka_unit_test(test_ordinary_patterns),
      cmocka_unit_test(test_bytes),
      cmocka_unit_test(test_catastrophic_backtracking),
      cmocka_unit_test(test_limit_is_no_match),
  };

  fx_set_failure(fx_fail_cmocka);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
