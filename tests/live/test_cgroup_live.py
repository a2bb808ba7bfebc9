"""Live: which service, which container. Real listeners (tests/po-listen)
moved by the test into real cgroups it made on this machine (hybrid: cgroup
v2 and name=systemd), then portowner-dump must name the cgroup, the unit and
the container of every owner, as the kernel's /proc/PID/cgroup shows them.
"""
import json
import os
import re
import socket
import tempfile

import pytest

from lib import dump, env
from lib.cgroups import V2, cgroups, inside, proc_cgroup, token  # noqa: F401
from lib.listeners import free_port

from .conftest import run

pytestmark = pytest.mark.requires_build("portowner-dump", "po-listen")

ID = "4f3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e"
POD = "8d1e1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"


def owners_of(listener):
    """The owners portowner-dump --json shows on the listener's port, by pid
    (every pid po-listen reported must be there)."""
    out = dump.dump_json("--port", listener.ports[0])
    owners = {o["pid"]: o for s in out for o in s["owners"]}
    assert set(listener.pids) <= set(owners), (listener.pids, out)
    return owners


def table_row(port):
    res = dump.run_dump("--port", port, check=True)
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["PROTO", "LOCAL", "SOCKETS", "ACCEPTQ", "UNIT",
                                "OWNERS"], lines[0]
    rows = [ln for ln in lines[1:] if f":{port} " in ln]
    assert len(rows) == 1, res.stdout
    return rows[0]


def test_service_unit_in_both_hierarchies(listen, cgroups):
    t = token()
    path = f"/po{t}.slice/po{t}-web.slice/web{t}.service"
    listener = listen(f"prefork:1:tcp4:127.0.0.1:{free_port()}", comm="po-unit")
    for pid in listener.pids:
        cgroups.move(pid, path)
    for pid, o in owners_of(listener).items():
        # What the kernel says, and what the test made.
        assert proc_cgroup(pid) == (path, path)
        assert o["cgroup"] == path and o["cgroup_systemd"] == path, o
        assert o["unit"] == f"web{t}.service", o
        assert o["user_unit"] is None and o["container"] is None, o
        assert o["pod"] is None, o
    row = table_row(listener.ports[0])
    assert re.search(rf"\sweb{t}\.service\s+po-unit\[", row), row


def test_unit_inside_a_user_manager(listen, cgroups):
    t = token()
    path = (f"/po{t}.slice/user-1000.slice/user@1000.service/app.slice/"
            f"app{t}.service")
    listener = listen(f"tcp4:127.0.0.1:{free_port()}")
    cgroups.move(listener.pids[0], path, where=("v2",))
    o = owners_of(listener)[listener.pids[0]]
    assert o["cgroup"] == path, o
    assert o["unit"] == "user@1000.service", o
    assert o["user_unit"] == f"app{t}.service", o
    row = table_row(listener.ports[0])
    assert f" user@1000.service/app{t}.service " in row, row


# Each runtime's naming (plugin/cgroup.c cites where each comes from),
# under a top cgroup of the test's own: (path under it, runtime, pod).
RUNTIMES = [
    (f"/system.slice/docker-{ID}.scope", "docker", None),
    (f"/docker/{ID}", "docker", None),
    (f"/machine.slice/libpod-{ID}.scope/container", "podman", None),
    ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
     f"{POD.replace('-', '_')}.slice/cri-containerd-{ID}.scope",
     "containerd", POD),
    (f"/kubepods.slice/kubepods-pod{POD.replace('-', '_')}.slice/"
     f"crio-{ID}.scope", "crio", POD),
    (f"/kubepods/besteffort/pod{POD}/{ID}", "cri", POD),
]


@pytest.mark.parametrize("sub, runtime, pod", RUNTIMES,
                         ids=[r[1] + str(i) for i, r in enumerate(RUNTIMES)])
def test_container_naming(listen, cgroups, sub, runtime, pod):
    path = f"/po{token()}" + sub
    listener = listen(f"tcp6:[::1]:{free_port()}")
    pid = listener.pids[0]
    cgroups.move(pid, path, where=("v2",))
    assert proc_cgroup(pid)[0] == path
    o = owners_of(listener)[pid]
    assert o["cgroup"] == path, o
    assert o["container"] == {"runtime": runtime, "id": ID}, o
    assert o["pod"] == pod, o
    row = table_row(listener.ports[0])
    assert f" {runtime}:{ID[:12]} " in row, row


def test_only_the_systemd_hierarchy_names_it(listen, cgroups):
    """A hybrid host where only name=systemd has the unit (the v2 path is
    the root): the unit still shows, from the v1 path."""
    t = token()
    path = f"/po{t}.slice/cron{t}.service"
    listener = listen(f"udp4:127.0.0.1:{free_port()}")
    pid = listener.pids[0]
    cgroups.move(pid, path, where=("systemd",))
    v2, sd = proc_cgroup(pid)
    assert sd == path
    o = owners_of(listener)[pid]
    assert o["cgroup"] == v2 and o["cgroup_systemd"] == path, o
    assert o["unit"] == f"cron{t}.service", o


def test_no_unit_is_a_dash(listen, cgroups):
    path = f"/po{token()}/plain"
    listener = listen(f"tcp4:127.0.0.1:{free_port()}", comm="po-plain")
    cgroups.move(listener.pids[0], path)
    o = owners_of(listener)[listener.pids[0]]
    assert o["cgroup"] == path and o["unit"] is None, o
    assert o["container"] is None, o
    row = table_row(listener.ports[0])
    assert re.search(r"\s-\s+po-plain\[", row), row


# ---- the socket's own cgroup (INET_DIAG_CGROUP_ID) --------------------------


def ss_cgroup(port):
    """{inode: cgroup path} of the TCP listeners on port as `ss --cgroup`
    prints them."""
    out = run(["ss", "-tlnHe", "--cgroup", "sport", "=", f":{port}"],
              check=True).stdout
    found = {}
    for line in out.splitlines():
        ino = re.search(r"\bino:(\d+)", line)
        cg = re.search(r"\bcgroup:(\S+)", line)
        assert ino and cg, line
        found[int(ino.group(1))] = cg.group(1)
    return found


def test_socket_cgroup_equals_ss_and_differs_from_its_owner(cgroups):
    """A socket made in one cgroup and held by a process in another (socket
    activation: PID 1 makes it, a service holds it): the socket says which
    cgroup made it, as ss does; the owner says where it runs."""
    t = token()
    path = f"/po{t}.slice/sock{t}.socket"
    with inside(cgroups, path):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        port = sock.getsockname()[1]
        ino = os.fstat(sock.fileno()).st_ino
        assert ss_cgroup(port) == {ino: path}
        out = dump.dump_json("--port", port, "--proto", "tcp4")
        assert [s["inode"] for s in out] == [ino], out
        s = out[0]
        assert s["cgroup"] == path and s["unit"] == f"sock{t}.socket", s
        assert s["cgroup_id"] == os.stat(V2 + path).st_ino, s
        owner = [o for o in s["owners"] if o["pid"] == os.getpid()]
        assert owner and owner[0]["cgroup"] == proc_cgroup(os.getpid())[0]
        assert owner[0]["cgroup"] != path
    finally:
        sock.close()


def test_socket_without_owner_found_still_names_its_unit(cgroups):
    """As nobody, portowner-dump cannot read root's fds (no owner found) nor
    open cgroups by handle (no CAP_DAC_READ_SEARCH: the cgroup2 mount is
    walked instead); the socket still says which service made it."""
    t = token()
    path = f"/po{t}.slice/web{t}.service"
    with inside(cgroups, path):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.bind(("::1", 0))
        sock.listen(4)
        port = sock.getsockname()[1]
        ino = os.fstat(sock.fileno()).st_ino
        assert ss_cgroup(port) == {ino: path}
        argv = ["setpriv", "--reuid=nobody", "--regid=nogroup",
                "--clear-groups", env.PORTOWNER_DUMP, "--port", str(port)]
        res = run(argv + ["--json"], check=True)
        s = json.loads(res.stdout)[0]
        assert s["inode"] == ino and s["owners"] == [], s
        assert s["cgroup"] == path and s["unit"] == f"web{t}.service", s
        row = [ln for ln in run(argv, check=True).stdout.splitlines()
               if f"]:{port} " in ln]
        assert len(row) == 1 and re.search(
            rf"\sweb{t}\.service\s+- \(no owner found\)$", row[0]), row
    finally:
        sock.close()


def test_unit_option_selects(listen, cgroups):
    """--unit GLOB: only the sockets of the matching units, in the table and
    in --json; a bad value exits 2 naming it."""
    t = token()
    a = listen(f"tcp4:127.0.0.1:{free_port()}")
    b = listen(f"tcp4:127.0.0.1:{free_port()}")
    cgroups.move(a.pid, f"/po{t}.slice/alpha{t}.service")
    cgroups.move(b.pid, f"/po{t}.slice/docker-{ID}.scope", where=("v2",))
    ports = f"{a.ports[0]},{b.ports[0]}"
    out = dump.dump_json("--port", ports, "--unit", f"alpha{t}.*")
    assert [s["port"] for s in out] == [a.ports[0]], out
    out = dump.dump_json("--port", ports, "--unit", "docker:*")
    assert [s["port"] for s in out] == [b.ports[0]], out
    out = dump.dump_json("--port", ports, "--unit", "docker:*",
                         "--unit", f"alpha{t}.service")
    assert sorted(s["port"] for s in out) == sorted([a.ports[0], b.ports[0]])
    assert dump.dump_json("--port", ports, "--unit", "nomatch.service") == []
    res = dump.run_dump("--port", ports, "--unit", f"alpha{t}.service",
                        check=True)
    rows = res.stdout.splitlines()[1:]
    assert len(rows) == 1 and f":{a.ports[0]} " in rows[0], res.stdout
    res = dump.run_dump("--unit", "")
    assert res.returncode == 2 and "--unit ''" in res.stderr, res.stderr


@pytest.mark.parametrize("user", [None, "nobody"], ids=["handles", "walk"])
def test_socket_cgroup_with_cgroup2_mounted_elsewhere(cgroups, user):
    """A private mount namespace where the cgroup2 hierarchy is mounted only
    at a path with a space in it (mountinfo writes it \\040), as on a pure
    cgroup v2 host where it is the only cgroup mount: the socket's cgroup
    is found through that mount, by handle (root) or by a walk (nobody)."""
    t = token()
    path = f"/po{t}.slice/db{t}.service"
    with inside(cgroups, path):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Where nobody can reach it (pytest's tmp_path is root's only).
    top = tempfile.mkdtemp(prefix="po-cg-")
    os.chmod(top, 0o755)
    mnt = os.path.join(top, "cg two")
    os.mkdir(mnt)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        port = sock.getsockname()[1]
        dump_argv = [env.PORTOWNER_DUMP, "--json", "--port", str(port)]
        if user:
            dump_argv = ["setpriv", f"--reuid={user}", "--regid=nogroup",
                         "--clear-groups"] + dump_argv
        script = ('umount -l /sys/fs/cgroup/unified && '
                  'mount -t cgroup2 none "$1" && shift && exec "$@"')
        res = run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                   script, "sh", mnt] + dump_argv, check=True)
        s = json.loads(res.stdout)[0]
        assert s["cgroup"] == path and s["unit"] == f"db{t}.service", s
    finally:
        sock.close()
        os.rmdir(mnt)
        os.rmdir(top)
