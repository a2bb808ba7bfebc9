"""Boolean options, through `collectd -T` and the running daemon.

Every boolean option of portowner (ReportSelf at the top level;
NotifyMissingAtStart, NotifyOwnerChange, NotifyRestart and AllNamespaces in a
<Port> block)
reads its value with collectd's cf_util_get_boolean, so each takes the same
forms as the rest of collectd, and all of them alike: true/false, yes/no,
on/off unquoted; quoted (or any other case, which collectd's parser reads as
a string) with collectd's deprecation warning, which portowner follows with
a line naming the block. A number (1, 0) and any other word are errors
naming the block, the option and the value.
"""
import re

import pytest

from lib import collectd, listeners, waits
from lib.collectd import Raw, block, ident, portowner_conf

pytestmark = [
    pytest.mark.requires_root("exec runs the notification recorder as nobody"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv", "exec"),
    pytest.mark.requires_build("portowner.so"),
]

P = 20023  # never bound: -T only reads, a missing listener is fine

BLOCK_OPTIONS = ["NotifyMissingAtStart", "NotifyOwnerChange", "NotifyRestart",
                 "AllNamespaces"]
OPTIONS = ["ReportSelf"] + BLOCK_OPTIONS

# Written as collectd's own booleans: no warning.
PLAIN = ["true", "false", "yes", "no", "on", "off"]
# Strings to collectd's parser: accepted with its deprecation warning.
QUOTED = ['"true"', '"yes"', '"on"', '"false"', '"no"', '"off"', "TRUE", "Off"]
# form -> the value as the error line shows it (collectd's parser reads an
# unquoted word as a string).
REJECTED = {"1": "1", "0": "0", '"1"': '"1"', '"maybe"': '"maybe"',
            "maybe": '"maybe"', "true false": "true false"}

DEPRECATED = (r"\[warning\] portowner plugin: Using string value `%s' for "
              r"boolean option `%s' is deprecated")
# collectd -T drops what its write threads still hold, with this warning.
LEFT_IN_QUEUE = collectd.TEST_MODE_EXPECTED


def conf_with(option, form):
    """The config with option written as form (in block "bk-bool" when it
    is a block option)."""
    keys = dict(Port=P)
    if option in BLOCK_OPTIONS:
        keys[option] = Raw(form)
        return portowner_conf(block("bk-bool", **keys))
    return portowner_conf(block("bk-bool", **keys), **{option: Raw(form)})


def messages(lines):
    return [collectd.strip_log_prefix(l) for l in lines]


@pytest.mark.parametrize("form", PLAIN)
@pytest.mark.parametrize("option", OPTIONS)
def test_boolean_accepted_quietly(work, option, form):
    rc, lines = collectd.collectd_test_config(work, conf_with(option, form))
    assert rc == 0, "\n".join(lines)
    assert collectd.unexpected_log_lines(lines, LEFT_IN_QUEUE) == [], \
        "\n".join(lines)


@pytest.mark.parametrize("form", QUOTED)
@pytest.mark.parametrize("option", OPTIONS)
def test_quoted_boolean_accepted_with_collectds_warning(work, option, form):
    rc, lines = collectd.collectd_test_config(work, conf_with(option, form))
    log = "\n".join(lines)
    assert rc == 0, log
    word = form.strip('"')
    deprecated = DEPRECATED % (re.escape(word), option)
    assert [l for l in lines if re.search(deprecated, l)], log
    expected = list(LEFT_IN_QUEUE) + [deprecated]
    if option in BLOCK_OPTIONS:
        # collectd's line does not say which block: ours does.
        where = (r'\[warning\] portowner plugin: <Port "bk-bool"> %s "%s": '
                 % (option, re.escape(word)))
        assert [l for l in lines if re.search(where, l)], log
        expected.append(where)
    assert collectd.unexpected_log_lines(lines, expected) == [], log


@pytest.mark.parametrize("form", list(REJECTED))
@pytest.mark.parametrize("option", OPTIONS)
def test_bad_boolean_is_an_error_naming_block_key_value(work, option, form):
    rc, lines = collectd.collectd_test_config(work, conf_with(option, form))
    log = "\n".join(lines)
    assert rc == 1, "collectd -T exited %d, not 1:\n%s" % (rc, log)
    where = re.escape(('<Port "bk-bool"> ' if option in BLOCK_OPTIONS else "")
                      + "%s %s: " % (option, REJECTED[form]))
    hits = [l for l in lines
            if "[error] portowner plugin: " in l and re.search(where, l)]
    assert hits, "no [error] line names %s:\n%s" % (where, log)


def test_every_form_takes_effect(daemon):
    """The forms are read, not only accepted: a false written as "no",
    off or "false" switches off what true (or "on") leaves on."""
    p = listeners.free_ports(4)
    d = daemon(portowner_conf(
        block("loud", Port=p[0], NotifyMissingAtStart=Raw('"on"')),
        block("quiet-no", Port=p[1], NotifyMissingAtStart=Raw('"no"')),
        block("quiet-off", Port=p[2], NotifyMissingAtStart=Raw("off")),
        block("quiet-false", Port=p[3], NotifyMissingAtStart=Raw('"false"')),
        ReportSelf=Raw('"no"')))
    d.expect_log(DEPRECATED % ("(on|no|false)", "(NotifyMissingAtStart|ReportSelf)"),
                 r'\[warning\] portowner plugin: <Port "(loud|quiet-no|quiet-false)"> '
                 r'NotifyMissingAtStart "(on|no|false)": ')
    d.start()
    waits.wait_notification(d, plugin="portowner", plugin_instance="loud",
                            severity="FAILURE")
    # The first read (the one that notified "loud") is long past.
    waits.wait_reads(d, ident("quiet-off", "count-sockets"), 3)
    for name in ("quiet-no", "quiet-off", "quiet-false"):
        assert d.notifications(plugin="portowner", plugin_instance=name) == []
    assert not [k for k in d.listval() if "/portowner-self/" in k]
    d.stop()
