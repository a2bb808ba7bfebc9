"""Configuration errors and the shipped example, through `collectd -T`.

`collectd -T -C file` runs config, init and one read and exits 1 on error.
A bad config must stop the plugin from loading (exit 1) with an [error] log
line that names the block and the key (and the bad value, where it has one).
Each bad case is the good base config with one thing broken, and the base
itself must load cleanly, so a failure points at that one thing.
"""
import os
import re

import pytest

from lib import collectd, env, waits
from lib.collectd import Raw, block, portowner_conf

pytestmark = [
    pytest.mark.requires_root("exec runs the notification recorder as nobody"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec"),
    pytest.mark.requires_build("portowner.so"),
]

P = 20022  # never bound: -T only reads, a missing listener is fine


def good_base(**override):
    kw = dict(Port=P, Protocol="tcp", ExpectProcess="sshd", ExpectUser="root",
              Hits=2)
    kw.update(override)
    return kw


# id -> (config body, [regexes that one [error] line must all contain])
# Keys are matched case-sensitively on the message without its
# "portowner plugin: " prefix (so "Port" is not found in "portowner").
BAD = {
    # The list.
    "unknown-key": (portowner_conf(block("bk-unknown", **good_base(Frobnicate=1))),
                    ["bk-unknown", r"\bFrobnicate\b"]),
    "port-0": (portowner_conf(block("bk-port0", **good_base(Port=0))),
               ["bk-port0", r"\bPort\b"]),
    "port-70000": (portowner_conf(block("bk-port70000", **good_base(Port=70000))),
                   ["bk-port70000", r"\bPort\b", "70000"]),
    "unknown-service": (portowner_conf(block("bk-svc", **good_base(Port="po-no-such-svc"))),
                        ["bk-svc", r"\bPort\b", "po-no-such-svc"]),
    # A list: the bad item alone, not the rest of the list after it.
    "unknown-service-in-list": (
        portowner_conf(block("bk-svclist", **good_base(Port="22,po-no-such-svc,80"))),
        ["bk-svclist", r"\bPort\b", r'unknown service name "po-no-such-svc"']),
    "inverted-range": (portowner_conf(block("bk-range", **good_base(Port="90-80"))),
                       ["bk-range", r"\bPort\b", "90-80"]),
    "bad-protocol": (portowner_conf(block("bk-proto", **good_base(Protocol="sctp"))),
                     ["bk-proto", r"\bProtocol\b", "sctp"]),
    "bad-regex": (portowner_conf(block("bk-regex", **good_base(ExpectProcess="/[/"))),
                  ["bk-regex", r"\bExpectProcess\b", re.escape("/[/")]),
    "duplicate-block": (portowner_conf(block("bk-dup", **good_base()),
                                       block("bk-dup", **good_base(Port=P + 1))),
                        ["bk-dup"]),
    "no-port": (portowner_conf(block("bk-noport", **good_base(Port=None))),
                ["bk-noport", r"\bPort\b"]),
    # Beyond the list: what an operator expects of the same rule.
    "unknown-plugin-key": (portowner_conf(block("bk-ok", **good_base()),
                                          Sorce="auto"),
                           [r"\bSorce\b"]),
    "bad-source": (portowner_conf(block("bk-ok", **good_base()), Source="kernel"),
                   [r"\bSource\b", "kernel"]),
    "bad-address": (portowner_conf(block("bk-addr", **good_base(Address="300.1.2.3"))),
                    ["bk-addr", r"\bAddress\b", re.escape("300.1.2.3")]),
    "hits-0": (portowner_conf(block("bk-hits", **good_base(Hits=0))),
               ["bk-hits", r"\bHits\b"]),
    "owner-change-hits-0": (portowner_conf(block("bk-och", **good_base(OwnerChangeHits=0))),
                            ["bk-och", r"\bOwnerChangeHits\b"]),
    "expect-process-missing-path": (
        portowner_conf(block("bk-path", **good_base(ExpectProcess="/po-no-such/bin/srv"))),
        ["bk-path", r"\bExpectProcess\b", re.escape("/po-no-such/bin/srv"),
         "No such file or directory"]),
    "full-scan-interval-negative": (portowner_conf(block("bk-ok", **good_base()),
                                                  FullScanInterval=-1),
                                   [r"\bFullScanInterval\b", "-1"]),
    "resolver-unknown": (portowner_conf(block("bk-ok", **good_base()),
                                        Resolver="kernel"),
                         [r"\bResolver\b", "kernel"]),
    "report-self-not-boolean": (portowner_conf(block("bk-ok", **good_base()),
                                               ReportSelf="maybe"),
                                [r"\bReportSelf\b"]),
    "block-named-self": (portowner_conf(block("self", **good_base())),
                         [r'"self"', "reserved|own metrics"]),
    "port-not-a-number": (portowner_conf(block("bk-port-nan", **good_base(Port=Raw("true")))),
                          ["bk-port-nan", r"\bPort\b"]),
}


def test_good_base_loads(work):
    body = portowner_conf(block("bk-ok", **good_base()),
                          block("bk-ok2", **good_base(Port=[P, "8000-8099", "ssh"],
                                                      Protocol=["tcp4", "udp6"],
                                                      Address=["0.0.0.0", "::"])))
    rc, lines = collectd.collectd_test_config(work, body)
    assert rc == 0, "\n".join(lines)
    assert collectd.unexpected_log_lines(lines, collectd.TEST_MODE_EXPECTED) == [], "\n".join(lines)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_an_error_naming_the_key(work, case):
    body, must = BAD[case]
    rc, lines = collectd.collectd_test_config(work, body)
    log = "\n".join(lines)
    assert rc == 1, "collectd -T exited %d, not 1:\n%s" % (rc, log)
    hits = []
    for line in lines:
        msg = collectd.strip_log_prefix(line)
        msg = re.sub(r"^portowner plugin:\s*", "", msg)
        if all(re.search(m, msg) for m in must):
            hits.append(line)
    assert hits, "no log line names %s:\n%s" % (must, log)
    assert any("[error]" in h for h in hits), (
        "the line naming %s is not an [error]:\n%s" % (must, "\n".join(hits)))
    assert any("portowner plugin: " in h for h in hits), (
        "no \"portowner plugin: \" prefix:\n%s" % "\n".join(hits))


def test_contrib_example_loads(work):
    """contrib/portowner.conf, verbatim, loads with collectd -T."""
    assert os.path.isfile(env.CONTRIB_CONF), env.CONTRIB_CONF
    rc, lines = collectd.collectd_test_config(work, 'Include %s\n' % collectd.q(env.CONTRIB_CONF))
    assert rc == 0, "\n".join(lines)
    assert collectd.unexpected_log_lines(lines, collectd.TEST_MODE_EXPECTED) == [], "\n".join(lines)


def test_contrib_example_runs(daemon):
    """...and in the running daemon it reports every block's values."""
    d = daemon('Include %s\n' % collectd.q(env.CONTRIB_CONF)).start()
    with open(env.CONTRIB_CONF) as f:
        text = f.read()
    blocks = re.findall(r'^\s*<Port\s+"([^"]+)"\s*>(.*?)</Port>', text,
                        re.M | re.S)
    assert blocks, "no <Port> block in %s" % env.CONTRIB_CONF
    for name, body in blocks:
        protos = re.findall(r'^\s*Protocol\s+(.*)$', body, re.M)
        udp_only = protos and all("udp" in p for p in protos[0].split())
        # The accept queue is TCP's: a UDP-only block may leave it out.
        wanted = [v for v in collectd.VALUE_NAMES
                  if not (udp_only and v.startswith("queue_length"))]
        # Every value of one read of the block.
        waits.read(d, name, names=wanted)
    d.stop()
