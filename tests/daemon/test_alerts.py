"""Alerts an on-call person can trust (issue 10), under the real collectd
daemon, with real servers' behaviours played by real processes
(tests/po-listen, tests/lib/servers.py).

One test per row of the issue's table (what the operator did -> what
portowner must send), then the listener requirements of Port / Protocol /
Address combinations, count-missing, the StateFile's per-requirement state
across a restart, OwnerChangeHits and NotifyRestart. Every test asserts what
a user sees: severity, plugin instance, type instance, the message, and how
many notifications came; a test that asserts that nothing came first makes
sure that its scenario happened (from /proc, portowner-dump or the values
of the reads) and then syncs the notifications.
"""
import json
import os
import re
import socket
import time

import pytest

from lib import collectd, dump, env, listeners, waits
from lib.collectd import block, ident, portowner_conf
from lib.servers import exe_gone, fd_inodes, proc_state, program, symlink_to
from lib.servers import serve  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.requires_root("exec runs the notification recorder as "
                              "nobody; po-listen --user, --hold-exit"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec",
                                  "threshold"),
    pytest.mark.requires_build("portowner.so", "portowner-dump", "po-listen"),
]

# Hits of the blocks whose listener is swapped for another: the port is
# closed for the few milliseconds po-listen takes to start.
SWAP_HITS = 10


def tcp4(port, addr="127.0.0.1"):
    return "tcp4:%s:%d" % (addr, port)


def listener_instance(req):
    """The notification type instance of a listener requirement."""
    return "listener-" + req.replace("/", "-")


def own(d, name, **match):
    """portowner's own notifications of block name (threshold's, which carry
    CurrentValue meta, left out)."""
    return d.notifications(plugin="portowner", plugin_instance=name,
                           pred=lambda n: "CurrentValue" not in n["meta"],
                           **match)


def wait_own(d, name, severity, since=None, timeout_s=10, **match):
    return waits.wait_notification(
        d, timeout_s=timeout_s, plugin="portowner", plugin_instance=name,
        severity=severity, since=since,
        pred=lambda n: "CurrentValue" not in n["meta"], **match)


def quiet_for(d, name, reads=5):
    """Lets `reads` more reads happen, then makes sure every notification
    sent so far is recorded."""
    sid = ident(name, "count-sockets")
    waits.wait_reads(d, sid, reads)
    waits.sync_notifications(d, reads_of=sid)


def shorts(ns):
    return [collectd.short(n) for n in ns]


def who(s, pid=None, user=None):
    """comm[pid] user, as a message names an owner whose comm is its
    program's name."""
    return "%s[%d] %s" % (s.comm, s.pid if pid is None else pid,
                          s.user if user is None else user)


def summary(ns):
    """(severity, type instance, message) of each notification."""
    return [(n["severity"], n["type_instance"], n["message"]) for n in ns]


def check(n, name, severity, type_instance, message, requirement=None):
    """One portowner notification, as a user reads it."""
    assert n["plugin"] == "portowner", collectd.short(n)
    assert n["host"] == collectd.HOST, collectd.short(n)
    assert n["time"] and abs(n["time"] - time.time()) < 60, collectd.short(n)
    assert n["type"] == "count", collectd.short(n)
    got = (n["plugin_instance"], n["severity"], n["type_instance"], n["message"])
    assert got == (name, severity, type_instance, message), (got, collectd.short(n))
    assert n["message_bytes"] < 255, "message cut at collectd's limit: %r" % n["message"]
    if requirement is not None:
        assert n["meta"].get("requirement") == requirement, n["raw"]


def lost(req, name, owners):
    return "%s (%s) lost its listener; last held by %s" % (req, name, owners)


def back(req, name, owners):
    return "%s (%s) has a listener again; held by %s" % (req, name, owners)


def at_start(req, name):
    return "%s (%s) has no listener at start" % (req, name)


def csv_values(d, name, value):
    """[(time, value)] of portowner-NAME/VALUE from the csv files: every
    read has a row."""
    return [(t, v["value"]) for t, v in d.csv_rows(ident(name, value))]


# ------------------------------------------------- row 1: an exiting owner --

def test_exiting_owner_is_one_lost_listener(daemon, serve):
    """SIGTERM a listener whose exit takes long (a big heap: the kernel
    releases /proc/PID/exe before it closes the fds) and whose name is not
    its program's (python3 vs python3.11): reads during the exit see the
    socket still listening, its owner there with comm and status but no
    exe. One FAILURE "lost its listener" naming the owner as it was known,
    and nothing else: no owner change, no unexpected owner for a block with
    a path ExpectProcess.

    The exit is held in that window (po-listen --hold-exit) until two whole
    reads happened inside it, so the scenario is certain, not a matter of
    where the reads fall."""
    p = listeners.free_port()
    s = serve(tcp4(p), comm="bigheap-d", hold_exit=True)
    d = daemon(portowner_conf(
        block("heap", Port=p),
        block("heappath", Port=p, ExpectProcess=env.PO_LISTEN))).start()
    for name in ("heap", "heappath"):
        waits.wait_read(d, name, {"count-sockets": 1, "count-processes": 1})
    quiet_for(d, "heap", 2)
    assert own(d, "heap") == [] and own(d, "heappath") == [], shorts(d.notifications())

    inode = s.socks[0].inode

    def in_window():
        return (exe_gone(s.pid) and inode in fd_inodes(s.pid)
                and inode in listeners.listening_inodes())

    s.begin_stop()
    waits.wait_for(in_window, 10, "po-listen's exit to reach the window where "
                   "/proc/PID/exe is gone and the socket still listens",
                   lambda: (proc_state(s.pid), exe_gone(s.pid), fd_inodes(s.pid)))
    entered = time.time()
    r1 = waits.wait_read(d, "heap", {"count-sockets": 1, "count-processes": 1},
                         after=entered)
    # The next read started after r1 ended: it ran inside the window.
    waits.wait_read(d, "heap", {"count-sockets": 1, "count-processes": 1},
                    after=r1.time)
    waits.wait_read(d, "heappath", {"count-sockets": 1, "count-processes": 1},
                    after=r1.time)
    assert in_window(), "the exit left the window before the reads were done"
    assert proc_state(s.pid) == "D", proc_state(s.pid)

    s.release()
    s.stop()
    owner = "bigheap-d[%d] root (exe po-listen)" % s.pid
    req = "tcp/%d" % p
    for name in ("heap", "heappath"):
        wait_own(d, name, "FAILURE", message="lost its listener")
    waits.wait_read(d, "heap", {"count-sockets": 0})
    quiet_for(d, "heap", 3)
    for name in ("heap", "heappath"):
        assert summary(own(d, name)) == [
            ("FAILURE", listener_instance(req), lost(req, name, owner))], name
        check(own(d, name)[0], name, "FAILURE", listener_instance(req),
              lost(req, name, owner), req)
    d.stop()


# ----------------------------------------- row 2: apache's graceful restart --

def test_graceful_restart_parent_alone_for_one_read_is_no_change(daemon, serve):
    """apachectl -k restart: the root parent keeps the socket and replaces
    every www-data worker; for a moment only the parent holds it. A read
    that sees the parent alone is not an owner change (OwnerChangeHits,
    default 2, is not reached): nothing is sent.

    The test stops the workers, waits until a read saw the parent alone,
    then starts new ones; the csv rows prove that exactly one read saw it
    alone (Interval 1 leaves the test a whole second to start them, far more
    than it needs even on a loaded machine)."""
    p = listeners.free_port()
    s = serve("prefork:4:" + tcp4(p), child_user=env.NOBODY)
    parent, workers = s.pid, set(s.pids) - {s.pid}
    assert listeners.proc_user(parent) == "root"
    assert {listeners.proc_user(w) for w in workers} == {env.NOBODY}
    d = daemon(portowner_conf(block("apache", Port=p)), interval=1).start()
    waits.wait_read(d, "apache", {"count-sockets": 1, "count-processes": 5})
    quiet_for(d, "apache", 2)

    s.command("workers-stop")
    alone = waits.wait_read(d, "apache", {"count-sockets": 1, "count-processes": 1})
    s.command("workers-start")
    new_workers = set(s.pids) - {parent}
    assert len(new_workers) == 4 and not new_workers & workers, (workers, s.pids)
    waits.wait_read(d, "apache", {"count-sockets": 1, "count-processes": 5},
                    after=alone.time)
    quiet_for(d, "apache", 4)

    procs = [v for _, v in csv_values(d, "apache", "count-processes")]
    alone_reads = procs.count(1)
    assert alone_reads == 1 and 1 not in procs[procs.index(1) + 1:], (
        "the scenario needs exactly one read of the parent alone: %s" % procs)
    assert own(d, "apache") == [], shorts(own(d, "apache"))
    d.stop()


# ------------------------------------------------ row 3: a haproxy reload --

def test_handover_of_the_same_sockets_is_no_change(daemon, serve, tmp_path):
    """haproxy reload: the new process gets the same socket inodes by fd
    passing, the old one exits. Same program, same user, same sockets,
    other pids: nothing (today: WARNING "changed owner (every process
    replaced)"). No read sees both processes hold them: the old one closes
    its copies before the new one takes them."""
    p = listeners.free_port()
    path = str(tmp_path / "handover.sock")
    old = serve(tcp4(p), tcp4(p, "127.0.0.2"), handover=path)
    d = daemon(portowner_conf(block("lb", Port=p))).start()
    waits.wait_read(d, "lb", {"count-sockets": 2, "count-processes": 1})
    quiet_for(d, "lb", 2)

    new = serve(take_over=path)
    assert old.proc.wait(timeout=waits.timeout(10)) == 0
    assert new.inodes == old.inodes and new.pid != old.pid, (old.socks, new.socks)
    assert not os.path.exists("/proc/%d" % old.pid)
    seen = dump.dump_json("--port", str(p))
    assert {s["inode"] for s in seen} == old.inodes, seen
    assert {o["pid"] for s in seen for o in s["owners"]} == {new.pid}, seen
    t = time.time()
    waits.wait_read(d, "lb", {"count-sockets": 2, "count-processes": 1}, after=t)
    quiet_for(d, "lb", 5)
    assert own(d, "lb") == [], shorts(own(d, "lb"))
    d.stop()


# ------------------------------------- row 4: a reload that drops [::]:8080 --

def test_reload_that_drops_one_endpoint_fails_that_requirement(daemon, serve):
    """nginx reload that dropped [::]:8080 and kept 0.0.0.0:8080: a block
    that names both families (Protocol tcp4 tcp6, or Address 0.0.0.0 ::)
    sends a FAILURE naming the lost endpoint, and only that one; a block
    `Port 8080` alone (tcp, either family) is still served: nothing, but it
    counts 1 socket instead of 2."""
    p = listeners.free_port()
    v6 = "tcp6only:[::]:%d" % p
    s = serve(tcp4(p, "0.0.0.0"), v6)
    d = daemon(portowner_conf(
        block("nginx", Port=p, Protocol=["tcp4", "tcp6"]),
        block("addrs", Port=p, Address=["0.0.0.0", "::"]),
        block("plain", Port=p))).start()
    for name in ("nginx", "addrs", "plain"):
        waits.wait_read(d, name, {"count-sockets": 2})
    quiet_for(d, "plain", 2)
    assert d.notifications(plugin="portowner") == [], shorts(d.notifications())

    gone = next(x.inode for x in s.socks if x.spec == v6)
    s.command("close " + v6)
    waits.wait_for(lambda: gone not in listeners.listening_inodes(), 10,
                   "[::]:%d to stop listening" % p)
    owner = who(s)
    lost6 = {"nginx": "tcp6/%d" % p, "addrs": "tcp/[::]:%d" % p}
    for name, req in lost6.items():
        wait_own(d, name, "FAILURE", message="lost its listener")
    waits.wait_read(d, "plain", {"count-sockets": 1})
    quiet_for(d, "plain", 3)
    for name, req in lost6.items():
        assert summary(own(d, name)) == [
            ("FAILURE", listener_instance(req), lost(req, name, owner))], name
        check(own(d, name)[0], name, "FAILURE", listener_instance(req),
              lost(req, name, owner), req)
        waits.wait_read(d, name, {"count-sockets": 1, "count-missing": 1})
    assert own(d, "plain") == [], shorts(own(d, "plain"))
    waits.wait_read(d, "plain", {"count-sockets": 1, "count-missing": 0})
    d.stop()


# ------------------------------------ row 5: one port of `Port 80 443` lost --

def test_one_port_of_two_lost_and_back(daemon, serve):
    """`Port 80 443`, 443 stops listening (80 still does): FAILURE
    "tcp/443 (web) lost its listener", its own identifier; when it is back,
    the OKAY of that identifier. Nothing about tcp/80."""
    p80, p443 = listeners.free_ports(2)
    s80 = serve(tcp4(p80))
    s443 = serve(tcp4(p443))
    d = daemon(portowner_conf(block("web", Port=[p80, p443]))).start()
    waits.wait_read(d, "web", {"count-sockets": 2, "count-processes": 2})
    quiet_for(d, "web", 2)

    req = "tcp/%d" % p443
    s443.stop()
    f = wait_own(d, "web", "FAILURE")
    waits.wait_read(d, "web", {"count-sockets": 1, "count-missing": 1})
    s443b = serve(tcp4(p443))
    ok = wait_own(d, "web", "OKAY", since=f["time"])
    waits.wait_read(d, "web", {"count-sockets": 2, "count-missing": 0})
    quiet_for(d, "web", 3)
    assert summary(own(d, "web")) == [
        ("FAILURE", listener_instance(req), lost(req, "web", who(s443))),
        ("OKAY", listener_instance(req), back(req, "web", who(s443b)))]
    check(f, "web", "FAILURE", listener_instance(req), lost(req, "web", who(s443)), req)
    check(ok, "web", "OKAY", listener_instance(req), back(req, "web", who(s443b)), req)
    assert s80.running()
    d.stop()


# -------------------------------- row 6: a dual-stack [::] socket serves IPv4 --

def test_dual_stack_socket_serves_ipv4_requirements(daemon, serve):
    """Debian's default apache listens on a dual-stack [::]:80. Blocks with
    Address "0.0.0.0", Address "127.0.0.1" or Protocol "tcp4" are served by
    it (an IPv4 client connects): nothing is sent, each counts the socket.
    The same blocks on a v6only [::] socket (IPv4 clients are refused) get
    their FAILURE at start, each naming its requirement."""
    dual, v6only = listeners.free_ports(2)
    serve("tcp6:[::]:%d" % dual)
    serve("tcp6only:[::]:%d" % v6only)
    socket.create_connection(("127.0.0.1", dual), timeout=5).close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", v6only), timeout=5)
    kinds = {"any4": dict(Address="0.0.0.0"), "lo4": dict(Address="127.0.0.1"),
             "tcp4": dict(Protocol="tcp4")}
    blocks = [block(k + "-dual", Port=dual, **kw) for k, kw in kinds.items()]
    blocks += [block(k + "-v6only", Port=v6only, **kw) for k, kw in kinds.items()]
    d = daemon(portowner_conf(*blocks)).start()
    reqs = {"any4": "tcp/0.0.0.0:%d", "lo4": "tcp/127.0.0.1:%d", "tcp4": "tcp4/%d"}
    for k in kinds:
        wait_own(d, k + "-v6only", "FAILURE")
    quiet_for(d, "any4-dual", 3)
    for k in kinds:
        assert summary(own(d, k + "-dual")) == [], k
        name, req = k + "-v6only", reqs[k] % v6only
        assert summary(own(d, name)) == [
            ("FAILURE", listener_instance(req), at_start(req, name))], name
        check(own(d, name)[0], name, "FAILURE", listener_instance(req),
              at_start(req, name), req)
    for k in kinds:
        waits.wait_read(d, k + "-dual", {"count-sockets": 1, "count-processes": 1,
                                         "count-missing": 0})
        waits.wait_read(d, k + "-v6only", {"count-sockets": 0, "count-missing": 1})
    d.stop()


# ------------------------------------ row 7: a process that renamed itself --

def test_renamed_process_is_judged_by_its_program(daemon, serve):
    """A root process renames itself "sshd" (prctl) and holds the port:
    ExpectProcess "sshd" matches the program (the exe's basename), never
    the name a process gives itself: FAILURE, and the message shows both
    names. ExpectProcess with its real program's name passes it."""
    p = listeners.free_port()
    s = serve(tcp4(p), comm="sshd")
    assert s.comm == "sshd"
    d = daemon(portowner_conf(
        block("ssh", Port=p, ExpectProcess="sshd"),
        block("real", Port=p, ExpectProcess="po-listen"))).start()
    f = wait_own(d, "ssh", "FAILURE")
    waits.wait_read(d, "real", {"count-sockets": 1, "count-processes": 1})
    quiet_for(d, "ssh", 3)
    assert len(own(d, "ssh")) == 1, shorts(own(d, "ssh"))
    check(f, "ssh", "FAILURE", "unexpected_owner",
          "tcp/%d (ssh) is held by an unexpected owner: sshd[%d] root "
          "(exe po-listen)" % (p, s.pid))
    owners = json.loads(f["meta"]["owners"])
    assert [(o["pid"], o["comm"], os.path.basename(o["exe"] or ""))
            for o in owners] == [(s.pid, "sshd", "po-listen")], owners
    assert own(d, "real") == [], shorts(own(d, "real"))
    d.stop()


# ----------------------------------------- row 8: a symlinked ExpectProcess --

def test_expect_process_path_names_the_file_through_a_symlink(daemon, serve):
    """ExpectProcess "/usr/bin/redis-server", a symlink in Debian (the exe
    reads /usr/bin/redis-check-rdb): the path names the same file, the
    owner passes. The real path passes too; a copy of the same bytes at
    another path is another file: FAILURE."""
    real = program("po-real-srv")
    link = symlink_to(real, "po-link-srv")
    p = listeners.free_port()
    s = serve(tcp4(p), program=link)
    assert os.readlink("/proc/%d/exe" % s.pid) == real
    assert s.comm == "po-link-srv"
    d = daemon(portowner_conf(
        block("redis", Port=p, ExpectProcess=link),
        block("realpath", Port=p, ExpectProcess=real),
        block("copy", Port=p, ExpectProcess=env.PO_LISTEN))).start()
    f = wait_own(d, "copy", "FAILURE")
    for name in ("redis", "realpath"):
        waits.wait_read(d, name, {"count-sockets": 1, "count-processes": 1})
    quiet_for(d, "redis", 3)
    assert own(d, "redis") == [], shorts(own(d, "redis"))
    assert own(d, "realpath") == [], shorts(own(d, "realpath"))
    assert len(own(d, "copy")) == 1, shorts(own(d, "copy"))
    check(f, "copy", "FAILURE", "unexpected_owner",
          "tcp/%d (copy) is held by an unexpected owner: po-link-srv[%d] root "
          "(exe po-real-srv)" % (p, s.pid))
    d.stop()


# --------------------- row 9: an unexpected owner replaced by another one --

def test_unexpected_owner_replaced_by_another_is_a_new_failure(daemon, serve):
    """ExpectUser "root"; the port is held by nobody, then by daemon: a
    second FAILURE naming the new owner, also with NotifyOwnerChange false
    (today: nothing at all)."""
    p = listeners.free_port()
    s1 = serve(tcp4(p), user=env.NOBODY)
    d = daemon(portowner_conf(block(
        "svc", Port=p, ExpectUser="root", NotifyOwnerChange=False,
        Hits=SWAP_HITS))).start()
    f1 = wait_own(d, "svc", "FAILURE")
    quiet_for(d, "svc", 2)
    s1.stop()
    s2 = serve(tcp4(p), user="daemon")
    assert s2.user == "daemon"
    f2 = wait_own(d, "svc", "FAILURE", since=f1["time"] + 0.001)
    waits.wait_read(d, "svc", {"count-sockets": 1, "count-processes": 1})
    quiet_for(d, "svc", 3)
    assert len(own(d, "svc")) == 2, shorts(own(d, "svc"))
    msg = "tcp/%d (svc) is held by an unexpected owner: %s"
    check(f1, "svc", "FAILURE", "unexpected_owner", msg % (p, who(s1)))
    check(f2, "svc", "FAILURE", "unexpected_owner", msg % (p, who(s2)))
    d.stop()


# ------------- row 10: the socket's uid is known without an owner process --

def test_listener_held_by_a_thread_after_the_leader_exited(daemon, serve):
    """The leader called pthread_exit(); a thread of the process (running as
    nobody) holds the listener: /proc/PID/fd is empty, the socket is in
    /proc/PID/task/TID/fd. Block ExpectUser "root": the owner is found and
    judged, FAILURE naming it (today: not judged at all)."""
    p = listeners.free_port()
    s = serve(tcp4(p), bind_user=env.NOBODY, thread_exit=True)
    inode = s.socks[0].inode

    def leader_gone():
        if proc_state(s.pid) != "Z" or fd_inodes(s.pid):
            return None
        tids = [int(t) for t in os.listdir("/proc/%d/task" % s.pid)
                if int(t) != s.pid and inode in fd_inodes(s.pid, int(t))]
        return tids

    waits.wait_for(leader_gone, 10, "the leader to exit, a thread holding the socket")
    d = daemon(portowner_conf(block("thr", Port=p, ExpectUser="root"))).start()
    f = wait_own(d, "thr", "FAILURE")
    waits.wait_read(d, "thr", {"count-sockets": 1, "count-processes": 1,
                               "count-unowned": 0})
    quiet_for(d, "thr", 3)
    assert len(own(d, "thr")) == 1, shorts(own(d, "thr"))
    assert (f["severity"], f["type_instance"]) == ("FAILURE", "unexpected_owner"), \
        collectd.short(f)
    # The zombie leader's exe cannot be read (its threads' can): either way
    # the owner is named by pid and user.
    assert re.fullmatch(r"tcp/%d \(thr\) is held by an unexpected owner: "
                        r"po-listen\[%d\] nobody( \(exe (unknown|po-listen)\))?"
                        % (p, s.pid), f["message"]), f["message"]
    assert leader_gone(), "the scenario changed during the test"
    d.stop()


def test_socket_without_owner_is_judged_by_its_uid(daemon, serve, tmp_path):
    """A listening socket of uid 65534 that no process holds (it is in
    flight in an SCM_RIGHTS message nobody reads): block ExpectUser "root"
    judges it by the socket's own uid: FAILURE "uid 65534 (no owner
    found)"."""
    p = listeners.free_port()
    path = str(tmp_path / "in-flight.sock")
    s = serve(tcp4(p), bind_user=env.NOBODY, handover=path)
    inode = s.socks[0].inode
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect(path)  # po-listen sends its socket here and exits
        assert s.proc.wait(timeout=waits.timeout(10)) == 0
        assert inode in listeners.listening_inodes()
        seen = dump.dump_json("--port", str(p))
        assert [(x["inode"], x["owners"]) for x in seen] == [(inode, [])], seen
        d = daemon(portowner_conf(block("orphan", Port=p, ExpectUser="root"))).start()
        f = wait_own(d, "orphan", "FAILURE")
        waits.wait_read(d, "orphan", {"count-sockets": 1, "count-processes": 0,
                                      "count-unowned": 1})
        quiet_for(d, "orphan", 3)
        assert len(own(d, "orphan")) == 1, shorts(own(d, "orphan"))
        check(f, "orphan", "FAILURE", "unexpected_owner",
              "tcp/%d (orphan) is held by an unexpected owner: uid 65534 "
              "(no owner found)" % p)
        d.stop()
    finally:
        c.close()


# --------------------- row 11: apache stop names every program and user --

def test_lost_message_names_every_program_and_user(daemon, serve):
    """apache stop, a root parent and 20 www-data workers: the message
    cannot list 21 owners in 255 bytes; it names every distinct program and
    user with its count first, then as many pids as fit. The socket stops
    listening while all 21 still hold it (shutdown), so the last read that
    saw it knew all of them."""
    p = listeners.free_port()
    spec = "prefork:20:" + tcp4(p)
    s = serve(spec, child_user=env.NOBODY)
    assert len(s.pids) == 21
    d = daemon(portowner_conf(block("apache", Port=p))).start()
    waits.wait_read(d, "apache", {"count-sockets": 1, "count-processes": 21})
    quiet_for(d, "apache", 2)
    s.command("shutdown " + spec)
    f = wait_own(d, "apache", "FAILURE")
    quiet_for(d, "apache", 2)
    assert len(own(d, "apache")) == 1, shorts(own(d, "apache"))
    assert f["type_instance"] == listener_instance("tcp/%d" % p), collectd.short(f)
    assert f["message_bytes"] < 255, f["message"]
    m = re.fullmatch(r"tcp/%d \(apache\) lost its listener; last held by "
                     r"(?P<progs>[^:\[]+): (?P<pids>.*)" % p, f["message"])
    assert m, f["message"]
    assert sorted(m.group("progs").split(", ")) == [
        "po-listen nobody (20)", "po-listen root (1)"], f["message"]
    entries = m.group("pids").split(", ")
    if entries[-1] == "...":
        entries.pop()
    assert entries, f["message"]
    users = {s.pid: "root"}
    users.update({w: env.NOBODY for w in s.pids if w != s.pid})
    for e in entries:
        em = re.fullmatch(r"po-listen\[(\d+)\] (\S+)", e)
        assert em and users.get(int(em.group(1))) == em.group(2), (e, f["message"])
    d.stop()


# ------------------------- requirements from Port / Protocol / Address ----

def test_requirements_from_port_protocol_address_combinations(daemon, serve):
    """Each Address x Protocol x port item of a block is a requirement; each
    unmet one has its own FAILURE (type instance listener-<name>), and the
    OKAY of the same identifier when it is met. count-missing is the number
    of unmet requirements, count-sockets the sockets that serve at least one
    of them (a dual-stack [::] socket serves IPv4, a v6only one does not)."""
    P = listeners.free_port_range(4)
    serve(tcp4(P), "tcp6only:[::1]:%d" % P, "udp4:0.0.0.0:%d" % P,
          "tcp6:[::]:%d" % (P + 1), "tcp6only:[::]:%d" % (P + 2))
    r, r2 = "%d-%d" % (P, P + 2), "%d-%d" % (P + 2, P + 3)
    cases = {
        # name: (config, count-sockets, failing requirements)
        "ports": (dict(Port=[P, P + 3]), 2, ["tcp/%d" % (P + 3)]),
        "list": (dict(Port="%d,%d" % (P, P + 3)), 2, ["tcp/%d" % (P + 3)]),
        "range": (dict(Port=r, Protocol=["tcp4", "tcp6", "udp"]), 5, []),
        "addrs": (dict(Port=[P, P + 1], Address=["127.0.0.1", "::1"]), 3, []),
        "v6only4": (dict(Port=P + 2, Address="127.0.0.1"), 0,
                    ["tcp/127.0.0.1:%d" % (P + 2)]),
        "fam": (dict(Port=P + 2, Protocol=["tcp4", "tcp6"]), 1,
                ["tcp4/%d" % (P + 2)]),
        "wild4": (dict(Port=[P, P + 1], Address="0.0.0.0"), 1,
                  ["tcp/0.0.0.0:%d" % P]),
        "wild6": (dict(Port=[P, P + 1, P + 2], Protocol="tcp6", Address="::"), 2,
                  ["tcp6/[::]:%d" % P]),
        "udp": (dict(Port=P, Protocol=["udp4", "udp6"]), 1, ["udp6/%d" % P]),
        "all": (dict(Port=P, Protocol="all"), 3, []),
        "twoaddr": (dict(Port=r2, Address=["::1", "127.0.0.1"]), 1,
                    ["tcp/127.0.0.1:%s" % r2]),
    }
    d = daemon(portowner_conf(*[block(n, **kw) for n, (kw, _, _) in cases.items()])).start()
    # FAILURE at start comes with the first read: a few reads, and every
    # notification is in.
    for name in cases:
        waits.wait_read(d, name, {})
    quiet_for(d, "ports", 3)
    problems = []
    for name, (_, _, failing) in cases.items():
        got = summary(own(d, name))
        want = [("FAILURE", listener_instance(req), at_start(req, name))
                for req in failing]
        if got != want:
            problems.append("%s: got %s, want %s" % (name, got, want))
    assert not problems, "\n".join(problems)
    for name, (_, _, failing) in cases.items():
        for n, req in zip(own(d, name), failing):
            assert n["meta"].get("requirement") == req, n["raw"]
    for name, (_, count, failing) in cases.items():
        waits.wait_read(d, name, {"count-sockets": count,
                                  "count-missing": len(failing)})

    # 127.0.0.1:P+3 comes up: the OKAY of each requirement it meets.
    s2 = serve(tcp4(P + 3))
    met = {"ports": ("tcp/%d" % (P + 3), 3), "list": ("tcp/%d" % (P + 3), 3),
           "twoaddr": ("tcp/127.0.0.1:%s" % r2, 2)}
    for name, (req, count) in met.items():
        wait_own(d, name, "OKAY")
        waits.wait_read(d, name, {"count-sockets": count, "count-missing": 0})
    quiet_for(d, "ports", 2)
    for name, (req, _) in met.items():
        assert summary(own(d, name)) == [
            ("FAILURE", listener_instance(req), at_start(req, name)),
            ("OKAY", listener_instance(req), back(req, name, who(s2)))], name
    d.stop()


# -------------------------------------------------------- count-missing ----

THRESHOLD_MISSING = """LoadPlugin threshold
<Plugin threshold>
  <Plugin "portowner">
    <Type "count">
      Instance "missing"
      FailureMax 0
    </Type>
  </Plugin>
</Plugin>
"""


def test_count_missing_is_raw_and_the_threshold_plugin_sees_it(daemon, serve):
    """count-missing (stock type count, type instance missing) counts the
    unmet requirements at each read, not debounced by Hits: it is 1 from the
    first read after the loss, while the FAILURE waits for Hits reads; the
    threshold plugin alerts on partial loss through it."""
    hits = 4
    p1, p2 = listeners.free_ports(2)
    serve(tcp4(p1))
    s2 = serve(tcp4(p2))
    d = daemon(portowner_conf(block("cm", Port=[p1, p2], Hits=hits))
               + THRESHOLD_MISSING).start()
    waits.wait_read(d, "cm", {"count-sockets": 2, "count-missing": 0})
    assert ident("cm", "count-missing") in d.listval()
    quiet_for(d, "cm", 2)

    s2.stop()
    f = wait_own(d, "cm", "FAILURE")
    t = waits.wait_notification(d, plugin="portowner", plugin_instance="cm",
                                type="count", type_instance="missing",
                                severity="FAILURE")
    assert float(t["meta"]["CurrentValue"]) == 1, t
    missing = waits.wait_for(
        lambda: (lambda rows: rows if len([x for x in rows if x[1] == 1]) > hits
                 else None)(csv_values(d, "cm", "count-missing")),
        10, "count-missing rows after the loss")
    ones = [tm for tm, v in missing if v == 1]
    # The FAILURE came with the Hits-th read that missed tcp/p2 (a read's
    # time stamp is its notifications'), after hits - 1 reads that already
    # said 1.
    assert ones[hits - 2] < f["time"] <= ones[hits], (f["time"], ones)
    req = "tcp/%d" % p2
    check(f, "cm", "FAILURE", listener_instance(req), lost(req, "cm", who(s2)), req)
    d.stop()


# ---------------------------------------------- StateFile per requirement --

def test_statefile_keeps_each_requirement_across_restarts(daemon, serve, work):
    """StateFile: a FAILURE standing for tcp/p2 (tcp/p1 fine) is not sent
    again after a restart; p2 back while collectd is stopped is its OKAY at
    the next start; a requirement new in the config starts fresh while the
    ones kept keep their state."""
    p1, p2, p3 = listeners.free_ports(3)
    state = os.path.join(work.sub("state"), "portowner.json")
    serve(tcp4(p1))
    s2 = serve(tcp4(p2))
    conf = lambda *ports: portowner_conf(block("st", Port=list(ports)),  # noqa: E731
                                          StateFile=state)
    d = daemon(conf(p1, p2)).start()
    waits.wait_read(d, "st", {"count-sockets": 2})
    s2.stop()
    f = wait_own(d, "st", "FAILURE")
    req2 = "tcp/%d" % p2
    check(f, "st", "FAILURE", listener_instance(req2), lost(req2, "st", who(s2)), req2)
    waits.wait_for(lambda: os.path.exists(state) and os.stat(state).st_mtime >= f["time"] - 1,
                   10, "the state file after the FAILURE")
    waits.wait_read(d, "st", {"count-missing": 1}, after=f["time"])
    d.stop()

    d.start()  # p2 still down: no second FAILURE
    waits.wait_read(d, "st", {"count-sockets": 1, "count-missing": 1})
    quiet_for(d, "st", 4)
    assert len(own(d, "st")) == 1, shorts(own(d, "st"))
    d.stop()

    s2b = serve(tcp4(p2))  # back while collectd is stopped
    d.start()
    ok = wait_own(d, "st", "OKAY", since=f["time"])
    check(ok, "st", "OKAY", listener_instance(req2), back(req2, "st", who(s2b)), req2)
    waits.wait_read(d, "st", {"count-sockets": 2, "count-missing": 0})
    quiet_for(d, "st", 3)
    assert len(own(d, "st")) == 2, shorts(own(d, "st"))
    s2b.stop()
    f2 = wait_own(d, "st", "FAILURE", since=ok["time"] + 0.001)
    waits.wait_read(d, "st", {"count-missing": 1}, after=f2["time"])
    d.stop()

    # tcp/p1 leaves the config, tcp/p3 (nothing there) comes in: tcp/p2
    # keeps its standing FAILURE, tcp/p3 starts fresh (FAILURE at start).
    d.body = conf(p2, p3)
    d.start()
    req3 = "tcp/%d" % p3
    f3 = wait_own(d, "st", "FAILURE", type_instance=listener_instance(req3))
    waits.wait_read(d, "st", {"count-sockets": 0, "count-missing": 2})
    quiet_for(d, "st", 4)
    check(f3, "st", "FAILURE", listener_instance(req3), at_start(req3, "st"), req3)
    assert [n["type_instance"] for n in own(d, "st")] == [
        listener_instance(req2)] * 3 + [listener_instance(req3)], shorts(own(d, "st"))
    d.stop()


# ------------------------------------------------------- OwnerChangeHits ----

def test_owner_change_waits_for_owner_change_hits_reads(daemon, serve):
    """Another program takes the port: the WARNING comes with the
    OwnerChangeHits-th read that saw the new owner (3 here, 2 by default),
    not before."""
    p = listeners.free_port()
    s1 = serve(tcp4(p), program=program("alpha-d"))
    d = daemon(portowner_conf(
        block("chg3", Port=p, Hits=SWAP_HITS, OwnerChangeHits=3),
        block("chg2", Port=p, Hits=SWAP_HITS))).start()
    waits.wait_read(d, "chg3", {"count-sockets": 1, "count-processes": 1})
    quiet_for(d, "chg3", 2)
    s1.stop()
    # A read saw the port empty: every later read with a socket saw beta-d.
    waits.wait_read(d, "chg3", {"count-sockets": 0})
    s2 = serve(tcp4(p), program=program("beta-d"))
    w = {n: wait_own(d, n, "WARNING") for n in ("chg3", "chg2")}
    quiet_for(d, "chg3", 4)
    rows = csv_values(d, "chg3", "count-sockets")
    last_empty = max(t for t, v in rows if v == 0)
    for name, hits in (("chg3", 3), ("chg2", 2)):
        seen_new = [t for t, v in rows
                    if v == 1 and last_empty < t <= w[name]["time"] + 0.0005]
        assert len(seen_new) == hits and abs(seen_new[-1] - w[name]["time"]) < 0.001, (
            name, w[name]["time"], seen_new)
        assert len(own(d, name)) == 1, shorts(own(d, name))
        check(w[name], name, "WARNING", "owner_change",
              "tcp/%d (%s) changed owner: alpha-d[%d] root -> beta-d[%d] root"
              % (p, name, s1.pid, s2.pid))
    d.stop()


# --------------------------------------------------------- NotifyRestart ----

def test_restart_of_the_same_program_is_quiet_unless_notify_restart(daemon, serve):
    """The same program and user re-create the socket (a new inode, other
    pids) within Hits reads: a deployment's restart. Nothing by default;
    with NotifyRestart true one WARNING "restarted" (type instance
    restart, meta event restarted)."""
    p = listeners.free_port()
    s1 = serve(tcp4(p))
    d = daemon(portowner_conf(
        block("rst", Port=p, Hits=SWAP_HITS, NotifyRestart=True),
        block("quiet", Port=p, Hits=SWAP_HITS))).start()
    waits.wait_read(d, "rst", {"count-sockets": 1, "count-processes": 1})
    quiet_for(d, "rst", 2)
    s1.stop()
    s2 = serve(tcp4(p))
    assert not s2.inodes & s1.inodes and s2.pid != s1.pid
    w = wait_own(d, "rst", "WARNING")
    waits.wait_read(d, "quiet", {"count-sockets": 1, "count-processes": 1},
                    after=w["time"])
    quiet_for(d, "rst", 4)
    assert len(own(d, "rst")) == 1, shorts(own(d, "rst"))
    check(w, "rst", "WARNING", "restart",
          "tcp/%d (rst) restarted: %s -> %s" % (p, who(s1), who(s2)))
    assert w["meta"].get("event") == "restarted", w["raw"]
    assert own(d, "quiet") == [], shorts(own(d, "quiet"))
    d.stop()


# ----------------------------------------------------- the new options ----
# (test_config.py has OwnerChangeHits 0 and a missing ExpectProcess path;
# test_config_booleans.py every form of NotifyRestart.)

def test_new_options_load(work):
    """OwnerChangeHits, NotifyRestart and a path ExpectProcess load cleanly
    with collectd -T."""
    body = portowner_conf(block("bk-new", Port=20022, OwnerChangeHits=5,
                                NotifyRestart=True, ExpectProcess=env.PO_LISTEN))
    rc, lines = collectd.collectd_test_config(work, body)
    assert rc == 0, "\n".join(lines)
    assert collectd.unexpected_log_lines(lines, collectd.TEST_MODE_EXPECTED) == [], \
        "\n".join(lines)


def test_owner_change_hits_above_the_limit_names_the_value(work):
    """OwnerChangeHits 1000001 (the limit is 1000000): the plugin does not
    load, an [error] line names the block, the key and the value as
    written."""
    rc, lines = collectd.collectd_test_config(
        work, portowner_conf(block("bk-och-big", Port=20022, OwnerChangeHits=1000001)))
    assert rc == 1, "collectd -T exited %d, not 1:\n%s" % (rc, "\n".join(lines))
    hits = [l for l in lines if "[error] portowner plugin: " in l and "bk-och-big" in l
            and re.search(r"\bOwnerChangeHits 1000001\b", l)]
    assert hits, "no [error] line names the block, OwnerChangeHits and 1000001:\n%s" % (
        "\n".join(lines))
