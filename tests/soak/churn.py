"""The soak itself, shared by test_soak.py (plain) and test_memcheck.py
(under valgrind): one collectd with portowner, three <Port> blocks, the
po-churn generator, and a watched listener killed on purpose every few
seconds.

  stable  one po-listen the whole run: must never be reported lost
  victim  po-listen started and stopped by the test: each down period
          lasts until the daemon has read the port empty DOWN_READS times
          and must give exactly one FAILURE; each return lasts UP_READS
          reads that saw it, and must give exactly one OKAY
  churn   4 ports where po-churn opens and closes listeners (notifications
          there are legitimate and not counted)
plus 8 unwatched ports where po-churn opens and closes listeners faster,
and hundreds of forks a second (children inherit po-churn's listeners).
"""
import subprocess
import time

from lib import collectd, listeners, waits


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


class Churn:
    """po-churn, bounded three ways: --seconds, end of its stdin (closed
    here or when the test process dies) and its parent's death."""

    def __init__(self, binary, seconds, forks, watched, unwatched):
        self.args = [binary, "--seconds", str(int(seconds)),
                     "--forks", str(forks),
                     "--watched", ",".join(map(str, watched)),
                     "--unwatched", ",".join(map(str, unwatched))]
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if line != "READY":
            self.proc.kill()
            raise AssertionError("po-churn did not start: %r" % line)
        self.stats = None

    def running(self):
        return self.proc.poll() is None

    def finish(self):
        """Ends it (end of stdin) and returns its STATS as a dict."""
        try:  # communicate() closes its stdin first
            out, _ = self.proc.communicate(timeout=waits.timeout(30))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("po-churn did not stop at the end of its stdin")
        assert self.proc.returncode == 0, "po-churn exited %s" % self.proc.returncode
        stats = {}
        for line in out.splitlines():
            if line.startswith("STATS "):
                for kv in line.split()[1:]:
                    k, _, v = kv.partition("=")
                    stats[k] = float(v)
        assert stats, "po-churn printed no STATS: %r" % out
        self.stats = stats
        return stats

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Soak:
    def __init__(self, daemons, churn_bin, listen_logdir=None, *, seconds,
                 interval, forks, warmup, down_reads=7, up_reads=7,
                 wrap=None):
        self.seconds, self.interval, self.warmup = seconds, interval, warmup
        self.forks = forks
        self.down_reads, self.up_reads = down_reads, up_reads
        self.down_s = down_reads * interval
        self.up_s = up_reads * interval
        self.churn_bin = churn_bin
        self.stable_port, self.victim_port = listeners.free_ports(2)
        first = listeners.free_port_range(4)
        self.churn_ports = list(range(first, first + 4))
        first = listeners.free_port_range(8)
        self.unwatched_ports = list(range(first, first + 8))
        body = collectd.portowner_conf(
            collectd.block("stable", Port=self.stable_port, Hits=1),
            collectd.block("victim", Port=self.victim_port, Hits=1),
            collectd.block("churn", Port="%d-%d" % (self.churn_ports[0],
                                                     self.churn_ports[-1]),
                           Hits=2, NotifyMissingAtStart=False,
                           NotifyOwnerChange=False),
            FullScanInterval=5)
        self.d = daemons(body, interval=interval)
        self.listeners = []
        self.rss = []        # (seconds since the churn started, KiB)
        # (stopped at, restarted at, time stamp of the last read of the up
        # period that followed), wall clock
        self.downs = []
        self.churn = None

    def _listener(self, port):
        # po-listen stops by itself after --timeout (default 600 s): longer
        # than any soak here, or the stable listener would really go away.
        l = listeners.Listener("tcp4:127.0.0.1:%d" % port,
                               timeout=int(self.seconds) + 900)
        self.listeners.append(l)
        return l

    def _pace(self, until=None, reads=None):
        """Returns at the monotonic time `until`, or (reads: (ReadCounter,
        n, what)) once the counter counted n reads, sampling collectd's RSS
        once a second and failing as soon as collectd or po-churn died."""
        if reads is not None:
            counter, n, what = reads
            deadline = time.monotonic() + waits.timeout(30 + 4 * n * self.interval)
        while True:
            now = time.monotonic()
            if not self.d.running():
                raise AssertionError(
                    "collectd died during the soak (status %s) after %.0fs:\n%s"
                    % (self.d.proc.poll(), now - self.t0, self.d.log_text()[-3000:]))
            assert self.churn.running(), "po-churn stopped early (status %s)" % (
                self.churn.proc.poll())
            if not self.rss or now - self.t0 - self.rss[-1][0] >= 1:
                self.rss.append((now - self.t0, rss_kib(self.d.proc.pid)))
            if reads is not None:
                if counter.poll() >= n:
                    return counter.last
                if now >= deadline:
                    raise waits.WaitTimeout(
                        "timed out waiting for %d reads that %s (%d seen)"
                        % (n, what, len(counter.seen)))
            elif now >= until:
                return None
            time.sleep(0.05 if until is None else min(0.05, max(0, until - now)))

    def run(self):
        d = self.d
        self.stable = self._listener(self.stable_port)
        victim = self._listener(self.victim_port)
        d.start()
        waits.wait_read(d, "stable", {"count-sockets": 1}, timeout_s=60)
        waits.wait_read(d, "victim", {"count-sockets": 1}, timeout_s=60)
        vid = collectd.ident("victim", "count-sockets")
        self.churn = Churn(self.churn_bin, self.seconds + 120, self.forks,
                           self.churn_ports, self.unwatched_ports)
        try:
            self.t0 = time.monotonic()
            end = self.t0 + self.seconds
            # Up for up_s, then down for down_reads reads that saw the port
            # empty, up again for up_reads reads that saw the listener, ...
            # (counted in reads, not seconds: a loaded machine reads late);
            # always ends up, the last return seen.
            self._pace(min(end, self.t0 + self.up_s))
            while time.monotonic() + self.down_s + self.up_s <= end:
                stopped = victim.stop()      # returns once the socket is gone
                self._pace(reads=(waits.ReadCounter(d, vid, after=stopped,
                                                    pred=lambda v: v == 0),
                                  self.down_reads, "saw the victim down"))
                restarted = time.time()
                victim = self._listener(self.victim_port)
                up_until = self._pace(reads=(
                    waits.ReadCounter(d, vid, after=restarted,
                                      pred=lambda v: v == 1),
                    self.up_reads, "saw the victim back"))
                self.downs.append((stopped, restarted, up_until))
            self._pace(end)
            self.duration = time.monotonic() - self.t0
        finally:
            self.churn_stats = self.churn.finish() if self.churn.running() else {}
            self.churn.kill()
        waits.sync_notifications(d, reads_of=vid, timeout_s=60)
        return self

    def cleanup(self):
        if self.churn is not None:
            self.churn.kill()
        for l in self.listeners:
            l.cleanup()

    # -- what an operator checks -------------------------------------------
    def listener_notifications(self, block, severity):
        """The listener notifications of block (one port, tcp: its one
        requirement tcp/PORT, type instance listener-tcp-PORT)."""
        port = {"stable": self.stable_port, "victim": self.victim_port}[block]
        return self.d.notifications(plugin="portowner", plugin_instance=block,
                                    type_instance="listener-tcp-%d" % port,
                                    severity=severity)

    def rss_growth(self):
        """(RSS at the end of warm-up, RSS at the end, max after warm-up), KiB."""
        after = [r for t, r in self.rss if t >= self.warmup]
        assert after, "no RSS sample after the warm-up (%ss)" % self.warmup
        return after[0], after[-1], max(after)

    def report(self):
        s = self.churn_stats
        lines = [
            "soak: %.0f s at Interval %s; churn: %.0f forks/s (%d forks), "
            "%.1f listener opens/s (%d on watched ports, %d on unwatched), "
            "%d fork failures, %d bind failures"
            % (self.duration, self.interval, s.get("forks_per_s", 0),
               s.get("forks", 0), s.get("opens_per_s", 0),
               s.get("watched_opens", 0), s.get("unwatched_opens", 0),
               s.get("fork_failures", 0), s.get("bind_failures", 0)),
            "victim: %d deliberate downs, %d FAILURE, %d OKAY"
            % (len(self.downs), len(self.listener_notifications("victim", "FAILURE")),
               len(self.listener_notifications("victim", "OKAY"))),
            "stable: %d notifications" % len(self.d.notifications(
                plugin="portowner", plugin_instance="stable")),
            "churn block: %d notifications" % len(self.d.notifications(
                plugin="portowner", plugin_instance="churn")),
        ]
        if self.rss:
            w, e, m = self.rss_growth()
            lines.append("collectd VmRSS: %d KiB at start, %d KiB after the "
                         "%ss warm-up, %d KiB at the end (growth %+d KiB; max "
                         "after warm-up %d KiB)" % (self.rss[0][1], w, self.warmup,
                                                    e, e - w, m))
        return "\n".join(lines)

    def check_victim(self):
        """Every deliberate down gave exactly one FAILURE, dated inside that
        down period (a read's time is taken when its snapshot is: it may
        fall an interval to either side of the wall-clock edges), and every
        return exactly one OKAY, dated before the next down (for the last
        one: by the last read of its up period)."""
        fails = self.listener_notifications("victim", "FAILURE")
        okays = self.listener_notifications("victim", "OKAY")
        assert len(self.downs) >= 3, "too short a soak: %d downs" % len(self.downs)
        problems = []
        early = self.interval
        for i, (down, up, up_until) in enumerate(self.downs):
            nxt = self.downs[i + 1][0] if i + 1 < len(self.downs) else up_until
            f = [n for n in fails if down - early <= n["time"] <= up + early]
            o = [n for n in okays if up - early <= n["time"] <= nxt]
            if len(f) != 1 or len(o) != 1:
                problems.append("down #%d (%.2f-%.2f): %d FAILURE, %d OKAY"
                                % (i, down, up, len(f), len(o)))
        assert not problems and len(fails) == len(okays) == len(self.downs), (
            "victim: %d deliberate downs, %d FAILURE, %d OKAY:\n  %s\n"
            "notifications:\n  %s" % (
                len(self.downs), len(fails), len(okays), "\n  ".join(problems),
                "\n  ".join(collectd.short(n) for n in fails + okays)))
