/*
 * portowner: what may be printed of a name (see printable.h).
 */
#include "portowner/json.h"
#include "portowner/printable.h"

/* The code point of the valid UTF-8 sequence of len bytes at s. */
static unsigned code_point(const unsigned char *s, size_t len) {
  static const unsigned char lead_mask[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
  unsigned cp = s[0] & lead_mask[len];

  for (size_t i = 1; i < len; i++)
    cp = (cp << 6) | (s[i] & 0x3f);
  return cp;
}

static int unprintable_cp(unsigned cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c ||
         cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2066 && cp <= 0x2069);
}

size_t po_printable(const char *s, size_t n, size_t *span) {
  size_t len = po_utf8_len(s, n);

  if (span)
    *span = len ? len : 1;
  if (len == 0 || unprintable_cp(code_point((const unsigned char *)s, len)))
    return 0;
  return len;
}

int po_printable_all(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t span;

    if (!po_printable(s + i, n - i, &span))
      return 0;
    i += span;
  }
  return 1;
}
