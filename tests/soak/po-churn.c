/* po-churn: process and listener churn for the soak tests (issue 5).
 *
 *   po-churn [--seconds S] [--forks N] [--watched P,P...] [--unwatched P,P...]
 *            [--watched-rate N] [--unwatched-rate N]
 *
 * Every 10 ms tick, until S seconds have passed, its stdin reaches end of
 * file, or its parent dies:
 *   - forks N/100 children (N per second): most _exit(0) at once, one in
 *     eight sleeps 1-30 ms first (so some are alive across a read); every
 *     child inherits the listeners po-churn holds at that moment, so the
 *     owner walk sees short-lived owners of watched sockets;
 *   - toggles listeners: about --watched-rate (default 10) opens or closes
 *     per second among the --watched ports and --unwatched-rate (default
 *     100) among the --unwatched ports (TCP, 127.0.0.1, SO_REUSEADDR).
 * Prints READY once set up and, at the end,
 *   STATS seconds=F forks=N forks_per_s=F opens=N opens_per_s=F
 *         watched_opens=N unwatched_opens=N fork_failures=N bind_failures=N
 * Kills and reaps every child before it exits (children also die with it:
 * PR_SET_PDEATHSIG). Exit 0, or 2 on a bad argument.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PORTS 256

struct slot {
  int port;
  int fd;
};

static volatile sig_atomic_t stop_now;
static void on_term(int sig) {
  (void)sig;
  stop_now = 1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_ports(const char *arg, struct slot *s, int max) {
  int n = 0;
  char *copy = strdup(arg), *save = NULL, *tok;
  for (tok = strtok_r(copy, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    char *end;
    long p = strtol(tok, &end, 10);
    if (*end || p < 1 || p > 65535 || n >= max) {
      fprintf(stderr, "po-churn: bad port '%s'\n", tok);
      exit(2);
    }
    s[n].port = (int)p;
    s[n].fd = -1;
    n++;
  }
  free(copy);
  return n;
}

static unsigned long long opens, bind_failures;

static void toggle(struct slot *s) {
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
    return;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)s->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0)
    return;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0) {
    bind_failures++;
    close(fd);
    return;
  }
  s->fd = fd;
  opens++;
}

int main(int argc, char **argv) {
  static struct slot watched[MAX_PORTS], unwatched[MAX_PORTS];
  int nw = 0, nu = 0;
  double seconds = 60, forks_per_s = 400, wrate = 10, urate = 100;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) {
      fprintf(stderr, "po-churn: %s needs a value\n", o);
      return 2;
    }
    if (!strcmp(o, "--seconds"))
      seconds = atof(v);
    else if (!strcmp(o, "--forks"))
      forks_per_s = atof(v);
    else if (!strcmp(o, "--watched"))
      nw = parse_ports(v, watched, MAX_PORTS);
    else if (!strcmp(o, "--unwatched"))
      nu = parse_ports(v, unwatched, MAX_PORTS);
    else if (!strcmp(o, "--watched-rate"))
      wrate = atof(v);
    else if (!strcmp(o, "--unwatched-rate"))
      urate = atof(v);
    else {
      fprintf(stderr, "po-churn: unknown option '%s'\n", o);
      return 2;
    }
    i++;
  }
  if (seconds <= 0 || forks_per_s < 0) {
    fprintf(stderr, "po-churn: bad --seconds or --forks\n");
    return 2;
  }
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGPIPE, SIG_IGN);
  srand((unsigned)getpid());
  printf("READY\n");
  fflush(stdout);

  unsigned long long forks = 0, fork_failures = 0, wopens = 0, uopens = 0;
  double fork_acc = 0, w_acc = 0, u_acc = 0;
  const double tick = 0.01;
  double t0 = now_s(), next = t0;
  long live = 0;
  while (!stop_now && now_s() - t0 < seconds) {
    struct pollfd p = {.fd = 0, .events = POLLIN};
    if (poll(&p, 1, 0) > 0) {
      char buf[64];
      if (read(0, buf, sizeof(buf)) <= 0)
        break; /* end of stdin: the test is done with us */
    }
    fork_acc += forks_per_s * tick;
    while (fork_acc >= 1) {
      fork_acc -= 1;
      pid_t pid = fork();
      if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if ((rand() & 7) == 0) {
          struct timespec ts = {0, (1 + rand() % 30) * 1000000L};
          nanosleep(&ts, NULL);
        }
        _exit(0);
      }
      if (pid < 0)
        fork_failures++;
      else {
        forks++;
        live++;
      }
    }
    unsigned long long before = opens;
    w_acc += wrate * tick;
    while (nw && w_acc >= 1) {
      w_acc -= 1;
      toggle(&watched[rand() % nw]);
    }
    wopens += opens - before;
    before = opens;
    u_acc += urate * tick;
    while (nu && u_acc >= 1) {
      u_acc -= 1;
      toggle(&unwatched[rand() % nu]);
    }
    uopens += opens - before;
    while (live > 0 && waitpid(-1, NULL, WNOHANG) > 0)
      live--;
    next += tick;
    double d = next - now_s();
    if (d > 0) {
      struct timespec ts = {(time_t)d, (long)((d - (time_t)d) * 1e9)};
      nanosleep(&ts, NULL);
    } else if (d < -1) {
      next = now_s(); /* fell behind (loaded machine): do not burst */
    }
  }
  double el = now_s() - t0;
  signal(SIGTERM, SIG_IGN);
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
    ;
  printf("STATS seconds=%.1f forks=%llu forks_per_s=%.1f opens=%llu "
         "opens_per_s=%.1f watched_opens=%llu unwatched_opens=%llu "
         "fork_failures=%llu bind_failures=%llu\n",
         el, forks, forks / el, opens, opens / el, wopens, uopens,
         fork_failures, bind_failures);
  fflush(stdout);
  return 0;
}
