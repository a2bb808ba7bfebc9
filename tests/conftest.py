"""What every pytest suite of portowner shares: the report hook, the checks
of what a test needs from this machine, and the fixtures for real daemons
and real listeners. The helpers themselves are the package tests/lib
(`from lib import ...`; pytest puts this directory on sys.path).

A test module says what it needs with markers (checked before its fixtures
are set up):
  requires_root(reason)       skipped, with the reason, unless run as root
  requires_collectd(plugin..) fails unless collectd-core (the daemon,
                              types.db and those stock plugins) is installed
  requires_build(name..)      fails unless the tree is built (names:
                              portowner.so, portowner-dump, po-listen)

Run from the top of the tree (or of an unpacked release tarball), with
PO_BUILDDIR pointing at the build directory when it is not the source tree:
  PO_BUILDDIR=... /usr/bin/python3 -m pytest -p no:cacheprovider -rxs tests/daemon
"""
import os

import pytest

from lib import collectd, env, listeners


def pytest_configure(config):
    for line in (
            "requires_root(reason): skip unless run as root, saying why",
            "requires_collectd(*plugins): collectd-core and these stock plugins",
            "requires_build(*names): built portowner.so / portowner-dump / po-listen"):
        config.addinivalue_line("markers", line)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for m in item.iter_markers("requires_root"):
        if os.geteuid() != 0:
            pytest.skip("needs root: %s" % (m.args[0] if m.args else
                                            "run the suite as root"))
    problems = []
    for m in item.iter_markers("requires_collectd"):
        problems += env.missing_collectd(m.args)
    for m in item.iter_markers("requires_build"):
        for name in m.args:
            p = env.missing_build(env.BUILT[name], name)
            if p:
                problems.append(p)
    if problems:
        pytest.fail("; ".join(sorted(set(problems))), pytrace=False)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the item (rep_setup, rep_call, rep_teardown),
    for fixtures that tell a failed test from a passed one
    (collectd.test_failed)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def listen(tmp_path):
    """listen(*specs, user=, comm=, backlog=, netns=, ...) ->
    listeners.Listener, started (READY); every one is stopped at teardown,
    whatever the test did."""
    made = []

    def make(*specs, **kw):
        l = listeners.Listener(*specs, logdir=str(tmp_path), **kw)
        made.append(l)
        return l

    yield make
    for l in reversed(made):
        l.cleanup()


@pytest.fixture
def daemons(request):
    """daemons(body, work=None, workdir_owner=None, **kw) ->
    collectd.Collectd (not started), in `work` or in a Workdir of its own
    (owned by workdir_owner when given). At teardown (collectd.finish_daemons):
    a failed test prints every log and the notifications and kills the
    daemons; a passed one stops those still running (exit 0, clean log)."""
    made, workdirs = [], []

    def make(body, work=None, workdir_owner=None, **kw):
        if work is None:
            work = collectd.Workdir(owner=workdir_owner)
            workdirs.append(work)
        d = collectd.Collectd(work, body, **kw)
        made.append(d)
        return d

    yield make
    collectd.finish_daemons(made, workdirs, collectd.test_failed(request))
