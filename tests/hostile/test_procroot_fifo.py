"""A ProcRoot whose files are FIFOs (issue 11): the real collectd keeps
reading. ProcRoot is a fixture tree here, a process directory 700 whose fd 3
is the link socket:[INODE] of a real listener and whose comm, status or stat
is a FIFO with no writer: opened without O_NONBLOCK, that open never returns
and the read thread hangs for ever. Each read must go on, the owner counted,
what could not be read left empty."""

import os
import socket

import pytest

from lib import collectd, dump, waits
from lib.collectd import block, portowner_conf

pytestmark = pytest.mark.requires_build("portowner.so", "portowner-dump")


def fixture_tree(root, inode, fifo):
    """A ProcRoot with process 700 holding the socket inode on fd 3, its
    file named fifo a FIFO, the others regular files."""
    pid = os.path.join(root, "700")
    os.makedirs(os.path.join(pid, "fd"))
    os.symlink("socket:[%d]" % inode, os.path.join(pid, "fd", "3"))
    files = {"comm": "srv\n", "status": "Name:\tsrv\nUid:\t0\t0\t0\t0\n",
             "stat": "700 (srv) S 1 700 700 0 -1 0 0 0 0 0 0 0 0 0 20 0 "
                     "1 0 5555 0 0\n"}
    for name, text in files.items():
        path = os.path.join(pid, name)
        if name == fifo:
            os.mkfifo(path, 0o600)
        else:
            with open(path, "w") as f:
                f.write(text)


@pytest.mark.parametrize("fifo", ["comm", "status", "stat"])
def test_fifo_in_procroot_does_not_block_reads(daemons, tmp_path, fifo):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]
        inode = os.stat("/proc/self/fd/%d" % s.fileno()).st_ino
        root = str(tmp_path / "proc")
        fixture_tree(root, inode, fifo)

        # The command first: it returns, naming the owner from the tree.
        rows = [r for r in dump.dump_json("--port", str(port), "--proto",
                                          "tcp4", "--proc-root", root)
                if r["port"] == port]
        assert [[o["pid"] for o in r["owners"]] for r in rows] == [[700]]

        d = daemons(portowner_conf(block("web", Port=port), ProcRoot=root))
        d.start()
        first = waits.wait_read(d, "web", {"count-sockets": 1,
                                           "count-processes": 1,
                                           "count-unowned": 0}, timeout_s=20)
        # Reads go on: five more, each with the owner.
        waits.wait_reads(d, collectd.ident("web", "count-processes"), 5)
        last = waits.read(d, "web", after=first.time)
        assert last.values["count-processes"] == 1
        assert last.values["count-sockets"] == 1
        d.stop()
    finally:
        s.close()
