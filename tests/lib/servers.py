"""What real servers do to their listening sockets, played by tests/po-listen
for the alert tests (issue 10): other programs, workers of another user and
a graceful restart, a reload by fd passing, a reload that drops one
listener, an exit whose /proc/PID/exe is gone while the sockets still
listen, a leader that called pthread_exit().

  program(name)      a copy of po-listen called name: another program (exe
                     basename and, run from that path, comm)
  symlink_to(p, n)   a symlink n next to program p (Debian's
                     /usr/bin/redis-server -> redis-check-rdb)
  Server             listeners.Listener with po-listen's other options and
                     its stdin commands (command()); the serve fixture makes
                     them and stops every one at teardown
"""
import atexit
import os
import selectors
import shutil
import signal
import tempfile
import time

import pytest

from . import env, listeners, waits

_progdir = None


def program(name):
    """The path of a copy of po-listen named name (made once per test
    process, removed at its exit)."""
    global _progdir
    env.require_file(env.PO_LISTEN, "tests/po-listen")
    if _progdir is None:
        _progdir = tempfile.mkdtemp(prefix="po-programs-", dir="/tmp")
        os.chmod(_progdir, 0o755)
        atexit.register(shutil.rmtree, _progdir, True)
    path = os.path.join(_progdir, name)
    if not os.path.exists(path):
        shutil.copyfile(env.PO_LISTEN, path + ".new")
        os.chmod(path + ".new", 0o755)
        os.rename(path + ".new", path)
    return path


def symlink_to(target, name):
    """A relative symlink called name next to target; returns its path."""
    path = os.path.join(os.path.dirname(target), name)
    if not os.path.islink(path):
        os.symlink(os.path.basename(target), path)
    return path


def exe_gone(pid):
    """True while /proc/PID/exe cannot be read although the process is
    there (ENOENT: the exit released the mm, or a zombie leader)."""
    try:
        os.readlink("/proc/%d/exe" % pid)
        return False
    except FileNotFoundError:
        return os.path.exists("/proc/%d/status" % pid)


def fd_inodes(pid, tid=None):
    """The socket inodes in /proc/PID/fd (or /proc/PID/task/TID/fd)."""
    d = "/proc/%d/fd" % pid if tid is None else "/proc/%d/task/%d/fd" % (pid, tid)
    found = set()
    try:
        names = os.listdir(d)
    except OSError:
        return found
    for fd in names:
        try:
            link = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(int(link[8:-1]))
    return found


def proc_identity(pid):
    """(pid, start time): the process, even when its pid is reused (this
    machine's pid_max is 32768: pids come round within minutes under the
    soaks). None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(b")") + 2:].split()
    return (pid, int(fields[19]))  # field 22: fields 3.. start after ")"


def proc_state(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("State:"):
                return line.split()[1]
    return None


class Server(listeners.Listener):
    """tests/po-listen with the options of the alert tests:
      program     run this copy of po-listen (program()) or a symlink to it
      child_user  the workers of prefork/reuseport SPECs run as that user
      bind_user   the sockets are opened as that user (their uid)
      heap        MiB allocated and touched: a slow exit
      hold_exit   the exit is held after /proc/PID/exe went away, sockets
                  still open, until release()
      thread_exit the leader calls pthread_exit(); a thread keeps the sockets
      handover    a path: a Server(take_over=path) gets every socket
      take_over   a path: no SPECs; the sockets of that handover
    """

    def __init__(self, *specs, program=None, user=None, comm=None,
                 timeout=None, child_user=None, bind_user=None, heap=None,
                 hold_exit=False, thread_exit=False, handover=None,
                 take_over=None, logdir=None):
        env.require_file(env.PO_LISTEN, "tests/po-listen")
        self.specs = specs
        self.netns = None
        self.hold_exit = hold_exit
        self._out = b""
        args = [program or env.PO_LISTEN]
        for opt, val in (("--timeout", timeout), ("--user", user),
                         ("--comm", comm), ("--child-user", child_user),
                         ("--bind-user", bind_user), ("--heap", heap),
                         ("--handover", handover), ("--take-over", take_over)):
            if val is not None:
                args += [opt, str(val)]
        if hold_exit:
            args.append("--hold-exit")
        if thread_exit:
            args.append("--thread-exit")
        self.args = args + list(specs)
        self._start(self.args, logdir)

    def command(self, line, timeout_s=20):
        """Sends one stdin command; returns its result lines (SOCK lines
        update socks and pids). Fails on ERROR."""
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + waits.timeout(timeout_s)
        got = []
        try:
            while True:
                while b"\n" in self._out:
                    raw, self._out = self._out.split(b"\n", 1)
                    text = raw.decode(errors="replace").strip()
                    if text == "DONE " + line:
                        self._update(got)
                        return got
                    if text.startswith("ERROR"):
                        raise AssertionError("po-listen %r: %s" % (line, text))
                    got.append(text)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("po-listen: no answer to %r (got %r)"
                                         % (line, got))
                if sel.select(left):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        raise AssertionError(
                            "po-listen exited (status %s) during %r: %s"
                            % (self.proc.wait(), line, self.stderr()))
                    self._out += chunk
        finally:
            sel.close()

    def _update(self, lines):
        new = {s.spec: s for s in (listeners.Sock(l) for l in lines
                                   if l.startswith("SOCK "))}
        if new:
            self.socks = [new.get(s.spec, s) for s in self.socks]
            self.pids = sorted({p for s in self.socks for p in s.pids})

    def begin_stop(self, sig=signal.SIGTERM):
        """Sends sig and returns at once (stop() waits for the exit)."""
        self.proc.send_signal(sig)

    def release(self):
        """Ends stdin: the end of a held exit (and po-listen's stop)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def stop(self, sig=signal.SIGTERM):
        if self.hold_exit:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            self.release()
        return super().stop(sig)

    def cleanup(self):
        if self.hold_exit:
            self.release()
        super().cleanup()


@pytest.fixture
def serve(tmp_path):
    """serve(*specs, **options) -> Server, started (READY); every one is
    stopped at teardown, a held exit released first."""
    made = []

    def make(*specs, **kw):
        s = Server(*specs, logdir=str(tmp_path), **kw)
        made.append(s)
        return s

    yield make
    for s in reversed(made):
        s.cleanup()
