"""Scraping write_prometheus: the text exposition format, parsed."""
import re
import urllib.error
import urllib.request

from lib import listeners, waits
from lib.collectd import block, portowner_conf

_SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def web_and_down_conf(web_port, prom_port):
    """collectd config of the dashboard tests: portowner with a block "web"
    on web_port and a block "down" on a free port nothing listens on, and
    write_prometheus on 127.0.0.1:prom_port."""
    return portowner_conf(block("web", Port=web_port, Protocol="tcp4"),
                          block("down", Port=listeners.free_port(),
                                Protocol="tcp4")) + """
LoadPlugin write_prometheus
<Plugin write_prometheus>
  Host "127.0.0.1"
  Port "%d"
</Plugin>
""" % prom_port


class Sample:
    def __init__(self, name, labels, value, ts):
        self.name, self.labels, self.value, self.ts = name, labels, value, ts

    def __repr__(self):
        return "%s{%s} %s" % (self.name, ",".join(
            '%s="%s"' % kv for kv in sorted(self.labels.items())), self.value)


def _unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse(text):
    """[Sample...] of a /metrics page; raises AssertionError on a line that
    is neither a comment nor a sample (the scrape must be valid)."""
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, "write_prometheus printed a line that is not a sample: %r" % line
        name, body, value, ts = m.groups()
        labels = {}
        if body:
            pos = 0
            while pos < len(body):
                lm = _LABEL.match(body, pos)
                assert lm, "bad labels in %r" % line
                labels[lm.group(1)] = _unescape(lm.group(2))
                pos = lm.end()
        samples.append(Sample(name, labels, float(value), ts))
    return samples


def scrape(port, host="127.0.0.1"):
    """The /metrics page of write_prometheus on port, parsed; None when the
    server does not answer (yet)."""
    url = "http://%s:%d/metrics" % (host, port)
    try:
        with urllib.request.urlopen(url, timeout=waits.timeout(5)) as r:
            assert r.status == 200, "%s: HTTP %d" % (url, r.status)
            return parse(r.read().decode("utf-8"))
    except (urllib.error.URLError, ConnectionError):
        return None


def find(samples, name, **labels):
    return [s for s in samples or [] if s.name == name
            and all(s.labels.get(k) == v for k, v in labels.items())]


def wait_sample(port, name, value=None, timeout_s=10, **labels):
    """Waits until the scrape has a sample name{labels} (== value when
    given); returns it."""
    last = []

    def found():
        samples = scrape(port)
        last[:] = [s for s in samples or [] if "portowner" in s.name]
        hits = find(samples, name, **labels)
        if value is not None:
            hits = [s for s in hits if s.value == value]
        return hits[0] if hits else None

    return waits.wait_for(found, timeout_s, "%s%s%s in the scrape of port %d" % (
        name, labels, "" if value is None else " == %s" % value, port),
        lambda: last)


def wait_scrape(port, pred, what, timeout_s=10):
    """Waits until a scrape of port satisfies pred(samples); returns the
    samples."""
    last = []

    def found():
        samples = scrape(port)
        last[:] = [s for s in samples or [] if "portowner" in s.name]
        return samples if samples is not None and pred(samples) else None

    return waits.wait_for(found, timeout_s, "%s in the scrape of port %d"
                          % (what, port), lambda: last)


def newest_read(samples, prefix="collectd_portowner"):
    """The samples of the newest read: write_prometheus stamps each sample
    with its value's time (ms); those of one read share it."""
    mine = [s for s in samples if s.name.startswith(prefix) and s.ts]
    if not mine:
        return []
    t = max(int(s.ts) for s in mine)
    return [s for s in mine if int(s.ts) == t]


# write_prometheus (collectd 5.12) with libmicrohttpd >= 0.9.71 logs this at
# start-up on every system: it is collectd's, not ours, and harmless.
MHD_LOGGER_NOISE = (r"\[error\] write_prometheus plugin: MHD_OPTION_EXTERNAL_LOGGER "
                    r"is not the first option")
