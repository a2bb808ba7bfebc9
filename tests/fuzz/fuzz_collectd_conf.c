/*
 * Fuzz target: the collectd-free config reader, po_conf_parse(), and every
 * <Inventory> block it finds mapped by po_conf_inventory(), on the raw
 * bytes (no NUL added: the reader takes a length).
 *
 * Invariants: errors are only the documented ones, each with a message
 * naming a line within the text; a parsed tree is within the limits
 * (depth, items, values), its keys are option names, its line numbers
 * never go back in document order and never pass the last line; an
 * inventory is built or refused with a message, never half.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "portowner/confparse.h"
#include "fuzz.h"

struct walk {
  unsigned lines, last;
  size_t items;
};

static int key_ok(const char *k) {
  if (!k || !((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') ||
              k[0] == '_'))
    return 0;
  for (const char *p = k; *p; p++)
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
          (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
      return 0;
  return 1;
}

static void walk(const struct po_conf_item *it, int depth, struct walk *w) {
  FUZZ_CHECK(depth <= PO_CONF_DEPTH_MAX + 1);
  for (size_t i = 0; i < it->nchildren; i++) {
    const struct po_conf_item *c = &it->children[i];

    w->items++;
    FUZZ_CHECK(key_ok(c->key));
    FUZZ_CHECK(c->line >= w->last && c->line >= 1 && c->line <= w->lines);
    w->last = c->line;
    FUZZ_CHECK(c->nvalues <= PO_CONF_VALUES_MAX);
    for (size_t k = 0; k < c->nvalues; k++)
      FUZZ_CHECK(c->values[k].type != PO_CONF_STRING || c->values[k].string);
    FUZZ_CHECK(c->block || !c->nchildren);
    if (c->block && strcasecmp(c->key, "Inventory") == 0) {
      struct po_inventory *inv = (struct po_inventory *)&w;
      char err[PO_CONF_ERROR_MAX];
      int note = 0, rc = po_conf_inventory(c, &inv, &note, err, sizeof(err));

      FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
      FUZZ_CHECK(rc == 0 ? !!inv : !inv);
      FUZZ_CHECK(rc != -EINVAL || strncmp(err, "line ", 5) == 0);
      po_inventory_free(inv);
    }
    walk(c, depth + 1, w);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct po_conf_item root;
  char err[PO_CONF_ERROR_MAX];
  struct walk w = {1, 1, 0};
  int rc;

  if (size > 64 * 1024)
    return 0;
  for (size_t i = 0; i < size; i++)
    w.lines += data[i] == '\n';
  rc = po_conf_parse((const char *)data, size, &root, err, sizeof(err));
  FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
  if (rc) {
    unsigned line = 0;

    FUZZ_CHECK(root.nchildren == 0 && !root.children);
    if (rc != -ENOMEM) {
      FUZZ_CHECK(sscanf(err, "line %u: ", &line) == 1);
      FUZZ_CHECK(line >= 1 && line <= w.lines);
    }
    return 0;
  }
  walk(&root, 0, &w);
  FUZZ_CHECK(w.items <= PO_CONF_ITEMS_MAX);
  po_conf_release(&root);
  return 0;
}
