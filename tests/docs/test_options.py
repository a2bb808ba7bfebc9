"""One option reference: the option names that the glue (plugin/portowner.c)
accepts, the ones collectd-portowner(5) documents and the ones
contrib/portowner.conf shows (commented or not) are the same set, for the
top level of <Plugin portowner>, for <Port> blocks and for <Inventory>
blocks. An option added to the glue only, documented only or shown only
fails it, naming the option and where it is missing.

The man page also renders without a warning (groff -ww), has the sections
a reader looks for, and every config of its EXAMPLES loads in collectd.
"""
import os
import re
import subprocess

import pytest

from lib import collectd, env

GLUE = os.path.join(env.SRCDIR, "plugin", "portowner.c")
MAN = os.path.join(env.SRCDIR, "contrib", "collectd-portowner.5")
CONF = env.CONTRIB_CONF

# The glue's option tables, by the block they serve.
TABLES = {"global_options": "Plugin", "port_options": "Port",
          "inventory_options": "Inventory"}
# The man page's sections, by the block they document.
SECTIONS = {"GLOBAL OPTIONS": "Plugin", "PORT BLOCK OPTIONS": "Port",
            "INVENTORY BLOCK OPTIONS": "Inventory"}
BLOCKS = ("Port", "Inventory")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def glue_options(text):
    """{block: {option}} from the glue's tables ({"Key", reader} entries of
    global_options[], port_options[], inventory_options[]); every other
    strcasecmp(x->key, "Name") of the file must name a block (Port,
    Inventory) or an option of the tables, else AssertionError: an option
    read outside the tables would escape this check."""
    got = {}
    for table, block in TABLES.items():
        m = re.search(r"\b%s\[\]\s*=\s*\{(.*?)\n\};" % table, text, re.S)
        assert m, "plugin/portowner.c has no %s[] table" % table
        names = re.findall(r'\{\s*"([A-Za-z]+)"\s*,', m.group(1))
        assert names, "no entries in %s[]" % table
        assert len(names) == len(set(names)), "duplicates in %s[]: %s" % (table, names)
        got[block] = set(names)
    known = set(BLOCKS).union(*got.values())
    for name in re.findall(r'strcasecmp\(\s*[\w>.-]+key\s*,\s*"([A-Za-z]+)"\s*\)', text):
        assert name in known, (
            'plugin/portowner.c compares a key with "%s" outside the option '
            "tables (global_options, port_options, inventory_options): "
            "add it to the table of its block" % name)
    return got


def man_options(text):
    """{block: {option}}: the bold name right after each .TP of the
    GLOBAL OPTIONS, PORT BLOCK OPTIONS and INVENTORY BLOCK OPTIONS
    sections."""
    got = {b: set() for b in SECTIONS.values()}
    section = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            title = line[3:].strip().strip('"')
            section = SECTIONS.get(title)
        elif section and line.strip() == ".TP" and i + 1 < len(lines):
            m = re.match(r"\\fB([A-Za-z]+)\\fR", lines[i + 1])
            assert m, "collectd-portowner.5 line %d: a .TP whose tag is not " \
                "\\fBOption\\fR: %r" % (i + 2, lines[i + 1])
            got[section].add(m.group(1))
    for title, block in SECTIONS.items():
        assert got[block], "collectd-portowner.5 has no options under .SH %s" % title
    return got


VALUE = r'(?:"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|yes|no|on|off)'
OPTION_LINE = re.compile(r"^([A-Za-z]+)(?:\s+%s)+\s*(?:#.*)?$" % VALUE)


def conf_options(text):
    """{block: {option}}: the options shown in contrib/portowner.conf,
    commented ("# Hits 1") or not, inside <Plugin portowner>: a line that is
    a name and one or more values (quoted strings, numbers, booleans), by
    the block it is in. Prose comments ("Default 2: ...") are not options."""
    got = {"Plugin": set(), "Port": set(), "Inventory": set()}
    stack = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        while line.startswith("#"):
            line = line[1:].strip()
        tag = re.match(r'^<(/?)([A-Za-z]+)(?:\s+[^>]*)?>', line)
        if tag:
            close, name = tag.groups()
            if close:
                assert stack and stack[-1] == name, \
                    "portowner.conf line %d: </%s> closes %s" % (n, name, stack)
                stack.pop()
            else:
                stack.append(name)
            continue
        if not stack or stack[0] != "Plugin":
            continue
        m = OPTION_LINE.match(line)
        if m:
            block = stack[-1]
            assert block in got, "portowner.conf line %d: unknown block <%s>" % (n, block)
            got[block].add(m.group(1))
    assert not stack, "portowner.conf: unclosed %s" % stack
    return got


def differences(a_name, a, b_name, b):
    """Lines saying what one set has that the other has not, per block."""
    out = []
    for block in sorted(set(a) | set(b)):
        only_a = sorted(a.get(block, set()) - b.get(block, set()))
        only_b = sorted(b.get(block, set()) - a.get(block, set()))
        if only_a:
            out.append("<%s>: in %s, not in %s: %s" % (block, a_name, b_name, ", ".join(only_a)))
        if only_b:
            out.append("<%s>: in %s, not in %s: %s" % (block, b_name, a_name, ", ".join(only_b)))
    return out


def test_glue_man_page_and_example_config_have_the_same_options():
    glue = glue_options(read(GLUE))
    man = man_options(read(MAN))
    conf = conf_options(read(CONF))
    problems = (differences("plugin/portowner.c", glue, "collectd-portowner(5)", man) +
                differences("plugin/portowner.c", glue, "contrib/portowner.conf", conf))
    assert not problems, "\n".join(problems)
    # The sets are not trivially equal: every block has its options.
    assert {"Source", "ProcRoot", "StateFile", "FullScanInterval", "Resolver",
            "ReportSelf"} <= glue["Plugin"], glue
    assert {"Port", "ExpectProcess", "Hits"} <= glue["Port"], glue
    assert {"Allow", "Learn", "Hits"} <= glue["Inventory"], glue


def test_an_option_added_to_the_glue_only_is_found():
    """The check above can fail: the glue with one more <Port> option, one
    more top-level option read outside the tables, and an example config
    with one more commented <Inventory> option, each make a difference that
    names it."""
    glue_text = read(GLUE)
    more = glue_text.replace('{"Hits", read_hits},',
                             '{"Hits", read_hits},\n    {"NotifyFlap", read_hits},', 1)
    assert more != glue_text
    glue = glue_options(more)
    man = man_options(read(MAN))
    assert differences("glue", glue, "man", man) == [
        "<Port>: in glue, not in man: NotifyFlap"]
    outside = glue_text.replace('strcasecmp(c->key, "Inventory") == 0',
                                'strcasecmp(c->key, "Inventory") == 0 || '
                                'strcasecmp(c->key, "Sideways") == 0', 1)
    assert outside != glue_text
    try:
        glue_options(outside)
    except AssertionError as e:
        assert '"Sideways"' in str(e), e
    else:
        raise AssertionError("an option outside the tables was not found")
    conf_text = read(CONF)
    shown = conf_text.replace("#  Learn true", "#  Forget 3\n  #  Learn true", 1)
    assert shown != conf_text
    assert differences("glue", glue_options(glue_text), "conf", conf_options(shown)) == [
        "<Inventory>: in conf, not in glue: Forget"]


def test_man_page_renders_without_warnings():
    """groff -ww (every warning) says nothing, and man -l renders it with
    its sections."""
    r = subprocess.run(["groff", "-ww", "-z", "-man", MAN],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run(["man", "-P", "cat", "-l", MAN], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, MANWIDTH="80"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for title in ("NAME", "SYNOPSIS", "DESCRIPTION", "GLOBAL OPTIONS",
                  "PORT BLOCK OPTIONS", "INVENTORY BLOCK OPTIONS", "VALUES",
                  "NOTIFICATIONS", "EXAMPLES", "FILES", "SEE ALSO"):
        assert re.search(r"^%s$" % title, r.stdout, re.M), (
            "collectd-portowner(5) has no %s section" % title)


def man_examples(text):
    """The configs of the man page's EXAMPLES section (each .nf/.fi block
    that has a <Plugin ...>), with groff's escapes undone."""
    section = text.split("\n.SH EXAMPLES\n", 1)[1].split("\n.SH ", 1)[0]
    blocks = re.findall(r"^\.nf\n(.*?)^\.fi$", section, re.M | re.S)
    out = []
    for b in blocks:
        b = b.replace("\\-", "-").replace("\\e", "\\")
        if "<Plugin" in b:
            out.append(b)
    return out


# Paths of the examples that a test machine may lack, and what stands for
# them here: no sshd installed, no /host/proc, the StateFile in the test's
# directory rather than the machine's /var/lib/collectd.
HOST_PATHS = {'"/usr/sbin/sshd"': lambda work: collectd.q(env.COLLECTD),
              '"/host/proc"': lambda work: '"/proc"',
              '"/var/lib/collectd/portowner.json"':
                  lambda work: collectd.q(os.path.join(work.path, "portowner.json"))}


@pytest.mark.requires_collectd("logfile", "csv", "exec", "threshold")
@pytest.mark.requires_build("portowner.so")
def test_man_page_examples_load():
    """Every config of EXAMPLES loads in the real collectd (collectd -T:
    config, init, one read; exit 0, no error or warning), with the plugin's
    LoadPlugin added where an example leaves it out, an example without a
    <Port> block (the exec handler and the threshold on "web") loaded with
    the first one (which has "web"), and the host paths of HOST_PATHS mapped
    to this machine's."""
    examples = man_examples(read(MAN))
    assert len(examples) >= 4, examples
    work = collectd.Workdir()
    try:
        for ex in examples:
            body = ex
            if "<Port" not in body and "<Inventory" not in body:
                body = examples[0] + body
            for path, here in HOST_PATHS.items():
                body = body.replace(path, here(work))
            if not re.search(r"^LoadPlugin portowner$", body, re.M):
                body = "LoadPlugin portowner\n" + body
            rc, lines = collectd.collectd_test_config(work, body)
            log = "\n".join(lines)
            assert rc == 0, "EXAMPLES config fails (rc %d):\n%s\n%s" % (rc, ex, log)
            bad = collectd.unexpected_log_lines(lines, collectd.TEST_MODE_EXPECTED)
            assert not bad, "EXAMPLES config logs:\n%s\n%s" % (ex, "\n".join(bad))
    finally:
        work.remove()
