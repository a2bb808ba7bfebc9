/*
 * portowner: proof that the fast path is right.
 *
 * - The kernel-side port filter: the bytecode the kernel accepts and runs,
 *   checked against the user-space filter on real listeners.
 * - Incremental resolution (po_resolver_resolve() behind po_snapshot_take()):
 *   a randomized churn, seeded and reproducible (a fixed seed unless
 *   PO_CHURN_SEED=N replays another or PO_CHURN_SEED=random draws one; the
 *   seed is printed; PO_CHURN_STEPS for a longer run), where
 *   after every step the incremental read must equal a fresh full walk:
 *     * on a fixture ProcRoot tree, where pids and start times are ours, so
 *       that pid reuse happens on every run;
 *     * on the real /proc with real processes ("agents", this program run
 *       with --agent) that listen, close, fork (workers inherit sockets),
 *       exec (sockets without O_CLOEXEC survive it) and exit, with pids
 *       reused through /proc/sys/kernel/ns_last_pid where we may write it;
 *   and the one documented blind spot, a listener passed over SCM_RIGHTS
 *   into a process that was already read, which must be right after the
 *   next full walk.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "portowner/resolve.h"
#include "portowner/resolve_bpf.h"
#include "portowner/snapshot.h"
#include "portowner/table.h"
#include "fixture.h"

static char self_exe[PATH_MAX];
static uint64_t seed;
#define CHURN_SEED_DEFAULT UINT64_C(20261201)

/* ---- seeded randomness (xorshift64*) ---------------------------------------
 */

static uint64_t rng_state;

static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * UINT64_C(2685821657736338717);
}

static unsigned rnd_below(unsigned n) {
  return n ? (unsigned)(rnd() % n) : 0;
}

static unsigned env_steps(unsigned dflt) {
  const char *s = getenv("PO_CHURN_STEPS");
  return s && atoi(s) > 0 ? (unsigned)atoi(s) : dflt;
}

/* ---- comparing two snapshots ----------------------------------------------
 */

/* Fails (with the seed, the step and what differs) unless a and b have the
 * same sockets, each with the same owners (pid, fd), and the same comm for
 * every owner. */
static void assert_same(const struct po_snapshot *a,
                        const struct po_snapshot *b, const char *what,
                        unsigned step) {
  int same = a->socks.len == b->socks.len && a->nowners == b->nowners;
  for (size_t i = 0; same && i < a->socks.len; i++) {
    const struct po_socket *x = &a->socks.v[i], *y = &b->socks.v[i];
    same = x->inode == y->inode && x->port == y->port &&
           x->owner_count == y->owner_count;
    for (size_t k = 0; same && k < x->owner_count; k++) {
      const struct po_owner *o = &a->owners[x->owner_first + k];
      const struct po_owner *p = &b->owners[y->owner_first + k];
      same = o->pid == p->pid && o->fd == p->fd && o->nfds == p->nfds &&
             memcmp(o->fds, p->fds, sizeof(o->fds)) == 0 &&
             strcmp(a->procs[o->proc].comm, b->procs[p->proc].comm) == 0;
    }
  }
  if (same)
    return;
  fprintf(stderr, "# %s differs at step %u (seed %" PRIu64 "):\n", what, step,
          seed);
  for (int w = 0; w < 2; w++) {
    const struct po_snapshot *s = w ? b : a;
    fprintf(stderr, "#   %s:", w ? "full walk" : "incremental");
    for (size_t i = 0; i < s->socks.len; i++) {
      const struct po_socket *x = &s->socks.v[i];
      fprintf(stderr, " [%" PRIu64 " :%u", x->inode, x->port);
      for (size_t k = 0; k < x->owner_count; k++) {
        const struct po_owner *o = &s->owners[x->owner_first + k];
        fprintf(stderr, " %d/%d %s", (int)o->pid, o->fd,
                s->procs[o->proc].comm);
      }
      fprintf(stderr, "]");
    }
    fprintf(stderr, "\n");
  }
  fail_msg("incremental read differs from a full walk");
}

/* Every owner of a is an owner of the same socket in b, fds and comm alike
 * (a read whose new sockets wait for a full walk names fewer owners, never
 * a wrong one); the sockets are the same. */
static void assert_subset(const struct po_snapshot *a,
                          const struct po_snapshot *b, const char *what,
                          unsigned step) {
  int ok = a->socks.len == b->socks.len;
  for (size_t i = 0; ok && i < a->socks.len; i++) {
    const struct po_socket *x = &a->socks.v[i], *y = &b->socks.v[i];
    ok = x->inode == y->inode && x->owner_count <= y->owner_count;
    for (size_t k = 0; ok && k < x->owner_count; k++) {
      const struct po_owner *o = &a->owners[x->owner_first + k];
      int found = 0;
      for (size_t m = 0; !found && m < y->owner_count; m++) {
        const struct po_owner *p = &b->owners[y->owner_first + m];
        found = o->pid == p->pid && o->tid == p->tid && o->nfds == p->nfds &&
                memcmp(o->fds, p->fds, sizeof(o->fds)) == 0 &&
                strcmp(a->procs[o->proc].comm, b->procs[p->proc].comm) == 0;
      }
      ok = found;
    }
  }
  if (!ok)
    assert_same(a, b, what, step); /* prints both, fails */
}

/* 1 when process pid holds a socket of s on fd (one owner per process and
 * socket: fd is one of its fds). */
static int has_owner(const struct po_snapshot *s, pid_t pid, int fd) {
  for (size_t i = 0; i < s->nowners; i++)
    if (s->owners[i].pid == pid)
      for (uint32_t k = 0; k < s->owners[i].nfds && k < PO_OWNER_FDS; k++)
        if (s->owners[i].fds[k] == fd)
          return 1;
  return 0;
}

struct kinds {
  unsigned full, incremental;
  unsigned bpf_tables; /* BPF walks of fd tables (the rest: of files) */
  unsigned reasons[PO_REASON_BPF + 1];
};

static void count_kind(struct kinds *k, const struct po_snapshot *s) {
  if (s->stats.walk.kind == PO_WALK_INCREMENTAL)
    k->incremental++;
  else if (s->stats.walk.kind == PO_WALK_FULL) {
    k->full++;
    k->reasons[s->stats.walk.reason]++;
    k->bpf_tables += s->stats.walk.bpf_tables != 0;
  }
}

static void print_kinds(const char *what, const struct kinds *k) {
  printf("# %s: %u incremental, %u full reads (first %u, asked %u, "
         "interval %u, new inode %u, verify %u, unowned %u)\n",
         what, k->incremental, k->full, k->reasons[PO_REASON_FIRST],
         k->reasons[PO_REASON_ASKED], k->reasons[PO_REASON_INTERVAL],
         k->reasons[PO_REASON_NEW_INODE], k->reasons[PO_REASON_VERIFY],
         k->reasons[PO_REASON_UNOWNED]);
}

/* ---- the kernel-side port filter ------------------------------------------
 */

/* Runs a program as the kernel's inet_diag_bc_run() does (accept when it
 * ends exactly at its end), after checking what inet_diag_bc_audit()
 * checks for the ops we use. Returns 1 accept, 0 reject, -1 invalid. */
static int bc_run(const unsigned char *bc, int len, uint16_t sport) {
  for (int off = 0, rest = len; rest > 0;) {
    struct inet_diag_bc_op op;
    if (rest < 4)
      return -1;
    memcpy(&op, bc + off, 4);
    if (op.yes < 4 || op.yes % 4 || op.yes > rest + 4 || op.no % 4 ||
        op.no > rest + 4)
      return -1;
    off += op.yes;
    rest -= op.yes;
  }
  int rest = len;
  const unsigned char *p = bc;
  while (rest > 0) {
    struct inet_diag_bc_op op, arg;
    int yes = 1;
    memcpy(&op, p, 4);
    switch (op.code) {
    case INET_DIAG_BC_S_GE:
    case INET_DIAG_BC_S_LE:
      if (rest < 8)
        return -1;
      memcpy(&arg, p + 4, 4);
      yes = op.code == INET_DIAG_BC_S_GE ? sport >= arg.no : sport <= arg.no;
      break;
    case INET_DIAG_BC_JMP:
      yes = 0;
      break;
    default:
      return -1;
    }
    int step = yes ? op.yes : op.no;
    rest -= step;
    p += step;
  }
  return rest == 0;
}

static void test_bytecode(void **state) {
  (void)state;
  unsigned char bc[PO_DIAG_FILTER_MAX * 20 + 64];
  struct po_range r[PO_DIAG_FILTER_MAX + 2];

  assert_int_equal(po_diag_bytecode(bc, sizeof(bc), NULL, 0), 0);
  r[0] = (struct po_range){80, 79};
  assert_int_equal(po_diag_bytecode(bc, sizeof(bc), r, 1), -EINVAL);
  r[0] = (struct po_range){1, 65535};
  assert_int_equal(po_diag_bytecode(bc, sizeof(bc), r, 1), 0);
  r[0] = (struct po_range){80, 80};
  assert_int_equal(po_diag_bytecode(bc, sizeof(bc), r, 1), 16);
  assert_int_equal(po_diag_bytecode(bc, 15, r, 1), -ENOSPC);
  /* Adjacent and overlapping ranges merge into one. */
  r[0] = (struct po_range){80, 89};
  r[1] = (struct po_range){90, 99};
  r[2] = (struct po_range){85, 95};
  assert_int_equal(po_diag_bytecode(bc, sizeof(bc), r, 3), 16);
  /* Too many ranges: no kernel filter at all (user space filters). */
  for (int i = 0; i < PO_DIAG_FILTER_MAX + 1; i++)
    r[i] = (struct po_range){(uint16_t)(100 + 2 * i), (uint16_t)(100 + 2 * i)};
  assert_int_equal(po_diag_bytecode(bc, sizeof(bc), r, PO_DIAG_FILTER_MAX + 1),
                   0);
  assert_int_equal(po_diag_bytecode(bc, sizeof(bc), r, PO_DIAG_FILTER_MAX),
                   (PO_DIAG_FILTER_MAX - 1) * 20 + 16);

  /* Random range sets: the program accepts exactly the ports in a range. */
  for (int round = 0; round < 200; round++) {
    size_t n = 1 + rnd_below(6);
    for (size_t i = 0; i < n; i++) {
      uint16_t lo = (uint16_t)(1 + rnd_below(300));
      r[i] = (struct po_range){lo, (uint16_t)(lo + rnd_below(20))};
    }
    int len = po_diag_bytecode(bc, sizeof(bc), r, n);
    assert_true(len > 0);
    for (unsigned port = 0; port < 400; port++) {
      int want = po_ranges_match(r, n, (uint16_t)port);
      int got = bc_run(bc, len, (uint16_t)port);
      if (got != want)
        fail_msg("port %u: bytecode says %d, ranges say %d (seed %" PRIu64 ")",
                 port, got, want, seed);
    }
  }
}

/* Real listeners, real kernel: the filtered dump is the unfiltered dump
 * with the user-space filter applied, for random range sets. */
static void test_kernel_filter_live(void **state) {
  (void)state;
  enum { N = 8 };
  int fds[N];
  uint16_t ports[N];
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0)
    skip();

  for (int i = 0; i < N; i++) {
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fds[i] >= 0);
    assert_int_equal(bind(fds[i], (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fds[i], 4), 0);
    assert_int_equal(getsockname(fds[i], (struct sockaddr *)&a, &alen), 0);
    ports[i] = ntohs(a.sin_port);
  }

  for (int round = 0; round < 40; round++) {
    struct po_range r[4];
    size_t n = 1 + rnd_below(4);
    for (size_t i = 0; i < n; i++) {
      uint16_t p = ports[rnd_below(N)];
      uint16_t w = (uint16_t)rnd_below(3);
      r[i] = (struct po_range){(uint16_t)(p - w), (uint16_t)(p + w)};
    }
    struct po_table all = {0}, filtered = {0};
    assert_int_equal(po_table_dump_netlink(&all, nl, PO_TCP4, 0, NULL, NULL),
                     0);
    assert_int_equal(po_table_dump_netlink_ports(&filtered, nl, PO_TCP4, 0, r,
                                                 n, NULL, NULL),
                     0);
    size_t want = 0;
    for (size_t i = 0; i < all.len; i++)
      if (po_ranges_match(r, n, all.v[i].port))
        want++;
    /* Every socket the kernel sent is in a range, and none is missing. */
    for (size_t i = 0; i < filtered.len; i++)
      assert_true(po_ranges_match(r, n, filtered.v[i].port));
    assert_int_equal(filtered.len, want);
    /* Our own listeners in range are there. */
    for (int k = 0; k < N; k++) {
      if (!po_ranges_match(r, n, ports[k]))
        continue;
      int found = 0;
      for (size_t i = 0; i < filtered.len; i++)
        found |= filtered.v[i].port == ports[k];
      assert_true(found);
    }
    po_table_free(&all);
    po_table_free(&filtered);
  }
  for (int i = 0; i < N; i++)
    close(fds[i]);
  close(nl);
}

/* ---- churn on a fixture ProcRoot ------------------------------------------
 */

#define FX_PROCS 48
#define FX_FDS 12
#define FX_SOCKS 24

struct fproc {
  int pid; /* 0: slot free */
  uint64_t start;
  char comm[16];
  uint64_t fd[FX_FDS]; /* 0: closed; ~0: a pipe; else a socket inode */
};

struct fixture {
  char root[64];
  struct fproc p[FX_PROCS];
  struct fx_listener s[FX_SOCKS]; /* inode 0: slot free */
  int dead[FX_PROCS];             /* pids free for reuse */
  int ndead;
  int next_pid;
  uint64_t next_inode, clock;
  unsigned reused;
};

static const uint16_t fx_ports[] = {8001, 8002, 8003, 9999};
static const struct po_range fx_watch[] = {{8001, 8003}};

/* Writes process slot i as <root>/<pid>/{stat,comm,status,fd/N}. */
static void fx_write_proc(struct fixture *x, int i) {
  const struct fproc *p = &x->p[i];

  fx_remove(x->root, "%d", p->pid);
  fx_proc(x->root, p->pid);
  fx_proc_details(x->root, p->pid, p->comm, 0, p->start);
  for (int k = 0; k < FX_FDS; k++) {
    char target[32];

    if (!p->fd[k])
      continue;
    if (p->fd[k] == UINT64_MAX) {
      snprintf(target, sizeof(target), "pipe:[%d]", 1000 + k);
      fx_fd(x->root, p->pid, k, target);
    } else {
      fx_sockfd(x->root, p->pid, k, p->fd[k]);
    }
  }
}

static void fx_write_table(struct fixture *x) {
  fx_net_tcp(x->root, x->s, FX_SOCKS);
}

static int fx_alive(const struct fixture *x) {
  int n = 0;
  for (int i = 0; i < FX_PROCS; i++)
    n += x->p[i].pid != 0;
  return n;
}

static int fx_pick(const struct fixture *x) {
  int n = fx_alive(x);
  if (n == 0)
    return -1;
  int k = (int)rnd_below((unsigned)n);
  for (int i = 0; i < FX_PROCS; i++)
    if (x->p[i].pid && k-- == 0)
      return i;
  return -1;
}

/* A new process in a free slot: a fork of parent (its fds), or a fresh one
 * with a pipe. Reuses a dead pid half of the time. */
static int fx_spawn_pid(struct fixture *x, int parent, int pid) {
  int i;
  for (i = 0; i < FX_PROCS && x->p[i].pid; i++)
    ;
  if (i == FX_PROCS)
    return -1;
  struct fproc *p = &x->p[i];
  memset(p, 0, sizeof(*p));
  if (pid) {
    p->pid = pid;
    x->reused++;
  } else if (x->ndead > 0 && rnd_below(2)) {
    int k = (int)rnd_below((unsigned)x->ndead);
    p->pid = x->dead[k];
    x->dead[k] = x->dead[--x->ndead];
    x->reused++;
  } else {
    p->pid = x->next_pid++;
  }
  p->start = ++x->clock;
  if (parent >= 0) {
    memcpy(p->fd, x->p[parent].fd, sizeof(p->fd));
    memcpy(p->comm, x->p[parent].comm, sizeof(p->comm));
  } else {
    p->fd[0] = UINT64_MAX;
    snprintf(p->comm, sizeof(p->comm), "p%d", p->pid);
  }
  fx_write_proc(x, i);
  return i;
}

static int fx_spawn(struct fixture *x, int parent) {
  return fx_spawn_pid(x, parent, 0);
}

static void fx_exit(struct fixture *x, int i) {
  fx_remove(x->root, "%d", x->p[i].pid);
  if (x->ndead < FX_PROCS)
    x->dead[x->ndead++] = x->p[i].pid;
  x->p[i].pid = 0;
}

/* A new listening socket, held by process i at its lowest free fd. */
static void fx_listen(struct fixture *x, int i) {
  int k, s;
  for (k = 0; k < FX_FDS && x->p[i].fd[k]; k++)
    ;
  for (s = 0; s < FX_SOCKS && x->s[s].inode; s++)
    ;
  if (k == FX_FDS || s == FX_SOCKS)
    return;
  x->s[s].inode = x->next_inode++;
  x->s[s].port = fx_ports[rnd_below(4)];
  x->p[i].fd[k] = x->s[s].inode;
  fx_write_table(x);
  fx_write_proc(x, i);
}

static int fx_random_fd(const struct fixture *x, int i) {
  int n = 0;
  for (int k = 0; k < FX_FDS; k++)
    n += x->p[i].fd[k] != 0;
  if (n == 0)
    return -1;
  int c = (int)rnd_below((unsigned)n);
  for (int k = 0; k < FX_FDS; k++)
    if (x->p[i].fd[k] && c-- == 0)
      return k;
  return -1;
}

/* One random step; returns its name. */
static const char *fx_step(struct fixture *x) {
  int i = fx_pick(x), k;
  unsigned op = rnd_below(10);

  if (i < 0 || (op == 0 && fx_alive(x) < FX_PROCS))
    op = 0;
  if (op == 8 && fx_alive(x) > 2) {
    /* A process exits and its pid goes at once, before the next read, to
     * a new process: a fork of another one, which may hold sockets the
     * old one did not. */
    int j = fx_pick(x);
    if (j != i) {
      int pid = x->p[i].pid;
      fx_exit(x, i);
      x->ndead--; /* taken again right away */
      fx_spawn_pid(x, j, pid);
      return "exit+reuse";
    }
  }
  if (op == 9) { /* a master opens a listener and forks a worker at once */
    fx_listen(x, i);
    fx_spawn(x, i);
    return "listen+fork";
  }
  switch (op) {
  case 0:
    fx_spawn(x, -1);
    return "spawn";
  case 1:
  case 2:
    fx_spawn(x, i);
    return "fork";
  case 3:
    if (fx_alive(x) > 2)
      fx_exit(x, i);
    return "exit";
  case 4:
    fx_listen(x, i);
    return "listen";
  case 5:
    k = fx_random_fd(x, i);
    if (k >= 0) {
      x->p[i].fd[k] = 0;
      fx_write_proc(x, i);
    }
    return "close";
  case 6: /* exec: a new comm; fds 8 and up were O_CLOEXEC */
    snprintf(x->p[i].comm, sizeof(x->p[i].comm), "exec%u",
             (unsigned)rnd_below(1000));
    for (k = 8; k < FX_FDS; k++)
      x->p[i].fd[k] = 0;
    fx_write_proc(x, i);
    return "exec";
  case 7: { /* a listener closed by all: gone from the table */
    int s = (int)rnd_below(FX_SOCKS);
    if (!x->s[s].inode)
      return "unlisten (none)";
    for (int j = 0; j < FX_PROCS; j++) {
      int changed = 0;
      for (k = 0; k < FX_FDS && x->p[j].pid; k++)
        if (x->p[j].fd[k] == x->s[s].inode) {
          x->p[j].fd[k] = 0;
          changed = 1;
        }
      if (changed)
        fx_write_proc(x, j);
    }
    x->s[s].inode = 0;
    fx_write_table(x);
    return "unlisten";
  }
  default: /* a socket fd replaced by another socket at the same number */
    k = fx_random_fd(x, i);
    if (k >= 0 && x->p[i].fd[k] != UINT64_MAX) {
      x->p[i].fd[k] = 0;
      for (int s = 0; s < FX_SOCKS; s++)
        if (!x->s[s].inode) {
          x->s[s].inode = x->next_inode++;
          x->s[s].port = fx_ports[rnd_below(3)];
          x->p[i].fd[k] = x->s[s].inode;
          break;
        }
      fx_write_table(x);
      fx_write_proc(x, i);
    }
    return "replace fd";
  }
}

static int fx_setup(void **state) {
  struct fixture *x = calloc(1, sizeof(*x));
  if (!x)
    return -1;
  fx_root_make(x->root, sizeof(x->root), NULL, "churn");
  *state = x;
  return 0;
}

/* Removes the tree even when the test failed. */
static int fx_teardown(void **state) {
  struct fixture *x = *state;
  int rc = fx_root_remove(x->root);
  free(x);
  return rc;
}

static void test_fixture_churn(void **state) {
  struct fixture *x = *state;
  x->next_pid = 100;
  x->next_inode = 5000;
  fx_write_table(x);
  for (int i = 0; i < 6; i++)
    fx_spawn(x, -1);

  struct po_ctx *inc = po_ctx_new(x->root), *full = po_ctx_new(x->root);
  assert_non_null(inc);
  assert_non_null(full);
  assert_int_equal(po_ctx_set_full_scan_interval(inc, 1e6), 0);
  assert_int_equal(po_ctx_set_full_scan_interval(full, 0), 0);
  assert_int_equal(po_ctx_set_full_scan_interval(inc, -1), -EINVAL);
  /* Every new socket walks at once here: the rate limit of those walks
   * (test_resolve.c) would make the two differ until the next one. */
  assert_int_equal(po_ctx_set_new_socket_interval(inc, 0), 0);
  assert_int_equal(po_ctx_set_new_socket_interval(inc, -1), -EINVAL);
  struct po_query q = {.mask = PO_TCP4,
                       .ports = fx_watch,
                       .nports = 1,
                       .source = PO_SOURCE_PROC};
  struct kinds k = {0};
  unsigned steps = env_steps(150);
  /* And one with the rate limit, at its strictest: a walk for the first
   * new socket, none for the others but asked for, every 8 steps. */
  struct po_ctx *lim = po_ctx_new(x->root);
  assert_non_null(lim);
  assert_int_equal(po_ctx_set_full_scan_interval(lim, 1e6), 0);
  assert_int_equal(po_ctx_set_new_socket_interval(lim, 9e9), 0);
  unsigned deferred = 0;

  for (unsigned step = 0; step < steps; step++) {
    const char *what = fx_step(x);
    struct po_snapshot a, b, c;
    if (step % 8 == 7)
      po_ctx_request_full_scan(lim);
    assert_int_equal(po_snapshot_take(inc, &q, &a), 0);
    assert_int_equal(po_snapshot_take(full, &q, &b), 0);
    assert_int_equal(po_snapshot_take(lim, &q, &c), 0);
    assert_int_equal(b.stats.walk.kind == PO_WALK_INCREMENTAL, 0);
    count_kind(&k, &a);
    assert_same(&a, &b, what, step);
    /* Rate-limited: right but for the owners of new sockets among
     * processes read before, and right in full when none waits. */
    if (c.stats.walk.deferred) {
      deferred++;
      assert_subset(&c, &b, what, step);
    } else {
      assert_same(&c, &b, what, step);
    }
    po_snapshot_free(&a);
    po_snapshot_free(&b);
    po_snapshot_free(&c);
  }
  printf("# fixture churn, rate-limited: %u reads with new sockets waiting\n",
         deferred);
  assert_true(deferred > 0);
  po_ctx_free(lim);
  print_kinds("fixture churn", &k);
  printf("# fixture churn: %u steps, %u pids reused\n", steps, x->reused);
  /* The test proves something only if both paths ran, and pids were
   * reused. */
  assert_true(k.incremental > steps / 4);
  assert_true(x->reused > 0);

  po_ctx_free(inc);
  po_ctx_free(full);
}

/* ---- churn with real processes ---------------------------------------------
 */

enum {
  OP_LISTEN = 1, /* a: port, b: O_CLOEXEC; reply val: fd */
  OP_CLOSE,      /* a: fd */
  OP_FORK,       /* reply val: child pid, with the child's channel */
  OP_EXIT,
  OP_EXEC, /* a: name number; the new image replies when it runs */
  OP_GIVE, /* a: fd, sent back with the reply (SCM_RIGHTS) */
  OP_TAKE, /* the fd that comes with the command is kept; reply val: fd */
};

struct cmd {
  int op, a, b;
};

struct reply {
  int rc, val, pid;
};

static ssize_t send_fd(int ch, const void *buf, size_t len, int fd) {
  union {
    struct cmsghdr h;
    char b[CMSG_SPACE(sizeof(int))];
  } u;
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd >= 0) {
    memset(&u, 0, sizeof(u));
    m.msg_control = u.b;
    m.msg_controllen = sizeof(u.b);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  return sendmsg(ch, &m, MSG_NOSIGNAL);
}

static ssize_t recv_fd(int ch, void *buf, size_t len, int *fd) {
  union {
    struct cmsghdr h;
    char b[CMSG_SPACE(sizeof(int))];
  } u;
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  struct msghdr m = {.msg_iov = &iov,
                     .msg_iovlen = 1,
                     .msg_control = u.b,
                     .msg_controllen = sizeof(u.b)};
  ssize_t n;
  do
    n = recvmsg(ch, &m, 0);
  while (n < 0 && errno == EINTR);
  if (fd)
    *fd = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); n > 0 && c;
       c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && fd)
      memcpy(fd, CMSG_DATA(c), sizeof(int));
  return n;
}

/* The agent: obeys the driver on ch until told to exit or the driver is
 * gone (EOF). Never returns. */
static void agent(int ch) {
  struct reply r = {0, 0, getpid()};
  signal(SIGCHLD, SIG_IGN); /* its children are reaped by the kernel */
  alarm(600);               /* never outlive a stuck test */
  send_fd(ch, &r, sizeof(r), -1);
  for (;;) {
    struct cmd c;
    int rfd = -1, s;
    if (recv_fd(ch, &c, sizeof(c), &rfd) != (ssize_t)sizeof(c))
      _exit(0);
    r = (struct reply){0, -1, getpid()};
    switch (c.op) {
    case OP_LISTEN: {
      struct sockaddr_in a = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)c.a),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
      int one = 1;
      s = socket(AF_INET, SOCK_STREAM | (c.b ? SOCK_CLOEXEC : 0), 0);
      setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
      if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
          listen(s, 8) != 0) {
        r.rc = -errno;
        if (s >= 0)
          close(s);
      } else {
        r.val = s;
      }
      break;
    }
    case OP_CLOSE:
      r.rc = close(c.a) == 0 ? 0 : -errno;
      break;
    case OP_FORK: {
      int sp[2];
      if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) != 0) {
        r.rc = -errno;
        break;
      }
      pid_t p = fork();
      if (p == 0) {
        close(ch);
        close(sp[0]);
        ch = sp[1];
        alarm(600);
        continue; /* the driver hears from the parent */
      }
      close(sp[1]);
      r.rc = p < 0 ? -errno : 0;
      r.val = (int)p;
      send_fd(ch, &r, sizeof(r), p < 0 ? -1 : sp[0]);
      close(sp[0]);
      continue;
    }
    case OP_EXIT:
      _exit(0);
    case OP_EXEC: {
      char fdarg[16], name[16];
      snprintf(fdarg, sizeof(fdarg), "%d", ch);
      snprintf(name, sizeof(name), "churn-e%d", c.a);
      execl(self_exe, self_exe, "--agent", fdarg, name, (char *)NULL);
      r.rc = -errno;
      break;
    }
    case OP_GIVE:
      send_fd(ch, &r, sizeof(r), c.a);
      continue;
    case OP_TAKE:
      r.val = rfd;
      r.rc = rfd >= 0 ? 0 : -EBADMSG;
      break;
    default:
      r.rc = -EINVAL;
    }
    send_fd(ch, &r, sizeof(r), -1);
  }
}

#define MAX_AGENTS 14
#define MAX_LFDS 24

struct lfd {
  int fd, cloexec;
};

struct agent_s {
  pid_t pid;
  int ch; /* the driver's end; -1: gone */
  struct lfd fds[MAX_LFDS];
  int nfds;
};

struct live {
  struct agent_s a[MAX_AGENTS];
  uint16_t ports[4]; /* the first 3 watched */
  struct po_range watch[3];
  pid_t dead[64];
  int ndead;
  unsigned reuse_tries, reused, names;
};

static int ask(struct agent_s *g, int op, int a, int b, int sendfd,
               struct reply *r, int *rfd) {
  struct cmd c = {op, a, b};
  if (send_fd(g->ch, &c, sizeof(c), sendfd) != (ssize_t)sizeof(c))
    return -EPIPE;
  if (recv_fd(g->ch, r, sizeof(*r), rfd) != (ssize_t)sizeof(*r))
    return -EPIPE;
  return r->rc;
}

/* Starts an agent: this program run again with --agent (so that agents run
 * natively even when the test runs under valgrind). */
static int live_spawn(struct live *L) {
  int i, sp[2];
  for (i = 0; i < MAX_AGENTS && L->a[i].ch >= 0; i++)
    ;
  if (i == MAX_AGENTS)
    return -1;
  assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp),
                   0);
  pid_t p = fork();
  assert_true(p >= 0);
  if (p == 0) {
    char fdarg[16];
    fcntl(sp[1], F_SETFD, 0);
    snprintf(fdarg, sizeof(fdarg), "%d", sp[1]);
    execl(self_exe, self_exe, "--agent", fdarg, "churn-agent", (char *)NULL);
    _exit(127);
  }
  close(sp[1]);
  struct reply r;
  assert_int_equal(recv_fd(sp[0], &r, sizeof(r), NULL), (ssize_t)sizeof(r));
  L->a[i] = (struct agent_s){.pid = r.pid, .ch = sp[0]};
  return i;
}

static void reap(void) {
  while (waitpid(-1, NULL, WNOHANG) > 0)
    ;
}

/* Waits (bounded) until pid is gone, reaping what we may. */
static void wait_gone(pid_t pid) {
  for (int i = 0; i < 5000; i++) {
    reap();
    if (kill(pid, 0) != 0 && errno == ESRCH)
      return;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

static int live_pick(const struct live *L) {
  int n = 0, idx[MAX_AGENTS];
  for (int i = 0; i < MAX_AGENTS; i++)
    if (L->a[i].ch >= 0)
      idx[n++] = i;
  return n ? idx[rnd_below((unsigned)n)] : -1;
}

static int live_count(const struct live *L) {
  int n = 0;
  for (int i = 0; i < MAX_AGENTS; i++)
    n += L->a[i].ch >= 0;
  return n;
}

/* Asks agent i to fork; the child is a new agent. With want, first makes
 * the kernel hand out that pid, which an agent had (ns_last_pid). */
static const char *live_fork(struct live *L, int i, pid_t want) {
  int j;
  for (j = 0; j < MAX_AGENTS && L->a[j].ch >= 0; j++)
    ;
  if (j == MAX_AGENTS)
    return "fork (full)";
  if (want) {
    int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      char b[16];
      int n = snprintf(b, sizeof(b), "%d", (int)want - 1);
      if (write(fd, b, (size_t)n) == n)
        L->reuse_tries++;
      else
        want = 0;
      close(fd);
    } else {
      want = 0;
    }
  }
  struct reply r;
  int cfd = -1;
  assert_int_equal(ask(&L->a[i], OP_FORK, 0, 0, -1, &r, &cfd), 0);
  assert_true(cfd >= 0);
  fcntl(cfd, F_SETFD, FD_CLOEXEC);
  L->a[j] = L->a[i]; /* the child holds what its parent holds */
  L->a[j].pid = r.val;
  L->a[j].ch = cfd;
  if (want && r.val == want) {
    L->reused++;
    return "fork (pid reused)";
  }
  return "fork";
}

static const char *live_step(struct live *L) {
  int i = live_pick(L);
  struct reply r;
  unsigned op = rnd_below(11);

  if (i < 0 || (op == 0 && live_count(L) < MAX_AGENTS)) {
    live_spawn(L);
    return "spawn";
  }
  struct agent_s *g = &L->a[i];
  switch (op) {
  case 0:
  case 1:
    return live_fork(L, i, 0);
  case 2:
    return live_fork(L, i,
                     L->ndead ? L->dead[rnd_below((unsigned)L->ndead)] : 0);
  case 3:
  case 4:
  case 10: {
    if (g->nfds == MAX_LFDS)
      return "listen (full)";
    int cloexec = (int)rnd_below(2);
    if (ask(g, OP_LISTEN, L->ports[rnd_below(4)], cloexec, -1, &r, NULL) != 0)
      return "listen (failed)";
    g->fds[g->nfds++] = (struct lfd){r.val, cloexec};
    if (op == 10) /* and a worker at once: both hold the new socket */
      return live_fork(L, i, 0)[0] ? "listen+fork" : "";
    return "listen";
  }
  case 5: {
    if (g->nfds == 0)
      return "close (none)";
    int k = (int)rnd_below((unsigned)g->nfds);
    assert_int_equal(ask(g, OP_CLOSE, g->fds[k].fd, 0, -1, &r, NULL), 0);
    g->fds[k] = g->fds[--g->nfds];
    return "close";
  }
  case 6:
  case 7: {
    if (live_count(L) <= 2)
      return "exit (kept)";
    int reuse = op == 7;
    struct cmd c = {OP_EXIT, 0, 0};
    char b;
    send_fd(g->ch, &c, sizeof(c), -1);
    /* EOF on the channel: the agent's fds are closed. */
    while (recv_fd(g->ch, &b, 1, NULL) > 0)
      ;
    close(g->ch);
    g->ch = -1;
    wait_gone(g->pid);
    if (L->ndead < 64)
      L->dead[L->ndead++] = g->pid;
    if (reuse) /* its pid to a new fork of another agent, at once */
      return live_fork(L, live_pick(L), g->pid);
    return "exit";
  }
  default: { /* exec: O_CLOEXEC listeners are gone, the others stay */
    struct cmd c = {OP_EXEC, (int)L->names++, 0};
    assert_int_equal(send_fd(g->ch, &c, sizeof(c), -1), (ssize_t)sizeof(c));
    assert_int_equal(recv_fd(g->ch, &r, sizeof(r), NULL), (ssize_t)sizeof(r));
    assert_int_equal(r.pid, g->pid);
    int w = 0;
    for (int k = 0; k < g->nfds; k++)
      if (!g->fds[k].cloexec)
        g->fds[w++] = g->fds[k];
    g->nfds = w;
    return "exec";
  }
  }
}

static void live_stop(struct live *L) {
  for (int i = 0; i < MAX_AGENTS; i++) {
    if (L->a[i].ch < 0)
      continue;
    kill(L->a[i].pid, SIGKILL);
    close(L->a[i].ch);
    L->a[i].ch = -1;
  }
  for (int i = 0; i < MAX_AGENTS; i++)
    if (L->a[i].pid)
      wait_gone(L->a[i].pid);
  reap();
}

static void live_init(struct live *L) {
  memset(L, 0, sizeof(*L));
  for (int i = 0; i < MAX_AGENTS; i++)
    L->a[i].ch = -1;
  /* Ports the kernel picks for us, so that other tests on this machine
   * do not collide with ours. */
  for (int i = 0; i < 4; i++) {
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    L->ports[i] = ntohs(a.sin_port);
    close(s);
    if (i < 3)
      L->watch[i] = (struct po_range){L->ports[i], L->ports[i]};
  }
  /* Orphaned agents come to us, and are reaped by us. */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
}

static void take_pair(struct po_ctx *inc, struct po_ctx *full,
                      const struct po_query *q, struct po_snapshot *a,
                      struct po_snapshot *b) {
  assert_int_equal(po_snapshot_take(inc, q, a), 0);
  assert_int_equal(po_snapshot_take(full, q, b), 0);
}

static void test_live_churn(void **state) {
  (void)state;
  struct live *L = malloc(sizeof(*L));
  assert_non_null(L);
  live_init(L);
  struct po_ctx *inc = po_ctx_new(NULL), *full = po_ctx_new(NULL);
  assert_non_null(inc);
  assert_non_null(full);
  assert_int_equal(po_ctx_set_full_scan_interval(inc, 1e6), 0);
  assert_int_equal(po_ctx_set_full_scan_interval(full, 0), 0);
  assert_int_equal(po_ctx_set_new_socket_interval(inc, 0), 0);
  struct po_query q = {.mask = PO_TCP4, .ports = L->watch, .nports = 3};
  struct kinds k = {0};
  unsigned steps = env_steps(40);

  live_spawn(L);
  live_spawn(L);
  for (unsigned step = 0; step < steps; step++) {
    const char *what = live_step(L);
    struct po_snapshot a, b;
    take_pair(inc, full, &q, &a, &b);
    count_kind(&k, &a);
    assert_same(&a, &b, what, step);
    po_snapshot_free(&a);
    po_snapshot_free(&b);
  }
  print_kinds("live churn", &k);
  printf("# live churn: %u steps, pid reuse asked %u times, got %u\n", steps,
         L->reuse_tries, L->reused);
  assert_true(k.incremental > 0);
  live_stop(L);
  po_ctx_free(inc);
  po_ctx_free(full);
  free(L);
}

/* The same live churn, the BPF walk against the readlink walk (a full
 * walk every read): the same owners after every step, for each way a BPF
 * walk can go (resolve_bpf.h): files learned from the sockets' side, then
 * walks of tables only (the default); files learned by walks of files;
 * walks of files only. PO_CHURN_BPF_STEPS (default 15) for a longer run.
 * Skipped when the BPF walk cannot load (built without it, not root). */
static void test_live_churn_bpf(void **state) {
  (void)state;
  static const unsigned masks[3] = {PO_BPF_ALL, PO_BPF_TABLES, 0};
  struct po_ctx *bpf[3], *full = po_ctx_new(NULL);
  const char *why = "";
  const char *s = getenv("PO_CHURN_BPF_STEPS");
  unsigned steps = s && atoi(s) > 0 ? (unsigned)atoi(s) : 15;
  struct kinds k[3] = {{0}};
  assert_non_null(full);
  for (int m = 0; m < 3; m++) {
    assert_non_null(bpf[m] = po_ctx_new(NULL));
    int rc = po_ctx_use_bpf(bpf[m], &why);
    if (rc) {
      printf("# live churn (bpf): skipped: %s: %s\n", why, strerror(-rc));
      for (int i = 0; i <= m; i++)
        po_ctx_free(bpf[i]);
      po_ctx_free(full);
      skip();
    }
    po_ctx_set_bpf_walks(bpf[m], masks[m]);
  }
  struct live *L = malloc(sizeof(*L));
  assert_non_null(L);
  live_init(L);
  assert_int_equal(po_ctx_set_full_scan_interval(full, 0), 0);
  struct po_query q = {.mask = PO_TCP4, .ports = L->watch, .nports = 3};

  live_spawn(L);
  live_spawn(L);
  for (unsigned step = 0; step < steps; step++) {
    const char *what = live_step(L);
    for (int m = 0; m < 3; m++) {
      struct po_snapshot a, b;
      take_pair(bpf[m], full, &q, &a, &b);
      count_kind(&k[m], &a);
      assert_same(&a, &b, what, step);
      po_snapshot_free(&a);
      po_snapshot_free(&b);
    }
  }
  for (int m = 0; m < 3; m++) {
    printf("# live churn (bpf, walks %u): %u steps, %u full reads by BPF, %u "
           "of them walks of fd tables\n",
           masks[m], steps, k[m].reasons[PO_REASON_BPF], k[m].bpf_tables);
    assert_int_equal(k[m].reasons[PO_REASON_BPF], k[m].full);
    assert_true(k[m].full > 0);
  }
  /* Our own namespace's sockets are all learned from the sockets' side;
   * learned by walks of files, a step with new sockets walks files and one
   * without walks tables; and no walk of tables when none is allowed. */
  assert_int_equal(k[0].bpf_tables, k[0].full);
  assert_true(k[1].bpf_tables > 0);
  assert_true(k[1].bpf_tables < k[1].full);
  assert_int_equal(k[2].bpf_tables, 0);
  live_stop(L);
  for (int m = 0; m < 3; m++)
    po_ctx_free(bpf[m]);
  po_ctx_free(full);
  free(L);
}

/* The BPF walk of fd tables (resolve_bpf.h) against the readlink walk, on
 * what it must not miss: a socket passed to a process walked already (no
 * blind spot: every walk reads every table), its dups across fd chunks and
 * a sparse fd far up the table, the socket handed on and closed by its
 * sender, and a new socket (a walk of files, then of tables again). */
/* The documented blind spot, on purpose: a listener's fd passed over
 * SCM_RIGHTS into processes that were already read. */
static void test_live_scm_rights(void **state) {
  (void)state;
  struct live *L = malloc(sizeof(*L));
  assert_non_null(L);
  live_init(L);
  struct po_ctx *inc = po_ctx_new(NULL), *full = po_ctx_new(NULL);
  assert_non_null(inc);
  assert_non_null(full);
  assert_int_equal(po_ctx_set_full_scan_interval(inc, 1e6), 0);
  assert_int_equal(po_ctx_set_full_scan_interval(full, 0), 0);
  assert_int_equal(po_ctx_set_new_socket_interval(inc, 0), 0);
  struct po_query q = {.mask = PO_TCP4, .ports = L->watch, .nports = 1};
  struct po_snapshot a, b;
  struct reply r;
  int A = live_spawn(L), B = live_spawn(L), lfd, got = -1;

  assert_int_equal(ask(&L->a[A], OP_LISTEN, L->ports[0], 1, -1, &r, NULL), 0);
  lfd = r.val;
  take_pair(inc, full, &q, &a, &b); /* everyone read: B and we hold none */
  assert_int_equal(a.stats.walk.kind, PO_WALK_FULL);
  assert_same(&a, &b, "listen", 0);
  assert_int_equal(a.nowners, 1);
  po_snapshot_free(&a);
  po_snapshot_free(&b);

  /* 1. A sends a copy to us (this process: read already) and keeps its own.
   * The incremental read does not see our new fd; a full walk does. */
  assert_int_equal(ask(&L->a[A], OP_GIVE, lfd, 0, -1, &r, &got), 0);
  assert_true(got >= 0);
  take_pair(inc, full, &q, &a, &b);
  assert_int_equal(a.stats.walk.kind, PO_WALK_INCREMENTAL);
  assert_true(has_owner(&b, getpid(), got));
  assert_false(has_owner(&a, getpid(), got));
  assert_int_equal(a.nowners + 1, b.nowners);
  po_snapshot_free(&a);
  po_snapshot_free(&b);
  /* ... right after the next full walk, asked for: */
  po_ctx_request_full_scan(inc);
  take_pair(inc, full, &q, &a, &b);
  assert_int_equal(a.stats.walk.kind, PO_WALK_FULL);
  assert_int_equal(a.stats.walk.reason, PO_REASON_ASKED);
  assert_same(&a, &b, "SCM_RIGHTS, then a full walk", 1);
  po_snapshot_free(&a);
  po_snapshot_free(&b);

  /* 2. We pass it on to B (read already) and close ours: our remembered fd
   * fails its check, and the fallback walk finds B. */
  assert_int_equal(ask(&L->a[B], OP_TAKE, 0, 0, got, &r, NULL), 0);
  close(got);
  take_pair(inc, full, &q, &a, &b);
  assert_int_equal(a.stats.walk.kind, PO_WALK_FULL);
  assert_int_equal(a.stats.walk.reason, PO_REASON_VERIFY);
  assert_true(has_owner(&a, L->a[B].pid, r.val));
  assert_same(&a, &b, "SCM_RIGHTS, sender closed", 2);
  po_snapshot_free(&a);
  po_snapshot_free(&b);

  /* 3. B sends one more copy to A, which keeps both: missed, until the
   * FullScanInterval walk. */
  int bfd = r.val;
  assert_int_equal(ask(&L->a[B], OP_GIVE, bfd, 0, -1, &r, &got), 0);
  assert_int_equal(ask(&L->a[A], OP_TAKE, 0, 0, got, &r, NULL), 0);
  close(got);
  take_pair(inc, full, &q, &a, &b);
  assert_int_equal(a.stats.walk.kind, PO_WALK_INCREMENTAL);
  assert_false(has_owner(&a, L->a[A].pid, r.val));
  assert_true(has_owner(&b, L->a[A].pid, r.val));
  po_snapshot_free(&a);
  po_snapshot_free(&b);
  assert_int_equal(po_ctx_set_full_scan_interval(inc, 1e-9), 0);
  take_pair(inc, full, &q, &a, &b);
  assert_int_equal(a.stats.walk.kind, PO_WALK_FULL);
  assert_int_equal(a.stats.walk.reason, PO_REASON_INTERVAL);
  assert_same(&a, &b, "SCM_RIGHTS, then the interval walk", 3);
  po_snapshot_free(&a);
  po_snapshot_free(&b);

  /* 4. A new socket of C, handed to B (read already); C closes nothing
   * but exits: the socket had an owner and has none known now. */
  assert_int_equal(po_ctx_set_full_scan_interval(inc, 1e6), 0);
  int C = live_spawn(L);
  assert_int_equal(ask(&L->a[C], OP_LISTEN, L->ports[0], 1, -1, &r, NULL), 0);
  int cfd = r.val;
  take_pair(inc, full, &q, &a, &b);
  assert_same(&a, &b, "listen", 4);
  assert_true(has_owner(&a, L->a[C].pid, cfd));
  po_snapshot_free(&a);
  po_snapshot_free(&b);
  assert_int_equal(ask(&L->a[C], OP_GIVE, cfd, 0, -1, &r, &got), 0);
  assert_int_equal(ask(&L->a[B], OP_TAKE, 0, 0, got, &r, NULL), 0);
  close(got);
  {
    struct cmd c = {OP_EXIT, 0, 0};
    char ch;
    send_fd(L->a[C].ch, &c, sizeof(c), -1);
    while (recv_fd(L->a[C].ch, &ch, 1, NULL) > 0)
      ;
    close(L->a[C].ch);
    L->a[C].ch = -1;
    wait_gone(L->a[C].pid);
  }
  take_pair(inc, full, &q, &a, &b);
  assert_int_equal(a.stats.walk.kind, PO_WALK_FULL);
  assert_int_equal(a.stats.walk.reason, PO_REASON_UNOWNED);
  assert_true(has_owner(&a, L->a[B].pid, r.val));
  assert_same(&a, &b, "SCM_RIGHTS, sender exited", 5);
  po_snapshot_free(&a);
  po_snapshot_free(&b);

  live_stop(L);
  po_ctx_free(inc);
  po_ctx_free(full);
  free(L);
}

/* A walk of learn's, which must be a walk of tables, gives the owners of
 * the readlink walk b. */
static void same_as_learned(struct po_ctx *learn, const struct po_query *q,
                            const struct po_snapshot *b, const char *what,
                            unsigned step) {
  struct po_snapshot c;

  assert_int_equal(po_snapshot_take(learn, q, &c), 0);
  assert_int_equal(c.stats.walk.bpf_tables, 1);
  assert_same(&c, b, what, step);
  po_snapshot_free(&c);
}

static void test_live_bpf_tables(void **state) {
  (void)state;
  struct po_ctx *bpf = po_ctx_new(NULL), *full = po_ctx_new(NULL);
  const char *why = "";
  assert_non_null(bpf);
  assert_non_null(full);
  struct po_ctx *learn = po_ctx_new(NULL);
  assert_non_null(learn);
  int rc = po_ctx_use_bpf(bpf, &why);
  if (!rc)
    rc = po_ctx_use_bpf(learn, &why);
  if (rc) {
    printf("# bpf tables: skipped: %s: %s\n", why, strerror(-rc));
    po_ctx_free(bpf);
    po_ctx_free(learn);
    po_ctx_free(full);
    skip();
  }
  /* bpf learns files by walks of files; learn (the default) from the
   * sockets' side, and so walks tables every time. */
  po_ctx_set_bpf_walks(bpf, PO_BPF_TABLES);
  struct live *L = malloc(sizeof(*L));
  assert_non_null(L);
  live_init(L);
  assert_int_equal(po_ctx_set_full_scan_interval(full, 0), 0);
  struct po_query q = {.mask = PO_TCP4, .ports = L->watch, .nports = 1};
  struct po_snapshot a, b;
  struct reply r;
  int A = live_spawn(L), B = live_spawn(L), lfd, got = -1, dups[70], far;

  assert_int_equal(ask(&L->a[A], OP_LISTEN, L->ports[0], 1, -1, &r, NULL), 0);
  lfd = r.val;
  take_pair(bpf, full, &q, &a, &b); /* new: a walk of files */
  assert_int_equal(a.stats.walk.bpf_tables, 0);
  assert_same(&a, &b, "listen", 0);
  same_as_learned(learn, &q, &b, "listen", 0);
  assert_int_equal(a.nowners, 1);
  po_snapshot_free(&a);
  po_snapshot_free(&b);
  take_pair(bpf, full, &q, &a, &b); /* known: a walk of tables */
  assert_int_equal(a.stats.walk.bpf_tables, 1);
  assert_same(&a, &b, "listen, again", 1);
  same_as_learned(learn, &q, &b, "listen, again", 1);
  po_snapshot_free(&a);
  po_snapshot_free(&b);

  /* 1. A sends a copy to us, walked already; we dup it 70 times (past the
   * first 64 slots) and onto fd 5000 (a sparse table): all seen at once. */
  assert_int_equal(ask(&L->a[A], OP_GIVE, lfd, 0, -1, &r, &got), 0);
  assert_true(got >= 0);
  for (int i = 0; i < 70; i++)
    assert_true((dups[i] = dup(got)) >= 0);
  /* Fd 5000: a table of two blocks of open_fds (4,096 slots each). */
  {
    struct rlimit rl;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur <= 5000 && rl.rlim_max > 5000) {
      rl.rlim_cur = 5001;
      assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    far = rl.rlim_cur > 5000 ? 5000 : (int)rl.rlim_cur - 1;
  }
  assert_int_equal(dup2(got, far), far);
  take_pair(bpf, full, &q, &a, &b);
  assert_int_equal(a.stats.walk.bpf_tables, 1);
  assert_true(has_owner(&a, getpid(), got));
  assert_same(&a, &b, "SCM_RIGHTS to a walked process, dups", 2);
  same_as_learned(learn, &q, &b, "SCM_RIGHTS to a walked process, dups", 2);
  for (size_t i = 0; i < a.nowners; i++)
    if (a.owners[i].pid == getpid())
      assert_int_equal(a.owners[i].nfds, 72);
  po_snapshot_free(&a);
  po_snapshot_free(&b);

  /* 2. We hand it to B and close ours; A closes its own too. */
  assert_int_equal(ask(&L->a[B], OP_TAKE, 0, 0, got, &r, NULL), 0);
  int bfd = r.val;
  for (int i = 0; i < 70; i++)
    close(dups[i]);
  close(far);
  close(got);
  assert_int_equal(ask(&L->a[A], OP_CLOSE, lfd, 0, -1, &r, NULL), 0);
  take_pair(bpf, full, &q, &a, &b);
  assert_int_equal(a.stats.walk.bpf_tables, 1);
  assert_false(has_owner(&a, getpid(), got));
  assert_false(has_owner(&a, L->a[A].pid, lfd));
  assert_true(has_owner(&a, L->a[B].pid, bfd));
  assert_int_equal(a.nowners, 1);
  assert_same(&a, &b, "handed on, sender closed", 3);
  same_as_learned(learn, &q, &b, "handed on, sender closed", 3);
  po_snapshot_free(&a);
  po_snapshot_free(&b);

  /* 3. B closes it (the listener is gone) and A listens again: a new
   * socket, a walk of files, then of tables. */
  assert_int_equal(ask(&L->a[B], OP_CLOSE, bfd, 0, -1, &r, NULL), 0);
  assert_int_equal(ask(&L->a[A], OP_LISTEN, L->ports[0], 1, -1, &r, NULL), 0);
  lfd = r.val;
  take_pair(bpf, full, &q, &a, &b);
  assert_int_equal(a.stats.walk.bpf_tables, 0);
  assert_true(has_owner(&a, L->a[A].pid, lfd));
  assert_same(&a, &b, "a new socket", 4);
  same_as_learned(learn, &q, &b, "a new socket", 4);
  po_snapshot_free(&a);
  po_snapshot_free(&b);
  take_pair(bpf, full, &q, &a, &b);
  assert_int_equal(a.stats.walk.bpf_tables, 1);
  assert_same(&a, &b, "a new socket, again", 5);
  same_as_learned(learn, &q, &b, "a new socket, again", 5);
  po_snapshot_free(&a);
  po_snapshot_free(&b);

  /* 4. A UDP socket (ours), learned from the sockets' side too: its first
   * walk is one of tables. */
  {
    struct po_query uq = {.mask = PO_UDP4, .ports = L->watch, .nports = 1};
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons(L->ports[0]),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int u = socket(AF_INET, SOCK_DGRAM, 0);

    assert_true(u >= 0);
    assert_int_equal(bind(u, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(po_snapshot_take(full, &uq, &b), 0);
    assert_true(has_owner(&b, getpid(), u));
    same_as_learned(learn, &uq, &b, "UDP", 6);
    po_snapshot_free(&b);
    close(u);
  }

  /* 5. Nine listeners of ours in one SO_REUSEPORT group on the port, the
   * last dup()ed 800 times: a walk of tables keeps 16 fds and a count for
   * each of the first 8 sockets of a table, every fd of the others, and at
   * most 768 records for one table; past that it walks files instead. */
  {
    int g[9], more[800], one = 1;
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons(L->ports[1]),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct po_query gq = {.mask = PO_TCP4, .ports = &L->watch[1], .nports = 1};
    struct rlimit rl;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 6000 && rl.rlim_max >= 6000) {
      rl.rlim_cur = 6000;
      assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    for (int i = 0; i < 9; i++) {
      g[i] = socket(AF_INET, SOCK_STREAM, 0);
      assert_true(g[i] >= 0);
      assert_int_equal(
          setsockopt(g[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)), 0);
      assert_int_equal(bind(g[i], (struct sockaddr *)&sin, sizeof(sin)), 0);
      assert_int_equal(listen(g[i], 8), 0);
    }
    for (int i = 0; i < 800; i++)
      assert_true((more[i] = dup(g[8])) >= 0);
    assert_int_equal(po_snapshot_take(full, &gq, &b), 0);
    assert_int_equal(b.socks.len, 9);
    po_snapshot_free(&b);
    take_pair(learn, full, &gq, &a, &b);
    assert_int_equal(a.stats.walk.bpf_tables, 0); /* truncated: files */
    assert_same(&a, &b, "a table past 768 records", 7);
    po_snapshot_free(&a);
    po_snapshot_free(&b);
    for (int i = 0; i < 800; i++)
      close(more[i]);
    /* 760 dups of the first socket instead: 16 records and a count. */
    for (int i = 0; i < 760; i++)
      assert_true((more[i] = dup(g[0])) >= 0);
    take_pair(learn, full, &gq, &a, &b);
    assert_int_equal(a.stats.walk.bpf_tables, 1);
    assert_same(&a, &b, "a socket of 761 fds", 8);
    {
      int seen = 0;

      for (size_t i = 0; i < a.nowners; i++)
        if (a.owners[i].pid == getpid() && a.owners[i].nfds == 761)
          seen++;
      assert_int_equal(seen, 1);
    }
    po_snapshot_free(&a);
    po_snapshot_free(&b);
    for (int i = 0; i < 760; i++)
      close(more[i]);
    for (int i = 0; i < 9; i++)
      close(g[i]);
  }

  live_stop(L);
  po_ctx_free(bpf);
  po_ctx_free(learn);
  po_ctx_free(full);
  free(L);
}

int main(int argc, char **argv) {
  if (!realpath("/proc/self/exe", self_exe) && !realpath(argv[0], self_exe))
    return 99;
  if (argc == 4 && strcmp(argv[1], "--agent") == 0) {
    prctl(PR_SET_NAME, argv[3]);
    agent(atoi(argv[2]));
  }
  /* Under valgrind /proc/self/exe is valgrind: agents must be us. */
  if (strstr(self_exe, "valgrind") || strstr(self_exe, "memcheck"))
    if (!realpath(argv[0], self_exe))
      return 99;

  /* A fixed seed by default (make check is the same run every time);
   * PO_CHURN_SEED=N replays N, PO_CHURN_SEED=random explores. */
  const char *s = getenv("PO_CHURN_SEED");
  if (!s)
    seed = CHURN_SEED_DEFAULT;
  else if (strcmp(s, "random") == 0)
    seed = (uint64_t)time(NULL) ^ (uint64_t)getpid();
  else
    seed = strtoull(s, NULL, 0);
  if (seed == 0)
    seed = 1;
  rng_state = seed;
  printf("# seed %" PRIu64 " (PO_CHURN_SEED=%" PRIu64 " replays this run)\n",
         seed, seed);
  fflush(stdout);
  fx_set_failure(fx_fail_cmocka);

  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bytecode),
      cmocka_unit_test(test_kernel_filter_live),
      cmocka_unit_test_setup_teardown(test_fixture_churn, fx_setup,
                                      fx_teardown),
      cmocka_unit_test(test_live_churn),
      cmocka_unit_test(test_live_churn_bpf),
      cmocka_unit_test(test_live_bpf_tables),
      cmocka_unit_test(test_live_scm_rights),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
