"""Live differential tests: portowner-dump against ss and against the truth.

Real listeners are opened by real processes (tests/po-listen), which report
each socket's inode, port and owner pids. For each case we check that
`portowner-dump --json` shows the same sockets and owners as `ss -tulpnHe`,
and that both equal what po-listen says it holds, with --source netlink and
--source proc.
"""

import json
import os
import pwd
import re
import signal
import socket
import subprocess
from dataclasses import dataclass

import pytest

from lib import dump, env, listeners, waits
from lib.listeners import canonical_address, free_port

from .conftest import netns_inode, run, run_ss

pytestmark = pytest.mark.requires_build("portowner-dump", "po-listen")

SOURCES = ["netlink", "proc"]
ROOT = os.geteuid() == 0
STOP_TIMEOUT = 10.0  # seconds for po-listen to exit once told to

JSON_KEYS = {
    "protocol",
    "family",
    "v6only",
    "address",
    "port",
    "inode",
    "netns",
    "accept_queue",
    "accept_queue_max",
    "owners",
}
OWNER_KEYS = {"pid", "fd", "fds", "fd_count", "comm", "exe", "uid", "user",
              "cgroup", "cgroup_systemd", "unit", "user_unit", "container",
              "pod"}


# ---- parsing ss ---------------------------------------------------------------


@dataclass(frozen=True)
class SsOwner:
    comm: str
    pid: int
    fd: int


@dataclass(frozen=True)
class SsSocket:
    proto: str
    state: str
    family: str
    address: str  # canonical, as inet_ntop prints it
    iface: str  # "%dev" suffix when bound to a device, else ""
    port: int
    recv_q: int
    send_q: int
    owners: tuple
    inode: int  # from -e; None when ss did not print it
    uid: int  # from -e, which prints it only when it is not 0
    v6only: int  # from -e; None when ss did not print it


# One owner's tail: `",pid=N,fd=M)`. ss cuts the comm at its first ')' and
# prints it between quotes without escaping, so the comm may hold commas,
# '(' and '"': the first such tail after the opening `("` ends it.
_OWNER_TAIL = re.compile(r'",pid=(\d+),fd=(\d+)\)')


def parse_ss_users(text):
    """Parses `users:(("comm",pid=N,fd=M),...)` at the start of text.

    Returns (owners, rest of text).
    """
    head = "users:("
    if not text.startswith(head):
        raise ValueError(f"no users:( in {text!r}")
    pos = len(head)
    owners = []
    while True:
        if not text.startswith('("', pos):
            raise ValueError(f"bad owner at {pos} in {text!r}")
        m = _OWNER_TAIL.search(text, pos + 2)
        if m is None:
            raise ValueError(f"unterminated owner at {pos} in {text!r}")
        owners.append(SsOwner(text[pos + 2 : m.start()], int(m[1]), int(m[2])))
        pos = m.end()
        if text.startswith(",", pos):
            pos += 1
        elif text.startswith(")", pos):
            return tuple(owners), text[pos + 1 :]
        else:
            raise ValueError(f"bad owner list at {pos} in {text!r}")


def parse_ss_local(text):
    """`0.0.0.0:80`, `[::1]:80`, `*:80`, `127.0.0.1%lo:53` ->
    (family, address, iface, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"no port in {text!r}")
    iface = ""
    if host.startswith("["):
        end = host.index("]")
        host, iface = host[1:end], host[end + 1 :]
    elif "%" in host:
        host, pct, dev = host.partition("%")
        iface = pct + dev
    if host == "*":  # ss: in6addr_any without IPV6_V6ONLY
        host = "::"
    family = "inet6" if ":" in host else "inet"
    return family, canonical_address(host), iface, int(port)


def parse_ss_line(line):
    fields = line.split(None, 6)
    if len(fields) < 6:
        raise ValueError(f"short ss line {line!r}")
    proto, state, recv_q, send_q, local = fields[:5]
    rest = fields[6].strip() if len(fields) > 6 else ""
    owners = ()
    if rest.startswith("users:("):
        owners, rest = parse_ss_users(rest)
    ino = re.search(r"(?:^|\s)ino:(\d+)", rest)
    v6only = re.search(r"(?:^|\s)v6only:([01])", rest)
    uid = re.search(r"(?:^|\s)uid:(\d+)", rest)
    family, address, iface, port = parse_ss_local(local)
    return SsSocket(
        proto=proto,
        state=state,
        family=family,
        address=address,
        iface=iface,
        port=port,
        recv_q=int(recv_q),
        send_q=int(send_q),
        owners=owners,
        inode=int(ino[1]) if ino else None,
        uid=int(uid[1]) if uid else 0,
        v6only=int(v6only[1]) if v6only else None,
    )


def parse_ss(text):
    return [parse_ss_line(x) for x in text.splitlines() if x.strip()]


# ---- portowner-dump -----------------------------------------------------------


def dump_json(*args):
    """`portowner-dump --json ARGS` (lib.dump's strict reading), every entry
    checked against the schema."""
    data = dump.dump_json(*args)
    for entry in data:
        check_schema(entry)
    return data


def check_schema(e):
    assert JSON_KEYS <= set(e), f"keys of {e}"
    assert e["protocol"] in ("tcp", "udp"), e
    assert e["family"] in ("inet", "inet6"), e
    assert e["v6only"] in (True, False, None), e
    assert isinstance(e["address"], str), e
    assert isinstance(e["port"], int) and 1 <= e["port"] <= 65535, e
    assert isinstance(e["inode"], int) and e["inode"] >= 0, e
    assert isinstance(e["netns"], int), e
    for key in ("accept_queue", "accept_queue_max"):
        assert e[key] is None or (isinstance(e[key], int) and e[key] >= 0), e
    assert isinstance(e["owners"], list), e
    for o in e["owners"]:
        assert OWNER_KEYS <= set(o), f"owner keys of {o}"
        assert isinstance(o["pid"], int) and o["pid"] > 0, o
        assert isinstance(o["fd"], int) and o["fd"] >= 0, o
        assert isinstance(o["uid"], int) or o["uid"] is None, o
        for key in ("comm", "exe", "user"):
            assert o[key] is None or isinstance(o[key], str), o


def ports_arg(ports):
    return ",".join(str(p) for p in sorted(set(ports)))


# ---- comparing -----------------------------------------------------------------


FDS_KEPT = 16  # an owner's fds in our JSON: the lowest 16, and fd_count


def row_of_json(e):
    # One owner per process and socket (fds, fd_count); ss lists each fd.
    owners = tuple(sorted((o["pid"], o["fd_count"], tuple(o["fds"]))
                          for o in e["owners"]))
    return (e["protocol"], e["family"], e["address"], e["port"], e["inode"], owners)


def row_of_ss(s):
    fds = {}
    for o in s.owners:
        fds.setdefault(o.pid, []).append(o.fd)
    owners = tuple(sorted((pid, len(v), tuple(sorted(v)[:FDS_KEPT]))
                          for pid, v in fds.items()))
    return (s.proto, s.family, s.address, s.port, s.inode, owners)


def proc_comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().rstrip("\n")


def proc_uid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError(f"no Uid: in /proc/{pid}/status")


def check_live(listener, source, netns=None):
    """The core differential check. Returns our entries for the listener's
    ports (in its namespace) for case-specific assertions."""
    ports = listener.ports
    args = ["--source", source, "--port", ports_arg(ports)]
    if netns is not None:
        args.append("--all-namespaces")
    everything = dump_json(*args)
    assert all(e["port"] in ports for e in everything), (
        f"--port {ports_arg(ports)} let other ports through: {everything}"
    )

    # The namespace each entry belongs to.
    want_ns = netns_inode(netns)
    if netns is None:
        assert all(e["netns"] == want_ns for e in everything), (
            f"without --all-namespaces every socket is in our netns "
            f"{want_ns}: {everything}"
        )
    ours = [e for e in everything if e["netns"] == want_ns]

    theirs = [s for s in parse_ss(run_ss(netns)) if s.port in ports]
    for s in theirs:
        assert s.inode is not None, f"ss -e printed no inode: {s}"

    # 1. The same sockets (proto, family, address, port, inode) with the same
    #    owners (pid, fd) as ss.
    assert sorted(map(row_of_json, ours)) == sorted(map(row_of_ss, theirs))

    # 2. Queues and the v6only flag agree with ss.
    by_inode = {s.inode: s for s in theirs}
    for e in ours:
        s = by_inode[e["inode"]]
        if e["protocol"] == "tcp":
            assert e["accept_queue"] == s.recv_q, (e, s)
            if source == "netlink":
                assert e["accept_queue_max"] == s.send_q, (e, s)
            else:  # /proc/net/tcp does not carry the backlog
                assert e["accept_queue_max"] is None, e
        else:
            assert e["accept_queue"] is None, f"UDP has no accept queue: {e}"
            assert e["accept_queue_max"] is None, f"UDP has no accept queue: {e}"
        if "uid" in e:  # the socket's uid: not in json.h, but printed
            assert e["uid"] == s.uid, (e, s)
        if e["family"] == "inet6":
            if source == "netlink":
                assert s.v6only is not None, f"ss -e printed no v6only: {s}"
                assert e["v6only"] is bool(s.v6only), (e, s)
            else:  # /proc/net/tcp6 does not carry IPV6_V6ONLY
                assert e["v6only"] is None, e

    # 3. Ground truth: every socket po-listen holds, with exactly its pids.
    ours_by_inode = {e["inode"]: e for e in ours}
    for sock in listener.socks:
        e = ours_by_inode.get(sock.inode)
        assert e is not None, f"{sock.spec}: inode {sock.inode} missing: {ours}"
        assert (e["protocol"], e["family"], e["address"], e["port"]) == (
            sock.proto,
            sock.family,
            sock.address,
            sock.port,
        ), sock
        assert sorted(o["pid"] for o in e["owners"]) == sorted(sock.pids), sock

    # 4. Each owner's details are those of the live process.
    for e in ours:
        for o in e["owners"]:
            pid = o["pid"]
            assert os.readlink(f"/proc/{pid}/fd/{o['fd']}") == (
                f"socket:[{e['inode']}]"
            ), o
            assert o["comm"] == proc_comm(pid), o
            assert o["exe"] == os.readlink(f"/proc/{pid}/exe"), o
            assert o["uid"] == proc_uid(pid), o
            assert o["user"] == pwd.getpwuid(o["uid"]).pw_name, o
    return ours


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_for(cond, what):
    waits.wait_for(cond, 10, what)


def listener_entries(ours, listener):
    inodes = {s.inode for s in listener.socks}
    return [e for e in ours if e["inode"] in inodes]


# ---- the ss parser itself ----------------------------------------------------------


def test_ss_parser_handles_hostile_comm():
    # ss prints the comm cut at its first ')' between unescaped quotes.
    line = (
        'tcp LISTEN 3 128 [::ffff:127.0.0.1]:8080 *:* '
        'users:(("a,b(c",pid=12,fd=3),("x"",pid=13,fd=4),'
        '(",pid=1,fd=2",pid=14,fd=5)) ino:99 sk:1 cgroup:/ v6only:0 <->'
    )
    s = parse_ss_line(line)
    assert s.owners == (
        SsOwner('a,b(c', 12, 3),
        SsOwner('x"', 13, 4),
        SsOwner(",pid=1,fd=2", 14, 5),
    )
    assert (s.family, s.address, s.port) == ("inet6", "::ffff:127.0.0.1", 8080)
    assert (s.recv_q, s.send_q, s.inode, s.v6only, s.uid) == (3, 128, 99, 0, 0)
    s = parse_ss_line("udp UNCONN 0 0 0.0.0.0:5353 0.0.0.0:* uid:104 ino:7 sk:2")
    assert (s.owners, s.uid, s.inode, s.v6only) == ((), 104, 7, None)
    assert parse_ss_local("*:22")[:2] == ("inet6", "::")
    assert parse_ss_local("[::]:22")[:2] == ("inet6", "::")
    assert parse_ss_local("127.0.0.53%lo:53") == ("inet", "127.0.0.53", "%lo", 53)


# ---- the live cases ------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_prefork_parent_and_children_share_one_socket(listen, source):
    comm = 'po,pre(fork)"x'  # ss shows it cut at ')': the parser must cope
    listener = listen(f"prefork:4:tcp4:0.0.0.0:{free_port()}", comm=comm)
    (sock,) = listener.socks
    assert len(sock.pids) == 5
    ours = listener_entries(check_live(listener, source), listener)
    assert len(ours) == 1
    assert len(ours[0]["owners"]) == 5
    assert {o["comm"] for o in ours[0]["owners"]} == {comm}


@pytest.mark.parametrize("source", SOURCES)
def test_reuseport_group_of_three_processes(listen, source):
    listener = listen(f"reuseport:3:tcp4:0.0.0.0:{free_port()}")
    assert len(listener.socks) == 3 and len(listener.ports) == 1
    ours = listener_entries(check_live(listener, source), listener)
    assert len(ours) == 3, "one socket per process"
    owner_pids = [tuple(o["pid"] for o in e["owners"]) for e in ours]
    assert sorted(owner_pids) == sorted((s.pids[0],) for s in listener.socks)


@pytest.mark.parametrize("source", SOURCES)
def test_dual_stack_any_address(listen, source):
    listener = listen(f"tcp6:[::]:{free_port()}")
    (e,) = listener_entries(check_live(listener, source), listener)
    assert (e["family"], e["address"]) == ("inet6", "::")
    assert e["v6only"] is (False if source == "netlink" else None)


@pytest.mark.parametrize("source", SOURCES)
def test_v6only_any_address(listen, source):
    listener = listen(f"tcp6only:[::]:{free_port()}")
    (e,) = listener_entries(check_live(listener, source), listener)
    assert (e["family"], e["address"]) == ("inet6", "::")
    assert e["v6only"] is (True if source == "netlink" else None)


@pytest.mark.parametrize("source", SOURCES)
def test_ipv4_mapped_address(listen, source):
    listener = listen(f"tcp6:[::ffff:127.0.0.1]:{free_port()}")
    (e,) = listener_entries(check_live(listener, source), listener)
    assert (e["family"], e["address"]) == ("inet6", "::ffff:127.0.0.1")


@pytest.mark.parametrize("source", SOURCES)
def test_loopback_listener_with_queued_connections(listen, source):
    user = "nobody" if ROOT else None
    listener = listen(f"tcp4:127.0.0.1:{free_port()}", user=user, comm="po-loop")
    (sock,) = listener.socks
    # po-listen never accepts: two connections wait in the accept queue.
    clients = [socket.create_connection(("127.0.0.1", sock.port)) for _ in range(2)]
    try:
        wait_for(
            lambda: [
                s.recv_q for s in parse_ss(run_ss()) if s.inode == sock.inode
            ]
            == [2],
            "ss to show 2 connections in the accept queue",
        )
        (e,) = listener_entries(check_live(listener, source), listener)
    finally:
        for c in clients:
            c.close()
    assert e["address"] == "127.0.0.1"
    assert e["accept_queue"] == 2
    if source == "netlink":
        assert e["accept_queue_max"] == 128  # po-listen's backlog
    if user is not None:
        assert {(o["uid"], o["user"]) for o in e["owners"]} == {
            (pwd.getpwnam(user).pw_uid, user)
        }


@pytest.mark.parametrize("source", SOURCES)
def test_unconnected_udp_sockets(listen, source):
    listener = listen(f"udp4:0.0.0.0:{free_port()}", f"udp6:[::]:{free_port()}")
    ours = listener_entries(check_live(listener, source), listener)
    assert sorted((e["protocol"], e["family"]) for e in ours) == [
        ("udp", "inet"),
        ("udp", "inet6"),
    ]


@pytest.mark.parametrize("source", SOURCES)
def test_listener_in_another_network_namespace(netns, listen, source):
    listener = listen(
        f"tcp4:0.0.0.0:{free_port()}",
        f"tcp6only:[::]:{free_port()}",
        f"udp4:127.0.0.1:{free_port()}",
        netns=netns,
    )
    ours = listener_entries(check_live(listener, source, netns=netns), listener)
    assert len(ours) == 3
    assert {e["netns"] for e in ours} == {netns_inode(netns)}

    # Without --all-namespaces they are not ours to show.
    plain = dump_json("--source", source, "--port", ports_arg(listener.ports))
    inodes = {s.inode for s in listener.socks}
    assert not [e for e in plain if e["inode"] in inodes], plain


class ThreadTableListener(listeners.Listener):
    """po-listen whose sockets only a thread's own fd table holds: after
    --thread-exit (the leader called pthread_exit(): a zombie with an empty
    /proc/PID/fd) or --thread-unshare (a thread called unshare(CLONE_FILES),
    then opened them)."""

    def __init__(self, mode, *specs, user=None):
        env.require_file(env.PO_LISTEN, "tests/po-listen")
        self.specs = specs
        self.netns = None
        self.args = [env.PO_LISTEN, mode] + (["--user", user] if user else [])
        self.args += list(specs)
        self._start(self.args, None)


def proc_state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("mode", ["--thread-exit", "--thread-unshare"])
def test_listener_held_in_a_thread_table(mode, source):
    user = "nobody" if ROOT else None
    listener = ThreadTableListener(
        mode, f"tcp4:127.0.0.1:{free_port()}", f"udp6:[::]:{free_port()}",
        user=user,
    )
    try:
        pid = listener.pid
        if mode == "--thread-exit":
            wait_for(lambda: proc_state(pid) == "Z", "the leader to be a zombie")
        everything = dump_json("--source", source, "--port",
                               ports_arg(listener.ports))
        theirs = {s.inode: s for s in parse_ss(run_ss())
                  if s.port in listener.ports}
        ours = {e["inode"]: e for e in everything}
        for sock in listener.socks:
            e, s = ours.get(sock.inode), theirs.get(sock.inode)
            assert e is not None and s is not None, (sock, everything, theirs)
            assert (e["protocol"], e["family"], e["port"]) == (
                sock.proto, sock.family, sock.port), (e, sock)
            # The one owner: po-listen's process, at the fd that its thread's
            # table (not the leader's) holds the socket at.
            (o,) = e["owners"]
            assert o["pid"] == pid == sock.pids[0], (o, sock)
            tid = o["tid"]
            assert isinstance(tid, int) and tid != pid, o
            assert os.readlink(f"/proc/{pid}/task/{tid}/fd/{o['fd']}") == (
                f"socket:[{sock.inode}]"), o
            try:
                in_leader = os.readlink(f"/proc/{pid}/fd/{o['fd']}")
            except FileNotFoundError:
                in_leader = None
            assert in_leader != f"socket:[{sock.inode}]", o
            assert o["comm"] == proc_comm(pid), o
            assert o["uid"] == proc_uid(pid), o
            if user is not None:
                assert (o["uid"], o["user"]) == (pwd.getpwnam(user).pw_uid, user)
            if mode == "--thread-unshare":  # a zombie leader has no exe link
                assert o["exe"] == os.readlink(f"/proc/{pid}/exe"), o
            # ss reads /proc/PID/fd only (iproute2 6.1): it names no owner,
            # or, should it learn to read the tasks, the same one.
            assert {(x.pid, x.fd) for x in s.owners} in (
                set(), {(pid, o["fd"])}), s
    finally:
        listener.cleanup()


# ---- the command-line surface --------------------------------------------------


def test_port_list_restricts_output(listen):
    listener = listen(*(f"tcp4:127.0.0.1:{p}" for p in listeners.free_ports(3)))
    a, b, c = listener.socks
    out = dump_json("--port", f"{a.port},{c.port}")
    assert {e["port"] for e in out} <= {a.port, c.port}, out
    inodes = {e["inode"] for e in out}
    assert a.inode in inodes and c.inode in inodes, out
    assert b.inode not in inodes, out


def test_port_range_restricts_output(listen):
    a, b, c, d = listeners.free_ports(4)
    listener = listen(
        f"tcp4:127.0.0.1:{a}", f"udp4:127.0.0.1:{b}", f"tcp6only:[::1]:{c}",
        f"udp6:[::1]:{d}"
    )
    ports = listener.ports
    assert len(ports) == 4, ports
    lo, hi = ports[0], ports[-2]  # the highest port stays out
    out = dump_json("--port", f"{lo}-{hi}")
    assert all(lo <= e["port"] <= hi for e in out), out
    inodes = {e["inode"] for e in out}
    for s in listener.socks:
        assert (s.inode in inodes) == (lo <= s.port <= hi), (s, out)


@pytest.mark.parametrize(
    "proto, wanted",
    [
        ("tcp", {("tcp", "inet"), ("tcp", "inet6")}),
        ("tcp4", {("tcp", "inet")}),
        ("tcp6", {("tcp", "inet6")}),
        ("udp", {("udp", "inet"), ("udp", "inet6")}),
        ("udp4", {("udp", "inet")}),
        ("udp6", {("udp", "inet6")}),
    ],
)
def test_proto_restricts_output(listen, proto, wanted):
    a, b, c, d = listeners.free_ports(4)
    listener = listen(
        f"tcp4:127.0.0.1:{a}", f"tcp6only:[::1]:{b}", f"udp4:127.0.0.1:{c}",
        f"udp6:[::1]:{d}"
    )
    out = dump_json("--proto", proto, "--port", ports_arg(listener.ports))
    assert {(e["protocol"], e["family"]) for e in out} <= wanted, out
    shown = {e["inode"] for e in out}
    for s in listener.socks:
        assert (s.inode in shown) == ((s.proto, s.family) in wanted), (s, out)


def test_text_table(listen):
    if ROOT:
        user = "nobody"
        listener = listen(f"reuseport:2:tcp4:127.0.0.1:{free_port()}", user=user,
                          comm="po-table")
    else:
        user = pwd.getpwuid(os.geteuid()).pw_name
        listener = listen(f"reuseport:2:tcp4:127.0.0.1:{free_port()}", comm="po-table")
    port = listener.ports[0]
    res = dump.run_dump("--port", port)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines, "no output"
    assert lines[0].split() == ["PROTO", "LOCAL", "SOCKETS", "ACCEPTQ", "UNIT",
                                "OWNERS"], (
        lines[0]
    )
    # One row for the local address, both sockets of the group, both owners.
    row = re.compile(rf"^tcp4?\s+127\.0\.0\.1:{port}\s+(\d+)\s+(\S+)\s+\S+\s+(.*)$")
    rows = [m for m in map(row.match, lines[1:]) if m]
    assert len(rows) == 1, res.stdout
    sockets, acceptq, owners = rows[0].groups()
    assert sockets == "2", res.stdout
    assert acceptq.startswith("0"), res.stdout
    for pid in listener.pids:
        owner = rf"(^|\s)po-table\[{pid}\]\s+{re.escape(user)}(\W|$)"
        assert re.search(owner, owners), res.stdout


FOOTNOTE = ("* ACCEPTQ summed over the row's sockets (SO_REUSEPORT: each has "
            "its own queue and limit; --json shows each)")


def test_text_table_says_acceptq_sums_a_reuseport_group(listen):
    """4 x backlog 100 in one SO_REUSEPORT group: one row whose ACCEPTQ is
    0/400, marked '*' and said under the table; --json keeps each socket's
    100. A single socket's row has no mark and no footnote."""
    group = listen(f"reuseport:4:tcp4:127.0.0.1:{free_port()}", backlog=100)
    single = listen(f"tcp4:127.0.0.1:{free_port()}", backlog=100)
    gport, sport = group.ports[0], single.ports[0]
    socks = dump.dump_json("--port", gport)
    assert sorted(s["accept_queue_max"] for s in socks) == [100] * 4, socks
    res = dump.run_dump("--port", f"{gport},{sport}")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    row = {m.group(1): m.group(2) for m in (
        re.match(r"^tcp4?\s+127\.0\.0\.1:(\d+)\s+\d+\s+(\S+)\s", ln) for ln in lines)
        if m}
    assert row == {str(gport): "0/400*", str(sport): "0/100"}, res.stdout
    assert lines[-1] == FOOTNOTE, res.stdout
    assert lines.count(FOOTNOTE) == 1, res.stdout
    res = dump.run_dump("--port", sport)
    assert res.returncode == 0, res.stderr
    assert FOOTNOTE not in res.stdout and "*" not in res.stdout, res.stdout


@pytest.mark.parametrize(
    "args, bad",
    [
        (["--port", "0"], "0"),
        (["--port", "70000"], "70000"),
        (["--port", "90-80"], "90-80"),
        (["--proto", "sctp"], "sctp"),
        (["--source", "foo"], "foo"),
        (["--no-such-option"], "--no-such-option"),
    ],
)
def test_bad_arguments_exit_2_naming_the_value(args, bad):
    res = dump.run_dump("--json", *args)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert res.stdout == "", res.stdout
    assert re.search(rf"(?<![\w-]){re.escape(bad)}(?![\w-])", res.stderr), res.stderr


@pytest.mark.parametrize(
    "ports, message, rest",
    [
        ("22,po-no-such-svc,80", 'unknown service "po-no-such-svc"', "po-no-such-svc,80"),
        ("po-no-such-svc,redis", 'unknown service "po-no-such-svc"', "po-no-such-svc,redis"),
        ("80,90-70,443", "'90-70': expected a port", "90-70,443"),
        ("80,70000,443", "'70000': ports are 1 to 65535", "70000,443"),
    ],
)
def test_bad_port_item_in_a_list_is_named_alone(ports, message, rest):
    """`--port 'memcache,redis'` with memcache unknown names memcache, not
    the rest of the list from it."""
    with pytest.raises(OSError):
        socket.getservbyname("po-no-such-svc")
    res = dump.run_dump("--json", "--port", ports)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert res.stdout == "", res.stdout
    assert res.stderr.startswith("portowner-dump: --port: " + message), res.stderr
    assert rest not in res.stderr, res.stderr


@pytest.mark.parametrize("source", SOURCES)
def test_port_without_listener_is_an_empty_answer(source):
    port = free_port()  # free, and reserved for this test process
    res = dump.run_dump("--json", "--source", source, "--port", port)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []
    res = dump.run_dump("--source", source, "--port", port)
    assert res.returncode == 0, res.stderr
    assert not [x for x in res.stdout.splitlines() if f":{port}" in x], res.stdout


# ---- po-listen itself (the other tests stand on it) ----------------------------


def test_po_listen_stops_children_on_eof(listen):
    listener = listen("prefork:2:tcp4:127.0.0.1:0", "reuseport:2:udp4:127.0.0.1:0")
    pids = listener.pids
    assert len(pids) == 5 and all(pid_alive(p) for p in pids)
    assert listener.eof() == 0
    assert not [p for p in pids if pid_alive(p)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_po_listen_stops_on_signal(listen, sig):
    listener = listen("prefork:1:tcp4:127.0.0.1:0")
    pids = listener.pids
    listener.proc.send_signal(sig)
    assert listener.proc.wait(timeout=waits.timeout(STOP_TIMEOUT)) == 0
    assert not [p for p in pids if pid_alive(p)]


def test_po_listen_children_die_with_parent(listen):
    listener = listen("prefork:2:tcp4:127.0.0.1:0")
    children = [p for p in listener.pids if p != listener.proc.pid]
    assert len(children) == 2
    listener.proc.kill()
    listener.proc.wait(timeout=waits.timeout(STOP_TIMEOUT))
    wait_for(lambda: not any(pid_alive(p) for p in children), "children to die")


def test_po_listen_stops_after_timeout():
    # stdin stays open: only the timeout can stop it.
    proc = subprocess.Popen(
        [env.PO_LISTEN, "--timeout", "1", "tcp4:127.0.0.1:0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.wait(timeout=waits.timeout(STOP_TIMEOUT)) == 0, proc.stderr.read()
        assert proc.stdout.read().decode().splitlines()[-1] == "READY"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()


@pytest.mark.parametrize(
    "args, bad",
    [
        (["tcp5:127.0.0.1:0"], "'tcp5'"),
        (["tcp4:127.0.0.1:65536"], "'65536'"),
        (["tcp4:::1:80"], "'::1'"),
        (["prefork:x:tcp4:127.0.0.1:0"], "'x'"),
        (["--comm", "sixteen-bytes-xx", "tcp4:127.0.0.1:0"], "'sixteen-bytes-xx'"),
        (["--timeout", "0", "tcp4:127.0.0.1:0"], "'0'"),
        (["--bogus"], "'--bogus'"),
        ([], "no SPEC"),
    ],
)
def test_po_listen_bad_arguments(args, bad):
    res = run([env.PO_LISTEN] + args)
    assert res.returncode == 2, res
    assert res.stdout == "", res.stdout
    assert bad in res.stderr, res.stderr
