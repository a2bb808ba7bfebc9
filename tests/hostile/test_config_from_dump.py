"""contrib/config-from-dump.py on a real process named "/.*/" (issue 11):
the config it writes expects the program by its executable's path (the
"/path" form of ExpectProcess, matched by device and inode), never by the
name, which would be the regular expression .* and accept any program. The
config, loaded in the real collectd, passes that process and reports another
program that also calls itself "/.*/" as an unexpected owner.
"""
import json
import os
import subprocess
import sys

import pytest

from lib import dump, env, listeners, waits
from lib.collectd import ident
from lib.listeners import PyListener

pytestmark = [
    pytest.mark.requires_root("exec runs the notification recorder as nobody"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec"),
    pytest.mark.requires_build("portowner.so", "portowner-dump", "po-listen"),
]

SCRIPT = os.path.join(env.SRCDIR, "contrib", "config-from-dump.py")
NAME = "/.*/"


class RenamedPyListener(PyListener):
    """python3 holding a TCP listener, named NAME with prctl(PR_SET_NAME)."""

    CODE = ("import ctypes\n"
            "ctypes.CDLL(None).prctl(15, %r.encode(), 0, 0, 0)\n" % NAME
            + PyListener.CODE)


def generated(port):
    socks = dump.dump_json("--port", str(port), "--proto", "tcp4")
    r = subprocess.run([sys.executable, SCRIPT, "--plugin-only"],
                       input=json.dumps(socks), text=True,
                       capture_output=True, timeout=waits.timeout(30))
    assert r.returncode == 0, r.stderr
    return socks, r.stdout


def expect_process_values(conf):
    out = []
    for line in conf.splitlines():
        words = line.split(None, 1)
        if words and words[0] == "ExpectProcess":
            out += [v.strip('"') for v in words[1].split()]
    return out


def test_process_named_like_a_regex_is_expected_by_its_exe_path(daemons,
                                                                 listen):
    port = listeners.free_port()
    l = listen("tcp4:127.0.0.1:%d" % port, comm=NAME)
    assert l.comm == NAME, l.comm
    socks, conf = generated(port)
    exe = os.readlink("/proc/%d/exe" % l.pid)
    assert [o["comm"] for s in socks for o in s["owners"]] == [NAME], socks

    values = expect_process_values(conf)
    assert values == [exe], conf
    assert not any(v.startswith("/") and v.endswith("/") for v in values), conf

    block = "tcp-%d" % port
    d = daemons(conf).start()
    waits.wait_read(d, block, {"count-sockets": 1, "count-processes": 1})
    recs = waits.sync_notifications(d, reads_of=ident(block, "count-sockets"))
    assert not [r for r in recs if r.get("type_instance") == "unexpected_owner"], recs

    # Another program with the same name on the port: unexpected.
    l.cleanup()
    waits.wait_read(d, block, {"count-sockets": 0})
    other = RenamedPyListener("127.0.0.1", port)
    try:
        with open("/proc/%d/comm" % other.pid) as f:
            assert f.read().strip() == NAME
        n = waits.wait_notification(d, severity="FAILURE", plugin_instance=block,
                                    type_instance="unexpected_owner")
        assert "%s[%d] root (exe python3" % (NAME, other.pid) in n["message"], n
    finally:
        other.cleanup()
    d.stop()


def test_inventory_block_declares_what_listens_now(listen, tmp_path):
    """--inventory NAME: one Allow per (program, user) with its ports, the
    program the executable's basename (never the process name "/.*/");
    portowner-dump --undeclared on the config written says nothing is
    undeclared, and names a listener started after it."""
    a, b, c, late = listeners.free_ports(4)
    root = listen("tcp4:127.0.0.1:%d" % a, "tcp4:127.0.0.1:%d" % b, comm=NAME)
    nobody = listen("tcp4:127.0.0.1:%d" % c, user=env.NOBODY)
    socks = dump.dump_json("--port", "%d,%d,%d" % (a, b, c), "--proto", "tcp4")
    r = subprocess.run([sys.executable, SCRIPT, "--plugin-only",
                        "--inventory", "now"], input=json.dumps(socks),
                       text=True, capture_output=True,
                       timeout=waits.timeout(30))
    assert r.returncode == 0, r.stderr
    prog = os.path.basename(os.readlink("/proc/%d/exe" % root.pid))
    allows = [ln.strip() for ln in r.stdout.splitlines()
              if ln.strip().startswith("Allow ")]
    assert allows == ['Allow "%s" "nobody" %d' % (prog, c),
                      'Allow "%s" "root" %d %d' % (prog, min(a, b), max(a, b))
                      ], r.stdout
    # Only the test's ports (the host has other listeners).
    conf = r.stdout.replace('<Inventory "now">',
                            '<Inventory "now">\n    Port %d %d %d %d'
                            % (a, b, c, late))
    path = tmp_path / "inventory.conf"
    path.write_text(conf)
    u = dump.run_dump("--undeclared", path)
    assert (u.returncode, u.stdout) == (0, ""), (u.stderr, conf)
    extra = listen("tcp4:127.0.0.1:%d" % late, user=env.NOBODY)
    u = dump.run_dump("--undeclared", path)
    assert u.returncode == 0, u.stderr
    assert u.stdout.splitlines() == [
        "tcp 127.0.0.1:%d (now) is listening and was not declared; held by "
        "%s[%d] nobody" % (late, extra.comm, extra.pid)], u.stdout
