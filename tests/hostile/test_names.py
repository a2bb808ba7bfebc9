"""Hostile process names in the real collectd daemon (issue 11): a process
that names itself (prctl PR_SET_NAME) with an 8-bit CSI, "\\xc2\\x9b2J" (C1
U+009B in UTF-8: "clear the screen" to a terminal that takes C1), or with
U+202E (RIGHT-TO-LEFT OVERRIDE: the rest of the line shows reversed) holds
a watched port and is an unexpected owner. Its name reaches the logfile line
of the notification, what exec's handler reads on stdin (the message and the
owners meta data), and the argv of the program that the shipped handler
(contrib/portowner-notify.sh) runs: `logger`, replaced here by a recorder
found first in PATH. None of them holds the raw character: the message says
"?" for it, the owners JSON \\uXXXX (which reads back as the exact name).
"""
import json
import os
import shutil
import textwrap

import pytest

from lib import env, listeners, waits
from lib.collectd import block, portowner_conf, q

pytestmark = [
    pytest.mark.requires_root("exec runs the handlers as nobody"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec"),
    pytest.mark.requires_build("portowner.so", "po-listen"),
]

NOTIFY_SH = os.path.join(env.SRCDIR, "contrib", "portowner-notify.sh")

# name: (comm, what the message shows for it)
NAMES = {
    "c1-csi": (b"\xc2\x9b2J", "?2J"),
    "rlo": ("evil\u202egnp.sh".encode(), "evil?gnp.sh"),
}

# What no output may hold raw: C1 U+0080-U+009F and the bidi controls and
# line separators, as UTF-8, and the raw bytes of the names above.
FORBIDDEN = [chr(c).encode() for c in range(0x80, 0xA0)] + [
    chr(c).encode() for c in (0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A,
                              0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067,
                              0x2068, 0x2069)]

FAKE_LOGGER = textwrap.dedent(r'''
    #!/usr/bin/python3
    """Stands in for logger(1): appends its argv, as hex bytes, to ARGV_LOG."""
    import fcntl, json, os, sys
    fd = os.open(os.environ["PO_ARGV_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, (json.dumps([os.fsencode(a).hex() for a in sys.argv[1:]]) + "\n").encode())
    os.close(fd)
''').lstrip()


def forbidden_in(data: bytes):
    return [f for f in FORBIDDEN if f in data]


@pytest.mark.parametrize("comm,shown", NAMES.values(), ids=NAMES.keys())
def test_hostile_name_reaches_no_output_raw(daemons, listen, monkeypatch,
                                            comm, shown):
    l = listen("tcp4:127.0.0.1:%d" % listeners.free_port(), comm=comm)
    with open("/proc/%d/comm" % l.pid, "rb") as f:
        assert f.read().rstrip(b"\n") == comm  # the kernel kept every byte

    d = daemons(portowner_conf(block("web", Port=l.port, ExpectUser="nobody")))
    # The shipped handler, its logger a recorder of argv.
    bindir = d.work.sub("bin")
    with open(os.path.join(bindir, "logger"), "w") as f:
        f.write(FAKE_LOGGER)
    os.chmod(os.path.join(bindir, "logger"), 0o755)
    notify = d.work.file("portowner-notify.sh")
    shutil.copyfile(NOTIFY_SH, notify)
    os.chmod(notify, 0o755)
    argv_log = os.path.join(d.work.recdir, "logger-argv.jsonl")
    monkeypatch.setenv("PATH", bindir + ":" + os.environ["PATH"])
    monkeypatch.setenv("PO_ARGV_LOG", argv_log)
    d.body += "<Plugin exec>\n  NotificationExec %s %s\n</Plugin>\n" % (
        q(env.NOBODY), q(notify))
    d.start()

    owner = "%s[%d] root (exe po-listen)" % (shown, l.pid)
    n = waits.wait_notification(d, severity="FAILURE", plugin="portowner",
                                type_instance="unexpected_owner")
    waits.sync_notifications(d)

    # exec's handler input: the message with "?", the owners JSON escaped.
    assert n["message"] == ("tcp/%d (web) is held by an unexpected owner: %s"
                            % (l.port, owner)), n["message"]
    raw = n["raw"].encode()
    assert not forbidden_in(raw), (forbidden_in(raw), n["raw"])
    owners = json.loads(n["meta"]["owners"])
    assert [(o["pid"], o["comm"]) for o in owners] == [
        (l.pid, comm.decode())], owners  # read back: the exact name

    # The logfile: the notification's line names the owner, with "?".
    log = open(d.log, "rb").read()
    assert not forbidden_in(log), forbidden_in(log)
    lines = [x for x in log.split(b"\n") if b"unexpected_owner" in x]
    assert lines and all(owner.encode() in x for x in lines), lines

    # The shipped handler's logger argv.
    def logged():
        try:
            with open(argv_log) as f:
                return [[bytes.fromhex(a) for a in json.loads(x)] for x in f
                        if x.endswith("\n")]
        except FileNotFoundError:
            return None

    calls = waits.wait_for(
        lambda: [c for c in logged() or [] if owner.encode() in b" ".join(c)],
        20, "portowner-notify.sh's logger call naming %r" % owner,
        lambda: logged())
    for call in calls:
        for arg in call:
            assert not forbidden_in(arg), (forbidden_in(arg), call)
    d.stop()
