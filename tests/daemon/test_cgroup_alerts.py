"""The plugin in the real collectd daemon: ExpectUnit and ExpectCgroup, and
the unit in messages and meta. Real listeners (tests/po-listen) moved by
the test into real cgroups it made (lib.cgroups; this machine is hybrid);
FullScanInterval 0 so that every read reads the owners' cgroups again (a
move shows at the next read)."""
import json

import pytest

from lib import listeners, waits
from lib.cgroups import cgroups, token  # noqa: F401 (a fixture)
from lib.collectd import block, portowner_conf

from .test_plugin import (check_notification, own, quiet_for, severities,
                          shorts, tcp4, wait_own)

pytestmark = [
    pytest.mark.requires_root("exec runs the notification recorder as "
                              "nobody; cgroups are made as root"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec",
                                  "threshold"),
    pytest.mark.requires_build("portowner.so", "po-listen"),
]


def conf(*blocks):
    return portowner_conf(*blocks, FullScanInterval=0)


@pytest.mark.parametrize("key, value", [
    ("ExpectUnit", "web{t}.service"),
    ("ExpectCgroup", "/po{t}.slice/web*"),
], ids=["unit", "cgroup"])
def test_expect_unit_or_cgroup_failure_then_okay(daemon, listen, cgroups,
                                                 key, value):
    """The owner runs in another unit: FAILURE unexpected owner, its message
    naming the unit after the user, meta units; moved into the expected
    unit: OKAY."""
    t = token()
    p = listeners.free_port()
    l = listen(tcp4(p), comm="po-unit")
    cgroups.move(l.pid, f"/po{t}.slice/other{t}.service")
    d = daemon(conf(block("u", Port=p, NotifyOwnerChange=False,
                          **{key: value.format(t=t)}))).start()
    f = wait_own(d, "u", "FAILURE")
    owners = check_notification(f, "u", p)
    assert f"po-unit[{l.pid}] root other{t}.service" in f["message"], f["message"]
    assert f["meta"]["units"] == f"other{t}.service", f["meta"]
    assert [o["pid"] for o in owners] == [l.pid]
    quiet_for(d, "u")
    assert severities(d, "u") == ["FAILURE"]

    cgroups.move(l.pid, f"/po{t}.slice/web{t}.service")
    ok = wait_own(d, "u", "OKAY", since=f["time"])
    check_notification(ok, "u", p)
    assert ok["meta"]["units"] == f"web{t}.service", ok["meta"]
    quiet_for(d, "u")
    assert severities(d, "u") == ["FAILURE", "OKAY"], shorts(own(d, "u"))
    d.stop()


def test_expected_unit_is_quiet(daemon, listen, cgroups):
    """ExpectUnit with a glob, several values: an owner in a matching unit
    (inside a user manager: its user unit matches) raises nothing."""
    t = token()
    p = listeners.free_port()
    l = listen(tcp4(p))
    cgroups.move(l.pid, f"/po{t}.slice/user-1000.slice/user@1000.service/"
                 f"app.slice/app{t}.service")
    d = daemon(conf(block("q", Port=p, ExpectUnit=[
        "nginx.service", f"app{t}.*"]))).start()
    waits.wait_read(d, "q", {"count-sockets": 1, "count-processes": 1})
    quiet_for(d, "q")
    assert own(d, "q") == [], shorts(own(d, "q"))
    d.stop()


def test_change_of_unit_is_an_owner_change(daemon, listen, cgroups):
    """The same program and user, moved to another unit: WARNING changed
    owner, naming both units."""
    t = token()
    p = listeners.free_port()
    l = listen(tcp4(p), comm="po-move")
    cgroups.move(l.pid, f"/po{t}.slice/blue{t}.service")
    d = daemon(conf(block("c", Port=p))).start()
    waits.wait_read(d, "c", {"count-sockets": 1, "count-processes": 1})
    quiet_for(d, "c", 3)
    assert own(d, "c") == [], shorts(own(d, "c"))

    cgroups.move(l.pid, f"/po{t}.slice/green{t}.service")
    w = wait_own(d, "c", "WARNING")
    check_notification(w, "c", p)
    msg = w["message"]
    assert "changed owner" in msg, msg
    assert msg.index(f"blue{t}.service") < msg.index(f"green{t}.service"), msg
    assert w["meta"]["units"] == f"green{t}.service", w["meta"]
    assert json.loads(w["meta"]["previous_owners"])[0]["pid"] == l.pid
    quiet_for(d, "c")
    assert severities(d, "c") == ["WARNING"], shorts(own(d, "c"))
    d.stop()
