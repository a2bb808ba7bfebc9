"""The portowner plugin in the real collectd daemon: values and notifications.

Every test starts its own collectd (Interval 0.2) and real listeners in real
processes (tests/po-listen), and checks what an operator would see: the
values through the unix socket and csv, the notifications through exec
(with their meta), and a log free of errors and warnings.
"""
import array
import json
import os
import re
import socket
import time

import pytest

from lib import collectd, dump, env, listeners, waits
from lib.collectd import block, ident, portowner_conf
from lib.servers import program
from lib.servers import serve  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.requires_root("exec runs the notification recorder as "
                              "nobody; po-listen --user"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec",
                                  "threshold"),
    pytest.mark.requires_build("portowner.so", "portowner-dump", "po-listen"),
]
# Hits for the blocks whose listener is swapped for another: the port is
# closed for the few milliseconds po-listen takes to start, far less than
# SWAP_HITS reads even on a loaded machine.
SWAP_HITS = 10
META_ALWAYS = ("protocol", "ports", "sockets", "processes", "owners", "owners_total")


def tcp4(port, addr="127.0.0.1"):
    return "tcp4:%s:%d" % (addr, port)


def own(d, name, **match):
    """portowner's own notifications for block name (threshold's, which
    carry DataSource/CurrentValue meta, left out)."""
    return d.notifications(plugin="portowner", plugin_instance=name,
                           pred=lambda n: "CurrentValue" not in n["meta"],
                           **match)


def wait_own(d, name, severity, since=None, timeout_s=10):
    return waits.wait_notification(
        d, timeout_s=timeout_s, plugin="portowner", plugin_instance=name,
        severity=severity, since=since,
        pred=lambda n: "CurrentValue" not in n["meta"])


def severities(d, name):
    return [n["severity"] for n in own(d, name)]


def mentions_pid(text, pid):
    return re.search(r"(?<![0-9])%d(?![0-9])" % pid, text) is not None


class Naming:
    """Checks that a message names a process by its comm and its pid.

    The pid is checked at once; a missing comm is recorded and reported at
    the end of the test (verify()), so that one naming problem does not hide
    what the rest of the test checks."""

    def __init__(self):
        self.problems = []

    def __call__(self, n, listener, what="owner"):
        msg = n["message"]
        assert mentions_pid(msg, listener.pid), (
            "the message should name the %s's pid %d: %r" % (what, listener.pid, msg))
        if listener.comm not in msg:
            self.problems.append(
                "%s %s/%s: the message should name the %s by its comm %r "
                "(what ps, top, ss -p and lsof show) with its pid %d: %r"
                % (n["severity"], n["plugin"], n["plugin_instance"], what,
                   listener.comm, listener.pid, msg))

    def verify(self):
        assert not self.problems, "\n".join(self.problems)


@pytest.fixture
def assert_names(request):
    naming = Naming()
    yield naming
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.passed:
        naming.verify()


def check_notification(n, name, port=None):
    """What every portowner notification carries. Returns the owners."""
    assert n["plugin"] == "portowner", collectd.short(n)
    assert n["plugin_instance"] == name, collectd.short(n)
    assert n["host"] == collectd.HOST, "host not set: %s" % collectd.short(n)
    assert n["time"] and abs(n["time"] - time.time()) < 60, (
        "time not set: %s" % collectd.short(n))
    # collectd cuts messages at 256 bytes (255 + NUL): a message of 255
    # bytes is one that was cut.
    assert n["message_bytes"] < 255, "message cut at collectd's limit: %r" % n["message"]
    assert n["message"].strip(), "empty message"
    if port is not None:
        assert mentions_pid(n["message"], port), (
            "the message should name the port %d: %r" % (port, n["message"]))
    missing = [k for k in META_ALWAYS if k not in n["meta"]]
    assert not missing, "meta %s missing: %s" % (missing, n["raw"])
    owners = json.loads(n["meta"]["owners"])
    assert isinstance(owners, list) and len(owners) <= 16, n["meta"]["owners"]
    for o in owners:
        for k in ("pid", "comm", "exe", "user"):
            assert k in o, "owner without %s: %r" % (k, o)
    total = int(n["meta"]["owners_total"])
    assert total >= len(owners)
    if len(owners) < 16:
        assert total == len(owners), n["meta"]
    if port is not None:
        assert str(port) in n["meta"]["ports"], n["meta"]
    assert "cmdline" not in json.dumps(owners), "command lines are off by default"
    return owners


def meta_owners(n, key="owners"):
    return json.loads(n["meta"][key])


def quiet_for(d, name, reads=5):
    """Lets `reads` more reads happen, then makes sure every notification
    they (and the reads before) sent was recorded."""
    sid = ident(name, "count-sockets")
    waits.wait_reads(d, sid, reads)
    waits.sync_notifications(d, reads_of=sid)


def shorts(notifications):
    return [collectd.short(n) for n in notifications]


# --------------------------------------------------------------- case 1 -----

def test_values_match_portowner_dump(daemon, listen):
    """A listener up: the five values are what portowner-dump reports for
    that port (sockets, distinct processes, unowned, accept queue and its
    limit), and a steady listener raises no notification."""
    p = listeners.free_port()
    l = listen(tcp4(p), "tcp6only:[::1]:%d" % p, backlog=37)
    d = daemon(portowner_conf(block("one", Port=p, Protocol="tcp"))).start()
    # po-listen never accepts: 3 connections wait in the accept queue.
    clients = [socket.create_connection(("127.0.0.1", p)) for _ in range(3)]
    try:
        # A connection enters the accept queue when the server side has the
        # client's last ACK, which may come just after connect() returned.
        socks = waits.wait_for(
            lambda: (lambda s: dump.values_from_dump(s)["queue_length-accept"] == 3
                     and s)(dump.dump_json("--port", str(p))), 10,
            "portowner-dump to show the 3 connections in the accept queue",
            lambda: dump.dump_json("--port", str(p)))
        assert {s["inode"] for s in socks} == l.inodes, (socks, l.socks)
        expected = dump.values_from_dump(socks)
        # The oracle agrees with what the test set up.
        assert expected == {"count-sockets": 2, "count-processes": 1,
                            "count-unowned": 0, "queue_length-accept": 3,
                            "queue_length-accept_max": 74}, expected
        first = waits.wait_read(d, "one", expected)
        # Not a one-off: the same after more reads, and the same as the
        # dump says now.
        waits.wait_reads(d, ident("one", "count-sockets"), 3)
        now = dump.values_from_dump(dump.dump_json("--port", str(p)))
        assert waits.read(d, "one", after=first.time).values == now
    finally:
        for c in clients:
            c.close()
    waits.sync_notifications(d, reads_of=ident("one", "count-sockets"))
    assert own(d, "one") == [], shorts(own(d, "one"))
    d.stop()


def test_unowned_socket(daemon):
    """A listening socket no process holds (its only reference is in flight
    in an SCM_RIGHTS message): counted in count-unowned, as the dump says."""
    p = listeners.free_port()
    ls = socket.socket()
    ls.bind(("127.0.0.1", p))
    ls.listen(8)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                        array.array("i", [ls.fileno()]))])
    ls.close()
    try:
        expected = dump.values_from_dump(dump.dump_json("--port", str(p)))
        assert expected["count-sockets"] == 1 and expected["count-unowned"] == 1
        assert expected["count-processes"] == 0
        d = daemon(portowner_conf(block("orphan", Port=p))).start()
        waits.wait_read(d, "orphan", expected)
        quiet_for(d, "orphan")
        # It is listening: no "listener lost".
        assert "FAILURE" not in severities(d, "orphan")
        d.stop()
    finally:
        a.close()
        b.close()


def test_block_filters_protocol_address_ports(daemon, listen):
    """Protocol, Address and Port lists/ranges select the sockets a block
    counts."""
    p = listeners.free_port_range(3)
    l = listen(tcp4(p), "tcp6only:[::1]:%d" % p, "udp4:127.0.0.1:%d" % p,
               tcp4(p + 2))
    assert len(l.socks) == 4
    blocks = {
        "tcp": (dict(Port=p, Protocol="tcp"), 2),
        "tcp4": (dict(Port=p, Protocol="tcp4"), 1),
        "tcp6": (dict(Port=p, Protocol="tcp6"), 1),
        "udp": (dict(Port=p, Protocol="udp"), 1),
        "udp6": (dict(Port=p, Protocol="udp6"), 0),
        "tcp4udp4": (dict(Port=p, Protocol=["tcp4", "udp4"]), 2),
        "addr4": (dict(Port=p, Protocol="tcp", Address="127.0.0.1"), 1),
        "addr6": (dict(Port=p, Protocol="tcp", Address="::1"), 1),
        "addrany": (dict(Port=p, Protocol="tcp", Address=["0.0.0.0", "::"]), 0),
        "range": (dict(Port="%d-%d" % (p, p + 2), Protocol="tcp"), 3),
        "list": (dict(Port=[p + 2, p + 1], Protocol="tcp"), 1),
    }
    d = daemon(portowner_conf(*[block(n, **kw) for n, (kw, _) in blocks.items()])).start()
    for name, (_, count) in blocks.items():
        # The values of the read that counted them, all of them.
        r = waits.wait_read(d, name, {"count-sockets": count})
        procs = 1 if count else 0
        assert r.values["count-processes"] == procs, (name, r)
    # Cross-check the protocol blocks against the dump.
    for name, proto in (("tcp", "tcp"), ("udp", "udp")):
        want = dump.values_from_dump(dump.dump_json("--port", str(p), "--proto", proto))
        got = waits.read(d, name).values
        assert got == want, (name, got, want)
    d.stop()


# --------------------------------------------------------------- case 2 -----

def test_lost_listener_failure_names_last_owner(daemon, listen, assert_names):
    """Kill the listener: one FAILURE naming the last owner (comm and pid)
    at the Hits-th empty read (not before, and no later than Hits+1), and
    count-sockets drops to 0 and keeps being reported."""
    hits = 3
    p = listeners.free_port()
    l = listen(tcp4(p), comm="po-web")
    d = daemon(portowner_conf(block("lost", Port=p, Hits=hits))).start()
    sid = ident("lost", "count-sockets")
    waits.wait_read(d, "lost", {"count-sockets": 1, "count-processes": 1})
    waits.wait_reads(d, sid, 2)

    t_kill = time.time()
    l.stop()
    n = wait_own(d, "lost", "FAILURE")
    check_notification(n, "lost", p)
    assert_names(n, l, "last owner")
    prev = meta_owners(n, "previous_owners")  # the issue: on loss
    assert [o["pid"] for o in prev] == [l.pid], prev
    assert prev[0]["comm"] == "po-web" and prev[0]["user"] == "root"

    # The values: 0, reported every interval (a dashboard draws the drop).
    waits.wait_read(d, "lost", {"count-sockets": 0, "count-processes": 0,
                                "count-unowned": 0, "queue_length-accept": 0})
    t0 = d.last_update(sid)
    t5 = waits.wait_reads(d, sid, 5)
    assert t5 > t0
    def rows_after_kill():
        rows = [r for r in d.csv_rows(sid) if r[0] > t_kill]
        if sum(1 for r in rows if r[1]["value"] == 0) >= hits + 3:
            return rows
        return None

    rows = waits.wait_for(rows_after_kill, 10, "csv rows after the kill",
                          lambda: d.csv_rows(sid)[-10:])
    zeros = [t for t, v in rows if v["value"] == 0]
    assert zeros == sorted(zeros)
    # Once the value is 0 it stays 0 (no flapping), rows keep coming.
    first_zero = rows.index(next(r for r in rows if r[1]["value"] == 0))
    assert all(v["value"] == 0 for _, v in rows[first_zero:]), rows

    # Timing in reads, not in seconds (a loaded machine runs reads late and
    # bunched): a notification carries the time stamp of the read that sent
    # it, so it came after the (Hits-1)-th empty read, at the latest with
    # the (Hits+1)-th.
    assert n["time"] > zeros[hits - 2], (
        "FAILURE before %d empty reads: %.3f, empty reads at %s"
        % (hits, n["time"], zeros[:hits + 1]))
    assert n["time"] <= zeros[hits], (
        "FAILURE later than %d reads: %.3f, empty reads at %s"
        % (hits + 1, n["time"], zeros[:hits + 1]))

    # Once, not every interval.
    waits.sync_notifications(d, reads_of=sid)
    assert severities(d, "lost") == ["FAILURE"], shorts(own(d, "lost"))
    d.stop()
    assert_names.verify()


def test_failure_at_start_and_notify_missing_at_start_false(daemon, listen, assert_names):
    """No listener at the first read: FAILURE at start (default), none with
    NotifyMissingAtStart false; both report 0; a later loss still alerts."""
    p1, p2 = listeners.free_ports(2)
    d = daemon(portowner_conf(
        block("absent", Port=p1),
        block("quiet", Port=p2, NotifyMissingAtStart=False))).start()
    n = wait_own(d, "absent", "FAILURE")
    check_notification(n, "absent", p1)
    waits.wait_read(d, "absent", {"count-sockets": 0, "count-processes": 0})
    waits.wait_read(d, "quiet", {"count-sockets": 0, "count-processes": 0})
    quiet_for(d, "absent")
    assert severities(d, "absent") == ["FAILURE"]
    assert own(d, "quiet") == []

    # The quiet block comes up and goes away: that loss is notified.
    l = listen(tcp4(p2))
    waits.wait_read(d, "quiet", {"count-sockets": 1})
    quiet_for(d, "quiet", 2)
    since = time.time()
    l.stop()
    n = wait_own(d, "quiet", "FAILURE", since=since)
    assert_names(n, l, "last owner")
    d.stop()
    assert_names.verify()


# --------------------------------------------------------------- case 3 -----

def test_listener_back_okay_names_new_owner(daemon, listen, assert_names):
    """Start it again: one OKAY naming the new owner."""
    p = listeners.free_port()
    l1 = listen(tcp4(p), comm="po-web")
    d = daemon(portowner_conf(block("back", Port=p))).start()
    waits.wait_read(d, "back", {"count-sockets": 1})
    l1.stop()
    f = wait_own(d, "back", "FAILURE")
    assert_names(f, l1, "last owner")
    waits.wait_read(d, "back", {"count-sockets": 0})

    l2 = listen(tcp4(p), comm="po-web2")
    ok = wait_own(d, "back", "OKAY", since=f["time"])
    owners = check_notification(ok, "back", p)
    assert_names(ok, l2, "new owner")
    assert [o["pid"] for o in owners] == [l2.pid], owners
    assert owners[0]["comm"] == "po-web2" and owners[0]["user"] == "root"
    assert os.path.basename(owners[0]["exe"] or "") == "po-listen", owners
    waits.wait_read(d, "back", {"count-sockets": 1, "count-processes": 1})
    quiet_for(d, "back")
    assert severities(d, "back") == ["FAILURE", "OKAY"]
    d.stop()
    assert_names.verify()


# --------------------------------------------------------------- case 4 -----

def swap(old, listen, *specs, **kw):
    """Replaces the program holding the port: stop old, start the new one
    straight away (the port is closed for a few milliseconds, far less than
    the block's Hits reads)."""
    old.stop()
    return listen(*specs, **kw)


def test_owner_changed_other_program_warns(daemon, serve, assert_names):
    """Another program (another executable) takes over the port within Hits
    reads: one WARNING owner changed naming the new owner, previous owners
    in meta, and no listener-lost FAILURE."""
    p = listeners.free_port()
    l1 = serve(tcp4(p), program=program("alpha-d"))
    d = daemon(portowner_conf(block("chg", Port=p, Hits=SWAP_HITS))).start()
    waits.wait_read(d, "chg", {"count-sockets": 1})
    quiet_for(d, "chg", 2)
    assert own(d, "chg") == []

    l2 = swap(l1, serve, tcp4(p), program=program("beta-d"))
    w = wait_own(d, "chg", "WARNING")
    owners = check_notification(w, "chg", p)
    assert_names(w, l2, "new owner")
    assert [o["pid"] for o in owners] == [l2.pid]
    prev = meta_owners(w, "previous_owners")
    assert [(o["pid"], o["comm"]) for o in prev] == [(l1.pid, "alpha-d")], prev
    quiet_for(d, "chg", SWAP_HITS + 2)  # past Hits: no late FAILURE either
    assert severities(d, "chg") == ["WARNING"], shorts(own(d, "chg"))
    d.stop()
    assert_names.verify()


def test_owner_changed_other_binary_warns(daemon, listen, work):
    """Another binary (python3 instead of po-listen) takes over the port:
    one WARNING naming the new owner's pid, with the new and previous owners'
    exe in meta."""
    p = listeners.free_port()
    l1 = listen(tcp4(p))
    d = daemon(portowner_conf(block("bin", Port=p, Hits=SWAP_HITS))).start()
    waits.wait_read(d, "bin", {"count-sockets": 1})
    quiet_for(d, "bin", 2)
    l1.stop()
    l2 = listeners.PyListener("127.0.0.1", p)
    try:
        w = wait_own(d, "bin", "WARNING")
        owners = check_notification(w, "bin", p)
        assert mentions_pid(w["message"], l2.pid), w["message"]
        assert [o["pid"] for o in owners] == [l2.pid]
        assert os.path.basename(owners[0]["exe"]).startswith("python3"), owners
        prev = meta_owners(w, "previous_owners")
        assert [os.path.basename(o["exe"]) for o in prev] == ["po-listen"], prev
        quiet_for(d, "bin", SWAP_HITS + 2)
        assert severities(d, "bin") == ["WARNING"]
        d.stop()
    finally:
        l2.cleanup()


def test_owner_restarted_same_program_is_quiet(daemon, listen):
    """Same program and user, every owner pid and the socket replaced within
    Hits reads (a deployment's restart): nothing by default (NotifyRestart
    false; test_alerts checks the WARNING it gives when true)."""
    p = listeners.free_port()
    l1 = listen(tcp4(p), comm="po-web")
    d = daemon(portowner_conf(block("rst", Port=p, Hits=SWAP_HITS))).start()
    waits.wait_read(d, "rst", {"count-sockets": 1})
    quiet_for(d, "rst", 2)
    l2 = swap(l1, listen, tcp4(p), comm="po-web")
    # The restart happened: the new process holds a new socket.
    assert not l2.inodes & l1.inodes
    seen = dump.dump_json("--port", str(p))
    assert [(x["inode"], [o["pid"] for o in x["owners"]]) for x in seen] == \
        [(min(l2.inodes), [l2.pid])], seen
    waits.wait_read(d, "rst", {"count-sockets": 1, "count-processes": 1},
                    after=time.time())
    quiet_for(d, "rst", SWAP_HITS + 2)
    assert own(d, "rst") == [], shorts(own(d, "rst"))
    d.stop()


def test_notify_owner_change_false(daemon, serve):
    """NotifyOwnerChange false: the same change is not notified."""
    p = listeners.free_port()
    l1 = serve(tcp4(p), program=program("alpha-d"))
    d = daemon(portowner_conf(
        block("nochg", Port=p, Hits=SWAP_HITS, NotifyOwnerChange=False))).start()
    waits.wait_read(d, "nochg", {"count-sockets": 1})
    quiet_for(d, "nochg", 2)
    swap(l1, serve, tcp4(p), program=program("beta-d"))
    waits.wait_read(d, "nochg", {"count-sockets": 1})
    quiet_for(d, "nochg", SWAP_HITS + 2)
    assert own(d, "nochg") == [], shorts(own(d, "nochg"))
    d.stop()


# --------------------------------------------------------------- case 5 -----

def test_unexpected_user_failure_then_okay(daemon, listen):
    """ExpectUser "root", the listener runs as nobody: FAILURE unexpected
    owner naming it; OKAY once root holds the port again."""
    p = listeners.free_port()
    l1 = listen(tcp4(p), user="nobody", comm="po-svc")
    assert l1.user == "nobody"
    d = daemon(portowner_conf(block(
        "usr", Port=p, ExpectUser="root", Hits=SWAP_HITS, NotifyOwnerChange=False))).start()
    f = wait_own(d, "usr", "FAILURE")
    owners = check_notification(f, "usr", p)
    assert "nobody" in f["message"] and mentions_pid(f["message"], l1.pid), f["message"]
    assert [(o["pid"], o["user"]) for o in owners] == [(l1.pid, "nobody")]
    waits.wait_read(d, "usr", {"count-sockets": 1, "count-processes": 1})
    quiet_for(d, "usr")
    assert severities(d, "usr") == ["FAILURE"]

    l2 = swap(l1, listen, tcp4(p), comm="po-svc")
    assert l2.user == "root"
    ok = wait_own(d, "usr", "OKAY", since=f["time"])
    check_notification(ok, "usr", p)
    quiet_for(d, "usr", SWAP_HITS + 2)
    assert severities(d, "usr") == ["FAILURE", "OKAY"]
    d.stop()


@pytest.mark.parametrize("expect", ["good-d", "/good-d$/"], ids=["name", "regex"])
def test_unexpected_process_failure_then_okay(daemon, serve, expect, assert_names):
    """ExpectProcess (a name, matched with the exe's basename, or a /regex/,
    with the exe's path): another program is FAILURE unexpected owner; OKAY
    when the expected one holds the port."""
    p = listeners.free_port()
    l1 = serve(tcp4(p), program=program("bad-d"))
    d = daemon(portowner_conf(block(
        "prog", Port=p, ExpectProcess=expect, Hits=SWAP_HITS, NotifyOwnerChange=False))).start()
    f = wait_own(d, "prog", "FAILURE")
    check_notification(f, "prog", p)
    assert_names(f, l1, "unexpected owner")
    quiet_for(d, "prog")
    assert severities(d, "prog") == ["FAILURE"]

    swap(l1, serve, tcp4(p), program=program("good-d"))
    ok = wait_own(d, "prog", "OKAY", since=f["time"])
    check_notification(ok, "prog", p)
    quiet_for(d, "prog", SWAP_HITS + 2)
    assert severities(d, "prog") == ["FAILURE", "OKAY"]
    d.stop()
    assert_names.verify()


def test_expected_owner_by_exe_basename_and_user(daemon, listen):
    """ExpectProcess matches the exe basename (the comm differs here), with
    ExpectUser matching: no notification at all."""
    p = listeners.free_port()
    listen(tcp4(p), comm="other-d")
    d = daemon(portowner_conf(block(
        "exe", Port=p, ExpectProcess="po-listen", ExpectUser="root"))).start()
    waits.wait_read(d, "exe", {"count-sockets": 1})
    quiet_for(d, "exe")
    assert own(d, "exe") == [], shorts(own(d, "exe"))
    d.stop()


# --------------------------------------------------------------- case 6 -----

def test_prefork_counts_every_process_one_socket(daemon, listen):
    """A prefork server (parent + 4 workers on one socket): count-processes
    5, count-sockets 1, as the dump says."""
    p = listeners.free_port()
    l = listen("prefork:4:" + tcp4(p))
    assert len(l.socks) == 1 and len(l.socks[0].pids) == 5, l.socks
    d = daemon(portowner_conf(block("pre", Port=p))).start()
    r = waits.wait_read(d, "pre", {"count-sockets": 1, "count-processes": 5,
                                   "count-unowned": 0})
    assert r.values == dump.values_from_dump(dump.dump_json("--port", str(p)))
    quiet_for(d, "pre")
    assert own(d, "pre") == []
    d.stop()


def test_reuseport_group_counts_sockets_and_processes(daemon, listen):
    """SO_REUSEPORT: 3 processes with a socket each on one port."""
    p = listeners.free_port()
    l = listen("reuseport:3:" + tcp4(p))
    assert len(l.socks) == 3 and len(l.pids) == 3, l.socks
    d = daemon(portowner_conf(block("rp", Port=p))).start()
    r = waits.wait_read(d, "rp", {"count-sockets": 3, "count-processes": 3})
    assert r.values == dump.values_from_dump(dump.dump_json("--port", str(p)))
    d.stop()


def test_many_owners_meta_capped_at_16(daemon, listen):
    """21 owners (prefork parent + 20 workers, all up before collectd
    starts): the unexpected-owner FAILURE carries 16 owners and
    owners_total 21, the loss carries 16 previous owners, and both messages
    stay whole under collectd's 256 bytes."""
    p = listeners.free_port()
    l = listen("prefork:20:" + tcp4(p), comm="po-many-owners")
    assert len(l.pids) == 21
    d = daemon(portowner_conf(block("many", Port=p, ExpectProcess="po-nobody"))).start()
    f = wait_own(d, "many", "FAILURE")
    owners = check_notification(f, "many", p)
    assert len(owners) == 16, owners
    assert int(f["meta"]["owners_total"]) == 21
    assert int(f["meta"]["processes"]) == 21
    assert int(f["meta"]["sockets"]) == 1
    assert {o["pid"] for o in owners} <= set(l.pids)
    waits.wait_read(d, "many", {"count-sockets": 1, "count-processes": 21})

    l.stop()
    lost = wait_own(d, "many", "FAILURE", since=f["time"] + 0.001)
    check_notification(lost, "many", p)
    prev = meta_owners(lost, "previous_owners")
    assert len(prev) == 16 and {o["pid"] for o in prev} <= set(l.pids), prev
    d.stop()


# --------------------------------------------------------------- case 7 -----

def state_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def test_statefile_no_repeat_across_restart_and_okay_after(daemon, listen, work, assert_names):
    """With a StateFile: restarting collectd while the port is down sends no
    second FAILURE; the port coming up while collectd is stopped is an OKAY
    after the next start."""
    p = listeners.free_port()
    statedir = work.sub("state")
    state = os.path.join(statedir, "portowner.json")
    l1 = listen(tcp4(p), comm="po-web")
    d = daemon(portowner_conf(block("st", Port=p), StateFile=state)).start()
    waits.wait_read(d, "st", {"count-sockets": 1})
    l1.stop()
    f = wait_own(d, "st", "FAILURE")
    assert_names(f, l1, "last owner")
    # Written after the read that changed it (no need to stop collectd).
    waits.wait_for(lambda: state_json(state) is not None
                   and os.stat(state).st_mtime >= f["time"] - 1,
                   10, "the state file after the FAILURE", lambda: os.listdir(statedir))
    d.stop()
    assert os.listdir(statedir) == ["portowner.json"], (
        "temp files left next to the state file: %s" % os.listdir(statedir))

    d.start()  # the port is still down
    waits.wait_read(d, "st", {"count-sockets": 0})
    quiet_for(d, "st", 5)
    assert severities(d, "st") == ["FAILURE"], shorts(own(d, "st"))
    d.stop()

    l2 = listen(tcp4(p), comm="po-web2")  # up while collectd is stopped
    d.start()
    ok = wait_own(d, "st", "OKAY", since=f["time"])
    check_notification(ok, "st", p)
    assert_names(ok, l2, "new owner")
    quiet_for(d, "st", 5)
    assert severities(d, "st") == ["FAILURE", "OKAY"]
    d.stop()
    assert_names.verify()


def test_statefile_owner_change_while_stopped(daemon, serve, work, assert_names):
    """The program holding the port changes while collectd is stopped: a
    WARNING owner changed after the restart (a change is not missed)."""
    p = listeners.free_port()
    state = os.path.join(work.sub("state"), "portowner.json")
    l1 = serve(tcp4(p), program=program("alpha-d"))
    d = daemon(portowner_conf(block("stc", Port=p), StateFile=state)).start()
    waits.wait_read(d, "stc", {"count-sockets": 1})
    waits.wait_for(lambda: state_json(state) is not None, 10, "the state file")
    quiet_for(d, "stc", 2)
    d.stop()
    l2 = swap(l1, serve, tcp4(p), program=program("beta-d"))
    d.start()
    w = wait_own(d, "stc", "WARNING")
    check_notification(w, "stc", p)
    assert_names(w, l2, "new owner")
    quiet_for(d, "stc", 5)
    assert severities(d, "stc") == ["WARNING"]
    d.stop()
    assert_names.verify()


def test_statefile_corrupt_is_one_warning_and_a_fresh_start(daemon, work):
    """A corrupt state file: one warning naming it, then a fresh start
    (FAILURE at start for a port with no listener), and a good file again."""
    p = listeners.free_port()
    state = os.path.join(work.sub("state"), "portowner.json")
    with open(state, "w") as f:
        f.write('{"blocks": [ this is not JSON')
    d = daemon(portowner_conf(block("bad", Port=p), StateFile=state))
    d.expect_log(r"\[warning\] portowner plugin: .*" + re.escape(state))
    d.start()
    n = wait_own(d, "bad", "FAILURE")
    check_notification(n, "bad", p)
    quiet_for(d, "bad", 5)
    warned = d.log_matches(re.escape(state))
    assert len(warned) == 1 and "[warning]" in warned[0], warned
    waits.wait_for(lambda: state_json(state) is not None, 10,
                   "the state file rewritten as JSON")
    d.stop()


# --------------------------------------------------------------- case 9 -----

THRESHOLD = """LoadPlugin threshold
<Plugin threshold>
  <Plugin "portowner">
    <Type "count">
      Instance "sockets"
      FailureMin 1
    </Type>
  </Plugin>
</Plugin>
"""


def run_threshold(daemon, listen, threshold_conf, name):
    p = listeners.free_port()
    l = listen(tcp4(p))
    d = daemon(portowner_conf(block(name, Port=p)) + threshold_conf).start()
    sid = ident(name, "count-sockets")
    waits.wait_read(d, name, {"count-sockets": 1})
    waits.wait_reads(d, sid, 2)
    since = time.time()
    l.stop()
    n = waits.wait_notification(d, plugin="portowner", plugin_instance=name,
                                type="count", type_instance="sockets",
                                severity="FAILURE", since=since)
    assert "CurrentValue" in n["meta"] and float(n["meta"]["CurrentValue"]) == 0, n
    # The value keeps coming: threshold never says it went missing.
    waits.wait_reads(d, sid, 5)
    waits.sync_notifications(d, reads_of=sid)
    missing = d.notifications(message="not been updated")
    assert missing == [], shorts(missing)
    assert len(d.notifications(plugin="portowner", plugin_instance=name,
                               type="count", type_instance="sockets",
                               severity="FAILURE")) == 1
    d.stop()


def test_threshold_failure_when_listener_goes(daemon, listen):
    """collectd's threshold plugin on count-sockets (FailureMin 1) sends a
    FAILURE when the listener goes."""
    run_threshold(daemon, listen, THRESHOLD, "thr")


THRESHOLD_DOC = os.path.join(env.SRCDIR, "docs", "configuration.md")


def readme_threshold_example():
    """The threshold example of docs/configuration.md (the README's until
    issue 15), verbatim: from `LoadPlugin threshold` (when it precedes the
    block) through the matching </Plugin>."""
    with open(THRESHOLD_DOC) as f:
        lines = f.read().splitlines()
    start = next((i for i, l in enumerate(lines)
                  if re.match(r"\s*<Plugin\s+\"?threshold\"?\s*>", l)), None)
    assert start is not None, "docs/configuration.md has no <Plugin threshold> example"
    depth, end = 0, None
    for i in range(start, len(lines)):
        depth += len(re.findall(r"<Plugin\b", lines[i]))
        depth -= len(re.findall(r"</Plugin>", lines[i]))
        if depth == 0:
            end = i
            break
    assert end is not None, "unbalanced <Plugin threshold> in docs/configuration.md"
    first = start
    for j in range(start - 1, max(start - 4, -1), -1):
        if re.match(r"\s*LoadPlugin\s+\"?threshold\"?", lines[j]):
            first = j
    text = lines[first:end + 1]
    indent = min(len(l) - len(l.lstrip()) for l in text if l.strip())
    text = "\n".join(l[indent:] for l in text) + "\n"
    if "LoadPlugin" not in text:
        text = "LoadPlugin threshold\n" + text
    m = re.search(r"<Plugin\s+\"?portowner\"?\s*>(.*?)<Type", text, re.S)
    inst = re.search(r'Instance\s+"([^"]+)"', m.group(1)) if m else None
    return text, inst.group(1) if inst else "web"


def test_readme_threshold_example(daemon, listen):
    """The documented threshold example, as printed, does the same."""
    text, name = readme_threshold_example()
    run_threshold(daemon, listen, text, name)


SCANS = ("operations-full_scan", "operations-incremental_scan")
SELF_GAUGES = ("duration-scan", "count-processes_scanned", "count-fds_scanned")


def scans(d, pred, what):
    """The newest read whose two scan counters (raw, from the csv files: they
    are DERIVE) satisfy pred({name: count})."""
    return waits.wait_csv_read(d, "self", SCANS, pred, what, timeout_s=20)


def test_self_metrics_full_then_incremental_reads(daemon, listen):
    """portowner-self: the scan's duration, the fds and processes it read,
    and how many reads were full walks or incremental. With the default
    FullScanInterval (60 s) a steady listener costs one full walk, then
    only incremental reads, and the values stay right (the readlink walk:
    Resolver "proc"; with BPF every read is a full walk)."""
    p = listeners.free_port()
    l = listen(tcp4(p))
    d = daemon(portowner_conf(block("web", Port=p), Resolver="proc")).start()
    waits.wait_read(d, "web", {"count-sockets": 1, "count-processes": 1})
    r = scans(d, lambda v: v["operations-incremental_scan"] >= 5,
              "5 incremental reads")
    assert r.values["operations-full_scan"] == 1, r
    g = waits.read(d, "self", names=SELF_GAUGES).values
    dur = g["duration-scan"]
    assert dur is not None and 0 <= dur < 60, g
    assert g["count-processes_scanned"] >= 0, g
    assert g["count-fds_scanned"] >= 1, g  # the owner's fd
    # Still the right answer on incremental reads.
    assert waits.read(d, "web").values == \
        dump.values_from_dump(dump.dump_json("--port", str(p)))
    # A new owner process (a fork holding the socket would do; a new
    # listener is simpler) is seen by the incremental path or a full walk.
    l.stop()
    waits.wait_read(d, "web", {"count-sockets": 0})
    l2 = listen(tcp4(p))
    r = waits.wait_read(d, "web", {"count-sockets": 1, "count-processes": 1})
    assert r.values == dump.values_from_dump(dump.dump_json("--port", str(p)))
    assert l2.pid
    d.stop()


def test_full_scan_interval_0_walks_every_read(daemon, listen):
    """FullScanInterval 0: every read is a full walk."""
    p = listeners.free_port()
    listen(tcp4(p))
    d = daemon(portowner_conf(block("web", Port=p), FullScanInterval=0)).start()
    r = scans(d, lambda v: v["operations-full_scan"] >= 5, "5 full reads")
    assert r.values["operations-incremental_scan"] == 0, r
    d.stop()


def test_report_self_false_dispatches_no_self_values(daemon, listen):
    p = listeners.free_port()
    listen(tcp4(p))
    d = daemon(portowner_conf(block("web", Port=p), ReportSelf=False)).start()
    waits.wait_read(d, "web", {"count-sockets": 1})
    waits.wait_reads(d, ident("web", "count-sockets"), 3)
    assert not [k for k in d.listval() if "/portowner-self/" in k]
    d.stop()
