"""The Debian package: `make deb` builds collectd-portowner from the release
tarball, it installs on this Debian with dpkg, puts its files where collectd
and the user look for them, and the stock collectd loads the plugin from the
package's /etc/collectd/collectd.conf.d snippet (through Debian's own
collectd.conf) and with the package's example configuration. The package is
purged at the end.

Needs root (dpkg -i into the real system) and debhelper + dpkg-dev.
Run: /usr/bin/python3 -m pytest tests/deb
"""
import fcntl
import hashlib
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from lib import collectd, env, waits

pytestmark = pytest.mark.requires_root("the package test installs a .deb into "
                                       "this system with dpkg -i")

SRCDIR = env.SRCDIR
BUILDDIR = env.BUILDDIR
PACKAGE = "collectd-portowner"
COLLECTD = "/usr/sbin/collectd"
EXAMPLES = "/usr/share/doc/%s/examples" % PACKAGE
# The conf.d snippet: Debian's collectd.conf includes
# /etc/collectd/collectd.conf.d/*.conf.
SNIPPET = "/etc/collectd/collectd.conf.d/portowner.conf"
SNIPPET_SRC = os.path.join(SRCDIR, "contrib", "debian", "conf.d", "portowner.conf")
# Debian's /etc/collectd/collectd.conf (package collectd) is this file of
# collectd-core, byte for byte (collectd_5.12.0-14: compared with dpkg-deb
# -x); collectd-core is a dependency of ours, collectd is not.
DEBIAN_CONF = "/usr/share/doc/collectd-core/examples/collectd.conf"
NOTHING_TO_WATCH = (r'\[warning\] portowner plugin: no <Port "NAME"> or '
                    r'<Inventory "NAME"> block is configured: nothing to watch')
FILES = [
    SNIPPET,
    "/usr/lib/collectd/portowner.so",
    "/usr/bin/portowner-dump",
    "/usr/share/man/man1/portowner-dump.1.gz",
    "/usr/share/man/man5/collectd-portowner.5.gz",
    EXAMPLES + "/portowner.conf",
    EXAMPLES + "/portowner-notify.sh",
    EXAMPLES + "/portowner.json",
    "/usr/share/doc/%s/copyright" % PACKAGE,
]
NO_WRITER = (r"\[warning\] plugin_dispatch_values: No write callback "
             r"has been registered")
# Held from the install to the purge: one package test at a time on this
# machine (others may run the suites at the same time; dpkg has one system).
MACHINE_LOCK = "/run/lock/portowner-deb-test.lock"


def run(args, timeout=120, **kw):
    return subprocess.run(args, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def installed_version():
    r = run(["dpkg-query", "-W", "-f=${Status} ${Version}", PACKAGE])
    if r.returncode != 0 or "ok installed" not in r.stdout:
        return None
    return r.stdout.split()[-1]


def configure_version():
    with open(os.path.join(BUILDDIR, "config.h")) as f:
        m = re.search(r'#define PACKAGE_VERSION "([^"]+)"', f.read())
    assert m, "no PACKAGE_VERSION in %s/config.h" % BUILDDIR
    return m.group(1)


def machine_lock():
    """Waits for (and takes) MACHINE_LOCK; returns its fd."""
    os.makedirs(os.path.dirname(MACHINE_LOCK), exist_ok=True)
    fd = os.open(MACHINE_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def taken():
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    try:
        waits.wait_for(taken, 1800, "the package test of another test session "
                       "on this machine to finish (%s)" % MACHINE_LOCK, step=1)
    except BaseException:
        os.close(fd)
        raise
    return fd


@pytest.fixture(scope="module")
def package():
    """Builds the .deb (make deb), installs it (dpkg -i); purges it after."""
    missing = [t for t in ("dpkg-buildpackage", "dh") if not shutil.which(t)]
    if missing:
        pytest.fail("%s not found: apt-get install --no-install-recommends "
                    "debhelper dpkg-dev" % ", ".join(missing), pytrace=False)
    lock = machine_lock()
    try:
        yield from installed_package()
    finally:
        os.close(lock)


def installed_package():
    if installed_version() is not None:
        pytest.skip("%s %s is already installed here: the test would replace "
                    "and then purge it" % (PACKAGE, installed_version()))
    if not os.path.isfile(os.path.join(BUILDDIR, "Makefile")):
        pytest.fail("%s is not configured: run ./configure first" % BUILDDIR,
                    pytrace=False)
    version = configure_version()
    for old in glob.glob(os.path.join(BUILDDIR, PACKAGE + "_*.deb")):
        os.unlink(old)
    r = run(["make", "-C", BUILDDIR, "deb"], timeout=900)
    assert r.returncode == 0, "make deb failed (%d):\n%s\n%s" % (
        r.returncode, r.stdout[-6000:], r.stderr[-4000:])
    debs = glob.glob(os.path.join(BUILDDIR, "%s_%s-*_*.deb" % (PACKAGE, version)))
    assert len(debs) == 1, "make deb left %s in %s (version %s); output:\n%s" % (
        debs, BUILDDIR, version, r.stdout[-3000:])
    deb = debs[0]
    r = run(["dpkg", "-i", deb], timeout=300)
    try:
        assert r.returncode == 0, "dpkg -i %s: %s%s" % (deb, r.stdout, r.stderr)
        yield {"deb": deb, "version": version}
    finally:
        p = run(["dpkg", "--purge", PACKAGE], timeout=300)
        assert p.returncode == 0, "dpkg --purge %s: %s%s" % (PACKAGE, p.stdout, p.stderr)
        assert installed_version() is None
        left = [f for f in FILES if os.path.exists(f)]
        assert not left, "files left after the purge: %s" % left


def test_the_package_is_installed_with_its_version(package):
    v = installed_version()
    assert v is not None and v.startswith(package["version"] + "-"), (v, package)
    r = run(["dpkg-deb", "-f", package["deb"], "Depends"])
    assert r.returncode == 0, r.stderr
    assert re.search(r"collectd-core \(>= 5\.12\)", r.stdout), r.stdout
    assert "libyajl2" in r.stdout, r.stdout  # ${shlibs:Depends} was filled in


def test_the_package_puts_its_files_where_collectd_and_users_look(package):
    r = run(["dpkg", "-L", PACKAGE])
    assert r.returncode == 0, r.stderr
    listed = set(r.stdout.split("\n"))
    for f in FILES:
        assert f in listed, "dpkg -L %s does not list %s" % (PACKAGE, f)
        assert os.path.isfile(f), f
    # No libtool archive next to the plugin, nothing in /usr/local.
    assert not [f for f in listed if f.endswith(".la") or f.startswith("/usr/local")], listed
    # The plugin exports module_register only.
    r = run(["nm", "-D", "--defined-only", "/usr/lib/collectd/portowner.so"])
    assert r.returncode == 0, r.stderr
    exported = {l.split()[-1] for l in r.stdout.splitlines()
                if len(l.split()) == 3 and l.split()[1] in "TDBRW"}
    assert exported == {"module_register"}, exported
    # The dashboard in the package is the one in the source tree.
    with open(os.path.join(SRCDIR, "contrib", "grafana", "portowner.json")) as a, \
            open(EXAMPLES + "/portowner.json") as b:
        assert json.load(a) == json.load(b)
    # README.md's docs/ pages are there beside it (compressed as dh_compress
    # does any doc over 4 KiB), one for each in the source tree.
    doc = "/usr/share/doc/%s" % PACKAGE
    for md in sorted(os.listdir(os.path.join(SRCDIR, "docs"))):
        assert {doc + "/docs/" + md, doc + "/docs/" + md + ".gz"} & listed, md
    # The man pages are readable by man.
    for page in ("/usr/share/man/man5/collectd-portowner.5.gz",
                 "/usr/share/man/man1/portowner-dump.1.gz"):
        r = run(["man", "-P", "cat", "-l", page], env=dict(os.environ, MANWIDTH="80"))
        assert r.returncode == 0 and "portowner" in r.stdout, (page, r.stderr)


def test_the_installed_portowner_dump_runs(package):
    r = run(["/usr/bin/portowner-dump", "--json"], timeout=60)
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout), list)


def test_collectd_loads_the_packaged_plugin_with_the_example_config(package):
    """`collectd -T` (config, init, one read) with the stock PluginDir and
    TypesDB and the package's example configuration: exit 0, the plugin's
    init line, no error or warning. (No write plugin: collectd -T stops
    its write threads right after its one read, whatever is queued, so a
    write plugin's output proves nothing. The proof that the read
    dispatched values is in the log either way: a write thread that took
    one warns once that no write plugin is loaded; the values no write
    thread took yet are counted at exit, "N value lists were left".)"""
    tmp = tempfile.mkdtemp(prefix="po-pkg-")
    try:
        log = os.path.join(tmp, "collectd.log")
        conf = os.path.join(tmp, "collectd.conf")
        with open(conf, "w") as f:
            f.write(conf_head(tmp, log) + 'FQDNLookup false\n'
                    'Include "%s/portowner.conf"\n' % EXAMPLES)
        r = run([COLLECTD, "-T", "-C", conf], timeout=120)
        with open(log, errors="replace") as f:
            lines = f.read().splitlines()
        text = "\n".join(lines) + "\n" + r.stdout + r.stderr
        assert r.returncode == 0, "collectd -T exited %d:\n%s" % (r.returncode, text)
        assert any('plugin_load: plugin "portowner" successfully loaded' in l
                   for l in lines), text
        assert any(re.search(r"portowner plugin: version %s watching 3 <Port> blocks"
                             % re.escape(package["version"]), l) for l in lines), text
        dispatched = [l for l in lines if re.search(NO_WRITER, l) or
                      re.search(r"\[warning\] plugin: [1-9]\d* value lists "
                                r"were left after shutting down", l)]
        assert dispatched, "the read dispatched no values:\n%s" % text
        # collectd -T exits right after its read, dropping what its write
        # threads had not taken yet (TEST_MODE_EXPECTED).
        bad = collectd.unexpected_log_lines(
            lines + (r.stdout + r.stderr).splitlines(),
            list(collectd.TEST_MODE_EXPECTED) + [NO_WRITER])
        assert not bad, "errors or warnings from collectd -T:\n%s" % "\n".join(bad)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_package_says_its_license(package):
    """debian/copyright (DEP-5) names MIT for everything and MIT or GPL-2.0
    for the BPF program, whose source says the same."""
    with open("/usr/share/doc/%s/copyright" % PACKAGE) as f:
        text = f.read()
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    files = {}
    for p in paragraphs:
        m = re.search(r"^Files: (.+)$", p, re.M)
        if m:
            files[m.group(1)] = re.search(r"^License: (.+)$", p, re.M).group(1)
    assert files == {"*": "MIT", "plugin/bpf/*": "MIT or GPL-2.0"}, files
    assert re.search(r"^License: MIT\n Permission is hereby granted", text, re.M), text
    assert "not-yet-chosen" not in text
    with open(os.path.join(SRCDIR, "LICENSE")) as f:
        assert f.read().startswith("MIT License\n\nCopyright (c) 2026 portowner developers\n")
    with open(os.path.join(SRCDIR, "plugin", "bpf", "owners.bpf.c")) as f:
        bpf = f.read()
    assert bpf.startswith("// SPDX-License-Identifier: (MIT OR GPL-2.0)\n")
    assert 'SEC("license") = "Dual MIT/GPL";' in bpf


def debian_conf_copy(tmp, log, include=None):
    """Debian's collectd.conf with its own LoadPlugin lines and their
    <Plugin> blocks left out (syslog, rrdtool, cpu...: not this test's
    business), a logfile in front, and everything else as Debian has it,
    its <Include "/etc/collectd/collectd.conf.d"> block first (include:
    another directory instead). Returns the path of the copy."""
    with open(DEBIAN_CONF) as f:
        lines = f.read().splitlines()
    kept, skipping = [], False
    for line in lines:
        bare = line.strip()
        if skipping:
            skipping = not re.match(r"</Plugin>", bare)
            continue
        if re.match(r"LoadPlugin\s", bare):
            continue
        if re.match(r"<Plugin\s", bare):
            skipping = True
            continue
        kept.append(line)
    text = "\n".join(kept) + "\n"
    block = '<Include "/etc/collectd/collectd.conf.d">\n\tFilter "*.conf"\n</Include>\n'
    assert block in text, "%s has no conf.d Include block any more" % DEBIAN_CONF
    assert "portowner" not in text.lower()
    if include:
        text = text.replace(block, block.replace("/etc/collectd/collectd.conf.d", include))
    conf = os.path.join(tmp, "collectd.conf")
    with open(conf, "w") as f:
        f.write(conf_head(tmp, log) + text)
    return conf


def conf_head(tmp, log):
    """The first lines of the tests' collectd.conf: host, BaseDir and PIDFile
    in tmp, Interval 1, logfile at info into log."""
    return "\n".join([
        'Hostname "po-pkg-test"',
        'BaseDir "%s"' % tmp,
        'PIDFile "%s/collectd.pid"' % tmp,
        'Interval 1',
        'LoadPlugin logfile',
        '<Plugin logfile>',
        '  LogLevel info',
        '  File "%s"' % log,
        '  PrintSeverity true',
        '</Plugin>',
        ''])


def collectd_test_mode(conf, log):
    """collectd -T -C conf: (exit status, log lines, all the text)."""
    r = run([COLLECTD, "-T", "-C", conf], timeout=120)
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    return r.returncode, lines, "\n".join(lines) + "\n" + r.stdout + r.stderr, \
        (r.stdout + r.stderr).splitlines()


def test_the_conf_d_snippet_is_a_conffile_that_collectd_loads(package):
    """`apt install ./collectd-portowner_*.deb && systemctl restart collectd`
    is the whole set-up: the package's /etc/collectd/collectd.conf.d/
    portowner.conf is a conffile (kept on upgrade, purged with the package),
    Debian's collectd.conf loads the plugin from it, and as installed it
    watches nothing (its example block commented): the plugin's one warning,
    no other warning or error, no read registered."""
    r = run(["dpkg-query", "-W", "-f=${Conffiles}\n", PACKAGE])
    assert r.returncode == 0, r.stderr
    conffiles = dict(reversed(l.split()[:2]) for l in r.stdout.splitlines() if l.strip())
    with open(SNIPPET, "rb") as f:
        installed = f.read()
    assert conffiles.get(hashlib.md5(installed).hexdigest()) == SNIPPET, r.stdout
    with open(SNIPPET_SRC, "rb") as f:
        assert f.read() == installed, "%s differs from %s" % (SNIPPET, SNIPPET_SRC)
    r = run(["dpkg-deb", "-c", package["deb"]])
    assert re.search(r"^-rw-r--r-- root/root .* \./etc/collectd/collectd\.conf\.d/"
                     r"portowner\.conf$", r.stdout, re.M), r.stdout

    tmp = tempfile.mkdtemp(prefix="po-pkg-")
    try:
        log = os.path.join(tmp, "collectd.log")
        conf = debian_conf_copy(tmp, log)
        rc, lines, text, out = collectd_test_mode(conf, log)
        assert rc == 0, "collectd -T exited %d:\n%s" % (rc, text)
        assert any('plugin_load: plugin "portowner" successfully loaded' in l
                   for l in lines), text
        said = [l for l in lines if re.search(NOTHING_TO_WATCH, l)]
        assert len(said) == 1, text
        # Nothing watched: no read callback, no value.
        assert not any(re.search(r"portowner plugin: version ", l) for l in lines), text
        assert not any(re.search(NO_WRITER, l) for l in lines), text
        bad = collectd.unexpected_log_lines(
            lines + out, list(collectd.TEST_MODE_EXPECTED) + [NOTHING_TO_WATCH])
        assert not bad, "errors or warnings from collectd -T:\n%s" % "\n".join(bad)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_snippets_commented_block_works_once_uncommented(package):
    """What the snippet tells the user to do (remove the '#' of its block)
    gives a plugin watching that block, with no error: the same Debian
    collectd.conf, its Include pointed at a directory holding the edited
    snippet."""
    with open(SNIPPET) as f:
        text = f.read()
    start = text.index("<Plugin portowner>\n")
    end = text.index("</Plugin>", start)
    body = text[start:end]
    assert "\n#  <Port " in body, body
    edited = text[:start] + re.sub(r"(?m)^#", "", body) + text[end:]
    tmp = tempfile.mkdtemp(prefix="po-pkg-")
    try:
        confd = os.path.join(tmp, "conf.d")
        os.mkdir(confd)
        with open(os.path.join(confd, "portowner.conf"), "w") as f:
            f.write(edited)
        log = os.path.join(tmp, "collectd.log")
        conf = debian_conf_copy(tmp, log, include=confd)
        rc, lines, text, out = collectd_test_mode(conf, log)
        assert rc == 0, "collectd -T exited %d:\n%s" % (rc, text)
        assert any(re.search(r"portowner plugin: version %s watching 1 <Port> block "
                             % re.escape(package["version"]), l) for l in lines), text
        bad = collectd.unexpected_log_lines(
            lines + out, list(collectd.TEST_MODE_EXPECTED) + [NO_WRITER])
        assert not bad, "errors or warnings from collectd -T:\n%s" % "\n".join(bad)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
