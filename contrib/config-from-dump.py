#!/usr/bin/env python3
"""Writes a collectd.conf that watches every port in `portowner-dump --json`.

Usage: portowner-dump --json | config-from-dump.py [--interval S]
           [--plugindir DIR] [--plugin-only] [--inventory NAME] > collectd.conf

One <Port> block per (protocol, port), named like "tcp-22", with the programs
and users that hold it now as ExpectProcess/ExpectUser. With --plugin-only
only the LoadPlugin line and the <Plugin portowner> block are written, to
paste into an existing collectd.conf.

With --inventory NAME an <Inventory "NAME"> block is written instead of the
<Port> blocks: what listens now is declared, one Allow line per (program,
user) with its ports, the program its executable's basename (what Allow
matches; never the process name, never a pattern). The rules for the path
below hold for it too, and a basename of "*" (which Allow reads as any
program) is left out as well. A socket with no owner found cannot be
declared by an Allow: a comment names it. Sockets of other network
namespaces are left out (an inventory sees its own only).

A program is written as the path of its executable (ExpectProcess
"/usr/sbin/sshd": that file, by device and inode), never as the process name,
which any process chooses (a process named "/.*/" would otherwise become a
regular expression that accepts anything) and which ExpectProcess does not
match anyway (a name there is the exe's basename). An owner whose exe cannot
be used as a path (unknown, deleted, not a file here, not printable) is left
out, with a comment that says why: it will be reported as unexpected.
"""
import argparse
import json
import os
import sys
import unicodedata


def quote(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def printable(s):
    """No control, format (bidi), separator or replacement character."""
    return all(unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp", "Cs")
               and c != "\ufffd" for c in s)


def exe_path(exe):
    """(the exe as an ExpectProcess path, None) or (None, why not)."""
    if not exe:
        return None, "its executable could not be read"
    if exe.endswith(" (deleted)"):
        return None, "its executable was deleted"
    if not printable(exe):
        return None, "its executable path is not printable"
    # A path starts with "/"; one that also ends with "/" would be read as
    # "/REGEX/" (and is no file anyway).
    if not exe.startswith("/") or exe.endswith("/"):
        return None, "its executable is not an absolute file path"
    if not os.path.isfile(exe):
        return None, "its executable is not a file here"
    return exe, None


def allow_program(exe):
    """(the exe's basename for Allow, None) or (None, why not)."""
    path, why = exe_path(exe)
    if why and why != "its executable is not a file here":
        return None, why
    base = exe.rsplit("/", 1)[-1]
    if base == "*":
        return None, 'its executable is named "*", which Allow reads as any program'
    return base, None


def inventory_block(name, sockets):
    """The lines of an <Inventory "name"> block that declares sockets."""
    own = None
    try:
        own = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        pass
    allows, protos, notes = {}, set(), []
    for s in sockets:
        if own is not None and s.get("netns") not in (None, own):
            continue
        protos.add(s["protocol"])
        where = f"{s['protocol']} {s.get('address', '?')}:{s['port']}"
        if not s["owners"]:
            notes.append(f"    # {where}: no owner found (uid {s.get('uid')}): "
                         "not declared")
        for o in s["owners"]:
            prog, why = allow_program(o.get("exe"))
            user = o.get("user") or (str(o["uid"]) if o.get("uid") is not None
                                     else None)
            if not prog or not user:
                notes.append(f"    # {where}: pid {o['pid']} is not declared: "
                             f"{why or 'its user is unknown'}")
                continue
            allows.setdefault((prog, user), set()).add(s["port"])
    out = [f"  <Inventory {quote(name)}>"]
    out.append("    Protocol " + " ".join(quote(p) for p in
                                         sorted(protos or {"tcp"})))
    out += sorted(set(notes))
    for (prog, user), ports in sorted(allows.items()):
        out.append(f"    Allow {quote(prog)} {quote(user)} "
                   + " ".join(str(p) for p in sorted(ports)))
    out.append("  </Inventory>")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval", type=float, default=10)
    ap.add_argument("--plugindir", default=None)
    ap.add_argument("--plugin-only", action="store_true")
    ap.add_argument("--inventory", metavar="NAME", default=None)
    args = ap.parse_args()
    if args.inventory is not None and (
            not args.inventory or "/" in args.inventory
            or not printable(args.inventory)
            or len(args.inventory.encode()) > 127):
        ap.error("--inventory: a block name of 1 to 127 bytes, printable, "
                 "no '/'")

    sockets = json.load(sys.stdin)
    ports = {}
    for s in sockets:
        key = (s["protocol"], s["port"])
        entry = ports.setdefault(key, {"exes": set(), "users": set(),
                                       "skipped": {}})
        for o in s["owners"]:
            path, why = exe_path(o.get("exe"))
            if path:
                entry["exes"].add(path)
            else:
                entry["skipped"].setdefault(o["pid"], why)
            if o.get("user"):
                entry["users"].add(o["user"])
            elif o.get("uid") is not None:
                entry["users"].add(str(o["uid"]))

    out = []
    if not args.plugin_only:
        out.append("# Generated by config-from-dump.py from portowner-dump --json")
        out.append(f"Interval {args.interval:g}")
        if args.plugindir:
            out.append(f"PluginDir {quote(args.plugindir)}")
        out.append('TypesDB "/usr/share/collectd/types.db"')
        out.append("LoadPlugin logfile")
        out.append("<Plugin logfile>")
        out.append('  LogLevel "info"')
        out.append('  File STDOUT')
        out.append("  Timestamp true")
        out.append("  PrintSeverity true")
        out.append("</Plugin>")
        out.append("LoadPlugin write_log")
        out.append("<Plugin write_log>")
        out.append('  Format "Graphite"')
        out.append("</Plugin>")
    out.append("LoadPlugin portowner")
    out.append("<Plugin portowner>")
    if args.inventory is not None:
        out += inventory_block(args.inventory, sockets)
        ports = {}
    for (proto, port) in sorted(ports):
        e = ports[(proto, port)]
        out.append(f"  <Port {quote(f'{proto}-{port}')}>")
        out.append(f"    Port {port}")
        out.append(f"    Protocol {quote(proto)}")
        for pid, why in sorted(e["skipped"].items()):
            out.append(f"    # pid {pid} is not expected by program: {why}")
        if e["exes"]:
            out.append("    ExpectProcess " + " ".join(quote(c) for c in sorted(e["exes"])))
        if e["users"]:
            out.append("    ExpectUser " + " ".join(quote(u) for u in sorted(e["users"])))
        out.append("  </Port>")
    out.append("</Plugin>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
