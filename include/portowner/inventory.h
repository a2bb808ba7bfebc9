/*
 * portowner: the inventory of listeners (one per <Inventory> block): which
 * listeners of the host are not declared.
 *
 * Every listening socket of the caller's own network namespace that the
 * inventory selects (its protocols and ports) is an endpoint per distinct
 * (program, user) of its owners: the key is (protocol, address, port,
 * program, user), no pid, so a restart is not a change and a listener whose
 * program or user changes is a new endpoint. The program is the exe's
 * basename (never the comm, which any process sets); a socket with no owner
 * found is the endpoint (protocol, address, port, "", the socket's uid).
 *
 * An endpoint is declared when an Allow item matches it (program, user,
 * ports; any may be "*"), when an AllowUnit glob matches the unit of one of
 * its owners now (as ExpectUnit: the unit, the user unit or the label of
 * cgroup.h; an owner whose cgroup is unknown is judged by its socket's), or
 * when it is known: learned (Learn: the endpoints
 * of the first read) or seen while an Allow with explicit ports matched it.
 * Conditions, each reported once when it begins and once when it ends:
 *   - an undeclared endpoint that listens for Hits reads in a row: WARNING
 *     "tcp 0.0.0.0:4444 (host) is listening and was not declared; held by
 *     nc[2345] nobody", and OKAY "... stopped listening" when it is gone;
 *   - a known endpoint missing for Hits reads in a row (NotifyGone, on by
 *     default): WARNING "... is no longer listening", OKAY "... is
 *     listening again" when it is back.
 * A socket whose owners are not all known yet (po_socket.owner_pending: its
 * full walk was put off) is neither a new endpoint nor the end of one: the
 * endpoints of its protocol, address and port stay as they were until its
 * owners are known (it counts in values.listeners meanwhile).
 * UDP sockets bound to a port of the kernel's ephemeral range are left out
 * when IgnoreEphemeral is on (the default): resolvers and clients bind there
 * all the time. At most PO_INV_ENDPOINTS_MAX endpoints are tracked; more are
 * counted in values.untracked and never reported.
 *
 * Contract: 0 or a negative errno value; nothing logs or keeps globals.
 */
#ifndef PORTOWNER_INVENTORY_H
#define PORTOWNER_INVENTORY_H

#include <stddef.h>
#include <stdint.h>

#include "portowner/snapshot.h"
#include "portowner/watch.h" /* enum po_severity, PO_MESSAGE_MAX */

#ifdef __cplusplus
extern "C" {
#endif

#define PO_INV_ENDPOINTS_MAX 4096
/* The notification type instance of an endpoint, with its NUL. */
#define PO_INV_INSTANCE_MAX 128

struct po_inventory;

/*
 * A new inventory named name (an identifier part: not empty, at most
 * PO_WATCH_NAME_MAX - 1 bytes, no '/') with the defaults: protocol tcp (v4
 * and v6), every port, no Allow, Learn off, Hits 1, NotifyGone on,
 * IgnoreEphemeral on with the range 32768-60999 (the kernel's default; the
 * caller sets the host's). NULL with errno EINVAL or ENOMEM.
 */
struct po_inventory *po_inventory_new(const char *name);
void po_inventory_free(struct po_inventory *inv);

/* Adds a protocol token (po_proto_parse()); the first replaces the tcp
 * default. Returns 0, -EINVAL, -ENOMEM. */
int po_inventory_protocol_add(struct po_inventory *inv, const char *name);

/* Adds the port items of s (po_ports_parse()); the first call replaces
 * "every port". On failure *bad (when not NULL) points at the item.
 * Returns 0, -EINVAL, -ERANGE, -ENOENT, -ENOMEM. */
int po_inventory_port_add_string(struct po_inventory *inv, const char *s,
                                 const char **bad);

/*
 * Adds an Allow item: program (an exe basename, or "*"), user (a user name,
 * a numeric uid, or "*") and ports (a port list as po_ports_parse() takes,
 * or NULL / "*" for any port). On failure *bad (when not NULL) points at the
 * bad port item. Returns 0, -EINVAL (empty program or user, a '/' in the
 * program), the errors of po_ports_parse(), -ENOMEM.
 */
int po_inventory_allow_add(struct po_inventory *inv, const char *program,
                           const char *user, const char *ports,
                           const char **bad);

/*
 * Adds an AllowUnit glob (fnmatch(3), no flags), matched against the unit,
 * the user unit and the label (po_cgroup_label()) of an endpoint's owners.
 * It declares an endpoint while it matches; it never makes it known.
 * Returns 0, -EINVAL (empty or longer than PO_GLOB_MAX), -ENOMEM.
 */
int po_inventory_allow_unit_add(struct po_inventory *inv, const char *glob);

void po_inventory_set_learn(struct po_inventory *inv, int on);
/* Returns 0, -EINVAL when hits is 0 or above PO_HITS_MAX. */
int po_inventory_set_hits(struct po_inventory *inv, unsigned hits);
void po_inventory_set_notify_gone(struct po_inventory *inv, int on);
void po_inventory_set_ignore_ephemeral(struct po_inventory *inv, int on);
/* The ephemeral range (po_ephemeral_range_read()). Returns 0, -EINVAL
 * (lo 0 or lo > hi). */
int po_inventory_set_ephemeral_range(struct po_inventory *inv, uint16_t lo,
                                     uint16_t hi);

/* Ends the configuration. Returns 0, -ENOMEM. */
int po_inventory_finish(struct po_inventory *inv);

const char *po_inventory_name(const struct po_inventory *inv);
/* After po_inventory_finish(): the PO_TCP4... mask it selects, and its port
 * ranges (none: every port), for the caller's query. */
unsigned po_inventory_mask(const struct po_inventory *inv);
const struct po_range *po_inventory_ports(const struct po_inventory *inv,
                                          size_t *n);

/*
 * Reads the kernel's ephemeral port range from
 * <proc_root>/sys/net/ipv4/ip_local_port_range ("32768\t60999\n").
 * Returns 0, -EBADMSG (not two ports, lo > hi), or -errno of the read.
 */
int po_ephemeral_range_read(const char *proc_root, uint16_t *lo, uint16_t *hi);

enum po_inv_event_type {
  PO_INV_UNDECLARED,     /* WARNING: listening, not declared, Hits reads */
  PO_INV_UNDECLARED_END, /* OKAY: it stopped listening */
  PO_INV_GONE,           /* WARNING: known, missing for Hits reads */
  PO_INV_BACK,           /* OKAY: it listens again */
};

/* One event of an inventory. */
struct po_inv_event {
  enum po_inv_event_type type;
  enum po_severity severity;
  /* The endpoint's own notification type instance, so that its OKAY ends
   * its WARNING: "undeclared-" or "gone-", then protocol, address, port,
   * program and user joined by '-', each byte outside [A-Za-z0-9._] as '_'
   * ("undeclared-tcp-0.0.0.0-4444-nc-nobody"), cut to fit. */
  char type_instance[PO_INV_INSTANCE_MAX];
  char endpoint[64];            /* "tcp 0.0.0.0:4444", "udp6 [::1]:53" */
  char program[64];             /* the exe basename, "" when unknown (cut) */
  char user[64];                /* the user name, or the uid */
  char message[PO_MESSAGE_MAX]; /* valid UTF-8, no control characters */
  char *owners; /* JSON array of at most PO_OWNERS_MAX {pid, comm, exe,
                   user} now (empty when gone), malloc'd, never NULL */
};

struct po_inv_events {
  struct po_inv_event *v;
  size_t len;
  size_t cap;
};

void po_inv_events_clear(struct po_inv_events *e);
void po_inv_events_free(struct po_inv_events *e);

struct po_inventory_values {
  uint64_t listeners;  /* endpoints selected now */
  uint64_t undeclared; /* of them, neither allowed nor known (not debounced
                          by Hits) */
  uint64_t untracked;  /* endpoints beyond PO_INV_ENDPOINTS_MAX */
};

/*
 * Evaluates one snapshot (the sockets of own_netns only, as
 * po_snapshot_take() left in s->netns): fills *v, appends the events to ev
 * (the OKAYs first) and advances the state. The snapshot must hold every
 * port and protocol the inventory selects (po_inventory_mask/_ports()).
 * On failure the state is unchanged and ev holds no new event.
 * Returns 0, -EINVAL (not finished), -ENOMEM.
 */
int po_inventory_eval(struct po_inventory *inv, const struct po_snapshot *s,
                      uint64_t own_netns, struct po_inventory_values *v,
                      struct po_inv_events *ev);

/*
 * The state an inventory keeps across restarts (the StateFile): its
 * endpoints that are known, reported undeclared, or reported gone, at most
 * PO_INV_SAVED_MAX of them (known ones first), so that a restart neither
 * repeats nor misses a notification and Learn does not learn again.
 */
#define PO_INV_SAVED_MAX 512

struct po_inv_endpoint {
  uint8_t proto;  /* IPPROTO_TCP or IPPROTO_UDP */
  uint8_t family; /* AF_INET or AF_INET6 */
  uint16_t port;
  uint8_t addr[16];
  const char *program; /* "" when unknown; at most 63 bytes */
  const char *user;    /* at most 63 bytes */
  uint32_t uid;
  int known, reported, gone;
};

/* Fills out (max entries) with the state worth keeping, pointing into
 * inv (valid until its next evaluation). Returns how many. */
size_t po_inventory_state(const struct po_inventory *inv,
                          struct po_inv_endpoint *out, size_t max);

/*
 * Replaces the state of inv with n saved endpoints (at most
 * PO_INV_SAVED_MAX; strings copied, cut to 63 bytes). The next evaluation is
 * not a first read: Learn learns nothing more. Returns 0, -EINVAL (a
 * protocol, family or port that no socket has, n too large), -ENOMEM; on
 * failure the state is unchanged.
 */
int po_inventory_restore(struct po_inventory *inv,
                         const struct po_inv_endpoint *v, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_INVENTORY_H */
