"""Fixtures for the hostile-input tests: real processes with awkward names,
many fds or many owners, read back through portowner-dump.

Binaries come from $PO_BUILDDIR (default: the repository root, an in-tree
build): $PO_BUILDDIR/portowner-dump and $PO_BUILDDIR/tests/po-listen.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILDDIR = Path(os.environ.get("PO_BUILDDIR", str(REPO_ROOT))).resolve()
DUMP = BUILDDIR / "portowner-dump"
PO_LISTEN = BUILDDIR / "tests" / "po-listen"
TIMEOUT = 120


def require(path):
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"{path} is not built: run `make portowner-dump tests/po-listen` "
            f"in {BUILDDIR} (or set PO_BUILDDIR)",
            pytrace=False,
        )
    return str(path)


def utf8_or_fffd(raw: bytes) -> str:
    """What our JSON must show for raw bytes: each byte that does not start
    a well-formed UTF-8 sequence becomes U+FFFD on its own (Python's own
    'replace' merges some runs, so it is not the reference)."""
    out, i = [], 0
    while i < len(raw):
        b = raw[i]
        n = 1 if b < 0x80 else 2 if 0xC2 <= b <= 0xDF else \
            3 if 0xE0 <= b <= 0xEF else 4 if 0xF0 <= b <= 0xF4 else 0
        if n:
            try:
                out.append(raw[i:i + n].decode("utf-8", errors="strict"))
                i += n
                continue
            except UnicodeDecodeError:
                pass
        out.append("\ufffd")
        i += 1
    return "".join(out)


def table_escaped(raw: bytes) -> bytes:
    """What the text table must show: a backslash doubled, and control
    characters (C0, DEL, C1) and bytes that are not UTF-8 as \\xNN."""
    out, i = [], 0
    while i < len(raw):
        for n in (1, 2, 3, 4):
            try:
                ch = raw[i:i + n].decode("utf-8")
            except UnicodeDecodeError:
                continue
            break
        else:
            out.append(b"\\x%02x" % raw[i])
            i += 1
            continue
        seq = raw[i:i + n]
        if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            out.append(b"".join(b"\\x%02x" % c for c in seq))
        elif ch == "\\":
            out.append(b"\\\\")
        else:
            out.append(seq)
        i += n
    return b"".join(out)


def run_dump(*args, check=True):
    """portowner-dump ARGS: (stdout bytes, stderr text)."""
    proc = subprocess.run([require(DUMP), *args], capture_output=True,
                          timeout=TIMEOUT)
    if check and proc.returncode != 0:
        pytest.fail(f"portowner-dump {' '.join(args)} exited "
                    f"{proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout, proc.stderr.decode(errors="replace")


def dump_json(*args):
    out, _ = run_dump("--json", *args)
    # Strict: the document must be UTF-8 and JSON.
    return json.loads(out.decode("utf-8", errors="strict"))


def ss_owner_pids(port):
    """The pids ss lists for the TCP listener on port (users:(...))."""
    out = subprocess.run(["ss", "-tlnpH", f"sport = :{port}"],
                         capture_output=True, text=True, check=True,
                         timeout=TIMEOUT).stdout
    pids = []
    for part in out.split("pid=")[1:]:
        pids.append(int(part.split(",", 1)[0]))
    return pids


@pytest.fixture
def po_listen():
    """Starts po-listen with argv (bytes allowed); returns (proc, socks)
    once it printed READY, where socks are its SOCK lines split."""
    procs = []

    def start(*argv):
        cmd = [require(PO_LISTEN).encode(), b"--timeout", b"300"]
        cmd += [a if isinstance(a, bytes) else a.encode() for a in argv]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(proc)
        socks = []
        for line in proc.stdout:
            line = line.decode(errors="replace").strip()
            if line == "READY":
                return proc, socks
            if line.startswith("SOCK "):
                socks.append(line.split())
        proc.wait(timeout=10)
        pytest.fail(f"po-listen {argv} did not get ready: "
                    f"{proc.stderr.read().decode(errors='replace')}")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
