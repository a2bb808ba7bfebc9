"""The warning about processes whose fds could not be read names them (pid
and comm), also as root.

Root with CAP_SYS_PTRACE but without CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH (setpriv --bounding-set) is refused /proc/PID/fd of
another user's process (mode 0500, its owner's): the kernel's own check,
on a real process holding a real socket. The test runs in a new pid
namespace with its own /proc (unshare --pid --fork --mount-proc), so the
only refused process is its listener, whatever else runs on the machine:
  - portowner-dump --resolver proc says "the fds of 1 process could not be
    read: PID (po-denied)";
  - the daemon (Resolver "proc") says it once in its warning, with the pid
    and the comm.
"""
import json
import os
import re
import subprocess
import sys

import pytest

from lib import collectd, env, waits
from lib.collectd import block, portowner_conf
from lib.listeners import free_port

pytestmark = [
    pytest.mark.requires_root("setpriv keeps uid 0 without the DAC "
                              "capabilities; unshare makes a pid namespace"),
    pytest.mark.requires_collectd("logfile"),
    pytest.mark.requires_build("portowner.so", "portowner-dump", "po-listen"),
]

NO_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
COMM = "po-denied"

# Runs in the new pid namespace (it is its pid 1): starts the listener as
# nobody, then the command (argv[3:], '{port}' replaced), without the DAC
# capabilities, and prints JSON: the listener's pid and port, the command's
# exit status and output; with "--until REGEX FILE" the command is a daemon
# stopped once FILE has a line matching REGEX (or after the deadline).
INNER = r'''
import json, re, subprocess, sys, time
po_listen, spec, deadline = sys.argv[1], sys.argv[2], float(sys.argv[3])
args = sys.argv[4:]
until = None
if args[0] == "--until":
    until, args = (args[1], args[2]), args[3:]
lst = subprocess.Popen(["setpriv", "--reuid", "nobody", "--regid", "nogroup",
                        "--clear-groups", po_listen, "--comm", "%s", spec],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
pid = port = None
for line in lst.stdout:
    f = line.split()
    if f and f[0] == "SOCK":
        port, pid = int(f[4]), int(f[6].split(",")[0])
    if f == ["READY"]:
        break
out = {"listener": pid, "port": port}
cmd = %r + args
if until is None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=deadline)
    out.update(rc=r.returncode, stdout=r.stdout, stderr=r.stderr)
else:
    d = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    end, seen = time.monotonic() + deadline, False
    while time.monotonic() < end and not seen and d.poll() is None:
        try:
            with open(until[1], errors="replace") as f:
                seen = any(re.search(until[0], l) for l in f)
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    d.terminate()
    out.update(rc=d.wait(timeout=deadline), seen=seen)
lst.stdin.close()
lst.wait(timeout=deadline)
print(json.dumps(out))
''' % (COMM, NO_DAC)


def in_pid_namespace(port, *args):
    deadline = waits.timeout(60)
    r = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", INNER,
         env.PO_LISTEN, "tcp4:127.0.0.1:%d" % port, str(deadline)] + list(args),
        capture_output=True, text=True, timeout=3 * deadline)
    assert r.returncode == 0, "unshare: %d\n%s%s" % (r.returncode, r.stdout, r.stderr)
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["port"] == port and out["listener"] > 1, out
    return out


def test_dump_names_the_process_it_could_not_read_as_root():
    port = free_port()
    out = in_pid_namespace(port, env.PORTOWNER_DUMP, "--resolver", "proc",
                           "--port", str(port))
    assert out["rc"] == 0, out
    # The socket is listed, its owner unknown...
    assert re.search(r"127\.0\.0\.1:%d .*- \(no owner found\)" % port,
                     out["stdout"]), out
    # ...and the one refused process is named, root's case said.
    said = [l for l in out["stderr"].splitlines() if "could not be read" in l]
    assert said == [
        "portowner-dump: the fds of 1 process could not be read: %d (%s); "
        "sockets it holds may show no owner (reading them needs root, or "
        "CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE; a process of another user "
        "namespace, as a sandbox's init, is closed even to root)"
        % (out["listener"], COMM)], out


def test_daemon_warning_names_the_process_it_could_not_read_as_root():
    port = free_port()
    work = collectd.Workdir()
    try:
        log = work.file("collectd.log")
        body = portowner_conf(block("denied", Port=port, Protocol="tcp4"),
                              Resolver="proc")
        conf = work.file("collectd.conf")
        with open(conf, "w") as f:
            f.write("\n".join(collectd.base_config(work, log, interval=0.2)) +
                    "\n" + body)
        for name in ("logfile", "portowner"):
            work.install_plugin(name)
        warning = (r"\[warning\] portowner plugin: could not read the open files "
                   r"\(/proc/PID/fd\) of 1 process: (\d+) \(%s\)\. " % COMM)
        out = in_pid_namespace(port, "--until", warning, log,
                               env.COLLECTD, "-f", "-C", conf)
        with open(log, errors="replace") as f:
            lines = f.read().splitlines()
        assert out["seen"], "no warning naming the process:\n%s" % "\n".join(lines)
        said = [m for m in (re.search(warning, l) for l in lines) if m]
        assert [int(m.group(1)) for m in said] == [out["listener"]], lines
        assert not [l for l in lines if "could not read the open files" in l
                    and not re.search(warning, l)], lines
    finally:
        work.remove()
