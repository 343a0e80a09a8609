"""cgroup v2: one unified tree, ``/sys/fs/cgroup/minidocker/<id>``, plain file writes.

A controller works in a child only if the parent lists it in ``cgroup.subtree_control``;
and a cgroup with controllers enabled for its children may hold no processes itself (the
"no internal processes" rule), so processes live only in the leaves.
"""

from __future__ import annotations

import os
import signal

from minidocker.linux.cgroups import PARENT, empty, read_pids, remove_if_empty, rmdir_when_free, signal_pids
from minidocker.linux.events import emit

WANTED = ("cpu", "cpuset", "memory", "pids", "io")


class CgroupV2:
    version = 2

    def __init__(self, container_id: str, root: str = "/sys/fs/cgroup"):
        self.id = container_id
        self.root = root
        self.parent = os.path.join(root, PARENT)
        self.dir = os.path.join(self.parent, container_id)

    def paths(self) -> dict[str, str]:
        return {"unified": self.dir}

    def _enable(self, path: str) -> None:
        try:
            with open(os.path.join(path, "cgroup.controllers")) as f:
                available = f.read().split()
        except FileNotFoundError:
            return
        want = [c for c in WANTED if c in available]
        if want:
            with open(os.path.join(path, "cgroup.subtree_control"), "w") as f:
                f.write(" ".join(f"+{c}" for c in want))

    def create(self) -> None:
        for attempt in range(5):  # the parent may vanish under us: another container's rm
            try:
                os.makedirs(self.parent, exist_ok=True)
                self._enable(self.root)
                self._enable(self.parent)
                os.makedirs(self.dir, exist_ok=True)
                break
            except FileNotFoundError:
                if attempt == 4:
                    raise
        emit("cgroup", action="mkdir", path=self.dir)

    def add(self, pid: int) -> None:
        with open(os.path.join(self.dir, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        emit("cgroup", action="write", path=os.path.join(self.dir, "cgroup.procs"), value=str(pid))

    def pids(self) -> list[int]:
        return read_pids(self.dir)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        kill = os.path.join(self.dir, "cgroup.kill")
        if sig == signal.SIGKILL and os.path.exists(kill):
            with open(kill, "w") as f:
                f.write("1")
            return
        signal_pids(self.pids(), sig)

    def destroy(self) -> None:
        empty(self)
        rmdir_when_free(self.dir)
        remove_if_empty(self.parent)
        emit("cgroup", action="rmdir", path=self.dir)
