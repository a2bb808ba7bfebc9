"""Notification handlers get no capability (issue 11), with the real
collectd daemon run under the settings of contrib/systemd/portowner.conf:
root, the drop-in's CapabilityBoundingSet, NoNewPrivileges, no ambient
capabilities. There is no systemd as PID 1 here, so setpriv applies them;
the drop-in is parsed and every line of its [Service] section is turned
into setpriv options (an unknown line fails the test), so the two cannot
drift.

An exec NotificationExec handler as nobody records its /proc/self/status
(Uid, CapPrm, CapEff, CapAmb, CapBnd, NoNewPrivs) and tries to read
/etc/shadow: no capability, the read refused, and the notification arrived,
naming the owner (a listener of nobody's, which only CAP_DAC_READ_SEARCH and
CAP_SYS_PTRACE let root-without-CAP_DAC_OVERRIDE name).
"""
import json
import os
import shlex
import textwrap

import pytest

from lib import collectd, dump, env, listeners, waits
from lib.collectd import block, portowner_conf, q

from .test_privilege import status_of

pytestmark = [
    pytest.mark.requires_root("collectd runs as root with a bounding set and "
                              "its exec handler as nobody"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec"),
    pytest.mark.requires_build("portowner.so", "po-listen"),
]

DROPIN = os.path.join(env.SRCDIR, "contrib", "systemd", "portowner.conf")
CAP_BITS = {"CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7,
            "CAP_DAC_READ_SEARCH": 2, "CAP_DAC_OVERRIDE": 1,
            "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_PTRACE": 19,
            "CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}

HANDLER = textwrap.dedent(r'''
    #!/usr/bin/python3
    """Records who it runs as, its capabilities and whether it can read
    /etc/shadow, with the notification's message, as one JSON line."""
    import errno, fcntl, json, os, sys
    raw = sys.stdin.buffer.read().decode("utf-8", "replace")
    rec = {"message": raw.partition("\n\n")[2].rstrip("\n")}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff",
                     "CapBnd", "CapAmb", "NoNewPrivs"):
                rec[k] = v.strip()
    try:
        with open("/etc/shadow", "rb") as f:
            rec["shadow"] = "read %d bytes" % len(f.read())
    except OSError as e:
        rec["shadow"] = errno.errorcode.get(e.errno, str(e.errno))
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, (json.dumps(rec) + "\n").encode())
    os.close(fd)
''').lstrip()


def dropin_service():
    """The [Service] settings of the drop-in: {key: value} of its
    uncommented lines."""
    out, section = {}, None
    with open(DROPIN) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line
                continue
            assert section == "[Service]", "%s: %r outside [Service]" % (
                DROPIN, line)
            key, sep, value = line.partition("=")
            assert sep, "%s: not a setting: %r" % (DROPIN, line)
            assert key not in out, "%s sets %s twice" % (DROPIN, key)
            out[key] = value
    return out


def setpriv_of(service):
    """setpriv options that apply exactly the drop-in's settings to a root
    process; fails on a setting it does not know how to apply."""
    args = ["--inh-caps=-all", "--ambient-caps=-all"]
    caps = []
    for key, value in service.items():
        if key == "CapabilityBoundingSet":
            caps = value.split()
            for c in caps:
                assert c in CAP_BITS, "unknown capability %s in %s" % (c, DROPIN)
            args.append("--bounding-set=-all" + "".join(
                ",+" + c[len("CAP_"):].lower() for c in caps))
        elif key == "NoNewPrivileges":
            assert value == "yes", "%s: NoNewPrivileges=%s" % (DROPIN, value)
            args.append("--no-new-privs")
        else:
            pytest.fail("%s: %s=%s is not applied by this test (teach "
                        "setpriv_of() how, or drop it)" % (DROPIN, key, value))
    return args, caps


def mask(caps):
    return sum(1 << CAP_BITS[c] for c in caps)


@pytest.fixture
def root_daemons(request):
    """collectd.Collectd in a root-owned Workdir (a root collectd without
    CAP_DAC_OVERRIDE may not write to nobody's), stopped or killed at
    teardown like the root conftest's daemons."""
    made, workdirs = [], []

    def make(body, **kw):
        work = collectd.Workdir()
        workdirs.append(work)
        d = collectd.Collectd(work, body, **kw)
        made.append(d)
        return d

    yield make
    collectd.finish_daemons(made, workdirs, collectd.test_failed(request))


def test_dropin_is_root_without_ambient_capabilities():
    service = dropin_service()
    assert service.get("User", "root") == "root", (
        "%s runs collectd as %s: exec cannot switch to a handler's user "
        "without CAP_SETUID/CAP_SETGID, or the handler keeps the ambient "
        "capabilities" % (DROPIN, service["User"]))
    assert "AmbientCapabilities" not in service, (
        "%s grants ambient capabilities: exec handlers inherit them" % DROPIN)
    assert service.get("NoNewPrivileges") == "yes", service
    caps = set(service["CapabilityBoundingSet"].split())
    assert {"CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE", "CAP_SETUID",
            "CAP_SETGID"} <= caps, caps
    assert "CAP_DAC_OVERRIDE" not in caps and "CAP_SYS_ADMIN" not in caps, caps


def test_handler_as_nobody_runs_without_capabilities(root_daemons, listen,
                                                     monkeypatch):
    args, caps = setpriv_of(dropin_service())
    l = listen("tcp4:127.0.0.1:%d" % listeners.free_port(), user=env.NOBODY)
    assert l.user == env.NOBODY
    d = root_daemons(portowner_conf(block("web", Port=l.port,
                                          ExpectUser="root")))
    handler = d.work.file("handler-caps.py")
    with open(handler, "w") as f:
        f.write(HANDLER)
    os.chmod(handler, 0o755)
    caps_rec = os.path.join(d.work.recdir, "caps.jsonl")
    d.body += ("<Plugin exec>\n  NotificationExec %s %s %s\n</Plugin>\n"
               % (q(env.NOBODY), q(handler), q(caps_rec)))
    wrapper = d.work.file("collectd-wrapper")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec %s \"$@\"\n" % " ".join(
            shlex.quote(a) for a in ["setpriv"] + args + ["--", env.COLLECTD]))
    os.chmod(wrapper, 0o755)
    monkeypatch.setattr(env, "COLLECTD", wrapper)
    d.start()

    # collectd itself: root, exactly the bounding set, no new privileges.
    st = status_of(d.proc.pid)
    assert st["Uid"].split() == ["0"] * 4, st["Uid"]
    assert int(st["CapEff"], 16) == mask(caps), (st["CapEff"], caps)
    assert int(st["CapBnd"], 16) == mask(caps), (st["CapBnd"], caps)
    assert int(st["CapAmb"], 16) == 0, st["CapAmb"]
    assert st["NoNewPrivs"] == "1", st["NoNewPrivs"]

    # portowner names nobody's process (the capabilities are effective)...
    waits.wait_read(d, "web", {"count-sockets": 1, "count-processes": 1,
                               "count-unowned": 0}, timeout_s=20)
    # ...through the BPF walk (Resolver "auto", the default: CAP_BPF and
    # CAP_PERFMON are in the set), when this build and kernel have it.
    if dump.bpf_built():
        g = waits.read(d, "self", names=("count-resolver_bpf",)).values
        assert g["count-resolver_bpf"] == 1, (g, d.log_text())
        assert d.log_matches(r"owner walk: BPF"), d.log_text()
        assert 'Resolver "auto"' not in d.log_text(), d.log_text()
    # ...and the notification that names it reaches both handlers.
    owner = "po-listen[%d] %s" % (l.pid, env.NOBODY)
    n = waits.wait_notification(d, severity="FAILURE", plugin="portowner",
                                type_instance="unexpected_owner")
    assert owner in n["message"], n["message"]
    assert n["handler_uid"] == 65534, n

    def handler_records():
        try:
            with open(caps_rec) as f:
                recs = [json.loads(x) for x in f if x.endswith("\n")]
        except FileNotFoundError:
            return None
        return [r for r in recs if owner in r["message"]]

    (rec,) = waits.wait_for(handler_records, 20,
                            "the capability handler's record of %r" % owner)
    assert rec["Uid"].split() == ["65534"] * 4, rec
    for k in ("CapPrm", "CapEff", "CapAmb", "CapInh"):
        assert int(rec[k], 16) == 0, "the handler has %s %s: %s" % (k, rec[k],
                                                                 rec)
    assert int(rec["CapBnd"], 16) == mask(caps), rec
    assert rec["NoNewPrivs"] == "1", rec
    assert rec["shadow"] == "EACCES", (
        "the handler read /etc/shadow: %s" % rec["shadow"])
    d.stop()
