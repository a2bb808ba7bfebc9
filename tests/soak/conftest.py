"""Fixtures for the churn soak (issue 5, item 2): the real collectd daemon
with portowner at a short interval while tests/soak/po-churn forks hundreds
of processes a second and opens and closes listeners. The daemons come from
the root conftest's daemons fixture, the helpers from tests/lib.

Run as root:  /usr/bin/python3 -m pytest tests/soak
SOAK_SECONDS (default 120) sets the soak's length; `make soak` runs it longer.
"""
import os
import shutil
import subprocess

import pytest

from lib import env


@pytest.fixture(scope="session")
def churn_bin(tmp_path_factory):
    """tests/soak/po-churn: the build tree's when `make` built it, else
    compiled here with cc."""
    built = env.PO_CHURN
    if os.access(built, os.X_OK) and \
            os.path.getmtime(built) >= os.path.getmtime(env.PO_CHURN_SRC):
        return built
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not cc:
        pytest.fail("no C compiler to build tests/soak/po-churn "
                    "(apt-get install build-essential)", pytrace=False)
    out = str(tmp_path_factory.mktemp("churn") / "po-churn")
    r = subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", out,
                        env.PO_CHURN_SRC], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("building po-churn failed:\n%s" % r.stderr, pytrace=False)
    return out
