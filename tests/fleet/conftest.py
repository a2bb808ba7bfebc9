"""Fixtures for the fleet and dashboard tests: several real collectd daemons
on loopback (an agent with portowner, a central one that receives over the
network plugin), real listeners, and write_prometheus scraped over HTTP.

They reuse tests/daemon/harness.py (read-only) for the daemons, the
listeners and the deadlines. Run as root (exec runs the notification
recorder as nobody):  /usr/bin/python3 -m pytest tests/fleet
"""
import errno
import os

import pytest

from daemon import harness as H


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture(autouse=True)
def environment():
    if os.geteuid() != 0:
        pytest.skip("the fleet tests run collectd's exec plugin, which runs "
                    "the notification recorder as nobody: that needs root")
    missing = [p for p in (H.COLLECTD, H.TYPES_DB) if not os.path.exists(p)]
    if missing:
        pytest.fail("not found: %s (apt-get install collectd-core)"
                    % ", ".join(missing), pytrace=False)
    for name in ("network", "write_prometheus", "unixsock", "exec"):
        so = os.path.join(H.STOCK_PLUGINDIR, name + ".so")
        if not os.path.isfile(so):
            pytest.fail("%s not found (apt-get install collectd-core)" % so,
                        pytrace=False)
    H.require_file(H.PORTOWNER_SO, "portowner.so")
    H.require_file(H.PO_LISTEN, "tests/po-listen")


# collectd 5.12 names a unixsock connection's thread after starting it; when
# the client was quicker (one GETVAL, then close) the thread is gone and
# set_thread_name() logs an error. That race is collectd's and harmless, and
# polling the unix socket from a test makes it happen.
UNIXSOCK_RACE = (r'\[error\] set_thread_name\("unixsock conn"\): '
                 r'No such (file or directory|process)')

PRIVILEGE_WARNING = (r"\[warning\] portowner plugin: could not read the open "
                     r"files \(/proc/PID/fd\) of \d+ process(es)? for lack of "
                     r"privilege")


def pids_with_unreadable_fds():
    """Processes whose open files even root may not read here (a sandbox's
    pid 1, say). When there are any, portowner rightly says so once."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
            if fds:
                os.readlink("/proc/%s/fd/%s" % (pid, fds[0]))
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                found.append(int(pid))
    return found


def expect_environment_noise(d):
    d.expect_log(UNIXSOCK_RACE)
    if pids_with_unreadable_fds():
        d.expect_log(PRIVILEGE_WARNING)


@pytest.fixture
def daemons(request):
    """daemons(body, **kw) -> harness.Collectd in a Workdir of its own (not
    started). At teardown: a failed test prints every log and kills the
    daemons; a passed one stops those still running (exit 0, clean log)."""
    made = []

    def make(body, **kw):
        w = H.Workdir()
        d = H.Collectd(w, body, **kw)
        expect_environment_noise(d)
        made.append(d)
        return d

    yield make
    failed = _failed(request)
    errors = []
    for d in made:
        if failed:
            print("---- %s (%s): collectd log (last 80 lines) ----"
                  % (d.hostname, d.work.path))
            print("\n".join(d.log_lines()[-80:]))
            print("---- notifications recorded by %s ----" % d.hostname)
            for n in d.notifications(include_sync=True):
                print(H.short(n))
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


@pytest.fixture
def listen(tmp_path):
    """listen(*specs, user=None, comm=None) -> harness.Listener."""
    made = []

    def make(*specs, **kw):
        l = H.Listener(*specs, logdir=str(tmp_path), **kw)
        made.append(l)
        return l

    yield make
    for l in made:
        l.cleanup()
