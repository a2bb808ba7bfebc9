/*
 * Unit tests: the port and protocol parsers the command line and the config
 * share.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "portowner/portspec.h"

static void expect_range(const char *s, unsigned lo, unsigned hi) {
  struct po_range r = {0, 0};

  assert_int_equal(po_port_parse(s, &r), 0);
  assert_int_equal(r.lo, lo);
  assert_int_equal(r.hi, hi);
}

static void test_port_numbers_and_ranges(void **state) {
  (void)state;
  expect_range("22", 22, 22);
  expect_range("1", 1, 1);
  expect_range("65535", 65535, 65535);
  expect_range("8000-8099", 8000, 8099);
  expect_range("80-80", 80, 80);
}

static void test_port_service_names(void **state) {
  (void)state;
  /* /etc/services (Debian: netbase) names ssh 22 and domain 53. */
  expect_range("ssh", 22, 22);
  expect_range("domain", 53, 53);
}

static void test_port_rejects(void **state) {
  struct po_range r;

  (void)state;
  assert_int_equal(po_port_parse("0", &r), -ERANGE);
  assert_int_equal(po_port_parse("65536", &r), -ERANGE);
  assert_int_equal(po_port_parse("70000", &r), -ERANGE);
  assert_int_equal(po_port_parse("99999999999999999999", &r), -ERANGE);
  assert_int_equal(po_port_parse("90-80", &r), -EINVAL);
  assert_int_equal(po_port_parse("80-", &r), -EINVAL);
  assert_int_equal(po_port_parse("-80", &r), -EINVAL);
  assert_int_equal(po_port_parse("8o", &r), -EINVAL);
  assert_int_equal(po_port_parse("", &r), -EINVAL);
  assert_int_equal(po_port_parse("80 ", &r), -EINVAL);
  assert_int_equal(po_port_parse("no-such-service-here", &r), -ENOENT);
}

static void test_port_list(void **state) {
  struct po_range *v = NULL;
  size_t n = 0;
  const char *bad = NULL;

  (void)state;
  assert_int_equal(po_ports_parse("80,443,8000-8099,ssh", &v, &n, &bad), 0);
  assert_int_equal(n, 4);
  assert_int_equal(v[0].lo, 80);
  assert_int_equal(v[1].lo, 443);
  assert_int_equal(v[2].lo, 8000);
  assert_int_equal(v[2].hi, 8099);
  assert_int_equal(v[3].lo, 22);
  /* A second list appends. */
  assert_int_equal(po_ports_parse("53", &v, &n, &bad), 0);
  assert_int_equal(n, 5);
  assert_int_equal(v[4].hi, 53);

  assert_true(po_ranges_match(v, n, 8050));
  assert_true(po_ranges_match(v, n, 22));
  assert_false(po_ranges_match(v, n, 8100));
  assert_true(po_ranges_match(NULL, 0, 1234)); /* no ranges: every port */
  free(v);
}

static void test_port_list_names_bad_item(void **state) {
  struct po_range *v = NULL;
  size_t n = 0;
  const char *bad = NULL;
  const char *s = "80,90-70,443";

  (void)state;
  assert_int_equal(po_ports_parse(s, &v, &n, &bad), -EINVAL);
  assert_ptr_equal(bad, s + 3);
  assert_int_equal(po_port_item_len(bad), 5); /* "90-70", not the rest */
  free(v);
  v = NULL;
  n = 0;
  /* An unknown service among known ones: the item alone, first or last. */
  s = "ssh,no-such-service-here,redis-nonesuch";
  assert_int_equal(po_ports_parse(s, &v, &n, &bad), -ENOENT);
  assert_ptr_equal(bad, s + 4);
  assert_int_equal(po_port_item_len(bad), strlen("no-such-service-here"));
  free(v);
  v = NULL;
  n = 0;
  s = "22,no-such-service-here";
  assert_int_equal(po_ports_parse(s, &v, &n, &bad), -ENOENT);
  assert_int_equal(po_port_item_len(bad), strlen("no-such-service-here"));
  free(v);
  v = NULL;
  n = 0;
  assert_int_equal(po_ports_parse("80,", &v, &n, &bad), -EINVAL);
  free(v);
}

static void test_proto(void **state) {
  unsigned m = 0;

  (void)state;
  assert_int_equal(po_proto_parse("tcp", &m), 0);
  assert_int_equal(m, PO_TCP4 | PO_TCP6);
  assert_int_equal(po_proto_parse("TCP6", &m), 0);
  assert_int_equal(m, PO_TCP6);
  assert_int_equal(po_proto_parse("udp4", &m), 0);
  assert_int_equal(m, PO_UDP4);
  assert_int_equal(po_proto_parse("udp", &m), 0);
  assert_int_equal(m, PO_UDP4 | PO_UDP6);
  assert_int_equal(po_proto_parse("sctp", &m), -EINVAL);
  assert_int_equal(po_proto_parse("", &m), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_port_numbers_and_ranges),
      cmocka_unit_test(test_port_service_names),
      cmocka_unit_test(test_port_rejects),
      cmocka_unit_test(test_port_list),
      cmocka_unit_test(test_port_list_names_bad_item),
      cmocka_unit_test(test_proto),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
