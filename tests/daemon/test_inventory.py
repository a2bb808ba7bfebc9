"""<Inventory> blocks (issue 13) under the real collectd daemon, with real
listeners (tests/po-listen) as root and as nobody.

Each inventory selects only the test's own ports, so that the host's other
listeners (and other tests') cannot reach it. What a user sees is asserted:
the notification's severity, plugin instance, type instance and message,
and how many came; the values count-listeners and count-undeclared.
"""
import json
import os
import re
import socket

import pytest

from lib import collectd, env, listeners, waits
from lib.cgroups import cgroups, token  # noqa: F401 (a fixture)
from lib.collectd import block, ident, portowner_conf
from lib.dump import run_dump
from lib.servers import serve  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.requires_root("exec runs the notification recorder as "
                              "nobody; po-listen --user nobody"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec"),
    pytest.mark.requires_build("portowner.so", "po-listen"),
]

INV_VALUES = ["count-listeners", "count-undeclared"]


def inventory(name, **keys):
    """An <Inventory "name"> block: keys as block() takes them; Allow and
    AllowUnit are lists of lines, each a value or a list of values."""
    lines = ["  <Inventory %s>" % collectd.q(name)]
    for k, v in keys.items():
        rows = v if k in ("Allow", "AllowUnit") else [v]
        for row in rows:
            lines.append("    %s %s" % (k, collectd._value(row)))
    lines.append("  </Inventory>")
    return "\n".join(lines)


def own(d, name, **match):
    return d.notifications(plugin="portowner", plugin_instance=name, **match)


def summary(ns):
    return [(n["severity"], n["type_instance"], n["message"]) for n in ns]


def inv_read(d, name, expected, after=None, timeout_s=10):
    return waits.wait_read(d, name, expected, after=after, names=INV_VALUES,
                           timeout_s=timeout_s)


def quiet_for(d, name, reads=3):
    sid = ident(name, "count-listeners")
    waits.wait_reads(d, sid, reads)
    waits.sync_notifications(d, reads_of=sid)


def tcp4(port):
    return "tcp4:127.0.0.1:%d" % port


def endpoint_instance(kind, port, prog, user):
    return "%s-tcp4-127.0.0.1-%d-%s-%s" % (kind, port, prog.replace("-", "_"),
                                          user)


def test_undeclared_listener_warns_after_hits_and_ends(daemon, serve):
    """An allowed listener (root's po-listen on its port) and an ephemeral
    UDP socket say nothing; nobody's listener on another port is one WARNING
    after Hits (3) reads, naming it, and one OKAY of the same identifier when
    it stops."""
    allowed, intruder = listeners.free_ports(2)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))  # the kernel picks it in the ephemeral range
    try:
        eph = udp.getsockname()[1]
        a = serve(tcp4(allowed))
        d = daemon(portowner_conf(inventory(
            "host", Protocol=["tcp", "udp"], Port=[allowed, intruder, eph],
            Allow=[["po-listen", "root", allowed]], Hits=3))).start()
        first = inv_read(d, "host", {"count-listeners": 1,
                                     "count-undeclared": 0})
        quiet_for(d, "host")
        assert own(d, "host") == [], summary(d.notifications())

        bad = serve(tcp4(intruder), user=env.NOBODY)
        w = waits.wait_notification(d, plugin="portowner",
                                    plugin_instance="host", severity="WARNING")
        inst = endpoint_instance("undeclared", intruder, "po-listen", "nobody")
        msg = ("tcp 127.0.0.1:%d (host) is listening and was not declared; "
               "held by po-listen[%d] nobody" % (intruder, bad.pid))
        assert (w["type_instance"], w["message"]) == (inst, msg), summary([w])
        assert w["type"] == "count"
        assert w["meta"].get("event") == "undeclared", w["raw"]
        assert w["meta"].get("program") == "po-listen", w["raw"]
        # It came after Hits reads that saw it: the csv has them.
        seen = [t for t, v in d.csv_rows(ident("host", "count-undeclared"))
                if v["value"] == 1 and t > first.time]
        assert len(seen) >= 3, seen

        bad.stop()
        ok = waits.wait_notification(d, plugin="portowner",
                                     plugin_instance="host", severity="OKAY")
        assert ok["type_instance"] == inst, summary([ok])
        assert ok["message"] == ("tcp 127.0.0.1:%d (host) stopped listening "
                                 "(it was not declared)" % intruder)
        inv_read(d, "host", {"count-listeners": 1, "count-undeclared": 0},
                 after=ok["time"])
        quiet_for(d, "host")
        assert [n["severity"] for n in own(d, "host")] == ["WARNING", "OKAY"], \
            summary(own(d, "host"))
        assert a.running()
        d.stop()
    finally:
        udp.close()


def test_short_lived_listener_follows_hits(daemon, serve):
    """A listener that the reads saw fewer than Hits times in a row says
    nothing; the test counts those reads (csv) and asserts what the rule
    says for that count, so the outcome never rests on timing."""
    port = listeners.free_port()
    hits = 10
    d = daemon(portowner_conf(inventory("brief", Port=port,
                                        Hits=hits))).start()
    first = inv_read(d, "brief", {"count-listeners": 0})
    s = serve(tcp4(port), user=env.NOBODY)
    r = inv_read(d, "brief", {"count-undeclared": 1}, after=first.time)
    s.stop()
    inv_read(d, "brief", {"count-listeners": 0}, after=r.time)
    quiet_for(d, "brief")
    seen = [t for t, v in d.csv_rows(ident("brief", "count-undeclared"))
            if v["value"] == 1]
    warnings = own(d, "brief", severity="WARNING")
    if len(seen) < hits:
        assert warnings == [], (len(seen), summary(warnings))
    else:  # the machine stalled for Hits reads: then it must have warned
        assert len(warnings) == 1, (len(seen), summary(warnings))
    d.stop()


def test_learned_listener_gone_and_back(daemon, serve):
    """Learn: the listeners of the first read are known. One that stops for
    Hits (2) reads is one WARNING "is no longer listening", and one OKAY
    when it is back (another pid: no pid in the key); a listener that
    appears later is not learned."""
    known, late = listeners.free_ports(2)
    s = serve(tcp4(known))
    d = daemon(portowner_conf(inventory("learn", Port=[known, late],
                                        Learn=True, Hits=2))).start()
    inv_read(d, "learn", {"count-listeners": 1, "count-undeclared": 0})
    quiet_for(d, "learn")
    assert own(d, "learn") == []

    s.stop()
    g = waits.wait_notification(d, plugin="portowner", plugin_instance="learn",
                                severity="WARNING")
    inst = endpoint_instance("gone", known, "po-listen", "root")
    assert (g["type_instance"], g["message"]) == (
        inst, "tcp 127.0.0.1:%d (learn) is no longer listening" % known)
    s2 = serve(tcp4(known))
    ok = waits.wait_notification(d, plugin="portowner",
                                 plugin_instance="learn", severity="OKAY")
    assert (ok["type_instance"], ok["message"]) == (
        inst, "tcp 127.0.0.1:%d (learn) is listening again; held by "
              "po-listen[%d] root" % (known, s2.pid))

    n = serve(tcp4(late), user=env.NOBODY)
    w = waits.wait_notification(d, plugin="portowner", plugin_instance="learn",
                                severity="WARNING", since=ok["time"],
                                message="not declared")
    assert w["type_instance"] == endpoint_instance("undeclared", late,
                                                   "po-listen", "nobody")
    assert str(n.pid) in w["message"]
    quiet_for(d, "learn")
    assert [n["severity"] for n in own(d, "learn")] == [
        "WARNING", "OKAY", "WARNING"], summary(own(d, "learn"))
    d.stop()


def test_learned_set_survives_a_restart(daemon, serve, work):
    """StateFile: after a restart of collectd, what was learned stays known
    and nothing more is learned (a listener started while collectd was
    down is undeclared); an undeclared listener already reported is not
    reported again."""
    known, intruder, later = listeners.free_ports(3)
    state = os.path.join(work.sub("state"), "portowner.json")
    s = serve(tcp4(known))
    conf = portowner_conf(inventory("inv", Port=[known, intruder, later],
                                    Learn=True), StateFile=state)
    d = daemon(conf).start()
    inv_read(d, "inv", {"count-listeners": 1, "count-undeclared": 0})
    bad = serve(tcp4(intruder), user=env.NOBODY)
    w = waits.wait_notification(d, plugin="portowner", plugin_instance="inv",
                                severity="WARNING")
    assert str(bad.pid) in w["message"], summary([w])
    d.stop()  # saves the state

    late = serve(tcp4(later), user=env.NOBODY)  # while collectd is down
    d.start()
    w2 = waits.wait_notification(d, plugin="portowner", plugin_instance="inv",
                                 severity="WARNING", since=w["time"] + 0.001)
    assert w2["type_instance"] == endpoint_instance("undeclared", later,
                                                    "po-listen", "nobody")
    assert str(late.pid) in w2["message"]
    inv_read(d, "inv", {"count-listeners": 3, "count-undeclared": 2})
    quiet_for(d, "inv")
    # One WARNING for the intruder in all (none again after the restart).
    assert [n["type_instance"] for n in own(d, "inv")] == [
        endpoint_instance("undeclared", intruder, "po-listen", "nobody"),
        endpoint_instance("undeclared", later, "po-listen", "nobody")], \
        summary(own(d, "inv"))
    # The learned one is still known: its loss is "no longer listening".
    s.stop()
    g = waits.wait_notification(d, plugin="portowner", plugin_instance="inv",
                                severity="WARNING", message="no longer")
    assert g["type_instance"] == endpoint_instance("gone", known, "po-listen",
                                                   "root")
    d.stop()


P = 20023  # never bound: -T only reads

BAD = {
    "unknown-key": (inventory("inv-k", Port=P, Frobnicate=1),
                    ["inv-k", r"\bFrobnicate\b"]),
    "allow-bad-port": (inventory("inv-p", Allow=[["sshd", "root", 70000]]),
                       ["inv-p", r"\bAllow\b", "70000"]),
    "allow-unknown-service-in-list": (
        inventory("inv-sl", Allow=[["sshd", "root", "22,po-no-such-svc,80"]]),
        ["inv-sl", r"\bAllow\b", r'unknown service name "po-no-such-svc"']),
    "allow-path": (inventory("inv-path", Allow=[["/usr/sbin/sshd", "root"]]),
                   ["inv-path", r"\bAllow\b", "executable's name"]),
    "allow-one-value": (inventory("inv-one", Allow=[["sshd"]]),
                        ["inv-one", r"\bAllow\b"]),
    "allow-unit-empty": (inventory("inv-u", AllowUnit=[""]),
                         ["inv-u", r"\bAllowUnit\b", "glob"]),
    "allow-unit-number": (inventory("inv-un", AllowUnit=[5]),
                          ["inv-un", r"\bAllowUnit\b", r"\b5\b"]),
    "hits-0": (inventory("inv-h", Hits=0), ["inv-h", r"\bHits\b"]),
    "learn-not-boolean": (inventory("inv-l", Learn="maybe"),
                          ["inv-l", r"\bLearn\b"]),
    "bad-protocol": (inventory("inv-pr", Protocol="sctp"),
                     ["inv-pr", r"\bProtocol\b", "sctp"]),
    "same-name-as-port-block": (
        block("both", Port=P) + "\n" + inventory("both", Port=P),
        ["both", "<Port> block"]),
    "named-self": (inventory("self"), [r'"self"', "own metrics"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_inventory_config_is_an_error(work, case):
    body, must = BAD[case]
    rc, lines = collectd.collectd_test_config(work, portowner_conf(body))
    log = "\n".join(lines)
    assert rc == 1, "collectd -T exited %d, not 1:\n%s" % (rc, log)
    hits = [ln for ln in lines if "[error]" in ln and "portowner plugin: " in ln
            and all(re.search(m, re.sub(r"^.*portowner plugin:\s*", "", ln))
                    for m in must)]
    assert hits, "no [error] line names %s:\n%s" % (must, log)


def test_good_inventory_config_loads(work):
    body = portowner_conf(
        block("web", Port=P),
        inventory("host", Protocol=["tcp", "udp"], Port=["1-1023", P],
                  Allow=[["sshd", "root", 22], ["nginx", "*", 80, 443],
                         ["*", 0]],
                  AllowUnit=[["sshd.service", "docker:*"], "app@*.service"],
                  Learn=True, Hits=3, NotifyGone=False,
                  IgnoreEphemeral=True))
    rc, lines = collectd.collectd_test_config(work, body)
    assert rc == 0, "\n".join(lines)
    assert collectd.unexpected_log_lines(
        lines, collectd.TEST_MODE_EXPECTED) == [], "\n".join(lines)


def test_allow_unit_declares_by_the_owners_unit(daemon, serve, cgroups):
    """AllowUnit (globs, several values and lines): nobody's listener in a
    real cgroup named like a matching unit says nothing; another one in a
    unit that matches no glob is one WARNING; moved into a matching unit,
    its OKAY. FullScanInterval 0: every read reads the owners' cgroups
    again, so a move shows at the next read."""
    t = token()
    inside, outside = listeners.free_ports(2)
    a = serve(tcp4(inside), user=env.NOBODY)
    b = serve(tcp4(outside), user=env.NOBODY)
    cgroups.move(a.pid, f"/po{t}.slice/postgresql@{t}-main.service")
    cgroups.move(b.pid, f"/po{t}.slice/other{t}.service")
    d = daemon(portowner_conf(inventory(
        "units", Port=[inside, outside],
        AllowUnit=[["nginx.service", "postgresql@*.service"],
                   f"web{t}.service"]), FullScanInterval=0)).start()
    w = waits.wait_notification(d, plugin="portowner",
                                plugin_instance="units", severity="WARNING")
    assert w["type_instance"] == endpoint_instance(
        "undeclared", outside, "po-listen", "nobody"), summary([w])
    inv_read(d, "units", {"count-listeners": 2, "count-undeclared": 1},
             after=w["time"])
    quiet_for(d, "units")
    assert len(own(d, "units")) == 1, summary(own(d, "units"))

    cgroups.move(b.pid, f"/po{t}.slice/web{t}.service")
    ok = waits.wait_notification(d, plugin="portowner",
                                 plugin_instance="units", severity="OKAY")
    assert ok["type_instance"] == w["type_instance"], summary([ok])
    inv_read(d, "units", {"count-listeners": 2, "count-undeclared": 0},
             after=ok["time"])
    quiet_for(d, "units")
    assert [n["severity"] for n in own(d, "units")] == ["WARNING", "OKAY"], \
        summary(own(d, "units"))
    d.stop()


def test_dump_undeclared_agrees_with_the_daemon(daemon, serve):
    """portowner-dump --undeclared on the very config file the daemon reads
    prints one line per undeclared endpoint, the daemon's WARNING message
    word for word; --json the same endpoint with its owner; Hits is said
    not to apply."""
    allowed, intruder = listeners.free_ports(2)
    serve(tcp4(allowed))
    bad = serve(tcp4(intruder), user=env.NOBODY)
    d = daemon(portowner_conf(inventory(
        "agree", Port=[allowed, intruder],
        Allow=[["po-listen", "root", allowed]], Hits=2))).start()
    w = waits.wait_notification(d, plugin="portowner",
                                plugin_instance="agree", severity="WARNING")
    r = run_dump("--undeclared", d.conf)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [w["message"]], (r.stdout, summary([w]))
    assert re.search(r'line \d+: <Inventory "agree">: Learn and Hits do not '
                     r'apply', r.stderr), r.stderr
    r = run_dump("--undeclared", d.conf, "--json", check=True)
    got = [(e["inventory"], e["endpoint"], e["program"], e["user"],
            [o["pid"] for o in e["owners"]]) for e in json.loads(r.stdout)]
    assert got == [("agree", "tcp 127.0.0.1:%d" % intruder, "po-listen",
                    "nobody", [bad.pid])], r.stdout
    d.stop()


def test_dump_undeclared_bad_config(work):
    """A config it cannot use: exit 2, the file and line named; Include is
    said not to be followed; a bad <Inventory> block is skipped and the
    others still printed."""
    path = work.file("bad.conf")
    with open(path, "w") as f:
        f.write('Include "/etc/collectd.d"\n<Plugin portowner>\n'
                '  <Inventory "x">\n    Port 20023\n  </Inventory>\n'
                '  <Inventory "y">\n    Allow "sshd"\n  </Inventory>\n'
                '</Plugin>\n')
    r = run_dump("--undeclared", path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "%s: line 1: Include is not followed" % path in r.stderr, r.stderr
    assert re.search(r'%s: line 7: <Inventory "y"> Allow: needs a program.*'
                     r'\(block skipped\)' % re.escape(path), r.stderr), r.stderr
    assert r.stdout == ""  # nothing listens on 20023
    with open(path, "w") as f:
        f.write('<Plugin portowner>\n  <Inventory "x">\n    Port 1\n')
    r = run_dump("--undeclared", path)
    assert r.returncode == 2 and r.stdout == "", r
    assert "%s: line 4: <Inventory> (line 2) is not closed" % path in \
        r.stderr, r.stderr
    r = run_dump("--undeclared", work.file("missing.conf"))
    assert r.returncode == 2 and "missing.conf: No such file" in r.stderr, \
        r.stderr
