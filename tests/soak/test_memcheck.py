"""The churn soak, shorter, with collectd under valgrind memcheck (issue 5,
item 2): 0 errors and 0 bytes definitely or indirectly lost in our code.

collectd runs as `valgrind --leak-check=full ... /usr/sbin/collectd -f` at
Interval 0.5 (memcheck is slow) for MEMCHECK_SECONDS (default 30) of the same
churn. collectd and its libraries have findings of their own; an error or
leak is ours when a frame of its stack is in portowner.so or in one of our
sources (plugin/*.c). valgrind's XML report is parsed for that.
"""
import glob
import os
import shutil
import xml.etree.ElementTree as ET

import pytest

from lib import collectd, env, waits

from .churn import Soak

pytestmark = [
    pytest.mark.requires_root("the soak runs collectd's exec plugin, which runs "
                              "the notification recorder as nobody"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec"),
    pytest.mark.requires_build("portowner.so", "po-listen"),
]

SECONDS = float(os.environ.get("MEMCHECK_SECONDS", "30"))
FORKS = int(os.environ.get("MEMCHECK_FORKS", "200"))
VALGRIND = shutil.which("valgrind")
ERROR_EXIT = 97
OURS_SOURCES = {os.path.basename(p) for p in
                glob.glob(os.path.join(env.SRCDIR, "plugin", "*.c"))}


def _ours(frame):
    obj = frame.findtext("obj") or ""
    src = frame.findtext("file") or ""
    return os.path.basename(obj) == "portowner.so" or src in OURS_SOURCES


def _describe(err):
    what = err.findtext("what") or err.findtext("xwhat/text") or ""
    frames = ["%s (%s:%s) [%s]" % (f.findtext("fn"), f.findtext("file"),
                                   f.findtext("line"),
                                   os.path.basename(f.findtext("obj") or ""))
              for f in err.findall("stack/frame")[:12]]
    return "%s: %s\n      %s" % (err.findtext("kind"), what, "\n      ".join(frames))


def parse_report(path):
    """(all errors, ours) from valgrind's XML; each error element."""
    root = ET.parse(path).getroot()
    states = [s.findtext("state") for s in root.findall("status")]
    assert "FINISHED" in states, "valgrind did not finish its run: %s" % states
    errors = root.findall("error")
    ours = [e for e in errors if any(_ours(f) for f in e.iter("frame"))]
    return errors, ours


def leaked(err):
    return int(err.findtext("xwhat/leakedbytes") or 0)


@pytest.mark.skipif(VALGRIND is None, reason="valgrind not installed "
                    "(apt-get install valgrind)")
def test_memcheck_churn(daemons, churn_bin, monkeypatch, tmp_path):
    xml = str(tmp_path / "memcheck.xml")
    text = str(tmp_path / "memcheck.log")
    wrapper = str(tmp_path / "collectd-under-valgrind")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec %s --tool=memcheck --leak-check=full "
                "--show-leak-kinds=definite,indirect "
                "--errors-for-leak-kinds=definite,indirect "
                "--error-exitcode=%d --child-silent-after-fork=yes "
                "--num-callers=30 --xml=yes --xml-file=%s --log-file=%s "
                "%s \"$@\"\n" % (VALGRIND, ERROR_EXIT, xml, text,
                                   env.COLLECTD))
    os.chmod(wrapper, 0o755)
    monkeypatch.setattr(env, "COLLECTD", wrapper)
    monkeypatch.setattr(waits, "SCALE", max(waits.SCALE, 4.0))  # start-up under valgrind

    soak = Soak(daemons, churn_bin, seconds=SECONDS, interval=0.5,
                forks=FORKS, warmup=min(10.0, SECONDS / 3), down_reads=5,
                up_reads=5)
    try:
        soak.run()
        print(soak.report())
        d = soak.d
        stable = d.notifications(plugin="portowner", plugin_instance="stable")
        assert not stable, "false alerts on the stable port under valgrind:\n  %s" % (
            "\n  ".join(collectd.short(n) for n in stable))
        soak.check_victim()
        rc = d.stop(check=False)
    finally:
        soak.cleanup()

    assert os.path.isfile(xml), "valgrind wrote no report (%s)" % xml
    errors, ours = parse_report(xml)
    ours_leaked = sum(leaked(e) for e in ours)
    all_leaked = sum(leaked(e) for e in errors)
    print("memcheck: collectd exit %s; %d error records in all (%d bytes "
          "definitely/indirectly lost), %d attributed to portowner (%d bytes)"
          % (rc, len(errors), all_leaked, len(ours), ours_leaked))
    for e in errors:
        if e not in ours:
            print("  not ours: " + _describe(e).splitlines()[0])
    assert rc in (0, ERROR_EXIT), (
        "collectd under valgrind exited %s (not 0, not valgrind's error "
        "status %d): a crash?\n%s" % (rc, ERROR_EXIT, d.log_text()[-3000:]))
    assert rc == 0 or errors, "valgrind said errors but reported none"
    assert not ours, "valgrind errors or leaks in portowner:\n  %s" % (
        "\n  ".join(_describe(e) for e in ours))
    d.check_log()
