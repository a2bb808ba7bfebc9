/*
 * portowner: a small reader of collectd's config syntax, without collectd,
 * for portowner-dump --undeclared: the tree of a config file's items, and
 * the <Inventory> blocks of its <Plugin portowner> blocks as po_inventory
 * objects (the keys the plugin takes, mapped to the same po_inventory_*
 * calls).
 *
 * The syntax is collectd's: one item a line, "Key value value ..."; values
 * are "quoted strings" (a backslash escapes the next byte), numbers, the
 * booleans true/false/yes/no/on/off (unquoted, any case) or other unquoted
 * words (strings); a backslash at the end of a line continues it; '#' starts
 * a comment outside quotes; "<Key values>" opens a block that "</Key>"
 * closes. Include items are kept as items (the caller says it does not
 * follow them).
 *
 * Contract: 0 or a negative errno value; any bytes (NULs included) are
 * bounded by the limits below and never read past their length; nothing
 * logs or keeps globals.
 */
#ifndef PORTOWNER_CONFPARSE_H
#define PORTOWNER_CONFPARSE_H

#include <stddef.h>

#include "portowner/inventory.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest config text read, in bytes. */
#define PO_CONF_TEXT_MAX (1024u * 1024u)
/* Deepest nesting of blocks. */
#define PO_CONF_DEPTH_MAX 16
/* Most items (blocks included) in one text. */
#define PO_CONF_ITEMS_MAX 65536u
/* Most values of one item. */
#define PO_CONF_VALUES_MAX 1024u
/* Room for an error message (with its NUL). */
#define PO_CONF_ERROR_MAX 256

enum po_conf_type { PO_CONF_STRING, PO_CONF_NUMBER, PO_CONF_BOOLEAN };

struct po_conf_value {
  enum po_conf_type type;
  char *string; /* PO_CONF_STRING: malloc'd, NUL-terminated (no NUL inside) */
  double number;
  int boolean;
};

struct po_conf_item {
  char *key; /* [A-Za-z_][A-Za-z0-9_.-]*, malloc'd; NULL for the root */
  struct po_conf_value *values;
  size_t nvalues;
  struct po_conf_item *children; /* a block's items */
  size_t nchildren;
  int block;     /* 1: it was a <Key ...> ... </Key> block */
  unsigned line; /* where it starts, from 1 */
};

/*
 * Parses len bytes of config text into *root (a root item holding the
 * top-level items). On failure *root is empty and err (errsize bytes, may
 * be NULL) says what and at which line. Returns 0, -EINVAL (a syntax
 * error, a NUL byte), -E2BIG (longer than PO_CONF_TEXT_MAX, or a limit
 * above), -ENOMEM.
 */
int po_conf_parse(const char *text, size_t len, struct po_conf_item *root,
                  char *err, size_t errsize);

/* Frees what po_conf_parse() built and empties *root. NULL is allowed. */
void po_conf_release(struct po_conf_item *root);

/*
 * The inventory of an <Inventory "NAME"> item (block->key "Inventory",
 * case-insensitive), with the options the plugin takes (Protocol, Port,
 * Allow, AllowUnit, Learn, Hits, NotifyGone, IgnoreEphemeral; any case),
 * checked as the plugin checks them, and finished. Learn, Hits and
 * NotifyGone are checked and not applied: *one_shot_note (when not NULL)
 * is set to 1 when Learn is true or Hits above 1 (what a one-shot dump does
 * not do). On failure *out is NULL and err names the block, the option,
 * the value and the line. Returns 0, -EINVAL, -ENOMEM.
 */
int po_conf_inventory(const struct po_conf_item *block,
                      struct po_inventory **out, int *one_shot_note, char *err,
                      size_t errsize);

#ifdef __cplusplus
}
#endif

#endif /* PORTOWNER_CONFPARSE_H */
