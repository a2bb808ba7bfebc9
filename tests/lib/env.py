"""Where things are, and what this machine has.

Sources are found from this file (tests/lib/ in the source tree or in an
unpacked release tarball); binaries come from $PO_BUILDDIR (default: the
source tree, an in-tree build):
  $PO_BUILDDIR/.libs/portowner.so, $PO_BUILDDIR/portowner-dump,
  $PO_BUILDDIR/tests/po-listen, $PO_BUILDDIR/tests/soak/po-churn
collectd is Debian's collectd-core unless PO_COLLECTD, PO_COLLECTD_PLUGINDIR
and PO_TYPES_DB say otherwise.
"""
import os

LIBDIR = os.path.dirname(os.path.abspath(__file__))
TESTSDIR = os.path.dirname(LIBDIR)
SRCDIR = os.path.dirname(TESTSDIR)
BUILDDIR = os.path.abspath(os.environ.get("PO_BUILDDIR", SRCDIR))

COLLECTD = os.environ.get("PO_COLLECTD", "/usr/sbin/collectd")
STOCK_PLUGINDIR = os.environ.get("PO_COLLECTD_PLUGINDIR", "/usr/lib/collectd")
TYPES_DB = os.environ.get("PO_TYPES_DB", "/usr/share/collectd/types.db")

PORTOWNER_SO = os.path.join(BUILDDIR, ".libs", "portowner.so")
PORTOWNER_DUMP = os.path.join(BUILDDIR, "portowner-dump")
PO_LISTEN = os.path.join(BUILDDIR, "tests", "po-listen")
PO_CHURN = os.path.join(BUILDDIR, "tests", "soak", "po-churn")
PO_CHURN_SRC = os.path.join(SRCDIR, "tests", "soak", "po-churn.c")
# The NotificationExec handler the daemon harness installs.
NOTIFY_RECORDER = os.path.join(LIBDIR, "notify-record.py")

CONTRIB_CONF = os.path.join(SRCDIR, "contrib", "portowner.conf")
README = os.path.join(SRCDIR, "README.md")

NOBODY = "nobody"

# What requires_build("name") checks (see tests/conftest.py).
BUILT = {
    "portowner.so": PORTOWNER_SO,
    "portowner-dump": PORTOWNER_DUMP,
    "po-listen": PO_LISTEN,
}


def missing_build(path, what):
    """The message for a binary that is not built, or None when it is."""
    if os.path.isfile(path) and (path.endswith(".so") or os.access(path, os.X_OK)):
        return None
    return ("%s not found at %s: build the tree first (cd %s && (test -f "
            "Makefile || ./configure -q) && make -j2 && make tests/po-listen "
            "tests/soak/po-churn), or point PO_BUILDDIR at a build directory"
            % (what, path, BUILDDIR))


def require_file(path, what):
    """Fails (AssertionError) when a built file is missing; returns path."""
    problem = missing_build(path, what)
    if problem:
        raise AssertionError(problem)
    return path


def missing_collectd(plugins=()):
    """What is missing of collectd-core (the daemon, types.db, the stock
    plugins named): a list of messages, empty when nothing is."""
    problems = []
    if not os.access(COLLECTD, os.X_OK):
        problems.append("%s not found (apt-get install collectd-core)" % COLLECTD)
    if not os.path.isfile(TYPES_DB):
        problems.append("%s not found (apt-get install collectd-core)" % TYPES_DB)
    for name in plugins:
        so = os.path.join(STOCK_PLUGINDIR, name + ".so")
        if not os.path.isfile(so):
            problems.append("%s not found (apt-get install collectd-core)" % so)
    return problems


_denied = None


def environment_denied_pids():
    """Processes not started by this test run whose fds root cannot read
    (EACCES/EPERM on /proc/PID/fd or on its links), e.g. a sandbox's init.
    Computed once per session: the plugin's once-only warning about them is
    the environment's, not a test's."""
    global _denied
    if _denied is not None:
        return _denied
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % d):
                try:
                    os.readlink("/proc/%s/fd/%s" % (d, fd))
                except PermissionError:
                    found.append(int(d))
                    break
                except OSError:
                    pass
        except PermissionError:
            found.append(int(d))
        except OSError:
            pass
    _denied = found
    return found
