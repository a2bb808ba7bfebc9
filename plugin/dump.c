/*
 * portowner-dump: prints what the portowner plugin sees: every listening
 * socket that matches the options, with all of its owners.
 *
 * With --undeclared CONFIG: the listeners that the <Inventory> blocks of a
 * collectd config would report now (confparse.h reads it).
 *
 * Exit status: 0 when an answer was printed (an empty one included), 1 when
 * the listener table could not be read, 2 on bad arguments (a config that
 * cannot be read, or a bad <Inventory> block: the others are printed).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <yajl/yajl_gen.h>

#include "config.h"
#include "portowner/config_value.h"
#include "portowner/confparse.h"
#include "portowner/inventory.h"
#include "portowner/json.h"
#include "portowner/portspec.h"
#include "portowner/printable.h"
#include "portowner/proc.h"
#include "portowner/snapshot.h"

static const char usage_line[] =
    "usage: portowner-dump [--json] [--port LIST] [--proto PROTO] "
    "[--source auto|netlink|proc]\n"
    "                      [--proc-root DIR] "
    "[--all-namespaces[=trusted|all]] [--unit GLOB]\n"
    "                      [--resolver auto|bpf|proc]\n"
    "       portowner-dump --undeclared CONFIG [--json] [--source SOURCE] "
    "[--proc-root DIR]\n";

static void usage(FILE *f) {
  fputs(usage_line, f);
  if (f == stdout)
    fputs("\n"
          "Prints every listening TCP socket and bound, unconnected UDP "
          "socket with all of\n"
          "the processes that hold it.\n"
          "\n"
          "  --json             one JSON object per socket\n"
          "  --port LIST        ports: 22 | 80,443 | 8000-8099 | ssh "
          "(repeatable)\n"
          "  --proto PROTO      tcp, tcp4, tcp6, udp, udp4, udp6 "
          "(repeatable; default all)\n"
          "  --source SOURCE    auto (netlink, else /proc/net), netlink, "
          "proc\n"
          "  --proc-root DIR    where /proc is (default /proc)\n"
          "  --resolver WALK    auto (BPF when it loads, else proc), bpf, "
          "proc\n"
          "  --all-namespaces[=trusted|all]\n"
          "                     also the other network namespaces: trusted "
          "(the default)\n"
          "                     those owned by the initial user namespace, "
          "all every one\n"
          "  --unit GLOB        only sockets whose owners' (or own) unit, "
          "user unit or\n"
          "                     container matches GLOB (repeatable)\n"
          "  --undeclared CONFIG\n"
          "                     the listeners that the <Inventory> blocks of "
          "the\n"
          "                     <Plugin portowner> blocks of the collectd "
          "config CONFIG\n"
          "                     report now (Hits and Learn do not apply: one "
          "read)\n"
          "  --help, --version\n",
          f);
}

static int bad_arg(const char *what, const char *value, const char *why) {
  fprintf(stderr, "portowner-dump: bad %s '%s': %s\n", what, value, why);
  fputs(usage_line, stderr);
  return 2;
}

/* A bad --port item, named alone (not the rest of the list). */
static int bad_port(const char *item, int err) {
  int len = (int)po_port_item_len(item);

  switch (err) {
  case -ERANGE:
    fprintf(stderr, "portowner-dump: --port: '%.*s': ports are 1 to 65535\n",
            len, item);
    break;
  case -ENOENT:
    fprintf(stderr,
            "portowner-dump: --port: unknown service \"%.*s\" (not in "
            "/etc/services)\n",
            len, item);
    break;
  default:
    fprintf(stderr,
            "portowner-dump: --port: '%.*s': expected a port, a range "
            "LOW-HIGH with LOW <= HIGH, or a service name\n",
            len, item);
  }
  fputs(usage_line, stderr);
  return 2;
}

static const char *proto_label(const struct po_socket *s) {
  if (s->proto == IPPROTO_TCP)
    return s->family == AF_INET ? "tcp" : "tcp6";
  return s->family == AF_INET ? "udp" : "udp6";
}

static void format_local(const struct po_socket *s, char *buf, size_t size) {
  char addr[INET6_ADDRSTRLEN] = "?";

  inet_ntop(s->family, s->addr, addr, sizeof(addr));
  if (s->family == AF_INET)
    snprintf(buf, size, "%s:%u", addr, s->port);
  else
    snprintf(buf, size, "[%s]:%u%s", addr, s->port,
             s->v6only == 0 ? " (v4+v6)" : "");
}

/* Same endpoint: one table row (an SO_REUSEPORT group, say). */
static int same_row(const struct po_socket *a, const struct po_socket *b) {
  return a->proto == b->proto && a->family == b->family && a->port == b->port &&
         a->netns == b->netns && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* Writes a process name as printable text: a backslash as \\, and each byte
 * of a character that is not printable (printable.h: C0, DEL, C1, bidi
 * controls, line separators) and each byte that is not UTF-8 as \xNN, so
 * that a name can neither fake a line, send a terminal escape nor reorder
 * what is shown. */
static void put_name(const char *s, FILE *f) {
  size_t len = strlen(s);

  for (size_t i = 0; i < len;) {
    const unsigned char *p = (const unsigned char *)s + i;
    size_t span, n = po_printable(s + i, len - i, &span);

    if (n == 0) {
      for (size_t k = 0; k < span; k++)
        fprintf(f, "\\x%02x", p[k]);
    } else if (*p == '\\') {
      fputs("\\\\", f);
    } else {
      fwrite(p, 1, n, f);
    }
    i += span;
  }
}

/* Who owns a socket's network namespace: "initial" (its user namespace is
 * the initial one), "uid=N" (a user namespace that uid made), "unknown". */
static void format_ns_owner(const struct po_snapshot *s, uint64_t netns,
                            char *buf, size_t size) {
  const struct po_netns *n = po_snapshot_netns(s, netns);

  if (n && n->trusted)
    snprintf(buf, size, "initial");
  else if (n && n->owner_uid >= 0)
    snprintf(buf, size, "uid=%lld", (long long)n->owner_uid);
  else
    snprintf(buf, size, "unknown");
}

/* The UNIT of the row of sockets i..j-1: the label (cgroup.h) of each of
 * its owners' cgroups once, comma-separated, into buf; "-" when none. */
static void row_units(const struct po_snapshot *s, size_t i, size_t j,
                      char *buf, size_t size) {
  size_t len = 0;

  buf[0] = '\0';
  for (size_t k = i; k < j; k++) {
    const struct po_socket *sk = &s->socks.v[k];

    for (size_t o = 0; o < sk->owner_count; o++) {
      const struct po_proc *p = &s->procs[s->owners[sk->owner_first + o].proc];
      struct po_cgroup_info info;
      char label[PO_UNIT_NAME_MAX * 2];
      size_t ll;
      const char *at;

      po_cgroup_classify_paths(&p->cgroup, &info);
      po_cgroup_label(&info, label, sizeof(label));
      ll = strlen(label);
      if (ll == 0)
        continue;
      /* Already listed? */
      for (at = buf; (at = strstr(at, label));) {
        if ((at == buf || at[-1] == ',') && (at[ll] == ',' || !at[ll]))
          break;
        at++;
      }
      if (at || len + ll + 2 > size)
        continue;
      if (len)
        buf[len++] = ',';
      memcpy(buf + len, label, ll + 1);
      len += ll;
    }
  }
  /* No owner named one: the cgroups that created the sockets. */
  for (size_t k = i; k < j && !len && s->sock_cgroups; k++) {
    const struct po_cgroup_paths cg = {s->sock_cgroups[k], NULL};
    struct po_cgroup_info info;

    po_cgroup_classify_paths(&cg, &info);
    po_cgroup_label(&info, buf, size);
    len = strlen(buf);
  }
  if (!len)
    snprintf(buf, size, "-");
}

/* 1 when a glob matches the unit, user unit or label of cg. */
static int cgroup_matches(const struct po_cgroup_paths *cg, char **globs,
                          size_t n) {
  struct po_cgroup_info info;
  char label[PO_UNIT_NAME_MAX * 2];

  if (!cg->v2 && !cg->systemd)
    return 0;
  po_cgroup_classify_paths(cg, &info);
  po_cgroup_label(&info, label, sizeof(label));
  for (size_t i = 0; i < n; i++)
    if ((info.unit[0] && fnmatch(globs[i], info.unit, 0) == 0) ||
        (info.user_unit[0] && fnmatch(globs[i], info.user_unit, 0) == 0) ||
        (label[0] && fnmatch(globs[i], label, 0) == 0))
      return 1;
  return 0;
}

/* --unit: which sockets to show (malloc'd, one byte per socket). */
static uint8_t *select_units(const struct po_snapshot *s, char **globs,
                             size_t n) {
  uint8_t *keep = calloc(s->socks.len ? s->socks.len : 1, 1);

  if (!keep)
    return NULL;
  for (size_t i = 0; i < s->socks.len; i++) {
    const struct po_socket *sk = &s->socks.v[i];
    const struct po_cgroup_paths own = {
        s->sock_cgroups ? s->sock_cgroups[i] : NULL, NULL};

    keep[i] = (uint8_t)cgroup_matches(&own, globs, n);
    for (size_t o = 0; o < sk->owner_count && !keep[i]; o++)
      keep[i] = (uint8_t)cgroup_matches(
          &s->procs[s->owners[sk->owner_first + o].proc].cgroup, globs, n);
  }
  return keep;
}

/* --unit: a row shows when one of its sockets i..j-1 was selected. */
static int row_kept(const uint8_t *keep, size_t i, size_t j) {
  for (; keep && i < j; i++)
    if (keep[i])
      return 1;
  return !keep;
}

static void print_table(const struct po_snapshot *s, int all_ns,
                        const uint8_t *keep, FILE *f) {
  int w = 5, uw = 4, summed = 0;
  char units[1024];

  for (size_t i = 0, j; i < s->socks.len; i = j) {
    for (j = i; j < s->socks.len && same_row(&s->socks.v[i], &s->socks.v[j]);)
      j++;
    row_units(s, i, j, units, sizeof(units));
    if ((int)strlen(units) > uw)
      uw = (int)strlen(units);
  }

  for (size_t i = 0; i < s->socks.len; i++) {
    char local[80];
    int n;

    format_local(&s->socks.v[i], local, sizeof(local));
    n = (int)strlen(local);
    if (n > w)
      w = n;
  }
  if (all_ns)
    fprintf(f, "%-12s %-11s ", "NETNS", "NS-OWNER");
  fprintf(f, "%-6s %-*s %-8s %-10s %-*s %s\n", "PROTO", w, "LOCAL", "SOCKETS",
          "ACCEPTQ", uw, "UNIT", "OWNERS");

  for (size_t i = 0; i < s->socks.len;) {
    const struct po_socket *first = &s->socks.v[i];
    unsigned long long q = 0, qmax = 0;
    int qmax_known = 1;
    size_t j = i, printed = 0;
    char local[80], acc[32] = "-";

    for (; j < s->socks.len && same_row(first, &s->socks.v[j]); j++) {
      q += s->socks.v[j].rqueue;
      if (s->socks.v[j].wqueue == PO_QUEUE_UNKNOWN)
        qmax_known = 0;
      else
        qmax += s->socks.v[j].wqueue;
    }
    if (!row_kept(keep, i, j)) {
      i = j;
      continue;
    }
    if (first->proto == IPPROTO_TCP) {
      /* A row of several sockets (an SO_REUSEPORT group) shows their sum,
       * marked '*' and said under the table. */
      const char *mark = j - i > 1 ? "*" : "";

      summed |= j - i > 1;
      if (qmax_known)
        snprintf(acc, sizeof(acc), "%llu/%llu%s", q, qmax, mark);
      else
        snprintf(acc, sizeof(acc), "%llu/?%s", q, mark);
    }
    format_local(first, local, sizeof(local));
    if (all_ns) {
      char owner[32];

      format_ns_owner(s, first->netns, owner, sizeof(owner));
      fprintf(f, "%-12llu %-11s ", (unsigned long long)first->netns, owner);
    }
    fprintf(f, "%-6s %-*s %-8zu %-10s ", proto_label(first), w, local, j - i,
            acc);
    row_units(s, i, j, units, sizeof(units));
    put_name(units, f);
    fprintf(f, "%*s ", uw - (int)strlen(units), "");

    /* Owners: each process once, in pid order over the row's sockets. */
    for (size_t k = i; k < j; k++) {
      const struct po_socket *sk = &s->socks.v[k];

      for (size_t o = 0; o < sk->owner_count; o++) {
        const struct po_owner *ow = &s->owners[sk->owner_first + o];
        const struct po_proc *p = &s->procs[ow->proc];
        int seen = 0;

        /* A process holding the socket on two fds, or two sockets of the
         * row, is listed once. */
        for (size_t pk = i; pk <= k && !seen; pk++) {
          const struct po_socket *ps = &s->socks.v[pk];
          size_t lim = pk == k ? o : ps->owner_count;

          for (size_t po = 0; po < lim; po++)
            if (s->owners[ps->owner_first + po].pid == ow->pid) {
              seen = 1;
              break;
            }
        }
        if (seen)
          continue;
        if (printed++)
          fputs(", ", f);
        put_name(p->comm[0] ? p->comm : "?", f);
        fprintf(f, "[%d] ", (int)ow->pid);
        put_name(p->user[0] ? p->user : "?", f);
      }
    }
    if (!printed)
      fputs("- (no owner found)", f);
    fputc('\n', f);
    i = j;
  }
  if (summed)
    fputs("* ACCEPTQ summed over the row's sockets (SO_REUSEPORT: each has "
          "its own queue and limit; --json shows each)\n",
          f);
}

/* The processes whose fds were refused, named (pid and comm, at most
 * PO_WALK_DENIED_PIDS): once per run, on stderr. */
static void say_denied(const char *proc_root, const struct po_walk_stats *w) {
  char names[512];
  unsigned long long n = (unsigned long long)w->denied;

  po_proc_name_list(proc_root, w->denied_pid, w->denied_pids, w->denied, names,
                    sizeof(names));
  fprintf(stderr,
          "portowner-dump: the fds of %llu process%s could not be read: %s; "
          "sockets %s may show no owner (reading them needs root, or "
          "CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE; a process of another "
          "user namespace, as a sandbox's init, is closed even to root)\n",
          n, n == 1 ? "" : "es", names, n == 1 ? "it holds" : "they hold");
}

/* ---- --undeclared CONFIG ------------------------------------------------- */

/* The text of file path (at most PO_CONF_TEXT_MAX bytes), malloc'd. */
static int read_config(const char *path, char **out, size_t *len) {
  FILE *f = fopen(path, "r");
  char *b;
  size_t n;

  if (!f)
    return -errno;
  if (!(b = malloc(PO_CONF_TEXT_MAX + 1))) {
    fclose(f);
    return -ENOMEM;
  }
  n = fread(b, 1, PO_CONF_TEXT_MAX + 1, f);
  if (ferror(f)) {
    int err = errno ? -errno : -EIO;

    fclose(f);
    free(b);
    return err;
  }
  fclose(f);
  if (n > PO_CONF_TEXT_MAX) {
    free(b);
    return -E2BIG;
  }
  *out = b;
  *len = n;
  return 0;
}

struct invs {
  struct po_inventory **v;
  size_t n;
  int errors, includes, notes;
};

/* Says an Include at item it is not followed, once per line. */
static void say_include(const char *path, const struct po_conf_item *it,
                        struct invs *iv) {
  fprintf(stderr,
          "portowner-dump: %s: line %u: Include is not followed (only this "
          "file is read): put the <Inventory> blocks in it\n",
          path, it->line);
  iv->includes++;
}

static void collect_plugin(const char *path, const struct po_conf_item *pl,
                           struct invs *iv) {
  for (size_t i = 0; i < pl->nchildren; i++) {
    const struct po_conf_item *it = &pl->children[i];
    struct po_inventory *inv, **nv;
    char err[PO_CONF_ERROR_MAX];
    int note = 0, rc;

    if (strcasecmp(it->key, "Include") == 0) {
      say_include(path, it, iv);
      continue;
    }
    if (!it->block || strcasecmp(it->key, "Inventory") != 0)
      continue;
    rc = po_conf_inventory(it, &inv, &note, err, sizeof(err));
    for (size_t k = 0; !rc && k < iv->n; k++)
      if (strcmp(po_inventory_name(iv->v[k]), po_inventory_name(inv)) == 0) {
        snprintf(err, sizeof(err),
                 "line %u: <Inventory \"%s\">: an <Inventory> block of that "
                 "name comes earlier",
                 it->line, po_inventory_name(inv));
        po_inventory_free(inv);
        rc = -EINVAL;
      }
    if (!rc && !(nv = realloc(iv->v, (iv->n + 1) * sizeof(*nv)))) {
      po_inventory_free(inv);
      rc = -ENOMEM;
      snprintf(err, sizeof(err), "out of memory");
    }
    if (rc) {
      fprintf(stderr, "portowner-dump: %s: %s (block skipped)\n", path, err);
      iv->errors++;
      continue;
    }
    iv->v = nv;
    iv->v[iv->n++] = inv;
    if (note) {
      fprintf(stderr,
              "portowner-dump: %s: line %u: <Inventory \"%s\">: Learn and "
              "Hits do not apply to one read: every undeclared listener of "
              "now is printed\n",
              path, it->line, po_inventory_name(inv));
      iv->notes++;
    }
  }
}

static void put_json_string(const char *s, FILE *f) {
  yajl_gen g = yajl_gen_alloc(NULL);
  const unsigned char *buf;
  size_t len;

  if (!g)
    return;
  if (po_json_string(g, s, strlen(s)) == yajl_gen_status_ok &&
      yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
    fwrite(buf, 1, len, f);
  yajl_gen_free(g);
}

static int undeclared(const char *path, struct po_query *q,
                      const char *proc_root, int json) {
  struct po_conf_item root;
  struct invs iv = {0};
  struct po_range *ports = NULL;
  size_t nports = 0, printed = 0;
  int every_port = 0, status = 0, err;
  char *text = NULL, msg[PO_CONF_ERROR_MAX];
  size_t len = 0;
  struct po_ctx *ctx = NULL;
  struct po_snapshot snap;
  struct po_inv_events ev = {0};
  uint16_t lo, hi;

  if ((err = read_config(path, &text, &len)) != 0) {
    fprintf(stderr, "portowner-dump: --undeclared %s: %s\n", path,
            err == -E2BIG ? "longer than 1 MiB" : strerror(-err));
    return 2;
  }
  err = po_conf_parse(text, len, &root, msg, sizeof(msg));
  free(text);
  if (err) {
    fprintf(stderr, "portowner-dump: %s: %s\n", path, msg);
    return 2;
  }
  for (size_t i = 0; i < root.nchildren; i++) {
    const struct po_conf_item *it = &root.children[i];

    if (strcasecmp(it->key, "Include") == 0)
      say_include(path, it, &iv);
    else if (it->block && strcasecmp(it->key, "Plugin") == 0 &&
             it->nvalues >= 1 && it->values[0].type == PO_CONF_STRING &&
             strcasecmp(it->values[0].string, "portowner") == 0)
      collect_plugin(path, it, &iv);
  }
  po_conf_release(&root);
  if (!iv.n) {
    if (!iv.errors)
      fprintf(stderr,
              "portowner-dump: %s: no <Inventory> block in a <Plugin "
              "portowner> block%s\n",
              path, iv.includes ? " (Include lines are not followed)" : "");
    free(iv.v);
    return 2;
  }
  q->mask = 0;
  for (size_t i = 0; i < iv.n; i++) {
    size_t n;
    const struct po_range *r = po_inventory_ports(iv.v[i], &n);
    struct po_range *np;

    q->mask |= po_inventory_mask(iv.v[i]);
    if (!n) {
      every_port = 1;
      continue;
    }
    if (!(np = realloc(ports, (nports + n) * sizeof(*np)))) {
      status = 1;
      fputs("portowner-dump: out of memory\n", stderr);
      goto out;
    }
    ports = np;
    memcpy(ports + nports, r, n * sizeof(*r));
    nports += n;
  }
  q->ports = every_port ? NULL : ports;
  q->nports = every_port ? 0 : nports;
  err = po_ephemeral_range_read(proc_root, &lo, &hi);
  if (err)
    fprintf(stderr,
            "portowner-dump: %s/sys/net/ipv4/ip_local_port_range: %s (the "
            "default ephemeral range 32768-60999 is used)\n",
            proc_root, strerror(-err));
  for (size_t i = 0; !err && i < iv.n; i++)
    po_inventory_set_ephemeral_range(iv.v[i], lo, hi);
  if (!(ctx = po_ctx_new(proc_root))) {
    fprintf(stderr, "portowner-dump: %s\n", strerror(errno));
    status = 1;
    goto out;
  }
  if ((err = po_snapshot_take(ctx, q, &snap)) != 0) {
    fprintf(stderr, "portowner-dump: cannot read the listening sockets: %s\n",
            strerror(-err));
    status = 1;
    goto out;
  }
  if (json)
    fputs("[", stdout);
  for (size_t i = 0; i < iv.n && !status; i++) {
    struct po_inventory_values v;

    po_inv_events_clear(&ev);
    err = po_inventory_eval(iv.v[i], &snap, snap.netns, &v, &ev);
    if (err) {
      fprintf(stderr, "portowner-dump: <Inventory \"%s\">: %s\n",
              po_inventory_name(iv.v[i]), strerror(-err));
      status = 1;
      break;
    }
    for (size_t k = 0; k < ev.len; k++) {
      const struct po_inv_event *e = &ev.v[k];

      if (e->type != PO_INV_UNDECLARED)
        continue;
      if (!json) {
        puts(e->message);
      } else {
        fputs(printed ? ",\n {\"inventory\":" : "\n {\"inventory\":", stdout);
        put_json_string(po_inventory_name(iv.v[i]), stdout);
        fputs(",\"endpoint\":", stdout);
        put_json_string(e->endpoint, stdout);
        fputs(",\"program\":", stdout);
        put_json_string(e->program, stdout);
        fputs(",\"user\":", stdout);
        put_json_string(e->user, stdout);
        fputs(",\"message\":", stdout);
        put_json_string(e->message, stdout);
        printf(",\"owners\":%s}", e->owners);
      }
      printed++;
    }
    if (v.untracked)
      fprintf(stderr,
              "portowner-dump: <Inventory \"%s\">: %llu endpoints beyond %d "
              "not looked at\n",
              po_inventory_name(iv.v[i]), (unsigned long long)v.untracked,
              PO_INV_ENDPOINTS_MAX);
  }
  if (json)
    fputs(printed ? "\n]\n" : "]\n", stdout);
  if (!status && snap.stats.walk.denied)
    say_denied(proc_root, &snap.stats.walk);
  po_snapshot_free(&snap);
out:
  po_inv_events_free(&ev);
  po_ctx_free(ctx);
  for (size_t i = 0; i < iv.n; i++)
    po_inventory_free(iv.v[i]);
  free(iv.v);
  free(ports);
  if (!status && iv.errors)
    status = 2;
  return status;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"json", no_argument, NULL, 'j'},
      {"port", required_argument, NULL, 'p'},
      {"proto", required_argument, NULL, 'P'},
      {"source", required_argument, NULL, 's'},
      {"proc-root", required_argument, NULL, 'r'},
      {"all-namespaces", optional_argument, NULL, 'a'},
      {"unit", required_argument, NULL, 'u'},
      {"resolver", required_argument, NULL, 'R'},
      {"undeclared", required_argument, NULL, 'U'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  struct po_query q = {.source = PO_SOURCE_AUTO};
  struct po_range *ports = NULL;
  size_t nports = 0;
  const char *proc_root = "/proc";
  const char *resolver = "auto";
  int json = 0, c, err, status = 0;
  struct po_ctx *ctx;
  struct po_snapshot snap;
  char **unit_globs = NULL; /* --unit: into argv */
  size_t nunits = 0;
  uint8_t *keep = NULL;
  const char *config = NULL; /* --undeclared */

  opterr = 0;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'j':
      json = 1;
      break;
    case 'p': {
      const char *bad = optarg;

      err = po_ports_parse(optarg, &ports, &nports, &bad);
      if (err == -ENOMEM) {
        fputs("portowner-dump: out of memory\n", stderr);
        return 1;
      }
      if (err) {
        free(ports);
        free(unit_globs);
        return bad_port(bad, err);
      }
      break;
    }
    case 'P': {
      unsigned m;

      if (po_proto_parse(optarg, &m) != 0) {
        free(ports);
        free(unit_globs);
        return bad_arg("--proto", optarg,
                       "expected tcp, tcp4, tcp6, udp, udp4 or udp6");
      }
      q.mask |= m;
      break;
    }
    case 's':
      if (strcmp(optarg, "auto") == 0)
        q.source = PO_SOURCE_AUTO;
      else if (strcmp(optarg, "netlink") == 0)
        q.source = PO_SOURCE_NETLINK;
      else if (strcmp(optarg, "proc") == 0)
        q.source = PO_SOURCE_PROC;
      else {
        free(ports);
        free(unit_globs);
        return bad_arg("--source", optarg, "expected auto, netlink or proc");
      }
      break;
    case 'r':
      proc_root = optarg;
      break;
    case 'R':
      if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "bpf") != 0 &&
          strcmp(optarg, "proc") != 0) {
        free(ports);
        free(unit_globs);
        return bad_arg("--resolver", optarg, "expected auto, bpf or proc");
      }
      resolver = optarg;
      break;
    case 'a':
      q.all_namespaces = PO_NS_TRUSTED;
      if (optarg && po_config_namespaces(optarg, &q.all_namespaces) != 0) {
        free(ports);
        free(unit_globs);
        return bad_arg("--all-namespaces", optarg, "expected trusted or all");
      }
      break;
    case 'u': {
      char **nu;

      if (!optarg[0] || strlen(optarg) > 1024) {
        free(ports);
        free(unit_globs);
        return bad_arg("--unit", optarg, "expected a glob of 1 to 1024 bytes");
      }
      nu = realloc(unit_globs, (nunits + 1) * sizeof(*nu));
      if (!nu) {
        fputs("portowner-dump: out of memory\n", stderr);
        free(ports);
        free(unit_globs);
        return 1;
      }
      unit_globs = nu;
      unit_globs[nunits++] = optarg;
      break;
    }
    case 'U':
      config = optarg;
      break;
    case 'h':
      usage(stdout);
      free(ports);
      free(unit_globs);
      return 0;
    case 'V':
      puts("portowner-dump " PACKAGE_VERSION);
      free(ports);
      free(unit_globs);
      return 0;
    default:
      free(ports);
      free(unit_globs);
      if (optopt)
        return bad_arg("option", argv[optind - 1],
                       "missing its value or not an option");
      return bad_arg("option", argv[optind - 1], "unknown option");
    }
  }
  if (optind < argc) {
    free(ports);
    free(unit_globs);
    return bad_arg("argument", argv[optind], "takes no arguments");
  }
  if (config) {
    if (nports || q.mask || nunits) {
      free(ports);
      free(unit_globs);
      return bad_arg("option", "--undeclared",
                     "takes its ports, protocols and units from the config: "
                     "no --port, --proto or --unit");
    }
    status = undeclared(config, &q, proc_root, json);
    if (fflush(stdout) != 0 && !status) {
      fprintf(stderr, "portowner-dump: writing output: %s\n", strerror(errno));
      status = 1;
    }
    return status;
  }
  q.ports = ports;
  q.nports = nports;

  ctx = po_ctx_new(proc_root);
  if (!ctx) {
    fprintf(stderr, "portowner-dump: %s\n", strerror(errno));
    free(ports);
    free(unit_globs);
    return 1;
  }
  if (strcmp(resolver, "proc") != 0) {
    const char *why = "";

    err = po_ctx_use_bpf(ctx, &why);
    if (err && strcmp(resolver, "bpf") == 0) {
      fprintf(stderr, "portowner-dump: --resolver bpf: %s: %s\n", why,
              strerror(-err));
      po_ctx_free(ctx);
      free(ports);
      free(unit_globs);
      return 1;
    }
  }
  err = po_snapshot_take(ctx, &q, &snap);
  if (err) {
    fprintf(stderr, "portowner-dump: cannot read the listening sockets%s: %s\n",
            q.source == PO_SOURCE_NETLINK ? " through netlink"
            : q.source == PO_SOURCE_PROC  ? " from /proc/net"
                                          : "",
            strerror(-err));
    status = 1;
  } else if (nunits && !(keep = select_units(&snap, unit_globs, nunits))) {
    fputs("portowner-dump: out of memory\n", stderr);
    status = 1;
  } else if (json) {
    char *out;

    err = po_json_snapshot_some(&snap, keep, 1, &out, NULL);
    if (err) {
      fprintf(stderr, "portowner-dump: %s\n", strerror(-err));
      status = 1;
    } else {
      puts(out);
      free(out);
    }
  } else {
    print_table(&snap, q.all_namespaces, keep, stdout);
  }
  if (!status && snap.stats.walk.denied)
    say_denied(proc_root, &snap.stats.walk);
  else if (!status && snap.stats.unowned_foreign && !po_proc_self_sees_all())
    fprintf(stderr,
            "portowner-dump: %llu socket(s) of other users show no owner: "
            "their processes may be hidden from us (/proc mounted with "
            "hidepid) or their fds unreadable; run as root, or grant "
            "CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE\n",
            (unsigned long long)snap.stats.unowned_foreign);
  if (!status && snap.stats.walk.tasks_skipped)
    fprintf(stderr,
            "portowner-dump: the fd tables of %llu thread(s) were not looked "
            "at (a look stops after %d system calls, and needs kcmp(2) to "
            "tell tables apart); a socket held only there shows no owner\n",
            (unsigned long long)snap.stats.walk.tasks_skipped, PO_LOOK_BUDGET);
  if (!status && snap.stats.ns_failed)
    fprintf(stderr,
            "portowner-dump: %llu network namespaces could not be read\n",
            (unsigned long long)snap.stats.ns_failed);
  if (!status && snap.stats.ns_untrusted && q.all_namespaces == PO_NS_TRUSTED)
    fprintf(stderr,
            "portowner-dump: %llu network namespace(s) not owned by the "
            "initial user namespace (a user's own: unshare -rn) were not "
            "read: --all-namespaces=all shows them\n",
            (unsigned long long)snap.stats.ns_untrusted);
  if (!status && snap.stats.malformed)
    fprintf(stderr, "portowner-dump: %llu malformed records skipped\n",
            (unsigned long long)snap.stats.malformed);
  po_snapshot_free(&snap);
  po_ctx_free(ctx);
  free(ports);
  free(unit_globs);
  free(keep);
  if (fflush(stdout) != 0 && !status) {
    fprintf(stderr, "portowner-dump: writing output: %s\n", strerror(errno));
    status = 1;
  }
  return status;
}
