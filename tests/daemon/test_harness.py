"""The harness itself, against the real collectd with stock plugins only.

These prove that what the plugin tests rely on works and can fail: values
through the unix socket and csv, notifications with their meta through exec,
and the log check that fails a test on an unexpected error or warning.
"""
import json
import pwd
import time

import pytest

from lib import collectd, waits

pytestmark = [
    pytest.mark.requires_root("exec runs the notification recorder as nobody"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec", "load",
                                  "threshold"),
]


def test_values_listval_and_csv(daemon):
    d = daemon("LoadPlugin load\n").start()
    ident = "po-test/load/load"
    v = waits.wait_for(lambda: d.getval(ident), 5, ident)
    assert set(v) == {"shortterm", "midterm", "longterm"}
    t0 = d.last_update(ident)
    t1 = waits.wait_reads(d, ident, 3)
    assert t1 > t0
    # wait_reads counted reads that happened: the csv has a row for each
    # (3 or more between t0 and t1; more when a poll missed one).
    rows = waits.wait_for(
        lambda: (lambda r: r if any(t >= t1 for t, _ in r) else None)(
            d.csv_rows(ident)), 5, "the csv row of the read at %.3f" % t1)
    assert len([t for t, _ in rows if t0 < t <= t1]) >= 3, (t0, t1, rows)
    times = [t for t, _ in rows]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert d.getval("po-test/load/count-nothing") is None
    d.stop()
    assert d.log_matches(r"Exiting normally")


def test_exec_records_notifications_with_meta(daemon):
    body = "\n".join([
        "LoadPlugin load",
        "LoadPlugin threshold",
        "<Plugin threshold>",
        "  <Plugin load>",
        "    <Type load>",
        '      DataSource "shortterm"',
        "      FailureMax -1",  # always exceeded: one FAILURE, then silence
        "    </Type>",
        "  </Plugin>",
        "</Plugin>", ""])
    d = daemon(body).start()
    n = waits.wait_notification(d, severity="FAILURE", plugin="load")
    assert n["host"] == collectd.HOST
    assert n["type"] == "load"
    assert abs(n["time"] - time.time()) < 30
    assert n["meta"]["DataSource"] == "shortterm"
    assert float(n["meta"]["FailureMax"]) == -1.0
    assert n["handler_uid"] == pwd.getpwnam("nobody").pw_uid

    # String meta survives the trip verbatim, ": " and JSON included: this is
    # the channel that carries the plugin's owners.
    owners = [{"pid": 1311, "comm": "nginx: worker", "exe": "/usr/sbin/nginx",
               "user": "www-data"}]
    d.command('PUTNOTIF severity=warning time=%.3f host=po-test plugin=po '
              'plugin_instance=web message="owner changed" s:owners=%s '
              's:owners_total=1' % (time.time(), collectd.q(json.dumps(owners))))
    m = waits.wait_notification(d, plugin="po", plugin_instance="web")
    assert m["severity"] == "WARNING" and m["message"] == "owner changed"
    assert json.loads(m["meta"]["owners"]) == owners
    assert m["meta"]["owners_total"] == "1"

    # Each condition once: threshold does not repeat a standing FAILURE.
    waits.wait_reads(d, "po-test/load/load", 5)
    waits.sync_notifications(d, reads_of="po-test/load/load")
    assert len(d.notifications(severity="FAILURE", plugin="load")) == 1
    d.stop()


def test_unexpected_warning_fails_and_expected_one_does_not(daemon):
    d = daemon("LoadPlugin load\n", unixsock_group="po-no-such-group").start()
    with pytest.raises(AssertionError, match="No such group"):
        d.stop()
    d.start()
    d.expect_log(r"unixsock plugin: No such group: `po-no-such-group'")
    d.stop()


def test_dataset_not_found_fails(daemon, work):
    types = work.file("types.db")
    with open(types, "w") as f:  # no "load" type: load's values are dropped
        f.write("count value:GAUGE:0:U\n")
    d = daemon("LoadPlugin load\n", types_db=types).start()
    waits.wait_for(lambda: d.log_matches("Dataset not found"), 5, "Dataset not found")
    # plugin_dispatch_values() returned 0 all along: only the log tells.
    with pytest.raises(AssertionError, match="Dataset not found"):
        d.stop()


def test_scan_log_lines():
    lines = [
        "[2026-01-01 00:00:00] [info] plugin_load: plugin \"load\" successfully loaded.",
        "[2026-01-01 00:00:00] [info] Notification: severity = WARNING, host = x, "
        "plugin = portowner, message = error on tcp/80",
        "[2026-01-01 00:00:00] [warning] portowner plugin: could not read the state",
        "[2026-01-01 00:00:00] [error] something",
        "[2026-01-01 00:00:00] [info] Errors: 3",
        "[2026-01-01 00:00:00] [error] plugin_dispatch_values: Dataset not found: x",
    ]
    assert collectd.scan_log_lines(lines) == lines[2:]
    assert collectd.scan_log_lines(lines, [r"could not read the state", "Errors"]) == \
        [lines[3], lines[5]]


def test_collectd_test_mode_exit_status(work):
    rc, _ = collectd.collectd_test_config(work, "LoadPlugin load\n")
    assert rc == 0
    rc, lines = collectd.collectd_test_config(
        work, "LoadPlugin load\n<Plugin load>\n  NoSuchKey true\n</Plugin>\n")
    assert rc == 1, lines


def test_sync_notifications_waits_for_every_handler(daemon):
    """Notifications sent back to back: exec forks a handler for each from a
    thread of its own, so their records come in any order and late; after
    sync_notifications() every one of them is recorded."""
    d = daemon("LoadPlugin load\n").start()
    n = 40
    for i in range(n):
        d.putnotif("warning", "burst %d" % i, plugin="po", plugin_instance="burst")
    waits.sync_notifications(d)
    got = sorted(int(r["message"].split()[1])
                 for r in d.notifications(plugin="po", plugin_instance="burst"))
    assert got == list(range(n)), got
    d.stop()


class FakeCache:
    """A unixsock cache that a read updates between two commands."""

    hostname = "h"

    def __init__(self, script):
        self.script = list(script)  # [(listval dict, getval dict)] per look
        self.look = None

    def listval(self):
        if self.look is None:
            self.look = self.script.pop(0)
            return self.look[0]
        before, self.look = self.look, None
        return before[2]

    def getval(self, identifier):
        v = self.look[1].get(identifier)
        return None if v is None else {"value": v}


def test_visible_reads_keeps_only_values_of_one_read():
    a, b = "h/portowner-w/count-sockets", "h/portowner-w/count-processes"
    # b was updated by the read at 2.0 between the two listings: its value
    # belongs to no read the listings can name, so it is left out.
    fake = FakeCache([({a: 1.0, b: 1.0}, {a: 0, b: 1}, {a: 1.0, b: 2.0})])
    reads = waits.visible_reads(fake, "w", ("count-sockets", "count-processes"))
    assert reads == {1.0: {"count-sockets": 0}}
    assert waits.newest_complete(reads, ("count-sockets", "count-processes")) is None
    fake = FakeCache([({a: 2.0, b: 2.0}, {a: 0, b: 0}, {a: 2.0, b: 2.0})])
    r = waits.wait_read(fake, "w", {"count-sockets": 0},
                        names=("count-sockets", "count-processes"))
    assert (r.time, r.values) == (2.0, {"count-sockets": 0, "count-processes": 0})


def test_logged_notifications_and_their_records(tmp_path):
    log = tmp_path / "collectd.log"
    log.write_text(
        "[2026-01-01 00:00:00] [info] plugin_load: plugin \"exec\" successfully loaded.\n"
        "[2026-01-01 00:00:01] [info] Notification: severity = FAILURE, host = h, "
        "plugin = portowner, plugin_instance = web, type = count, "
        "type_instance = listener, message = tcp/80 (web) lost\n"
        "[2026-01-01 00:00:02] [info] Notification: severity = OKAY, host = h, "
        "plugin = po, message = two\nlines\n"
        "[2026-01-01 00:00:02] [warning] something else\n")
    echoes = waits.logged_notifications(str(log))
    assert len(echoes) == 2 and echoes[1].endswith("message = two\nlines"), echoes
    rec = {"severity": "FAILURE", "host": "h", "plugin": "portowner",
           "plugin_instance": "web", "type": "count", "type_instance": "listener",
           "message": "tcp/80 (web) lost"}
    assert waits.echo_of(rec) == echoes[0]
    assert waits.echo_of({"severity": "OKAY", "host": "h", "plugin": "po",
                          "plugin_instance": None, "type": None,
                          "type_instance": None, "message": "two\nlines"}) == echoes[1]
