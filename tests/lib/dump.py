"""portowner-dump, the command-line tool built from the plugin's core: run
it, read its JSON, and what the plugin's values must be by its answer."""
import json
import os
import subprocess

import pytest

from . import env, waits


def run_dump(*args, text=True, check=False):
    """portowner-dump ARGS: the CompletedProcess (text, or bytes with
    text=False); check: fails unless it exited 0."""
    env.require_file(env.PORTOWNER_DUMP, "portowner-dump")
    r = subprocess.run([env.PORTOWNER_DUMP] + [str(a) if not isinstance(a, bytes)
                                               else a for a in args],
                       capture_output=True, text=text,
                       timeout=waits.timeout(120), stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        err = r.stderr if text else r.stderr.decode(errors="replace")
        raise AssertionError("portowner-dump %s exited %d: %s"
                             % (" ".join(map(str, args)), r.returncode, err))
    return r


def bpf_built():
    """Whether this build has the BPF owner walk (./configure says why when
    it has not): portowner-dump --resolver bpf says "built without BPF
    support" otherwise."""
    r = run_dump("--resolver", "bpf", "--port", "1")
    return "built without BPF support" not in r.stderr


def require_bpf():
    """Skips the test unless the BPF walk can load here (a build with it,
    root); fails when it should load and does not, naming why."""
    r = run_dump("--resolver", "bpf", "--port", "1")
    if r.returncode != 0 and "built without BPF support" in r.stderr:
        pytest.skip("built without BPF support (./configure said why)")
    if os.geteuid() != 0:
        pytest.skip("loading the BPF walk needs root (or CAP_BPF and "
                    "CAP_PERFMON)")
    assert r.returncode == 0, r.stderr


def dump_json(*args):
    """`portowner-dump --json ARGS...` parsed, strictly: exit 0, a UTF-8
    JSON document, a list of sockets."""
    r = run_dump("--json", *args, text=False, check=True)
    try:
        data = json.loads(r.stdout.decode("utf-8", errors="strict"))
    except ValueError as e:
        raise AssertionError("portowner-dump --json %s printed bad JSON (%s):\n%r"
                             % (" ".join(map(str, args)), e, r.stdout[:4000]))
    assert isinstance(data, list), "portowner-dump --json: not a list: %r" % data
    return data


def values_from_dump(socks):
    """What the plugin's values must be for these sockets (one block)."""
    pids = {o["pid"] for s in socks for o in s.get("owners") or []}
    acc = sum(s.get("accept_queue") or 0 for s in socks if s["protocol"] == "tcp")
    accmax = sum(s.get("accept_queue_max") or 0 for s in socks
                 if s["protocol"] == "tcp")
    return {
        "count-sockets": len(socks),
        "count-processes": len(pids),
        "count-unowned": sum(1 for s in socks if not s.get("owners")),
        "queue_length-accept": acc,
        "queue_length-accept_max": accmax,
    }
