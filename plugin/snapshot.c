/*
 * portowner: a snapshot of the listening sockets that match a query, with all
 * of their owners and the owners' process details.
 *
 * Order of work, cheapest first: the listener table of each network
 * namespace (netlink, or /proc/net), the port and protocol filter, one fd walk
 * for the inodes left, and process details only for the owners found.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <linux/sock_diag.h>

#include "portowner/snapshot.h"
#include "portowner/cgroupid.h"

struct po_ctx {
  char *proc_root;
  int nl_fd;          /* NETLINK_SOCK_DIAG socket of our own netns */
  int nl_unavailable; /* netlink refused once: do not retry every read */
  struct po_resolver *resolver;
  struct po_table scratch;   /* one namespace's table before filtering */
  uint64_t full_interval_ns; /* FullScanInterval; 0: every read in full */
  uint64_t last_full_ns;     /* CLOCK_BOOTTIME of the last full walk */
  int full_asked;            /* po_ctx_request_full_scan() */
  int no_attribution;        /* po_ctx_set_attribution(ctx, 0) */
  unsigned proc_flags;       /* PO_PROC_PROCFS when proc_root is procfs */
  /* The owner processes of the last snapshot, by pid: their start times
   * are not read again while their /proc directory is the same. */
  struct known_proc *known;
  size_t nknown;
  int init_userns_known;    /* init_userns read (at the first snapshot) */
  struct stat init_userns;  /* the initial user namespace (po_ns_scope) */
  uint64_t new_interval_ns; /* between full walks for new sockets */
  /* Socket cgroup ids to paths. */
  struct po_cgroup_ids *cgids;
};

struct known_proc {
  pid_t pid;
  uint64_t dir_ino;
  uint64_t start;
  struct po_cgroup_paths cgroup; /* copies; read again on a full walk */
};

static void forget_known(struct po_ctx *ctx) {
  for (size_t i = 0; i < ctx->nknown; i++)
    po_cgroup_paths_release(&ctx->known[i].cgroup);
  ctx->nknown = 0;
}

struct ns_entry {
  uint64_t netns;
  pid_t pid; /* a process inside it */
};

/* The least time between two full walks for new sockets: a sixth of
 * FullScanInterval, at most PO_NEW_SOCKET_WALK_MAX seconds (a listener
 * that comes and goes in a watched range cannot make every read a full
 * walk; a new socket of a process read before waits that long at most). */
static uint64_t new_walk_interval(uint64_t full_interval_ns) {
  uint64_t max = (uint64_t)(PO_NEW_SOCKET_WALK_MAX * 1e9);
  uint64_t ns = full_interval_ns / 6;

  return ns < max ? ns : max;
}

struct po_ctx *po_ctx_new(const char *proc_root) {
  struct po_ctx *ctx = calloc(1, sizeof(*ctx));

  if (!ctx)
    return NULL;
  ctx->nl_fd = -1;
  ctx->full_interval_ns = (uint64_t)(PO_FULL_SCAN_INTERVAL_DEFAULT * 1e9);
  ctx->proc_root = strdup(proc_root ? proc_root : "/proc");
  ctx->resolver = po_resolver_new();
  if (!ctx->proc_root || !ctx->resolver) {
    po_ctx_free(ctx);
    errno = ENOMEM;
    return NULL;
  }
  if (po_proc_root_is_procfs(ctx->proc_root) == 1)
    ctx->proc_flags = PO_PROC_PROCFS;
  /* A socket with no owner is looked for in task tables once a full walk
   * interval. */
  po_resolver_set_look_interval(ctx->resolver, ctx->full_interval_ns);
  ctx->new_interval_ns = new_walk_interval(ctx->full_interval_ns);
  po_resolver_set_new_walk_interval(ctx->resolver, ctx->new_interval_ns);
  return ctx;
}

void po_ctx_free(struct po_ctx *ctx) {
  if (!ctx)
    return;
  if (ctx->nl_fd >= 0)
    close(ctx->nl_fd);
  po_resolver_free(ctx->resolver);
  po_cgroup_ids_free(ctx->cgids);
  po_table_free(&ctx->scratch);
  forget_known(ctx);
  free(ctx->known);
  free(ctx->proc_root);
  free(ctx);
}

int po_ctx_use_bpf(struct po_ctx *ctx, const char **why) {
  if (!ctx)
    return -EINVAL;
  return po_resolver_use_bpf(ctx->resolver, ctx->proc_root, why);
}

void po_ctx_set_bpf_walks(struct po_ctx *ctx, unsigned mask) {
  if (ctx)
    po_resolver_set_bpf_walks(ctx->resolver, mask);
}

enum po_resolver_kind po_ctx_resolver(const struct po_ctx *ctx) {
  return ctx ? po_resolver_kind(ctx->resolver) : PO_RESOLVER_PROC;
}

const char *po_ctx_proc_root(const struct po_ctx *ctx) {
  return ctx->proc_root;
}

int po_ctx_set_full_scan_interval(struct po_ctx *ctx, double seconds) {
  if (!ctx || !(seconds >= 0))
    return -EINVAL;
  /* Beyond ~292 years a uint64_t of ns overflows: that is "never". */
  ctx->full_interval_ns =
      seconds >= 9e9 ? UINT64_MAX : (uint64_t)(seconds * 1e9);
  po_resolver_set_look_interval(ctx->resolver, ctx->full_interval_ns);
  ctx->new_interval_ns = new_walk_interval(ctx->full_interval_ns);
  po_resolver_set_new_walk_interval(ctx->resolver, ctx->new_interval_ns);
  return 0;
}

int po_ctx_set_new_socket_interval(struct po_ctx *ctx, double seconds) {
  if (!ctx || !(seconds >= 0))
    return -EINVAL;
  ctx->new_interval_ns =
      seconds >= 9e9 ? UINT64_MAX : (uint64_t)(seconds * 1e9);
  po_resolver_set_new_walk_interval(ctx->resolver, ctx->new_interval_ns);
  return 0;
}

double po_ctx_new_socket_interval(const struct po_ctx *ctx) {
  return ctx->new_interval_ns == UINT64_MAX
             ? 9e9
             : (double)ctx->new_interval_ns / 1e9;
}

double po_ctx_full_scan_interval(const struct po_ctx *ctx) {
  return ctx->full_interval_ns == UINT64_MAX
             ? 9e9
             : (double)ctx->full_interval_ns / 1e9;
}

void po_ctx_set_attribution(struct po_ctx *ctx, int on) {
  if (ctx)
    ctx->no_attribution = !on;
}

void po_ctx_request_full_scan(struct po_ctx *ctx) {
  if (ctx)
    ctx->full_asked = 1;
}

static uint64_t clock_ns(clockid_t id) {
  struct timespec ts;

  if (clock_gettime(id, &ts) != 0)
    return 0;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Why this read must walk every process, or PO_REASON_NONE. */
static enum po_walk_reason full_reason(const struct po_ctx *ctx, uint64_t now) {
  if (ctx->full_asked || ctx->full_interval_ns == 0)
    return PO_REASON_ASKED;
  if (now - ctx->last_full_ns >= ctx->full_interval_ns)
    return PO_REASON_INTERVAL;
  return PO_REASON_NONE;
}

int po_ranges_match(const struct po_range *r, size_t n, uint16_t port) {
  if (n == 0)
    return 1;
  for (size_t i = 0; i < n; i++)
    if (port >= r[i].lo && port <= r[i].hi)
      return 1;
  return 0;
}

unsigned po_socket_bit(const struct po_socket *s) {
  if (s->proto == IPPROTO_TCP)
    return s->family == AF_INET ? PO_TCP4 : PO_TCP6;
  return s->family == AF_INET ? PO_UDP4 : PO_UDP6;
}

/* Reads a "net:[4026531840]" link. Returns 0, -errno or -EINVAL. */
static int netns_read(const char *path, uint64_t *netns) {
  char link[64];
  ssize_t len = readlink(path, link, sizeof(link) - 1);
  uint64_t v = 0;

  if (len < 0)
    return -errno;
  if (len < 7 || memcmp(link, "net:[", 5) != 0 || link[len - 1] != ']')
    return -EINVAL;
  for (ssize_t i = 5; i < len - 1; i++) {
    if (link[i] < '0' || link[i] > '9' || v > (UINT64_MAX - 9) / 10)
      return -EINVAL;
    v = v * 10 + (uint64_t)(link[i] - '0');
  }
  *netns = v;
  return 0;
}

/* The netns inode behind path, 0 when it cannot be read. */
static uint64_t netns_of(const char *path) {
  uint64_t ns = 0;

  return netns_read(path, &ns) == 0 ? ns : 0;
}

int po_netns_self(const char *proc_root, uint64_t *netns) {
  char path[PATH_MAX];
  int err;

  if (!proc_root)
    proc_root = "/proc";
  snprintf(path, sizeof(path), "%s/thread-self/ns/net", proc_root);
  err = netns_read(path, netns);
  if (err) {
    snprintf(path, sizeof(path), "%s/self/ns/net", proc_root);
    err = netns_read(path, netns);
  }
  return err;
}

/* Our own network namespace: the thread's, as netlink sees it; 0 when
 * unknown. */
static uint64_t own_netns(const struct po_ctx *ctx) {
  uint64_t ns = 0;

  return po_netns_self(ctx->proc_root, &ns) == 0 ? ns : 0;
}

static int netlink_unavailable(int err) {
  return err == -EPROTONOSUPPORT || err == -EOPNOTSUPP ||
         err == -EAFNOSUPPORT || err == -EACCES || err == -EPERM ||
         err == -ENOENT;
}

static int netlink_open(void) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);

  return fd < 0 ? -errno : fd;
}

/* Appends the sockets of t that match q to out. */
static int table_filter(struct po_table *out, const struct po_table *t,
                        const struct po_query *q, unsigned mask) {
  for (size_t i = 0; i < t->len; i++) {
    const struct po_socket *s = &t->v[i];
    int err;

    if (!(po_socket_bit(s) & mask) ||
        !po_ranges_match(q->ports, q->nports, s->port))
      continue;
    err = po_table_push(out, s);
    if (err)
      return err;
  }
  return 0;
}

/* Reads the caller's own namespace into ctx->scratch. */
static int read_own(struct po_ctx *ctx, const struct po_query *q, unsigned mask,
                    uint64_t netns, struct po_snapshot *s) {
  int err = -EPROTONOSUPPORT;

  if (q->source != PO_SOURCE_PROC && !ctx->nl_unavailable) {
    if (ctx->nl_fd < 0)
      ctx->nl_fd = netlink_open();
    /* The kernel filters the ports too when they are few: the sockets of
     * other ports are not even copied to us. */
    err = ctx->nl_fd < 0
              ? ctx->nl_fd
              : po_table_dump_netlink_ports(
                    &ctx->scratch, ctx->nl_fd, mask, netns, q->ports, q->nports,
                    &s->stats.malformed, &s->stats.retries);
    if (ctx->nl_fd < 0)
      ctx->nl_fd = -1;
    if (!err) {
      s->stats.source_used = PO_SOURCE_NETLINK;
      return 0;
    }
    if (q->source == PO_SOURCE_NETLINK || !netlink_unavailable(err))
      return err;
    /* AUTO: remember that netlink is not there and read /proc/net. */
    ctx->nl_unavailable = 1;
    po_table_clear(&ctx->scratch);
  }
  if (q->source == PO_SOURCE_NETLINK)
    return err;
  {
    char dir[PATH_MAX];

    snprintf(dir, sizeof(dir), "%s/net", ctx->proc_root);
    err = po_table_read_proc(&ctx->scratch, dir, mask, netns,
                             &s->stats.malformed);
  }
  if (!err)
    s->stats.source_used = PO_SOURCE_PROC;
  return err;
}

/*
 * Reads another namespace's table through netlink opened inside it (setns on
 * this thread to nsfd, the namespace itself, and back), or through
 * /proc/PID/net of a process inside it; the pid must still be in it after
 * the read (else -ESRCH: it exited and the pid was reused).
 */
static int read_other(struct po_ctx *ctx, const struct po_query *q,
                      unsigned mask, const struct ns_entry *ns, int nsfd,
                      struct po_snapshot *s) {
  char path[PATH_MAX];
  int err;

  if (q->source != PO_SOURCE_PROC &&
      s->stats.source_used == PO_SOURCE_NETLINK) {
    int self_fd, nl = -1;

    self_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self_fd >= 0 && setns(nsfd, CLONE_NEWNET) == 0) {
      nl = netlink_open();
      if (setns(self_fd, CLONE_NEWNET) != 0) {
        /* Cannot go home: never leave this thread in another netns. */
        abort();
      }
    }
    if (self_fd >= 0)
      close(self_fd);
    if (nl >= 0) {
      err = po_table_dump_netlink_ports(&ctx->scratch, nl, mask, ns->netns,
                                        q->ports, q->nports,
                                        &s->stats.malformed, &s->stats.retries);
      close(nl);
      if (!err)
        return 0;
      po_table_clear(&ctx->scratch);
    }
    if (q->source == PO_SOURCE_NETLINK && nl >= 0)
      return err;
  }
  snprintf(path, sizeof(path), "%s/%d/net", ctx->proc_root, (int)ns->pid);
  err = po_table_read_proc(&ctx->scratch, path, mask, ns->netns,
                           &s->stats.malformed);
  snprintf(path, sizeof(path), "%s/%d/ns/net", ctx->proc_root, (int)ns->pid);
  if (!err && netns_of(path) != ns->netns)
    err = -ESRCH;
  return err;
}

/* The initial user namespace (snapshot.h, po_ns_scope): PID 1's under
 * proc_root, else the caller's own; read once per context (neither
 * changes). NULL when none can be read. */
static const struct stat *userns_initial(struct po_ctx *ctx) {
  static const char *const who[] = {"1", "thread-self", "self"};
  char path[PATH_MAX];

  for (size_t i = 0;
       !ctx->init_userns_known && i < sizeof(who) / sizeof(who[0]); i++) {
    snprintf(path, sizeof(path), "%s/%s/ns/user", ctx->proc_root, who[i]);
    ctx->init_userns_known = stat(path, &ctx->init_userns) == 0;
  }
  return ctx->init_userns_known ? &ctx->init_userns : NULL;
}

/* Who owns the network namespace open at nsfd: n->userns, n->owner_uid and
 * n->trusted (owned by init, when init is known). Returns 0 or -errno (the
 * ioctl refused: n then untrusted and unknown). */
static int ns_owner(int nsfd, const struct stat *init, struct po_netns *n) {
  struct stat st;
  uid_t uid = (uid_t)-1; /* valgrind does not know the ioctl writes it */
  int fd = ioctl(nsfd, NS_GET_USERNS);
  int err = 0;

  n->userns = 0;
  n->owner_uid = -1;
  n->trusted = 0;
  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) != 0) {
    err = -errno;
    close(fd);
    return err;
  }
  n->userns = (uint64_t)st.st_ino;
  if (ioctl(fd, NS_GET_OWNER_UID, &uid) == 0)
    n->owner_uid = (int64_t)uid;
  n->trusted = init && st.st_dev == init->st_dev && st.st_ino == init->st_ino;
  close(fd);
  return 0;
}

static int netns_entry_cmp(const void *a, const void *b) {
  const struct po_netns *x = a, *y = b;

  return (x->netns > y->netns) - (x->netns < y->netns);
}

const struct po_netns *po_snapshot_netns(const struct po_snapshot *s,
                                         uint64_t netns) {
  struct po_netns key = {.netns = netns};

  if (!s->nns)
    return NULL;
  return bsearch(&key, s->nsv, s->nns, sizeof(key), netns_entry_cmp);
}

/* Opens <proc_root>/<who>/ns/net if it is still namespace netns. Returns
 * the fd or -errno (-ESRCH: another namespace now). */
static int netns_open(const struct po_ctx *ctx, const char *who,
                      uint64_t netns) {
  char path[PATH_MAX];
  struct stat st;
  int fd;

  snprintf(path, sizeof(path), "%s/%s/ns/net", ctx->proc_root, who);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  if (fstat(fd, &st) != 0 || (uint64_t)st.st_ino != netns) {
    close(fd);
    return -ESRCH;
  }
  return fd;
}

/* The caller's own namespace in s->nsv, with its owner (for the dump). */
static int add_own_netns(const struct po_ctx *ctx, const struct stat *init,
                         struct po_snapshot *s) {
  struct po_netns *n;
  int fd;

  if (!s->netns)
    return 0;
  s->nsv = calloc(1, sizeof(*s->nsv));
  if (!s->nsv)
    return -ENOMEM;
  n = &s->nsv[s->nns++];
  n->netns = s->netns;
  n->owner_uid = -1;
  n->own = 1;
  n->read = 1;
  fd = netns_open(ctx, "thread-self", s->netns);
  if (fd < 0)
    fd = netns_open(ctx, "self", s->netns);
  if (fd >= 0) {
    ns_owner(fd, init, n);
    close(fd);
  }
  return 0;
}

/* The other namespaces of ns[0..nns) into s: each one's owner, its table
 * when q reads it. */
static int read_others(struct po_ctx *ctx, const struct po_query *q,
                       unsigned mask, const struct stat *init,
                       const struct ns_entry *ns, size_t nns,
                       struct po_snapshot *s) {
  struct po_netns *nv = realloc(s->nsv, (s->nns + nns + 1) * sizeof(*nv));
  int err = 0;

  if (!nv)
    return -ENOMEM;
  s->nsv = nv;
  for (size_t i = 0; i < nns && !err; i++) {
    struct po_netns *n = &s->nsv[s->nns];
    char pid[16];
    int fd;

    memset(n, 0, sizeof(*n));
    n->netns = ns[i].netns;
    n->owner_uid = -1;
    snprintf(pid, sizeof(pid), "%d", (int)ns[i].pid);
    fd = netns_open(ctx, pid, ns[i].netns);
    if (fd < 0) {
      /* Gone since the listing, or not ours to open. */
      s->stats.ns_failed++;
      continue;
    }
    s->nns++;
    if (ns_owner(fd, init, n) != 0)
      s->stats.ns_owner_unknown++;
    if (!n->trusted) {
      s->stats.ns_untrusted++;
      if (q->all_namespaces != PO_NS_ALL) {
        close(fd);
        continue;
      }
    }
    po_table_clear(&ctx->scratch);
    if (read_other(ctx, q, mask, &ns[i], fd, s) != 0) {
      s->stats.ns_failed++;
      close(fd);
      continue;
    }
    close(fd);
    n->read = 1;
    s->stats.namespaces++;
    err = table_filter(&s->socks, &ctx->scratch, q, mask);
  }
  if (s->nns)
    qsort(s->nsv, s->nns, sizeof(*s->nsv), netns_entry_cmp);
  return err;
}

static int ns_cmp(const void *a, const void *b) {
  const struct ns_entry *x = a, *y = b;

  if (x->netns != y->netns)
    return x->netns < y->netns ? -1 : 1;
  return (x->pid > y->pid) - (x->pid < y->pid);
}

/* Every network namespace other than own that a process of proc_root is in,
 * each with the lowest pid inside it. */
static int list_namespaces(const struct po_ctx *ctx, uint64_t own,
                           struct ns_entry **out, size_t *n) {
  struct ns_entry *v = NULL;
  size_t len = 0, cap = 0, w = 0;
  DIR *d = opendir(ctx->proc_root);
  struct dirent *de;

  if (!d)
    return -errno;
  while ((de = readdir(d))) {
    char path[PATH_MAX];
    char *end;
    long pid = strtol(de->d_name, &end, 10);
    uint64_t ns;

    if (*end || pid <= 0 || de->d_name[0] < '0' || de->d_name[0] > '9')
      continue;
    snprintf(path, sizeof(path), "%s/%s/ns/net", ctx->proc_root, de->d_name);
    ns = netns_of(path);
    if (!ns || ns == own)
      continue;
    if (len == cap) {
      size_t ncap = cap ? 2 * cap : 16;
      struct ns_entry *nv = realloc(v, ncap * sizeof(*v));

      if (!nv) {
        free(v);
        closedir(d);
        return -ENOMEM;
      }
      v = nv;
      cap = ncap;
    }
    v[len].netns = ns;
    v[len].pid = (pid_t)pid;
    len++;
  }
  closedir(d);
  if (len)
    qsort(v, len, sizeof(*v), ns_cmp);
  for (size_t i = 0; i < len; i++)
    if (w == 0 || v[w - 1].netns != v[i].netns)
      v[w++] = v[i];
  *out = v;
  *n = w;
  return 0;
}

static int owner_cmp(const void *a, const void *b) {
  const struct po_owner *x = a, *y = b;

  if (x->sock != y->sock)
    return x->sock < y->sock ? -1 : 1;
  if (x->pid != y->pid)
    return x->pid < y->pid ? -1 : 1;
  return (x->fd > y->fd) - (x->fd < y->fd);
}

static int pid_cmp(const void *a, const void *b) {
  pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

  return (x > y) - (x < y);
}

static int proc_cmp(const void *a, const void *b) {
  const struct po_proc *x = a, *y = b;

  return (x->pid > y->pid) - (x->pid < y->pid);
}

/* One po_proc per distinct owner pid; links owners to them. */
#define USERS_SEEN 8

struct user_seen {
  uint32_t uid;
  char name[sizeof(((struct po_proc *)0)->user)];
};

/* Sets p->user, from names when its uid was named in this snapshot. */
static void name_user(struct po_proc *p, struct user_seen *names, size_t *n) {
  for (size_t i = 0; i < *n; i++)
    if (names[i].uid == p->uid) {
      memcpy(p->user, names[i].name, sizeof(p->user));
      return;
    }
  po_proc_user_name(p->uid, p->user, sizeof(p->user));
  if (*n < USERS_SEEN) {
    names[*n].uid = p->uid;
    memcpy(names[*n].name, p->user, sizeof(p->user));
    (*n)++;
  }
}

/* A copy of p; none when out of memory (the next read reads it again). */
static struct po_cgroup_paths copy_paths(const struct po_cgroup_paths *p) {
  struct po_cgroup_paths c = {NULL, NULL};

  if ((p->v2 && !(c.v2 = strdup(p->v2))) ||
      (p->systemd && !(c.systemd = strdup(p->systemd))))
    po_cgroup_paths_release(&c);
  return c;
}

/* Keeps the start times and cgroups of this snapshot's processes for the next
 * one (procfs only: elsewhere a directory's inode tells nothing). Out of memory
 * only forgets them: the next read reads them again. */
static void remember_procs(struct po_ctx *ctx, const struct po_snapshot *s) {
  size_t n = 0;

  forget_known(ctx);
  if (!ctx->proc_flags || s->nprocs == 0)
    return;
  if (s->nprocs > SIZE_MAX / sizeof(*ctx->known)) /* cannot happen */
    return;
  struct known_proc *k = realloc(ctx->known, s->nprocs * sizeof(*k));
  if (!k)
    return;
  ctx->known = k;
  for (size_t i = 0; i < s->nprocs; i++)
    if (s->procs[i].dir_ino && s->procs[i].start)
      k[n++] = (struct known_proc){.pid = s->procs[i].pid,
                                   .dir_ino = s->procs[i].dir_ino,
                                   .start = s->procs[i].start,
                                   .cgroup = copy_paths(&s->procs[i].cgroup)};
  ctx->nknown = n;
}

static int load_procs(struct po_ctx *ctx, struct po_snapshot *s) {
  pid_t *pids, *tids;
  size_t n = 0;

  if (s->nowners == 0)
    return 0;
  pids = malloc(s->nowners * sizeof(*pids));
  if (!pids)
    return -ENOMEM;
  for (size_t i = 0; i < s->nowners; i++)
    pids[i] = s->owners[i].pid;
  qsort(pids, s->nowners, sizeof(*pids), pid_cmp);
  for (size_t i = 0; i < s->nowners; i++)
    if (n == 0 || pids[n - 1] != pids[i])
      pids[n++] = pids[i];
  s->procs = calloc(n, sizeof(*s->procs));
  if (!s->procs) {
    free(pids);
    return -ENOMEM;
  }
  /* A process found only in a task's own table (a zombie leader's threads)
   * has its exe read from that task when the leader's cannot be. */
  tids = calloc(n, sizeof(*tids));
  if (!tids) {
    free(pids);
    return -ENOMEM;
  }
  for (size_t i = 0; i < s->nowners; i++) {
    pid_t *at = s->owners[i].tid ? bsearch(&s->owners[i].pid, pids, n,
                                           sizeof(*pids), pid_cmp)
                                 : NULL;

    if (at)
      tids[at - pids] = s->owners[i].tid;
  }
  /* Owners share few users: each is looked up once per snapshot. */
  struct user_seen names[USERS_SEEN] = {{0}};
  size_t nnames = 0;

  for (size_t i = 0, k = 0; i < n; i++) {
    struct po_proc seen = {.pid = 0};
    int err;

    /* Both lists are sorted by pid. */
    while (k < ctx->nknown && ctx->known[k].pid < pids[i])
      k++;
    if (k < ctx->nknown && ctx->known[k].pid == pids[i]) {
      seen.pid = pids[i];
      seen.dir_ino = ctx->known[k].dir_ino;
      seen.start = ctx->known[k].start;
      seen.cgroup = ctx->known[k].cgroup; /* borrowed: copied if used */
    }
    err = po_proc_read_ex(
        ctx->proc_root, pids[i], tids[i],
        ctx->proc_flags | PO_PROC_NO_USER |
            (s->stats.walk.kind == PO_WALK_FULL ? PO_PROC_CGROUP_AGAIN : 0) |
            (ctx->no_attribution ? PO_PROC_NO_CGROUP : 0),
        seen.pid ? &seen : NULL, &s->procs[i]);
    if (!err)
      name_user(&s->procs[i], names, &nnames);
    if (err == -ENOMEM) {
      s->nprocs = i;
      free(pids);
      free(tids);
      return err;
    }
    /* A process that exited since the walk keeps its pid, details empty. */
    s->procs[i].pid = pids[i];
  }
  s->nprocs = n;
  free(pids);
  free(tids);
  remember_procs(ctx, s);
  for (size_t i = 0; i < s->nowners; i++) {
    struct po_proc key = {.pid = s->owners[i].pid};
    struct po_proc *p =
        bsearch(&key, s->procs, s->nprocs, sizeof(key), proc_cmp);

    s->owners[i].proc = (size_t)(p - s->procs);
  }
  return 0;
}

/* s->sock_cgroups from the sockets' cgroup ids: the cache forgets its
 * misses on every full walk. Returns 0 or -ENOMEM. */
static int sock_cgroups(struct po_ctx *ctx, struct po_snapshot *s) {
  if (!ctx->cgids && !(ctx->cgids = po_cgroup_ids_new()))
    return -ENOMEM;
  if (s->stats.walk.kind == PO_WALK_FULL)
    po_cgroup_ids_new_epoch(ctx->cgids);
  for (size_t i = 0; i < s->socks.len; i++) {
    const char *path;
    int err = po_cgroup_ids_lookup(ctx->cgids, s->socks.v[i].cgroup_id, &path);

    if (err == -ENOMEM)
      return err;
    if (err)
      continue;
    if (!s->sock_cgroups &&
        !(s->sock_cgroups = calloc(s->socks.len, sizeof(*s->sock_cgroups))))
      return -ENOMEM;
    if (!(s->sock_cgroups[i] = strdup(path)))
      return -ENOMEM;
  }
  return 0;
}

int po_snapshot_take(struct po_ctx *ctx, const struct po_query *q,
                     struct po_snapshot *s) {
  unsigned mask = q->mask ? q->mask & PO_PROTO_ALL : PO_PROTO_ALL;
  struct po_owners owners = {0};
  uint64_t start, now;
  int err;

  memset(s, 0, sizeof(*s));
  s->netns = own_netns(ctx);

  po_table_clear(&ctx->scratch);
  err = read_own(ctx, q, mask, s->netns, s);
  if (!err)
    err = table_filter(&s->socks, &ctx->scratch, q, mask);
  if (err)
    return err;
  s->stats.namespaces = 1;

  {
    const struct stat *init = userns_initial(ctx);
    struct ns_entry *ns = NULL;
    size_t nns = 0;

    err = add_own_netns(ctx, init, s);
    if (!err && q->all_namespaces)
      err = list_namespaces(ctx, s->netns, &ns, &nns);
    if (!err && nns)
      err = read_others(ctx, q, mask, init, ns, nns, s);
    free(ns);
    if (err)
      return err;
  }
  po_table_sort(&s->socks);

  if (s->socks.len == 0) {
    /* No walk. The resolver keeps what it knew of the last read with
     * sockets: the next one compares with it, and a socket of its own is
     * new (rate-limited walks, new_walk_interval()). */
    return 0;
  }
  start = clock_ns(CLOCK_MONOTONIC);
  now = clock_ns(CLOCK_BOOTTIME);
  err = po_resolver_resolve(ctx->resolver, ctx->proc_root, &s->socks,
                            full_reason(ctx, now), &owners, &s->stats.walk);
  if (err) {
    po_owners_free(&owners);
    return err;
  }
  if (s->stats.walk.kind == PO_WALK_FULL) {
    ctx->last_full_ns = now;
    ctx->full_asked = 0;
  }
  if (owners.len)
    qsort(owners.v, owners.len, sizeof(*owners.v), owner_cmp);
  s->owners = owners.v;
  s->nowners = owners.len;
  for (size_t i = 0; i < s->nowners; i++) {
    struct po_socket *sk = &s->socks.v[s->owners[i].sock];

    if (sk->owner_count++ == 0)
      sk->owner_first = i;
  }
  for (size_t i = 0; i < s->socks.len; i++)
    if (s->socks.v[i].owner_count == 0 && s->socks.v[i].uid != geteuid())
      s->stats.unowned_foreign++;
  /* Sockets whose full walk was put off: their owners are not all known. */
  for (size_t i = 0; s->stats.walk.deferred && i < s->socks.len; i++)
    s->socks.v[i].owner_pending =
        (uint8_t)po_resolver_pending(ctx->resolver, s->socks.v[i].inode);
  err = load_procs(ctx, s);
  if (!err && !ctx->no_attribution)
    err = sock_cgroups(ctx, s);
  s->stats.scan_ns = clock_ns(CLOCK_MONOTONIC) - start;
  return err;
}

void po_snapshot_free(struct po_snapshot *s) {
  if (!s)
    return;
  for (size_t i = 0; s->sock_cgroups && i < s->socks.len; i++)
    free(s->sock_cgroups[i]);
  free(s->sock_cgroups);
  po_table_free(&s->socks);
  free(s->owners);
  for (size_t i = 0; i < s->nprocs; i++)
    po_proc_release(&s->procs[i]);
  free(s->procs);
  free(s->nsv);
  memset(s, 0, sizeof(*s));
}
