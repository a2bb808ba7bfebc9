"""Real cgroups for the tests: make them in this machine's hierarchies, move
real processes in through cgroup.procs, and remove them at teardown.

This machine is hybrid (shared/README.md): cgroup v2 at
/sys/fs/cgroup/unified and a name=systemd v1 hierarchy at
/sys/fs/cgroup/systemd. Every test makes its own top cgroup with a random
name, so that tests running at the same time never share a directory."""
import os
import secrets

import pytest

V2 = "/sys/fs/cgroup/unified"
SYSTEMD = "/sys/fs/cgroup/systemd"
MOUNTS = {"v2": V2, "systemd": SYSTEMD}


def _fstype(path):
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[1] == path:
                    return fields[2], fields[3]
    except OSError:
        pass
    return None, None


def available():
    """Why the hybrid hierarchies cannot be used here, or None."""
    if os.geteuid() != 0:
        return "needs root: mkdir in the cgroup hierarchies"
    if _fstype(V2)[0] != "cgroup2":
        return f"no cgroup2 mounted at {V2}"
    fstype, opts = _fstype(SYSTEMD)
    if fstype != "cgroup" or "name=systemd" not in opts.split(","):
        return f"no name=systemd hierarchy at {SYSTEMD}"
    return None


def token():
    return secrets.token_hex(4)


class Cgroups:
    """The cgroups one test made, and the processes it moved into them."""

    def __init__(self):
        self.dirs = []  # (mount, path), in the order made
        self.moved = set()

    def make(self, path, where=("v2", "systemd")):
        """mkdir -p PATH (absolute, as /proc/PID/cgroup shows it) in each
        hierarchy of where; returns path."""
        assert path.startswith("/"), path
        for w in where:
            mount = MOUNTS[w]
            parts = path.strip("/").split("/")
            for i in range(1, len(parts) + 1):
                sub = "/" + "/".join(parts[:i])
                full = mount + sub
                if not os.path.isdir(full):
                    os.mkdir(full)
                    self.dirs.append((mount, sub))
        return path

    def move(self, pid, path, where=("v2", "systemd")):
        """Moves process pid (all its threads) into path of each hierarchy
        of where (made first)."""
        self.make(path, where)
        for w in where:
            with open(MOUNTS[w] + path + "/cgroup.procs", "w") as f:
                f.write(str(pid))
        self.moved.add(pid)

    def cleanup(self):
        # Back to the root of both hierarchies, then remove deepest first.
        for pid in self.moved:
            for mount in MOUNTS.values():
                try:
                    with open(mount + "/cgroup.procs", "w") as f:
                        f.write(str(pid))
                except OSError:
                    pass  # exited meanwhile
        # Any process still inside (a child forked after a move) goes too.
        for mount, sub in sorted(self.dirs, key=lambda d: -len(d[1])):
            try:
                with open(mount + sub + "/cgroup.procs") as f:
                    left = f.read().split()
            except FileNotFoundError:
                continue
            for pid in left:
                try:
                    with open(mount + "/cgroup.procs", "w") as f:
                        f.write(pid)
                except OSError:
                    pass
            os.rmdir(mount + sub)


@pytest.fixture
def cgroups():
    """A Cgroups; skipped (with the reason) where the hybrid hierarchies are
    not available; every cgroup it made is removed at teardown."""
    why = available()
    if why:
        pytest.skip(why)
    cg = Cgroups()
    try:
        yield cg
    finally:
        cg.cleanup()


def proc_cgroup(pid):
    """(v2 path, name=systemd path) of pid as /proc/PID/cgroup shows them."""
    v2 = sd = None
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            hid, ctrl, path = line.rstrip("\n").split(":", 2)
            if hid == "0" and ctrl == "":
                v2 = path
            elif "name=systemd" in ctrl.split(","):
                sd = path
    return v2, sd


class inside:
    """with inside(cgroups, path): this process (every thread) is in path
    of the v2 hierarchy for the block and back in its own cgroup after it:
    what it creates meanwhile (a socket) belongs to path."""

    def __init__(self, cgroups, path):
        self.cgroups = cgroups
        self.path = path
        self.home = proc_cgroup(os.getpid())[0]

    def __enter__(self):
        self.cgroups.make(self.path, ("v2",))
        with open(V2 + self.path + "/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
        return self

    def __exit__(self, *exc):
        with open(V2 + self.home + "/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
        return False
