"""Fixtures for the churn soak (issue 5, item 2): the real collectd daemon
with portowner at a short interval while tests/soak/po-churn forks hundreds
of processes a second and opens and closes listeners.

They reuse tests/daemon/harness.py (read-only), as tests/fleet does.
Run as root:  /usr/bin/python3 -m pytest tests/soak
SOAK_SECONDS (default 120) sets the soak's length; `make soak` runs it longer.
"""
import os
import shutil
import subprocess

import pytest

from daemon import harness as H

HERE = os.path.dirname(os.path.abspath(__file__))
CHURN_SRC = os.path.join(HERE, "po-churn.c")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def environment():
    if os.geteuid() != 0:
        pytest.skip("the soak runs collectd's exec plugin, which runs the "
                    "notification recorder as nobody: that needs root")
    missing = [p for p in (H.COLLECTD, H.TYPES_DB) if not os.path.exists(p)]
    if missing:
        pytest.fail("not found: %s (apt-get install collectd-core)"
                    % ", ".join(missing), pytrace=False)
    H.require_file(H.PORTOWNER_SO, "portowner.so")
    H.require_file(H.PO_LISTEN, "tests/po-listen")


@pytest.fixture(scope="session")
def churn_bin(tmp_path_factory):
    """tests/soak/po-churn: the build tree's when `make` built it, else
    compiled here with cc."""
    built = os.path.join(H.BUILDDIR, "tests", "soak", "po-churn")
    if os.access(built, os.X_OK) and \
            os.path.getmtime(built) >= os.path.getmtime(CHURN_SRC):
        return built
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not cc:
        pytest.fail("no C compiler to build tests/soak/po-churn "
                    "(apt-get install build-essential)", pytrace=False)
    out = str(tmp_path_factory.mktemp("churn") / "po-churn")
    r = subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", out,
                        CHURN_SRC], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("building po-churn failed:\n%s" % r.stderr, pytrace=False)
    return out


@pytest.fixture
def daemons(request):
    """daemons(body, **kw) -> harness.Collectd in a Workdir of its own (not
    started). A failed test prints the log and kills the daemon; a passed
    one stops it if still running (exit 0, clean log)."""
    made = []

    def make(body, **kw):
        w = H.Workdir()
        d = H.Collectd(w, body, **kw)
        made.append(d)
        return d

    yield make
    H.finish_daemons(made, H.test_failed(request), tail=80)
