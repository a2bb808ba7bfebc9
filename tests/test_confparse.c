/*
 * Unit tests: the collectd-free config reader (confparse.h): values of each
 * type, quotes and escapes, comments, continued lines, nested blocks, the
 * line numbers of errors, the limits; and <Inventory> blocks mapped to
 * po_inventory objects (what they select, their errors naming the block,
 * option, value and line).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "portowner/confparse.h"
#include "portowner/table.h"

static int parse(const char *text, struct po_conf_item *root, char *err) {
  return po_conf_parse(text, strlen(text), root, err, PO_CONF_ERROR_MAX);
}

static void test_syntax(void **state) {
  static const char text[] = "# a comment\n"
                             "LoadPlugin portowner\n"
                             "<Plugin \"portowner\">  # after a header\n"
                             "  Interval 10.5\n"
                             "  <Inventory \"h\\\"x\">\n"
                             "    Allow \"ng#inx\" * 80 \\\n"
                             "      443 \"a\\\\\"\n"
                             "    Learn TRUE\r\n"
                             "    Hits -3 # a number\n"
                             "  </inventory>\n"
                             "</Plugin>";
  struct po_conf_item root, *pl, *inv, *allow;
  char err[PO_CONF_ERROR_MAX];

  (void)state;
  assert_int_equal(parse(text, &root, err), 0);
  assert_int_equal(root.nchildren, 2);
  assert_string_equal(root.children[0].key, "LoadPlugin");
  assert_int_equal(root.children[0].values[0].type, PO_CONF_STRING);
  assert_string_equal(root.children[0].values[0].string, "portowner");
  pl = &root.children[1];
  assert_true(pl->block);
  assert_int_equal(pl->line, 3);
  assert_string_equal(pl->values[0].string, "portowner");
  assert_int_equal(pl->nchildren, 2);
  assert_int_equal(pl->children[0].values[0].type, PO_CONF_NUMBER);
  assert_true(pl->children[0].values[0].number == 10.5);
  inv = &pl->children[1];
  assert_string_equal(inv->values[0].string, "h\"x");
  assert_int_equal(inv->nchildren, 3);
  allow = &inv->children[0];
  assert_int_equal(allow->line, 6);
  assert_int_equal(allow->nvalues, 5);
  assert_string_equal(allow->values[0].string, "ng#inx");
  assert_string_equal(allow->values[1].string, "*");
  assert_true(allow->values[2].number == 80);
  assert_true(allow->values[3].number == 443);
  assert_string_equal(allow->values[4].string, "a\\");
  assert_int_equal(inv->children[1].values[0].type, PO_CONF_BOOLEAN);
  assert_int_equal(inv->children[1].values[0].boolean, 1);
  assert_int_equal(inv->children[1].line, 8);
  assert_true(inv->children[2].values[0].number == -3);
  assert_int_equal(inv->children[2].line, 9);
  po_conf_release(&root);
  assert_null(root.children);
}

static void test_syntax_errors(void **state) {
  static const struct {
    const char *text;
    const char *want; /* in the message */
  } bad[] = {
      {"<Plugin x>\n  A 1\n", "line 3: <Plugin> (line 1) is not closed"},
      {"<A>\n</B>\n", "line 2: </B> closes <A> (line 1)"},
      {"</A>\n", "line 1: </A> closes no block"},
      {"A \"open\nB 1\n", "line 1: a string without its closing quote"},
      {"A 1\n<B 2\n", "line 2: <B: expected '>'"},
      {"A 1\n  = 2\n", "line 2: expected an option name"},
      {"<A> x\n</A>\n", "line 1: text after <A ...>"},
      {"A 1\nB \"x\" <\n", "line 2: unexpected '<'"},
  };
  struct po_conf_item root;
  char err[PO_CONF_ERROR_MAX], deep[8 * (PO_CONF_DEPTH_MAX + 2)];
  size_t at = 0;

  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(parse(bad[i].text, &root, err), -EINVAL);
    if (!strstr(err, bad[i].want))
      fail_msg("%s: got \"%s\", want \"%s\"", bad[i].text, err, bad[i].want);
    assert_int_equal(root.nchildren, 0);
  }
  /* A NUL byte, anywhere. */
  assert_int_equal(po_conf_parse("A \"x\0y\"\n", 8, &root, err, sizeof(err)),
                   -EINVAL);
  assert_int_equal(po_conf_parse("A 1\n\0", 5, &root, err, sizeof(err)),
                   -EINVAL);
  assert_non_null(strstr(err, "line 2: a NUL byte"));
  /* Too deep. */
  for (int d = 0; d <= PO_CONF_DEPTH_MAX; d++)
    at += (size_t)snprintf(deep + at, sizeof(deep) - at, "<A>\n");
  assert_int_equal(parse(deep, &root, err), -E2BIG);
  /* Too long: refused before any parsing. */
  assert_int_equal(po_conf_parse(deep, PO_CONF_TEXT_MAX + 1, &root, err, 0),
                   -E2BIG);
  /* Empty is fine. */
  assert_int_equal(parse("", &root, err), 0);
  assert_int_equal(root.nchildren, 0);
}

/* The inventory of the first <Inventory> of the first block of text. */
static int inventory_of(const char *text, struct po_inventory **inv, int *note,
                        char *err) {
  struct po_conf_item root;
  int rc;

  assert_int_equal(parse(text, &root, err), 0);
  assert_true(root.nchildren >= 1);
  rc = po_conf_inventory(&root.children[0], inv, note, err, PO_CONF_ERROR_MAX);
  po_conf_release(&root);
  return rc;
}

static void test_inventory_block(void **state) {
  struct po_inventory *inv;
  const struct po_range *r;
  size_t n;
  int note = 0;
  char err[PO_CONF_ERROR_MAX];

  (void)state;
  assert_int_equal(inventory_of("<Inventory \"host\">\n"
                                "  protocol \"tcp4\" \"udp\"\n"
                                "  Port \"1-1023\" 8080\n"
                                "  Allow \"sshd\" \"root\" 22\n"
                                "  Allow \"*\" 0\n"
                                "  AllowUnit \"a.service\" \"b@*.service\"\n"
                                "  Hits 1\n"
                                "  Learn false\n"
                                "  NotifyGone \"off\"\n"
                                "  IgnoreEphemeral true\n"
                                "</Inventory>\n",
                                &inv, &note, err),
                   0);
  assert_string_equal(po_inventory_name(inv), "host");
  assert_int_equal(po_inventory_mask(inv), PO_TCP4 | PO_UDP);
  r = po_inventory_ports(inv, &n);
  assert_int_equal(n, 2);
  assert_int_equal(r[0].lo, 1);
  assert_int_equal(r[0].hi, 1023);
  assert_int_equal(r[1].lo, 8080);
  assert_int_equal(note, 0);
  po_inventory_free(inv);
  /* Learn and Hits are noted, not applied. */
  assert_int_equal(inventory_of("<Inventory \"h\">\n  Hits 3\n</Inventory>\n",
                                &inv, &note, err),
                   0);
  assert_int_equal(note, 1);
  po_inventory_free(inv);
}

static void test_inventory_errors(void **state) {
  static const struct {
    const char *text;
    const char *want;
  } bad[] = {
      {"<Inventory \"i\">\n Port 70000\n</Inventory>",
       "line 2: <Inventory \"i\"> Port 70000: not a port number"},
      {"<Inventory \"i\">\n Port \"1-2-3\"\n</Inventory>",
       "line 2: <Inventory \"i\"> Port \"1-2-3\": not a port"},
      {"<Inventory \"i\">\n Port \"22,po-no-such-svc,80\"\n</Inventory>",
       "unknown service name \"po-no-such-svc\" (not in /etc/services)"},
      {"<Inventory \"i\">\n\n Frob 1\n</Inventory>",
       "line 3: <Inventory \"i\">: unknown option \"Frob\""},
      {"<Inventory \"i\">\n <Port \"x\">\n </Port>\n</Inventory>",
       "line 2: <Inventory \"i\">: unknown block \"Port\""},
      {"<Inventory \"i\">\n Allow \"/usr/sbin/sshd\" root\n</Inventory>",
       "Allow: the program is the executable's name"},
      {"<Inventory \"i\">\n Allow \"sshd\"\n</Inventory>",
       "<Inventory \"i\"> Allow: needs a program"},
      {"<Inventory \"i\">\n AllowUnit \"\"\n</Inventory>",
       "<Inventory \"i\"> AllowUnit \"\": needs a glob"},
      {"<Inventory \"i\">\n AllowUnit 5\n</Inventory>",
       "<Inventory \"i\"> AllowUnit 5: needs a glob"},
      {"<Inventory \"i\">\n Hits 0\n</Inventory>",
       "<Inventory \"i\"> Hits: needs one whole number"},
      {"<Inventory \"i\">\n Learn maybe\n</Inventory>",
       "<Inventory \"i\"> Learn: needs exactly one boolean"},
      {"<Inventory \"i\">\n Protocol \"sctp\"\n</Inventory>",
       "Protocol \"sctp\": unknown protocol"},
      {"<Inventory>\n</Inventory>", "line 1: <Inventory> needs exactly one"},
      {"<Inventory \"a/b\">\n</Inventory>", "bad block name"},
  };
  struct po_inventory *inv = (struct po_inventory *)1;
  char err[PO_CONF_ERROR_MAX];

  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(inventory_of(bad[i].text, &inv, NULL, err), -EINVAL);
    assert_null(inv);
    if (!strstr(err, bad[i].want))
      fail_msg("%s: got \"%s\", want \"%s\"", bad[i].text, err, bad[i].want);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_syntax),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_inventory_block),
      cmocka_unit_test(test_inventory_errors),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
