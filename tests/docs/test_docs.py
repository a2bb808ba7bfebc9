"""The docs a newcomer reads: README.md fits its outline (at most about 200
lines: what it is with a real portowner-dump output, the two commands, a
quick start, the values and notifications tables, the libraries, the
license, links), and every relative link of README.md and docs/*.md names
a file that exists (and, with a #fragment into a Markdown file, one of its
headings)."""
import glob
import os
import re

from lib import env

README = env.README
DOCS = sorted(glob.glob(os.path.join(env.SRCDIR, "docs", "*.md")))
MAX_README_LINES = 220
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def slug(heading):
    """GitHub's anchor of a Markdown heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    text = re.sub(r"```.*?```", "", read(path), flags=re.S)
    text = re.sub(r"^ {4}.*$", "", text, flags=re.M)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", text, re.M)}


def links(path):
    """(line number, target) of every Markdown link outside code."""
    out = []
    for n, line in enumerate(read(path).splitlines(), 1):
        if line.startswith("    "):
            continue  # an indented code block
        for m in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
            out.append((n, m.group(1)))
    return out


def broken_links(path):
    bad = []
    for n, target in links(path):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        file, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        rel = os.path.relpath(path, env.SRCDIR)
        if not os.path.exists(dest):
            bad.append("%s:%d: %s: no such file" % (rel, n, target))
        elif frag and dest.endswith(".md") and frag not in anchors(dest):
            bad.append("%s:%d: %s: no heading #%s in %s" % (
                rel, n, target, frag, os.path.relpath(dest, env.SRCDIR)))
    return bad


def test_every_relative_link_resolves():
    assert DOCS, "no docs/*.md"
    bad = []
    for path in [README] + DOCS:
        bad += broken_links(path)
    assert not bad, "\n".join(bad)


def test_the_link_check_can_fail(tmp_path):
    """A link to a file that is not there, and one to a heading that is
    not there, are both reported."""
    (tmp_path / "a.md").write_text("# Title\n\nSee [b](b.md), [t](#title), [x](#nope) "
                                   "and [web](https://example.org).\n")
    bad = broken_links(str(tmp_path / "a.md"))
    assert len(bad) == 2 and "b.md: no such file" in bad[0] and "#nope" in bad[1], bad


def test_readme_fits_the_outline():
    text = read(README)
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, (
        "README.md has %d lines: at most about 200 (move details to docs/)" % len(lines))
    headings = [l[3:].strip() for l in lines if l.startswith("## ")]
    for h in ("Two commands (fresh Debian 12)", "Quick start", "Values",
              "Notifications", "Libraries and why", "License"):
        assert h in headings, "README.md has no '## %s' section: %s" % (h, headings)
    # The two commands, verbatim, each on a line of its own.
    for cmd in ("bash contrib/demo.sh", "bash tests/run-all.sh"):
        assert re.search(r"^ {4}%s$" % re.escape(cmd), text, re.M), cmd
    # A portowner-dump table, as the command prints it.
    assert re.search(r"^ {4}PROTO +LOCAL +SOCKETS +ACCEPTQ +UNIT +OWNERS$", text, re.M)
    # The values and notifications tables.
    for name in ("count-sockets", "count-processes", "count-unowned",
                 "count-missing", "queue_length-accept", "queue_length-accept_max"):
        assert re.search(r"^\| `portowner-NAME/%s` \|" % name, text, re.M), name
    for sev, ti in (("FAILURE", "listener-tcp-443"), ("OKAY", "listener-tcp-443"),
                    ("WARNING", "owner_change"), ("WARNING", "restart"),
                    ("FAILURE", "unexpected_owner"), ("OKAY", "unexpected_owner")):
        assert re.search(r"^\| %s \| `%s` \|" % (sev, ti), text, re.M), (sev, ti)
    # The quick start checks with both tools.
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    for what in ("portowner-dump", "collectdctl listval", "NotificationExec"):
        assert what in quick, what
    # Links to every page of docs/ and to both man pages.
    linked = {os.path.normpath(t.partition("#")[0]) for _, t in links(README)}
    for path in DOCS:
        assert os.path.relpath(path, env.SRCDIR) in linked, (
            "README.md does not link to %s" % os.path.relpath(path, env.SRCDIR))
    for page in ("contrib/collectd-portowner.5", "contrib/portowner-dump.1"):
        assert page in linked, page
