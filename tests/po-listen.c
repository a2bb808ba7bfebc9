/*
 * po-listen: opens real listening sockets in real processes for the live
 * tests, reports them, and holds them until told to stop.
 *
 *   po-listen [--user NAME] [--comm NAME] [--timeout SECONDS]
 *             [--backlog N] SPEC...
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
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 1024 /* children per SPEC */
#define COMM_MAX 15    /* TASK_COMM_LEN - 1 */

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
  struct spec *specs;
  int nspecs;
};

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) {
  stop_signal = sig;
}

static void usage(FILE *f) {
  fputs("usage: po-listen [--user NAME] [--comm NAME] [--timeout SECONDS] "
        "[--backlog N] SPEC...\n"
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
  if (o->nspecs == 0)
    bad_arg("no SPEC given");
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

static int spawn_all(struct opts *o, const sigset_t *orig_mask) {
  int pipefd[2];
  int total = 0, got = 0;
  int i, j;

  for (i = 0; i < o->nspecs; i++)
    total += o->specs[i].nprocs;
  children = calloc((size_t)total + 1, sizeof(*children));
  if (!children) {
    perror("po-listen: calloc");
    return -1;
  }
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    sys_error("pipe");
    return -1;
  }
  for (i = 0; i < o->nspecs; i++) {
    struct spec *sp = &o->specs[i];
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

static void report(const struct opts *o) {
  pid_t self = getpid();
  int i, j, k;

  for (i = 0; i < o->nspecs; i++) {
    const struct spec *sp = &o->specs[i];
    const char *proto = sp->type == SOCK_STREAM ? "tcp" : "udp";
    const char *family = sp->family == AF_INET ? "inet" : "inet6";

    if (sp->kind == KIND_REUSEPORT) {
      for (j = 0; j < sp->nprocs; j++)
        printf("SOCK %s %s %s %u %llu %ld\n", sp->text, proto, family,
               (unsigned)sp->bound, (unsigned long long)sp->inodes[j],
               (long)sp->pids[j]);
      continue;
    }
    printf("SOCK %s %s %s %u %llu %ld", sp->text, proto, family,
           (unsigned)sp->bound, (unsigned long long)sp->inodes[0], (long)self);
    for (k = 0; k < sp->nprocs; k++)
      printf(",%ld", (long)sp->pids[k]);
    putchar('\n');
  }
  puts("READY");
  fflush(stdout);
}

/* Waits for EOF on stdin, SIGTERM/SIGINT, or the deadline. */
static void wait_for_stop(long timeout, const sigset_t *orig_mask) {
  struct timespec now, deadline;

  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += timeout;
  while (!stop_signal) {
    struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
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

    r = ppoll(&pfd, 1, &left, orig_mask);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      sys_error("ppoll");
      return;
    }
    if (r > 0) {
      char buf[4096];
      ssize_t n;

      if (pfd.revents & POLLNVAL)
        return; /* no stdin at all: treat as EOF */
      n = read(STDIN_FILENO, buf, sizeof(buf));
      if (n == 0)
        return;
      if (n < 0 && errno != EINTR && errno != EAGAIN)
        return;
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

int main(int argc, char **argv) {
  struct opts o;
  struct sigaction sa;
  sigset_t block, orig_mask;
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

  if (o.comm && prctl(PR_SET_NAME, o.comm, 0, 0, 0) != 0) {
    sys_error("prctl PR_SET_NAME '%s'", o.comm);
    goto out;
  }
  for (i = 0; i < o.nspecs; i++)
    if (open_spec(&o.specs[i], o.backlog) != 0)
      goto out;
  if (o.user && drop_privileges(o.user) != 0)
    goto out;
  if (spawn_all(&o, &orig_mask) != 0)
    goto out;

  report(&o);
  wait_for_stop(o.timeout, &orig_mask);
  rc = 0;

out:
  kill_children();
  free_opts(&o);
  return rc;
}
