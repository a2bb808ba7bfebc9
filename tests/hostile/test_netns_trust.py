"""Issue 11, AllNamespaces and trust, with the real collectd daemon.

The attack: a user (nobody) makes a network namespace of its own with a user
namespace of its own (`unshare -rn`: no privilege needed) and listens there
on the watched port; then the host's server dies. Before, with AllNamespaces
true, the user's listener met the requirement: no "lost its listener". Now
AllNamespaces true (which is "trusted") counts only namespaces owned by the
initial user namespace: the FAILURE comes; "all" keeps the old behaviour. A
namespace root made (`ip netns add`) is trusted and still serves a watch.

Run as root: /usr/bin/python3 -m pytest tests/hostile/test_netns_trust.py
"""
import os
import pwd
import secrets
import subprocess

import pytest

from lib import collectd, dump, env, listeners, waits
from lib.collectd import Raw, block, ident, portowner_conf

pytestmark = [
    pytest.mark.requires_root("ip netns add, setpriv to nobody, and exec "
                              "runs the notification recorder as nobody"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec"),
    pytest.mark.requires_build("portowner.so", "portowner-dump", "po-listen"),
]

NOBODY_UID = pwd.getpwnam(env.NOBODY).pw_uid


class RootlessListener(listeners.Listener):
    """po-listen run as nobody in a user and network namespace of its own
    (`setpriv --reuid nobody unshare -rn`), as any user can make one."""

    def __init__(self, *specs, logdir=None):
        env.require_file(env.PO_LISTEN, "tests/po-listen")
        self.specs = specs
        self.netns = "rootless"  # its sockets are not in our /proc/net
        nobody = pwd.getpwnam(env.NOBODY)
        self.args = ["setpriv", "--reuid=%d" % nobody.pw_uid,
                     "--regid=%d" % nobody.pw_gid, "--clear-groups",
                     "unshare", "--user", "--map-root-user", "--net",
                     env.PO_LISTEN] + list(specs)
        self._start(self.args, logdir)


@pytest.fixture
def rootless(tmp_path):
    made = []

    def make(*specs):
        probe = subprocess.run(
            ["setpriv", "--reuid=%d" % NOBODY_UID, "--clear-groups",
             "unshare", "-rn", "true"], capture_output=True, text=True,
            timeout=waits.timeout(10))
        if probe.returncode != 0:
            pytest.skip("nobody cannot make a user namespace here: %s"
                        % probe.stderr.strip())
        l = RootlessListener(*specs, logdir=str(tmp_path))
        made.append(l)
        return l

    yield make
    for l in reversed(made):
        l.cleanup()


@pytest.fixture
def root_netns():
    """A network namespace root made (ip netns add), lo up; deleted after."""
    name = "po-trust-%d-%s" % (os.getpid(), secrets.token_hex(4))
    subprocess.run(["ip", "netns", "add", name], check=True,
                   timeout=waits.timeout(10))
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"],
                       check=True, timeout=waits.timeout(10))
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=waits.timeout(10))


def netns_of(pid):
    return os.stat("/proc/%d/ns/net" % pid).st_ino


def listener_events(d, name):
    return [n for n in d.notifications(plugin="portowner", plugin_instance=name)
            if n["type_instance"].startswith("listener-")]


# What each block's AllNamespaces is, and whether nobody's namespace counts.
BLOCKS = {
    "ns-off": (None, False),          # the default: our namespace only
    "ns-true": (Raw("true"), False),  # true is "trusted"
    "ns-trusted": ("trusted", False),
    "ns-all": ("all", True),          # every namespace: today's behaviour
}


def test_rootless_namespace_does_not_keep_a_watch(daemons, listen, rootless,
                                                  root_netns):
    p, q = listeners.free_ports(2)
    host = listen("tcp4:127.0.0.1:%d" % p, comm="sshd")
    theirs = rootless("tcp4:0.0.0.0:%d" % p)
    trusted = listen("tcp4:0.0.0.0:%d" % q, netns=root_netns)
    (their_sock,) = theirs.socks
    assert listeners.proc_uid(theirs.pid) == NOBODY_UID
    assert netns_of(theirs.pid) != netns_of(os.getpid())

    # The dump: the user's namespace only with --all-namespaces=all, shown
    # as not trusted and made by nobody; root's namespace trusted.
    rows = dump.dump_json("--all-namespaces", "--port", p, "--proto", "tcp4")
    assert [r["inode"] for r in rows] == [host.socks[0].inode], rows
    rows = dump.dump_json("--all-namespaces=all", "--port", p, "--proto", "tcp4")
    by_inode = {r["inode"]: r for r in rows}
    assert set(by_inode) == {host.socks[0].inode, their_sock.inode}, rows
    them = by_inode[their_sock.inode]
    assert (them["netns"], them["netns_trusted"], them["netns_owner_uid"]) == (
        netns_of(theirs.pid), False, NOBODY_UID), them
    assert [o["pid"] for o in them["owners"]] == [theirs.pid], them
    assert by_inode[host.socks[0].inode]["netns_trusted"] is True
    rows = dump.dump_json("--all-namespaces=all", "--source", "proc",
                          "--port", p, "--proto", "tcp4")
    assert {(r["inode"], r["netns_trusted"]) for r in rows} == {
        (host.socks[0].inode, True), (their_sock.inode, False)}, rows
    (row,) = dump.dump_json("--all-namespaces", "--port", q, "--proto", "tcp4")
    assert (row["inode"], row["netns_trusted"], row["netns_owner_uid"]) == (
        trusted.socks[0].inode, True, 0), row
    table = dump.run_dump("--all-namespaces=all", "--port", p, "--proto",
                          "tcp4", check=True).stdout
    owners = {int(ln.split()[0]): ln.split()[1]
              for ln in table.splitlines()[1:]}
    assert owners == {netns_of(os.getpid()): "initial",
                      netns_of(theirs.pid): "uid=%d" % NOBODY_UID}, table

    blocks = [block(name, Port=p, ExpectUser="root", NotifyOwnerChange=False,
                    AllNamespaces=scope)
              for name, (scope, _) in BLOCKS.items()]
    blocks.append(block("root-ns", Port=q, AllNamespaces=Raw("true")))
    d = daemons(portowner_conf(*blocks)).start()
    for name, (_, counts) in BLOCKS.items():
        waits.wait_read(d, name, {"count-sockets": 2 if counts else 1,
                                  "count-processes": 2 if counts else 1})
    # A namespace root made serves AllNamespaces true.
    waits.wait_read(d, "root-ns", {"count-sockets": 1, "count-processes": 1})

    gone = host.stop()
    for name, (_, counts) in BLOCKS.items():
        if not counts:
            waits.wait_notification(d, plugin="portowner", plugin_instance=name,
                                    severity="FAILURE",
                                    message="lost its listener")
    r = waits.wait_read(d, "ns-all", {"count-sockets": 1, "count-processes": 1},
                        after=gone)
    waits.wait_read(d, "ns-trusted", {"count-sockets": 0}, after=r.time)
    waits.sync_notifications(d, reads_of=ident("ns-all", "count-sockets"))

    req = "tcp/%d" % p
    for name, (_, counts) in BLOCKS.items():
        got = [(n["severity"], n["message"]) for n in listener_events(d, name)]
        if counts:
            assert got == [], (name, got)
            # nobody's listener is judged: an unexpected owner, as before.
            assert d.notifications(plugin_instance=name,
                                   type_instance="unexpected_owner",
                                   message=r"\[%d\] nobody" % theirs.pid), name
        else:
            assert got == [("FAILURE", "%s (%s) lost its listener; last held "
                            "by sshd[%d] root (exe po-listen)"
                            % (req, name, host.pid))], (name, got)
            # ... and never sets the owner ExpectUser judges.
            assert d.notifications(plugin_instance=name,
                                   type_instance="unexpected_owner") == [], name
    assert d.notifications(plugin_instance="root-ns") == []
    assert d.log_matches(r"\[notice\] portowner plugin: \d+ network "
                         r"namespaces? (is|are) not owned by the initial "
                         r"user namespace")
    d.stop()


# ------------------------------------------------------- the option itself --

@pytest.fixture
def work(request):
    w = collectd.Workdir()
    yield w
    if not collectd.test_failed(request):
        w.remove()


@pytest.mark.parametrize("form", ['"trusted"', '"all"', "all", '"Trusted"'])
def test_all_namespaces_words_accepted_quietly(work, form):
    rc, lines = collectd.collectd_test_config(
        work, portowner_conf(block("bk-ns", Port=20023,
                                   AllNamespaces=Raw(form))))
    log = "\n".join(lines)
    assert rc == 0, log
    assert collectd.unexpected_log_lines(
        lines, collectd.TEST_MODE_EXPECTED) == [], log


@pytest.mark.parametrize("form,shown", [('"everything"', '"everything"'),
                                        ("1", "1"),
                                        ('"trusted" "all"', '"trusted" "all"')])
def test_bad_all_namespaces_names_block_key_value(work, form, shown):
    rc, lines = collectd.collectd_test_config(
        work, portowner_conf(block("bk-ns", Port=20023,
                                   AllNamespaces=Raw(form))))
    log = "\n".join(lines)
    assert rc == 1, log
    want = ('[error] portowner plugin: <Port "bk-ns"> AllNamespaces %s: needs '
            'one of "trusted", "all", true (the same as "trusted") or false'
            % shown)
    assert [l for l in lines if want in l], log
