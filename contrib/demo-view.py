#!/usr/bin/env python3
"""What contrib/demo.sh shows: collectd's output (logfile to stdout with
time stamps and severities, write_log in JSON), made readable at a glance.

Usage: collectd -f -C demo.conf 2>&1 | demo-view.py --block NAME

- One line per read: the time, the values of the demo block NAME (sockets,
  owner processes, unowned sockets, requirements missing, accept queue), how
  many blocks reported and how many of them miss a listener, and what the read
  cost (portowner-self/duration-scan, and which resolver ran).
- Every notification on a line of its own, marked "!!" (in colour on a
  terminal): severity, block, type instance, message; after the line of the
  read that sent it.
- Every error, warning and notice of collectd and every line of the
  portowner plugin, as collectd printed it; anything collectd wrote that is
  not a log line (stderr), as it came. Only write_log's values and collectd's
  other [info] chatter are left out.

The values of one read share one time stamp; its line is printed when a value
of a later read arrives or when no value came for READ_QUIET seconds.
"""
import argparse
import json
import os
import re
import select
import sys
import time

READ_QUIET = 0.4
LOG = re.compile(r"^\[(?P<ts>[0-9-]+ (?P<hms>[0-9:]+))\] (?:\[(?P<sev>[a-z]+)\] )?(?P<msg>.*)$")
NOTIF = re.compile(r"^Notification: severity = (?P<sev>[A-Z]+), host = [^,]*, "
                   r"plugin = (?P<plugin>[^,]*), (?:plugin_instance = (?P<pi>[^,]*), )?"
                   r"type = [^,]*, (?:type_instance = (?P<ti>[^,]*), )?"
                   r"message = (?P<text>.*)$")
COLOUR = {"FAILURE": "\033[1;31m", "WARNING": "\033[1;33m", "OKAY": "\033[1;32m"}


class View:
    def __init__(self, block, out):
        self.block = block
        self.out = out
        self.tty = out.isatty()
        self.group = None      # the read being collected: {"time": t, ...}
        self.in_values = False  # inside a "write_log values:" entry
        self.pending = []       # notifications, printed after their read's line

    def say(self, line):
        self.out.write(line + "\n")
        self.out.flush()

    def mark(self, sev, text):
        if self.tty and sev in COLOUR:
            return COLOUR[sev] + text + "\033[0m"
        return text

    def value(self, vl):
        """One value list of write_log's JSON."""
        t = vl.get("time")
        if self.group is not None and self.group["time"] != t:
            self.flush()
        if self.group is None:
            self.group = {"time": t, "demo": {}, "blocks": {}, "self": {}}
        if vl.get("plugin") != "portowner" or not vl.get("values"):
            return
        inst = vl.get("plugin_instance", "")
        name = vl.get("type", "") + "-" + vl.get("type_instance", "")
        v = vl["values"][0]
        if inst == "self":
            self.group["self"][name] = v
            return
        self.group["blocks"].setdefault(inst, {})[name] = v
        if inst == self.block:
            self.group["demo"][name] = v

    def flush(self):
        g, self.group = self.group, None
        self.row(g)
        for line in self.pending:
            self.say(line)
        self.pending = []

    def row(self, g):
        if not g or not g["blocks"]:
            return
        d = g["demo"]

        def n(key):
            v = d.get(key)
            return "?" if v is None else "%d" % v
        hms = (time.strftime("%H:%M:%S", time.localtime(round(g["time"])))
               if isinstance(g["time"], (int, float)) else "?")
        missing = sum(1 for b in g["blocks"].values() if b.get("count-missing", 0) > 0)
        cost = ""
        scan = g["self"].get("duration-scan")
        if scan is not None:
            bpf = g["self"].get("count-resolver_bpf")
            cost = " | read %.1f ms%s" % (
                scan * 1000, "" if bpf is None else (" (bpf)" if bpf else " (proc)"))
        self.say("%s  %s: sockets %s  processes %s  unowned %s  missing %s  "
                 "acceptq %s/%s  | %d blocks, %d missing a listener%s" % (
                     hms, self.block, n("count-sockets"), n("count-processes"),
                     n("count-unowned"), n("count-missing"),
                     n("queue_length-accept"), n("queue_length-accept_max"),
                     len(g["blocks"]), missing, cost))

    def line(self, raw):
        m = LOG.match(raw)
        if not m:
            if self.in_values and raw.startswith("[{"):
                try:
                    for vl in json.loads(raw):
                        self.value(vl)
                    return
                except ValueError:
                    pass
            self.in_values = False
            self.say(raw)
            return
        self.in_values = False
        sev, msg = m.group("sev") or "info", m.group("msg")
        if msg.startswith("write_log values:"):
            self.in_values = True
            rest = msg[len("write_log values:"):].strip()
            if rest.startswith("[{"):
                self.line(rest)
            return
        nm = NOTIF.match(msg)
        if nm:
            s = nm.group("sev")
            (self.pending.append if self.group else self.say)(self.mark(s, "!! %s %-7s %s %s: %s" % (
                m.group("hms"), s, nm.group("pi") or nm.group("plugin"),
                nm.group("ti") or "-", nm.group("text"))))
            return
        if sev != "info" or "portowner plugin: " in msg:
            self.say(raw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block", required=True, help="the demo block's name")
    args = ap.parse_args()
    view = View(args.block, sys.stdout)
    fd = sys.stdin.fileno()
    buf = b""
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], READ_QUIET)
            if not ready:
                view.flush()
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for l in lines:
                view.line(l.decode("utf-8", "replace"))
        if buf:
            view.line(buf.decode("utf-8", "replace"))
        view.flush()
    except KeyboardInterrupt:
        view.flush()
    except BrokenPipeError:
        pass


if __name__ == "__main__":
    main()
