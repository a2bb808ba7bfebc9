/*
 * portowner: the message builder of events: a fixed buffer of
 * PO_MESSAGE_MAX bytes that always holds valid UTF-8 without control
 * characters (bytes that are not become '?'), is always NUL-terminated, and
 * cuts what does not fit at a character boundary with "...".
 *
 * Contract: nothing fails, allocates or logs; a zeroed struct msg is an
 * empty message. Core only.
 */
#ifndef PORTOWNER_MESSAGE_H
#define PORTOWNER_MESSAGE_H

#include <stddef.h>

#include "portowner/watch_private.h"

/* In messages: longest program name, user name, port list, watch name. */
#define MSG_PROG_MAX 40
#define MSG_USER_MAX 32
#define MSG_PORTS_MAX 60
#define MSG_NAME_MAX 60

struct msg {
  char b[PO_MESSAGE_MAX];
  size_t len;
};

/* Appends s (n bytes) sanitized, in at most max bytes (and what is left);
 * cut at a character boundary with "..." when it does not fit. */
void po_msg_text(struct msg *m, const char *s, size_t n, size_t max);

/* Appends the NUL-terminated s, in what is left. */
void po_msg_str(struct msg *m, const char *s);

/* Appends the owners of l ("nginx[1311] www-data, ..."), in at most max
 * bytes: ", ..." when cut. */
void po_msg_owners(struct msg *m, const struct identlist *l, size_t max);

/* Appends the watch's label: "tcp/80,443 (web)" (protocols joined by '+'). */
void po_msg_label(struct msg *m, const struct po_watch *w);

#endif /* PORTOWNER_MESSAGE_H */
