/*
 * po-bench: the benchmark's probes that are not commands of their own.
 *
 *   po-bench lower
 *       The lower bound of any full walk: getdents64 of /proc, and of each
 *       /proc/PID/fd, one readlinkat per fd, nothing else. Prints the fds
 *       and sockets seen.
 *   po-bench incr PORT READS [noattr]
 *       One po_ctx: a first (full) read untimed, then READS steady-state
 *       reads of PORT (TCP) through po_snapshot_take(). Prints the median
 *       time of those reads, how many were incremental, and what they read.
 *       noattr: with attribution off (no cgroup of owners or sockets read).
 *   po-bench inventory READS
 *       One po_ctx and one <Inventory> (every TCP port, nothing allowed,
 *       Hits 1): a first read untimed, then READS steady-state reads, each
 *       po_snapshot_take() of every port and po_inventory_eval(). Prints
 *       the median time of a read and how many endpoints it judged.
 *   po-bench table READS
 *       The listener table by netlink (po_table_dump_netlink, TCP v4+v6)
 *       against reading /proc/net/tcp and /proc/net/tcp6 whole, alternated,
 *       READS times each. Prints both medians.
 *
 * Times are CLOCK_MONOTONIC, in nanoseconds, as key=value pairs on one line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "portowner/inventory.h"
#include "portowner/resolve_bpf.h"
#include "portowner/snapshot.h"
#include "portowner/table.h"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int u64_cmp(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static uint64_t median(uint64_t *v, size_t n) {
  qsort(v, n, sizeof(*v), u64_cmp);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct dent {
  uint64_t ino;
  int64_t off;
  unsigned short reclen;
  unsigned char type;
  char name[];
};

static int lower(void) {
  static char pbuf[32768], fbuf[32768];
  uint64_t fds = 0, socks = 0, procs = 0;
  int pfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0)
    return 1;
  for (;;) {
    ssize_t n = getdents64(pfd, pbuf, sizeof(pbuf));
    if (n <= 0)
      break;
    for (ssize_t off = 0; off < n;) {
      struct dent *d = (void *)(pbuf + off);
      off += d->reclen;
      if (d->name[0] < '1' || d->name[0] > '9')
        continue;
      char path[32];
      snprintf(path, sizeof(path), "%s/fd", d->name);
      int dfd = openat(pfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd < 0)
        continue;
      procs++;
      for (;;) {
        ssize_t m = getdents64(dfd, fbuf, sizeof(fbuf));
        if (m <= 0)
          break;
        for (ssize_t o = 0; o < m;) {
          struct dent *e = (void *)(fbuf + o);
          o += e->reclen;
          if (e->name[0] == '.')
            continue;
          char link[64];
          ssize_t len = readlinkat(dfd, e->name, link, sizeof(link));
          fds++;
          if (len > 7 && memcmp(link, "socket:", 7) == 0)
            socks++;
        }
      }
      close(dfd);
    }
  }
  close(pfd);
  printf("procs=%" PRIu64 " fds=%" PRIu64 " sockets=%" PRIu64 "\n", procs, fds,
         socks);
  return 0;
}

static int incr(int port, int reads, int attribution) {
  struct po_range r = {(uint16_t)port, (uint16_t)port};
  struct po_query q = {.mask = PO_TCP, .ports = &r, .nports = 1};
  struct po_ctx *ctx = po_ctx_new(NULL);
  uint64_t *t = calloc((size_t)reads, sizeof(*t));
  unsigned incremental = 0;
  struct po_snapshot s;
  struct po_walk_stats last = {0};
  size_t owners = 0;
  uint64_t full_ns;

  if (!ctx || !t)
    return 1;
  po_ctx_set_full_scan_interval(ctx, 1e6);
  po_ctx_set_attribution(ctx, attribution);
  full_ns = now_ns();
  if (po_snapshot_take(ctx, &q, &s) != 0)
    return 1;
  full_ns = now_ns() - full_ns;
  po_snapshot_free(&s);
  for (int i = 0; i < reads; i++) {
    uint64_t t0 = now_ns();
    int err = po_snapshot_take(ctx, &q, &s);
    t[i] = now_ns() - t0;
    if (err)
      return 1;
    incremental += s.stats.walk.kind == PO_WALK_INCREMENTAL;
    last = s.stats.walk;
    owners = s.nowners;
    po_snapshot_free(&s);
  }
  printf("median_ns=%" PRIu64 " first_full_ns=%" PRIu64
         " incremental=%u reads=%d owners=%zu listed=%" PRIu64
         " procs_read=%" PRIu64 " fds_read=%" PRIu64 " verified=%" PRIu64 "\n",
         median(t, (size_t)reads), full_ns, incremental, reads, owners,
         last.listed, last.procs, last.fds, last.verified);
  free(t);
  po_ctx_free(ctx);
  return 0;
}

static int inventory(int reads) {
  struct po_inventory *inv = po_inventory_new("bench");
  struct po_query q = {.mask = PO_TCP};
  struct po_ctx *ctx = po_ctx_new(NULL);
  uint64_t *t = calloc((size_t)reads, sizeof(*t));
  struct po_inv_events ev = {0};
  struct po_inventory_values v = {0};
  struct po_snapshot s;

  if (!inv || !ctx || !t || po_inventory_finish(inv) != 0)
    return 1;
  po_ctx_set_full_scan_interval(ctx, 1e6);
  for (int i = -1; i < reads; i++) {
    uint64_t t0 = now_ns();
    int err = po_snapshot_take(ctx, &q, &s);

    if (!err)
      err = po_inventory_eval(inv, &s, s.netns, &v, &ev);
    if (i >= 0)
      t[i] = now_ns() - t0;
    po_snapshot_free(&s);
    po_inv_events_clear(&ev);
    if (err)
      return 1;
  }
  printf("median_ns=%" PRIu64 " reads=%d listeners=%" PRIu64
         " undeclared=%" PRIu64 "\n",
         median(t, (size_t)reads), reads, v.listeners, v.undeclared);
  po_inv_events_free(&ev);
  po_inventory_free(inv);
  po_ctx_free(ctx);
  free(t);
  return 0;
}

static uint64_t read_file(const char *path, char *buf, size_t size) {
  uint64_t total = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  for (;;) {
    ssize_t n = read(fd, buf, size);
    if (n <= 0)
      break;
    total += (uint64_t)n;
  }
  close(fd);
  return total;
}

static int table(int reads) {
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  uint64_t *a = calloc((size_t)reads, sizeof(*a));
  uint64_t *b = calloc((size_t)reads, sizeof(*b));
  static char buf[1 << 16];
  struct po_table t = {0};
  uint64_t bytes = 0;
  size_t socks = 0;

  if (nl < 0 || !a || !b)
    return 1;
  for (int i = 0; i < reads; i++) {
    uint64_t t0 = now_ns();
    po_table_clear(&t);
    if (po_table_dump_netlink(&t, nl, PO_TCP, 0, NULL, NULL) != 0)
      return 1;
    a[i] = now_ns() - t0;
    socks = t.len;
    t0 = now_ns();
    bytes = read_file("/proc/net/tcp", buf, sizeof(buf)) +
            read_file("/proc/net/tcp6", buf, sizeof(buf));
    b[i] = now_ns() - t0;
  }
  printf("netlink_ns=%" PRIu64 " procnet_ns=%" PRIu64
         " listeners=%zu procnet_bytes=%" PRIu64 "\n",
         median(a, (size_t)reads), median(b, (size_t)reads), socks, bytes);
  po_table_free(&t);
  free(a);
  free(b);
  close(nl);
  return 0;
}

/* Full walks on one ctx: the BPF walk (bpf: walks as resolve_bpf.h's
 * mask, PO_BPF_ALL for the plugin's) or the readlink walk with
 * FullScanInterval 0 (bpf < 0); the BPF program's load is timed apart, and
 * the first read is printed apart too (first_ns: for BPF, the learning of
 * the wanted sockets' files). */
static int walks(int port, int reads, int bpf) {
  struct po_range r = {(uint16_t)port, (uint16_t)port};
  struct po_query q = {.mask = PO_TCP, .ports = &r, .nports = 1};
  struct po_ctx *ctx = po_ctx_new(NULL);
  uint64_t *t = calloc((size_t)reads, sizeof(*t));
  struct po_snapshot s;
  struct po_walk_stats last = {0};
  size_t owners = 0;
  uint64_t load_ns = now_ns();
  const char *why = "";
  int err;

  if (!ctx || !t)
    return 1;
  po_ctx_set_full_scan_interval(ctx, 0);
  if (bpf >= 0) {
    if ((err = po_ctx_use_bpf(ctx, &why)) != 0) {
      fprintf(stderr, "po-bench: BPF walk: %s: %s\n", why, strerror(-err));
      return 1;
    }
    po_ctx_set_bpf_walks(ctx, (unsigned)bpf);
  }
  load_ns = now_ns() - load_ns;
  for (int i = 0; i < reads; i++) {
    uint64_t t0 = now_ns();
    err = po_snapshot_take(ctx, &q, &s);
    t[i] = now_ns() - t0;
    if (err || (s.socks.len && s.stats.walk.kind != PO_WALK_FULL))
      return 1;
    last = s.stats.walk;
    owners = s.nowners;
    po_snapshot_free(&s);
  }
  printf("median_ns=%" PRIu64 " first_ns=%" PRIu64 " load_ns=%" PRIu64
         " reads=%d owners=%zu "
         "procs=%" PRIu64 " fds=%" PRIu64 " tables=%" PRIu64 "\n",
         median(t + (reads > 1), (size_t)reads - (reads > 1)), t[0], load_ns,
         reads, owners, last.procs, last.fds, last.bpf_tables);
  free(t);
  po_ctx_free(ctx);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "lower") == 0)
    return lower();
  if ((argc == 4 || (argc == 5 && strcmp(argv[4], "noattr") == 0)) &&
      strcmp(argv[1], "incr") == 0)
    return incr(atoi(argv[2]), atoi(argv[3]) > 0 ? atoi(argv[3]) : 1,
                argc == 4);
  if (argc == 4 &&
      (strcmp(argv[1], "bpf") == 0 || strcmp(argv[1], "bpffiles") == 0 ||
       strcmp(argv[1], "full") == 0))
    return walks(atoi(argv[2]), atoi(argv[3]) > 0 ? atoi(argv[3]) : 1,
                 strcmp(argv[1], "bpf") == 0        ? (int)PO_BPF_ALL
                 : strcmp(argv[1], "bpffiles") == 0 ? 0
                                                    : -1);
  if (argc == 3 && strcmp(argv[1], "inventory") == 0)
    return inventory(atoi(argv[2]) > 0 ? atoi(argv[2]) : 1);
  if (argc == 3 && strcmp(argv[1], "table") == 0)
    return table(atoi(argv[2]) > 0 ? atoi(argv[2]) : 1);
  fprintf(stderr, "usage: po-bench lower | incr PORT READS [noattr] | bpf "
                  "PORT READS | bpffiles PORT READS | full PORT READS | "
                  "inventory READS | table READS\n");
  return 2;
}
