/*
 * portowner: the message builder of events: a fixed buffer of
 * PO_MESSAGE_MAX bytes that always holds printable valid UTF-8
 * (printable.h: each character that is not printable, C0/DEL/C1, bidi
 * controls and line separators, and each byte that is not UTF-8, becomes
 * '?'), is always NUL-terminated, and cuts what does not fit at a character
 * boundary with "...".
 *
 * Contract: nothing fails or logs; only the owners' summary allocates (its
 * scratch, freed before it returns: without memory, the summary is left
 * out); a zeroed struct msg is an empty message. Core only.
 */
#ifndef PORTOWNER_MESSAGE_H
#define PORTOWNER_MESSAGE_H

#include <stddef.h>

#include "portowner/watch_private.h"

/* In messages: longest program name, user name, port list, watch name. */
#define MSG_PROG_MAX 40
#define MSG_USER_MAX 32
#define MSG_UNIT_MAX 64
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

/*
 * Appends the owners of l ("nginx[1311] www-data, ..."), in at most max
 * bytes. An owner is named by its comm, its pid and its user; when the comm
 * is not its program's name (the exe basename) the program follows:
 * "sshd[4640] nobody (exe python3.11)". An owner with pid 0 stands for the
 * sockets of a uid that have no owner found: "uid 65534 (no owner found)".
 * When the list does not fit, it starts with every distinct (program,
 * user) and its count, then as many owners as fit and ", ...":
 * "apache2 root (1), apache2 www-data (8): apache2[2564] root, ...".
 */
void po_msg_owners(struct msg *m, const struct identlist *l, size_t max);

/* po_msg_owners(), and with PO_MSG_EXE_UNKNOWN in flags an owner whose exe
 * is unknown says so: "python3[77] root (exe unknown)". */
#define PO_MSG_EXE_UNKNOWN 1u
void po_msg_owners_flags(struct msg *m, const struct identlist *l, size_t max,
                         unsigned flags);

/* Appends the watch's label: "tcp/80,443 (web)" (protocols joined by '+'). */
void po_msg_label(struct msg *m, const struct po_watch *w);

#endif /* PORTOWNER_MESSAGE_H */
