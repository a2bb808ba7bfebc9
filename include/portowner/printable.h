/*
 * portowner: the one rule of what may be printed of a name (a comm, exe,
 * user or watch name: arbitrary bytes chosen by whoever started a process)
 * in messages, log lines, the dump table, JSON and what handlers receive.
 *
 * Printable is valid UTF-8 (no overlong form, surrogate or code point past
 * U+10FFFF) that is none of:
 *   - C0 controls U+0000-U+001F and DEL U+007F;
 *   - C1 controls U+0080-U+009F (as UTF-8, \xc2\x80-\xc2\x9f; as raw bytes
 *     0x80-0x9f they are not UTF-8 at all);
 *   - the bidirectional controls (Unicode's Bidi_Control property): U+061C,
 *     U+200E, U+200F, U+202A-U+202E, U+2066-U+2069;
 *   - the line and paragraph separators U+2028, U+2029 (a line break to
 *     some log viewers and to JavaScript).
 *
 * Contract: pure functions, nothing fails, allocates or logs. Core only.
 */
#ifndef PORTOWNER_PRINTABLE_H
#define PORTOWNER_PRINTABLE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The character at s, of at most n > 0 bytes. Returns its length (1 to 4)
 * when it is printable, 0 when not; *span (when not NULL) is always the
 * bytes it takes: a valid UTF-8 character's length (printable or not), 1
 * for a byte that does not start a valid UTF-8 sequence.
 */
size_t po_printable(const char *s, size_t n, size_t *span);

/* Whether the n bytes at s are all printable (n = 0: yes). */
int po_printable_all(const char *s, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_PRINTABLE_H */
