"""The harness itself, against the real collectd with stock plugins only.

These prove that what the plugin tests rely on works and can fail: values
through the unix socket and csv, notifications with their meta through exec,
and the log check that fails a test on an unexpected error or warning.
"""
import json
import pwd
import time

import pytest

from . import harness as H


def test_values_listval_and_csv(daemon):
    d = daemon("LoadPlugin load\n").start()
    ident = "po-test/load/load"
    v = H.wait_for(lambda: d.getval(ident), 5, ident)
    assert set(v) == {"shortterm", "midterm", "longterm"}
    t0 = d.last_update(ident)
    t1 = d.wait_reads(ident, 3)
    assert t1 >= t0 + 2.5 * H.INTERVAL
    rows = H.wait_for(lambda: len(d.csv_rows(ident)) >= 3 and d.csv_rows(ident),
                      5, "csv rows of %s" % ident)
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
    n = d.wait_notification(severity="FAILURE", plugin="load")
    assert n["host"] == H.HOST
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
              's:owners_total=1' % (time.time(), H.q(json.dumps(owners))))
    m = d.wait_notification(plugin="po", plugin_instance="web")
    assert m["severity"] == "WARNING" and m["message"] == "owner changed"
    assert json.loads(m["meta"]["owners"]) == owners
    assert m["meta"]["owners_total"] == "1"

    # Each condition once: threshold does not repeat a standing FAILURE.
    d.wait_reads("po-test/load/load", 5)
    d.sync_notifications()
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
    H.wait_for(lambda: d.log_matches("Dataset not found"), 5, "Dataset not found")
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
    assert H.scan_log_lines(lines) == lines[2:]
    assert H.scan_log_lines(lines, [r"could not read the state", "Errors"]) == \
        [lines[3], lines[5]]


def test_collectd_test_mode_exit_status(work):
    rc, _ = H.collectd_test_config(work, "LoadPlugin load\n")
    assert rc == 0
    rc, lines = H.collectd_test_config(
        work, "LoadPlugin load\n<Plugin load>\n  NoSuchKey true\n</Plugin>\n")
    assert rc == 1, lines
