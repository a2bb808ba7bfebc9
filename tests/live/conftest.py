"""Fixtures for the live tests: real listeners held by real processes.

Binaries come from the build directory in $PO_BUILDDIR (default: the
repository root, i.e. an in-tree build):
  $PO_BUILDDIR/portowner-dump
  $PO_BUILDDIR/tests/po-listen
"""

import os
import secrets
import selectors
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILDDIR = Path(os.environ.get("PO_BUILDDIR", str(REPO_ROOT))).resolve()
DUMP = BUILDDIR / "portowner-dump"
PO_LISTEN = BUILDDIR / "tests" / "po-listen"

READY_TIMEOUT = 15.0  # seconds for po-listen to print READY
STOP_TIMEOUT = 10.0  # seconds for po-listen to exit once told to
COMMAND_TIMEOUT = 60.0  # seconds for portowner-dump / ss / ip
LISTENER_LIFETIME = 300  # po-listen --timeout: it always stops by itself


def require_binary(path):
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"{path} is not built: run `make portowner-dump tests/po-listen` "
            f"in {BUILDDIR} (or set PO_BUILDDIR)",
            pytrace=False,
        )
    return str(path)


def canonical_address(text):
    """The address as inet_ntop prints it, which is what our JSON uses."""
    text = text.strip("[]")
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    return socket.inet_ntop(family, socket.inet_pton(family, text))


def spec_address(spec):
    """The ADDR part of a po-listen SPEC, canonical."""
    parts = spec.split(":")
    if parts[0] in ("prefork", "reuseport"):
        parts = parts[2:]
    return canonical_address(":".join(parts[1:-1]))


@dataclass(frozen=True)
class Sock:
    """One socket as po-listen reports it: the ground truth."""

    spec: str
    proto: str  # "tcp" / "udp"
    family: str  # "inet" / "inet6"
    port: int
    inode: int
    pids: tuple

    @property
    def address(self):
        return spec_address(self.spec)

    @classmethod
    def parse(cls, line):
        words = line.split()
        if len(words) != 7 or words[0] != "SOCK":
            raise ValueError(f"bad po-listen line: {line!r}")
        return cls(
            spec=words[1],
            proto=words[2],
            family=words[3],
            port=int(words[4]),
            inode=int(words[5]),
            pids=tuple(int(p) for p in words[6].split(",")),
        )


class Listener:
    """A running po-listen and the sockets it reported."""

    def __init__(self, proc, socks, netns):
        self.proc = proc
        self.socks = socks
        self.netns = netns

    @property
    def ports(self):
        return sorted({s.port for s in self.socks})

    @property
    def pids(self):
        return sorted({p for s in self.socks for p in s.pids})

    def sock(self, spec):
        found = [s for s in self.socks if s.spec == spec]
        assert found, f"po-listen reported no socket for {spec}"
        return found

    @classmethod
    def start(cls, *specs, user=None, comm=None, netns=None, extra=()):
        argv = [require_binary(PO_LISTEN), "--timeout", str(LISTENER_LIFETIME)]
        if user is not None:
            argv += ["--user", user]
        if comm is not None:
            argv += ["--comm", comm]
        argv += list(extra) + list(specs)
        if netns is not None:
            argv = ["ip", "netns", "exec", netns] + argv
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            lines = read_until_ready(proc, time.monotonic() + READY_TIMEOUT)
        except BaseException:
            stop_process(proc)
            raise
        return cls(proc, [Sock.parse(x) for x in lines], netns)

    def stop(self):
        """Closes stdin (po-listen's stop signal) and reaps it."""
        return stop_process(self.proc)


def read_until_ready(proc, deadline):
    """Returns the SOCK lines po-listen printed before READY."""
    fd = proc.stdout.fileno()
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            lines = buf.decode(errors="replace").split("\n")
            if "READY" in lines[:-1]:
                return [x for x in lines[: lines.index("READY")] if x]
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(
                    f"po-listen not READY in {READY_TIMEOUT}s: {proc.args}, "
                    f"stdout so far {buf!r}"
                )
            if not sel.select(timeout=left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                rc = proc.wait(timeout=STOP_TIMEOUT)
                err = proc.stderr.read().decode(errors="replace")
                raise RuntimeError(
                    f"po-listen exited {rc} before READY: {proc.args}\n{err}"
                )
            buf += chunk


def stop_process(proc):
    if proc.poll() is None:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()  # its children die with it (PR_SET_PDEATHSIG)
            proc.wait()
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
    return proc.returncode


@pytest.fixture
def listen():
    """Starts po-listen: listen(SPEC..., user=, comm=, netns=) -> Listener.

    Every listener is stopped and reaped at teardown, whatever the test did.
    """
    started = []

    def start(*specs, **kwargs):
        listener = Listener.start(*specs, **kwargs)
        started.append(listener)
        return listener

    yield start
    for listener in reversed(started):
        listener.stop()


@pytest.fixture
def netns():
    """A fresh network namespace (lo up), deleted at teardown."""
    if os.geteuid() != 0:
        pytest.skip("needs root: ip netns add")
    name = f"po-live-{os.getpid()}-{secrets.token_hex(4)}"
    run(["ip", "netns", "add", name], check=True)
    try:
        run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        run(["ip", "netns", "del", name])


def run(argv, check=False):
    res = subprocess.run(
        argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    if check and res.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)} exited {res.returncode}: {res.stderr.strip()}",
            pytrace=False,
        )
    return res


def run_dump(*args):
    """Runs portowner-dump with args; returns the CompletedProcess."""
    return run([require_binary(DUMP)] + [str(a) for a in args])


def run_ss(netns=None):
    """`ss -tulpnHe` (the -e adds each socket's inode and v6only flag)."""
    argv = ["ss", "-tulpnHe"]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns] + argv
    return run(argv, check=True).stdout


def netns_inode(name=None):
    """Inode of a named network namespace, or of our own."""
    path = f"/run/netns/{name}" if name else "/proc/self/ns/net"
    return os.stat(path).st_ino
