"""contrib/grafana/portowner.json against what write_prometheus really
exports: collectd with portowner and write_prometheus is started and
scraped, and every metric name, label matcher, grouping label and legend
label that a query of the dashboard uses must exist in that scrape.
"""
import json
import os
import re

import pytest

from lib import collectd, env, listeners

from . import prom

DASHBOARD = os.path.join(env.SRCDIR, "contrib", "grafana", "portowner.json")
# One read: 6 values for each of the two blocks, 5 of the plugin's own.
SERIES_PER_READ = 17
DS_VAR = "DS_PROMETHEUS"


def needs_daemon(test):
    """What the scrape needs: a real collectd with portowner and
    write_prometheus."""
    for mark in (pytest.mark.requires_root("the daemon harness runs exec as nobody"),
                 pytest.mark.requires_collectd("logfile", "unixsock",
                                               "write_prometheus", "exec"),
                 pytest.mark.requires_build("portowner.so", "po-listen")):
        test = mark(test)
    return test


# PromQL words that are not metric names (the dashboard's queries may use
# these; anything else bare is taken for a metric and checked).
FUNCTIONS = {
    "abs", "absent", "avg", "avg_over_time", "bottomk", "ceil", "changes",
    "clamp_max", "clamp_min", "count", "count_over_time", "delta", "deriv",
    "floor", "group", "idelta", "increase", "irate", "label_replace", "max",
    "max_over_time", "min", "min_over_time", "quantile", "quantile_over_time",
    "rate", "resets", "round", "sort", "sort_desc", "stddev", "sum",
    "sum_over_time", "time", "timestamp", "topk", "vector", "last_over_time",
    "label_values",
}
KEYWORDS = {"or", "and", "unless", "bool", "on", "ignoring", "group_left",
            "group_right", "offset", "by", "without", "inf", "nan"}

SELECTOR = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^}]*)\}')
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')
GROUPING = re.compile(r'\b(by|without|on|ignoring)\s*\(([^)]*)\)')
VARIABLE = re.compile(r'\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?')


def parse_expr(expr):
    """(selectors, grouping labels) of a PromQL expression:
    selectors = [(metric, [(label, op, value)...])]. Fails on a bare
    identifier that is neither a known function/keyword nor a metric
    selector, so that no metric can hide from the check."""
    selectors = []
    for m in SELECTOR.finditer(expr):
        body, pos, matchers = m.group(2), 0, []
        while pos < len(body.rstrip()):
            mm = MATCHER.match(body, pos)
            assert mm, "cannot read the label matchers %r in %r" % (body, expr)
            matchers.append(mm.groups())
            pos = mm.end()
        assert m.group(1), "a selector without a metric name in %r" % expr
        selectors.append((m.group(1), matchers))
    rest = SELECTOR.sub(" ", expr)
    grouping = []
    for g in GROUPING.finditer(rest):
        grouping += [l.strip() for l in g.group(2).split(",") if l.strip()]
    rest = GROUPING.sub(" ", rest)
    rest = re.sub(r'"(?:[^"\\]|\\.)*"', " ", rest)  # strings
    for word in re.findall(r'[a-zA-Z_:][a-zA-Z0-9_:]*', rest):
        if word in KEYWORDS:
            continue
        if word in FUNCTIONS:
            continue
        # A bare metric name: a selector without matchers.
        selectors.append((word, []))
    return selectors, grouping


def matches(sample, matchers):
    """Does sample satisfy the label matchers, with every dashboard
    variable at its "All" value (.*)? Prometheus anchors its regexes."""
    for label, op, value in matchers:
        have = sample.labels.get(label, "")
        if op in ("=~", "!~"):
            rx = VARIABLE.sub(".*", value)
            ok = re.fullmatch(rx, have) is not None
            if (op == "=~") != ok:
                return False
        else:
            assert not VARIABLE.search(value), (
                "%s%s%r uses a variable with %s: a multi-value variable needs "
                "=~" % (label, op, value, op))
            if (op == "=") != (have == value):
                return False
    return True


def targets(dash):
    for p in dash["panels"]:
        for t in p.get("targets", []):
            yield p, t


@pytest.fixture(scope="module")
def dashboard():
    with open(DASHBOARD) as f:
        text = f.read()
    try:
        return json.loads(text)
    except ValueError as e:
        pytest.fail("%s is not valid JSON: %s" % (DASHBOARD, e), pytrace=False)


def test_dashboard_is_an_importable_grafana_dashboard(dashboard):
    d = dashboard
    assert d.get("title") and d.get("uid") and isinstance(d.get("schemaVersion"), int)
    # The data source is a variable: the importer picks their Prometheus.
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables.get(DS_VAR)
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", variables
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat: %s" % ids
    for p in panels:
        assert p.get("title"), p
        assert p["datasource"] == {"type": "prometheus", "uid": "${%s}" % DS_VAR}, p["title"]
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and 0 <= g["x"] and g["x"] + g["w"] <= 24, (p["title"], g)
        assert p.get("targets"), "panel %r has no query" % p["title"]
        for t in p["targets"]:
            assert t.get("expr") and t.get("refId"), (p["title"], t)
            assert t["datasource"]["uid"] == "${%s}" % DS_VAR, (p["title"], t)
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            assert v["datasource"]["uid"] == "${%s}" % DS_VAR, v["name"]

    # The panels the issue asks for, recognised by what they query.
    def panel_with(ptype, pattern):
        return [p["title"] for p, t in targets(d)
                if (ptype is None or p["type"] == ptype) and re.search(pattern, t["expr"])]
    sockets = r'collectd_portowner_count\{type="sockets"'
    assert panel_with("timeseries", "^" + sockets), "no 'listeners per port over time' panel"
    assert panel_with(None, sockets + r'[^}]*\} == 0'), "no 'ports with 0 listeners' panel"
    assert panel_with("timeseries", r'^collectd_portowner_count\{type="processes"'), \
        "no owner-process panel"
    assert panel_with("timeseries", r'^collectd_portowner_queue_length\{type="accept"'), \
        "no accept-queue panel"
    assert panel_with("timeseries", r'^collectd_portowner_count\{type="unowned"'), \
        "no unowned-sockets panel"


@pytest.fixture(scope="module")
def scrape():
    """(samples, listener) of a collectd running portowner with a block
    that has a listener ("web") and one that has none ("down"): a scrape in
    which every series of one read (one time stamp) is there."""
    work = collectd.Workdir()
    l = listeners.Listener("tcp4:127.0.0.1:%d" % listeners.free_port(),
                           backlog=64, logdir=work.path)
    prom_port = listeners.free_port()
    d = collectd.Collectd(work, prom.web_and_down_conf(l.port, prom_port),
                          csv=False)
    d.expect_log(collectd.UNIXSOCK_RACE)
    d.expect_log(prom.MHD_LOGGER_NOISE)
    ok = False
    try:
        d.start()

        # The values of one read reach write_prometheus one by one: wait for
        # a scrape where one read has them all, the listener counted.
        def one_whole_read(samples):
            read = {(s.name, s.labels.get("portowner"), s.labels.get("type")): s.value
                    for s in prom.newest_read(samples)}
            return (len(read) >= SERIES_PER_READ and
                    read.get(("collectd_portowner_count", "web", "processes")) == 1 and
                    read.get(("collectd_portowner_queue_length", "web",
                              "accept_max")) == 64)

        samples = prom.wait_scrape(prom_port, one_whole_read,
                                   "the %d series of one read" % SERIES_PER_READ)
        yield samples, l
        ok = True
    finally:
        try:
            collectd.finish_daemons([d], [work], failed=not ok)
        finally:
            l.cleanup()


@needs_daemon
def test_write_prometheus_exports_the_documented_names(scrape):
    """What the README documents: two metric families per block and the
    self-metrics, labels portowner (block), type (value) and instance
    (collectd host name)."""
    samples, l = scrape
    got = {(s.name, s.labels["portowner"], s.labels["type"]): (s.value, s.labels)
           for s in samples if s.name.startswith("collectd_portowner")}
    assert set(got) == {
        ("collectd_portowner_count", b, t) for b in ("web", "down")
        for t in ("sockets", "processes", "unowned", "missing")} | {
        ("collectd_portowner_queue_length", b, t) for b in ("web", "down")
        for t in ("accept", "accept_max")} | {
        # The plugin's own cost (ReportSelf, on by default).
        ("collectd_portowner_duration_seconds", "self", "scan"),
        ("collectd_portowner_count", "self", "fds_scanned"),
        ("collectd_portowner_count", "self", "fds_verified"),
        ("collectd_portowner_count", "self", "processes_scanned"),
        ("collectd_portowner_count", "self", "resolver_bpf"),
        ("collectd_portowner_operations_total", "self", "full_scan"),
        ("collectd_portowner_operations_total", "self", "incremental_scan")}, \
        sorted(got)
    for value, labels in got.values():
        assert set(labels) == {"portowner", "type", "instance"}, labels
        assert labels["instance"] == collectd.HOST, labels
    assert got[("collectd_portowner_count", "web", "sockets")][0] == 1
    assert got[("collectd_portowner_count", "web", "processes")][0] == 1
    assert got[("collectd_portowner_count", "down", "sockets")][0] == 0
    # One requirement each (tcp4/PORT): met for web, not for down.
    assert got[("collectd_portowner_count", "web", "missing")][0] == 0
    assert got[("collectd_portowner_count", "down", "missing")][0] == 1
    assert got[("collectd_portowner_queue_length", "web", "accept_max")][0] == 64


@needs_daemon
def test_every_query_of_the_dashboard_finds_its_series(dashboard, scrape):
    samples, l = scrape
    checked = []
    queries = [(p["title"], t["expr"], t.get("legendFormat", ""))
               for p, t in targets(dashboard)]
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r'\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*', q)
            assert m, "variable %s: not label_values(...): %r" % (v["name"], q)
            queries.append(("variable $" + v["name"], m.group(1), "{{%s}}" % m.group(2)))
    for title, expr, legend in queries:
        selectors, grouping = parse_expr(expr)
        assert selectors, "%s: no metric in %r" % (title, expr)
        for metric, matchers in selectors:
            named = [s for s in samples if s.name == metric]
            assert named, "%s: metric %s is not in the scrape (%s)" % (
                title, metric, sorted({s.name for s in samples if "portowner" in s.name}))
            for label, op, value in matchers:
                assert any(label in s.labels for s in named), (
                    "%s: %s has no label %r (labels: %s)" % (
                        title, metric, label, sorted({k for s in named for k in s.labels})))
            hit = [s for s in named if matches(s, matchers)]
            assert hit, "%s: no series matches %s{%s} in the scrape" % (
                title, metric, matchers)
            for label in grouping:
                assert all(label in s.labels for s in hit), (
                    "%s: grouping label %r missing on %s" % (title, label, metric))
            for label in re.findall(r'\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}', legend):
                assert all(label in s.labels for s in hit), (
                    "%s: legend label %r missing on %s" % (title, label, metric))
                assert not grouping or label in grouping, (
                    "%s: legend label %r is aggregated away by %s" % (title, label, grouping))
            checked.append((title, metric))
    assert len(checked) >= 8, checked


@needs_daemon
def test_the_ports_with_no_listener_query_lists_the_down_port(dashboard, scrape):
    """`SELECTOR == 0`, evaluated on the scrape, is the block without a
    listener and not the one with."""
    samples, l = scrape
    found = False
    for p, t in targets(dashboard):
        m = re.fullmatch(r'\s*(.*\})\s*==\s*0\s*', t["expr"])
        if not m:
            continue
        (metric, matchers), = parse_expr(m.group(1))[0]
        down = {s.labels["portowner"] for s in samples
                if s.name == metric and matches(s, matchers) and s.value == 0}
        assert down == {"down"}, (p["title"], down)
        found = True
    assert found, "no `... == 0` query in the dashboard"
