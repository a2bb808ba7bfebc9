/*
 * Unit tests: the one rule of what is printable (printable.h), and the three
 * writers that use it: messages (po_msg_text: '?'), JSON (po_json_string:
 * \uXXXX, read back exact). The dump table (put_name: \xNN) is checked on a
 * real process in tests/hostile/test_names.py.
 *
 * Every class (C0, DEL, C1 as UTF-8 and as raw bytes, bidi controls, line
 * separators), the code points on each side of each boundary, invalid UTF-8:
 * stray continuation bytes, bytes that never start a sequence, sequences cut
 * short, overlong forms, surrogates and code points past U+10FFFF.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "portowner/json.h"
#include "portowner/message.h"
#include "portowner/printable.h"

/* The UTF-8 of code point cp into b (4 bytes); its length. */
static size_t utf8(unsigned cp, char *b) {
  unsigned char *u = (unsigned char *)b;

  if (cp < 0x80) {
    u[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    u[0] = (unsigned char)(0xc0 | (cp >> 6));
    u[1] = (unsigned char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    u[0] = (unsigned char)(0xe0 | (cp >> 12));
    u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (unsigned char)(0x80 | (cp & 0x3f));
    return 3;
  }
  u[0] = (unsigned char)(0xf0 | (cp >> 18));
  u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
  u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
  u[3] = (unsigned char)(0x80 | (cp & 0x3f));
  return 4;
}

/* Asserts what po_printable() says of code point cp. */
static void check_cp(unsigned cp, int printable) {
  char b[4];
  size_t n = utf8(cp, b), span = 99, got;

  got = po_printable(b, n, &span);
  if (span != n || got != (printable ? n : 0))
    fail_msg("U+%04X: po_printable gave %zu (span %zu), expected %zu (span "
             "%zu)",
             cp, got, span, printable ? n : 0, n);
}

/* Asserts the bytes s (n) are not printable at their start and span 1. */
static void check_invalid(const char *s, size_t n, const char *what) {
  size_t span = 99;

  if (po_printable(s, n, &span) != 0 || span != 1)
    fail_msg("%s: printable or span %zu, expected not printable, span 1", what,
             span);
}

static void test_c0_and_del(void **state) {
  (void)state;
  for (unsigned cp = 0; cp < 0x20; cp++)
    check_cp(cp, 0);
  check_cp(0x20, 1);
  check_cp('A', 1);
  check_cp('\\', 1);
  check_cp(0x7e, 1);
  check_cp(0x7f, 0);
}

static void test_c1_as_utf8(void **state) {
  (void)state;
  for (unsigned cp = 0x80; cp <= 0x9f; cp++)
    check_cp(cp, 0);
  check_cp(0xa0, 1); /* NO-BREAK SPACE: printable */
  check_cp(0xe9, 1); /* e acute */
  /* The 8-bit CSI of the attack, "\xc2\x9b2J": two bytes, one character. */
  {
    size_t span;

    assert_int_equal(po_printable("\xc2\x9b"
                                  "2J",
                                  4, &span),
                     0);
    assert_int_equal(span, 2);
  }
}

static void test_c1_as_raw_bytes(void **state) {
  char b[2];

  (void)state;
  for (unsigned c = 0x80; c <= 0x9f; c++) {
    b[0] = (char)c;
    b[1] = '2';
    check_invalid(b, 2, "a raw C1 byte");
  }
}

static void test_bidi_controls(void **state) {
  static const unsigned bidi[] = {0x061c, 0x200e, 0x200f, 0x202a,
                                  0x202b, 0x202c, 0x202d, 0x202e,
                                  0x2066, 0x2067, 0x2068, 0x2069};
  (void)state;
  for (size_t i = 0; i < sizeof(bidi) / sizeof(bidi[0]); i++)
    check_cp(bidi[i], 0);
  /* Their neighbours are printable. */
  check_cp(0x061b, 1);
  check_cp(0x061d, 1);
  check_cp(0x200d, 1); /* ZERO WIDTH JOINER: emoji sequences */
  check_cp(0x2010, 1);
  check_cp(0x202f, 1);
  check_cp(0x2065, 1);
  check_cp(0x206a, 1);
}

static void test_line_separators(void **state) {
  (void)state;
  check_cp(0x2027, 1);
  check_cp(0x2028, 0);
  check_cp(0x2029, 0);
}

static void test_printable_beyond(void **state) {
  (void)state;
  check_cp(0x7ff, 1);
  check_cp(0x800, 1);
  check_cp(0xd7ff, 1);
  check_cp(0xe000, 1);
  check_cp(0xfffd, 1);
  check_cp(0xffff, 1);
  check_cp(0x10000, 1);
  check_cp(0x1f600, 1);
  check_cp(0x10ffff, 1);
}

static void test_invalid_utf8(void **state) {
  (void)state;
  check_invalid("\x80", 1, "a lone continuation byte");
  check_invalid("\xbf", 1, "a lone continuation byte");
  check_invalid("\xc0\x80", 2, "overlong NUL");
  check_invalid("\xc1\xbf", 2, "overlong U+007F");
  check_invalid("\xc0\xaf", 2, "overlong '/'");
  check_invalid("\xe0\x80\xaf", 3, "overlong '/' in three");
  check_invalid("\xe0\x82\x9b", 3, "overlong C1 CSI in three");
  check_invalid("\xe0\x9f\xbf", 3, "overlong U+07FF");
  check_invalid("\xf0\x80\x80\xaf", 4, "overlong '/' in four");
  check_invalid("\xf0\x8f\xbf\xbf", 4, "overlong U+FFFF");
  check_invalid("\xed\xa0\x80", 3, "surrogate U+D800");
  check_invalid("\xed\xbf\xbf", 3, "surrogate U+DFFF");
  check_invalid("\xf4\x90\x80\x80", 4, "U+110000");
  check_invalid("\xf5\x80\x80\x80", 4, "lead byte 0xf5");
  check_invalid("\xfe", 1, "0xfe");
  check_invalid("\xff", 1, "0xff");
}

static void test_truncated(void **state) {
  (void)state;
  /* Cut by the end of the input (n)... */
  check_invalid("\xc2", 1, "two-byte lead, end");
  check_invalid("\xe2\x80", 2, "three-byte sequence cut at 2");
  check_invalid("\xe2\x80\xae", 2, "U+202E cut at 2 by n");
  check_invalid("\xf0\x9f\x98", 3, "four-byte sequence cut at 3");
  /* ...or by a byte that is not a continuation. */
  check_invalid("\xc2"
                "A",
                2, "two-byte lead then ASCII");
  check_invalid("\xe2\x80"
                "A",
                3, "three-byte cut by ASCII");
  check_invalid("\xf0\x9f\x98"
                "A",
                4, "four-byte cut by ASCII");
}

static void test_printable_all(void **state) {
  (void)state;
  assert_true(po_printable_all("", 0));
  assert_true(po_printable_all("nginx: worker", 13));
  assert_true(po_printable_all("caf\xc3\xa9", 5));
  assert_false(po_printable_all("abc\xe2\x80\xae", 6));
  assert_false(po_printable_all("\xc2\x9b"
                                "2J",
                                4));
  assert_false(po_printable_all("a\x7f", 2));
  assert_false(po_printable_all("a\xff", 2));
  assert_false(po_printable_all("a\xc3", 2)); /* truncated at the end */
}

/* ---- messages ---------------------------------------------------------- */

static const char *msg_of(struct msg *m, const char *s, size_t n) {
  memset(m, 0, sizeof(*m));
  po_msg_text(m, s, n, sizeof(m->b));
  return m->b;
}

static void test_message(void **state) {
  struct msg m;

  (void)state;
  assert_string_equal(msg_of(&m,
                             "\xc2\x9b"
                             "2J",
                             4),
                      "?2J");
  assert_string_equal(msg_of(&m, "evil\xe2\x80\xaegnp.exe", 14),
                      "evil?gnp.exe");
  assert_string_equal(msg_of(&m,
                             "a\x9b"
                             "b",
                             3),
                      "a?b");
  assert_string_equal(msg_of(&m, "a\x1b[2Jb", 6), "a?[2Jb");
  assert_string_equal(msg_of(&m, "a\x7f", 2), "a?");
  assert_string_equal(msg_of(&m, "\xe2\x81\xa6x\xe2\x81\xa9", 7), "?x?");
  assert_string_equal(msg_of(&m, "l1\xe2\x80\xa8l2", 7), "l1?l2");
  assert_string_equal(msg_of(&m, "\xd8\x9c", 2), "?");     /* U+061C */
  assert_string_equal(msg_of(&m, "\xe2\x80\x8f", 3), "?"); /* U+200F */
  assert_string_equal(msg_of(&m, "\xc0\xaf", 2), "??");    /* overlong */
  assert_string_equal(msg_of(&m, "\xe2\x80", 2), "??");    /* truncated */
  assert_string_equal(msg_of(&m, "caf\xc3\xa9", 5), "caf\xc3\xa9");
  assert_string_equal(msg_of(&m, "\xc2\xa0", 2), "\xc2\xa0"); /* NBSP */
}

/* A name cut to fit is still cut at a character boundary, and a character
 * that is not printable takes one byte ('?'), not its UTF-8 length. */
static void test_message_cut(void **state) {
  struct msg m;

  (void)state;
  memset(&m, 0, sizeof(m));
  po_msg_text(&m, "\xe2\x80\xae\xe2\x80\xae\xe2\x80\xae", 9, 3);
  assert_string_equal(m.b, "???");
  memset(&m, 0, sizeof(m));
  po_msg_text(&m,
              "\xe2\x80\xae\xe2\x80\xae\xe2\x80\xae"
              "abc",
              12, 5);
  assert_string_equal(m.b, "??...");
}

/* ---- JSON -------------------------------------------------------------- */

/* The JSON text of s (n bytes) as the one element of an array, and the
 * string read back from it (into back, at most 64 bytes). */
static char *json_of(const char *s, size_t n, char *back) {
  yajl_gen g = yajl_gen_alloc(NULL);
  const unsigned char *out;
  size_t len;
  char *doc, err[128];
  yajl_val tree;

  assert_non_null(g);
  assert_int_equal(yajl_gen_config(g, yajl_gen_validate_utf8, 1), 1);
  assert_int_equal(yajl_gen_array_open(g), yajl_gen_status_ok);
  assert_int_equal(po_json_string(g, s, n), yajl_gen_status_ok);
  assert_int_equal(yajl_gen_array_close(g), yajl_gen_status_ok);
  assert_int_equal(yajl_gen_get_buf(g, &out, &len), yajl_gen_status_ok);
  doc = malloc(len + 1);
  assert_non_null(doc);
  memcpy(doc, out, len);
  doc[len] = '\0';
  yajl_gen_free(g);
  tree = yajl_tree_parse(doc, err, sizeof(err));
  if (!tree)
    fail_msg("%s does not parse: %s", doc, err);
  assert_true(YAJL_IS_ARRAY(tree) && YAJL_GET_ARRAY(tree)->len == 1);
  assert_true(YAJL_IS_STRING(YAJL_GET_ARRAY(tree)->values[0]));
  snprintf(back, 64, "%s", YAJL_GET_STRING(YAJL_GET_ARRAY(tree)->values[0]));
  yajl_tree_free(tree);
  return doc;
}

static void check_json(const char *s, size_t n, const char *text,
                       const char *back) {
  char got[64];
  char *doc = json_of(s, n, got);

  assert_string_equal(doc, text);
  assert_string_equal(got, back);
  free(doc);
}

static void test_json(void **state) {
  (void)state;
  /* Printable: as yajl writes it, as before. */
  check_json("nginx", 5, "[\"nginx\"]", "nginx");
  check_json("caf\xc3\xa9", 5, "[\"caf\xc3\xa9\"]", "caf\xc3\xa9");
  check_json("a\"b\\c", 5, "[\"a\\\"b\\\\c\"]", "a\"b\\c");
  check_json("a\nb", 3, "[\"a\\nb\"]", "a\nb");
  /* Invalid UTF-8: U+FFFD, as before. */
  check_json("a\x9b"
             "b",
             3,
             "[\"a\xef\xbf\xbd"
             "b\"]",
             "a\xef\xbf\xbd"
             "b");
  /* Not printable: \uXXXX, the same string read back, no raw byte. */
  check_json("\xc2\x9b"
             "2J",
             4, "[\"\\u009b2J\"]",
             "\xc2\x9b"
             "2J");
  check_json("x\xe2\x80\xaey", 5, "[\"x\\u202ey\"]", "x\xe2\x80\xaey");
  check_json("x\x7fy", 3, "[\"x\\u007fy\"]", "x\x7fy");
  check_json("\xd8\x9c\xe2\x81\xa9\xe2\x80\xa9", 8,
             "[\"\\u061c\\u2069\\u2029\"]", "\xd8\x9c\xe2\x81\xa9\xe2\x80\xa9");
  /* Mixed with what yajl escapes, in the literal we write. */
  check_json("\"\\\t\x01\xe2\x80\xae/", 8, "[\"\\\"\\\\\\t\\u0001\\u202e/\"]",
             "\"\\\t\x01\xe2\x80\xae/");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_c0_and_del),
      cmocka_unit_test(test_c1_as_utf8),
      cmocka_unit_test(test_c1_as_raw_bytes),
      cmocka_unit_test(test_bidi_controls),
      cmocka_unit_test(test_line_separators),
      cmocka_unit_test(test_printable_beyond),
      cmocka_unit_test(test_invalid_utf8),
      cmocka_unit_test(test_truncated),
      cmocka_unit_test(test_printable_all),
      cmocka_unit_test(test_message),
      cmocka_unit_test(test_message_cut),
      cmocka_unit_test(test_json),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
