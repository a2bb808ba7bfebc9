"""Fixtures for the tests against the real collectd daemon.

Run as root (exec's NotificationExec runs the handler as nobody; po-listen
--user needs it):  pytest-3 tests/daemon    (or /usr/bin/python3 -m pytest)
"""
import os

import pytest

from . import harness as H


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session", autouse=True)
def environment():
    problems = []
    if os.geteuid() != 0:
        problems.append("the daemon tests must run as root (exec runs the "
                        "notification handler as nobody; po-listen --user)")
    if not os.access(H.COLLECTD, os.X_OK):
        problems.append("%s not found: apt-get install collectd-core" % H.COLLECTD)
    if not os.path.isfile(H.TYPES_DB):
        problems.append("%s not found" % H.TYPES_DB)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def work(request):
    w = H.Workdir()
    yield w
    if H.test_failed(request) or os.environ.get("PO_KEEP"):
        print("workdir kept: %s" % w.path)
    else:
        w.remove()


@pytest.fixture
def portowner():
    """The tests of the plugin need the built tree."""
    H.require_file(H.PORTOWNER_SO, "portowner.so")
    H.require_file(H.PORTOWNER_DUMP, "portowner-dump")
    H.require_file(H.PO_LISTEN, "tests/po-listen")


@pytest.fixture
def daemon(request, work):
    """daemon(body, **kw) -> harness.Collectd (not started)."""
    made = []

    def make(body, **kw):
        d = H.Collectd(work, body, **kw)
        made.append(d)
        return d

    yield make
    failed = H.test_failed(request)
    for d in made:
        if failed:
            print("---- %s: collectd log (last 80 lines) ----" % work.path)
            print("\n".join(d.log_lines()[-80:]))
            print("---- notifications ----")
            for n in d.notifications(include_sync=True):
                print(H.short(n))
            d.kill()
        elif d.running():
            # The test passed without stopping collectd: stop it here so the
            # exit status and the log are still checked.
            d.stop()


@pytest.fixture
def listen(work):
    """listen(*specs, user=None, comm=None) -> harness.Listener."""
    made = []

    def make(*specs, **kw):
        l = H.Listener(*specs, logdir=work.path, **kw)
        made.append(l)
        return l

    yield make
    for l in made:
        l.cleanup()
