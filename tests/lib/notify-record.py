#!/usr/bin/python3 -IS
"""NotificationExec handler of the daemon harness (tests/lib/collectd.py):
records one notification.

collectd's exec plugin (5.12) forks this once per notification, as the user
named in `NotificationExec "nobody" ...`, and writes the notification to our
stdin like HTTP headers:

    Severity: FAILURE
    Time: 1795626096.751
    Host: po-test                  (only when set)
    Plugin: portowner              (only when set)
    PluginInstance: web            (only when set)
    Type: ...                      (only when set)
    TypeInstance: ...              (only when set)
    owners: [{"pid":1311,...}]     <- notification meta, one "name: value"
    owners_total: 1                   line each, after the fixed headers
                                      (strings as-is, ints %PRIi64,
                                      doubles %e, booleans true/false)

    <message>

The handler appends one JSON object per notification, as one line, to the
file named by argv[1] (under an exclusive flock: handlers run concurrently).
"""
import fcntl
import json
import os
import sys
import time

FIXED = {
    "Severity": "severity",
    "Time": "time",
    "Host": "host",
    "Plugin": "plugin",
    "PluginInstance": "plugin_instance",
    "Type": "type",
    "TypeInstance": "type_instance",
}


def parse(raw):
    rec = {v: None for v in FIXED.values()}
    rec["meta"] = {}
    head, _, message = raw.partition("\n\n")
    if message.endswith("\n"):
        message = message[:-1]
    rec["message"] = message
    in_meta = False
    for line in head.split("\n"):
        if not line:
            continue
        name, sep, value = line.partition(": ")
        if not sep:
            # "name:" with an empty value, or garbage: keep it visible.
            name, value = line.rstrip(":"), ""
        field = FIXED.get(name)
        # exec prints the fixed headers first, then the meta: a meta entry
        # that happens to be called "Type" must not overwrite the header.
        if field and not in_meta and rec[field] is None:
            rec[field] = value
        else:
            in_meta = True
            rec["meta"][name] = value
    if rec["time"] is not None:
        try:
            rec["time"] = float(rec["time"])
        except ValueError:
            pass
    return rec


def main():
    path = sys.argv[1]
    data = sys.stdin.buffer.read()
    raw = data.decode("utf-8", "surrogateescape")
    rec = parse(raw)
    rec["raw"] = data.decode("utf-8", "replace")
    rec["message_bytes"] = len(rec["message"].encode("utf-8", "surrogateescape"))
    rec["recorded_at"] = time.time()
    rec["handler_uid"] = os.getuid()
    line = json.dumps(rec, ensure_ascii=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode("ascii"))
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
