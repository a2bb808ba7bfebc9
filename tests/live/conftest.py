"""Helpers and fixtures of the live tests: ss, network namespaces. Real
listeners come from the root conftest's listen fixture (lib.listeners),
portowner-dump from lib.dump.
"""

import os
import secrets
import subprocess

import pytest

from lib import waits

COMMAND_TIMEOUT = 60.0  # seconds for ss / ip


@pytest.fixture
def netns():
    """A fresh network namespace (lo up), deleted at teardown."""
    if os.geteuid() != 0:
        pytest.skip("needs root: ip netns add")
    name = f"po-live-{os.getpid()}-{secrets.token_hex(4)}"
    run(["ip", "netns", "add", name], check=True)
    try:
        run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        run(["ip", "netns", "del", name])


def run(argv, check=False):
    # errors="replace": other processes on this machine may have any bytes
    # in their names, and ss prints them.
    res = subprocess.run(
        argv, capture_output=True, text=True, errors="replace",
        timeout=waits.timeout(COMMAND_TIMEOUT)
    )
    if check and res.returncode != 0:
        pytest.fail(
            f"{' '.join(argv)} exited {res.returncode}: {res.stderr.strip()}",
            pytrace=False,
        )
    return res


def run_ss(netns=None):
    """`ss -tulpnHe` (the -e adds each socket's inode and v6only flag)."""
    argv = ["ss", "-tulpnHe"]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns] + argv
    return run(argv, check=True).stdout


def netns_inode(name=None):
    """Inode of a named network namespace, or of our own."""
    path = f"/run/netns/{name}" if name else "/proc/self/ns/net"
    return os.stat(path).st_ino
