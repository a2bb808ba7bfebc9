/*
 * portowner: a small reader of collectd's config syntax (see confparse.h).
 *
 * One pass over the bytes with a cursor; the open blocks are a stack of
 * pointers to items whose parents take no sibling while they are open, so
 * the pointers stay valid.
 */
#include "portowner/confparse.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "portowner/config_value.h"
#include "portowner/portspec.h"

struct cur {
  const char *s;
  size_t len, at;
  unsigned line;
  size_t items;
  char *err;
  size_t errsize;
};

static int fail(struct cur *c, int code, const char *fmt, ...) {
  va_list ap;
  int n;

  if (c->err && c->errsize) {
    n = snprintf(c->err, c->errsize, "line %u: ", c->line);
    if (n >= 0 && (size_t)n < c->errsize) {
      va_start(ap, fmt);
      vsnprintf(c->err + n, c->errsize - (size_t)n, fmt, ap);
      va_end(ap);
    }
  }
  return code;
}

static int peek(const struct cur *c) {
  return c->at < c->len ? (unsigned char)c->s[c->at] : -1;
}

/* Skips blanks and line continuations (a backslash before a newline). */
static void skip_blanks(struct cur *c) {
  for (;;) {
    int ch = peek(c);

    if (ch == ' ' || ch == '\t' || ch == '\r')
      c->at++;
    else if (ch == '\\' && c->at + 1 < c->len && c->s[c->at + 1] == '\n') {
      c->at += 2;
      c->line++;
    } else if (ch == '\\' && c->at + 2 < c->len && c->s[c->at + 1] == '\r' &&
               c->s[c->at + 2] == '\n') {
      c->at += 3;
      c->line++;
    } else
      return;
  }
}

/* At the end of a statement: blanks, a comment, then a newline or the end.
 * Consumes the newline. Returns 1 when there, 0 when not. */
static int end_of_line(struct cur *c) {
  skip_blanks(c);
  if (peek(c) == '#')
    while (c->at < c->len && c->s[c->at] != '\n')
      c->at++;
  if (peek(c) == -1)
    return 1;
  if (peek(c) == '\n') {
    c->at++;
    c->line++;
    return 1;
  }
  return 0;
}

static int key_char(int ch, int first) {
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' ||
         (!first && ((ch >= '0' && ch <= '9') || ch == '.' || ch == '-'));
}

/* A key at the cursor, malloc'd into *out. */
static int read_key(struct cur *c, char **out) {
  size_t start = c->at;

  if (!key_char(peek(c), 1))
    return fail(c, -EINVAL, "expected an option name or a block");
  while (key_char(peek(c), 0) && c->at - start < 256)
    c->at++;
  if (key_char(peek(c), 0))
    return fail(c, -E2BIG, "an option name longer than 256 bytes");
  *out = strndup(c->s + start, c->at - start);
  return *out ? 0 : -ENOMEM;
}

static void value_release(struct po_conf_value *v) {
  if (v->type == PO_CONF_STRING)
    free(v->string);
}

static int unquoted_stop(int ch, int in_header) {
  return ch == -1 || ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' ||
         ch == '"' || ch == '#' || ch == '<' || (in_header && ch == '>') ||
         ch == '\0';
}

/* One value at the cursor into *v. */
static int read_value(struct cur *c, int in_header, struct po_conf_value *v) {
  memset(v, 0, sizeof(*v));
  if (peek(c) == '"') {
    size_t cap = 64, n = 0;
    char *b = malloc(cap);

    if (!b)
      return -ENOMEM;
    c->at++;
    for (;;) {
      int ch = peek(c), esc = 0;

      if (ch == '\\' && c->at + 1 < c->len) {
        c->at++;
        ch = peek(c);
        esc = 1;
      }
      if (ch == -1 || ch == '\n' || ch == '\0' || (ch == '\\' && !esc)) {
        free(b);
        return fail(c, -EINVAL,
                    ch == '\0' ? "a NUL byte in a string"
                               : "a string without its closing "
                                 "quote on its line");
      }
      if (ch == '"' && !esc)
        break;
      if (n + 1 >= cap) {
        char *nb;

        cap *= 2;
        if (!(nb = realloc(b, cap))) {
          free(b);
          return -ENOMEM;
        }
        b = nb;
      }
      b[n++] = (char)ch;
      c->at++;
    }
    c->at++; /* the closing quote */
    b[n] = '\0';
    v->type = PO_CONF_STRING;
    v->string = b;
    return 0;
  }
  {
    static const char *const words[] = {"true",  "yes", "on",
                                        "false", "no",  "off"};
    size_t start = c->at, n;
    char *w, *end;

    while (!unquoted_stop(peek(c), in_header))
      c->at++;
    n = c->at - start;
    if (!n)
      return fail(c, -EINVAL,
                  peek(c) == '\0' ? "a NUL byte" : "unexpected '%c'", peek(c));
    if (!(w = strndup(c->s + start, n)))
      return -ENOMEM;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
      if (strcasecmp(w, words[i]) == 0) {
        free(w);
        v->type = PO_CONF_BOOLEAN;
        v->boolean = i < 3;
        return 0;
      }
    errno = 0;
    v->number = strtod(w, &end);
    if ((w[0] == '-' || w[0] == '+' || w[0] == '.' ||
         (w[0] >= '0' && w[0] <= '9')) &&
        !*end && !errno && isfinite(v->number)) {
      free(w);
      v->type = PO_CONF_NUMBER;
      return 0;
    }
    v->type = PO_CONF_STRING;
    v->string = w;
    return 0;
  }
}

/* The values of an item up to the end of its line (or '>' in a header). */
static int read_values(struct cur *c, int in_header, struct po_conf_item *it) {
  size_t cap = 0;

  for (;;) {
    struct po_conf_value v;
    int err, ch;

    skip_blanks(c);
    ch = peek(c);
    if (ch == -1 || ch == '\n' || ch == '#' || (in_header && ch == '>'))
      return 0;
    if (it->nvalues >= PO_CONF_VALUES_MAX)
      return fail(c, -E2BIG, "more than %u values", PO_CONF_VALUES_MAX);
    if ((err = read_value(c, in_header, &v)) != 0)
      return err;
    if (it->nvalues == cap) {
      size_t ncap = cap ? cap * 2 : 4;
      struct po_conf_value *nv = realloc(it->values, ncap * sizeof(*nv));

      if (!nv) {
        value_release(&v);
        return -ENOMEM;
      }
      it->values = nv;
      cap = ncap;
    }
    it->values[it->nvalues++] = v;
  }
}

static void item_release(struct po_conf_item *it) {
  for (size_t i = 0; i < it->nvalues; i++)
    value_release(&it->values[i]);
  free(it->values);
  for (size_t i = 0; i < it->nchildren; i++)
    item_release(&it->children[i]);
  free(it->children);
  free(it->key);
  memset(it, 0, sizeof(*it));
}

void po_conf_release(struct po_conf_item *root) {
  if (root)
    item_release(root);
}

/* A new empty child of parent (its children may move: parent's own
 * pointer does not). */
static int add_child(struct cur *c, struct po_conf_item *parent,
                     struct po_conf_item **out) {
  struct po_conf_item *nv;

  if (c->items >= PO_CONF_ITEMS_MAX)
    return fail(c, -E2BIG, "more than %u items", PO_CONF_ITEMS_MAX);
  nv = realloc(parent->children, (parent->nchildren + 1) * sizeof(*nv));
  if (!nv)
    return -ENOMEM;
  parent->children = nv;
  *out = &nv[parent->nchildren++];
  memset(*out, 0, sizeof(**out));
  (*out)->line = c->line;
  c->items++;
  return 0;
}

static int parse(struct cur *c, struct po_conf_item *root) {
  struct po_conf_item *stack[PO_CONF_DEPTH_MAX + 1];
  size_t depth = 0;
  int err;

  stack[0] = root;
  for (;;) {
    struct po_conf_item *it;
    int ch;

    if (end_of_line(c)) {
      if (peek(c) != -1)
        continue;
      if (depth)
        return fail(c, -EINVAL, "<%s> (line %u) is not closed",
                    stack[depth]->key, stack[depth]->line);
      return 0;
    }
    ch = peek(c);
    if (ch == '\0')
      return fail(c, -EINVAL, "a NUL byte");
    if (ch == '<' && c->at + 1 < c->len && c->s[c->at + 1] == '/') {
      char *key;

      c->at += 2;
      skip_blanks(c);
      if ((err = read_key(c, &key)) != 0)
        return err;
      skip_blanks(c);
      if (!depth || strcasecmp(key, stack[depth]->key) != 0) {
        err = depth ? fail(c, -EINVAL, "</%s> closes <%s> (line %u)", key,
                           stack[depth]->key, stack[depth]->line)
                    : fail(c, -EINVAL, "</%s> closes no block", key);
        free(key);
        return err;
      }
      free(key);
      if (peek(c) != '>')
        return fail(c, -EINVAL, "expected '>'");
      c->at++;
      if (!end_of_line(c))
        return fail(c, -EINVAL, "text after </%s>", stack[depth]->key);
      depth--;
      continue;
    }
    if (ch == '<') {
      if (depth >= PO_CONF_DEPTH_MAX)
        return fail(c, -E2BIG, "blocks nested deeper than %d",
                    PO_CONF_DEPTH_MAX);
      if ((err = add_child(c, stack[depth], &it)) != 0)
        return err;
      it->block = 1;
      c->at++;
      skip_blanks(c);
      if ((err = read_key(c, &it->key)) != 0 ||
          (err = read_values(c, 1, it)) != 0)
        return err;
      if (peek(c) != '>')
        return fail(c, -EINVAL, "<%s: expected '>'", it->key);
      c->at++;
      if (!end_of_line(c))
        return fail(c, -EINVAL, "text after <%s ...>", it->key);
      stack[++depth] = it;
      continue;
    }
    if ((err = add_child(c, stack[depth], &it)) != 0 ||
        (err = read_key(c, &it->key)) != 0 ||
        (err = read_values(c, 0, it)) != 0)
      return err;
    if (!end_of_line(c))
      return fail(c, -EINVAL, "%s: unexpected '%c'", it->key, peek(c));
  }
}

int po_conf_parse(const char *text, size_t len, struct po_conf_item *root,
                  char *err, size_t errsize) {
  struct cur c = {
      .s = text, .len = len, .line = 1, .err = err, .errsize = errsize};
  int rc;

  if (err && errsize)
    err[0] = '\0';
  if (!root || (!text && len))
    return -EINVAL;
  memset(root, 0, sizeof(*root));
  if (len > PO_CONF_TEXT_MAX)
    return fail(&c, -E2BIG, "the config is longer than %u bytes",
                PO_CONF_TEXT_MAX);
  rc = parse(&c, root);
  if (rc) {
    if (rc == -ENOMEM && err && errsize)
      snprintf(err, errsize, "out of memory");
    item_release(root);
  }
  return rc;
}

/* ---- <Inventory> blocks ---------------------------------------------------
 */

static void value_text(const struct po_conf_value *v, char *buf, size_t size) {
  if (v->type == PO_CONF_STRING)
    snprintf(buf, size, "\"%.100s%s\"", v->string,
             strlen(v->string) > 100 ? "..." : "");
  else if (v->type == PO_CONF_NUMBER)
    snprintf(buf, size, "%.15g", v->number);
  else
    snprintf(buf, size, "%s", v->boolean ? "true" : "false");
}

struct inv_ctx {
  const char *block;
  const struct po_conf_item *ci;
  char *err;
  size_t errsize;
};

static int inv_fail(const struct inv_ctx *x, const char *fmt, ...) {
  va_list ap;
  int n;

  if (!x->err || !x->errsize)
    return -EINVAL;
  n = snprintf(x->err, x->errsize, "line %u: <Inventory \"%s\"> %s",
               x->ci->line, x->block, x->ci->key);
  if (n >= 0 && (size_t)n < x->errsize) {
    va_start(ap, fmt);
    vsnprintf(x->err + n, x->errsize - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

/* A port value as text into buf; NULL when it is not one. */
static const char *port_text(const struct po_conf_value *v, char *buf,
                             size_t size) {
  struct po_range r;

  if (v->type == PO_CONF_STRING)
    return v->string;
  if (v->type == PO_CONF_NUMBER && po_config_port_number(v->number, &r) == 0) {
    snprintf(buf, size, "%u", (unsigned)r.lo);
    return buf;
  }
  return NULL;
}

static int port_fail(const struct inv_ctx *x, const char *text, const char *bad,
                     int err) {
  if (err == -ENOMEM)
    return -ENOMEM;
  if (err == -ERANGE)
    return inv_fail(x, " \"%.100s\": out of range (ports are 1-65535)", text);
  if (err == -ENOENT) {
    /* bad is the item in the rest of the list: name the item alone. */
    const char *item = bad ? bad : text;
    size_t len = po_port_item_len(item);

    return inv_fail(x,
                    " \"%.100s\": unknown service name \"%.*s\" (not in "
                    "/etc/services)",
                    text, (int)(len < 100 ? len : 100), item);
  }
  return inv_fail(x,
                  " \"%.100s\": not a port, a range LOW-HIGH with LOW <= "
                  "HIGH, or a service name",
                  text);
}

static int inv_ports(const struct inv_ctx *x, struct po_inventory *inv) {
  if (!x->ci->nvalues)
    return inv_fail(x, ": needs at least one port, range or service name");
  for (size_t i = 0; i < x->ci->nvalues; i++) {
    char num[16], t[128];
    const char *text = port_text(&x->ci->values[i], num, sizeof(num));
    const char *bad = NULL;
    int err;

    if (!text) {
      value_text(&x->ci->values[i], t, sizeof(t));
      return inv_fail(x,
                      " %s: not a port number (1-65535), range or service "
                      "name",
                      t);
    }
    if ((err = po_inventory_port_add_string(inv, text, &bad)) != 0)
      return port_fail(x, text, bad, err);
  }
  return 0;
}

static int inv_protocols(const struct inv_ctx *x, struct po_inventory *inv) {
  if (!x->ci->nvalues)
    return inv_fail(x, ": needs at least one value");
  for (size_t i = 0; i < x->ci->nvalues; i++) {
    const struct po_conf_value *v = &x->ci->values[i];
    char t[128];

    if (v->type == PO_CONF_STRING &&
        po_inventory_protocol_add(inv, v->string) == 0)
      continue;
    value_text(v, t, sizeof(t));
    return inv_fail(x,
                    " %s: unknown protocol (tcp, tcp4, tcp6, udp, udp4, "
                    "udp6 or all)",
                    t);
  }
  return 0;
}

static int inv_allow(const struct inv_ctx *x, struct po_inventory *inv) {
  const struct po_conf_item *ci = x->ci;
  char user[16];
  const char *prog, *who;
  int err = 0;

  if (ci->nvalues < 2 || ci->values[0].type != PO_CONF_STRING ||
      (ci->values[1].type != PO_CONF_STRING &&
       ci->values[1].type != PO_CONF_NUMBER))
    return inv_fail(x, ": needs a program (the executable's name, or \"*\"), "
                       "a user (a name, a uid, or \"*\") and optionally "
                       "ports, e.g. Allow \"sshd\" \"root\" 22");
  prog = ci->values[0].string;
  if (ci->values[1].type == PO_CONF_NUMBER) {
    double u = ci->values[1].number;

    if (!(u >= 0 && u < 4294967295.0 && u == (double)(uint32_t)u))
      return inv_fail(x, ": the user is not a uid");
    snprintf(user, sizeof(user), "%u", (unsigned)u);
    who = user;
  } else {
    who = ci->values[1].string;
  }
  if (ci->nvalues == 2)
    err = po_inventory_allow_add(inv, prog, who, NULL, NULL);
  for (size_t i = 2; i < ci->nvalues && !err; i++) {
    char num[16], t[128];
    const char *ports = port_text(&ci->values[i], num, sizeof(num));
    const char *bad = NULL;

    if (!ports) {
      value_text(&ci->values[i], t, sizeof(t));
      return inv_fail(x,
                      " %s: not a port number (1-65535), range or service "
                      "name",
                      t);
    }
    err = po_inventory_allow_add(inv, prog, who, ports, &bad);
    if (err && bad)
      return port_fail(x, ports, bad, err);
  }
  if (err == -EINVAL)
    return inv_fail(x, ": the program is the executable's name (no '/'; "
                       "\"*\" for any) and neither it nor the user may be "
                       "empty");
  return err;
}

static int inv_allow_unit(const struct inv_ctx *x, struct po_inventory *inv) {
  if (!x->ci->nvalues)
    return inv_fail(x, ": needs at least one glob of unit names, e.g. "
                       "AllowUnit \"postgresql@*.service\"");
  for (size_t i = 0; i < x->ci->nvalues; i++) {
    const struct po_conf_value *v = &x->ci->values[i];
    char t[128];
    int err = v->type == PO_CONF_STRING
                  ? po_inventory_allow_unit_add(inv, v->string)
                  : -EINVAL;

    if (err == -ENOMEM)
      return err;
    if (err) {
      value_text(v, t, sizeof(t));
      return inv_fail(x,
                      " %s: needs a glob of unit names (a string of 1 to "
                      "%d bytes)",
                      t, PO_GLOB_MAX);
    }
  }
  return 0;
}

/* One boolean, as collectd's cf_util_get_boolean() takes it. */
static int inv_bool(const struct inv_ctx *x, int *b) {
  const struct po_conf_value *v = x->ci->values;

  if (x->ci->nvalues == 1 && v->type == PO_CONF_BOOLEAN) {
    *b = v->boolean;
    return 0;
  }
  if (x->ci->nvalues == 1 && v->type == PO_CONF_STRING) {
    static const char *const words[] = {"true",  "yes", "on",
                                        "false", "no",  "off"};

    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
      if (strcasecmp(v->string, words[i]) == 0) {
        *b = i < 3;
        return 0;
      }
  }
  return inv_fail(x, ": needs exactly one boolean value (true or false)");
}

int po_conf_inventory(const struct po_conf_item *block,
                      struct po_inventory **out, int *one_shot_note, char *err,
                      size_t errsize) {
  static const char *const keys[] = {"Protocol",   "Port",           "Allow",
                                     "AllowUnit",  "Learn",          "Hits",
                                     "NotifyGone", "IgnoreEphemeral"};
  struct po_inventory *inv;
  const char *name;
  int rc = 0;

  if (err && errsize)
    err[0] = '\0';
  if (!block || !out || !block->key || strcasecmp(block->key, "Inventory"))
    return -EINVAL;
  *out = NULL;
  if (block->nvalues != 1 || block->values[0].type != PO_CONF_STRING) {
    if (err && errsize)
      snprintf(err, errsize,
               "line %u: <Inventory> needs exactly one string argument: the "
               "block's name, e.g. <Inventory \"host\">",
               block->line);
    return -EINVAL;
  }
  name = block->values[0].string;
  if (!(inv = po_inventory_new(name))) {
    if (errno == ENOMEM)
      return -ENOMEM;
    if (err && errsize)
      snprintf(err, errsize,
               "line %u: <Inventory \"%.100s\">: bad block name (1 to %d "
               "bytes, no '/')",
               block->line, name, PO_WATCH_NAME_MAX - 1);
    return -EINVAL;
  }
  for (size_t i = 0; i < block->nchildren && !rc; i++) {
    const struct po_conf_item *ci = &block->children[i];
    struct inv_ctx x = {name, ci, err, errsize};
    size_t k = 0;
    int b;

    while (k < sizeof(keys) / sizeof(keys[0]) && strcasecmp(ci->key, keys[k]))
      k++;
    if (ci->block || k == sizeof(keys) / sizeof(keys[0])) {
      if (err && errsize)
        snprintf(err, errsize,
                 "line %u: <Inventory \"%s\">: %s \"%.100s\" (known: "
                 "Protocol, Port, Allow, AllowUnit, Learn, Hits, NotifyGone, "
                 "IgnoreEphemeral)",
                 ci->line, name, ci->block ? "unknown block" : "unknown option",
                 ci->key);
      rc = -EINVAL;
      break;
    }
    switch (k) {
    case 0:
      rc = inv_protocols(&x, inv);
      break;
    case 1:
      rc = inv_ports(&x, inv);
      break;
    case 2:
      rc = inv_allow(&x, inv);
      break;
    case 3:
      rc = inv_allow_unit(&x, inv);
      break;
    case 4: /* Learn: not applied */
      rc = inv_bool(&x, &b);
      if (!rc && b && one_shot_note)
        *one_shot_note = 1;
      break;
    case 5: { /* Hits: not applied */
      unsigned hits;

      if (ci->nvalues != 1 || ci->values[0].type != PO_CONF_NUMBER ||
          po_config_hits(ci->values[0].number, &hits) != 0)
        rc = inv_fail(&x, ": needs one whole number from 1 to %u", PO_HITS_MAX);
      else if (hits > 1 && one_shot_note)
        *one_shot_note = 1;
      break;
    }
    case 6: /* NotifyGone: not applied */
      rc = inv_bool(&x, &b);
      break;
    default:
      rc = inv_bool(&x, &b);
      if (!rc)
        po_inventory_set_ignore_ephemeral(inv, b);
    }
  }
  if (!rc)
    rc = po_inventory_finish(inv);
  if (rc) {
    if (rc == -ENOMEM && err && errsize)
      snprintf(err, errsize, "line %u: <Inventory \"%s\">: out of memory",
               block->line, name);
    po_inventory_free(inv);
    return rc;
  }
  *out = inv;
  return 0;
}
