/*
 * Fuzz target: po_json_string(), the JSON string writer every name goes
 * through (process names, exe paths and user names are arbitrary bytes).
 *
 * The input is written as the only element of a JSON array by a generator
 * that validates UTF-8 (yajl_gen_validate_utf8), then parsed back with
 * yajl_tree_parse().
 *
 * Invariants: writing succeeds (the output is valid UTF-8, or yajl would
 * refuse it); the document has no raw control byte and parses; the string
 * read back is the input with each byte that does not start a well-formed
 * UTF-8 sequence (Unicode 15, table 3-7, checked here by an independent
 * reference) replaced by U+FFFD, so a valid UTF-8 input comes back byte for
 * byte (up to a NUL, where yajl's C strings end).
 */
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "portowner/json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  yajl_gen g = yajl_gen_alloc(NULL);
  const unsigned char *out;
  size_t outlen, explen = 0;
  unsigned char *expect;
  char *doc, errbuf[256];
  yajl_val tree;
  int valid = 1;

  FUZZ_CHECK(g);
  FUZZ_CHECK(yajl_gen_config(g, yajl_gen_validate_utf8, 1));

  /* What must come back. */
  expect = (unsigned char *)fuzz_replaced((const char *)data, size);
  FUZZ_CHECK(expect);
  /* Its length (not strlen(): a NUL in the input stays in it). */
  for (size_t i = 0; i < size;) {
    size_t k = fuzz_utf8_seq(data + i, size - i);
    valid &= k > 0;
    explen += k ? k : 3;
    i += k ? k : 1;
  }
  if (valid)
    FUZZ_CHECK(explen == size &&
               (size == 0 || memcmp(expect, data, size) == 0));

  FUZZ_CHECK(yajl_gen_array_open(g) == yajl_gen_status_ok);
  FUZZ_CHECK(po_json_string(g, (const char *)data, size) == yajl_gen_status_ok);
  FUZZ_CHECK(yajl_gen_array_close(g) == yajl_gen_status_ok);
  FUZZ_CHECK(yajl_gen_get_buf(g, &out, &outlen) == yajl_gen_status_ok);

  /* JSON text: no raw control character, and valid UTF-8 itself. */
  for (size_t i = 0; i < outlen;) {
    size_t k = fuzz_utf8_seq(out + i, outlen - i);
    FUZZ_CHECK(k > 0);
    FUZZ_CHECK(out[i] >= 0x20);
    i += k;
  }

  doc = malloc(outlen + 1);
  FUZZ_CHECK(doc);
  memcpy(doc, out, outlen);
  doc[outlen] = '\0';
  tree = yajl_tree_parse(doc, errbuf, sizeof(errbuf));
  if (!tree)
    fprintf(stderr, "yajl_tree_parse: %s\n", errbuf);
  FUZZ_CHECK(tree);
  FUZZ_CHECK(YAJL_IS_ARRAY(tree) && YAJL_GET_ARRAY(tree)->len == 1);
  {
    yajl_val v = YAJL_GET_ARRAY(tree)->values[0];
    const char *got;

    FUZZ_CHECK(YAJL_IS_STRING(v));
    got = YAJL_GET_STRING(v);
    FUZZ_CHECK(got);
    /* yajl's strings end at a NUL: compare up to the first one. */
    FUZZ_CHECK(strcmp(got, (const char *)expect) == 0);
  }
  yajl_tree_free(tree);
  free(doc);
  free(expect);
  yajl_gen_free(g);
  return 0;
}
