"""Free ports and real listeners held by real processes.

free_port() hands out a port that nothing on this machine uses (TCP and UDP,
IPv4 and IPv6), below the ephemeral range (so no client connection takes it
meanwhile), and reserved for this test process until it exits: a lock file
under /tmp/portowner-test-ports/ keeps every other test session on this
machine (the machine is shared) from handing out the same one, so a port a
test picked stays free for it to bind later, and to bind again after a
listener on it stopped.

Listener starts tests/po-listen (SOCK lines, then READY), PyListener a
python3 one; both record who holds what (socks, pids, inodes, comm, user).
"""
import errno
import fcntl
import os
import pwd
import random
import selectors
import signal
import socket
import subprocess
import tempfile
import time

from . import env, waits

PORT_LOCKDIR = "/tmp/portowner-test-ports"

_reserved = {}  # port -> the fd of its lock file, held until we exit


def _bindable(port):
    for fam, typ, addr in ((socket.AF_INET, socket.SOCK_STREAM, "0.0.0.0"),
                           (socket.AF_INET6, socket.SOCK_STREAM, "::"),
                           (socket.AF_INET, socket.SOCK_DGRAM, "0.0.0.0"),
                           (socket.AF_INET6, socket.SOCK_DGRAM, "::")):
        s = socket.socket(fam, typ)
        try:
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _reserve(port):
    """Takes the machine-wide lock of port; False when another test
    process holds it."""
    if port in _reserved:
        return False
    os.makedirs(PORT_LOCKDIR, exist_ok=True)
    try:
        os.chmod(PORT_LOCKDIR, 0o1777)
    except OSError:
        pass
    fd = os.open(os.path.join(PORT_LOCKDIR, str(port)),
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    _reserved[port] = fd
    return True


def _release(port):
    fd = _reserved.pop(port, None)
    if fd is not None:
        os.close(fd)


def _port_range():
    lo, hi = 20000, 32000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo = int(f.read().split()[0])
        hi = min(hi, eph_lo - 1)
    except (OSError, ValueError, IndexError):
        pass
    return lo, hi


def free_port():
    """A port free for TCP and UDP, v4 and v6, below the ephemeral range,
    that no other test (of this session or of another one running on this
    machine) got."""
    lo, hi = _port_range()
    for _ in range(1000):
        port = random.randint(lo, hi)
        if not _reserve(port):
            continue
        if _bindable(port):
            return port
        _release(port)
    raise AssertionError("no free port found in %d-%d" % (lo, hi))


def free_ports(n):
    return [free_port() for _ in range(n)]


def free_port_range(n):
    """n consecutive free ports; returns the first."""
    lo, hi = _port_range()
    for _ in range(200):
        first = random.randint(lo, hi - n + 1)
        got = []
        for p in range(first, first + n):
            if not _reserve(p):
                break
            got.append(p)
            if not _bindable(p):
                break
        else:
            return first
        for p in got:
            _release(p)
    raise AssertionError("no %d consecutive free ports" % n)


def listening_inodes():
    """Inodes of every listening TCP socket and bound unconnected UDP socket
    of our network namespace, read straight from /proc/net."""
    found = set()
    for name, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"),
                        ("udp6", "07")):
        try:
            with open("/proc/net/" + name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == state:
                        found.add(int(fields[9]))
        except FileNotFoundError:
            pass
    return found


def proc_comm(pid):
    with open("/proc/%d/comm" % pid, "rb") as f:
        return f.read().rstrip(b"\n").decode("utf-8", "replace")


def proc_uid(pid):
    with open("/proc/%d/status" % pid, errors="replace") as f:  # Name: is comm
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[2])
    raise AssertionError("no Uid line for pid %d" % pid)


def proc_user(pid):
    uid = proc_uid(pid)
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def canonical_address(text):
    """The address as inet_ntop prints it (what portowner's JSON uses)."""
    text = text.strip("[]")
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    return socket.inet_ntop(family, socket.inet_pton(family, text))


class Sock:
    """One `SOCK <spec> <proto> <family> <port> <inode> <pid>[,<pid>...]`
    line of po-listen: the ground truth about one socket."""

    def __init__(self, line):
        f = line.split()
        if len(f) != 7 or f[0] != "SOCK":
            raise AssertionError("po-listen printed a bad SOCK line: %r" % line)
        self.spec, self.proto, self.family = f[1], f[2], f[3]
        self.port, self.inode = int(f[4]), int(f[5])
        self.pids = [int(p) for p in f[6].split(",")]

    @property
    def address(self):
        """The ADDR of the spec, canonical."""
        parts = self.spec.split(":")
        if parts[0] in ("prefork", "reuseport"):
            parts = parts[2:]
        return canonical_address(":".join(parts[1:-1]))

    def __repr__(self):
        return "Sock(%s port=%d inode=%d pids=%s)" % (
            self.spec, self.port, self.inode, self.pids)


class Listener:
    """Real listening sockets held by real processes (tests/po-listen).

    Starts `po-listen [--user U] [--comm C] [--backlog N] [--timeout S]
    SPEC...` (in network namespace netns when given), reads its SOCK lines
    up to READY, and records who holds what: socks, pids, inodes, comm,
    user. comm may be bytes (any byte but NUL)."""

    READY_TIMEOUT = 15

    def __init__(self, *specs, user=None, comm=None, backlog=None,
                 timeout=None, netns=None, logdir=None):
        env.require_file(env.PO_LISTEN, "tests/po-listen")
        self.specs = specs
        self.netns = netns
        args = [env.PO_LISTEN]
        if timeout is not None:
            args += ["--timeout", str(timeout)]
        if backlog is not None:
            args += ["--backlog", str(backlog)]
        if user:
            args += ["--user", user]
        if comm is not None:
            args += ["--comm", comm]
        args += list(specs)
        if netns is not None:
            args = ["ip", "netns", "exec", netns] + args
        if any(isinstance(a, bytes) for a in args):
            args = [a if isinstance(a, bytes) else a.encode() for a in args]
        self.args = args
        self._start(args, logdir)

    def _start(self, args, logdir):
        # Its stderr goes to a file in logdir (kept with the test's files),
        # or to an unlinked one: either way a failure can quote it.
        fd, path = tempfile.mkstemp(prefix="po-listen-", suffix=".err",
                                    dir=logdir)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        if logdir is None:
            os.unlink(path)
            self.errpath, self._errfd = None, fd
        else:
            self.errpath, self._errfd = path, None
        self.socks, self.inodes, self.pids = [], set(), []
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=fd)
        if self._errfd is None:
            os.close(fd)
        try:
            self._read_until_ready()
            self.pids = sorted({p for s in self.socks for p in s.pids})
            self.pid = self.proc.pid
            self.inodes = {s.inode for s in self.socks}
            self.comm = proc_comm(self.pid)
            self.user = proc_user(self.pid)
        except BaseException:
            self.pids = sorted({p for s in self.socks for p in s.pids})
            self.cleanup()
            raise

    def stderr(self):
        """What po-listen wrote to its stderr so far."""
        try:
            if self._errfd is not None:
                data = os.pread(self._errfd, 1 << 20, 0)
            elif self.errpath is not None:
                with open(self.errpath, "rb") as f:
                    data = f.read()
            else:
                return ""
        except OSError:
            return ""
        return data.decode(errors="replace").strip()

    def _read_until_ready(self):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + waits.timeout(self.READY_TIMEOUT)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("po-listen %s: no READY within %ds "
                                         "(got %r)" % (self.args,
                                                       self.READY_TIMEOUT, buf))
                if not sel.select(left):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    rc = self.proc.wait(timeout=waits.timeout(10))
                    raise AssertionError(
                        "po-listen %s exited (status %s) before READY; "
                        "stdout %r; stderr: %s"
                        % (self.args, rc, buf, self.stderr()))
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.decode(errors="replace").strip()
                    if line == "READY":
                        return
                    if line.startswith("SOCK "):
                        self.socks.append(Sock(line))
        finally:
            sel.close()

    @property
    def port(self):
        return self.socks[0].port

    @property
    def ports(self):
        return sorted({s.port for s in self.socks})

    def running(self):
        return self.proc.poll() is None

    def _closed(self):
        if self.netns is not None:  # not in our /proc/net
            return True
        return not (self.inodes & listening_inodes())

    def stop(self, sig=signal.SIGTERM):
        """Stops po-listen with sig (it kills its children) and waits until
        none of its sockets is listening any more. Returns the time it was
        gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=waits.timeout(10))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("po-listen %s ignored signal %d" % (self.args, sig))
        waits.wait_for(self._closed, 10,
                       "the sockets of po-listen %s to close" % (self.args,),
                       lambda: self.inodes & listening_inodes())
        self._close_pipes()
        return time.time()

    def eof(self):
        """Closes po-listen's stdin (its stop signal) and returns its exit
        status (killing it if it does not stop)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout=waits.timeout(10))
        except subprocess.TimeoutExpired:
            self.proc.kill()  # its children die with it (PR_SET_PDEATHSIG)
            self.proc.wait()
            raise AssertionError("po-listen %s did not stop at the end of its "
                                 "stdin" % (self.args,))
        self._close_pipes()
        return rc

    def _close_pipes(self):
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass

    def cleanup(self):
        if self.proc.poll() is None:
            try:
                self.stop()
            except AssertionError:
                pass
        for pid in self.pids:  # workers a broken po-listen left behind
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self._close_pipes()
        if self._errfd is not None:
            os.close(self._errfd)
            self._errfd = None


class PyListener(Listener):
    """A TCP listener held by another program than po-listen: python3
    (exe /usr/bin/python3.x, comm "python3"), same interface as Listener."""

    CODE = ("import os, socket, sys\n"
            "s = socket.socket()\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind((sys.argv[1], int(sys.argv[2])))\n"
            "s.listen(16)\n"
            "print('SOCK tcp4:%s:%s tcp inet %d %d %d' % (sys.argv[1], sys.argv[2],"
            " s.getsockname()[1], os.fstat(s.fileno()).st_ino, os.getpid()))\n"
            "print('READY', flush=True)\n"
            "sys.stdin.read()\n")

    def __init__(self, addr, port, logdir=None):
        self.specs = ("tcp4:%s:%d" % (addr, port),)
        self.netns = None
        self.args = ["/usr/bin/python3", "-c", self.CODE, addr, str(port)]
        self._start(self.args, logdir)
