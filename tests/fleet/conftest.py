"""Fixtures for the fleet and dashboard tests: several real collectd daemons
on loopback (an agent with portowner, a central one that receives over the
network plugin), real listeners, and write_prometheus scraped over HTTP.

They reuse tests/daemon/harness.py (read-only) for the daemons, the
listeners and the deadlines. Run as root (exec runs the notification
recorder as nobody):  /usr/bin/python3 -m pytest tests/fleet
"""
import os

import pytest

from daemon import harness as H


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


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

def expect_environment_noise(d):
    d.expect_log(UNIXSOCK_RACE)
    if H.environment_denied_pids():
        d.expect_log(H.DENIED_WARNING)


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
    H.finish_daemons(made, H.test_failed(request), tail=80, notifications=True)


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
