"""A read cost a local user cannot blow up (issue 11), against the real
collectd daemon and real processes of `nobody`:

- processes that dup() a watched listener thousands of times: an
  incremental read checks one fd per owner (portowner-self/count-fds_verified),
  not one per fd, and collectd's memory does not follow the fds;
- a listener opened and closed over and over in a watched range: the full
  walks it asks for (a new socket each time) are rate-limited.

Counts a user can check (portowner-self values, the csv files, the log), no
time: the rate limit is checked against the reads' own time stamps.
"""

import os
import signal
import subprocess
import sys

import pytest

from lib import dump, env, listeners, waits
from lib.collectd import block, portowner_conf

pytestmark = pytest.mark.requires_build("portowner.so", "portowner-dump")

SCANS = ("operations-full_scan", "operations-incremental_scan")
SELF = ("count-fds_scanned",) + SCANS

# A listener on PORT, held by HOLDERS processes of `nobody` (forked from this
# one, which keeps it too); "dup N" makes each dup() it N times, "open" and
# "close" open and close a second listener on PORT + 1 in this process.
HOLDER = r"""
import os, pwd, resource, socket, sys, time
port, holders = int(sys.argv[1]), int(sys.argv[2])
nobody = pwd.getpwnam(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
pipes = []
for _ in range(holders):
    cmd_r, cmd_w = os.pipe()
    ack_r, ack_w = os.pipe()
    if os.fork() == 0:
        os.close(cmd_w); os.close(ack_r)
        os.setgid(nobody.pw_gid); os.setuid(nobody.pw_uid)
        cmd = os.fdopen(cmd_r)
        for line in cmd:
            n = int(line.split()[1])
            fds = [os.dup(s.fileno()) for _ in range(n)]
            os.write(ack_w, b"k")
        os._exit(0)  # stdin of the parent ended: the pipe closed
    os.close(cmd_r); os.close(ack_w)
    pipes.append((os.fdopen(cmd_w, "w"), ack_r))
os.setgid(nobody.pw_gid); os.setuid(nobody.pw_uid)
print("READY", flush=True)
for line in sys.stdin:
    if line.startswith("dup"):
        for w, ack in pipes:
            w.write(line); w.flush()
        for w, ack in pipes:
            assert os.read(ack, 1) == b"k"
        print("DUPED", flush=True)
    elif line.startswith("open"):  # a new listener (a new inode) on PORT + 1
        f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        f.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        f.bind(("127.0.0.1", port + 1))
        f.listen(1)
        print("OPENED", flush=True)
    elif line.startswith("close"):
        f.close()
        print("CLOSED", flush=True)
"""


class Holders:
    def __init__(self, port, n):
        self.p = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(port), str(n), env.NOBODY],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            start_new_session=True)
        assert self.p.stdout.readline().strip() == "READY"

    def say(self, line, answer=None):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        if answer:
            assert self.p.stdout.readline().strip() == answer

    def stop(self):
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait(timeout=30)


@pytest.fixture
def holders():
    made = []

    def make(port, n):
        h = Holders(port, n)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def self_reads(d, names=SELF, more=("count-fds_verified",)):
    """The reads of portowner-self in the csv files, in time order:
    [(time, {name: value})] with every one of names (and those of more that
    the read has)."""
    reads = waits.csv_reads(d, "self", tuple(names) + tuple(more))
    return [(t, v) for t, v in sorted(reads.items())
            if all(n in v for n in names)]


def incremental_after(d, t0, n):
    """Waits for n incremental reads (their incremental_scan counter one
    more than the read before) newer than t0; returns their values."""
    got = []

    def found():
        rs = self_reads(d)
        got[:] = [v for (t, v), (_, p) in zip(rs[1:], rs) if t > t0 and
                  v["operations-incremental_scan"] ==
                  p["operations-incremental_scan"] + 1]
        return len(got) >= n

    waits.wait_for(found, 60, f"{n} incremental reads after {t0}",
                   lambda: self_reads(d)[-3:], step=0.1)
    return got


HOLDER_COUNT = 10
DUPS = 19000  # the hard limit on open files is 20,000 here


def test_dup_flood_costs_one_fd_per_owner(daemons, holders):
    """10 processes of nobody each dup() a watched listener 19,000 times:
    every incremental read checks 11 fds (one per owner process), not
    190,011, the owners count 11 processes, and collectd's RSS with the
    190,000 fds is within 3 MiB of its RSS without them (one run each, on
    the same processes)."""
    port = listeners.free_port()
    h = holders(port, HOLDER_COUNT)
    d = daemons(portowner_conf(block("web", Port=port), Resolver="proc"),
                interval=0.5).start()
    want = {"count-sockets": 1, "count-processes": HOLDER_COUNT + 1}
    waits.wait_read(d, "web", want)
    incremental_after(d, 0, 2)
    before = rss_kib(d.proc.pid)
    d.stop()

    h.say(f"dup {DUPS}", "DUPED")
    t0 = self_reads(d)[-1][0]
    d.start()
    flood = HOLDER_COUNT * DUPS
    waits.wait_for(lambda: [t for t, v in self_reads(d) if t > t0 and
                            v["count-fds_scanned"] >= flood], 60,
                   "the first read, a full walk of the dups",
                   lambda: self_reads(d)[-3:], step=0.1)
    for v in incremental_after(d, t0, 3):
        # One readlink per owner (before: 190,011); only new processes'
        # fds besides.
        assert v["count-fds_scanned"] < DUPS, v
        assert v.get("count-fds_verified") == HOLDER_COUNT + 1, v
    r = waits.wait_read(d, "web", want, after=self_reads(d)[-1][0])
    assert r.values["count-unowned"] == 0, r
    after = rss_kib(d.proc.pid)
    # Before: one owner record per fd, remembered between reads, ~+10 MiB.
    assert after - before < 3 * 1024, (before, after)
    d.stop()


def test_dup_flood_bpf_every_read_exact(daemons, holders):
    """The same flood against Resolver "bpf": a walk of fd tables writes 16
    fds and a count per owner, not 19,001 records (which one read of the
    kernel's iterator could not hold: the read used to fail), so every read
    is whole: 11 owners, nothing unowned, no error, and the dump (one BPF
    walk) and the readlink walk give each holder fd_count 19,001."""
    dump.require_bpf()
    port = listeners.free_port()
    h = holders(port, HOLDER_COUNT)
    h.say(f"dup {DUPS}", "DUPED")
    flood = HOLDER_COUNT * DUPS
    d = daemons(portowner_conf(block("web", Port=port), Resolver="bpf"),
                interval=0.5).start()
    want = {"count-sockets": 1, "count-processes": HOLDER_COUNT + 1,
            "count-unowned": 0}
    waits.wait_read(d, "web", want, timeout_s=30)
    # Three more reads, each a full walk that saw the dups.
    seen = []

    def walked():
        seen[:] = [v for t, v in self_reads(d)
                   if v["count-fds_scanned"] >= flood]
        return len(seen) >= 4

    waits.wait_for(walked, 60, "4 BPF reads that saw the dups",
                   lambda: self_reads(d)[-3:], step=0.1)
    r = waits.wait_read(d, "web", want, after=self_reads(d)[-1][0])
    assert r.values["count-processes"] == HOLDER_COUNT + 1, r
    bad = [l for l in d.log_text().splitlines()
           if "portowner plugin" in l and ("rror" in l or "failed" in l)]
    assert not bad, bad
    d.stop()
    for resolver in ("bpf", "proc"):
        (e,) = dump.dump_json("--resolver", resolver, "--port", str(port))
        counts = sorted(o["fd_count"] for o in e["owners"])
        assert counts == [1] + [DUPS + 1] * HOLDER_COUNT, (resolver, counts)
        assert all(len(o["fds"]) == min(16, o["fd_count"])
                   for o in e["owners"]), e


def test_flapping_listener_full_walks_rate_limited(daemons, holders):
    """A process of nobody opens and closes a listener in a watched range
    over and over, each one seen by a read: a new socket every time. The
    full walks they cause are at most one per 10 s (FullScanInterval 60 /
    6) beyond the first, and the put-off walks are said once in the log.
    Each listener is seen at once and seen gone at once (the listener
    table, not the walk), the steady listener keeps its owners, and no
    FAILURE comes of a socket whose owner is not known yet."""
    port = listeners.free_port_range(2)
    h = holders(port, 1)
    d = daemons(portowner_conf(block("web", Port=f"{port}-{port + 1}",
                                     ExpectUser=env.NOBODY),
                               Resolver="proc"),
                interval=0.2).start()
    r = waits.wait_read(d, "web", {"count-sockets": 1, "count-processes": 2})
    (t0, v0) = waits.wait_for(lambda: self_reads(d), 10,
                              "the self values of a read")[-1]
    cycles = 12
    for _ in range(cycles):
        h.say("open", "OPENED")
        r = waits.wait_read(d, "web", {"count-sockets": 2}, after=r.time)
        assert r.values["count-processes"] == 2, r  # the same two
        h.say("close", "CLOSED")
        r = waits.wait_read(d, "web", {"count-sockets": 1, "count-unowned": 0,
                                       "count-processes": 2}, after=r.time)
    waits.wait_for(lambda: [x for x in self_reads(d) if x[0] >= r.time], 10,
                   "the self values of the last read")
    (t1, v1) = [x for x in self_reads(d) if x[0] <= r.time][-1]
    walks = v1["operations-full_scan"] - v0["operations-full_scan"]
    # One walk for new sockets at once, then at most one per 10 s of the
    # reads' own time stamps (before: one per new listener, 12).
    allowed = 1 + int((t1 - t0) / 10) + 1
    assert walks <= allowed, (walks, allowed, t1 - t0)
    said = d.log_matches(r"\[notice\] portowner plugin: \d+ new sockets? "
                         r"appeared since the last full walk")
    assert len(said) == 1, said
    d.stop()
    assert not d.notifications(severity="FAILURE"), d.notifications()
