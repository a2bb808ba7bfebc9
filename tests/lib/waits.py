"""Deadlines, polling, and every synchronisation with a running daemon.

A test never sleeps and then asserts: it waits for a predicate against a
deadline (wait_for), and the predicate is the very thing it then asserts on.
What that means against collectd:

- Values. The values of one read reach the unixsock cache one by one (the
  write threads put them there), so "count-sockets is 0" says nothing about
  count-processes yet. read() and wait_read() return the values of ONE read:
  every value asked for, all with that read's time stamp (portowner stamps
  every value of a read, and its notifications, with one time).
- Reads. wait_reads() counts reads by the time stamps it sees change; it may
  miss one while the test is descheduled, which only makes it wait longer:
  it never returns before n reads really happened.
- Notifications. The logfile plugin writes every notification, in the
  thread that dispatches it, before plugin_dispatch_notification() returns;
  exec forks its handler from a thread of its own, so records arrive in any
  order and late. sync_notifications() sends a sentinel, and then waits
  until every notification logged before the sentinel has been recorded:
  no timing, no "one more handler's time".

Deadlines are generous (they only bound a failure, a pass returns as soon as
the predicate holds); PO_TIMEOUT_SCALE scales them on a slow machine.
"""
import collections
import os
import re
import time
import uuid

from . import collectd as _collectd

SCALE = float(os.environ.get("PO_TIMEOUT_SCALE", "1"))


def timeout(seconds):
    return seconds * SCALE


class WaitTimeout(AssertionError):
    pass


def wait_for(predicate, timeout_s, what, describe=None, step=0.02):
    """Polls predicate() until it returns something truthy and returns that.

    On timeout raises WaitTimeout naming `what` and, when given, what
    describe() says about the last state seen.
    """
    deadline = time.monotonic() + timeout(timeout_s)
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            last = ""
            if describe is not None:
                try:
                    last = "; last seen: %s" % (describe(),)
                except Exception as e:  # describing must not hide the timeout
                    last = "; (describe failed: %r)" % (e,)
            raise WaitTimeout("timed out after %.1fs waiting for %s%s"
                              % (timeout(timeout_s), what, last))
        time.sleep(step)


# ------------------------------------------------------ values of one read --

class Read:
    """The values of one read: its time stamp and {name: value}."""

    def __init__(self, time_, values):
        self.time = time_
        self.values = values

    def __repr__(self):
        return "Read(t=%.3f %s)" % (self.time, self.values)


def _scalar(v):
    """A value with one data source as a number, else {ds: value}."""
    return next(iter(v.values())) if len(v) == 1 else v


def visible_reads(d, instance, names=None, host=None):
    """{time stamp: {name: value}} of portowner-INSTANCE/NAME in d's cache,
    from one consistent look: LISTVAL, GETVAL of each name, LISTVAL again.
    A value whose time stamp is the same in both listings is the value of
    the read with that time stamp (the cache updates a value and its time
    together, and never to an older time). names: default the five values
    of a block."""
    names = _collectd.VALUE_NAMES if names is None else names
    idents = {n: _collectd.ident(instance, n, host or d.hostname) for n in names}
    before = d.listval()
    got = {n: d.getval(i) for n, i in idents.items()}
    after = d.listval()
    reads = {}
    for n, i in idents.items():
        t = before.get(i)
        if t is not None and t == after.get(i) and got[n] is not None:
            reads.setdefault(t, {})[n] = _scalar(got[n])
    return reads


def newest_complete(reads, names):
    """The newest Read of reads (visible_reads()) that has every name."""
    full = [t for t, v in reads.items() if all(n in v for n in names)]
    if not full:
        return None
    t = max(full)
    return Read(t, dict(reads[t]))


def read(d, instance, after=None, names=None, host=None, timeout_s=10):
    """Waits for the values of one read of portowner-INSTANCE: every one of
    names (default: the five values of a block) visible with one time stamp
    (newer than `after` when given); returns it (the newest such read)."""
    names = _collectd.VALUE_NAMES if names is None else names
    last = []

    def complete():
        r = newest_complete(visible_reads(d, instance, names, host), names)
        last[:] = [r]
        if r is not None and (after is None or r.time > after):
            return r
        return None

    return wait_for(complete, timeout_s,
                    "the values %s of one read of portowner-%s%s" % (
                        list(names), instance,
                        "" if after is None else " newer than %.3f" % after),
                    lambda: last, step=0.02)


def wait_read(d, instance, expected, after=None, names=None, host=None,
              timeout_s=10):
    """Waits until one read of portowner-INSTANCE has every value of
    expected ({name: value}); every value of names (default: the five
    values of a block, and the names in expected) is visible with that
    read's time stamp, so the other values of the Read returned are that
    read's too, ready to be compared."""
    if names is None:
        names = list(_collectd.VALUE_NAMES)
    names = list(names) + [k for k in expected if k not in names]
    seen = []

    def matching():
        reads = visible_reads(d, instance, names, host)
        seen[:] = sorted(reads.items())[-2:]
        for t in sorted(reads, reverse=True):
            v = reads[t]
            if after is not None and t <= after:
                continue
            if all(n in v for n in names) and \
                    all(v[k] == want for k, want in expected.items()):
                return Read(t, dict(v))
        return None

    return wait_for(matching, timeout_s,
                    "one read of %s/portowner-%s with %s%s" % (
                        host or d.hostname, instance, expected,
                        "" if after is None else " newer than %.3f" % after),
                    lambda: seen)


def csv_reads(d, instance, names, host=None):
    """{time stamp: {name: value}} of portowner-INSTANCE/NAME from the csv
    plugin's files (every read has a row there; DERIVE values raw)."""
    reads = {}
    for n in names:
        for t, v in d.csv_rows(_collectd.ident(instance, n, host or d.hostname)):
            reads.setdefault(t, {})[n] = _scalar(v)
    return reads


def wait_csv_read(d, instance, names, pred=None, what=None, timeout_s=10):
    """Waits until the csv files hold a read of portowner-INSTANCE with a
    row for every one of names (and whose values satisfy pred, when given);
    returns the newest such Read."""
    last = []

    def found():
        reads = csv_reads(d, instance, names)
        last[:] = sorted(reads.items())[-3:]
        for t in sorted(reads, reverse=True):
            v = reads[t]
            if all(n in v for n in names) and (pred is None or pred(v)):
                return Read(t, dict(v))
        return None

    return wait_for(found, timeout_s,
                    what or "a read of portowner-%s %s in the csv files"
                    % (instance, list(names)), lambda: last)


# ------------------------------------------------------------ counting reads -

class ReadCounter:
    """Counts the reads of one identifier newer than `after` (default: its
    time stamp now) whose value satisfies pred, by the time stamps seen at
    each poll(). A read missed between two polls is not counted: the count
    is never more than what happened."""

    def __init__(self, d, identifier, after=None, pred=None):
        self.d, self.identifier, self.pred = d, identifier, pred
        self.after = d.last_update(identifier) if after is None else after
        self.after = self.after or 0
        self.seen = set()
        self.last = None

    def poll(self):
        t1 = self.d.last_update(self.identifier)
        v = self.d.value(self.identifier) if self.pred else None
        t2 = self.d.last_update(self.identifier)
        if t1 is not None and t1 == t2 and t1 > self.after:
            if self.pred is None or self.pred(v):
                self.seen.add(t1)
                self.last = t1
        return len(self.seen)


def wait_reads(d, identifier, n, timeout_s=None):
    """Waits until identifier has been updated by n more reads; returns the
    time stamp of the last one."""
    wait_for(lambda: d.last_update(identifier), 10,
             "%s to be reported" % identifier, lambda: sorted(d.listval()))
    c = ReadCounter(d, identifier)
    if timeout_s is None:
        timeout_s = 10 + 3 * n * d.interval
    wait_for(lambda: c.poll() >= n, timeout_s,
             "%d more reads of %s" % (n, identifier),
             lambda: "%d reads seen, last at %s" % (len(c.seen), c.last))
    return c.last


# ------------------------------------------------------------ notifications -

def wait_notification(d, timeout_s=10, **match):
    """Waits for a recorded notification matching match (see
    collectd.notification_matches); returns the first one."""
    found = wait_for(lambda: d.notifications(**match), timeout_s,
                     "a notification matching %s" % (match,),
                     lambda: [_collectd.short(n) for n in d.notifications()])
    return found[0]


_ENTRY = re.compile(r"\n(?=\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \[)")
_ECHO = re.compile(r"\A\[[^\]]*\] \[info\] (Notification: severity = .*)\Z",
                   re.S)


def logged_notifications(path):
    """The logfile plugin's line for each notification in a log, in order
    (a message with a newline stays one entry)."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    out = []
    for entry in _ENTRY.split(text):
        m = _ECHO.match(entry.rstrip("\n"))
        if m:
            out.append(m.group(1))
    return out


def echo_of(rec):
    """What the logfile plugin writes for the recorded notification rec
    (logfile.c: the fields that are set, in this order)."""
    s = "Notification: severity = %s" % rec.get("severity")
    for key in ("host", "plugin", "plugin_instance", "type", "type_instance",
                "message"):
        v = rec.get(key)
        if v:
            if key == "message":  # as the log file is read: bad bytes replaced
                v = v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            s += ", %s = %s" % (key, v)
    return s


def _is_sync(echo):
    return (", plugin = %s," % _collectd.SYNC_PLUGIN) in echo


def sync_notifications(d, via=None, reads_of=None, timeout_s=10):
    """Makes sure every notification d dispatched so far has been recorded.

    Sends a sentinel notification through the unix socket of `via` (default:
    d; a fleet agent whose network plugin forwards to d) and waits until it
    is in d's log; then waits until each notification logged before it (in
    this run, and in d's earlier runs) has its record. With reads_of (an
    identifier on `via`), first waits for one more read of it, so that the
    notifications of the read whose values the test saw last are in.
    Returns the records."""
    assert d.exec_handler, "%s records no notifications (exec_handler=False)" % (
        d.hostname,)
    src = via or d
    if reads_of is not None:
        wait_reads(src, reads_of, 1)
    token = uuid.uuid4().hex
    src.putnotif("okay", "sync " + token, plugin=_collectd.SYNC_PLUGIN)
    mark = ", message = sync " + token
    state = {}

    def sentinel_logged():
        runs = [logged_notifications(p) for p in d.logs]
        here = runs[-1] if runs else []
        at = next((i for i, e in enumerate(here) if e.endswith(mark)), None)
        if at is None:
            return False
        state["expected"] = [e for run in runs[:-1] + [here[:at]] for e in run
                             if not _is_sync(e)]
        return True

    wait_for(sentinel_logged, timeout_s,
             "the sync notification %s in %s's log" % (token, d.hostname))

    def all_recorded():
        recorded = collections.Counter(echo_of(r) for r in d.notifications())
        state["missing"] = list(
            (collections.Counter(state["expected"]) - recorded).elements())
        return not state["missing"]

    wait_for(all_recorded, timeout_s,
             "the records of the %d notifications logged before the sync "
             "notification %s" % (len(state["expected"]), token),
             lambda: "not recorded: %s" % state.get("missing"))
    return d.notifications()
