"""Hostile input, live: process names that are not plain text, a process
holding ~15,000 fds, a socket with thousands of owner processes. Each is
read back through portowner-dump (JSON and table) and, where ss can tell,
compared with ss."""

import os
import resource
import signal
import socket
import subprocess
import sys

import pytest

from lib import dump, waits

from .conftest import ss_owner_pids, table_escaped, utf8_or_fffd

pytestmark = pytest.mark.requires_build("portowner-dump", "po-listen")

# comm is at most 15 bytes (TASK_COMM_LEN - 1); prctl takes any byte but NUL.
NAMES = {
    "space": b"my worker",
    "newline": b"evil\nname",
    "quotes": b'q"uo\\te\'s',
    "not-utf8": b"bad\xff\xfe\xc0name",
    "cut-utf8": b"\xe2\x82x\xf0\x9f",
    "escape-seq": b"\x1b[31mred\x07",
    "utf8": "caf\u00e9 \u20ac".encode(),
    "del-tab": b"a\x7fb\tc\rd",
    "c1-csi": b"\xc2\x9b2J",
    "bidi-override": "evil\u202egnp.sh".encode(),
    "bidi-isolate-sep": "\u2066x\u2069\u200f\u2028".encode(),
}


def owners_on(port):
    rows = [r for r in dump.dump_json("--port", str(port), "--proto", "tcp4")
            if r["port"] == port]
    assert len(rows) == 1, rows
    return rows[0]["owners"]


@pytest.mark.parametrize("raw", NAMES.values(), ids=NAMES.keys())
def test_process_name_escaped(listen, raw):
    l = listen("tcp4:127.0.0.1:0", comm=raw)
    (sock,) = l.socks
    port, (pid,) = sock.port, sock.pids
    with open(f"/proc/{pid}/comm", "rb") as f:
        assert f.read().rstrip(b"\n") == raw  # the kernel kept every byte

    # JSON: valid UTF-8 JSON (dump_json is strict), the name as given but for
    # bytes that are not UTF-8, which are U+FFFD each.
    owners = owners_on(port)
    assert [o["pid"] for o in owners] == [pid]
    assert owners[0]["comm"] == utf8_or_fffd(raw)

    # Table: one line for the row, control bytes as \xNN, the rest as is.
    out = dump.run_dump("--port", port, "--proto", "tcp4", text=False,
                        check=True).stdout
    lines = out.split(b"\n")
    assert lines[-1] == b""
    rows = [ln for ln in lines[1:-1] if f":{port} ".encode() in ln]
    assert len(rows) == 1 and len(lines) == 3, out
    assert table_escaped(raw) + f"[{pid}]".encode() in rows[0], rows[0]
    assert not any(c < 0x20 for c in rows[0]), rows[0]


FD_COUNT = 15000  # the hard limit on open files here is 20,000

HOLDER = r"""
import os, resource, socket, sys
n = int(sys.argv[1])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
null = os.open("/dev/null", os.O_RDONLY)
fds = [os.dup(null) for _ in range(n - 1)]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # the last fd opened
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], s.fileno(), flush=True)
sys.stdin.read()
"""


def test_process_with_15000_fds(tmp_path):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard < FD_COUNT + 100:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {FD_COUNT + 100}")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(FD_COUNT)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        port, fd = map(int, holder.stdout.readline().split())
        assert len(os.listdir(f"/proc/{holder.pid}/fd")) >= FD_COUNT
        assert fd >= FD_COUNT - 1  # the listener is behind all the others
        owners = owners_on(port)
        assert [(o["pid"], o["fd"]) for o in owners] == [(holder.pid, fd)]
        assert ss_owner_pids(port) == [holder.pid]
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


OWNER_COUNT = int(os.environ.get("PO_HOSTILE_OWNERS", "2000"))


def test_socket_with_2000_owners():
    """One listener inherited by OWNER_COUNT processes (sleep, which keeps
    fd 3 open): portowner-dump lists every one of them, as ss does."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    children = []
    try:
        for _ in range(OWNER_COUNT):
            children.append(subprocess.Popen(
                ["sleep", "600"], stdin=subprocess.DEVNULL,
                pass_fds=[listener.fileno()]))
        want = sorted([os.getpid()] + [c.pid for c in children])
        # Every child has exec'd sleep and still holds the socket.
        waits.wait_for(lambda: all(os.path.exists(f"/proc/{c.pid}/fd/{listener.fileno()}")
                                   for c in children), 60,
                       "every sleep to hold the listener",
                       lambda: [c.pid for c in children if not os.path.exists(
                           f"/proc/{c.pid}/fd/{listener.fileno()}")][:10],
                       step=0.2)
        owners = owners_on(port)
        got = sorted(o["pid"] for o in owners)
        assert len(got) == OWNER_COUNT + 1
        assert got == want
        assert sorted(ss_owner_pids(port)) == want
        child_pids = {c.pid for c in children}
        assert all(o["comm"] == "sleep" and o["fd"] == listener.fileno()
                   for o in owners if o["pid"] in child_pids)

        # The table: one line for the socket, every owner on it.
        out = dump.run_dump("--port", port, "--proto", "tcp4", text=False,
                            check=True).stdout
        rows = [ln for ln in out.split(b"\n") if f":{port} ".encode() in ln]
        assert len(rows) == 1
        assert rows[0].count(b"sleep[") == OWNER_COUNT
    finally:
        for c in children:
            c.send_signal(signal.SIGKILL)
        for c in children:
            c.wait()
        listener.close()
