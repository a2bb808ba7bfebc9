/*
 * portowner: making events (struct po_event of watch.h): their severity, the
 * owners JSON they carry, and the growable array that holds them. The public
 * side (po_event_type_name(), po_event_condition(), po_events_clear(),
 * po_events_free()) is declared in watch.h.
 *
 * Contract: 0 or a negative errno value; on failure nothing is appended and
 * nothing leaks. An event owns its owners / previous_owners strings; the
 * array owns its events. Core only; nothing logs.
 */
#ifndef PORTOWNER_EVENT_H
#define PORTOWNER_EVENT_H

#include <stddef.h>

#include "portowner/message.h"
#include "portowner/watch_private.h"

/* Makes room for more events in e. Returns 0, -ENOMEM. */
int po_events_reserve(struct po_events *e, size_t more);

/*
 * Appends to ev an event of w of that type (its severity follows from it)
 * with message m, the sockets and processes of v, the owners JSON of cur
 * and, when prev is not NULL, the previous_owners JSON of prev.
 * Returns 0, -ENOMEM.
 */
int po_event_add(struct po_events *ev, const struct po_watch *w,
                 enum po_event_type type, const struct msg *m,
                 const struct po_watch_values *v, const struct identlist *cur,
                 const struct identlist *prev);

/* The owners JSON of an event: an array of at most PO_OWNERS_MAX
 * {pid, comm, exe, user} (null for what is unknown), malloc'd into *out.
 * Returns 0, -ENOMEM. */
int po_owners_json(const struct identlist *l, char **out);

#endif /* PORTOWNER_EVENT_H */
