"""Alert soak (issue 10): collectd with portowner at Interval 0.2 while a
stable prefork server (a root parent, 4 workers as nobody) is restarted
gracefully ALERT_SOAK_RESTARTS times (default 100: the parent keeps the
socket, every worker is replaced) and a big-heap listener (ALERT_SOAK_HEAP
MiB, default 1024, named bigheap-d: its exit leaves /proc/PID/exe gone for
about 100 ms while the socket still listens) is killed ALERT_SOAK_KILLS
times (default 50) and started again.

What an operator checks: no notification at all for the prefork server;
for the big-heap listener exactly one FAILURE "lost its listener" per kill
and one OKAY per return, nothing else (no owner change, no unexpected owner
although the block expects the program by its path and the user root); the
daemon exits 0 with a clean log. The figures (restarts, kills, exit
windows, notifications, wall time) are printed.
"""
import collections
import os
import statistics
import time

import pytest

from lib import collectd, env, listeners, waits
from lib.collectd import block, ident, portowner_conf
from lib.servers import Server, exe_gone, fd_inodes, proc_identity

from .churn import rss_kib

pytestmark = [
    pytest.mark.requires_root("exec runs the notification recorder as nobody; "
                              "po-listen --child-user"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec"),
    pytest.mark.requires_build("portowner.so", "po-listen"),
]

RESTARTS = int(os.environ.get("ALERT_SOAK_RESTARTS", "100"))
KILLS = int(os.environ.get("ALERT_SOAK_KILLS", "50"))
HEAP_MIB = int(os.environ.get("ALERT_SOAK_HEAP", "1024"))
INTERVAL = 0.2
UP_READS = DOWN_READS = 2


def test_alert_soak_graceful_restarts_and_big_heap_kills(daemons, tmp_path):
    started = time.monotonic()
    pre_port, heap_port = listeners.free_ports(2)
    made = []

    def server(*specs, **kw):
        s = Server(*specs, logdir=str(tmp_path), timeout=1800, **kw)
        made.append(s)
        return s

    d = daemons(portowner_conf(
        block("prefork", Port=pre_port, ExpectUser=["root", env.NOBODY]),
        block("heap", Port=heap_port, ExpectProcess=env.PO_LISTEN,
              ExpectUser="root")), interval=INTERVAL)
    try:
        pre = server("prefork:4:tcp4:127.0.0.1:%d" % pre_port,
                     child_user=env.NOBODY)
        heap = server("tcp4:127.0.0.1:%d" % heap_port, heap=HEAP_MIB,
                      comm="bigheap-d")
        d.start()
        waits.wait_read(d, "prefork", {"count-sockets": 1, "count-processes": 5})
        waits.wait_read(d, "heap", {"count-sockets": 1, "count-processes": 1})
        hid = ident("heap", "count-sockets")
        pre_inode = pre.socks[0].inode
        rss = [rss_kib(d.proc.pid)]

        restarts = 0

        def restart():
            nonlocal restarts
            time.sleep((restarts % 10) * INTERVAL / 10)  # spread, as the kills
            old = {proc_identity(p) for p in set(pre.pids) - {pre.pid}}
            out = pre.command("restart")
            new = {proc_identity(p) for p in set(pre.pids) - {pre.pid}}
            # Other workers, by pid and start time: a pid can come round.
            assert len(new) == 4 and None not in new and not new & old, (
                old, new, pre.pids, out)
            assert pre.socks[0].inode == pre_inode
            restarts += 1

        def reads(pred, n, after):
            c = waits.ReadCounter(d, hid, after=after, pred=pred)
            waits.wait_for(lambda: c.poll() >= n, 30,
                           "%d reads of portowner-heap" % n,
                           lambda: (len(c.seen), c.last))

        windows = []  # ms between /proc/PID/exe gone and the socket closed
        spans = []    # (exe gone, socket closed), wall clock
        downs = []    # (killed at, restarting at): wall clock
        per_cycle = max(1, -(-RESTARTS // max(1, KILLS)))
        for k in range(KILLS):
            inode = heap.socks[0].inode
            pid = heap.pid
            # The test paces itself on the reads it sees: left alone, every
            # kill would come just after a read, its exit window always
            # between two reads. Spread the kills over the interval.
            time.sleep((k % 10) * INTERVAL / 10)
            killed = time.time()
            heap.begin_stop()
            gone = None
            while inode in fd_inodes(pid):
                if gone is None and exe_gone(pid):
                    gone, gone_wall = time.monotonic(), time.time()
            if gone is not None:
                windows.append((time.monotonic() - gone) * 1000)
                spans.append((gone_wall, time.time()))
            heap.stop()
            for _ in range(per_cycle // 2):
                if restarts < RESTARTS:
                    restart()
            reads(lambda v: v == 0, DOWN_READS, killed)
            # It listens from the start, then fills its heap, then READY.
            restarting = time.time()
            heap = server("tcp4:127.0.0.1:%d" % heap_port, heap=HEAP_MIB,
                          comm="bigheap-d")
            back = time.time()
            downs.append((killed, restarting))
            for _ in range(per_cycle - per_cycle // 2):
                if restarts < RESTARTS:
                    restart()
            reads(lambda v: v == 1, UP_READS, back)
            rss.append(rss_kib(d.proc.pid))
        while restarts < RESTARTS:
            restart()
            waits.wait_reads(d, ident("prefork", "count-sockets"), 1)
        waits.wait_read(d, "prefork", {"count-sockets": 1, "count-processes": 5},
                        after=time.time())
        waits.sync_notifications(d, reads_of=hid, timeout_s=60)

        pre_notes = d.notifications(plugin="portowner", plugin_instance="prefork")
        heap_notes = d.notifications(plugin="portowner", plugin_instance="heap")
        req = "listener-tcp-%d" % heap_port
        fails = [n for n in heap_notes if (n["severity"], n["type_instance"]) ==
                 ("FAILURE", req) and "lost its listener" in n["message"]]
        okays = [n for n in heap_notes if (n["severity"], n["type_instance"]) ==
                 ("OKAY", req)]
        others = [n for n in heap_notes if n not in fails and n not in okays]
        wall = time.monotonic() - started
        # Reads that ended inside an exit window, the socket still counted
        # (their snapshot read the exiting owner, or started just before).
        in_window = sum(1 for t, v in d.csv_rows(hid)
                        if v["value"] == 1 and any(a < t < b for a, b in spans))
        alone = sum(1 for _, v in d.csv_rows(ident("prefork", "count-processes"))
                    if v["value"] == 1)
        print("alert soak: %d graceful restarts of a prefork server (4 workers), "
              "%d kills of a %d MiB listener in %.0f s at Interval %s\n"
              "exit windows (/proc/PID/exe gone, socket listening): median "
              "%.0f ms, max %.0f ms, %d of %d kills measured; %d reads ended "
              "inside one\n"
              "prefork: %d reads saw the parent alone, %d notifications "
              "(expected 0); heap: %d FAILURE, %d OKAY "
              "(expected %d each), other: %s (expected none)\n"
              "collectd VmRSS: %d KiB at the start, %d KiB at the end"
              % (restarts, KILLS, HEAP_MIB, wall, INTERVAL,
                 statistics.median(windows) if windows else 0,
                 max(windows) if windows else 0, len(windows), KILLS, in_window,
                 alone, len(pre_notes), len(fails), len(okays), KILLS,
                 dict(collections.Counter((n["severity"], n["type_instance"])
                                          for n in others)),
                 rss[0], rss[-1]))
        assert restarts == RESTARTS
        assert not pre_notes, "notifications for the restarted prefork server:\n  %s" % (
            "\n  ".join(collectd.short(n) for n in pre_notes))
        assert not others, "notifications other than the losses and returns:\n  %s" % (
            "\n  ".join(collectd.short(n) for n in others))
        # One FAILURE per kill, dated inside its down period, one OKAY per
        # return, dated after it (a read's time stamp is taken after its
        # snapshot).
        assert len(fails) == len(okays) == KILLS, (len(fails), len(okays))
        for (killed, restarting), f, o in zip(downs, fails, okays):
            assert killed <= f["time"] <= restarting, (killed, restarting,
                                                       collectd.short(f))
            assert restarting <= o["time"], (restarting, collectd.short(o))
        d.stop()
    finally:
        for s in reversed(made):
            s.cleanup()
