"""Inventory noise soak (issue 13): collectd with portowner at Interval 0.2
and three <Inventory> blocks while, for INV_SOAK_SECONDS (default 5: the
CI variant; `make soak` runs 600), these events alternate:
  - short-lived listeners as nobody (block "brief", Hits 4), each up until
    one read saw it, then stopped;
  - bursts of UDP sockets bound to ephemeral ports (block "eph", udp only,
    on the kernel's ephemeral range, IgnoreEphemeral on);
  - graceful restarts (new workers) and full restarts (new parent) of
    allowed prefork servers (block "steady", Allow "po-listen" "*");
and INV_SOAK_INTRUDERS undeclared listeners (default 2; 20 under make soak)
spread over the time (block "intruders", Hits 2), each kept until its
WARNING and stopped.

What an operator checks: each intruder gives exactly one WARNING and one
OKAY; "steady" and "eph" give none; "brief" gives one WARNING and one OKAY
for exactly the listeners that the reads saw Hits times in a row (counted
in the csv: nothing here rests on timing), which is normally none. The
figures (events, notifications expected and received) are printed.

FullScanInterval 0: every read walks every process, so a listener that a
restart opens has its owner at the first read that sees it (with the
default, at Interval 0.2 a new socket may show no owner for up to 10 s, the
limit on full walks for new sockets, and would be an undeclared endpoint
("", uid): at a production Interval of 10 s every such read is a full walk).
"""
import collections
import os
import socket
import time

import pytest

from lib import collectd, env, listeners, waits
from lib.collectd import ident, portowner_conf
from lib.servers import Server

pytestmark = [
    pytest.mark.requires_root("exec runs the notification recorder as "
                              "nobody; po-listen --user nobody"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec"),
    pytest.mark.requires_build("portowner.so", "po-listen"),
]

SECONDS = float(os.environ.get("INV_SOAK_SECONDS", "5"))
INTRUDERS = int(os.environ.get("INV_SOAK_INTRUDERS", "2"))
BRIEF_PORTS = int(os.environ.get("INV_SOAK_BRIEF_PORTS", "40"))
INTERVAL = 0.2
BRIEF_HITS, INTRUDER_HITS = 4, 2
MIN_EACH = 2  # at least this many events of each kind, however slow
NAMES = ["count-listeners", "count-undeclared"]
WAIT = 60  # s: a guard against a hang only (reads slow down on a busy host)


def inventory(name, **keys):
    lines = ["  <Inventory %s>" % collectd.q(name)]
    for k, v in keys.items():
        for row in (v if k == "Allow" else [v]):
            lines.append("    %s %s" % (k, collectd._value(row)))
    lines.append("  </Inventory>")
    return "\n".join(lines)


def ephemeral_range():
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        lo, hi = f.read().split()
    return int(lo), int(hi)


def port_of(type_instance):
    return int(type_instance.split("-")[3])


def test_inventory_noise_soak(daemons, tmp_path):
    started = time.monotonic()
    lo, hi = ephemeral_range()
    ports = listeners.free_ports(BRIEF_PORTS + INTRUDERS + 2)
    brief_ports = ports[:BRIEF_PORTS]
    intruder_ports = ports[BRIEF_PORTS:BRIEF_PORTS + INTRUDERS]
    steady_ports = ports[BRIEF_PORTS + INTRUDERS:]
    made = []

    def server(*specs, **kw):
        s = Server(*specs, logdir=str(tmp_path), timeout=1800, **kw)
        made.append(s)
        return s

    d = daemons(portowner_conf(
        inventory("brief", Port=brief_ports, Hits=BRIEF_HITS),
        inventory("intruders", Port=intruder_ports, Hits=INTRUDER_HITS),
        inventory("steady", Port=steady_ports,
                  Allow=[["po-listen", "*"]]),
        inventory("eph", Protocol="udp", Port="%d-%d" % (lo, hi)),
        FullScanInterval=0), interval=INTERVAL)
    counts = collections.Counter()
    brief_expected = collections.Counter()  # ports the reads saw BRIEF_HITS
    # times in a row, and how often
    udp = []
    try:
        steady = [server("prefork:2:tcp4:127.0.0.1:%d" % p,
                         child_user=env.NOBODY) for p in steady_ports]
        d.start()
        last = {n: waits.wait_read(d, n, {}, names=NAMES, timeout_s=WAIT)
                for n in ("brief", "intruders", "steady", "eph")}
        bid = ident("brief", "count-undeclared")
        deadline = started + SECONDS
        step = 0

        def more():  # time left, or an event of some kind not done enough
            return (time.monotonic() < deadline
                    or counts["intruders"] < INTRUDERS
                    or min(counts["brief"], counts["udp bursts"],
                           counts["restarts"]) < MIN_EACH)

        while more():
            due = started + SECONDS * counts["intruders"] / max(INTRUDERS, 1)
            if counts["intruders"] < INTRUDERS and time.monotonic() >= due \
                    and step % 3 == 0:
                p = intruder_ports[counts["intruders"]]
                s = server("tcp4:127.0.0.1:%d" % p, user=env.NOBODY)
                w = waits.wait_notification(
                    d, timeout_s=WAIT, plugin_instance="intruders",
                    severity="WARNING",
                    type_instance=_inst("undeclared", p, "nobody"))
                s.stop()
                waits.wait_notification(
                    d, timeout_s=WAIT, plugin_instance="intruders",
                    severity="OKAY",
                    type_instance=w["type_instance"])
                counts["intruders"] += 1
            kind = step % 3
            step += 1
            if kind == 0:  # a short-lived listener
                p = brief_ports[counts["brief"] % len(brief_ports)]
                s = server("tcp4:127.0.0.1:%d" % p, user=env.NOBODY)
                up = waits.wait_read(d, "brief", {"count-undeclared": 1},
                                     after=last["brief"].time, names=NAMES,
                                     timeout_s=WAIT)
                s.stop()
                down = waits.wait_read(d, "brief", {"count-listeners": 0},
                                       after=up.time, names=NAMES,
                                       timeout_s=WAIT)
                seen = [t for t, v in d.csv_rows(bid)
                        if up.time <= t < down.time and v["value"] == 1]
                if len(seen) >= BRIEF_HITS:
                    brief_expected[p] += 1
                last["brief"] = down
                counts["brief"] += 1
            elif kind == 1:  # ephemeral UDP sockets, then closed
                for _ in range(20):
                    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    u.bind(("127.0.0.1", 0))
                    assert lo <= u.getsockname()[1] <= hi
                    udp.append(u)
                last["eph"] = waits.wait_read(
                    d, "eph", {"count-listeners": 0}, after=last["eph"].time,
                    names=NAMES, timeout_s=WAIT)
                for u in udp:
                    u.close()
                udp.clear()
                counts["udp sockets"] += 20
                counts["udp bursts"] += 1
            else:  # restarts of the allowed servers
                i = counts["restarts"] % len(steady)
                if counts["restarts"] % 2 == 0:
                    steady[i].command("restart")
                else:
                    steady[i].stop()
                    steady[i] = server("prefork:2:tcp4:127.0.0.1:%d"
                                       % steady_ports[i],
                                       child_user=env.NOBODY)
                last["steady"] = waits.wait_read(
                    d, "steady", {"count-undeclared": 0},
                    after=last["steady"].time, names=NAMES,
                    timeout_s=WAIT)
                counts["restarts"] += 1
        waits.sync_notifications(d, reads_of=ident("intruders",
                                                   "count-listeners"),
                                 timeout_s=WAIT)
        got = collections.Counter(
            (n["plugin_instance"], n["severity"], port_of(n["type_instance"]))
            for n in d.notifications(plugin="portowner"))
        want = collections.Counter()
        for p in intruder_ports:
            want[("intruders", "WARNING", p)] = 1
            want[("intruders", "OKAY", p)] = 1
        for p, n in brief_expected.items():
            want[("brief", "WARNING", p)] += n
            want[("brief", "OKAY", p)] += n
        print("\ninventory soak: %.0f s, %d intruders, %d short-lived "
              "listeners (%d seen %d reads in a row), %d ephemeral UDP "
              "sockets, %d restarts; notifications expected %d, received %d"
              % (time.monotonic() - started, counts["intruders"],
                 counts["brief"], sum(brief_expected.values()), BRIEF_HITS,
                 counts["udp sockets"], counts["restarts"],
                 sum(want.values()), sum(got.values())))
        assert got == want, (sorted(got.items()), sorted(want.items()))
        d.stop()
    finally:
        for u in udp:
            u.close()
        for s in made:
            s.cleanup()


def _inst(kind, port, user):
    return "%s-tcp4-127.0.0.1-%d-po_listen-%s" % (kind, port, user)
