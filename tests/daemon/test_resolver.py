"""Resolver: the owner walk the plugin uses, in the real collectd daemon.

"bpf" walks every task's fd table in the kernel on every read (no
incremental read), "proc" is the readlink walk of /proc, "auto" (the
default) takes BPF when it loads and says once when it does not;
portowner-self/count-resolver_bpf says which one ran.
"""
import re

import pytest

from lib import collectd, dump, listeners, waits
from lib.collectd import block, portowner_conf

pytestmark = [
    pytest.mark.requires_root("loading the BPF walk needs root"),
    pytest.mark.requires_collectd("logfile", "unixsock", "csv"),
    pytest.mark.requires_build("portowner.so", "portowner-dump", "po-listen"),
]

SCANS = ("operations-full_scan", "operations-incremental_scan")


def tcp4(port):
    return f"prefork:2:tcp4:127.0.0.1:{port}"


@pytest.mark.parametrize("resolver,bpf", [("bpf", 1), ("proc", 0)])
def test_resolver_runs_and_says_so(daemon, listen, resolver, bpf):
    """Both give the dump's values; bpf makes every read a full walk."""
    if bpf:
        dump.require_bpf()
    p = listeners.free_port()
    listen(tcp4(p))
    d = daemon(portowner_conf(block("web", Port=p), Resolver=resolver)).start()
    r = waits.wait_read(d, "web", {"count-sockets": 1, "count-processes": 3})
    assert r.values == dump.values_from_dump(dump.dump_json("--port", str(p)))
    g = waits.read(d, "self", names=("count-resolver_bpf",)).values
    assert g["count-resolver_bpf"] == bpf, g
    if bpf:
        s = waits.wait_csv_read(d, "self", SCANS,
                                lambda v: v["operations-full_scan"] >= 3,
                                "3 full walks", timeout_s=20)
        assert s.values["operations-incremental_scan"] == 0, s
        assert d.log_matches(r"owner walk: BPF")
    d.stop()


def test_auto_falls_back_once_and_bpf_fails_naming_why(daemon, listen,
                                                       tmp_path, work):
    """ProcRoot that is not procfs of our pid namespace: "auto" takes the
    readlink walk and says so once; "bpf" fails the init naming why."""
    dump.require_bpf()
    root = tmp_path / "proc"
    root.mkdir()
    p = listeners.free_port()
    listen(tcp4(p))
    d = daemon(portowner_conf(block("web", Port=p), ProcRoot=str(root)))
    d.start()
    waits.wait_read(d, "web", {"count-sockets": 1, "count-unowned": 1})
    waits.wait_reads(d, collectd.ident("web", "count-sockets"), 3)
    said = [l for l in d.log_text().splitlines()
            if 'Resolver "auto"' in l]
    assert len(said) == 1 and "not procfs of our own pid namespace" in said[0] \
        and "readlink walk" in said[0], said
    g = waits.read(d, "self", names=("count-resolver_bpf",)).values
    assert g["count-resolver_bpf"] == 0, g
    d.stop()

    rc, lines = collectd.collectd_test_config(
        work, portowner_conf(block("web", Port=p), ProcRoot=str(root),
                             Resolver="bpf"))
    errors = [l for l in lines if "[error]" in l and 'Resolver "bpf"' in l
              and re.search(r"not procfs of our own pid namespace", l)]
    assert rc == 1 and errors, "\n".join(lines)
