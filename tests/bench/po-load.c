/*
 * po-load: builds a synthetic host for the benchmark and holds it.
 *
 *   po-load -P PROCS -F FDS -L LISTENERS -C CONNECTIONS [-t SECONDS]
 *           [-D HOLDERS:DUPS]
 *
 * Forks PROCS processes that each hold about FDS descriptors: regular
 * files, pipes, socketpairs and their share of CONNECTIONS established
 * loopback TCP connections (both ends, so two fds per connection; a process
 * never needs more than the 20,000 fds the machine allows). LISTENERS
 * listening sockets: one prefork-shared listener (created before the fork,
 * held by the first 4 processes, the port the benchmark watches), an
 * SO_REUSEPORT group of 4 processes on a second port, and the rest single
 * listeners on kernel-chosen ports spread over the processes.
 *
 * -D HOLDERS:DUPS adds the dup flood of issue 11: HOLDERS more processes
 * that hold the prefork listener (the watched port) and dup() it DUPS
 * times each (19,000 at most: the machine allows 20,000 fds).
 *
 * When every process is ready it prints one line
 *   READY port=<prefork port> reuseport=<port> procs=N fds=N
 * and holds the load until SIGTERM/SIGINT, end of its standard input, or
 * SECONDS (default 600) have passed, whichever comes first; then it kills
 * its children and exits. Children die with it (PR_SET_PDEATHSIG) and on
 * their own alarm too: the load never outlives the benchmark.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PREFORK 4
#define REUSEPORT 4

static void die(const char *what) {
  fprintf(stderr, "po-load: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int listener(uint16_t port, int reuseport, uint16_t *bound) {
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof(a);
  int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0)
    die("socket");
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuseport)
    setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s, 4096) != 0)
    die("bind/listen");
  if (bound) {
    getsockname(s, (struct sockaddr *)&a, &alen);
    *bound = ntohs(a.sin_port);
  }
  return s;
}

/* n established loopback connections, both ends kept: 2n fds. */
static void connections(int n) {
  uint16_t port;
  int l = listener(0, 0, &port);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  while (n > 0) {
    int batch = n < 1024 ? n : 1024;
    for (int i = 0; i < batch; i++) {
      int c = socket(AF_INET, SOCK_STREAM, 0);
      if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("connect");
    }
    for (int i = 0; i < batch; i++)
      if (accept(l, NULL, NULL) < 0)
        die("accept");
    n -= batch;
  }
  close(l); /* the connections stay */
}

/* Files, pipes and socketpairs until the process holds about want fds. */
static void fill(int want, const char *file) {
  int kind = 0;
  for (;;) {
    int fd = fcntl(0, F_DUPFD, 0);
    if (fd < 0)
      die("dup");
    close(fd);
    if (fd >= want)
      return;
    int p[2];
    switch (kind++ % 3) {
    case 0:
      if (open(file, O_RDONLY) < 0)
        die("open");
      break;
    case 1:
      if (pipe(p) != 0)
        die("pipe");
      break;
    default:
      if (socketpair(AF_UNIX, SOCK_STREAM, 0, p) != 0)
        die("socketpair");
    }
  }
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

int main(int argc, char **argv) {
  int P = 10, F = 50, L = 8, C = 100, timeout = 600, opt;
  int holders = 0, dups = 0;
  while ((opt = getopt(argc, argv, "P:F:L:C:t:D:")) != -1) {
    switch (opt) {
    case 'D':
      if (sscanf(optarg, "%d:%d", &holders, &dups) != 2 || holders < 0 ||
          dups < 0 || dups > 19000) {
        fprintf(stderr, "po-load: -D HOLDERS:DUPS (DUPS at most 19000)\n");
        return 2;
      }
      break;
    case 'P':
      P = atoi(optarg);
      break;
    case 'F':
      F = atoi(optarg);
      break;
    case 'L':
      L = atoi(optarg);
      break;
    case 'C':
      C = atoi(optarg);
      break;
    case 't':
      timeout = atoi(optarg);
      break;
    default:
      fprintf(stderr, "usage: po-load -P procs -F fds -L listeners "
                      "-C connections [-t seconds] [-D holders:dups]\n");
      return 2;
    }
  }
  if (P < REUSEPORT || F < 16 || L < 2 || C < 0) {
    fprintf(stderr, "po-load: need -P >= %d, -F >= 16, -L >= 2\n", REUSEPORT);
    return 2;
  }

  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  int per = (C + P - 1) / P; /* connections per process */
  if ((rlim_t)(F + 64) > rl.rlim_cur || 2 * per + 16 > F) {
    fprintf(stderr,
            "po-load: %d fds per process (%d for connections) do not fit "
            "the limit %llu: use more processes\n",
            F, 2 * per, (unsigned long long)rl.rlim_cur);
    return 2;
  }
  alarm((unsigned)timeout);

  char file[] = "/tmp/po-load-XXXXXX";
  int tf = mkstemp(file);
  if (tf < 0)
    die("mkstemp");
  close(tf);

  uint16_t pport, rport = 0;
  int pre = listener(0, 0, &pport);
  {
    /* A port for the reuseport group: bound now, released, taken again by
     * the group's processes. */
    int s = listener(0, 1, &rport);
    close(s);
  }
  int ready[2];
  if (pipe(ready) != 0)
    die("pipe");
  pid_t *pids = calloc((size_t)(P + holders), sizeof(*pids));
  if (!pids)
    die("calloc");
  int singles = L - 1 - REUSEPORT > 0 ? L - 1 - REUSEPORT : 0;
  int left = C;

  for (int i = 0; i < P; i++) {
    int mine = left < per ? left : per;
    left -= mine;
    pid_t p = fork();
    if (p < 0)
      die("fork");
    if (p > 0) {
      pids[i] = p;
      continue;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
      _exit(0);
    alarm((unsigned)timeout + 5);
    close(ready[0]);
    if (i >= PREFORK)
      close(pre); /* only the prefork workers share it */
    if (i >= PREFORK && i < PREFORK + REUSEPORT && L >= 1 + REUSEPORT)
      listener(rport, 1, NULL);
    for (int k = i; k < singles; k += P)
      listener(0, 0, NULL);
    connections(mine);
    fill(F, file);
    if (write(ready[1], "", 1) != 1)
      _exit(1);
    close(ready[1]);
    for (;;)
      pause();
  }
  /* The dup flood: processes that hold the watched listener many times. */
  for (int i = P; i < P + holders; i++) {
    pid_t p = fork();
    if (p < 0)
      die("fork");
    if (p > 0) {
      pids[i] = p;
      continue;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
      _exit(0);
    alarm((unsigned)timeout + 5);
    close(ready[0]);
    for (int k = 0; k < dups; k++)
      if (dup(pre) < 0)
        die("dup");
    if (write(ready[1], "", 1) != 1)
      _exit(1);
    close(ready[1]);
    for (;;)
      pause();
  }
  P += holders; /* waited for and stopped as the others */
  close(pre);
  close(ready[1]);
  for (int n = 0; n < P;) {
    char b[256];
    ssize_t r = read(ready[0], b, sizeof(b));
    if (r <= 0) {
      fprintf(stderr, "po-load: a process failed while building the load\n");
      for (int i = 0; i < P; i++)
        kill(pids[i], SIGKILL);
      unlink(file);
      return 1;
    }
    n += (int)r;
  }
  unlink(file); /* the open fds keep it */
  printf("READY port=%u reuseport=%u procs=%d fds=%d connections=%d "
         "listeners=%d\n",
         pport, rport, P, F, C, L);
  fflush(stdout);

  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGALRM, on_signal);
  while (!stop) {
    struct pollfd pfd = {.fd = 0, .events = POLLIN};
    int r = poll(&pfd, 1, 1000);
    if (r > 0) {
      char b[64];
      if (read(0, b, sizeof(b)) <= 0)
        break; /* the driver is gone */
    }
  }
  for (int i = 0; i < P; i++)
    kill(pids[i], SIGKILL);
  for (int i = 0; i < P; i++)
    waitpid(pids[i], NULL, 0);
  free(pids);
  return 0;
}
