"""contrib/prometheus against a real Prometheus (Debian 12's 2.42):
promtool checks and unit-tests the shipped rules; then a real collectd
(portowner + write_prometheus, Interval 0.2) is scraped over loopback by two
real Prometheus servers, every second:

  shipped  the job of contrib/prometheus/scrape.yml (only its target
           replaced) and contrib/prometheus/portowner.rules.yml with every
           `for:` made FOR_IN_TEST (the one substitution: for_in_test());
  flipped  the same job with honor_labels and honor_timestamps at
           Prometheus's defaults (false, true), no rules.

The tests assert what an operator would see: collectd's host name in
`instance` (only with the shipped job), the Grafana dashboard's queries
returning their series, PortownerListenerLost going pending -> firing ->
resolved as a real listener is killed and restarted, and, once collectd
stops, the shipped job's series going stale (PortownerHostSilent and
PortownerAbsent fire) while the flipped job's are still returned.

Prometheus comes from PO_PROMETHEUS_DIR (a directory holding `prometheus`
and `promtool`: tests/run-all.sh unpacks Debian's package there with
`apt-get download prometheus` and `dpkg -x`), else from PATH; without
either the tests skip, saying so (never in CI: run-all.sh sets the
variable, and then a missing binary fails).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from lib import collectd, env, listeners, waits

from . import prom
from .test_dashboard import DASHBOARD, needs_daemon, targets

PROMDIR = os.path.join(env.SRCDIR, "contrib", "prometheus")
RULES = os.path.join(PROMDIR, "portowner.rules.yml")
RULES_TEST = os.path.join(PROMDIR, "portowner.rules.test.yml")
SCRAPE = os.path.join(PROMDIR, "scrape.yml")
SHIPPED_TARGET = '"collectd.example.net:9103"'
FOR_IN_TEST = "3s"
BACKLOG = 64
QUEUED = 3  # connections left in web's accept queue (po-listen accepts none)


def tool(name):
    """The path of prometheus or promtool, or a skip saying why there is
    none. PO_PROMETHEUS_DIR, when set, must have it (a failure, not a
    skip: CI sets it)."""
    d = os.environ.get("PO_PROMETHEUS_DIR")
    if d:
        path = os.path.join(d, name)
        assert os.access(path, os.X_OK), (
            "PO_PROMETHEUS_DIR=%s has no executable %s" % (d, name))
        return path
    path = shutil.which(name)
    if path is None:
        pytest.skip("no %s: install Debian's prometheus package, or unpack it "
                    "(apt-get download prometheus; dpkg -x prometheus_*.deb DIR) "
                    "and set PO_PROMETHEUS_DIR=DIR/usr/bin (tests/run-all.sh does)"
                    % name)
    return path


def read(path):
    with open(path) as f:
        return f.read()


def for_in_test(rules_text):
    """The shipped rules with every `for:` duration made FOR_IN_TEST (the
    substitution docs/prometheus.md states): nothing else changes."""
    text, n = re.subn(r'(?m)^(\s+for:\s*)\S+\s*$', r'\g<1>' + FOR_IN_TEST, rules_text)
    assert n == rules_text.count("- alert:"), "one for: per alert expected (%d)" % n
    return text


def scrape_job(target, flipped=False):
    """contrib/prometheus/scrape.yml with its target replaced (and, for
    `flipped`, honor_labels and honor_timestamps at Prometheus's defaults)."""
    text = read(SCRAPE)
    assert text.count(SHIPPED_TARGET) == 1, "%s: no target %s" % (SCRAPE, SHIPPED_TARGET)
    text = text.replace(SHIPPED_TARGET, '"%s"' % target)
    if flipped:
        # Prometheus's defaults, whatever the shipped file says (so that a
        # shipped file that stops setting them fails the tests below).
        for key, default in (("honor_labels", "false"), ("honor_timestamps", "true")):
            text, n = re.subn(r'(?m)^(\s+%s:\s*)\S+\s*$' % key, r'\g<1>' + default, text)
            assert n == 1, "%s: %s is not set once" % (SCRAPE, key)
    return text


class Prometheus:
    """A real Prometheus server on a free loopback port, in its own temp
    directory (config, TSDB, log)."""

    def __init__(self, name, scrape_text, rules_text=None):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="po-prom-%s-" % name, dir="/tmp")
        self.port = listeners.free_port()
        self.log = os.path.join(self.dir, "prometheus.log")
        lines = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s",
                 "  evaluation_interval: 1s"]
        if rules_text is not None:
            rules = os.path.join(self.dir, "portowner.rules.yml")
            with open(rules, "w") as f:
                f.write(rules_text)
            lines += ["rule_files:", '  - "%s"' % rules]
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n" + scrape_text)
        self.proc = None

    def check_config(self):
        r = subprocess.run([tool("promtool"), "check", "config", self.config],
                           capture_output=True, text=True, timeout=waits.timeout(60))
        assert r.returncode == 0, "promtool check config %s:\n%s%s\n%s" % (
            self.config, r.stdout, r.stderr, read(self.config))

    def start(self):
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [tool("prometheus"), "--config.file=" + self.config,
                 "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                 "--web.listen-address=127.0.0.1:%d" % self.port],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

        def ready():
            assert self.proc.poll() is None, "prometheus (%s) exited: %s" % (
                self.name, read(self.log)[-3000:])
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port,
                                            timeout=waits.timeout(2)) as r:
                    return r.status == 200
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                return False

        waits.wait_for(ready, 30, "prometheus (%s) to be ready" % self.name,
                       lambda: read(self.log)[-1500:])
        return self

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(url, timeout=waits.timeout(10)) as r:
            body = json.loads(r.read().decode())
        assert body["status"] == "success", (url, body)
        return body["data"]

    def query(self, expr):
        """[(labels, value)] of an instant query now."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        return [(s["metric"], float(s["value"][1])) for s in data["result"]]

    def samples(self, expr):
        """[(labels, [(t, value)...])] of a range-vector query now."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "matrix", (expr, data)
        return [(s["metric"], [(float(t), float(v)) for t, v in s["values"]])
                for s in data["result"]]

    def alerts(self, name):
        """The active (pending or firing) alerts called name: [(labels, state)]."""
        return [(a["labels"], a["state"]) for a in self.api("alerts")["alerts"]
                if a["labels"].get("alertname") == name]

    def stop(self, failed):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=waits.timeout(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if failed:
            print("---- prometheus (%s) log, %s (last 40 lines) ----" % (self.name, self.dir))
            print("\n".join(read(self.log).splitlines()[-40:]))
            print("---- its config ----\n" + read(self.config))
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_alert(p, name, state, timeout_s=20, **labels):
    """Waits until alert name{labels} is active in state; returns its labels."""
    def found():
        for l, s in p.alerts(name):
            if s == state and all(l.get(k) == v for k, v in labels.items()):
                return l
        return None
    return waits.wait_for(found, timeout_s, "%s%s %s in prometheus (%s)" % (
        name, labels, state, p.name), lambda: p.api("alerts")["alerts"])


def pending_then_firing(p, name, since, timeout_s=20, **labels):
    """Waits until alert name{labels} fires, then asserts from Prometheus's
    own record of it (the ALERTS series of each evaluation, from time
    `since` on) that it was pending first, for the test copy's `for:`
    (3 s): no poll has to catch the pending window. Returns the firing
    alert's labels."""
    firing = wait_alert(p, name, "firing", timeout_s, **labels)
    sel = ",".join('%s="%s"' % kv for kv in sorted(dict(labels, alertname=name).items()))
    first = {}
    history = p.samples("ALERTS{%s}[10m]" % sel)
    for metric, values in history:
        state = metric["alertstate"]
        first[state] = min([first.get(state, float("inf"))] +
                           [t for t, _ in values if t >= since])
    first = {k: v for k, v in first.items() if v != float("inf")}
    assert set(first) == {"pending", "firing"}, (name, labels, first)
    held = first["firing"] - first["pending"]
    assert held >= float(FOR_IN_TEST.rstrip("s")) - 0.5, (
        "%s%s: pending %.1fs before firing, for: is %s; ALERTS: %s" % (
            name, labels, held, FOR_IN_TEST, history))
    return firing


# ----------------------------------------------------------- promtool ------

def test_promtool_checks_the_shipped_rules():
    r = subprocess.run([tool("promtool"), "check", "rules", RULES],
                       capture_output=True, text=True, timeout=waits.timeout(60))
    assert r.returncode == 0, r.stdout + r.stderr
    alerts = re.findall(r'(?m)^\s+- alert:\s*(\S+)', read(RULES))
    assert "SUCCESS: %d rules found" % len(alerts) in r.stdout, r.stdout
    # What the issue asks the rules to cover.
    for name in ("PortownerListenerLost", "PortownerListenerPartlyLost",
                 "PortownerUnownedSockets", "PortownerAcceptQueueNearFull",
                 "PortownerReadSlow", "PortownerHostSilent", "PortownerAbsent"):
        assert name in alerts, (name, alerts)


def test_promtool_unit_tests_of_the_rules_pass():
    """contrib/prometheus/portowner.rules.test.yml: synthetic series, each
    alert firing where it should and not where it should not."""
    r = subprocess.run([tool("promtool"), "test", "rules", RULES_TEST],
                       capture_output=True, text=True, timeout=waits.timeout(60),
                       cwd=PROMDIR)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    # Every alert of the rules file has a test that expects it to fire.
    fired = set(re.findall(r'(?ms)alertname:\s*(\S+)\s*\n\s*exp_alerts:\s*\n\s*- exp_labels',
                           read(RULES_TEST)))
    alerts = set(re.findall(r'(?m)^\s+- alert:\s*(\S+)', read(RULES)))
    assert alerts <= fired, "no test where these fire: %s" % sorted(alerts - fired)


# ------------------------------------------------------------- live ----------

@pytest.fixture(scope="module")
def stack(request):
    """collectd (blocks "web", with a listener and QUEUED connections in its
    accept queue, and "down", without) scraped by the shipped and the
    flipped Prometheus."""
    tool("prometheus")
    tool("promtool")
    work = collectd.Workdir()
    made = []
    clients = []
    ok = False
    st = type("Stack", (), {})()
    st.work = work
    st.web = listeners.Listener("tcp4:127.0.0.1:%d" % listeners.free_port(),
                                backlog=BACKLOG, logdir=work.path)
    made.append(st.web)
    st.prom_port = listeners.free_port()
    st.target = "127.0.0.1:%d" % st.prom_port
    st.collectd = collectd.Collectd(
        work, prom.web_and_down_conf(st.web.port, st.prom_port), csv=False)
    st.collectd.expect_log(collectd.UNIXSOCK_RACE, prom.MHD_LOGGER_NOISE)
    st.shipped = Prometheus("shipped", scrape_job(st.target), for_in_test(read(RULES)))
    st.flipped = Prometheus("flipped", scrape_job(st.target, flipped=True))
    try:
        for p in (st.shipped, st.flipped):
            p.check_config()
        st.collectd.start()
        for _ in range(QUEUED):
            c = socket.create_connection(("127.0.0.1", st.web.port), timeout=5)
            clients.append(c)
        st.shipped.start()
        st.flipped.start()
        yield st
        ok = True
    finally:
        failed = not ok or request.session.testsfailed > 0
        for c in clients:
            c.close()
        try:
            collectd.finish_daemons([st.collectd], [work], failed=failed)
        finally:
            for p in (st.shipped, st.flipped):
                p.stop(failed)
            for l in made + getattr(st, "restarted", []):
                l.cleanup()


def wait_query(p, expr, pred, what, timeout_s=20):
    """Waits until pred(result of expr) holds; returns the result."""
    last = []

    def found():
        last[:] = p.query(expr)
        return (list(last),) if pred(last) else None  # truthy when empty too
    return waits.wait_for(found, timeout_s, "%s: %s in prometheus (%s)" % (
        what, expr, p.name), lambda: last)[0]


def by_block(result):
    return {l.get("portowner"): v for l, v in result}


@needs_daemon
def test_the_shipped_job_keeps_collectds_host_name_in_instance(stack):
    """honor_labels: true: instance is collectd's Hostname; Prometheus's
    default puts it in exported_instance and the target in instance."""
    expr = 'collectd_portowner_count{type="sockets"}'
    got = wait_query(stack.shipped, expr, lambda r: len(r) == 2, "two blocks")
    for labels, _ in got:
        assert labels["instance"] == collectd.HOST, labels
        assert "exported_instance" not in labels, labels
        assert labels["job"] == "collectd", labels
    assert by_block(got) == {"web": 1, "down": 0}, got
    got = wait_query(stack.flipped, expr, lambda r: len(r) == 2, "two blocks")
    for labels, _ in got:
        assert labels["instance"] == stack.target, labels
        assert labels["exported_instance"] == collectd.HOST, labels
    # So what a dashboard's $instance variable lists: the host, not the target.
    assert stack.shipped.api("label/instance/values",
                             **{"match[]": "collectd_portowner_count"}) == [collectd.HOST]
    assert stack.flipped.api("label/instance/values",
                             **{"match[]": "collectd_portowner_count"}) == [stack.target]


def dashboard_queries():
    with open(DASHBOARD) as f:
        d = json.load(f)
    return [(p["title"], t["expr"], t.get("legendFormat", "")) for p, t in targets(d)], d


# What each panel query of contrib/grafana/portowner.json returns on this
# collectd: {block: value} (None for a query that aggregates the blocks
# away: then its one value).
EXPECTED = [
    (r'^count\(.*sockets.* == 0\) or vector\(0\)$', 1),
    (r'sockets.* == 0$', {"down": 0}),
    (r'^collectd_portowner_count\{type="sockets"', {"web": 1, "down": 0}),
    (r'^collectd_portowner_count\{type="processes"', {"web": 1, "down": 0}),
    (r'^collectd_portowner_count\{type="unowned"', {"web": 0, "down": 0}),
    (r'^collectd_portowner_queue_length\{type="accept",', {"web": QUEUED, "down": 0}),
    (r'^collectd_portowner_queue_length\{type="accept_max"', {"web": BACKLOG, "down": 0}),
    (r'^sum by \(instance, portowner\) \(collectd_portowner_queue_length\{type="accept",',
     {"web": QUEUED / BACKLOG}),
]


def expected_for(expr):
    hits = [want for rx, want in EXPECTED if re.search(rx, expr)]
    assert hits, "the test does not know what %r should return: add it to EXPECTED" % expr
    return hits[0]


@needs_daemon
@pytest.mark.parametrize("variables", [
    {"instance": ".*", "port": ".*"},            # "All" (the variables' allValue)
    {"instance": collectd.HOST, "port": "(web|down)"},  # picked values
])
def test_every_dashboard_query_returns_its_series(stack, variables):
    """Each query of the dashboard, its variables substituted as Grafana
    does, run on the shipped Prometheus: the series and values it should
    give, with the labels its legend shows."""
    queries, dash = dashboard_queries()
    assert len(queries) >= 8, queries

    def subst(expr):
        return re.sub(r'\$\{?([a-zA-Z_]+)\}?', lambda m: variables[m.group(1)], expr)

    for title, expr, legend in queries:
        want = expected_for(expr)
        q = subst(expr)
        if isinstance(want, dict):
            got = wait_query(stack.shipped, q, lambda r: by_block(r) == want,
                             "%s: %s" % (title, want))
            for labels, _ in got:
                for label in re.findall(r'\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}', legend):
                    assert labels.get(label), (title, label, labels)
                assert labels["instance"] == collectd.HOST, (title, labels)
        else:
            got = wait_query(stack.shipped, q,
                             lambda r: [v for _, v in r] == [want], "%s: %s" % (title, want))
    # The variables' label_values() queries, as Grafana asks them.
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = re.fullmatch(r'\s*label_values\((.*),\s*([a-zA-Z_]+)\s*\)\s*', v["query"]["query"])
        assert m, v
        values = stack.shipped.api("label/%s/values" % m.group(2),
                                   **{"match[]": subst(m.group(1))})
        if m.group(2) == "instance":
            assert values == [collectd.HOST], values
        else:
            assert {"web", "down"} <= set(values), values


@needs_daemon
def test_listener_lost_goes_pending_firing_then_resolved(stack):
    """The real listener of "web" is killed: PortownerListenerLost for web
    goes pending, then firing; started again on its port, it resolves.
    "down" has no listener at all and fires throughout."""
    p = stack.shipped
    wait_alert(p, "PortownerListenerLost", "firing", portowner="down",
               instance=collectd.HOST)
    wait_query(p, 'collectd_portowner_count{type="sockets",portowner="web"}',
               lambda r: [v for _, v in r] == [1], "web listening")
    assert not [a for a in p.alerts("PortownerListenerLost") if a[0]["portowner"] == "web"]

    port = stack.web.port
    killed = time.time()
    stack.web.stop(signal.SIGKILL)
    firing = pending_then_firing(p, "PortownerListenerLost", killed, portowner="web")
    assert firing["instance"] == collectd.HOST and firing["severity"] == "critical", firing

    stack.restarted = [listeners.Listener("tcp4:127.0.0.1:%d" % port, backlog=BACKLOG,
                                          logdir=stack.work.path)]
    waits.wait_for(lambda: not [a for a in p.alerts("PortownerListenerLost")
                                if a[0]["portowner"] == "web"], 20,
                   "PortownerListenerLost for web to resolve",
                   lambda: p.alerts("PortownerListenerLost"))
    assert [a for a in p.alerts("PortownerListenerLost")
            if a[0]["portowner"] == "down"], "down's alert ended: it has no listener"
    assert by_block(p.query('collectd_portowner_count{type="sockets"}')) == {
        "web": 1, "down": 0}


@needs_daemon
def test_series_go_stale_when_collectd_stops_only_with_the_shipped_job(stack):
    """honor_timestamps: false: collectd stopped, the shipped job's series
    are gone at the next scrape and PortownerHostSilent and PortownerAbsent
    fire; Prometheus's default (write_prometheus's time stamps honoured)
    keeps returning the last values, absent() stays empty."""
    expr = "collectd_portowner_count"
    for p in (stack.shipped, stack.flipped):
        wait_query(p, expr, lambda r: len(r) >= 8, "every block and self series")
    # PortownerAbsent is pending, even firing, at Prometheus's start, until
    # the first scrape lands: judged from the stop on.
    since = time.time()
    stack.collectd.stop()  # SIGTERM; exit 0 and a clean log checked
    stopped = time.monotonic()
    wait_query(stack.shipped, expr, lambda r: r == [], "no series after collectd stopped")
    silent = pending_then_firing(stack.shipped, "PortownerHostSilent", since)
    assert silent["instance"] == collectd.HOST, silent
    pending_then_firing(stack.shipped, "PortownerAbsent", since)
    down = pending_then_firing(stack.shipped, "PortownerScrapeDown", since)
    assert down["instance"] == stack.target, down
    # The flipped job, asked now (seconds after the shipped one emptied and
    # its alerts fired), still returns every series as if collectd ran.
    assert time.monotonic() - stopped < 240, "too slow to tell 5 minutes of lookback"
    still = stack.flipped.query(expr)
    assert len(still) >= 8 and all(l["exported_instance"] == collectd.HOST
                                   for l, _ in still), still
    assert stack.flipped.query('absent(collectd_portowner_count{type="sockets"})') == []
    assert stack.flipped.query("up") == [({"__name__": "up", "instance": stack.target,
                                           "job": "collectd"}, 0.0)]
