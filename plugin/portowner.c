/*
 * portowner: the collectd plugin. The only file that includes collectd's
 * headers: config -> init -> read -> shutdown, dispatch of values and
 * notifications, logging. Everything else is the collectd-free core
 * (include/portowner/).
 *
 *   LoadPlugin portowner
 *   <Plugin portowner>
 *     Source "auto"
 *     ProcRoot "/proc"
 *     StateFile "/var/lib/collectd/portowner.json"
 *     <Port "web">
 *       Port 80 443 "8000-8099"
 *       Protocol "tcp"
 *       Address "0.0.0.0" "::"
 *       ExpectProcess "nginx"
 *       ExpectUser "www-data"
 *       Hits 1
 *       NotifyMissingAtStart true
 *       NotifyOwnerChange true
 *       AllNamespaces false   (or "trusted", "all")
 *     </Port>
 *   </Plugin>
 *
 * Values per <Port> block (plugin instance = block name), stock types only:
 * count-sockets, count-processes, count-unowned, count-missing,
 * queue_length-accept, queue_length-accept_max. Notifications: type
 * "count", type instance "listener-<requirement>" (one per listener
 * requirement: "listener-tcp-443"), "owner_change" or "unexpected_owner"
 * (see watch.h).
 */
#include "collectd.h"

#include "plugin.h"
#include "utils/common/common.h"
#include "utils_complain.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "portowner/snapshot.h"
#include "portowner/config_value.h"
#include "portowner/fileio.h"
#include "portowner/inventory.h"
#include "portowner/proc.h"
#include "portowner/statefile.h"
#include "portowner/watch.h"

#ifndef PORTOWNER_VERSION
#define PORTOWNER_VERSION "unknown"
#endif

#define PLUGIN_NAME "portowner"
#define PFX "portowner plugin: "

/* portowner-self/...: the plugin's own cost. Not a valid <Port> name. */
#define SELF_INSTANCE "self"

/* A process whose fd directory is unreadable for a moment (it is switching
 * user) is not worth a warning: it takes DENIED_READS reads in a row. */
#define DENIED_READS 3

/* The fewest seconds between two writes of the StateFile that only change
 * owners or counts (a restart loses at most that much of them). */
#define STATE_PACE_MIN 10.0

/* What po_config builds from <Plugin portowner>: init and read use it,
 * shutdown frees it. */
struct plugin_config {
  struct po_watchset *watches; /* one watch per <Port> block; a watch also
                                  keeps its conditions' state, which each
                                  read advances and the StateFile saves */
  enum po_source source;       /* Source */
  char *proc_root;             /* ProcRoot; NULL: "/proc" */
  char *state_file;            /* StateFile; NULL: none */
  double full_scan_interval;   /* FullScanInterval, in seconds */
  bool report_self;            /* ReportSelf: dispatch portowner-self/... */
  const char *resolver;        /* Resolver: "auto", "bpf" or "proc" */
};

static struct plugin_config conf = {
    .source = PO_SOURCE_AUTO,
    .full_scan_interval = PO_FULL_SCAN_INTERVAL_DEFAULT,
    .report_self = true,
    .resolver = "auto",
};

/* What init sets up for the reads, and shutdown frees. */
struct plugin_run {
  struct po_ctx *ctx;             /* NULL until init has run */
  struct po_query query;          /* what every snapshot asks for: the
                                     sockets of every block */
  struct po_watch_values *values; /* one per block, filled by each read */
  struct po_events events;        /* one read's notifications */
  char boot_id[64];               /* tells the StateFile's pids apart */
  bool have_boot_id;
  bool sees_all; /* CAP_SYS_PTRACE: no process is hidden from us */
  uint64_t full_reads, incremental_reads; /* portowner-self/operations-* */
  int state_save_error; /* the last po_state_save() error, said once */
  double state_pace;    /* seconds between writes of what is not urgent */
  c_complain_t snapshot_complaint; /* "cannot read the listening sockets" */
  /* tell_once(): what a snapshot says, said once per run. */
  unsigned denied_reads; /* reads in a row with an fd directory denied */
  bool told_denied, told_proc_fallback, told_ns_failed, told_malformed;
  bool told_ns_untrusted;
  bool told_deferred;              /* a full walk for new sockets put off */
  struct po_inv_events inv_events; /* one read's inventory notifications */
  bool told_untracked;             /* an inventory's endpoint cap reached */
};

static struct plugin_run run = {
    .snapshot_complaint = C_COMPLAIN_INIT_STATIC,
};

/* ---- config -----------------------------------------------------------------
 *
 * Single values are read with collectd's cf_util_get_*, so that they accept
 * what the rest of collectd does (a boolean: true, yes, on, "true", ...).
 * cf_util_get_* logs its own line, which does not say where: the line that
 * follows it here names the block, the key and the value. Options that take
 * a list of values (Port 80 443) are read value by value here.
 */

/* The value of a config item as the user wrote it, for error messages. */
static const char *value_text(const oconfig_value_t *v, char *buf,
                              size_t size) {
  switch (v->type) {
  case OCONFIG_TYPE_STRING:
    snprintf(buf, size, "\"%s\"", v->value.string);
    break;
  case OCONFIG_TYPE_NUMBER:
    /* Every digit a number has in a config (1000001, not 1e+06). */
    snprintf(buf, size, "%.15g", v->value.number);
    break;
  case OCONFIG_TYPE_BOOLEAN:
    snprintf(buf, size, "%s", v->value.boolean ? "true" : "false");
    break;
  default:
    snprintf(buf, size, "(?)");
  }
  return buf;
}

/* Where a bad item is and what it says, for its error line:
 * <Port "web"> Hits 0 in a block, FullScanInterval -1 at the top level
 * (block NULL). */
static const char *item_text_in(const char *kind, const char *block,
                                const oconfig_item_t *ci, char *buf,
                                size_t size) {
  if (block)
    snprintf(buf, size, "<%s \"%s\"> %s", kind, block, ci->key);
  else
    snprintf(buf, size, "%s", ci->key);
  for (int i = 0; i < ci->values_num; i++) {
    size_t len = strlen(buf);
    char v[128];

    snprintf(buf + len, size - len, " %s",
             value_text(&ci->values[i], v, sizeof(v)));
  }
  return buf;
}

/* item_text_in() of a <Port> block's item. */
static const char *item_text(const char *block, const oconfig_item_t *ci,
                             char *buf, size_t size) {
  return item_text_in("Port", block, ci, buf, size);
}

/* Appends key to the ", "-separated list in buf: the known options. */
static void list_add(char *buf, size_t size, const char *key) {
  size_t len = strlen(buf);

  snprintf(buf + len, size - len, "%s%s", len ? ", " : "", key);
}

/* One boolean, in any form collectd accepts, of an item of a <kind> block
 * (block NULL: a top-level option). */
static int config_bool_in(const char *kind, const char *block,
                          const oconfig_item_t *ci, bool *b) {
  char text[256];

  if (cf_util_get_boolean(ci, b) == 0) {
    /* collectd has warned of the quotes, without naming the block. */
    if (block && ci->values[0].type == OCONFIG_TYPE_STRING)
      WARNING(PFX "%s: write the boolean without quotes (true or false)",
              item_text_in(kind, block, ci, text, sizeof(text)));
    return 0;
  }
  ERROR(PFX "%s: needs exactly one boolean value (true or false)",
        item_text_in(kind, block, ci, text, sizeof(text)));
  return -1;
}

static int config_bool(const char *block, const oconfig_item_t *ci, bool *b) {
  return config_bool_in("Port", block, ci, b);
}

/* ---- the options of a <Port> block: each reads its values into the
 * block's watch, logs what is wrong, and returns 0 or -1. */

static int read_ports(const char *block, const oconfig_item_t *ci,
                      struct po_watch *w) {
  int errors = 0;

  if (ci->values_num < 1) {
    ERROR(PFX "<Port \"%s\"> Port: needs at least one port, range or service "
              "name",
          block);
    return -1;
  }
  for (int i = 0; i < ci->values_num; i++) {
    const oconfig_value_t *v = &ci->values[i];
    char text[256];
    const char *bad = NULL;
    int err;

    value_text(v, text, sizeof(text));
    if (v->type == OCONFIG_TYPE_NUMBER) {
      err = po_watch_port_add_number(w, v->value.number);
    } else if (v->type == OCONFIG_TYPE_STRING) {
      err = po_watch_port_add_string(w, v->value.string, &bad);
    } else {
      ERROR(PFX "<Port \"%s\"> Port %s: not a port number, range or service "
                "name",
            block, text);
      errors++;
      continue;
    }
    switch (err) {
    case 0:
      continue;
    case -ERANGE:
      ERROR(PFX "<Port \"%s\"> Port %s: out of range (ports are 1-65535)",
            block, text);
      break;
    case -ENOENT:
      /* bad is the item in the rest of the list: name the item alone. */
      if (!bad)
        bad = v->value.string;
      ERROR(PFX "<Port \"%s\"> Port %s: unknown service name \"%.*s\" (not "
                "in /etc/services)",
            block, text, (int)strcspn(bad, ","), bad);
      break;
    case -ENOMEM:
      ERROR(PFX "<Port \"%s\"> Port %s: out of memory", block, text);
      break;
    default:
      if (v->type == OCONFIG_TYPE_NUMBER)
        ERROR(PFX "<Port \"%s\"> Port %s: not a whole port number", block,
              text);
      else
        ERROR(PFX "<Port \"%s\"> Port %s: not a port, a range LOW-HIGH with "
                  "LOW <= HIGH, or a service name",
              block, text);
    }
    errors++;
  }
  return errors ? -1 : 0;
}

/* The string values of ci, each passed to add(); numbers too when
 * numbers_ok (ExpectUser 0). */
static int
config_strings(const char *block, const oconfig_item_t *ci, int numbers_ok,
               int (*add)(const char *block, const oconfig_item_t *ci,
                          const char *s, struct po_watch *w),
               struct po_watch *w) {
  int errors = 0;

  if (ci->values_num < 1) {
    ERROR(PFX "<Port \"%s\"> %s: needs at least one value", block, ci->key);
    return -1;
  }
  for (int i = 0; i < ci->values_num; i++) {
    const oconfig_value_t *v = &ci->values[i];
    char text[64];

    if (v->type == OCONFIG_TYPE_STRING) {
      errors += add(block, ci, v->value.string, w) != 0;
    } else if (numbers_ok && v->type == OCONFIG_TYPE_NUMBER &&
               v->value.number >= 0 && v->value.number < 4294967295.0 &&
               v->value.number == (double)(uint32_t)v->value.number) {
      snprintf(text, sizeof(text), "%u", (unsigned)v->value.number);
      errors += add(block, ci, text, w) != 0;
    } else {
      ERROR(PFX "<Port \"%s\"> %s %s: needs a string", block, ci->key,
            value_text(v, text, sizeof(text)));
      errors++;
    }
  }
  return errors ? -1 : 0;
}

static int add_protocol(const char *block, const oconfig_item_t *ci,
                        const char *s, struct po_watch *w) {
  if (po_watch_protocol_add(w, s) == 0)
    return 0;
  ERROR(PFX "<Port \"%s\"> %s \"%s\": unknown protocol (tcp, tcp4, tcp6, udp, "
            "udp4, udp6 or all)",
        block, ci->key, s);
  return -1;
}

static int add_address(const char *block, const oconfig_item_t *ci,
                       const char *s, struct po_watch *w) {
  int err = po_watch_address_add(w, s);

  if (err == 0)
    return 0;
  if (err == -ENOMEM)
    ERROR(PFX "<Port \"%s\"> %s \"%s\": out of memory", block, ci->key, s);
  else
    ERROR(PFX "<Port \"%s\"> %s \"%s\": not an IPv4 or IPv6 address", block,
          ci->key, s);
  return -1;
}

static int add_process(const char *block, const oconfig_item_t *ci,
                       const char *s, struct po_watch *w) {
  char why[256];
  int err = po_watch_expect_process_add(w, s, why, sizeof(why));

  if (err == 0)
    return 0;
  if (err == -ENOMEM)
    ERROR(PFX "<Port \"%s\"> %s \"%s\": out of memory", block, ci->key, s);
  else if (why[0] && err != -EINVAL && err != -E2BIG) /* a path */
    ERROR(PFX "<Port \"%s\"> %s \"%.200s\": %s", block, ci->key, s, why);
  else if (why[0]) /* the value cut: collectd cuts log lines at 1023 bytes */
    ERROR(PFX "<Port \"%s\"> %s \"%.100s%s\": %s regular expression: %s", block,
          ci->key, s, strlen(s) > 100 ? "..." : "",
          err == -E2BIG ? "refused" : "bad", why);
  else
    ERROR(PFX "<Port \"%s\"> %s \"%s\": needs a process name or /REGEX/", block,
          ci->key, s);
  return -1;
}

static int add_user(const char *block, const oconfig_item_t *ci, const char *s,
                    struct po_watch *w) {
  int err = po_watch_expect_user_add(w, s);

  if (err == 0)
    return 0;
  ERROR(PFX "<Port \"%s\"> %s \"%s\": %s", block, ci->key, s,
        err == -ENOMEM ? "out of memory" : "needs a user name or uid");
  return -1;
}

/* ExpectUnit, ExpectCgroup: one glob each. */
static int add_glob(const char *block, const oconfig_item_t *ci, const char *s,
                    struct po_watch *w) {
  int unit = strcasecmp(ci->key, "ExpectUnit") == 0;
  int err =
      unit ? po_watch_expect_unit_add(w, s) : po_watch_expect_cgroup_add(w, s);

  if (err == 0)
    return 0;
  if (err == -ENOMEM)
    ERROR(PFX "<Port \"%s\"> %s \"%.100s\": out of memory", block, ci->key, s);
  else
    ERROR(PFX "<Port \"%s\"> %s \"%.100s%s\": needs a glob of %s (1 to %d "
              "bytes%s)",
          block, ci->key, s, strlen(s) > 100 ? "..." : "",
          unit ? "unit names" : "cgroup paths", PO_GLOB_MAX,
          unit ? "" : ", starting with / or *");
  return -1;
}

static int read_globs(const char *block, const oconfig_item_t *ci,
                      struct po_watch *w) {
  return config_strings(block, ci, 0, add_glob, w);
}

static int read_protocols(const char *block, const oconfig_item_t *ci,
                          struct po_watch *w) {
  return config_strings(block, ci, 0, add_protocol, w);
}

static int read_addresses(const char *block, const oconfig_item_t *ci,
                          struct po_watch *w) {
  return config_strings(block, ci, 0, add_address, w);
}

static int read_processes(const char *block, const oconfig_item_t *ci,
                          struct po_watch *w) {
  return config_strings(block, ci, 0, add_process, w);
}

static int read_users(const char *block, const oconfig_item_t *ci,
                      struct po_watch *w) {
  return config_strings(block, ci, 1, add_user, w);
}

static int read_hits(const char *block, const oconfig_item_t *ci,
                     struct po_watch *w) {
  double v;
  unsigned hits;
  char text[256];

  if (cf_util_get_double(ci, &v) == 0 && po_config_hits(v, &hits) == 0 &&
      po_watch_set_hits(w, hits) == 0)
    return 0;
  ERROR(PFX "%s: needs one whole number from 1 to %u",
        item_text(block, ci, text, sizeof(text)), PO_HITS_MAX);
  return -1;
}

/* A boolean option, set with set(). */
static int read_flag(const char *block, const oconfig_item_t *ci,
                     struct po_watch *w, void (*set)(struct po_watch *, int)) {
  bool b;

  if (config_bool(block, ci, &b) != 0)
    return -1;
  set(w, b);
  return 0;
}

static int read_notify_missing_at_start(const char *block,
                                        const oconfig_item_t *ci,
                                        struct po_watch *w) {
  return read_flag(block, ci, w, po_watch_set_notify_missing_at_start);
}

static int read_notify_owner_change(const char *block, const oconfig_item_t *ci,
                                    struct po_watch *w) {
  return read_flag(block, ci, w, po_watch_set_notify_owner_change);
}

static int read_owner_change_hits(const char *block, const oconfig_item_t *ci,
                                  struct po_watch *w) {
  double v;
  unsigned hits;
  char text[256];

  if (cf_util_get_double(ci, &v) == 0 && po_config_hits(v, &hits) == 0 &&
      po_watch_set_owner_change_hits(w, hits) == 0)
    return 0;
  ERROR(PFX "%s: needs one whole number from 1 to %u",
        item_text(block, ci, text, sizeof(text)), PO_HITS_MAX);
  return -1;
}

static int read_notify_restart(const char *block, const oconfig_item_t *ci,
                               struct po_watch *w) {
  return read_flag(block, ci, w, po_watch_set_notify_restart);
}

/* AllNamespaces "trusted" | "all" | a boolean: true is "trusted" (a
 * config written before the words existed must not start counting every
 * user's own namespace), false the caller's own namespace only. */
static int read_all_namespaces(const char *block, const oconfig_item_t *ci,
                               struct po_watch *w) {
  static const char *const booleans[] = {"true",  "yes", "on",
                                         "false", "no",  "off"};
  int one = ci->values_num == 1;
  const char *word = NULL;
  int scope, boolean = one && ci->values[0].type == OCONFIG_TYPE_BOOLEAN;
  char text[256];
  bool b;

  if (one && ci->values[0].type == OCONFIG_TYPE_STRING)
    word = ci->values[0].value.string;

  if (word && po_config_namespaces(word, &scope) == 0) {
    po_watch_set_all_namespaces(w, scope);
    return 0;
  }
  for (size_t i = 0; word && i < sizeof(booleans) / sizeof(booleans[0]); i++)
    boolean |= strcasecmp(word, booleans[i]) == 0;
  if (boolean && config_bool(block, ci, &b) == 0) {
    po_watch_set_all_namespaces(w, b ? PO_NS_TRUSTED : PO_NS_OWN);
    return 0;
  }
  if (!boolean)
    ERROR(PFX "%s: needs one of \"trusted\", \"all\", true (the same as "
              "\"trusted\") or false",
          item_text(block, ci, text, sizeof(text)));
  return -1;
}

/* The options of a <Port> block, in the order of the known list. */
static const struct port_option {
  const char *key;
  int (*read)(const char *block, const oconfig_item_t *ci, struct po_watch *w);
} port_options[] = {
    {"Port", read_ports},
    {"Protocol", read_protocols},
    {"Address", read_addresses},
    {"ExpectProcess", read_processes},
    {"ExpectUser", read_users},
    {"ExpectUnit", read_globs},
    {"ExpectCgroup", read_globs},
    {"Hits", read_hits},
    {"NotifyMissingAtStart", read_notify_missing_at_start},
    {"NotifyOwnerChange", read_notify_owner_change},
    {"OwnerChangeHits", read_owner_change_hits},
    {"NotifyRestart", read_notify_restart},
    {"AllNamespaces", read_all_namespaces},
};

/* One option of a <Port> block. */
static int config_port_option(const char *block, const oconfig_item_t *ci,
                              struct po_watch *w) {
  char known[256] = "";

  for (size_t i = 0; i < STATIC_ARRAY_SIZE(port_options); i++)
    if (strcasecmp(ci->key, port_options[i].key) == 0)
      return port_options[i].read(block, ci, w);
  for (size_t i = 0; i < STATIC_ARRAY_SIZE(port_options); i++)
    list_add(known, sizeof(known), port_options[i].key);
  ERROR(PFX "<Port \"%s\">: unknown option \"%s\" (known: %s)", block, ci->key,
        known);
  return -1;
}

/* One <Port "NAME"> block, added to watches. */
static int config_port(const oconfig_item_t *ci, struct po_watchset *watches) {
  const char *name;
  struct po_watch *w;
  int errors = 0, err;

  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    ERROR(PFX "<Port> needs exactly one string argument: the block's name, "
              "e.g. <Port \"web\">");
    return -1;
  }
  name = ci->values[0].value.string;
  if (strcmp(name, SELF_INSTANCE) == 0) {
    ERROR(PFX "<Port \"%s\">: bad block name: \"%s\" is the plugin instance "
              "of portowner's own metrics (portowner-%s/...): choose another",
          name, name, name);
    return -1;
  }
  for (size_t i = 0; i < po_watchset_inventories(watches); i++)
    if (strcmp(po_inventory_name(po_watchset_inventory(watches, i)), name) ==
        0) {
      ERROR(PFX "<Port \"%s\">: bad block name: it is the plugin instance of "
                "an <Inventory> block: choose another",
            name);
      return -1;
    }
  w = po_watch_new(name);
  if (!w) {
    if (errno == EINVAL)
      ERROR(PFX "<Port \"%s\">: bad block name: it is the plugin instance, so "
                "it must be 1 to %d bytes without '/'",
            name, PO_WATCH_NAME_MAX - 1);
    else
      ERROR(PFX "<Port \"%s\">: out of memory", name);
    return -1;
  }
  for (int i = 0; i < ci->children_num; i++) {
    const oconfig_item_t *c = &ci->children[i];

    errors += config_port_option(name, c, w) != 0;
    if (c->children_num > 0) {
      ERROR(PFX "<Port \"%s\">: \"%s\" is an option, not a block", name,
            c->key);
      errors++;
    }
  }
  if (errors) {
    po_watch_free(w);
    return -1;
  }
  err = po_watch_finish(w);
  if (err == -EDESTADDRREQ)
    ERROR(PFX "<Port \"%s\">: no Port given: say which port(s) to watch, "
              "e.g. Port 80",
          name);
  else if (err)
    ERROR(PFX "<Port \"%s\">: out of memory", name);
  if (!err) {
    err = po_watchset_add(watches, w);
    if (err == -EEXIST)
      ERROR(PFX "<Port \"%s\">: a <Port> block of that name already exists: "
                "block names must be unique",
            name);
    else if (err)
      ERROR(PFX "<Port \"%s\">: out of memory", name);
  }
  if (err) {
    po_watch_free(w);
    return -1;
  }
  return 0;
}

/* ---- the options of an <Inventory> block: each reads its values into the
 * block's inventory, logs what is wrong, and returns 0 or -1. */

/* A port value (a number, or a string of port items) as text, into buf;
 * NULL (and an error said) when it is neither. */
static const char *inv_port_text(const char *block, const oconfig_item_t *ci,
                                 const oconfig_value_t *v, char *buf,
                                 size_t size) {
  char text[128];
  struct po_range r;

  if (v->type == OCONFIG_TYPE_STRING)
    return v->value.string;
  if (v->type == OCONFIG_TYPE_NUMBER &&
      po_config_port_number(v->value.number, &r) == 0) {
    snprintf(buf, size, "%u", (unsigned)r.lo);
    return buf;
  }
  ERROR(PFX "<Inventory \"%s\"> %s %s: not a port number (1-65535), range or "
            "service name",
        block, ci->key, value_text(v, text, sizeof(text)));
  return NULL;
}

static void inv_port_error(const char *block, const oconfig_item_t *ci,
                           const char *text, const char *bad, int err) {
  if (err == -ERANGE)
    ERROR(PFX "<Inventory \"%s\"> %s \"%s\": out of range (ports are "
              "1-65535)",
          block, ci->key, text);
  else if (err == -ENOENT)
    ERROR(PFX "<Inventory \"%s\"> %s \"%s\": unknown service name \"%.*s\" "
              "(not in /etc/services)",
          block, ci->key, text, (int)strcspn(bad ? bad : text, ","),
          bad ? bad : text);
  else if (err == -ENOMEM)
    ERROR(PFX "<Inventory \"%s\"> %s: out of memory", block, ci->key);
  else
    ERROR(PFX "<Inventory \"%s\"> %s \"%s\": not a port, a range LOW-HIGH "
              "with LOW <= HIGH, or a service name",
          block, ci->key, text);
}

static int inv_read_ports(const char *block, const oconfig_item_t *ci,
                          struct po_inventory *inv) {
  int errors = 0;

  if (ci->values_num < 1) {
    ERROR(PFX "<Inventory \"%s\"> Port: needs at least one port, range or "
              "service name",
          block);
    return -1;
  }
  for (int i = 0; i < ci->values_num; i++) {
    char num[16];
    const char *text =
        inv_port_text(block, ci, &ci->values[i], num, sizeof(num));
    const char *bad = NULL;
    int err;

    if (!text) {
      errors++;
      continue;
    }
    err = po_inventory_port_add_string(inv, text, &bad);
    if (err) {
      inv_port_error(block, ci, text, bad, err);
      errors++;
    }
  }
  return errors ? -1 : 0;
}

static int inv_read_protocols(const char *block, const oconfig_item_t *ci,
                              struct po_inventory *inv) {
  int errors = 0;

  if (ci->values_num < 1) {
    ERROR(PFX "<Inventory \"%s\"> Protocol: needs at least one value", block);
    return -1;
  }
  for (int i = 0; i < ci->values_num; i++) {
    const oconfig_value_t *v = &ci->values[i];
    char text[128];

    if (v->type == OCONFIG_TYPE_STRING &&
        po_inventory_protocol_add(inv, v->value.string) == 0)
      continue;
    ERROR(PFX "<Inventory \"%s\"> Protocol %s: unknown protocol (tcp, tcp4, "
              "tcp6, udp, udp4, udp6 or all)",
          block, value_text(v, text, sizeof(text)));
    errors++;
  }
  return errors ? -1 : 0;
}

/* Allow PROGRAM USER [PORT ...]: PROGRAM an exe basename or "*", USER a
 * name, a uid or "*", the ports (numbers, ranges, service names) any port
 * when none is given. */
static int inv_read_allow(const char *block, const oconfig_item_t *ci,
                          struct po_inventory *inv) {
  char text[256], num[16], user[16];
  const char *prog, *who;
  int errors = 0, err;

  item_text_in("Inventory", block, ci, text, sizeof(text));
  if (ci->values_num < 2 || ci->values[0].type != OCONFIG_TYPE_STRING ||
      (ci->values[1].type != OCONFIG_TYPE_STRING &&
       ci->values[1].type != OCONFIG_TYPE_NUMBER)) {
    ERROR(PFX "%s: needs a program (the executable's name, or \"*\"), a user "
              "(a name, a uid, or \"*\") and optionally ports, e.g. Allow "
              "\"sshd\" \"root\" 22",
          text);
    return -1;
  }
  prog = ci->values[0].value.string;
  if (ci->values[1].type == OCONFIG_TYPE_NUMBER) {
    double u = ci->values[1].value.number;

    if (!(u >= 0 && u < 4294967295.0 && u == (double)(uint32_t)u)) {
      ERROR(PFX "%s: the user is not a uid", text);
      return -1;
    }
    snprintf(user, sizeof(user), "%u", (unsigned)u);
    who = user;
  } else {
    who = ci->values[1].value.string;
  }
  if (ci->values_num == 2)
    err = po_inventory_allow_add(inv, prog, who, NULL, NULL);
  else
    err = 0;
  /* Each port value is an Allow of its own with the same program and
   * user: the same as one Allow with every port. */
  for (int i = 2; i < ci->values_num && !err; i++) {
    const char *ports =
        inv_port_text(block, ci, &ci->values[i], num, sizeof(num));
    const char *bad = NULL;

    if (!ports) {
      errors++;
      continue;
    }
    err = po_inventory_allow_add(inv, prog, who, ports, &bad);
    if (err && bad) { /* the port item is bad, not the program or user */
      inv_port_error(block, ci, ports, bad, err);
      errors++;
      err = 0;
    }
  }
  if (err == -EINVAL)
    ERROR(PFX "%s: the program is the executable's name (no '/'; \"*\" for "
              "any) and neither it nor the user may be empty",
          text);
  else if (err == -ENOMEM)
    ERROR(PFX "%s: out of memory", text);
  return err || errors ? -1 : 0;
}

/* AllowUnit GLOB [GLOB ...]: unit names (the unit, the user unit, the
 * container's label), as ExpectUnit. */
static int inv_read_allow_unit(const char *block, const oconfig_item_t *ci,
                               struct po_inventory *inv) {
  int errors = 0;

  if (ci->values_num < 1) {
    ERROR(PFX "<Inventory \"%s\"> AllowUnit: needs at least one glob of unit "
              "names, e.g. AllowUnit \"postgresql@*.service\"",
          block);
    return -1;
  }
  for (int i = 0; i < ci->values_num; i++) {
    const oconfig_value_t *v = &ci->values[i];
    char text[128];
    int err = v->type == OCONFIG_TYPE_STRING
                  ? po_inventory_allow_unit_add(inv, v->value.string)
                  : -EINVAL;

    if (err == 0)
      continue;
    if (err == -ENOMEM)
      ERROR(PFX "<Inventory \"%s\"> AllowUnit: out of memory", block);
    else
      ERROR(PFX "<Inventory \"%s\"> AllowUnit %.100s: needs a glob of unit "
                "names (a string of 1 to %d bytes)",
            block, value_text(v, text, sizeof(text)), PO_GLOB_MAX);
    errors++;
  }
  return errors ? -1 : 0;
}

static int inv_read_hits(const char *block, const oconfig_item_t *ci,
                         struct po_inventory *inv) {
  double v;
  unsigned hits;
  char text[256];

  if (cf_util_get_double(ci, &v) == 0 && po_config_hits(v, &hits) == 0 &&
      po_inventory_set_hits(inv, hits) == 0)
    return 0;
  ERROR(PFX "%s: needs one whole number from 1 to %u",
        item_text_in("Inventory", block, ci, text, sizeof(text)), PO_HITS_MAX);
  return -1;
}

static int inv_read_flag(const char *block, const oconfig_item_t *ci,
                         struct po_inventory *inv,
                         void (*set)(struct po_inventory *, int)) {
  bool b;

  if (config_bool_in("Inventory", block, ci, &b) != 0)
    return -1;
  set(inv, b);
  return 0;
}

static int inv_read_learn(const char *block, const oconfig_item_t *ci,
                          struct po_inventory *inv) {
  return inv_read_flag(block, ci, inv, po_inventory_set_learn);
}

static int inv_read_notify_gone(const char *block, const oconfig_item_t *ci,
                                struct po_inventory *inv) {
  return inv_read_flag(block, ci, inv, po_inventory_set_notify_gone);
}

static int inv_read_ignore_ephemeral(const char *block,
                                     const oconfig_item_t *ci,
                                     struct po_inventory *inv) {
  return inv_read_flag(block, ci, inv, po_inventory_set_ignore_ephemeral);
}

/* The options of an <Inventory> block, in the order of the known list. */
static const struct inventory_option {
  const char *key;
  int (*read)(const char *block, const oconfig_item_t *ci,
              struct po_inventory *inv);
} inventory_options[] = {
    {"Protocol", inv_read_protocols},
    {"Port", inv_read_ports},
    {"Allow", inv_read_allow},
    {"AllowUnit", inv_read_allow_unit},
    {"Learn", inv_read_learn},
    {"Hits", inv_read_hits},
    {"NotifyGone", inv_read_notify_gone},
    {"IgnoreEphemeral", inv_read_ignore_ephemeral},
};

/* One <Inventory "NAME"> block, added to c->inventories. */
static int config_inventory(const oconfig_item_t *ci, struct plugin_config *c) {
  struct po_inventory *inv;
  const char *name;
  char known[256] = "";
  int errors = 0;

  if (ci->values_num != 1 || ci->values[0].type != OCONFIG_TYPE_STRING) {
    ERROR(PFX "<Inventory> needs exactly one string argument: the block's "
              "name, e.g. <Inventory \"host\">");
    return -1;
  }
  name = ci->values[0].value.string;
  if (strcmp(name, SELF_INSTANCE) == 0 ||
      (c->watches && po_watchset_find(c->watches, name))) {
    ERROR(PFX "<Inventory \"%s\">: bad block name: it is the plugin instance "
              "of %s: choose another",
          name,
          strcmp(name, SELF_INSTANCE) == 0 ? "portowner's own metrics"
                                           : "a <Port> block");
    return -1;
  }
  for (size_t i = 0; i < po_watchset_inventories(c->watches); i++)
    if (strcmp(po_inventory_name(po_watchset_inventory(c->watches, i)), name) ==
        0) {
      ERROR(PFX "<Inventory \"%s\">: an <Inventory> block of that name "
                "already exists: block names must be unique",
            name);
      return -1;
    }
  inv = po_inventory_new(name);
  if (!inv) {
    if (errno == EINVAL)
      ERROR(PFX "<Inventory \"%s\">: bad block name: it is the plugin "
                "instance, so it must be 1 to %d bytes without '/'",
            name, PO_WATCH_NAME_MAX - 1);
    else
      ERROR(PFX "<Inventory \"%s\">: out of memory", name);
    return -1;
  }
  for (size_t i = 0; i < STATIC_ARRAY_SIZE(inventory_options); i++)
    list_add(known, sizeof(known), inventory_options[i].key);
  for (int i = 0; i < ci->children_num; i++) {
    const oconfig_item_t *o = &ci->children[i];
    size_t k = 0;

    while (k < STATIC_ARRAY_SIZE(inventory_options) &&
           strcasecmp(o->key, inventory_options[k].key) != 0)
      k++;
    if (o->children_num > 0) {
      ERROR(PFX "<Inventory \"%s\">: \"%s\" is an option, not a block", name,
            o->key);
      errors++;
    } else if (k == STATIC_ARRAY_SIZE(inventory_options)) {
      ERROR(PFX "<Inventory \"%s\">: unknown option \"%s\" (known: %s)", name,
            o->key, known);
      errors++;
    } else {
      errors += inventory_options[k].read(name, o, inv) != 0;
    }
  }
  if (!errors && (po_inventory_finish(inv) != 0 ||
                  po_watchset_add_inventory(c->watches, inv) != 0)) {
    ERROR(PFX "<Inventory \"%s\">: out of memory", name);
    errors++;
  }
  if (errors) {
    po_inventory_free(inv);
    return -1;
  }
  return 0;
}

/* ---- the top-level options: each reads its value into *c, logs what is
 * wrong, and returns 0 or -1. */

/* A top-level option's single non-empty string, into *out. */
static int config_string(const oconfig_item_t *ci, char **out) {
  char *s = NULL;
  char text[256];

  if (cf_util_get_string(ci, &s) == 0 && s[0]) {
    free(*out);
    *out = s;
    return 0;
  }
  free(s);
  ERROR(PFX "%s: needs exactly one non-empty string",
        item_text(NULL, ci, text, sizeof(text)));
  return -1;
}

static int check_dir(const char *key, const char *dir) {
  struct stat sb;

  if (stat(dir, &sb) != 0) {
    ERROR(PFX "%s \"%s\": %s", key, dir, STRERRNO);
    return -1;
  }
  if (!S_ISDIR(sb.st_mode)) {
    ERROR(PFX "%s \"%s\": not a directory", key, dir);
    return -1;
  }
  return 0;
}

static int check_state_file(const char *path) {
  const char *base;
  char *dir;
  struct stat sb;
  int err = po_path_dir(path, &dir, &base);

  if (err) {
    ERROR(PFX "StateFile \"%s\": %s", path,
          err == -EISDIR   ? "names a directory, not a file"
          : err == -EINVAL ? "empty"
                           : STRERROR(-err));
    return -1;
  }
  if (stat(dir, &sb) != 0) {
    ERROR(PFX "StateFile \"%s\": its directory \"%s\": %s", path, dir,
          STRERRNO);
    err = -1;
  } else if (!S_ISDIR(sb.st_mode)) {
    ERROR(PFX "StateFile \"%s\": \"%s\" is not a directory", path, dir);
    err = -1;
  }
  free(dir);
  return err;
}

static int read_source(const oconfig_item_t *ci, struct plugin_config *c) {
  char *s = NULL;
  int err = config_string(ci, &s);

  if (!err && po_config_source(s, &c->source) != 0) {
    ERROR(PFX "Source \"%s\": unknown source (auto, netlink or proc)", s);
    err = -1;
  }
  free(s);
  return err;
}

static int read_proc_root(const oconfig_item_t *ci, struct plugin_config *c) {
  if (config_string(ci, &c->proc_root) != 0)
    return -1;
  return check_dir("ProcRoot", c->proc_root);
}

static int read_state_file(const oconfig_item_t *ci, struct plugin_config *c) {
  if (config_string(ci, &c->state_file) != 0)
    return -1;
  return check_state_file(c->state_file);
}

static int read_full_scan_interval(const oconfig_item_t *ci,
                                   struct plugin_config *c) {
  double v;
  char text[256];

  if (cf_util_get_double(ci, &v) == 0 && v >= 0 && v <= 86400) {
    c->full_scan_interval = v;
    return 0;
  }
  ERROR(PFX "%s: needs one number of seconds from 0 (every read walks every "
            "process) to 86400",
        item_text(NULL, ci, text, sizeof(text)));
  return -1;
}

static int read_resolver(const oconfig_item_t *ci, struct plugin_config *c) {
  static const char *const names[] = {"auto", "bpf", "proc"};
  char text[256];

  if (ci->values_num == 1 && ci->values[0].type == OCONFIG_TYPE_STRING)
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
      if (strcasecmp(ci->values[0].value.string, names[i]) == 0) {
        c->resolver = names[i];
        return 0;
      }
  ERROR(PFX "%s: needs one of \"auto\" (BPF when it loads, else the "
            "readlink walk of /proc), \"bpf\" or \"proc\"",
        item_text(NULL, ci, text, sizeof(text)));
  return -1;
}

static int read_report_self(const oconfig_item_t *ci, struct plugin_config *c) {
  return config_bool(NULL, ci, &c->report_self);
}

/* The top-level options, in the order of the known list; then come the
 * <Port "NAME"> blocks. */
static const struct global_option {
  const char *key;
  int (*read)(const oconfig_item_t *ci, struct plugin_config *c);
} global_options[] = {
    {"Source", read_source},
    {"ProcRoot", read_proc_root},
    {"StateFile", read_state_file},
    {"FullScanInterval", read_full_scan_interval},
    {"Resolver", read_resolver},
    {"ReportSelf", read_report_self},
};

/* One top-level option (not a block). */
static int config_global_option(const oconfig_item_t *ci,
                                struct plugin_config *c) {
  char known[256] = "";

  for (size_t i = 0; i < STATIC_ARRAY_SIZE(global_options); i++)
    if (strcasecmp(ci->key, global_options[i].key) == 0)
      return global_options[i].read(ci, c);
  for (size_t i = 0; i < STATIC_ARRAY_SIZE(global_options); i++)
    list_add(known, sizeof(known), global_options[i].key);
  list_add(known, sizeof(known), "<Port \"NAME\">");
  list_add(known, sizeof(known), "<Inventory \"NAME\">");
  ERROR(PFX "unknown option \"%s\" (known: %s)", ci->key, known);
  return -1;
}

/* <Plugin portowner>, into conf. */
static int po_config(oconfig_item_t *ci) {
  int errors = 0;

  if (!conf.watches) {
    conf.watches = po_watchset_new();
    if (!conf.watches) {
      ERROR(PFX "out of memory");
      return -1;
    }
  }
  for (int i = 0; i < ci->children_num; i++) {
    const oconfig_item_t *c = &ci->children[i];

    if (strcasecmp(c->key, "Port") == 0) {
      errors += config_port(c, conf.watches) != 0;
    } else if (strcasecmp(c->key, "Inventory") == 0) {
      errors += config_inventory(c, &conf) != 0;
    } else if (c->children_num > 0) {
      ERROR(PFX "unknown block <%s> (known: <Port \"NAME\">, <Inventory "
                "\"NAME\">)",
            c->key);
      errors++;
    } else {
      errors += config_global_option(c, &conf) != 0;
    }
  }
  if (errors) {
    ERROR(PFX "%d error%s in the configuration: the plugin is not loaded",
          errors, errors == 1 ? "" : "s");
    return -1;
  }
  return 0;
}

/* ---- read
 * ------------------------------------------------------------------------ */

static void submit_value(const char *instance, const char *type,
                         const char *type_instance, value_t value, cdtime_t t) {
  value_list_t vl = VALUE_LIST_INIT;

  vl.values = &value;
  vl.values_len = 1;
  vl.time = t;
  sstrncpy(vl.plugin, PLUGIN_NAME, sizeof(vl.plugin));
  sstrncpy(vl.plugin_instance, instance, sizeof(vl.plugin_instance));
  sstrncpy(vl.type, type, sizeof(vl.type));
  sstrncpy(vl.type_instance, type_instance, sizeof(vl.type_instance));
  plugin_dispatch_values(&vl);
}

static void submit(const char *instance, const char *type,
                   const char *type_instance, uint64_t v, cdtime_t t) {
  submit_value(instance, type, type_instance, (value_t){.gauge = (gauge_t)v},
               t);
}

/* portowner-self: what the last read cost, and how many reads walked every
 * process (full) or only what may have changed (incremental). */
static void submit_self(const struct po_stats *st, cdtime_t t) {
  if (st->walk.kind == PO_WALK_FULL)
    run.full_reads++;
  else if (st->walk.kind == PO_WALK_INCREMENTAL)
    run.incremental_reads++;
  if (!conf.report_self)
    return;
  submit_value(SELF_INSTANCE, "duration", "scan",
               (value_t){.gauge = (gauge_t)st->scan_ns / 1e9}, t);
  submit(SELF_INSTANCE, "count", "fds_scanned", st->walk.fds, t);
  /* Of those, the remembered owners' fds read again: one per owner. */
  submit(SELF_INSTANCE, "count", "fds_verified", st->walk.verified, t);
  submit(SELF_INSTANCE, "count", "processes_scanned", st->walk.procs, t);
  /* 1 when the owners came from the BPF walk, 0 from the readlink walk. */
  submit(SELF_INSTANCE, "count", "resolver_bpf",
         po_ctx_resolver(run.ctx) == PO_RESOLVER_BPF, t);
  submit_value(SELF_INSTANCE, "operations", "full_scan",
               (value_t){.derive = (derive_t)run.full_reads}, t);
  submit_value(SELF_INSTANCE, "operations", "incremental_scan",
               (value_t){.derive = (derive_t)run.incremental_reads}, t);
}

static void notify(const struct po_event *e, cdtime_t t) {
  notification_t n = {0};
  const struct po_watch *w = e->watch;
  char type_instance[DATA_MAX_NAME_LEN];
  int bad = 0;

  n.severity = e->severity == PO_SEVERITY_FAILURE   ? NOTIF_FAILURE
               : e->severity == PO_SEVERITY_WARNING ? NOTIF_WARNING
                                                    : NOTIF_OKAY;
  n.time = t;
  sstrncpy(n.host, hostname_g, sizeof(n.host));
  sstrncpy(n.plugin, PLUGIN_NAME, sizeof(n.plugin));
  sstrncpy(n.plugin_instance, po_watch_name(w), sizeof(n.plugin_instance));
  sstrncpy(n.type, "count", sizeof(n.type));
  if (po_event_type_instance(e, type_instance, sizeof(type_instance)) != 0)
    sstrncpy(type_instance, po_event_condition(e->type), sizeof(type_instance));
  sstrncpy(n.type_instance, type_instance, sizeof(n.type_instance));
  sstrncpy(n.message, e->message, sizeof(n.message));

  bad |= plugin_notification_meta_add_string(&n, "event",
                                             po_event_type_name(e->type));
  if (e->requirement)
    bad |=
        plugin_notification_meta_add_string(&n, "requirement", e->requirement);
  bad |= plugin_notification_meta_add_string(&n, "protocol",
                                             po_watch_protocols(w));
  bad |= plugin_notification_meta_add_string(&n, "ports", po_watch_ports(w));
  if (po_watch_addresses(w))
    bad |= plugin_notification_meta_add_string(&n, "addresses",
                                               po_watch_addresses(w));
  bad |= plugin_notification_meta_add_signed_int(&n, "sockets",
                                                 (int64_t)e->sockets);
  bad |= plugin_notification_meta_add_signed_int(&n, "processes",
                                                 (int64_t)e->processes);
  bad |= plugin_notification_meta_add_string(&n, "owners", e->owners);
  bad |= plugin_notification_meta_add_signed_int(&n, "owners_total",
                                                 (int64_t)e->owners_total);
  if (e->previous_owners)
    bad |= plugin_notification_meta_add_string(&n, "previous_owners",
                                               e->previous_owners);
  if (e->units)
    bad |= plugin_notification_meta_add_string(&n, "units", e->units);
  if (bad)
    ERROR(PFX "<Port \"%s\">: could not attach all meta data to the "
              "notification (out of memory)",
          po_watch_name(w));
  plugin_dispatch_notification(&n);
  if (n.meta)
    plugin_notification_meta_free(n.meta);
}

static void notify_inventory(const struct po_inventory *inv,
                             const struct po_inv_event *e, cdtime_t t) {
  static const char *const names[] = {
      [PO_INV_UNDECLARED] = "undeclared",
      [PO_INV_UNDECLARED_END] = "undeclared_end",
      [PO_INV_GONE] = "gone",
      [PO_INV_BACK] = "back",
  };
  notification_t n = {0};
  int bad = 0;

  n.severity = e->severity == PO_SEVERITY_WARNING ? NOTIF_WARNING : NOTIF_OKAY;
  n.time = t;
  sstrncpy(n.host, hostname_g, sizeof(n.host));
  sstrncpy(n.plugin, PLUGIN_NAME, sizeof(n.plugin));
  sstrncpy(n.plugin_instance, po_inventory_name(inv),
           sizeof(n.plugin_instance));
  sstrncpy(n.type, "count", sizeof(n.type));
  sstrncpy(n.type_instance, e->type_instance, sizeof(n.type_instance));
  sstrncpy(n.message, e->message, sizeof(n.message));
  bad |= plugin_notification_meta_add_string(&n, "event", names[e->type]);
  bad |= plugin_notification_meta_add_string(&n, "endpoint", e->endpoint);
  bad |= plugin_notification_meta_add_string(&n, "program", e->program);
  bad |= plugin_notification_meta_add_string(&n, "user", e->user);
  bad |= plugin_notification_meta_add_string(&n, "owners", e->owners);
  if (bad)
    ERROR(PFX "<Inventory \"%s\">: could not attach all meta data to the "
              "notification (out of memory)",
          po_inventory_name(inv));
  plugin_dispatch_notification(&n);
  if (n.meta)
    plugin_notification_meta_free(n.meta);
}

/* Evaluates s for every inventory, dispatches their values and
 * notifications. Returns 0 or -1. */
static int read_inventories(const struct po_snapshot *s, cdtime_t now) {
  for (size_t i = 0; i < po_watchset_inventories(conf.watches); i++) {
    struct po_inventory *inv = po_watchset_inventory(conf.watches, i);
    struct po_inventory_values v;
    int err;

    po_inv_events_clear(&run.inv_events);
    err = po_inventory_eval(inv, s, s->netns, &v, &run.inv_events);
    if (err) {
      ERROR(PFX "<Inventory \"%s\">: evaluating the snapshot failed: %s",
            po_inventory_name(inv), STRERROR(-err));
      return -1;
    }
    submit(po_inventory_name(inv), "count", "listeners", v.listeners, now);
    submit(po_inventory_name(inv), "count", "undeclared", v.undeclared, now);
    if (v.untracked && !run.told_untracked) {
      WARNING(PFX "<Inventory \"%s\">: more than %d listeners: %" PRIu64
                  " are counted but not followed (never reported)",
              po_inventory_name(inv), PO_INV_ENDPOINTS_MAX, v.untracked);
      run.told_untracked = true;
    }
    for (size_t k = 0; k < run.inv_events.len; k++)
      notify_inventory(inv, &run.inv_events.v[k], now);
  }
  po_inv_events_clear(&run.inv_events);
  return 0;
}

/* What a snapshot says that a user should hear about, once. */
static void tell_once(const struct po_stats *st) {
  /* Without CAP_SYS_PTRACE, a socket of another user with no owner may be
   * held by a process /proc hides from us (hidepid): nothing is "denied". */
  int hidden = !run.sees_all && st->unowned_foreign > 0;

  run.denied_reads = st->walk.denied > 0 || hidden ? run.denied_reads + 1 : 0;
  if (run.denied_reads >= DENIED_READS && !run.told_denied &&
      !st->walk.denied) {
    run.told_denied = 1;
    WARNING(PFX
            "could not read the open files (/proc/PID/fd) of the "
            "processes holding %llu socket%s of other users: /proc may "
            "hide them (hidepid), so these sockets count as unowned. Run "
            "collectd as root, or grant it CAP_DAC_READ_SEARCH and "
            "CAP_SYS_PTRACE (systemd: AmbientCapabilities=CAP_DAC_READ_SEARCH "
            "CAP_SYS_PTRACE). Said once.",
            (unsigned long long)st->unowned_foreign,
            st->unowned_foreign == 1 ? "" : "s");
  } else if (run.denied_reads >= DENIED_READS && !run.told_denied) {
    char names[512];

    run.told_denied = 1;
    po_proc_name_list(conf.proc_root, st->walk.denied_pid, st->walk.denied_pids,
                      st->walk.denied, names, sizeof(names));
    WARNING(PFX "could not read the open files (/proc/PID/fd) of %llu "
                "process%s: %s. The sockets they hold count as unowned and "
                "their owners are not named. Reading them needs root, or "
                "CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE (systemd: "
                "AmbientCapabilities=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE); a "
                "process of another user namespace (a sandbox's init) is "
                "closed even to root. Said once.",
            (unsigned long long)st->walk.denied,
            st->walk.denied == 1 ? "" : "es", names);
  }
  if (conf.source == PO_SOURCE_AUTO && st->source_used == PO_SOURCE_PROC &&
      !run.told_proc_fallback) {
    run.told_proc_fallback = 1;
    NOTICE(PFX "netlink sock_diag is not available: reading /proc/net "
               "instead (accept queue limits are then unknown and reported as "
               "0). Said once.");
  }
  if (st->ns_failed > 0 && !run.told_ns_failed) {
    run.told_ns_failed = 1;
    WARNING(PFX "could not read the listening sockets of %llu network "
                "namespace%s (AllNamespaces): their listeners are not "
                "counted. Said once.",
            (unsigned long long)st->ns_failed, st->ns_failed == 1 ? "" : "s");
  }
  if (st->ns_untrusted > 0 && !run.told_ns_untrusted) {
    run.told_ns_untrusted = 1;
    NOTICE(PFX "%llu network namespace%s not owned by the initial user "
               "namespace (a user's own, as unshare -rn makes; %llu whose "
               "owner could not be asked): AllNamespaces \"trusted\" (or "
               "true) does not count their listeners, AllNamespaces \"all\" "
               "does. portowner-dump --all-namespaces=all shows them. Said "
               "once.",
           (unsigned long long)st->ns_untrusted,
           st->ns_untrusted == 1 ? " is" : "s are",
           (unsigned long long)st->ns_owner_unknown);
  }
  if (st->walk.deferred > 0 && !run.told_deferred) {
    run.told_deferred = 1;
    NOTICE(PFX "%llu new socket%s appeared since the last full walk of the "
               "processes' open files; full walks for new sockets are "
               "limited to one per %.3g s (a sixth of FullScanInterval, 10 s "
               "at most): this read was incremental, and such a socket has "
               "the owners found among new processes until the next full "
               "walk (none when an older process holds it: count-unowned). "
               "Said once.",
           (unsigned long long)st->walk.deferred,
           st->walk.deferred == 1 ? "" : "s",
           po_ctx_new_socket_interval(run.ctx));
  }
  if (st->malformed > 0 && !run.told_malformed) {
    run.told_malformed = 1;
    NOTICE(PFX "skipped %llu malformed /proc/net line%s or netlink "
               "message%s. Said once.",
           (unsigned long long)st->malformed, st->malformed == 1 ? "" : "s",
           st->malformed == 1 ? "" : "s");
  }
}

/* "the file \"P\"" or "its directory \"D\"" is owned by uid U with
 * mode M: why the StateFile (or its directory) is not trusted. */
static void untrusted_text(const struct po_untrusted *why, char *buf,
                           size_t size) {
  const char *base;
  char *dir = NULL;

  if (why->is_dir)
    po_path_dir(conf.state_file, &dir, &base);
  snprintf(buf, size,
           "%s \"%s\" is owned by uid %u with mode %04o (trusted: owned by "
           "uid %u%s, not writable by group or others)",
           why->is_dir ? "its directory" : "the file",
           dir           ? dir
           : why->is_dir ? "?"
                         : conf.state_file,
           (unsigned)why->uid, (unsigned)why->mode, (unsigned)geteuid(),
           why->is_dir && geteuid() != 0 ? " or root" : "");
  free(dir);
}

static double monotonic_now(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes the state (urgent changes at once, the rest at most once per
 * run.state_pace seconds; pace 0: every change, as at shutdown). */
static void save_state(double pace) {
  struct po_untrusted why = {0};
  char text[512];
  int err;

  if (!conf.state_file)
    return;
  err = po_state_save_paced(conf.watches, conf.state_file,
                            run.have_boot_id ? run.boot_id : NULL,
                            monotonic_now(), pace, &why);
  if (err < 0 && err != run.state_save_error) {
    if (err == -EPERM && why.refused)
      untrusted_text(&why, text, sizeof(text));
    else
      snprintf(text, sizeof(text), "%s", STRERROR(-err));
    ERROR(PFX "StateFile \"%s\": cannot write it: %s%s", conf.state_file,
          err == -ELOOP   ? "it or a directory above it is a symlink, which is "
                            "never written through"
          : err == -EPERM ? text
                          : STRERROR(-err),
          ". Said once until it changes.");
  } else if (err == 1 && run.state_save_error) {
    INFO(PFX "StateFile \"%s\": written again", conf.state_file);
  }
  /* 0 wrote nothing (unchanged, or paced): the error still stands. */
  if (err != 0)
    run.state_save_error = err < 0 ? err : 0;
}

static int po_read(void) {
  struct po_snapshot s;
  cdtime_t now;
  size_t n = po_watchset_len(conf.watches);
  int err;

  err = po_snapshot_take(run.ctx, &run.query, &s);
  if (err) {
    c_complain(LOG_ERR, &run.snapshot_complaint,
               PFX "cannot read the listening sockets: %s", STRERROR(-err));
    po_snapshot_free(&s);
    return -1;
  }
  c_release(LOG_INFO, &run.snapshot_complaint,
            PFX "reading the listening sockets works again");
  tell_once(&s.stats);

  now = cdtime();
  submit_self(&s.stats, now);
  po_events_clear(&run.events);
  err = po_watchset_eval(conf.watches, &s, s.netns, run.values, &run.events);
  if (err) {
    po_snapshot_free(&s);
    ERROR(PFX "evaluating the snapshot failed: %s", STRERROR(-err));
    po_events_clear(&run.events);
    return -1;
  }
  err = read_inventories(&s, now);
  po_snapshot_free(&s);
  if (err) {
    po_events_clear(&run.events);
    return -1;
  }

  for (size_t i = 0; i < n; i++) {
    const char *name = po_watch_name(po_watchset_get(conf.watches, i));
    const struct po_watch_values *v = &run.values[i];

    submit(name, "count", "sockets", v->sockets, now);
    submit(name, "count", "processes", v->processes, now);
    submit(name, "count", "unowned", v->unowned, now);
    submit(name, "count", "missing", v->missing, now);
    submit(name, "queue_length", "accept", v->accept, now);
    submit(name, "queue_length", "accept_max", v->accept_max, now);
  }
  for (size_t i = 0; i < run.events.len; i++)
    notify(&run.events.v[i], now);
  po_events_clear(&run.events);
  save_state(run.state_pace);
  return 0;
}

/* ---- init and shutdown
 * --------------------------------------------------------- */

/* The kernel's ephemeral port range, for the inventories. */
static void init_inventories(void) {
  uint16_t lo, hi;
  int err = po_ephemeral_range_read(po_ctx_proc_root(run.ctx), &lo, &hi);

  if (err) {
    NOTICE(PFX "cannot read the ephemeral port range "
               "(%s/sys/net/ipv4/ip_local_port_range: %s): <Inventory> "
               "blocks take 32768-60999",
           po_ctx_proc_root(run.ctx), STRERROR(-err));
    return;
  }
  for (size_t i = 0; i < po_watchset_inventories(conf.watches); i++)
    po_inventory_set_ephemeral_range(po_watchset_inventory(conf.watches, i), lo,
                                     hi);
}

static int po_init(void) {
  size_t n = conf.watches ? po_watchset_len(conf.watches) : 0;
  size_t ninv = conf.watches ? po_watchset_inventories(conf.watches) : 0;
  int err;

  if (n == 0 && ninv == 0) {
    WARNING(PFX "no <Port \"NAME\"> or <Inventory \"NAME\"> block is "
                "configured: nothing to watch");
    return 0;
  }
  if (run.ctx) /* init twice */
    return 0;
  run.ctx = po_ctx_new(conf.proc_root ? conf.proc_root : "/proc");
  run.values = calloc(n ? n : 1, sizeof(*run.values));
  if (!run.ctx || !run.values) {
    ERROR(PFX "cannot start: %s", STRERRNO);
    return -1;
  }
  err = po_watchset_query(conf.watches, &run.query);
  if (err) {
    ERROR(PFX "cannot start: %s", STRERROR(-err));
    return -1;
  }
  init_inventories();
  run.query.source = conf.source;
  run.sees_all = po_proc_self_sees_all();
  po_ctx_set_full_scan_interval(run.ctx, conf.full_scan_interval);
  if (strcmp(conf.resolver, "proc") != 0) {
    const char *why = "";

    err = po_ctx_use_bpf(run.ctx, &why);
    if (err && strcmp(conf.resolver, "bpf") == 0) {
      ERROR(PFX "Resolver \"bpf\": the BPF owner walk cannot be used: %s: %s",
            why, STRERROR(-err));
      return -1;
    }
    if (err)
      NOTICE(PFX "Resolver \"auto\": the BPF owner walk cannot be used (%s: "
                 "%s): the readlink walk of %s is used. Said once.",
             why, STRERROR(-err), po_ctx_proc_root(run.ctx));
    else
      INFO(PFX "owner walk: BPF (every read is a full walk in the kernel; "
               "FullScanInterval does not apply)");
  }
  run.have_boot_id = po_boot_id_read(po_ctx_proc_root(run.ctx), run.boot_id,
                                     sizeof(run.boot_id)) == 0;

  if (conf.state_file) {
    struct po_untrusted why = {0};
    char text[512];
    double interval = CDTIME_T_TO_DOUBLE(plugin_get_interval());

    /* Owners and counts are written at most once per STATE_PACE_MIN
     * seconds (or per interval, when longer); a standing FAILURE, its end
     * or a requirement's first start at the read that changed it. */
    run.state_pace = interval > STATE_PACE_MIN ? interval : STATE_PACE_MIN;
    err = po_state_load_checked(conf.watches, conf.state_file,
                                run.have_boot_id ? run.boot_id : NULL, &why);
    if (err == -EPERM && why.refused)
      untrusted_text(&why, text, sizeof(text));
    if (err == 0)
      INFO(PFX "StateFile \"%s\": state restored", conf.state_file);
    else if (err == -ENOENT)
      INFO(PFX "StateFile \"%s\" does not exist yet: starting fresh",
           conf.state_file);
    else if (err == -EPROTO)
      NOTICE(PFX "StateFile \"%s\" was written by an older portowner "
                 "(version 1, one listener state per block): starting fresh "
                 "(it is replaced at the next change)",
             conf.state_file);
    else if (err == -EBADMSG)
      WARNING(PFX "StateFile \"%s\" is corrupt or not a portowner state file: "
                  "starting fresh (it is replaced at the next change)",
              conf.state_file);
    else if (err == -ELOOP)
      WARNING(PFX "StateFile \"%s\": it or a directory above it is a "
                  "symlink, which is never read or written through: starting "
                  "fresh",
              conf.state_file);
    else if (err == -EPERM && why.refused)
      WARNING(PFX "StateFile \"%s\" is not trusted: %s; someone else may "
                  "have written it: not read, starting fresh",
              conf.state_file, text);
    else if (err == -EFBIG)
      WARNING(PFX "StateFile \"%s\" is larger than the state of these "
                  "<Port> blocks can be: not read, starting fresh",
              conf.state_file);
    else if (err == -EINVAL)
      WARNING(PFX "StateFile \"%s\" is not a regular file: starting fresh",
              conf.state_file);
    else
      WARNING(PFX "StateFile \"%s\" cannot be read: %s: starting fresh",
              conf.state_file, STRERROR(-err));
  }
  INFO(PFX "version %s watching %zu <Port> block%s and %zu <Inventory> "
           "block%s",
       PORTOWNER_VERSION, n, n == 1 ? "" : "s", ninv, ninv == 1 ? "" : "s");
  return plugin_register_read(PLUGIN_NAME, po_read);
}

static int po_shutdown(void) {
  if (run.ctx)
    save_state(0);
  po_events_free(&run.events);
  po_ctx_free(run.ctx);
  run.ctx = NULL;
  free(run.values);
  run.values = NULL;
  po_watchset_free(conf.watches);
  conf.watches = NULL;
  po_inv_events_free(&run.inv_events);
  free(conf.proc_root);
  conf.proc_root = NULL;
  free(conf.state_file);
  conf.state_file = NULL;
  return 0;
}

void module_register(void) {
  plugin_register_complex_config(PLUGIN_NAME, po_config);
  plugin_register_init(PLUGIN_NAME, po_init);
  plugin_register_shutdown(PLUGIN_NAME, po_shutdown);
}
