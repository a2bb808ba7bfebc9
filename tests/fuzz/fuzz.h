/*
 * portowner fuzz targets: what every target shares.
 *
 * Each target defines LLVMFuzzerTestOneInput(). Built with clang
 * -fsanitize=fuzzer it is a libFuzzer binary (make fuzz); built with
 * replay.c and any C compiler it is a replay driver that feeds the files of
 * tests/fuzz/corpus/<target> and tests/fuzz/regressions/<target> to the same
 * function (make check, under valgrind).
 *
 * Targets check invariants with FUZZ_CHECK, which aborts (a crash libFuzzer
 * records, a failing test for the replay driver) and is never compiled out
 * as assert() is with NDEBUG.
 */
#ifndef PORTOWNER_FUZZ_H
#define PORTOWNER_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__,   \
              #cond);                                                          \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* Length of the well-formed UTF-8 sequence at p (n bytes left), 0 if none:
 * Unicode 15 table 3-7, row by row (independent of the code under test). */
static inline size_t fuzz_utf8_seq(const unsigned char *p, size_t n) {
  static const struct {
    unsigned char first_lo, first_hi, second_lo, second_hi;
    size_t len;
  } rows[] = {
      {0x00, 0x7F, 0, 0, 1},       {0xC2, 0xDF, 0x80, 0xBF, 2},
      {0xE0, 0xE0, 0xA0, 0xBF, 3}, {0xE1, 0xEC, 0x80, 0xBF, 3},
      {0xED, 0xED, 0x80, 0x9F, 3}, {0xEE, 0xEF, 0x80, 0xBF, 3},
      {0xF0, 0xF0, 0x90, 0xBF, 4}, {0xF1, 0xF3, 0x80, 0xBF, 4},
      {0xF4, 0xF4, 0x80, 0x8F, 4},
  };

  for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
    size_t len = rows[r].len;

    if (p[0] < rows[r].first_lo || p[0] > rows[r].first_hi)
      continue;
    if (len > n)
      return 0;
    if (len >= 2 && (p[1] < rows[r].second_lo || p[1] > rows[r].second_hi))
      return 0;
    for (size_t k = 2; k < len; k++)
      if (p[k] < 0x80 || p[k] > 0xBF)
        return 0;
    return len;
  }
  return 0;
}

/* 1 when the n bytes at s are UTF-8 without control characters. */
static inline int fuzz_clean_text(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;

  for (size_t i = 0; i < n;) {
    size_t k = fuzz_utf8_seq(u + i, n - i);
    if (k == 0 || u[i] < 0x20 || u[i] == 0x7f)
      return 0;
    i += k;
  }
  return 1;
}

/* s with every byte that starts no well-formed sequence replaced by U+FFFD
 * (what the JSON writer must produce); malloc'd, NULL when out of memory. */
static inline char *fuzz_replaced(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  char *out = malloc(n * 3 + 1);
  size_t w = 0;

  if (!out)
    return NULL;
  for (size_t i = 0; i < n;) {
    size_t k = fuzz_utf8_seq(u + i, n - i);
    if (k == 0) {
      memcpy(out + w, "\xEF\xBF\xBD", 3);
      w += 3;
      i++;
    } else {
      memcpy(out + w, u + i, k);
      w += k;
      i += k;
    }
  }
  out[w] = '\0';
  return out;
}

#ifdef FUZZ_WANT_TMPDIR
#include <unistd.h>

#include "../fixture.h" /* link tests/fixture.c */

static char fuzz_tmp[512];

static void fuzz_tmpdir_remove(void) {
  fx_root_remove(fuzz_tmp);
}

/* A private directory for files a target writes, in $PO_FUZZ_TMPDIR, else
 * /dev/shm when writable (fsync() there costs nothing); removed with all in
 * it at exit (libFuzzer ends some runs with _Exit(): run-fuzz.sh removes the
 * PO_FUZZ_TMPDIR it made). */
static inline const char *fuzz_tmpdir(void) {
  if (fuzz_tmp[0] == '\0') {
    const char *base = getenv("PO_FUZZ_TMPDIR");
    if (!base && access("/dev/shm", W_OK) == 0)
      base = "/dev/shm";
    fx_root_make(fuzz_tmp, sizeof(fuzz_tmp), base, "fuzz");
    atexit(fuzz_tmpdir_remove);
  }
  return fuzz_tmp;
}
#endif

/* Field by field: struct po_socket has padding, which memcmp() would read. */
#ifdef PORTOWNER_TABLE_H
static inline int fuzz_socket_equal(const struct po_socket *a,
                                    const struct po_socket *b) {
  return a->inode == b->inode && a->netns == b->netns &&
         memcmp(a->addr, b->addr, sizeof(a->addr)) == 0 && a->port == b->port &&
         a->proto == b->proto && a->family == b->family &&
         a->v6only == b->v6only && a->rqueue == b->rqueue &&
         a->wqueue == b->wqueue && a->uid == b->uid &&
         a->owner_first == b->owner_first && a->owner_count == b->owner_count;
}

static inline int fuzz_tables_equal(const struct po_socket *a,
                                    const struct po_socket *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!fuzz_socket_equal(&a[i], &b[i]))
      return 0;
  return 1;
}
#endif

#endif /* PORTOWNER_FUZZ_H */
