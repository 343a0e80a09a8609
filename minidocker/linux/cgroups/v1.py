"""cgroup v1: a directory per controller hierarchy, driven with cgroupspy.

Each controller is its own tree: the container's cgroup is created in each of them as
``<controller>/minidocker/<id>`` and its init process is written into each ``cgroup.procs``.
"""

from __future__ import annotations

import os
import signal
import time

from minidocker.linux.cgroups import PARENT, read_pids, remove_if_empty
from minidocker.linux.events import emit

CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer", "blkio")


class CgroupV1:
    version = 1

    def __init__(self, container_id: str, root: str = "/sys/fs/cgroup"):
        self.id = container_id
        self.root = root
        self.controllers = [c for c in CONTROLLERS if os.path.isdir(os.path.join(root, c))]

    def path(self, controller: str) -> str:
        return os.path.join(self.root, controller, PARENT, self.id)

    def paths(self) -> dict[str, str]:
        return {c: self.path(c) for c in self.controllers}

    def _node(self, controller: str):
        """cgroupspy's node for <controller>/minidocker (created if missing)."""
        from cgroupspy.trees import Tree

        tree = Tree(root_path=self.root.encode() + b"/", groups=[controller.encode()])
        ctrl = tree.get_node_by_path(f"/{controller}/")
        parent = next((c for c in ctrl.children if c.name == PARENT.encode()), None)
        if parent is None:
            parent = ctrl.create_cgroup(PARENT)
            if controller == "cpuset":  # a new cpuset cgroup starts empty: inherit the parent's
                _copy_cpuset(os.path.join(self.root, "cpuset"), parent.full_path.decode())
        return parent

    def create(self) -> None:
        for c in self.controllers:
            for attempt in range(5):  # the parent may vanish under us: another container's rm
                try:
                    parent = self._node(c)
                    if not os.path.isdir(self.path(c)):
                        parent.create_cgroup(self.id)
                        if c == "cpuset":
                            _copy_cpuset(parent.full_path.decode(), self.path(c))
                    break
                except FileNotFoundError:
                    if attempt == 4:
                        raise
            emit("cgroup", action="mkdir", path=self.path(c))

    def add(self, pid: int) -> None:
        for c in self.controllers:
            with open(os.path.join(self.path(c), "cgroup.procs"), "w") as f:
                f.write(str(pid))
        emit("cgroup", action="write", path=os.path.join(self.root, "*", PARENT, self.id, "cgroup.procs"),
             value=str(pid))

    def pids(self) -> list[int]:
        return read_pids(self.path("pids" if "pids" in self.controllers else self.controllers[0]))

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def destroy(self) -> None:
        """Remove the cgroup in every hierarchy (killing what is left in it first)."""
        for _ in range(50):
            if not self.pids():
                break
            self.kill_all(signal.SIGKILL)
            time.sleep(0.02)
        for c in self.controllers:
            p = self.path(c)
            for _ in range(50):
                try:
                    os.rmdir(p)
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while the last task exits
                    time.sleep(0.02)
            remove_if_empty(os.path.dirname(p))
        emit("cgroup", action="rmdir", path=os.path.join(self.root, "*", PARENT, self.id))


def _copy_cpuset(src: str, dst: str) -> None:
    for name in ("cpuset.cpus", "cpuset.mems"):
        with open(os.path.join(src, name)) as f:
            value = f.read().strip()
        with open(os.path.join(dst, name), "w") as f:
            f.write(value)
