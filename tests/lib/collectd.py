"""The real collectd daemon (Debian's collectd-core), run and observed from
the outside.

Workdir is a short temp dir (/tmp/pd-XXXX: the unixsock path must stay
under 108 bytes) with a private PluginDir (collectd refuses symlinked
plugins: they are copied). Collectd writes a collectd.conf there and runs
`collectd -f` at Interval 0.2 with logfile, unixsock, csv and an exec
NotificationExec handler (run as nobody, tests/lib/notify-record.py) that
records every notification with its meta. A test observes it only through
GETVAL/LISTVAL over the unix socket, the csv files, the recorded
notifications and the log; every wait on what it observes is in
lib.waits.
"""
import errno
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from . import env, waits

HOST = "po-test"
INTERVAL = 0.2
SYNC_PLUGIN = "po-sync"  # sentinel notifications (waits.sync_notifications)

# A log line is a problem when it contains one of these (case-insensitive)...
BAD_LOG = re.compile(r"dataset not found|error|warning", re.I)
# ...unless it is collectd's note that a read took longer than the interval:
# on a loaded machine (parallel builds, valgrind) any read can, at Interval
# 0.2; speed is the benchmark's business, never a timed functional test's...
# (and the main loop's note that it woke up after its next interval was due,
# for the same reason)...
SLOW_READ = re.compile(r"\[warning\] (plugin_read_thread: read-function of the "
                       r"`\w+' plugin took [0-9.]+ seconds, which is above its "
                       r"read interval|Not sleeping because the next interval is "
                       r"[0-9.]+ seconds in the past!)")
# ...or logfile's echo of a notification: the logfile plugin logs
# every notification at [info] as "Notification: severity = WARNING, ...",
# and the notifications are asserted on through the exec recorder instead.
NOTIFICATION_ECHO = re.compile(r"^(\[[^\]]*\] )?\[info\] Notification: severity = ")

# The plugin's warning about processes whose fds it may not read: allowed
# once per run where the machine has such a process of its own
# (env.env.environment_denied_pids()).
DENIED_WARNING = (r"\[warning\] portowner plugin: could not read the open files "
                  r"\(/proc/PID/fd\) of \d+ process")

# collectd 5.12 names a unixsock connection's thread after starting it; when
# the client was quicker (one command, then close) the thread is gone and
# set_thread_name() logs an error. That race is collectd's and harmless; the
# harness keeps one connection per run, which avoids it.
UNIXSOCK_RACE = (r'\[error\] set_thread_name\("unixsock conn"\): '
                 r'No such (file or directory|process)')

# collectd -T exits right after its one read, and collectd at SIGTERM drops
# the values still queued for its write threads, with this warning. Not a
# problem of the config under test.
# (collectd says "1 value list was left" for one.)
TEST_MODE_EXPECTED = (r"\[warning\] plugin: \d+ value lists? (was|were) left "
                      r"after shutting down the write threads",)

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


VALUE_NAMES = ("count-sockets", "count-processes", "count-unowned",
               "queue_length-accept", "queue_length-accept_max")


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
    if env.environment_denied_pids():
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
    """/tmp/pd-XXXX: config, plugins, logs, csv, notification records.
    owner (a user name): the whole tree is that user's (for a collectd that
    runs as that user)."""

    def __init__(self, owner=None):
        self.path = tempfile.mkdtemp(prefix="pd-", dir="/tmp")
        os.chmod(self.path, 0o755)  # nobody runs the handler from here
        self.plugindir = self.sub("plugins")
        self.basedir = self.sub("base")
        self.csvdir = self.sub("csv")
        self.recdir = self.sub("rec")
        nobody = pwd.getpwnam(env.NOBODY)
        os.chown(self.recdir, nobody.pw_uid, nobody.pw_gid)
        os.chmod(self.recdir, 0o755)
        self.handler = os.path.join(self.path, "notify-record.py")
        shutil.copyfile(env.NOTIFY_RECORDER, self.handler)
        os.chmod(self.handler, 0o755)
        self.records = os.path.join(self.recdir, "notifications.jsonl")
        self.sockpath = os.path.join(self.path, "sock")
        assert len(self.sockpath.encode()) < 108
        if owner is not None:
            pw = pwd.getpwnam(owner)
            for root, dirs, files in os.walk(self.path):
                for name in [root] + [os.path.join(root, x) for x in dirs + files]:
                    os.chown(name, pw.pw_uid, pw.pw_gid)

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
            env.require_file(env.PORTOWNER_SO, "portowner.so")
            src = env.PORTOWNER_SO
        else:
            src = os.path.join(env.STOCK_PLUGINDIR, name + ".so")
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

def base_config(work, log, hostname=HOST, types_db=None, interval=INTERVAL):
    """The global options and the logfile plugin (writing log, with time
    stamps and severities) of a config in work: a list of lines."""
    return ['Hostname %s' % q(hostname),
            'FQDNLookup false',
            'BaseDir %s' % q(work.basedir),
            'PIDFile %s' % q(work.file("collectd.pid")),
            'PluginDir %s' % q(work.plugindir),
            'TypesDB %s' % q(types_db or env.TYPES_DB),
            'Interval %s' % interval,
            '',
            'LoadPlugin logfile',
            '<Plugin logfile>',
            '  LogLevel info',
            '  File %s' % q(log),
            '  Timestamp true',
            '  PrintSeverity true',
            '</Plugin>']


class Collectd:
    """One collectd configuration in a Workdir, started and stopped as the
    test says (a restart keeps the workdir: the StateFile, the csv files and
    the notification records survive it; each run has its own log)."""

    def __init__(self, work, body, *, interval=INTERVAL, hostname=HOST,
                 exec_handler=True, csv=True, unixsock_group="root",
                 types_db=None):
        self.work = work
        self.types_db = types_db or env.TYPES_DB
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
        g = base_config(self.work, log, self.hostname, self.types_db,
                        self.interval)
        g += ['LoadPlugin unixsock',
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
                      q(env.NOBODY), q(self.work.handler), q(self.work.records)),
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
            self.proc = subprocess.Popen([env.COLLECTD, "-f", "-C", self.conf],
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

        waits.wait_for(ready, 15, "collectd to start (%s)" % self.conf,
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
            rc = proc.wait(timeout=waits.timeout(20))
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
        if env.environment_denied_pids():
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
                s.settimeout(waits.timeout(10))
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

    def last_update(self, identifier):
        return self.listval().get(identifier)

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

def collectd_test_config(work, body):
    """Writes a config (logfile + body) and runs `collectd -T -C file`.
    Returns (exit status, log lines)."""
    log = work.file("config-test.log")
    if os.path.exists(log):
        os.unlink(log)
    text = "\n".join(base_config(work, log) + [
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
    r = subprocess.run([env.COLLECTD, "-T", "-C", conf], capture_output=True,
                       text=True, timeout=waits.timeout(60), stdin=subprocess.DEVNULL)
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    return r.returncode, lines + (r.stdout + r.stderr).splitlines()


# ------------------------------------------------ fixtures' shared parts ----

def test_failed(request):
    """Whether the test behind a fixture's request failed (or never ran its
    call phase); needs the pytest_runtest_makereport hook of
    tests/conftest.py."""
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


def finish_daemons(made, workdirs, failed, tail=80):
    """Teardown of the daemons a test made: when it failed, prints each
    one's log (the last `tail` lines) and notifications and kills it; when
    it passed, stops those still running, which checks their exit status
    and logs. Removes workdirs (the Workdirs made for them) unless the test
    failed or PO_KEEP is set. Fails the test with what stop() found."""
    import pytest
    errors = []
    for d in made:
        if failed:
            print("---- %s (%s): collectd log (last %d lines) ----"
                  % (d.hostname, d.work.path, tail))
            print("\n".join(d.log_lines()[-tail:]))
            recs = d.notifications(include_sync=True)
            if recs:
                print("---- notifications recorded by %s ----" % d.hostname)
                for n in recs:
                    print(short(n))
            d.kill()
        elif d.running():
            try:
                d.stop()
            except AssertionError as e:
                errors.append(str(e))
    for w in workdirs:
        if failed or os.environ.get("PO_KEEP"):
            print("workdir kept: %s" % w.path)
        else:
            w.remove()
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)
