/*
 * po-listen: opens real listening sockets in real processes for the live
 * tests, reports them, and holds them until told to stop.
 *
 *   po-listen [--user NAME] [--comm NAME] [--timeout SECONDS]
 *             [--backlog N] [--child-user NAME] [--bind-user NAME]
 *             [--heap MIB] [--hold-exit] [--thread-exit]
 *             [--thread-unshare] [--handover PATH] SPEC...
 *   po-listen [options] --take-over PATH
 *
 * SPEC:
 *   tcp4:ADDR:PORT     TCP over IPv4
 *   tcp6:ADDR:PORT     TCP over IPv6, dual stack (IPV6_V6ONLY=0)
 *   tcp6only:ADDR:PORT TCP over IPv6 only (IPV6_V6ONLY=1)
 *   udp4:ADDR:PORT     unconnected UDP over IPv4
 *   udp6:ADDR:PORT     unconnected UDP over IPv6, dual stack
 *   prefork:N:BASE     one socket held by this process and N forked children
 *   reuseport:N:BASE   N child processes, each with its own SO_REUSEPORT
 *                      socket on the same port
 * BASE is one of the first five forms. An IPv6 ADDR may be written in
 * brackets ([::]). PORT 0 binds any free port (for reuseport, the first
 * socket picks it and the others share it).
 *
 * Once every socket is up and every child is ready it prints, for each
 * socket,
 *   SOCK <spec> <proto> <family> <port> <inode> <pid>[,<pid>...]
 * then READY, and waits until stdin reaches EOF, SIGTERM or SIGINT arrives,
 * or the timeout (default 600 s) passes. It then kills and reaps its children
 * and exits 0. Children also die with the parent (PR_SET_PDEATHSIG).
 *
 * --user drops to that user (name or numeric uid) after binding, --comm sets
 * the process name (at most 15 bytes), in every process.
 *
 * What the alert tests need of a real server:
 *   --child-user NAME  the children (prefork, reuseport) drop to NAME after
 *                      the fork; this process keeps its user (apache: a root
 *                      parent, www-data workers)
 *   --bind-user NAME   drops to NAME before opening the sockets, so that the
 *                      sockets themselves belong to that uid (ports >= 1024)
 *   --heap MIB         allocates and touches MIB MiB in this process before
 *                      READY: its exit then takes long, and for that time
 *                      /proc/PID/exe is gone while its sockets still listen
 *                      (the kernel releases the mm before closing the fds)
 *   --hold-exit        holds this process in that window for as long as the
 *                      test wants: its exit stays in the kernel after
 *                      /proc/PID/exe went away and before any fd closes, until
 *                      stdin reaches EOF (or the timeout). How: an AIO fsync
 *                      on a file of a FUSE mount served by a helper process
 *                      that answers it only then (exit_aio() waits for it in
 *                      the exit's mm teardown). Root only; plain SPECs.
 *   --thread-exit      after READY the main thread calls pthread_exit(): the
 *                      leader is a zombie with an empty /proc/PID/fd while a
 *                      thread keeps the sockets (and reads stdin). Plain
 *                      SPECs only.
 *   --thread-unshare   a thread calls unshare(CLONE_FILES) and opens the
 *                      sockets in its fd table of its own, and holds them:
 *                      /proc/PID/fd (the leader's, alive) has none of them.
 *                      Plain SPECs only; the stdin commands do not reach
 *                      them.
 *   --handover PATH    listens on the unix socket PATH: a `po-listen
 *                      --take-over PATH` gets every socket of this process
 *                      (SCM_RIGHTS, the same inodes); this process then
 *                      closes them and exits 0 (a reload by fd passing, as
 *                      haproxy does). Plain SPECs only.
 *   --take-over PATH   instead of SPECs: receives the sockets from PATH once
 *                      the old process closed its copies (no moment where
 *                      both hold them), reports and holds them.
 *
 * Commands on stdin, one a line, each answered on stdout by its result lines
 * and then "DONE <command>" (or "ERROR <why>"):
 *   close SPEC      closes the sockets of that plain SPEC (a reload that
 *                   dropped one of its listeners)
 *   shutdown SPEC   shutdown(2) of the socket of that plain or prefork SPEC:
 *                   it stops listening at once while every process still
 *                   holds it
 *   workers-stop    kills and reaps every prefork child: only this process
 *                   holds their sockets now
 *   workers-start   forks the prefork children again; prints the SOCK lines
 *                   of the prefork SPECs with the new pids
 *   restart         workers-stop then workers-start (a graceful restart: the
 *                   parent keeps the socket, every worker is replaced)
 *
 * Exit status: 0 after a normal stop, 1 when a socket or a process cannot be
 * set up, 2 on bad arguments.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, ppoll */
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/aio_abi.h>
#include <linux/fuse.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 1024 /* children per SPEC */
#define COMM_MAX 15    /* TASK_COMM_LEN - 1 */
#define MAX_PASSED 64  /* sockets passed by --handover */
#ifdef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE_ MADV_POPULATE_WRITE
#else
#define MADV_POPULATE_WRITE_ 23 /* Linux 5.14 */
#endif

enum kind {
  KIND_PLAIN,     /* one socket held by the main process */
  KIND_PREFORK,   /* one socket held by the main process and N children */
  KIND_REUSEPORT, /* N sockets, one per child */
};

struct spec {
  const char *text; /* as given on the command line */
  enum kind kind;
  int nprocs; /* prefork: children; reuseport: sockets and children */
  int type;   /* SOCK_STREAM or SOCK_DGRAM */
  int family; /* AF_INET or AF_INET6 */
  int v6only; /* AF_INET6: value for IPV6_V6ONLY */
  struct sockaddr_storage addr;
  socklen_t addrlen;
  uint16_t port; /* as asked; 0 for any */

  /* Filled while setting up. */
  int *fds; /* KIND_REUSEPORT: nprocs; otherwise 1 */
  int nfds;
  uint16_t bound; /* port after bind */
  ino_t *inodes;  /* one per fd */
  pid_t *pids;    /* children: nprocs (0 for KIND_PLAIN) */
};

struct opts {
  const char *user;
  const char *comm;
  long timeout;
  int backlog;
  const char *child_user;
  const char *bind_user;
  long heap_mib;
  int hold_exit;
  int thread_exit;
  int thread_unshare;
  const char *handover;
  const char *take_over;
  struct spec *specs;
  int nspecs;
  const sigset_t *orig_mask; /* the mask to wait with (SIGTERM open) */
  int handover_fd;           /* --handover: the listening unix socket */
};

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) {
  stop_signal = sig;
}

static void usage(FILE *f) {
  fputs("usage: po-listen [--user NAME] [--comm NAME] [--timeout SECONDS] "
        "[--backlog N]\n"
        "                 [--child-user NAME] [--bind-user NAME] [--heap MIB] "
        "[--hold-exit]\n"
        "                 [--thread-exit] [--thread-unshare] [--handover PATH] "
        "SPEC... | --take-over PATH\n"
        "SPEC: tcp4:ADDR:PORT | tcp6:ADDR:PORT | tcp6only:ADDR:PORT |\n"
        "      udp4:ADDR:PORT | udp6:ADDR:PORT |\n"
        "      prefork:N:BASE | reuseport:N:BASE  (BASE: one of the above)\n",
        f);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
bad_arg(const char *fmt, ...) {
  va_list ap;
  fputs("po-listen: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  usage(stderr);
  exit(2);
}

static void __attribute__((format(printf, 1, 2)))
sys_error(const char *fmt, ...) {
  int saved = errno;
  va_list ap;
  fputs("po-listen: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, ": %s\n", strerror(saved));
}

/* Parses a decimal in [lo, hi] that fills all of s. */
static int parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  long v;

  if (*s < '0' || *s > '9')
    return -EINVAL;
  errno = 0;
  v = strtol(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi)
    return -EINVAL;
  *out = v;
  return 0;
}

/* Parses BASE ("tcp4:ADDR:PORT" ...) of whole (for messages) into sp. */
static void parse_base(const char *whole, const char *base, struct spec *sp) {
  const char *colon = strchr(base, ':');
  const char *last;
  char proto[16];
  char addr[INET6_ADDRSTRLEN + 2];
  size_t plen, alen;
  long port;

  if (!colon)
    bad_arg("bad SPEC '%s': expected PROTO:ADDR:PORT", whole);
  plen = (size_t)(colon - base);
  if (plen >= sizeof(proto))
    bad_arg("bad SPEC '%s': unknown protocol", whole);
  memcpy(proto, base, plen);
  proto[plen] = '\0';

  if (strcmp(proto, "tcp4") == 0) {
    sp->type = SOCK_STREAM;
    sp->family = AF_INET;
  } else if (strcmp(proto, "tcp6") == 0) {
    sp->type = SOCK_STREAM;
    sp->family = AF_INET6;
    sp->v6only = 0;
  } else if (strcmp(proto, "tcp6only") == 0) {
    sp->type = SOCK_STREAM;
    sp->family = AF_INET6;
    sp->v6only = 1;
  } else if (strcmp(proto, "udp4") == 0) {
    sp->type = SOCK_DGRAM;
    sp->family = AF_INET;
  } else if (strcmp(proto, "udp6") == 0) {
    sp->type = SOCK_DGRAM;
    sp->family = AF_INET6;
    sp->v6only = 0;
  } else {
    bad_arg("bad SPEC '%s': unknown protocol '%s'", whole, proto);
  }

  last = strrchr(colon + 1, ':');
  if (!last)
    bad_arg("bad SPEC '%s': expected PROTO:ADDR:PORT", whole);
  if (parse_long(last + 1, 0, 65535, &port) != 0)
    bad_arg("bad SPEC '%s': bad port '%s'", whole, last + 1);
  sp->port = (uint16_t)port;

  alen = (size_t)(last - (colon + 1));
  if (alen >= sizeof(addr))
    bad_arg("bad SPEC '%s': bad address", whole);
  memcpy(addr, colon + 1, alen);
  addr[alen] = '\0';
  if (alen >= 2 && addr[0] == '[' && addr[alen - 1] == ']') {
    if (sp->family != AF_INET6)
      bad_arg("bad SPEC '%s': brackets around an IPv4 address", whole);
    memmove(addr, addr + 1, alen - 2);
    addr[alen - 2] = '\0';
  }

  memset(&sp->addr, 0, sizeof(sp->addr));
  if (sp->family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&sp->addr;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(sp->port);
    if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
      bad_arg("bad SPEC '%s': bad IPv4 address '%s'", whole, addr);
    sp->addrlen = sizeof(*sin);
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&sp->addr;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(sp->port);
    if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) != 1)
      bad_arg("bad SPEC '%s': bad IPv6 address '%s'", whole, addr);
    sp->addrlen = sizeof(*sin6);
  }
}

static void parse_spec(const char *text, struct spec *sp) {
  const char *rest = text;
  int has_count = 0;

  memset(sp, 0, sizeof(*sp));
  sp->text = text;
  sp->kind = KIND_PLAIN;
  sp->v6only = -1;
  if (strncmp(text, "prefork:", 8) == 0) {
    sp->kind = KIND_PREFORK;
    rest = text + 8;
    has_count = 1;
  } else if (strncmp(text, "reuseport:", 10) == 0) {
    sp->kind = KIND_REUSEPORT;
    rest = text + 10;
    has_count = 1;
  }

  if (has_count) {
    const char *colon = strchr(rest, ':');
    char num[16];
    long n;
    size_t len = colon ? (size_t)(colon - rest) : 0;

    if (!colon || len == 0 || len >= sizeof(num))
      bad_arg("bad SPEC '%s': expected a process count", text);
    memcpy(num, rest, len);
    num[len] = '\0';
    if (parse_long(num, sp->kind == KIND_REUSEPORT ? 1 : 0, MAX_PROCS, &n) != 0)
      bad_arg("bad SPEC '%s': bad process count '%s'", text, num);
    sp->nprocs = (int)n;
    rest = colon + 1;
  }
  parse_base(text, rest, sp);
}

static void parse_opts(int argc, char **argv, struct opts *o) {
  int i;

  memset(o, 0, sizeof(*o));
  o->timeout = 600;
  o->backlog = 128;
  o->handover_fd = -1;
  o->specs = calloc((size_t)argc, sizeof(*o->specs));
  if (!o->specs) {
    perror("po-listen: calloc");
    exit(1);
  }

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    long v;

    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    }
    if (strcmp(a, "--hold-exit") == 0) {
      o->hold_exit = 1;
      continue;
    }
    if (strcmp(a, "--thread-exit") == 0) {
      o->thread_exit = 1;
      continue;
    }
    if (strcmp(a, "--thread-unshare") == 0) {
      o->thread_unshare = 1;
      continue;
    }
    if (strcmp(a, "--child-user") == 0 || strcmp(a, "--bind-user") == 0 ||
        strcmp(a, "--heap") == 0 || strcmp(a, "--handover") == 0 ||
        strcmp(a, "--take-over") == 0) {
      const char *val;
      if (i + 1 >= argc)
        bad_arg("option '%s' needs a value", a);
      val = argv[++i];
      if (strcmp(a, "--child-user") == 0) {
        o->child_user = val;
      } else if (strcmp(a, "--bind-user") == 0) {
        o->bind_user = val;
      } else if (strcmp(a, "--heap") == 0) {
        if (parse_long(val, 1, 1L << 20, &v) != 0)
          bad_arg("bad --heap '%s': expected 1 to 1048576 MiB", val);
        o->heap_mib = v;
      } else if (strcmp(a, "--handover") == 0) {
        if (strlen(val) >= sizeof(((struct sockaddr_un *)0)->sun_path))
          bad_arg("--handover '%s': path too long", val);
        o->handover = val;
      } else {
        if (strlen(val) >= sizeof(((struct sockaddr_un *)0)->sun_path))
          bad_arg("--take-over '%s': path too long", val);
        o->take_over = val;
      }
      continue;
    }
    if (strcmp(a, "--user") == 0 || strcmp(a, "--comm") == 0 ||
        strcmp(a, "--timeout") == 0 || strcmp(a, "--backlog") == 0) {
      const char *val;
      if (i + 1 >= argc)
        bad_arg("option '%s' needs a value", a);
      val = argv[++i];
      if (strcmp(a, "--user") == 0) {
        o->user = val;
      } else if (strcmp(a, "--comm") == 0) {
        if (val[0] == '\0' || strlen(val) > COMM_MAX)
          bad_arg("bad --comm '%s': must be 1 to %d bytes", val, COMM_MAX);
        o->comm = val;
      } else if (strcmp(a, "--timeout") == 0) {
        if (parse_long(val, 1, 864000, &v) != 0)
          bad_arg("bad --timeout '%s': expected 1 to 864000 seconds", val);
        o->timeout = v;
      } else {
        if (parse_long(val, 0, INT_MAX, &v) != 0)
          bad_arg("bad --backlog '%s'", val);
        o->backlog = (int)v;
      }
      continue;
    }
    if (a[0] == '-')
      bad_arg("unknown option '%s'", a);
    parse_spec(a, &o->specs[o->nspecs++]);
  }
  if (o->take_over && o->nspecs)
    bad_arg("--take-over takes no SPEC");
  if (!o->take_over && o->nspecs == 0)
    bad_arg("no SPEC given");
  for (i = 0; i < o->nspecs; i++)
    if (o->specs[i].kind != KIND_PLAIN &&
        (o->hold_exit || o->thread_exit || o->handover))
      bad_arg("--hold-exit, --thread-exit and --handover take plain SPECs "
              "only, not '%s'",
              o->specs[i].text);
  if (o->hold_exit && o->thread_exit)
    bad_arg("--hold-exit and --thread-exit do not go together");
  for (i = 0; i < o->nspecs; i++)
    if (o->specs[i].kind != KIND_PLAIN && o->thread_unshare)
      bad_arg("--thread-unshare takes plain SPECs only, not '%s'",
              o->specs[i].text);
  if (o->thread_unshare &&
      (o->hold_exit || o->thread_exit || o->handover || o->take_over))
    bad_arg("--thread-unshare goes with none of --hold-exit, --thread-exit, "
            "--handover, --take-over");
}

static int set_int(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof(value));
}

/* Opens, binds and (TCP) listens one socket of sp on port. */
static int open_one(const struct spec *sp, uint16_t port, int backlog) {
  struct sockaddr_storage ss = sp->addr;
  int fd;

  if (sp->family == AF_INET)
    ((struct sockaddr_in *)&ss)->sin_port = htons(port);
  else
    ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);

  fd = socket(sp->family, sp->type | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    sys_error("%s: socket", sp->text);
    return -1;
  }
  if (sp->family == AF_INET6 &&
      set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, sp->v6only) != 0) {
    sys_error("%s: setsockopt IPV6_V6ONLY", sp->text);
    goto fail;
  }
  if (sp->type == SOCK_STREAM &&
      set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) != 0) {
    sys_error("%s: setsockopt SO_REUSEADDR", sp->text);
    goto fail;
  }
  if (sp->kind == KIND_REUSEPORT &&
      set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1) != 0) {
    sys_error("%s: setsockopt SO_REUSEPORT", sp->text);
    goto fail;
  }
  if (bind(fd, (struct sockaddr *)&ss, sp->addrlen) != 0) {
    sys_error("%s: bind port %u", sp->text, (unsigned)port);
    goto fail;
  }
  if (sp->type == SOCK_STREAM && listen(fd, backlog) != 0) {
    sys_error("%s: listen", sp->text);
    goto fail;
  }
  return fd;

fail:
  close(fd);
  return -1;
}

static int bound_port(int fd, uint16_t *port) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);

  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
    return -1;
  if (ss.ss_family == AF_INET)
    *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  else
    *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return 0;
}

static int open_spec(struct spec *sp, int backlog) {
  int n = sp->kind == KIND_REUSEPORT ? sp->nprocs : 1;
  int i;

  sp->fds = calloc((size_t)n, sizeof(*sp->fds));
  sp->inodes = calloc((size_t)n, sizeof(*sp->inodes));
  sp->pids = calloc((size_t)sp->nprocs + 1, sizeof(*sp->pids));
  if (!sp->fds || !sp->inodes || !sp->pids) {
    perror("po-listen: calloc");
    return -1;
  }
  for (i = 0; i < n; i++) {
    struct stat st;
    uint16_t port;
    int fd = open_one(sp, i == 0 ? sp->port : sp->bound, backlog);

    if (fd < 0)
      return -1;
    sp->fds[sp->nfds++] = fd;
    if (bound_port(fd, &port) != 0) {
      sys_error("%s: getsockname", sp->text);
      return -1;
    }
    if (i == 0)
      sp->bound = port;
    if (fstat(fd, &st) != 0) {
      sys_error("%s: fstat", sp->text);
      return -1;
    }
    sp->inodes[i] = st.st_ino;
  }
  return 0;
}

static int drop_privileges(const char *user) {
  struct passwd *pw;
  uid_t uid;
  gid_t gid;
  long v;

  errno = 0;
  pw = getpwnam(user);
  if (pw) {
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  } else if (parse_long(user, 0, INT_MAX, &v) == 0) {
    uid = (uid_t)v;
    gid = (gid_t)v;
  } else {
    fprintf(stderr, "po-listen: unknown user '%s'\n", user);
    return -1;
  }
  if (setgroups(1, &gid) != 0) {
    sys_error("setgroups for user '%s'", user);
    return -1;
  }
  if (setgid(gid) != 0) {
    sys_error("setgid %u for user '%s'", (unsigned)gid, user);
    return -1;
  }
  if (setuid(uid) != 0) {
    sys_error("setuid %u for user '%s'", (unsigned)uid, user);
    return -1;
  }
  return 0;
}

static void close_all_but(struct opts *o, int keep) {
  int i, j;

  for (i = 0; i < o->nspecs; i++)
    for (j = 0; j < o->specs[i].nfds; j++)
      if (o->specs[i].fds[j] != keep && o->specs[i].fds[j] >= 0)
        close(o->specs[i].fds[j]);
}

/* The life of a child: hold keep, report ready on ready_fd, wait to die. */
static void __attribute__((noreturn))
child_main(struct opts *o, int keep, pid_t parent, int ready_fd,
           const sigset_t *orig_mask) {
  int null_fd;

  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    sys_error("child: prctl PR_SET_PDEATHSIG");
    _exit(1);
  }
  if (getppid() != parent)
    _exit(1);
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  sigprocmask(SIG_SETMASK, orig_mask, NULL);

  close_all_but(o, keep);
  if (o->child_user && drop_privileges(o->child_user) != 0)
    _exit(1);
  null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 ||
      dup2(null_fd, STDOUT_FILENO) < 0) {
    sys_error("child: /dev/null");
    _exit(1);
  }
  close(null_fd);

  if (write(ready_fd, "R", 1) != 1)
    _exit(1);
  close(ready_fd);
  for (;;)
    pause();
}

static pid_t *children;
static int nchildren;
static int children_cap;

static void kill_children(void) {
  int i;

  for (i = 0; i < nchildren; i++)
    kill(children[i], SIGKILL);
  for (i = 0; i < nchildren; i++)
    while (waitpid(children[i], NULL, 0) < 0 && errno == EINTR)
      ;
  nchildren = 0;
}

static int spawn(struct opts *o, int keep, int ready_fd, int ready_rd,
                 const sigset_t *orig_mask, pid_t *out) {
  pid_t parent = getpid();
  pid_t pid = fork();

  if (pid < 0) {
    sys_error("fork");
    return -1;
  }
  if (pid == 0) {
    close(ready_rd);
    child_main(o, keep, parent, ready_fd, orig_mask);
  }
  children[nchildren++] = pid;
  *out = pid;
  return 0;
}

/* Forks the children of every SPEC (only_prefork: of the prefork SPECs) and
 * waits until each one is ready. */
static int spawn_some(struct opts *o, const sigset_t *orig_mask,
                      int only_prefork) {
  int pipefd[2];
  int total = 0, got = 0;
  int i, j;

  for (i = 0; i < o->nspecs; i++)
    if (!only_prefork || o->specs[i].kind == KIND_PREFORK)
      total += o->specs[i].nprocs;
  if (nchildren + total > children_cap) {
    fprintf(stderr, "po-listen: too many children\n");
    return -1;
  }
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    sys_error("pipe");
    return -1;
  }
  for (i = 0; i < o->nspecs; i++) {
    struct spec *sp = &o->specs[i];
    if (only_prefork && sp->kind != KIND_PREFORK)
      continue;
    for (j = 0; j < sp->nprocs; j++) {
      int keep = sp->kind == KIND_REUSEPORT ? sp->fds[j] : sp->fds[0];
      if (spawn(o, keep, pipefd[1], pipefd[0], orig_mask, &sp->pids[j]) != 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
      }
    }
  }
  close(pipefd[1]);

  /* Every child writes one byte when it is set up and then closes its end:
   * EOF comes when all of them are ready (or dead). */
  for (;;) {
    char buf[256];
    ssize_t n = read(pipefd[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (int)n;
  }
  close(pipefd[0]);
  if (got != total) {
    fprintf(stderr, "po-listen: %d of %d children failed to start\n",
            total - got, total);
    return -1;
  }
  return 0;
}

static int spawn_all(struct opts *o, const sigset_t *orig_mask) {
  int total = 0;
  int i, j;

  for (i = 0; i < o->nspecs; i++)
    total += o->specs[i].nprocs;
  children_cap = total + 1;
  children = calloc((size_t)children_cap, sizeof(*children));
  if (!children) {
    perror("po-listen: calloc");
    return -1;
  }
  if (spawn_some(o, orig_mask, 0) != 0)
    return -1;

  /* The reuseport sockets belong to the children only. */
  for (i = 0; i < o->nspecs; i++) {
    struct spec *sp = &o->specs[i];
    if (sp->kind != KIND_REUSEPORT)
      continue;
    for (j = 0; j < sp->nfds; j++) {
      close(sp->fds[j]);
      sp->fds[j] = -1;
    }
  }
  return 0;
}

static void report_spec(const struct spec *sp) {
  pid_t self = getpid();
  const char *proto = sp->type == SOCK_STREAM ? "tcp" : "udp";
  const char *family = sp->family == AF_INET ? "inet" : "inet6";
  int j, k;

  if (sp->kind == KIND_REUSEPORT) {
    for (j = 0; j < sp->nprocs; j++)
      printf("SOCK %s %s %s %u %llu %ld\n", sp->text, proto, family,
             (unsigned)sp->bound, (unsigned long long)sp->inodes[j],
             (long)sp->pids[j]);
    return;
  }
  printf("SOCK %s %s %s %u %llu %ld", sp->text, proto, family,
         (unsigned)sp->bound, (unsigned long long)sp->inodes[0], (long)self);
  for (k = 0; k < sp->nprocs; k++)
    printf(",%ld", (long)sp->pids[k]);
  putchar('\n');
}

static void report(const struct opts *o) {
  int i;

  for (i = 0; i < o->nspecs; i++)
    report_spec(&o->specs[i]);
  puts("READY");
  fflush(stdout);
}

/* ---- commands on stdin --------------------------------------------------- */

/* Kills and reaps the children of every prefork SPEC. */
static void workers_stop(struct opts *o) {
  int i, j, k;

  for (i = 0; i < o->nspecs; i++) {
    struct spec *sp = &o->specs[i];
    if (sp->kind != KIND_PREFORK)
      continue;
    for (j = 0; j < sp->nprocs; j++) {
      if (sp->pids[j] <= 0)
        continue;
      kill(sp->pids[j], SIGKILL);
      while (waitpid(sp->pids[j], NULL, 0) < 0 && errno == EINTR)
        ;
      for (k = 0; k < nchildren; k++)
        if (children[k] == sp->pids[j])
          children[k] = children[--nchildren];
      sp->pids[j] = 0;
    }
  }
}

static int workers_start(struct opts *o) {
  int i;

  for (i = 0; i < o->nspecs; i++) {
    struct spec *sp = &o->specs[i];
    if (sp->kind == KIND_PREFORK && sp->nprocs && sp->pids[0] > 0) {
      printf("ERROR workers-start: the workers are running\n");
      return -1;
    }
  }
  if (spawn_some(o, o->orig_mask, 1) != 0) {
    printf("ERROR workers-start: could not start the workers\n");
    return -1;
  }
  for (i = 0; i < o->nspecs; i++)
    if (o->specs[i].kind == KIND_PREFORK)
      report_spec(&o->specs[i]);
  return 0;
}

static int close_spec(struct opts *o, const char *text) {
  int i, j;

  for (i = 0; i < o->nspecs; i++) {
    struct spec *sp = &o->specs[i];
    if (sp->kind != KIND_PLAIN || strcmp(sp->text, text) != 0)
      continue;
    for (j = 0; j < sp->nfds; j++) {
      if (sp->fds[j] >= 0)
        close(sp->fds[j]);
      sp->fds[j] = -1;
    }
    return 0;
  }
  printf("ERROR close: no plain SPEC '%s' open\n", text);
  return -1;
}

static int shutdown_spec(struct opts *o, const char *text) {
  int i;

  for (i = 0; i < o->nspecs; i++) {
    struct spec *sp = &o->specs[i];
    if (sp->kind == KIND_REUSEPORT || strcmp(sp->text, text) != 0 ||
        sp->fds[0] < 0)
      continue;
    if (shutdown(sp->fds[0], SHUT_RDWR) != 0) {
      printf("ERROR shutdown %s: %s\n", text, strerror(errno));
      return -1;
    }
    return 0;
  }
  printf("ERROR shutdown: no plain or prefork SPEC '%s' open\n", text);
  return -1;
}

static void command(struct opts *o, const char *line) {
  int err;

  if (strncmp(line, "close ", 6) == 0) {
    err = close_spec(o, line + 6);
  } else if (strncmp(line, "shutdown ", 9) == 0) {
    err = shutdown_spec(o, line + 9);
  } else if (strcmp(line, "workers-stop") == 0) {
    workers_stop(o);
    err = 0;
  } else if (strcmp(line, "workers-start") == 0) {
    err = workers_start(o);
  } else if (strcmp(line, "restart") == 0) {
    workers_stop(o);
    err = workers_start(o);
  } else {
    printf("ERROR unknown command '%s'\n", line);
    err = -1;
  }
  if (!err)
    printf("DONE %s\n", line);
  fflush(stdout);
}

/* ---- --handover and --take-over ------------------------------------------ */

static int unix_socket(const char *path, int bind_it) {
  struct sockaddr_un sun;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0) {
    sys_error("unix socket");
    return -1;
  }
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path, strlen(path) + 1);
  if (bind_it) {
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
        listen(fd, 1) != 0) {
      sys_error("--handover %s: bind/listen", path);
      close(fd);
      return -1;
    }
  } else if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
    sys_error("--take-over %s: connect", path);
    close(fd);
    return -1;
  }
  return fd;
}

/* Passes every open socket to the peer of conn, then closes them here. */
static int hand_over(struct opts *o, int conn) {
  union {
    char buf[CMSG_SPACE(MAX_PASSED * sizeof(int))];
    struct cmsghdr align;
  } u;
  int fds[MAX_PASSED];
  int n = 0, i, j;
  char byte = 'H';
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  struct msghdr msg;
  struct cmsghdr *c;

  for (i = 0; i < o->nspecs; i++)
    for (j = 0; j < o->specs[i].nfds; j++)
      if (o->specs[i].fds[j] >= 0 && n < MAX_PASSED)
        fds[n++] = o->specs[i].fds[j];
  memset(&msg, 0, sizeof(msg));
  memset(&u, 0, sizeof(u));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.buf;
  msg.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
  c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
  memcpy(CMSG_DATA(c), fds, (size_t)n * sizeof(int));
  if (sendmsg(conn, &msg, MSG_NOSIGNAL) != 1) {
    sys_error("--handover: sendmsg");
    return -1;
  }
  for (i = 0; i < o->nspecs; i++)
    for (j = 0; j < o->specs[i].nfds; j++) {
      if (o->specs[i].fds[j] >= 0)
        close(o->specs[i].fds[j]);
      o->specs[i].fds[j] = -1;
    }
  return 0;
}

/* A plain spec for a socket received from --take-over. */
static int spec_of_fd(int fd, struct spec *sp) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  char addr[INET6_ADDRSTRLEN];
  char text[INET6_ADDRSTRLEN + 32];
  int type = 0, v6only = 0;
  socklen_t ilen = sizeof(type);
  struct stat st;
  const char *proto;

  memset(sp, 0, sizeof(*sp));
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen) != 0 ||
      getsockname(fd, (struct sockaddr *)&ss, &len) != 0 || fstat(fd, &st)) {
    sys_error("--take-over: a received socket");
    return -1;
  }
  sp->kind = KIND_PLAIN;
  sp->type = type;
  sp->family = ss.ss_family;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
    sp->bound = ntohs(sin->sin_port);
    proto = type == SOCK_STREAM ? "tcp4" : "udp4";
    snprintf(text, sizeof(text), "%s:%s:%u", proto, addr, (unsigned)sp->bound);
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    ilen = sizeof(v6only);
    getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &ilen);
    inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
    sp->bound = ntohs(sin6->sin6_port);
    sp->v6only = v6only;
    proto = type == SOCK_STREAM ? (v6only ? "tcp6only" : "tcp6") : "udp6";
    snprintf(text, sizeof(text), "%s:[%s]:%u", proto, addr,
             (unsigned)sp->bound);
  } else {
    fprintf(stderr, "po-listen: --take-over: not an inet socket\n");
    return -1;
  }
  sp->port = sp->bound;
  sp->text = strdup(text);
  sp->fds = calloc(1, sizeof(*sp->fds));
  sp->inodes = calloc(1, sizeof(*sp->inodes));
  sp->pids = calloc(1, sizeof(*sp->pids));
  if (!sp->text || !sp->fds || !sp->inodes || !sp->pids) {
    perror("po-listen: calloc");
    return -1;
  }
  sp->fds[0] = fd;
  sp->nfds = 1;
  sp->inodes[0] = st.st_ino;
  return 0;
}

/* Takes the sockets of the --handover process at path, once it has closed
 * its own copies (it closes the connection after that). */
static int take_over(struct opts *o) {
  union {
    char buf[CMSG_SPACE(MAX_PASSED * sizeof(int))];
    struct cmsghdr align;
  } u;
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  struct msghdr msg;
  struct cmsghdr *c;
  struct pollfd pfd;
  int conn = unix_socket(o->take_over, 0);
  int n, i;

  if (conn < 0)
    return -1;
  pfd.fd = conn;
  pfd.events = POLLRDHUP;
  while (poll(&pfd, 1, -1) < 0)
    if (errno != EINTR) {
      sys_error("--take-over: poll");
      return -1;
    }
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.buf;
  msg.msg_controllen = sizeof(u.buf);
  if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) != 1) {
    fprintf(stderr, "po-listen: --take-over %s: no sockets received\n",
            o->take_over);
    return -1;
  }
  close(conn);
  c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) {
    fprintf(stderr, "po-listen: --take-over: no SCM_RIGHTS\n");
    return -1;
  }
  n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
  free(o->specs);
  o->specs = calloc((size_t)n + 1, sizeof(*o->specs));
  if (!o->specs) {
    perror("po-listen: calloc");
    return -1;
  }
  for (i = 0; i < n; i++) {
    int fd;

    memcpy(&fd, CMSG_DATA(c) + (size_t)i * sizeof(int), sizeof(fd));
    if (spec_of_fd(fd, &o->specs[o->nspecs++]) != 0)
      return -1;
  }
  return 0;
}

/* ---- --hold-exit --------------------------------------------------------- */

static void fuse_reply(int fd, uint64_t unique, int error, const void *body,
                       size_t n) {
  char buf[512];
  struct fuse_out_header oh;

  oh.len = (uint32_t)(sizeof(oh) + n);
  oh.error = error;
  oh.unique = unique;
  memcpy(buf, &oh, sizeof(oh));
  if (n)
    memcpy(buf + sizeof(oh), body, n);
  if (write(fd, buf, oh.len) < 0 && errno != ENOENT)
    sys_error("--hold-exit: reply");
}

static void fuse_attr_of(uint64_t node, struct fuse_attr *a) {
  memset(a, 0, sizeof(*a));
  a->ino = node;
  a->nlink = node == FUSE_ROOT_ID ? 2 : 1;
  a->mode = node == FUSE_ROOT_ID ? (S_IFDIR | 0755) : (S_IFREG | 0600);
  a->blksize = 4096;
}

/*
 * The helper of --hold-exit: serves a FUSE file system of one empty file and
 * answers the FSYNC on it only once stdin (the test's pipe, shared with the
 * main process) reached EOF, or at the deadline. Exits when the file system
 * is gone.
 */
static void __attribute__((noreturn)) fuse_holder(int fusefd, long timeout) {
  static char buf[FUSE_MIN_READ_BUFFER + 65536];
  uint64_t held = 0;
  int released = 0;
  struct timespec start, now;

  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    struct pollfd p[2] = {{.fd = fusefd, .events = POLLIN},
                          {.fd = STDIN_FILENO, .events = 0}};
    struct fuse_in_header *ih = (struct fuse_in_header *)buf;
    char *in = buf + sizeof(*ih);
    ssize_t n;
    int r;

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!released && (now.tv_sec - start.tv_sec >= timeout))
      released = 1;
    if (released && held) {
      fuse_reply(fusefd, held, 0, NULL, 0);
      held = 0;
    }
    r = poll(p, released ? 1 : 2, 100);
    if (r < 0 && errno != EINTR)
      _exit(1);
    if (r <= 0)
      continue;
    if (!released && (p[1].revents & (POLLHUP | POLLERR | POLLNVAL)))
      released = 1;
    if (!(p[0].revents & POLLIN)) {
      if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL))
        _exit(0);
      continue;
    }
    n = read(fusefd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == ENOENT || errno == EAGAIN))
      continue;
    if (n < (ssize_t)sizeof(*ih))
      _exit(0); /* ENODEV: unmounted and every file closed */
    switch (ih->opcode) {
    case FUSE_INIT: {
      struct fuse_init_in *ii = (struct fuse_init_in *)in;
      struct fuse_init_out out;

      memset(&out, 0, sizeof(out));
      out.major = FUSE_KERNEL_VERSION;
      out.minor = FUSE_KERNEL_MINOR_VERSION;
      out.max_readahead = ii->max_readahead;
      out.max_write = 4096;
      fuse_reply(fusefd, ih->unique, 0, &out, sizeof(out));
      break;
    }
    case FUSE_LOOKUP: {
      struct fuse_entry_out out;

      if (ih->nodeid != FUSE_ROOT_ID || strcmp(in, "f") != 0) {
        fuse_reply(fusefd, ih->unique, -ENOENT, NULL, 0);
        break;
      }
      memset(&out, 0, sizeof(out));
      out.nodeid = 2;
      out.generation = 1;
      out.entry_valid = 3600;
      out.attr_valid = 3600;
      fuse_attr_of(2, &out.attr);
      fuse_reply(fusefd, ih->unique, 0, &out, sizeof(out));
      break;
    }
    case FUSE_GETATTR: {
      struct fuse_attr_out out;

      memset(&out, 0, sizeof(out));
      out.attr_valid = 3600;
      fuse_attr_of(ih->nodeid, &out.attr);
      fuse_reply(fusefd, ih->unique, 0, &out, sizeof(out));
      break;
    }
    case FUSE_OPEN: {
      struct fuse_open_out out;

      memset(&out, 0, sizeof(out));
      out.fh = 1;
      fuse_reply(fusefd, ih->unique, 0, &out, sizeof(out));
      break;
    }
    case FUSE_FSYNC:
      if (released)
        fuse_reply(fusefd, ih->unique, 0, NULL, 0);
      else
        held = ih->unique;
      break;
    case FUSE_FORGET:
    case FUSE_BATCH_FORGET:
    case FUSE_INTERRUPT:
      break; /* no answer */
    case FUSE_FLUSH:
    case FUSE_RELEASE:
    case FUSE_DESTROY:
      fuse_reply(fusefd, ih->unique, 0, NULL, 0);
      break;
    default:
      fuse_reply(fusefd, ih->unique, -ENOSYS, NULL, 0);
    }
  }
}

/*
 * Leaves an AIO fsync in flight that only the helper can complete: exit_aio()
 * in this process's exit waits for it after /proc/PID/exe went away and
 * before the fds close. The file system is detached at once (only the open
 * file keeps it): nothing is left mounted whatever happens.
 */
static int hold_exit_setup(struct opts *o, pid_t *holder) {
  char dir[] = "/tmp/po-listen-hold-XXXXXX";
  char path[sizeof(dir) + 2];
  char mopts[96];
  aio_context_t ctx = 0;
  struct iocb cb;
  struct iocb *cbs[1] = {&cb};
  int fusefd, file;
  pid_t parent = getpid(), pid;

  if (!mkdtemp(dir)) {
    sys_error("--hold-exit: mkdtemp");
    return -1;
  }
  fusefd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fusefd < 0) {
    sys_error("--hold-exit: /dev/fuse");
    rmdir(dir);
    return -1;
  }
  snprintf(mopts, sizeof(mopts), "fd=%d,rootmode=40000,user_id=0,group_id=0",
           fusefd);
  if (mount("po-listen-hold", dir, "fuse", MS_NOSUID | MS_NODEV, mopts) != 0) {
    sys_error("--hold-exit: mount fuse on %s", dir);
    close(fusefd);
    rmdir(dir);
    return -1;
  }
  pid = fork();
  if (pid < 0) {
    sys_error("--hold-exit: fork");
    return -1;
  }
  if (pid == 0) {
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(1);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    close_all_but(o, -1);
    if (o->handover_fd >= 0)
      close(o->handover_fd);
    if (null_fd >= 0)
      dup2(null_fd, STDOUT_FILENO);
    fuse_holder(fusefd, o->timeout);
  }
  close(fusefd); /* the helper's death aborts the connection */
  *holder = pid;
  snprintf(path, sizeof(path), "%s/f", dir);
  file = open(path, O_RDONLY | O_CLOEXEC);
  umount2(dir, MNT_DETACH);
  rmdir(dir);
  if (file < 0) {
    sys_error("--hold-exit: open %s", path);
    return -1;
  }
  memset(&cb, 0, sizeof(cb));
  cb.aio_lio_opcode = IOCB_CMD_FSYNC;
  cb.aio_fildes = (uint32_t)file;
  if (syscall(SYS_io_setup, 1, &ctx) != 0 ||
      syscall(SYS_io_submit, ctx, 1, cbs) != 1) {
    sys_error("--hold-exit: io_setup/io_submit");
    return -1;
  }
  return 0; /* the file and the context stay open until the exit */
}

/* --heap: memory that the exit has to give back. */
static int touch_heap(long mib) {
  size_t size = (size_t)mib << 20;
  char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

  if (p == MAP_FAILED) {
    sys_error("--heap %ld: mmap", mib);
    return -1;
  }
  /* Small pages: the exit frees each one (a huge page would be quick). */
  madvise(p, size, MADV_NOHUGEPAGE);
  if (madvise(p, size, MADV_POPULATE_WRITE_) != 0)
    memset(p, 0x5a, size);
  return 0;
}

/* Waits for EOF on stdin, SIGTERM/SIGINT, the deadline, or the handover;
 * runs the commands that come on stdin meanwhile. */
static void wait_for_stop(struct opts *o) {
  struct timespec now, deadline;
  char line[1024];
  size_t used = 0;

  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += o->timeout;
  while (!stop_signal) {
    struct pollfd pfd[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                            {.fd = o->handover_fd, .events = POLLIN}};
    struct timespec left;
    int r;

    clock_gettime(CLOCK_MONOTONIC, &now);
    left.tv_sec = deadline.tv_sec - now.tv_sec;
    left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
    if (left.tv_nsec < 0) {
      left.tv_nsec += 1000000000L;
      left.tv_sec--;
    }
    if (left.tv_sec < 0)
      return;

    r = ppoll(pfd, o->handover_fd >= 0 ? 2 : 1, &left, o->orig_mask);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      sys_error("ppoll");
      return;
    }
    if (r > 0 && (pfd[1].revents & POLLIN)) {
      int conn = accept4(o->handover_fd, NULL, NULL, SOCK_CLOEXEC);

      if (conn >= 0) {
        int err = hand_over(o, conn);

        close(conn);
        if (!err)
          return;
      }
    }
    if (r > 0 && pfd[0].revents) {
      ssize_t n;
      char *nl;

      if (pfd[0].revents & POLLNVAL)
        return; /* no stdin at all: treat as EOF */
      n = read(STDIN_FILENO, line + used, sizeof(line) - 1 - used);
      if (n == 0)
        return;
      if (n < 0) {
        if (errno != EINTR && errno != EAGAIN)
          return;
        continue;
      }
      used += (size_t)n;
      line[used] = '\0';
      while ((nl = strchr(line, '\n'))) {
        *nl = '\0';
        if (line[0])
          command(o, line);
        used -= (size_t)(nl + 1 - line);
        memmove(line, nl + 1, used + 1);
      }
      if (used == sizeof(line) - 1)
        used = 0; /* a line too long: dropped */
    }
  }
}

static void free_opts(struct opts *o) {
  int i, j;

  for (i = 0; i < o->nspecs; i++) {
    struct spec *sp = &o->specs[i];
    for (j = 0; j < sp->nfds; j++)
      if (sp->fds[j] >= 0)
        close(sp->fds[j]);
    free(sp->fds);
    free(sp->inodes);
    free(sp->pids);
  }
  free(o->specs);
  free(children);
  children = NULL;
}

/* With --heap or --hold-exit the sockets stay open: the kernel closes them
 * in the exit, after the mm is gone, as for a server killed by SIGTERM. */
static void finish(struct opts *o) {
  kill_children();
  if (o->handover_fd >= 0) {
    close(o->handover_fd);
    unlink(o->handover);
  }
  if (!o->heap_mib && !o->hold_exit)
    free_opts(o);
}

/* --thread-exit: the thread that outlives the leader. */
static void *thread_main(void *arg) {
  struct opts *o = arg;

  wait_for_stop(o);
  finish(o);
  exit(0);
}

/* --thread-unshare: the thread whose own fd table holds the sockets. */
static int unshare_pipe[2];

static void *unshared_main(void *arg) {
  struct opts *o = arg;
  char rc = 0;
  int i;

  if (unshare(CLONE_FILES) != 0) {
    sys_error("--thread-unshare: unshare(CLONE_FILES)");
    rc = 1;
  }
  for (i = 0; !rc && i < o->nspecs; i++)
    if (open_spec(&o->specs[i], o->backlog) != 0)
      rc = 1;
  if (write(unshare_pipe[1], &rc, 1) != 1)
    _exit(1);
  for (;;)
    pause();
}

/* Opens the sockets in a thread of their own fd table; 0 or -1. */
static int unshared_open(struct opts *o) {
  pthread_t t;
  char rc = 1;
  int err, i, j;

  if (pipe2(unshare_pipe, O_CLOEXEC) != 0) {
    sys_error("--thread-unshare: pipe");
    return -1;
  }
  err = pthread_create(&t, NULL, unshared_main, o);
  if (err) {
    errno = err;
    sys_error("--thread-unshare: pthread_create");
    return -1;
  }
  while (read(unshare_pipe[0], &rc, 1) < 0 && errno == EINTR)
    ;
  /* Those fd numbers are the thread's: this table has other files there. */
  for (i = 0; i < o->nspecs; i++)
    for (j = 0; j < o->specs[i].nfds; j++)
      o->specs[i].fds[j] = -1;
  return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  static struct opts o;
  struct sigaction sa;
  sigset_t block, orig_mask;
  pid_t holder = -1;
  int i, rc = 1;

  parse_opts(argc, argv, &o);

  /* SIGTERM/SIGINT stay blocked except inside ppoll, so none is lost
   * between the check and the wait. */
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, &orig_mask);
  sigdelset(&orig_mask, SIGTERM);
  sigdelset(&orig_mask, SIGINT);
  o.orig_mask = &orig_mask;

  if (o.comm && prctl(PR_SET_NAME, o.comm, 0, 0, 0) != 0) {
    sys_error("prctl PR_SET_NAME '%s'", o.comm);
    goto out;
  }
  /* What needs root comes before --bind-user. */
  if (o.handover) {
    o.handover_fd = unix_socket(o.handover, 1);
    if (o.handover_fd < 0)
      goto out;
  }
  if (o.hold_exit && hold_exit_setup(&o, &holder) != 0)
    goto out;
  if (o.bind_user && drop_privileges(o.bind_user) != 0)
    goto out;
  if (o.take_over && take_over(&o) != 0)
    goto out;
  if (o.thread_unshare && unshared_open(&o) != 0)
    goto out;
  for (i = 0; !o.take_over && !o.thread_unshare && i < o.nspecs; i++)
    if (open_spec(&o.specs[i], o.backlog) != 0)
      goto out;
  if (o.user && drop_privileges(o.user) != 0)
    goto out;
  if (spawn_all(&o, &orig_mask) != 0)
    goto out;
  if (o.heap_mib && touch_heap(o.heap_mib) != 0)
    goto out;

  report(&o);
  if (o.thread_exit) {
    pthread_t t;
    int err = pthread_create(&t, NULL, thread_main, &o);

    if (err) {
      errno = err;
      sys_error("--thread-exit: pthread_create");
      goto out;
    }
    pthread_exit(NULL);
  }
  wait_for_stop(&o);
  rc = 0;

out:
  if (rc != 0 && holder > 0)
    kill(holder, SIGKILL);
  finish(&o);
  return rc;
}
