"""Fixtures for the fleet and dashboard tests: several real collectd daemons
on loopback (an agent with portowner, a central one that receives over the
network plugin), real listeners, and write_prometheus scraped over HTTP.

The daemons, listeners and waits are tests/lib's (the root conftest's
daemons and listen fixtures). Run as root (exec runs the notification
recorder as nobody):  /usr/bin/python3 -m pytest tests/fleet
"""
import pytest

from lib import collectd


@pytest.fixture
def daemons(daemons):
    """The root conftest's daemons(body, **kw), each in a Workdir of its own;
    the fleet polls the unix socket of several daemons (see
    collectd.UNIXSOCK_RACE)."""
    def make(body, **kw):
        d = daemons(body, **kw)
        d.expect_log(collectd.UNIXSOCK_RACE)
        return d
    return make
