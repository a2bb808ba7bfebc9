/*
 * portowner: the watch model, one watch per <Port> block of the collectd
 * config, and its state machine.
 *
 * A watch selects listening sockets (ports, protocols, optional bind
 * addresses, optionally every network namespace) and says what it expects of
 * their owners. po_watchset_eval() turns one snapshot into per-watch values
 * and into events: each condition is reported once when it begins and once
 * when it ends, never every interval. The state behind that can be kept in a
 * StateFile across restarts (statefile.h).
 *
 * Related headers: config_value.h (single config values), statefile.h (the
 * StateFile), fileio.h (the boot id). The implementation is split by job
 * across plugin/watch.c (the model and the set), eval.c and cond_*.c (one
 * file per condition), select.c, expect.c, owners.c, message.c, event.c;
 * they share include/portowner/watch_private.h, which only they include.
 *
 * Contract: functions return 0 (or a count where stated) on success and a
 * negative errno value on failure. Nothing here logs or keeps globals; the
 * collectd glue (plugin/portowner.c) turns results into log lines, values and
 * notifications.
 */
#ifndef PORTOWNER_WATCH_H
#define PORTOWNER_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "portowner/config_value.h" /* PO_HITS_MAX */
#include "portowner/snapshot.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest watch name with its NUL: collectd's DATA_MAX_NAME_LEN, as the name
 * is the plugin instance. */
#define PO_WATCH_NAME_MAX 128
/* Longest event message with its NUL: collectd's NOTIF_MAX_MSG_LEN. */
#define PO_MESSAGE_MAX 256
/* Most owners listed in an event's owners / previous_owners JSON. */
#define PO_OWNERS_MAX 16

/*
 * Bounds of an ExpectProcess "/REGEX/" (PCRE2, interpreted, no JIT). At
 * config time: the pattern (between the slashes) is at most
 * PO_REGEX_LEN_MAX bytes, nests parentheses at most PO_REGEX_NEST_MAX deep,
 * and compiles in at most PO_REGEX_MEM_MAX bytes (everything PCRE2
 * allocates for it, counted by our allocator). At match time, for each
 * subject: at most PO_REGEX_MATCH_LIMIT backtracking steps,
 * PO_REGEX_DEPTH_LIMIT nested backtracking points and
 * PO_REGEX_HEAP_LIMIT_KIB KiB of backtracking memory.
 */
#define PO_REGEX_LEN_MAX 1024
#define PO_REGEX_NEST_MAX 32
#define PO_REGEX_MEM_MAX (32u * 1024)
#define PO_REGEX_MATCH_LIMIT 100000u
#define PO_REGEX_DEPTH_LIMIT 2000u
#define PO_REGEX_HEAP_LIMIT_KIB 512u

/* Same values as collectd's NOTIF_FAILURE, NOTIF_WARNING, NOTIF_OKAY. */
enum po_severity {
  PO_SEVERITY_FAILURE = 1,
  PO_SEVERITY_WARNING = 2,
  PO_SEVERITY_OKAY = 4,
};

enum po_event_type {
  PO_EVENT_LISTENER_LOST,    /* FAILURE: no listener for Hits reads */
  PO_EVENT_MISSING_AT_START, /* FAILURE: no listener at the first read */
  PO_EVENT_LISTENER_BACK,    /* OKAY: ends LOST / MISSING_AT_START */
  PO_EVENT_OWNER_CHANGED,    /* WARNING: other (program, user) for
                                OwnerChangeHits reads */
  PO_EVENT_UNEXPECTED_OWNER, /* FAILURE: an owner fails ExpectProcess/User
                                (again for each one not named before) */
  PO_EVENT_EXPECTED_OWNER,   /* OKAY: ends UNEXPECTED_OWNER */
  PO_EVENT_RESTARTED,        /* WARNING (NotifyRestart): the same programs
                                and users re-created the sockets */
};

/* "listener_lost", "missing_at_start", "listener_back", "owner_changed",
 * "unexpected_owner", "expected_owner", "restarted"; NULL for an unknown
 * type. */
const char *po_event_type_name(enum po_event_type t);

/*
 * The condition an event belongs to: "listener" (LOST, MISSING_AT_START,
 * BACK), "owner_change" (OWNER_CHANGED), "unexpected_owner"
 * (UNEXPECTED_OWNER, EXPECTED_OWNER) and "restart" (RESTARTED). The
 * notification's type instance is po_event_type_instance(): the condition,
 * and for the listener its requirement too.
 */
const char *po_event_condition(enum po_event_type t);

struct po_watch;
struct po_event;

/*
 * The notification type instance of an event, which the glue uses: for a
 * listener event, one per requirement, "listener-" and its requirement's
 * name with every '/' made '-' ("listener-tcp-443",
 * "listener-tcp-127.0.0.1:80"); else its condition (po_event_condition()).
 * Into buf (size bytes). Returns 0, -ENAMETOOLONG, -EINVAL (no condition).
 */
int po_event_type_instance(const struct po_event *e, char *buf, size_t size);

/*
 * One event of one watch. message is at most PO_MESSAGE_MAX - 1 bytes of
 * valid UTF-8 without control characters, e.g.
 * "tcp/80 (web) lost its listener; last held by nginx[1311] www-data".
 * owners is a JSON array (malloc'd, never NULL) of at most PO_OWNERS_MAX
 * objects {pid, comm, exe, user} (comm, exe and user null when unknown),
 * lowest pids first, of the owners_total distinct owner processes now;
 * previous_owners (NULL unless LOST, OWNER_CHANGED or RESTARTED) is the
 * same for the owners before: the last known (LOST, RESTARTED), the
 * accepted ones (OWNER_CHANGED: those with a known program). Never command
 * lines.
 */
struct po_event {
  enum po_event_type type;
  enum po_severity severity;
  const struct po_watch *watch; /* valid as long as the watch */
  /* A listener event's requirement name ("tcp/443"), valid as long as the
   * watch: its message starts with it, and its sockets, processes and
   * owners are those of the requirement. NULL for the other conditions. */
  const char *requirement;
  char message[PO_MESSAGE_MAX];
  uint64_t sockets;      /* matching listening sockets now */
  uint64_t processes;    /* distinct owner processes now */
  uint64_t owners_total; /* == processes */
  char *owners;
  char *previous_owners;
  char *units; /* the distinct units or containers of the owners
                  (po_ident_label()), comma-separated; NULL when none */
};

/* A growable array of events. Zero-initialise before first use. */
struct po_events {
  struct po_event *v;
  size_t len;
  size_t cap;
};

/* Frees the events' contents and empties the array, keeping its memory. */
void po_events_clear(struct po_events *e);
/* Frees everything and zeroes the array. */
void po_events_free(struct po_events *e);

/* The values of one watch for one snapshot. The counts are of the sockets
 * that serve at least one of its requirements (po_watch_finish()). */
struct po_watch_values {
  uint64_t sockets;    /* matching listening sockets */
  uint64_t processes;  /* distinct processes owning one of them */
  uint64_t unowned;    /* matching sockets with no owner found */
  uint64_t accept;     /* TCP: accept queues now, summed */
  uint64_t accept_max; /* TCP: accept queue limits, summed; a limit the
                          source cannot tell (PO_QUEUE_UNKNOWN, /proc/net)
                          counts as 0 */
  uint64_t missing;    /* requirements that no socket serves now (not
                          debounced by Hits) */
  uint64_t pending;    /* matching sockets whose owners are not all known
                          yet (po_socket.owner_pending): the owner
                          conditions wait for them */
};

/* ---- a watch ------------------------------------------------------------- */

/*
 * A new watch named name with the defaults: no ports yet, protocol tcp (v4
 * and v6) unless po_watch_protocol_add() is called, any address, Hits 1,
 * NotifyMissingAtStart and NotifyOwnerChange on, AllNamespaces off, no
 * expectations. Returns NULL with errno EINVAL (name empty, longer than
 * PO_WATCH_NAME_MAX - 1 bytes, or containing '/', which an identifier cannot
 * hold) or ENOMEM.
 */
struct po_watch *po_watch_new(const char *name);
void po_watch_free(struct po_watch *w);

/* Adds a port range. Returns 0, -EINVAL (lo 0 or lo > hi), -ENOMEM. */
int po_watch_port_add(struct po_watch *w, const struct po_range *r);
/* Adds a port given as a number (po_config_port_number(), config_value.h). */
int po_watch_port_add_number(struct po_watch *w, double v);
/*
 * Adds the port items of a string: a number, a range "8000-8099", a service
 * name, or a comma-separated list of them (po_ports_parse()). On failure
 * *bad (when not NULL) points at the offending item inside s.
 * Returns 0, -EINVAL, -ERANGE, -ENOENT (unknown service), -ENOMEM.
 */
int po_watch_port_add_string(struct po_watch *w, const char *s,
                             const char **bad);

/* Adds a protocol token by name (po_proto_parse(): tcp, tcp4, tcp6, udp,
 * udp4, udp6, all). The first call replaces the tcp default.
 * Returns 0, -EINVAL, -ENOMEM. */
int po_watch_protocol_add(struct po_watch *w, const char *name);

/*
 * Adds a bind address (inet_pton, IPv4 or IPv6): each is a requirement of
 * its own. A socket serves it when it accepts connections for it: bound to
 * it, to the wildcard of its family, or (IPv4) to its v4-mapped form or
 * dual-stack :: (requirement.h says it exactly).
 * Returns 0, -EINVAL (not an address), -ENOMEM.
 */
int po_watch_address_add(struct po_watch *w, const char *addr);

/*
 * Adds an ExpectProcess item. The program of an owner is its executable,
 * never its comm (which any process sets to anything):
 * - a name is compared with the basename of the exe (" (deleted)" removed);
 * - a name with a '/' is a path, stat'ed now (a path that cannot be is an
 *   error: -ENOENT, ... with err saying why) and again at each read: it
 *   matches an owner whose stat(/proc/PID/exe) is the same file (device
 *   and inode), so a symlinked binary passes and a mount namespace that
 *   fakes the path does not (see po_expect_refresh(), expect.h);
 * - "/REGEX/" is a PCRE2 regular expression (a superset of the POSIX
 *   extended syntax people write: (a|b), [0-9]+, ^$, {m,n}, [[:alpha:]]),
 *   compiled now and matched against the whole exe path (" (deleted)"
 *   removed): "/\/sshd$/", "/^\/usr\/sbin\/(nginx|apache2)$/".
 * An owner whose exe cannot be read is judged by ExpectUser only.
 *
 * A regex is on bytes, not UTF-8 (PCRE2_NEVER_UTF, NEVER_UCP: process names
 * need not be valid UTF-8, and every byte string is a valid subject): "."
 * is one byte, \w and [[:alpha:]] are ASCII; a non-ASCII name is matched as
 * its UTF-8 bytes (write it literally, not inside [...]). As in POSIX, "."
 * also matches a newline and "$" only the very end (PCRE2_DOTALL,
 * DOLLAR_ENDONLY). Unanchored, as POSIX: "/^sshd$/" is the exact name.
 *
 * A match that hits a PO_REGEX_* limit or fails in any other way counts as
 * "did not match": the owner is judged unexpected. That is the safe answer
 * for an allowlist, as a hostile process name can make a match expensive but
 * can never pass by it.
 *
 * On failure with a regex, err (when not NULL) says why: PCRE2's message and
 * the offset for a syntax error; "pattern too long (N bytes, max M)",
 * "nested too deep (...)", "needs more than N KiB to compile" for a limit.
 * Returns 0, -EINVAL (empty, "//", bad syntax), -E2BIG (a pattern past a
 * config-time PO_REGEX_* limit), -ENOMEM, or stat()'s error for a path.
 */
int po_watch_expect_process_add(struct po_watch *w, const char *pattern,
                                char *err, size_t errsize);

/*
 * Adds an ExpectUser item: a user name (compared with the owner's user name,
 * and with the uid it resolves to now, if any) or a numeric uid.
 * Returns 0, -EINVAL (empty), -ENOMEM.
 */
int po_watch_expect_user_add(struct po_watch *w, const char *user);

/* Longest ExpectUnit / ExpectCgroup glob. */
#define PO_GLOB_MAX 1024

/*
 * Adds an ExpectUnit glob (fnmatch(3), no flags: "*" also matches "/"),
 * matched against the owner's systemd unit, its user unit and its label
 * ("docker:0123456789ab", "user@1000.service/app.service"; cgroup.h), or an
 * ExpectCgroup glob ("/system.slice/nginx*"), matched against its cgroup v2 and
 * name=systemd paths. Judged like ExpectUser: an owner whose cgroup cannot
 * be read is judged by its socket's cgroup, and not by these when that is
 * unknown too. Returns 0, -EINVAL (empty, longer than PO_GLOB_MAX, or an
 * ExpectCgroup that starts with neither '/' nor '*'), -ENOMEM.
 */
int po_watch_expect_unit_add(struct po_watch *w, const char *glob);
int po_watch_expect_cgroup_add(struct po_watch *w, const char *glob);

/* Returns 0, -EINVAL when hits is 0 or above PO_HITS_MAX. */
int po_watch_set_hits(struct po_watch *w, unsigned hits);
void po_watch_set_notify_missing_at_start(struct po_watch *w, int on);
void po_watch_set_notify_owner_change(struct po_watch *w, int on);
/* OwnerChangeHits: the reads in a row that must see one other set of
 * (program, user) before OWNER_CHANGED (default 2). Returns 0, -EINVAL
 * when 0 or above PO_HITS_MAX. */
int po_watch_set_owner_change_hits(struct po_watch *w, unsigned hits);
/* NotifyRestart (default off): RESTARTED when the same programs and users
 * re-created the sockets (new inodes, the old pids gone). */
void po_watch_set_notify_restart(struct po_watch *w, int on);
/* AllNamespaces (default PO_NS_OWN): an enum po_ns_scope (snapshot.h). A
 * socket of another namespace than the caller's own counts for w with
 * PO_NS_TRUSTED when that namespace is trusted, with PO_NS_ALL always. */
void po_watch_set_all_namespaces(struct po_watch *w, int scope);

/*
 * Ends the configuration of w and builds its descriptions and its listener
 * requirements: each Address (or any) x each Protocol token x each port
 * item, in config order (requirement.h). Returns 0, -EDESTADDRREQ (no port
 * was added), -ENOMEM.
 */
int po_watch_finish(struct po_watch *w);

/* After po_watch_finish(): the number of w's listener requirements, and
 * the name of requirement i ("tcp/443", "tcp/8000-8099", "tcp/127.0.0.1:80",
 * "tcp6/[::1]:80"; NULL when i is past the end). */
size_t po_watch_requirements(const struct po_watch *w);
const char *po_watch_requirement_name(const struct po_watch *w, size_t i);

const char *po_watch_name(const struct po_watch *w);
/* After po_watch_finish(): the protocols ("tcp", "tcp,udp6"), the ports
 * ("80,443,8000-8099") and the addresses ("0.0.0.0,::", NULL when any), as
 * the notifications' meta carry them. */
const char *po_watch_protocols(const struct po_watch *w);
const char *po_watch_ports(const struct po_watch *w);
const char *po_watch_addresses(const struct po_watch *w);
unsigned po_watch_hits(const struct po_watch *w);
int po_watch_all_namespaces(const struct po_watch *w); /* po_ns_scope */

/*
 * Evaluates one snapshot for w: fills *values and appends w's events to ev,
 * and advances w's state. Sockets of other network namespaces than
 * own_netns are skipped unless w has AllNamespaces, and those of an
 * untrusted namespace (s->nsv) unless it is PO_NS_ALL: pass s->netns, the
 * namespace the snapshot read as its own (po_snapshot_take()).
 * On failure w's state is unchanged and ev holds no new event.
 * Returns 0, -EINVAL (w not finished), -ENOMEM.
 */
int po_watch_eval(struct po_watch *w, const struct po_snapshot *s,
                  uint64_t own_netns, struct po_watch_values *values,
                  struct po_events *ev);

/* ---- the set of watches of one plugin instance -------------------------- */

struct po_watchset;

/* Returns a new empty set, or NULL with errno ENOMEM. */
struct po_watchset *po_watchset_new(void);
/* Frees the set and its watches. */
void po_watchset_free(struct po_watchset *set);

/*
 * Adds a finished watch; the set owns it on success.
 * Returns 0, -EEXIST (a watch of that name is there), -EINVAL (not
 * finished), -ENOMEM.
 */
int po_watchset_add(struct po_watchset *set, struct po_watch *w);
size_t po_watchset_len(const struct po_watchset *set);

/*
 * Adds a finished inventory (inventory.h); the set owns it on success, and
 * its state is in the StateFile with the watches'. Inventories and watches
 * share one namespace of names (each is a plugin instance).
 * Returns 0, -EEXIST (a watch or an inventory of that name is there),
 * -EINVAL, -ENOMEM.
 */
struct po_inventory;
int po_watchset_add_inventory(struct po_watchset *set,
                              struct po_inventory *inv);
size_t po_watchset_inventories(const struct po_watchset *set);
struct po_inventory *po_watchset_inventory(const struct po_watchset *set,
                                           size_t i);
struct po_watch *po_watchset_get(const struct po_watchset *set, size_t i);
/* Returns the watch named name, or NULL. */
struct po_watch *po_watchset_find(const struct po_watchset *set,
                                  const char *name);

/*
 * Fills q with the query that serves every watch and inventory: the union
 * of their ports and protocols (every port when an inventory has none), the
 * widest all_namespaces any watch asks. q->ports points
 * into the set (valid until the next call or po_watchset_free()); q->source is
 * left as it is. Returns 0, -ENOMEM.
 */
int po_watchset_query(struct po_watchset *set, struct po_query *q);

/*
 * Evaluates a snapshot for every watch, in the set's order (po_watch_eval()):
 * values must have po_watchset_len() entries. Returns 0 or -ENOMEM; on
 * failure the watches before the failing one have advanced (their events are
 * in ev) and the others are unchanged.
 */
int po_watchset_eval(struct po_watchset *set, const struct po_snapshot *s,
                     uint64_t own_netns, struct po_watch_values *values,
                     struct po_events *ev);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_WATCH_H */
