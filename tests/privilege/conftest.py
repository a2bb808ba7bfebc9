"""Fixtures for the least-privilege tests (issue 5, item 3): collectd and
portowner-dump run as nobody through setpriv, with no capability, with
exactly the capabilities of contrib/systemd/portowner-nonroot.conf, and on a
proc mounted with hidepid=2 in a private mount namespace (unshare -m); and
collectd as root with the bounding set of contrib/systemd/portowner.conf,
whose exec handlers run without capabilities (test_handler_caps.py).

The daemons and listeners are the root conftest's, the helpers tests/lib's.
Run as root (the tests drop to nobody themselves):
  /usr/bin/python3 -m pytest tests/privilege
"""
import os
import shutil
import subprocess
import tempfile

import pytest

from lib import env, waits


@pytest.fixture
def daemons(daemons):
    """The root conftest's daemons(body, **kw), each in a Workdir of its own
    that nobody owns, without the exec handler (nobody may not run it as
    nobody) and with a unix socket nobody's group may use; the test points
    env.COLLECTD at a script that drops privilege and execs collectd."""
    def make(body, **kw):
        kw.setdefault("exec_handler", False)
        kw.setdefault("unixsock_group", "nogroup")
        return daemons(body, workdir_owner=env.NOBODY, **kw)
    return make


@pytest.fixture
def pubdir():
    """A directory under /tmp that nobody may enter (pytest's tmp_path is
    root's, 0700): where the hidepid proc is mounted."""
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
    d = os.path.join(pubdir, "proc")
    os.makedirs(d, exist_ok=True)
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "mount",
                        "-t", "proc", "-o", "hidepid=2", "proc", d],
                       capture_output=True, text=True, timeout=waits.timeout(30))
    if r.returncode != 0:
        pytest.skip("cannot mount proc with hidepid=2 in a private mount "
                    "namespace here: %s" % r.stderr.strip())
    return pubdir


@pytest.fixture(autouse=True)
def util_linux():
    for tool in ("setpriv", "unshare"):
        if not shutil.which(tool):
            pytest.fail("%s not found (apt-get install util-linux)" % tool,
                        pytrace=False)
