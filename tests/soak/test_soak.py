"""Churn soak under the real collectd daemon (issue 5, item 2).

collectd with portowner at Interval 0.2 for SOAK_SECONDS (default 120;
`make soak` runs longer) while po-churn forks hundreds of processes a second
and opens and closes listeners on watched and unwatched ports, one stable
listener stays on a watched port, and the test kills a watched listener
every few seconds, leaving it down for 7 intervals each time.

What an operator checks: the daemon never crashed and exits 0 at SIGTERM
with a clean log; no "listener lost" (or any notification) for the stable
port, whose socket count never dipped; one FAILURE and one OKAY per
deliberate down, no more; collectd's RSS is flat after the warm-up.
"""
import os

import pytest

from lib import collectd

from .churn import Soak

pytestmark = [
    pytest.mark.requires_root("the soak runs collectd's exec plugin, which runs "
                              "the notification recorder as nobody"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec"),
    pytest.mark.requires_build("portowner.so", "po-listen"),
]

SECONDS = float(os.environ.get("SOAK_SECONDS", "120"))
WARMUP = float(os.environ.get("SOAK_WARMUP", "20"))
FORKS = int(os.environ.get("SOAK_FORKS", "400"))
RSS_LIMIT_KIB = 1024


def test_soak_churn(daemons, churn_bin):
    assert SECONDS >= WARMUP + 10, "SOAK_SECONDS must exceed the warm-up by 10 s"
    soak = Soak(daemons, churn_bin, seconds=SECONDS, interval=0.2,
                forks=FORKS, warmup=WARMUP)
    try:
        soak.run()
        d = soak.d
        print(soak.report())
        s = soak.churn_stats
        assert s["forks_per_s"] >= 100, "churn too slow to mean anything: %s" % s
        assert s["watched_opens"] > 0 and s["unwatched_opens"] > 0, s

        # The stable port: never lost, never any notification, and its
        # socket count never dipped (every csv row of the run).
        stable = d.notifications(plugin="portowner", plugin_instance="stable")
        assert not stable, "false alerts on the stable port:\n  %s" % (
            "\n  ".join(collectd.short(n) for n in stable))
        rows = d.csv_rows(collectd.ident("stable", "count-sockets"))
        assert len(rows) >= SECONDS / 0.2 / 2, "too few reads: %d" % len(rows)
        dips = [(t, v["value"]) for t, v in rows if v["value"] != 1]
        assert not dips, "stable count-sockets was not 1 at %s" % dips[:10]

        # Every deliberate down: one FAILURE, one OKAY.
        soak.check_victim()

        # The churn was seen (the churn block's sockets came and went).
        churn_rows = d.csv_rows(collectd.ident("churn", "count-sockets"))
        assert len({v["value"] for _, v in churn_rows}) >= 2, \
            "the churn block's socket count never changed"

        # Memory is flat after the warm-up.
        warm, end, peak = soak.rss_growth()
        assert end - warm < RSS_LIMIT_KIB, (
            "collectd's RSS grew by %d KiB after the warm-up (%d -> %d KiB; "
            "samples: %s)" % (end - warm, warm, end, soak.rss[::10]))

        # SIGTERM: exit 0, no unexpected error or warning in the log.
        d.stop()
    finally:
        soak.cleanup()
