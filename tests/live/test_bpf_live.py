"""The BPF owner walk (portowner-dump --resolver bpf) against the readlink
walk (--resolver proc) and ss, on live scenarios started together: a
prefork group, an SO_REUSEPORT group, dual-stack and UDP sockets, a holder
that is nobody, a listener in another network namespace, sockets held in a
thread's own fd table (zombie leader, unshare(CLONE_FILES)), a socket dup()ed
and one passed to another process over SCM_RIGHTS. Both walks must give the
same owners (pid, tid, fds, fd_count) of every socket, and agree with ss
where ss can see (ss reads /proc/PID/fd only).
"""
import subprocess
import sys
import textwrap

import pytest

from lib import dump, env, waits
from lib.listeners import free_port

from .conftest import netns_inode, run_ss
from .test_dump_live import (ThreadTableListener, parse_ss, ports_arg,
                             proc_state, row_of_json, row_of_ss)

pytestmark = [pytest.mark.requires_build("portowner-dump", "po-listen")]

# Holds a listener on fds 3 dup()ed twice, and passes it over SCM_RIGHTS to a
# child that then holds it (the parent keeps its copies too).
PASSER = textwrap.dedent("""
    import os, socket, sys
    port = int(sys.argv[1])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", port)); s.listen(8)
    dups = [os.dup(s.fileno()), os.dup(s.fileno())]
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        a.close()
        msg, fds, _, _ = socket.recv_fds(b, 16, 4)
        b.send(b"k")
        sys.stdin.read()
        os._exit(0)
    b.close()
    socket.send_fds(a, [b"x"], [s.fileno()])
    a.recv(1)
    ino = os.fstat(s.fileno()).st_ino
    print("PASSED %d %d %d" % (ino, os.getpid(), pid), flush=True)
    sys.stdin.read()
    os.kill(pid, 9); os.waitpid(pid, 0)
""")


def owners_by_inode(resolver, ports, all_ns=False):
    args = ["--resolver", resolver, "--port", ports_arg(ports)]
    if all_ns:
        args.append("--all-namespaces")
    return {e["inode"]: e for e in dump.dump_json(*args)}


def owner_rows(e):
    return sorted((o["pid"], o["tid"], o["fd"], o["fd_count"], tuple(o["fds"]))
                  for o in e["owners"])


def test_bpf_walk_equals_readlink_walk_and_ss(listen, netns):
    dump.require_bpf()
    user = env.NOBODY
    ls = [
        listen(f"prefork:3:tcp4:127.0.0.1:{free_port()}"),
        listen(f"reuseport:3:tcp6:[::]:{free_port()}"),
        listen(f"tcp6:[::]:{free_port()}", f"udp4:127.0.0.1:{free_port()}",
               f"udp6:[::]:{free_port()}"),
        listen(f"tcp4:127.0.0.1:{free_port()}", user=user),
    ]
    inns = listen(f"tcp4:127.0.0.1:{free_port()}", netns=netns)
    threads = [ThreadTableListener("--thread-exit",
                                   f"tcp4:127.0.0.1:{free_port()}"),
               ThreadTableListener("--thread-unshare",
                                   f"tcp4:127.0.0.1:{free_port()}")]
    pport = free_port()
    passer = subprocess.Popen([sys.executable, "-c", PASSER, str(pport)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        line = passer.stdout.readline().split()
        assert line[:1] == ["PASSED"], line
        p_ino, p_pid, p_child = map(int, line[1:])
        waits.wait_for(lambda: proc_state(threads[0].pid) == "Z", 10,
                       "the --thread-exit leader to be a zombie")

        plain = ls + threads
        ports = [p for l in plain for p in l.ports] + [pport]
        inodes = {s.inode for l in plain for s in l.socks} | {p_ino}
        bpf = owners_by_inode("bpf", ports)
        proc = owners_by_inode("proc", ports)
        for ino in inodes:
            assert ino in bpf and ino in proc, (ino, bpf, proc)
            assert owner_rows(bpf[ino]) == owner_rows(proc[ino]), (
                bpf[ino], proc[ino])
            assert bpf[ino]["owners"], bpf[ino]

        # What each scenario holds, as po-listen and the passer report it.
        for l in plain:
            for s in l.socks:
                assert sorted({o["pid"] for o in bpf[s.inode]["owners"]}) == \
                    sorted(s.pids), (s, bpf[s.inode])
        (held,) = [bpf[p_ino]]
        rows = {o["pid"]: o for o in held["owners"]}
        assert set(rows) == {p_pid, p_child}, held
        assert rows[p_pid]["fd_count"] == 3, held  # the socket and two dups

        # ss agrees where it sees (not in a thread's own table).
        theirs = {s.inode: s for s in parse_ss(run_ss()) if s.inode in inodes}
        for ino in {s.inode for l in ls for s in l.socks} | {p_ino}:
            assert row_of_json(bpf[ino]) == row_of_ss(theirs[ino])

        # The other network namespace: with --all-namespaces.
        nb = owners_by_inode("bpf", inns.ports, all_ns=True)
        npr = owners_by_inode("proc", inns.ports, all_ns=True)
        ntheirs = {s.inode: s for s in parse_ss(run_ss(netns))}
        for s in inns.socks:
            assert nb[s.inode]["netns"] == netns_inode(netns)
            assert owner_rows(nb[s.inode]) == owner_rows(npr[s.inode])
            assert row_of_json(nb[s.inode]) == row_of_ss(ntheirs[s.inode])
    finally:
        for t in threads:
            t.cleanup()
        passer.stdin.close()
        passer.wait(timeout=10)
