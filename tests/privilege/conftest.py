"""Fixtures for the least-privilege tests (issue 5, item 3): collectd and
portowner-dump run as nobody through setpriv, with no capability, with
exactly the capabilities of contrib/systemd/portowner.conf, and on a proc
mounted with hidepid=2 in a private mount namespace (unshare -m).

They reuse tests/daemon/harness.py (read-only), as tests/fleet does.
Run as root (the tests drop to nobody themselves):
  /usr/bin/python3 -m pytest tests/privilege
"""
import os
import pwd
import shutil

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
        pytest.skip("the least-privilege tests start a root-owned listener "
                    "and drop collectd to nobody with setpriv: run as root")
    for tool, pkg in (("setpriv", "util-linux"), ("unshare", "util-linux")):
        if not shutil.which(tool):
            pytest.fail("%s not found (apt-get install %s)" % (tool, pkg),
                        pytrace=False)
    missing = [p for p in (H.COLLECTD, H.TYPES_DB) if not os.path.exists(p)]
    if missing:
        pytest.fail("not found: %s (apt-get install collectd-core)"
                    % ", ".join(missing), pytrace=False)
    H.require_file(H.PORTOWNER_SO, "portowner.so")
    H.require_file(H.PORTOWNER_DUMP, "portowner-dump")
    H.require_file(H.PO_LISTEN, "tests/po-listen")


@pytest.fixture
def daemons(request):
    """daemons(body, **kw) -> harness.Collectd (not started) in a Workdir
    of its own that nobody may write; the test points H.COLLECTD at a
    script that drops privilege and execs collectd."""
    made = []
    nobody = pwd.getpwnam(H.NOBODY)

    def make(body, **kw):
        w = H.Workdir()
        for root, dirs, files in os.walk(w.path):
            for name in [root] + [os.path.join(root, x) for x in dirs + files]:
                os.chown(name, nobody.pw_uid, nobody.pw_gid)
        kw.setdefault("exec_handler", False)
        kw.setdefault("unixsock_group", "nogroup")
        d = H.Collectd(w, body, **kw)
        made.append(d)
        return d

    yield make
    H.finish_daemons(made, H.test_failed(request), tail=60)


@pytest.fixture
def pubdir():
    """A directory under /tmp that nobody may enter (pytest's tmp_path is
    root's, 0700): where the hidepid proc is mounted."""
    import tempfile
    path = tempfile.mkdtemp(prefix="po-priv-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    try:
        os.rmdir(os.path.join(path, "proc"))
    except OSError:
        pass
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def hidepid(pubdir):
    """Skips when this machine does not let root mount a proc with
    hidepid=2 in a private mount namespace (an unprivileged container)."""
    import subprocess
    d = os.path.join(pubdir, "proc")
    os.makedirs(d, exist_ok=True)
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "mount",
                        "-t", "proc", "-o", "hidepid=2", "proc", d],
                       capture_output=True, text=True, timeout=H.timeout(30))
    if r.returncode != 0:
        pytest.skip("cannot mount proc with hidepid=2 in a private mount "
                    "namespace here: %s" % r.stderr.strip())
    return pubdir


@pytest.fixture
def listen(tmp_path):
    made = []

    def make(*specs, **kw):
        l = H.Listener(*specs, logdir=str(tmp_path), **kw)
        made.append(l)
        return l

    yield make
    for l in made:
        l.cleanup()
