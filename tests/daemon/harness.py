"""Harness for the tests against the real collectd daemon (Debian's collectd-core).

It writes a collectd.conf into a short temp dir (/tmp/pd-XXXX: the unixsock
path must stay under 108 bytes), copies the plugins it needs into a private
PluginDir (collectd refuses symlinks), starts `collectd -f` at Interval 0.2
with logfile, unixsock, csv and an exec NotificationExec handler (run as
nobody) that records every notification with its meta, and observes the
daemon only from the outside: GETVAL/LISTVAL over the unix socket, the csv
files, the recorded notifications and the log.

Synchronisation is always a predicate polled against a deadline (wait_for);
the only "sleep" is the poll step.

Binaries come from $PO_BUILDDIR (default: the source tree, an in-tree build):
  $PO_BUILDDIR/.libs/portowner.so, $PO_BUILDDIR/portowner-dump,
  $PO_BUILDDIR/tests/po-listen
"""
import errno
import glob
import json
import os
import pwd
import random
import re
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(os.path.dirname(HERE))
BUILDDIR = os.path.abspath(os.environ.get("PO_BUILDDIR", SRCDIR))
COLLECTD = os.environ.get("PO_COLLECTD", "/usr/sbin/collectd")
STOCK_PLUGINDIR = os.environ.get("PO_COLLECTD_PLUGINDIR", "/usr/lib/collectd")
TYPES_DB = os.environ.get("PO_TYPES_DB", "/usr/share/collectd/types.db")
HANDLER_SRC = os.path.join(HERE, "notify-record.py")

PORTOWNER_SO = os.path.join(BUILDDIR, ".libs", "portowner.so")
PORTOWNER_DUMP = os.path.join(BUILDDIR, "portowner-dump")
PO_LISTEN = os.path.join(BUILDDIR, "tests", "po-listen")
CONTRIB_CONF = os.path.join(SRCDIR, "contrib", "portowner.conf")
README = os.path.join(SRCDIR, "README.md")

HOST = "po-test"
INTERVAL = 0.2
# Deadlines are generous (they only bound a failure, a pass returns as soon
# as the predicate holds); scale them on a slow machine.
SCALE = float(os.environ.get("PO_TIMEOUT_SCALE", "1"))
NOBODY = "nobody"
SYNC_PLUGIN = "po-sync"  # sentinel notifications sent by sync_notifications()

# A log line is a problem when it contains one of these (case-insensitive)...
BAD_LOG = re.compile(r"dataset not found|error|warning", re.I)
# ...unless it is collectd's note that a read took longer than the interval:
# on a loaded machine (parallel builds, valgrind) any read can, at Interval
# 0.2; speed is the benchmark's business, never a timed functional test's...
SLOW_READ = re.compile(r"\[warning\] plugin_read_thread: read-function of the "
                       r"`\w+' plugin took [0-9.]+ seconds, which is above its "
                       r"read interval")
# ...or logfile's echo of a notification: the logfile plugin logs
# every notification at [info] as "Notification: severity = WARNING, ...",
# and the notifications are asserted on through the exec recorder instead.
NOTIFICATION_ECHO = re.compile(r"^(\[[^\]]*\] )?\[info\] Notification: severity = ")


def timeout(seconds):
    return seconds * SCALE


class WaitTimeout(AssertionError):
    pass


def wait_for(predicate, timeout_s, what, describe=None, step=0.02):
    """Polls predicate() until it returns something truthy and returns that.

    On timeout raises WaitTimeout naming `what` and, when given, what
    describe() says about the last state seen.
    """
    deadline = time.monotonic() + timeout(timeout_s)
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            last = ""
            if describe is not None:
                try:
                    last = "; last seen: %s" % (describe(),)
                except Exception as e:  # describing must not hide the timeout
                    last = "; (describe failed: %r)" % (e,)
            raise WaitTimeout("timed out after %.1fs waiting for %s%s"
                              % (timeout(timeout_s), what, last))
        time.sleep(step)


def require_file(path, what):
    if not os.path.isfile(path):
        raise AssertionError(
            "%s not found at %s: build the tree first (cd %s && "
            "(test -f Makefile || ./configure -q) && make -j2 && make "
            "tests/po-listen), or point PO_BUILDDIR at a build directory"
            % (what, path, SRCDIR))


# ---------------------------------------------------------------- ports ----

_used_ports = set()


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


def free_port():
    """A port that nothing uses for TCP or UDP, v4 or v6, below the
    ephemeral range (so no client connection grabs it meanwhile), and that
    no other test of this session got."""
    lo, hi = 20000, 32000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo = int(f.read().split()[0])
        hi = min(hi, eph_lo - 1)
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(1000):
        port = random.randint(lo, hi)
        if port in _used_ports:
            continue
        if _bindable(port):
            _used_ports.add(port)
            return port
    raise AssertionError("no free port found in %d-%d" % (lo, hi))


def free_ports(n):
    return [free_port() for _ in range(n)]


def free_port_range(n):
    """n consecutive free ports; returns the first."""
    for _ in range(200):
        first = free_port()
        rest = list(range(first + 1, first + n))
        if all(p not in _used_ports and _bindable(p) for p in rest):
            _used_ports.update(rest)
            return first
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


# The plugin's warning about processes whose fds it may not read.
DENIED_WARNING = (r"\[warning\] portowner plugin: could not read the open files "
                  r"\(/proc/PID/fd\) of \d+ process")

_denied = None


def environment_denied_pids():
    """Processes not started by this test run whose fds root cannot read
    (EACCES/EPERM on /proc/PID/fd or on its links), e.g. a sandbox's init.
    Computed once."""
    global _denied
    if _denied is not None:
        return _denied
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % d):
                try:
                    os.readlink("/proc/%s/fd/%s" % (d, fd))
                except (PermissionError, ) :
                    found.append(int(d))
                    break
                except OSError:
                    pass
        except PermissionError:
            found.append(int(d))
        except OSError:
            pass
    _denied = found
    return found


# ------------------------------------------------------------- listeners ---

class Sock:
    """One `SOCK <spec> <proto> <family> <port> <inode> <pid>[,<pid>...]`."""

    def __init__(self, line):
        f = line.split()
        if len(f) != 7 or f[0] != "SOCK":
            raise AssertionError("po-listen printed a bad SOCK line: %r" % line)
        self.spec, self.proto, self.family = f[1], f[2], f[3]
        self.port, self.inode = int(f[4]), int(f[5])
        self.pids = [int(p) for p in f[6].split(",")]

    def __repr__(self):
        return "Sock(%s port=%d inode=%d pids=%s)" % (
            self.spec, self.port, self.inode, self.pids)


def proc_comm(pid):
    with open("/proc/%d/comm" % pid, "rb") as f:
        return f.read().rstrip(b"\n").decode("utf-8", "replace")


def proc_user(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                uid = int(line.split()[2])
                try:
                    return pwd.getpwuid(uid).pw_name
                except KeyError:
                    return str(uid)
    raise AssertionError("no Uid line for pid %d" % pid)


class Listener:
    """Real listening sockets held by real processes (tests/po-listen).

    Starts `po-listen [--user U] [--comm C] SPEC...`, reads its SOCK lines
    up to READY, and records who holds what: socks, pids, comm, user.
    """

    def __init__(self, *specs, user=None, comm=None, backlog=None, logdir=None):
        require_file(PO_LISTEN, "tests/po-listen")
        self.specs = specs
        args = [PO_LISTEN]
        if backlog is not None:
            args += ["--backlog", str(backlog)]
        if user:
            args += ["--user", user]
        if comm:
            args += ["--comm", comm]
        args += list(specs)
        self.args = args
        self.errpath = None
        errf = subprocess.DEVNULL
        if logdir:
            fd, self.errpath = tempfile.mkstemp(prefix="po-listen-", suffix=".err",
                                                dir=logdir)
            errf = os.fdopen(fd, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=errf)
        if errf is not subprocess.DEVNULL:
            errf.close()
        self.socks = []
        self._read_until_ready()
        self.pid = self.proc.pid
        self.pids = sorted({p for s in self.socks for p in s.pids})
        self.inodes = {s.inode for s in self.socks}
        self.comm = proc_comm(self.pid)
        self.user = proc_user(self.pid)
        self.gone_at = None

    def _stderr(self):
        if self.errpath:
            with open(self.errpath, errors="replace") as f:
                return f.read().strip()
        return ""

    def _read_until_ready(self):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + timeout(10)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("po-listen %s: no READY within 10s "
                                         "(got %r)" % (self.args, buf))
                if not sel.select(left):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    rc = self.proc.wait(timeout=5)
                    raise AssertionError(
                        "po-listen %s exited (status %s) before READY; "
                        "stdout %r; stderr: %s"
                        % (self.args, rc, buf, self._stderr()))
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.decode().strip()
                    if line == "READY":
                        return
                    if line.startswith("SOCK "):
                        self.socks.append(Sock(line))
        finally:
            sel.close()

    @property
    def port(self):
        return self.socks[0].port

    def owner_strings(self):
        """What a message naming the owner would contain: comm, pid."""
        return self.comm, str(self.pid)

    def running(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Stops po-listen (it kills its children) and waits until none of
        its sockets is listening any more. Returns the time it was gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout(10))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("po-listen %s ignored signal %d" % (self.args, sig))
        wait_for(lambda: not (self.inodes & listening_inodes()), 10,
                 "the sockets of po-listen %s to close" % (self.args,),
                 lambda: self.inodes & listening_inodes())
        self.gone_at = time.time()
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        return self.gone_at

    def cleanup(self):
        if self.proc.poll() is None:
            try:
                self.stop()
            except AssertionError:
                pass
        for pid in self.pids:  # workers left behind by a broken po-listen
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass


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
        self.args = ["/usr/bin/python3", "-c", self.CODE, addr, str(port)]
        self.errpath = None
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.socks = []
        self._read_until_ready()
        self.pid = self.proc.pid
        self.pids = [self.pid]
        self.inodes = {s.inode for s in self.socks}
        self.comm = proc_comm(self.pid)
        self.user = proc_user(self.pid)
        self.gone_at = None


# ---------------------------------------------------------- portowner-dump --

def dump_json(*args):
    """`portowner-dump --json ARGS...` parsed: a list of sockets."""
    require_file(PORTOWNER_DUMP, "portowner-dump")
    r = subprocess.run([PORTOWNER_DUMP, "--json"] + list(args),
                       capture_output=True, text=True, timeout=timeout(30))
    assert r.returncode == 0, "portowner-dump %s: exit %d: %s" % (
        args, r.returncode, r.stderr)
    data = json.loads(r.stdout)
    if isinstance(data, dict):  # tolerate {"sockets": [...]} framing
        data = data.get("sockets", data)
    assert isinstance(data, list), "portowner-dump --json: not a list: %r" % data
    return data


def values_from_dump(socks):
    """What the plugin's values must be for these sockets (one block)."""
    pids = {o["pid"] for s in socks for o in s.get("owners") or []}
    acc = sum(s.get("accept_queue") or 0 for s in socks if s["protocol"] == "tcp")
    accmax = sum(s.get("accept_queue_max") or 0 for s in socks
                 if s["protocol"] == "tcp")
    return {
        "count-sockets": len(socks),
        "count-processes": len(pids),
        "count-unowned": sum(1 for s in socks if not s.get("owners")),
        "queue_length-accept": acc,
        "queue_length-accept_max": accmax,
    }


VALUE_NAMES = ("count-sockets", "count-processes", "count-unowned",
               "queue_length-accept", "queue_length-accept_max")


# ------------------------------------------------------------- config -------

def q(s):
    """A collectd config string."""
    return '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"')


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return " ".join(_value(x) for x in v)
    return q(v)


def block(name, **keys):
    """A <Port "name"> block; keys are config keys (Port=80,
    Protocol=["tcp4", "udp"], ...). A value of None leaves the key out."""
    lines = ["  <Port %s>" % q(name)]
    for k, v in keys.items():
        if v is None:
            continue
        if isinstance(v, Raw):
            lines.append("    %s %s" % (k, v.text))
        else:
            lines.append("    %s %s" % (k, _value(v)))
    lines.append("  </Port>")
    return "\n".join(lines)


class Raw:
    """A config value written verbatim (for values a test spells itself)."""

    def __init__(self, text):
        self.text = text


def portowner_conf(*blocks, **globals_):
    lines = ["LoadPlugin portowner", "<Plugin portowner>"]
    for k, v in globals_.items():
        if v is not None:
            lines.append("  %s %s" % (k, v.text if isinstance(v, Raw) else _value(v)))
    lines.extend(blocks)
    lines.append("</Plugin>")
    return "\n".join(lines) + "\n"


def ident(instance, name, host=HOST):
    """portowner-INSTANCE/NAME, e.g. ident("web", "count-sockets")."""
    return "%s/portowner-%s/%s" % (host, instance, name)


# -------------------------------------------------------------- log ---------

def scan_log_lines(lines, expected=()):
    """The lines that are problems: "Dataset not found", "error" or
    "warning" (any case), less notification echoes and lines matching one
    of the expected regexes."""
    bad = []
    for line in lines:
        if not BAD_LOG.search(line):
            continue
        if NOTIFICATION_ECHO.search(line) or SLOW_READ.search(line):
            continue
        if any(re.search(p, line) for p in expected):
            continue
        bad.append(line)
    return bad


def unexpected_log_lines(lines, expected=()):
    """scan_log_lines() with the environment's allowance (see
    Collectd.check_log): for logs checked outside a Collectd run."""
    expected = list(expected)
    if environment_denied_pids():
        expected.append(DENIED_WARNING)
        said = [l for l in lines if re.search(DENIED_WARNING, l)]
        if len(said) > 1:
            return said
    return scan_log_lines(lines, expected)


def strip_log_prefix(line):
    """The message of a logfile line: without "[time] [severity] "."""
    return re.sub(r"^(\[[^\]]*\] )?(\[[a-z]+\] )?", "", line)


# ------------------------------------------------------------ workdir -------

class Workdir:
    """/tmp/pd-XXXX: config, plugins, logs, csv, notification records."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="pd-", dir="/tmp")
        os.chmod(self.path, 0o755)  # nobody runs the handler from here
        self.plugindir = self.sub("plugins")
        self.basedir = self.sub("base")
        self.csvdir = self.sub("csv")
        self.recdir = self.sub("rec")
        nobody = pwd.getpwnam(NOBODY)
        os.chown(self.recdir, nobody.pw_uid, nobody.pw_gid)
        os.chmod(self.recdir, 0o755)
        self.handler = os.path.join(self.path, "notify-record.py")
        shutil.copyfile(HANDLER_SRC, self.handler)
        os.chmod(self.handler, 0o755)
        self.records = os.path.join(self.recdir, "notifications.jsonl")
        self.sockpath = os.path.join(self.path, "sock")
        assert len(self.sockpath.encode()) < 108

    def sub(self, name):
        p = os.path.join(self.path, name)
        os.makedirs(p, exist_ok=True)
        return p

    def file(self, name):
        return os.path.join(self.path, name)

    def install_plugin(self, name):
        """Copies NAME.so into the PluginDir (collectd refuses symlinks)."""
        dst = os.path.join(self.plugindir, name + ".so")
        if os.path.exists(dst):
            return
        if name == "portowner":
            require_file(PORTOWNER_SO, "portowner.so")
            src = PORTOWNER_SO
        else:
            src = os.path.join(STOCK_PLUGINDIR, name + ".so")
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o755)

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


LOADPLUGIN = re.compile(r'^\s*LoadPlugin\s+"?([A-Za-z0-9_]+)"?', re.M)
INCLUDE = re.compile(r'^\s*Include\s+"([^"]+)"', re.M)


def plugins_in(text):
    names = LOADPLUGIN.findall(text)
    for inc in INCLUDE.findall(text):
        with open(inc) as f:
            names += LOADPLUGIN.findall(f.read())
    return names


# ------------------------------------------------------------ collectd ------

class Collectd:
    """One collectd configuration in a Workdir, started and stopped as the
    test says (a restart keeps the workdir: the StateFile, the csv files and
    the notification records survive it; each run has its own log)."""

    def __init__(self, work, body, *, interval=INTERVAL, hostname=HOST,
                 exec_handler=True, csv=True, unixsock_group="root",
                 types_db=TYPES_DB):
        self.work = work
        self.types_db = types_db
        self.body = body
        self.interval = interval
        self.hostname = hostname
        self.exec_handler = exec_handler
        self.csv = csv
        self.unixsock_group = unixsock_group
        self.proc = None
        self._conn = None
        self.run = 0
        self.expected_log = []
        self.logs = []  # one log file per run
        self.conf = work.file("collectd.conf")

    # -- config -------------------------------------------------------------
    def config_text(self, log):
        g = ['Hostname %s' % q(self.hostname),
             'FQDNLookup false',
             'BaseDir %s' % q(self.work.basedir),
             'PIDFile %s' % q(self.work.file("collectd.pid")),
             'PluginDir %s' % q(self.work.plugindir),
             'TypesDB %s' % q(self.types_db),
             'Interval %s' % self.interval,
             '',
             'LoadPlugin logfile',
             '<Plugin logfile>',
             '  LogLevel info',
             '  File %s' % q(log),
             '  Timestamp true',
             '  PrintSeverity true',
             '</Plugin>',
             'LoadPlugin unixsock',
             '<Plugin unixsock>',
             '  SocketFile %s' % q(self.work.sockpath)]
        if self.unixsock_group:
            g.append('  SocketGroup %s' % q(self.unixsock_group))
        g.append('</Plugin>')
        if self.csv:
            g += ['LoadPlugin csv',
                  '<Plugin csv>',
                  '  DataDir %s' % q(self.work.csvdir),
                  '  StoreRates false',
                  '</Plugin>']
        if self.exec_handler:
            g += ['LoadPlugin exec',
                  '<Plugin exec>',
                  '  NotificationExec %s %s %s' % (
                      q(NOBODY), q(self.work.handler), q(self.work.records)),
                  '</Plugin>']
        return "\n".join(g) + "\n\n" + self.body

    def write_config(self, log):
        text = self.config_text(log)
        for name in ["logfile", "unixsock", "csv", "exec"] + plugins_in(self.body):
            self.work.install_plugin(name)
        with open(self.conf, "w") as f:
            f.write(text)
        return text

    def expect_log(self, *patterns):
        """Declares log lines (regexes) that are not a failure."""
        self.expected_log.extend(patterns)

    # -- process ------------------------------------------------------------
    @property
    def log(self):
        return self.logs[-1]

    def start(self):
        assert self.proc is None, "collectd already running"
        self._disconnect()
        self.run += 1
        log = self.work.file("collectd.%d.log" % self.run)
        self.logs.append(log)
        self.write_config(log)
        if os.path.exists(self.work.sockpath):
            os.unlink(self.work.sockpath)
        self.out = self.work.file("collectd.%d.out" % self.run)
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen([COLLECTD, "-f", "-C", self.conf],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)
        self.started_at = time.time()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    "collectd exited with %s during start-up:\n%s"
                    % (self.proc.returncode, self.log_text()))
            if "Initialization complete, entering read-loop." not in self._read(log):
                return False
            try:
                self.command("LISTVAL")
                return True
            except OSError:
                return False

        wait_for(ready, 15, "collectd to start (%s)" % self.conf,
                 lambda: self.log_text()[-2000:])
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, check=True):
        """SIGTERM; asserts exit status 0 and a clean log (check=True)."""
        assert self.proc is not None, "collectd is not running"
        self._disconnect()
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=timeout(20))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("collectd did not exit within 20s of SIGTERM:\n%s"
                                 % self.log_text()[-3000:])
        if check:
            assert rc == 0, "collectd exited with status %s at SIGTERM:\n%s" % (
                rc, self.log_text()[-3000:])
            self.check_log()
        return rc

    def kill(self):
        self._disconnect()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    # -- log ----------------------------------------------------------------
    @staticmethod
    def _read(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_text(self, run=None):
        runs = range(1, self.run + 1) if run is None else [run]
        parts = []
        for r in runs:
            parts.append(self._read(self.work.file("collectd.%d.out" % r)))
            parts.append(self._read(self.work.file("collectd.%d.log" % r)))
        return "".join(parts)

    def log_lines(self, run=None):
        return self.log_text(run).splitlines()

    def check_log(self, run=None):
        """Fails on any "Dataset not found", error or warning line that the
        test did not declare with expect_log().

        One exception, only where this machine has a process whose fds root
        cannot read (checked here, independently of the plugin: a container
        runtime's init, say): the plugin's warning about it, which must come
        at most once per run ("reported once, not every interval")."""
        # At SIGTERM collectd drops the values still queued for its write
        # threads and says so: on a loaded machine that happens to any run.
        expected = list(self.expected_log) + list(TEST_MODE_EXPECTED)
        if environment_denied_pids():
            expected.append(DENIED_WARNING)
            runs = range(1, self.run + 1) if run is None else [run]
            for r in runs:
                said = [l for l in self.log_lines(r) if re.search(DENIED_WARNING, l)]
                assert len(said) <= 1, (
                    "the unreadable /proc/PID/fd warning came %d times in run %d:\n%s"
                    % (len(said), r, "\n".join(said)))
        bad = scan_log_lines(self.log_lines(run), expected)
        assert not bad, ("unexpected error/warning lines in collectd's log (%s):\n  %s"
                         % (self.work.path, "\n  ".join(bad)))

    def log_matches(self, pattern, run=None):
        return [l for l in self.log_lines(run) if re.search(pattern, l)]

    # -- unixsock -----------------------------------------------------------
    def command(self, line):
        """One unixsock command; returns the lines after the status line.
        Raises OSError when the socket is not there, CommandError on a
        negative status.

        One connection is kept for the whole run: collectd 5.12's unixsock
        names each connection's thread after creating it and logs
        `[error] set_thread_name("unixsock conn"): No such file or directory`
        when a short-lived connection's thread has already gone."""
        for attempt in (0, 1):
            if self._conn is None:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(timeout(10))
                try:
                    s.connect(self.work.sockpath)
                except OSError:
                    s.close()
                    raise
                self._conn = (s, s.makefile("rb"))
            s, f = self._conn
            try:
                s.sendall(line.encode() + b"\n")
                status = f.readline().decode().rstrip("\n")
                if not status:
                    raise OSError(errno.ECONNRESET, "unixsock closed the connection")
                num_s, _, msg = status.partition(" ")
                num = int(num_s)
                if num < 0:
                    raise CommandError(line, status)
                return [f.readline().decode().rstrip("\n") for _ in range(num)]
            except OSError:
                self._disconnect()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _disconnect(self):
        if self._conn is not None:
            s, f = self._conn
            self._conn = None
            for c in (f, s):
                try:
                    c.close()
                except OSError:
                    pass

    def listval(self):
        """{identifier: last update time} of every value in the cache."""
        out = {}
        for l in self.command("LISTVAL"):
            t, _, ident_ = l.partition(" ")
            out[ident_] = float(t)
        return out

    def getval(self, identifier):
        """{ds: value} of identifier, or None when collectd has no such value."""
        try:
            lines = self.command("GETVAL %s" % q(identifier))
        except CommandError as e:
            if "No such value" in e.status:
                return None
            raise
        vals = {}
        for l in lines:
            k, _, v = l.partition("=")
            vals[k] = float(v)
        return vals

    def value(self, identifier):
        v = self.getval(identifier)
        return None if v is None else v.get("value")

    def values(self, instance):
        """The five portowner values of a block (None when missing)."""
        return {n: self.value(ident(instance, n)) for n in VALUE_NAMES}

    def last_update(self, identifier):
        return self.listval().get(identifier)

    def wait_value(self, identifier, expected, timeout_s=10):
        return wait_for(lambda: self.value(identifier) == expected, timeout_s,
                        "%s == %s" % (identifier, expected),
                        lambda: self.value(identifier))

    def wait_values(self, instance, expected, timeout_s=10):
        """Waits until every value named in expected has that value."""
        def now():
            return {k: self.value(ident(instance, k)) for k in expected}
        return wait_for(lambda: now() == expected, timeout_s,
                        "portowner-%s values %s" % (instance, expected), now)

    def wait_reads(self, identifier, n, timeout_s=None):
        """Waits until identifier has been updated n more times (by its
        timestamp: n intervals past its current one). Returns the time."""
        t0 = wait_for(lambda: self.last_update(identifier), 10,
                      "%s to be reported" % identifier, self.listval)
        target = t0 + (n - 0.5) * self.interval
        if timeout_s is None:
            timeout_s = 10 + 3 * n * self.interval
        return wait_for(lambda: (self.last_update(identifier) or 0) >= target
                        and self.last_update(identifier),
                        timeout_s, "%d more updates of %s" % (n, identifier),
                        lambda: self.last_update(identifier))

    def putnotif(self, severity, message, **fields):
        parts = ["PUTNOTIF", "severity=%s" % severity,
                 "time=%.3f" % time.time(), "host=%s" % q(self.hostname)]
        for k, v in fields.items():
            parts.append("%s=%s" % (k, q(v)))
        parts.append("message=%s" % q(message))
        self.command(" ".join(parts))

    # -- csv ----------------------------------------------------------------
    def csv_rows(self, identifier):
        """[(time, {ds: value})...] of identifier from the csv plugin's files,
        in file order."""
        host, plugin, type_ = identifier.split("/")
        rows = []
        for path in sorted(glob.glob(os.path.join(self.work.csvdir, host, plugin,
                                                  type_ + "-*"))):
            with open(path) as f:
                header = f.readline().rstrip("\n").split(",")
                for line in f:
                    fields = line.rstrip("\n").split(",")
                    if len(fields) != len(header):
                        continue  # a line being written
                    rows.append((float(fields[0]),
                                 {k: float(v) for k, v in zip(header[1:], fields[1:])}))
        return rows

    # -- notifications ------------------------------------------------------
    def notifications(self, include_sync=False, **match):
        """Recorded notifications (across runs), ordered by their Time,
        filtered by match (see notification_matches)."""
        recs = []
        try:
            with open(self.work.records) as f:
                for line in f:
                    if line.endswith("\n"):
                        recs.append(json.loads(line))
        except FileNotFoundError:
            pass
        recs.sort(key=lambda r: (r.get("time") or 0))
        if not include_sync:
            recs = [r for r in recs if r.get("plugin") != SYNC_PLUGIN]
        return [r for r in recs if notification_matches(r, **match)]

    def wait_notification(self, timeout_s=10, **match):
        """Waits for a notification matching match; returns the first one."""
        found = wait_for(lambda: self.notifications(**match), timeout_s,
                         "a notification matching %s" % (match,),
                         lambda: [short(n) for n in self.notifications()])
        return found[0]

    def sync_notifications(self, timeout_s=10):
        """Makes sure every notification dispatched so far has been recorded:
        sends a sentinel notification through the unix socket and waits for
        it to come out of the exec handler (handlers of notifications
        dispatched earlier were forked earlier)."""
        token = uuid.uuid4().hex
        self.putnotif("okay", "sync " + token, plugin=SYNC_PLUGIN)
        wait_for(lambda: any(n["message"] == "sync " + token
                             for n in self.notifications(include_sync=True)),
                 timeout_s, "the sync notification %s" % token)
        # A handler forked just before the sentinel's may finish just after
        # it: give the stragglers the time one more handler takes.
        t = time.monotonic()
        self.putnotif("okay", "sync2 " + token, plugin=SYNC_PLUGIN)
        wait_for(lambda: any(n["message"] == "sync2 " + token
                             for n in self.notifications(include_sync=True)),
                 timeout_s, "the second sync notification %s" % token)
        return time.monotonic() - t


class CommandError(Exception):
    def __init__(self, line, status):
        super().__init__("unixsock %r: %s" % (line, status))
        self.status = status


def notification_matches(n, severity=None, plugin=None, plugin_instance=None,
                         type=None, type_instance=None, message=None,
                         since=None, meta=None, pred=None):
    """severity (case-insensitive), plugin..., message: a regex searched in
    the message; since: Time >= since; meta: names that must be present;
    pred: a callable."""
    if severity is not None and (n.get("severity") or "").upper() != severity.upper():
        return False
    for k, v in (("plugin", plugin), ("plugin_instance", plugin_instance),
                 ("type", type), ("type_instance", type_instance)):
        if v is not None and n.get(k) != v:
            return False
    if message is not None and not re.search(message, n.get("message") or ""):
        return False
    if since is not None and (n.get("time") or 0) < since:
        return False
    if meta is not None and not all(k in n.get("meta", {}) for k in meta):
        return False
    if pred is not None and not pred(n):
        return False
    return True


def short(n):
    return "%s %s/%s %s/%s t=%.3f %r meta=%s" % (
        n.get("severity"), n.get("plugin"), n.get("plugin_instance"),
        n.get("type"), n.get("type_instance"), n.get("time") or 0,
        n.get("message"), sorted(n.get("meta", {})))


# ------------------------------------------------------------ collectd -T ---

# collectd -T exits right after its one read: the values still queued for
# the write threads are dropped with this warning. Not a problem of the
# config under test.
TEST_MODE_EXPECTED = (r"\[warning\] plugin: \d+ value lists were left after "
                      r"shutting down the write threads",)


def collectd_test_config(work, body):
    """Writes a config (logfile + body) and runs `collectd -T -C file`.
    Returns (exit status, log lines)."""
    log = work.file("config-test.log")
    if os.path.exists(log):
        os.unlink(log)
    text = "\n".join([
        'Hostname %s' % q(HOST),
        'FQDNLookup false',
        'BaseDir %s' % q(work.basedir),
        'PIDFile %s' % q(work.file("collectd.pid")),
        'PluginDir %s' % q(work.plugindir),
        'TypesDB %s' % q(TYPES_DB),
        'Interval %s' % INTERVAL,
        'LoadPlugin logfile',
        '<Plugin logfile>',
        '  LogLevel info',
        '  File %s' % q(log),
        '  Timestamp true',
        '  PrintSeverity true',
        '</Plugin>',
        # A write plugin, or collectd warns that values go nowhere.
        'LoadPlugin csv',
        '<Plugin csv>',
        '  DataDir %s' % q(work.csvdir),
        '</Plugin>',
        '']) + body
    for name in ["logfile", "csv"] + plugins_in(body):
        work.install_plugin(name)
    conf = work.file("config-test.conf")
    with open(conf, "w") as f:
        f.write(text)
    r = subprocess.run([COLLECTD, "-T", "-C", conf], capture_output=True,
                       text=True, timeout=timeout(60), stdin=subprocess.DEVNULL)
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    return r.returncode, lines + (r.stdout + r.stderr).splitlines()


# ------------------------------------------------ fixtures' shared parts ----

def test_failed(request):
    """Whether the test behind a fixture's request failed (or never ran its
    call phase); needs the pytest_runtest_makereport hook of the conftests."""
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


def finish_daemons(made, failed, tail=80, notifications=False):
    """Teardown of fixtures that start daemons each in a Workdir of its own:
    a failed test prints every log (and the notifications) and kills the
    daemons; a passed one stops those still running, which checks their exit
    status and logs. Workdirs are removed unless the test failed or PO_KEEP
    is set. Fails the test with what stop() found."""
    import pytest
    errors = []
    for d in made:
        if failed:
            print("---- %s (%s): collectd log (last %d lines) ----"
                  % (d.hostname, d.work.path, tail))
            print("\n".join(d.log_lines()[-tail:]))
            if notifications:
                print("---- notifications recorded by %s ----" % d.hostname)
                for n in d.notifications(include_sync=True):
                    print(short(n))
            d.kill()
        elif d.running():
            try:
                d.stop()
            except AssertionError as e:
                errors.append(str(e))
    for d in made:
        if failed or os.environ.get("PO_KEEP"):
            print("workdir kept: %s" % d.work.path)
        else:
            d.work.remove()
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)
