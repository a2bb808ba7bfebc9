"""Least privilege (issue 5, item 3), with the real collectd daemon and a
real listener owned by root:

- collectd as nobody, no capability: the socket is counted (netlink needs no
  privilege), its owner that cannot be read counts in count-unowned, and one
  warning, once, says what is missing and how to fix it;
- collectd as nobody with exactly the capabilities that
  contrib/systemd/portowner-nonroot.conf grants (parsed from the file, so the two
  cannot drift): owners resolve;
- proc mounted with hidepid=2 (a private mount namespace, ProcRoot pointing
  at it): as nobody the counts stay right and the owner is unowned; as root
  owners resolve.
"""
import json
import os
import shlex
import subprocess

import pytest

from lib import collectd, env, listeners, waits
from lib.collectd import block, portowner_conf

pytestmark = [
    pytest.mark.requires_root("the least-privilege tests start a root-owned "
                              "listener and drop to nobody with setpriv"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv"),
    pytest.mark.requires_build("portowner.so", "portowner-dump", "po-listen"),
]

DROPIN = os.path.join(env.SRCDIR, "contrib", "systemd", "portowner-nonroot.conf")
# The once-only privilege warning: fds denied, or (under hidepid) processes
# hidden.
WARNING_RE = (r"\[warning\] portowner plugin: could not read the open files "
              r"\(/proc/PID/fd\) of")
SETPRIV_NOBODY = ["setpriv", "--reuid", env.NOBODY, "--regid", "nogroup",
                  "--clear-groups"]
CAP_BITS = {"CAP_DAC_READ_SEARCH": 2, "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21}


def dropin_caps():
    """The capabilities the drop-in grants: its uncommented
    AmbientCapabilities= and CapabilityBoundingSet= lines, which must agree."""
    amb, bnd = set(), set()
    with open(DROPIN) as f:
        for line in f:
            line = line.strip()
            for key, into in (("AmbientCapabilities=", amb),
                              ("CapabilityBoundingSet=", bnd)):
                if line.startswith(key):
                    into.update(line[len(key):].split())
    assert amb, "%s grants no AmbientCapabilities" % DROPIN
    assert amb == bnd, ("%s: AmbientCapabilities %s and CapabilityBoundingSet "
                        "%s differ" % (DROPIN, sorted(amb), sorted(bnd)))
    return sorted(amb)


def setpriv_caps(caps):
    """setpriv options that leave exactly caps (CAP_X names) to nobody."""
    if not caps:
        return ["--inh-caps=-all", "--bounding-set=-all"]
    lst = ",".join("+" + c[len("CAP_"):].lower() for c in caps)
    return ["--inh-caps=" + lst, "--ambient-caps=" + lst,
            "--bounding-set=-all," + lst]


def wrapper(tmp_path, caps, hidepid_dir=None, user=True):
    """A script that execs collectd (the same pid) as nobody with caps,
    optionally in a private mount namespace with a hidepid=2 proc mounted
    on hidepid_dir."""
    inner = (SETPRIV_NOBODY + setpriv_caps(caps) if user else []) + [env.COLLECTD]
    run = " ".join(shlex.quote(a) for a in inner) + ' "$@"'
    if hidepid_dir:
        script = "mount -t proc -o hidepid=2 proc %s && exec %s" % (
            shlex.quote(hidepid_dir), run)
        cmd = ('exec unshare -m --propagation private sh -c %s sh "$@"'
               % shlex.quote(script))
    else:
        cmd = "exec " + run
    path = str(tmp_path / "collectd-wrapper")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n%s\n" % cmd)
    os.chmod(path, 0o755)
    return path


def status_of(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def cap_mask(caps):
    return sum(1 << CAP_BITS[c] for c in caps)


def start(d, monkeypatch, wrapper_path, expect_uid=65534):
    monkeypatch.setattr(env, "COLLECTD", wrapper_path)
    d.start()
    st = status_of(d.proc.pid)
    assert st["Uid"].split() == [str(expect_uid)] * 4, (
        "collectd does not run as uid %d: Uid %s" % (expect_uid, st["Uid"]))
    return st


def privilege_warnings(d):
    return d.log_matches(WARNING_RE)


def test_nobody_counts_sockets_names_no_owner(daemons, listen, monkeypatch,
                                              tmp_path):
    l = listen("tcp4:127.0.0.1:%d" % listeners.free_port())
    assert l.user == "root"
    d = daemons(portowner_conf(block("web", Port=l.port)))
    st = start(d, monkeypatch, wrapper(tmp_path, []))
    assert int(st["CapEff"], 16) == 0, "collectd has capabilities: %s" % st["CapEff"]
    waits.wait_read(d, "web", {"count-sockets": 1, "count-unowned": 1,
                               "count-processes": 0}, timeout_s=20)
    said = waits.wait_for(lambda: privilege_warnings(d), 20,
                          "the warning about unreadable /proc/PID/fd",
                          lambda: d.log_lines()[-5:])
    # ...and only once: 20 more reads say nothing more.
    waits.wait_reads(d, collectd.ident("web", "count-sockets"), 20)
    said = privilege_warnings(d)
    assert len(said) == 1, "the warning came %d times:\n%s" % (len(said),
                                                               "\n".join(said))
    msg = said[0]
    for needed in ("/proc/PID/fd", "count as unowned", "CAP_DAC_READ_SEARCH",
                   "CAP_SYS_PTRACE", "root"):
        assert needed in msg, "the warning does not say %r: %s" % (needed, msg)
    assert waits.read(d, "web").values["count-sockets"] == 1
    d.expect_log(WARNING_RE)
    d.stop()


def test_dropin_capabilities_alone_resolve_owners(daemons, listen, monkeypatch,
                                                  tmp_path):
    caps = dropin_caps()
    assert set(caps) == {"CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"}, (
        "the drop-in grants %s; the issue asks for exactly CAP_DAC_READ_SEARCH "
        "and CAP_SYS_PTRACE" % caps)
    l = listen("tcp4:127.0.0.1:%d" % listeners.free_port())
    assert l.user == "root"
    d = daemons(portowner_conf(block("web", Port=l.port)))
    st = start(d, monkeypatch, wrapper(tmp_path, caps))
    assert int(st["CapEff"], 16) == cap_mask(caps), (
        "collectd's effective capabilities are %s, not exactly %s"
        % (st["CapEff"], caps))
    assert int(st["CapBnd"], 16) == cap_mask(caps), st["CapBnd"]
    first = waits.wait_read(d, "web", {"count-sockets": 1, "count-unowned": 0,
                                       "count-processes": 1}, timeout_s=20)
    waits.wait_reads(d, collectd.ident("web", "count-sockets"), 10)
    assert waits.read(d, "web", after=first.time).values["count-unowned"] == 0
    d.stop()  # clean log: no privilege warning (but the environment's own)


# ------------------------------------------------------------- hidepid ----

def run_in_hidepid_ns(pubdir, argv, as_nobody):
    """Runs argv in a private mount namespace where a proc with hidepid=2
    is mounted on pubdir/proc; "{proc}" in argv is that path."""
    procdir = os.path.join(pubdir, "proc")
    os.makedirs(procdir, exist_ok=True)
    argv = [a.replace("{proc}", procdir) for a in argv]
    inner = (SETPRIV_NOBODY + setpriv_caps([]) if as_nobody else []) + argv
    script = ("mount -t proc -o hidepid=2 proc %s && grep -q 'hidepid=' "
              "/proc/self/mountinfo && exec %s"
              % (shlex.quote(procdir), " ".join(shlex.quote(a) for a in inner)))
    return subprocess.run(["unshare", "-m", "--propagation", "private",
                           "sh", "-c", script], capture_output=True, text=True,
                          timeout=waits.timeout(60))


def hidepid_dump(pubdir, port, as_nobody):
    r = run_in_hidepid_ns(pubdir, [env.PORTOWNER_DUMP, "--json", "--port",
                                     str(port), "--proc-root", "{proc}"],
                          as_nobody)
    assert r.returncode == 0, "portowner-dump in the hidepid namespace: exit %d: %s" % (
        r.returncode, r.stderr)
    return json.loads(r.stdout), r.stderr


def test_hidepid_dump_as_nobody_counts_socket_owner_unowned(listen, hidepid):
    l = listen("tcp4:127.0.0.1:%d" % listeners.free_port())
    socks, err = hidepid_dump(hidepid, l.port, as_nobody=True)
    assert [s["inode"] for s in socks] == sorted(l.inodes), socks
    assert socks[0]["owners"] == [], "nobody saw root's process through hidepid=2: %s" % socks
    assert err.count("\n") <= 1, "more than one warning: %r" % err


def test_hidepid_dump_as_root_resolves_owners(listen, hidepid):
    l = listen("tcp4:127.0.0.1:%d" % listeners.free_port())
    socks, err = hidepid_dump(hidepid, l.port, as_nobody=False)
    assert [s["inode"] for s in socks] == sorted(l.inodes), socks
    assert [o["pid"] for o in socks[0]["owners"]] == [l.pid], socks
    assert socks[0]["owners"][0]["user"] == "root"


def test_hidepid_dump_as_nobody_warns(listen, hidepid):
    l = listen("tcp4:127.0.0.1:%d" % listeners.free_port())
    socks, err = hidepid_dump(hidepid, l.port, as_nobody=True)
    assert socks[0]["owners"] == []
    assert "CAP_SYS_PTRACE" in err or "hidepid" in err, (
        "no warning about the owner it could not name: stderr %r" % err)


def hidepid_collectd_as_nobody(daemons, listen, monkeypatch, tmp_path, pubdir):
    """collectd as nobody with ProcRoot on a hidepid=2 proc, root's listener
    counted and unowned; returns (collectd, privilege warnings after 10 more
    reads)."""
    l = listen("tcp4:127.0.0.1:%d" % listeners.free_port())
    procdir = os.path.join(pubdir, "proc")
    os.makedirs(procdir, exist_ok=True)
    d = daemons(portowner_conf(block("web", Port=l.port), ProcRoot=procdir))
    start(d, monkeypatch, wrapper(tmp_path, [], hidepid_dir=procdir))
    first = waits.wait_read(d, "web", {"count-sockets": 1, "count-unowned": 1,
                                       "count-processes": 0}, timeout_s=20)
    waits.wait_reads(d, collectd.ident("web", "count-sockets"), 10)
    assert waits.read(d, "web", after=first.time).values["count-sockets"] == 1
    d.expect_log(WARNING_RE)
    return d, privilege_warnings(d)


def test_hidepid_collectd_as_nobody_counts(daemons, listen, monkeypatch,
                                           tmp_path, hidepid):
    d, said = hidepid_collectd_as_nobody(daemons, listen, monkeypatch,
                                         tmp_path, hidepid)
    assert len(said) <= 1, "the warning came %d times:\n%s" % (
        len(said), "\n".join(said))
    d.stop()


def test_hidepid_collectd_as_nobody_warns_once(daemons, listen, monkeypatch,
                                               tmp_path, hidepid):
    d, said = hidepid_collectd_as_nobody(daemons, listen, monkeypatch,
                                         tmp_path, hidepid)
    assert len(said) == 1, "the warning came %d times:\n%s" % (
        len(said), "\n".join(said))
    d.stop()


@pytest.mark.parametrize("missing", ["CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"])
def test_each_dropin_capability_is_needed(listen, missing):
    """The drop-in grants no capability that is not needed: without either
    one, nobody's portowner-dump names no owner (and says why)."""
    caps = [c for c in dropin_caps() if c != missing]
    assert missing in dropin_caps()
    l = listen("tcp4:127.0.0.1:%d" % listeners.free_port())
    r = subprocess.run(SETPRIV_NOBODY + setpriv_caps(caps) +
                       [env.PORTOWNER_DUMP, "--json", "--port", str(l.port)],
                       capture_output=True, text=True, timeout=waits.timeout(60))
    assert r.returncode == 0, r.stderr
    socks = json.loads(r.stdout)
    assert [s["inode"] for s in socks] == sorted(l.inodes), socks
    assert socks[0]["owners"] == [], (
        "owners resolved without %s: %s" % (missing, socks))
    assert "CAP_DAC_READ_SEARCH" in r.stderr and "CAP_SYS_PTRACE" in r.stderr, (
        "no warning naming the capabilities: %r" % r.stderr)
