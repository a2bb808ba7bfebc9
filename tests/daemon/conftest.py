"""Fixtures for the tests against the real collectd daemon: one Workdir per
test, shared by the daemons it makes (a restart keeps the StateFile, the csv
files and the notification records).

Run as root (exec's NotificationExec runs the handler as nobody; po-listen
--user needs it):  /usr/bin/python3 -m pytest tests/daemon
"""
import os

import pytest

from lib import collectd


@pytest.fixture
def work(request):
    w = collectd.Workdir()
    yield w
    if collectd.test_failed(request) or os.environ.get("PO_KEEP"):
        print("workdir kept: %s" % w.path)
    else:
        w.remove()


@pytest.fixture
def daemon(work, daemons):
    """daemon(body, **kw) -> collectd.Collectd in the test's Workdir (not
    started). work comes first: it is removed after the daemons stopped."""
    def make(body, **kw):
        return daemons(body, work=work, **kw)
    return make
