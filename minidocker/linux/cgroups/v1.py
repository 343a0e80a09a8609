"""cgroup v1: a directory per controller hierarchy; limits set through cgroupspy.

Each controller is its own tree: the container's cgroup is created in each of them as
``<controller>/minidocker/<id>`` and its init process is written into each ``cgroup.procs``.
"""

from __future__ import annotations

import errno
import os
import signal

from minidocker.linux.cgroups import (
    PARENT,
    Limits,
    Stats,
    empty,
    read_int,
    read_pids,
    remove_if_empty,
    rmdir_when_free,
    signal_pids,
    wait_for,
    write,
)
from minidocker.linux.events import emit

CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer", "blkio")


class CgroupV1:
    version = 1

    def __init__(self, container_id: str, root: str = "/sys/fs/cgroup", parent: str = PARENT):
        self.id = container_id
        self.root = root
        self.parent = parent  # the cgroup the container's is made in (an OCI bundle's cgroupsPath may name another)
        self.controllers = [c for c in CONTROLLERS if os.path.isdir(os.path.join(root, c))]

    def path(self, controller: str) -> str:
        return os.path.join(self.root, controller, self.parent, self.id)

    def paths(self) -> dict[str, str]:
        return {c: self.path(c) for c in self.controllers}

    def node(self, controller: str, create: bool = False):
        """cgroupspy's Node for ``<controller>/minidocker/<id>``, built directly (a
        ``cgroupspy.trees.Tree`` would walk the host's whole hierarchy, tens of ms)."""
        from cgroupspy.nodes import Node

        ctrl = Node(controller, parent=Node(self.root.encode().rstrip(b"/") + b"/"))
        parent = Node(self.parent, parent=ctrl)
        if create and not os.path.isdir(parent.full_path):
            os.makedirs(parent.full_path, exist_ok=True)
            if controller == "cpuset":  # a new cpuset cgroup starts empty: inherit the parent's
                _copy_cpuset(ctrl.full_path.decode(), parent.full_path.decode())
        return Node(self.id, parent=parent)

    def create(self) -> None:
        """``mkdir <controller>/minidocker/<id>`` in each hierarchy (the kernel fills the new
        directory with the controller's files). Plain mkdir: cgroupspy, and the logging
        module it loads, are only imported when a limit is set.

        The shared ``minidocker`` parent goes when its last container does (remove_if_empty),
        so another container's ``rm`` may take it away at any moment of ours: a mkdir then
        finds no parent (ENOENT), a write to the parent's files finds a removed cgroup (ENODEV),
        and a parent made again starts with an empty cpuset. Each such race starts over."""
        for c in self.controllers:
            parent = os.path.join(self.root, c, self.parent)
            for attempt in range(5):
                try:
                    os.makedirs(self.path(c), exist_ok=True)  # the parent too, if it went
                    if c == "cpuset":  # a new cpuset cgroup starts empty: inherit the parent's
                        above = os.path.join(self.root, c)
                        for part in [p for p in self.parent.split("/") if p]:  # (an OCI cgroupsPath: any depth)
                            _inherit_cpuset(above, os.path.join(above, part))
                            above = os.path.join(above, part)
                        _copy_cpuset(parent, self.path(c))
                    break
                except OSError as e:
                    if e.errno not in (errno.ENOENT, errno.ENODEV) or attempt == 4:
                        raise
            emit("cgroup", action="mkdir", path=self.path(c))

    def apply_limits(self, limits: Limits, privileged: bool = False) -> None:
        """docker run's flags as cgroup v1 files, through cgroupspy's controllers."""
        if limits.memory is not None and "memory" in self.controllers:
            mem = self.node("memory").controller
            mem.limit_in_bytes = limits.memory
            swap = limits.memory_swap if limits.memory_swap is not None else 2 * limits.memory
            if os.path.exists(os.path.join(self.path("memory"), "memory.memsw.limit_in_bytes")):
                mem.memsw_limit_in_bytes = -1 if swap == -1 else max(swap, limits.memory)
            emit(
                "cgroup", action="write", path=self.path("memory") + "/memory.limit_in_bytes", value=str(limits.memory)
            )
        if "cpu" in self.controllers and (limits.cpus is not None or limits.cpu_shares is not None):
            cpu = self.node("cpu").controller  # cgroupspy (and logging) only when a limit is set
            if limits.cpus is not None:
                cpu.cfs_period_us = limits.period_us()
                cpu.cfs_quota_us = limits.cpu_quota_us()
                emit(
                    "cgroup",
                    action="write",
                    path=self.path("cpu") + "/cpu.cfs_quota_us",
                    value=str(limits.cpu_quota_us()),
                )
            if limits.cpu_shares is not None:
                cpu.shares = limits.cpu_shares
                emit("cgroup", action="write", path=self.path("cpu") + "/cpu.shares", value=str(limits.cpu_shares))
        if limits.cpuset_cpus is not None and "cpuset" in self.controllers:
            write(os.path.join(self.path("cpuset"), "cpuset.cpus"), limits.cpuset_cpus)
        if limits.cpuset_mems is not None and "cpuset" in self.controllers:
            write(os.path.join(self.path("cpuset"), "cpuset.mems"), limits.cpuset_mems)
        if limits.pids is not None and "pids" in self.controllers:
            write(os.path.join(self.path("pids"), "pids.max"), str(limits.pids) if limits.pids > 0 else "max")
        if not privileged and "devices" in self.controllers:
            dev = self.path("devices")
            write(os.path.join(dev, "devices.deny"), "a")
            for rule in limits.device_rules():
                write(os.path.join(dev, "devices.allow"), rule)

    def oom_killed(self) -> bool:
        """memory.oom_control counts the kills the OOM killer made in this cgroup."""
        try:
            with open(os.path.join(self.path("memory"), "memory.oom_control")) as f:
                fields = dict(line.split() for line in f if line.strip())
        except OSError:
            return False
        return int(fields.get("oom_kill", 0)) > 0

    def stats(self) -> Stats:
        limit = read_int(os.path.join(self.path("memory"), "memory.limit_in_bytes"))
        return Stats(
            cpu_usage_ns=read_int(os.path.join(self.path("cpuacct"), "cpuacct.usage")),
            memory_usage=read_int(os.path.join(self.path("memory"), "memory.usage_in_bytes")),
            memory_limit=None if limit >= (1 << 62) else limit,
            pids=len(self.pids()),
        )

    def add(self, pid: int) -> None:
        for c in self.controllers:
            with open(os.path.join(self.path(c), "cgroup.procs"), "w") as f:
                f.write(str(pid))
        emit(
            "cgroup",
            action="write",
            path=os.path.join(self.root, "*", self.parent, self.id, "cgroup.procs"),
            value=str(pid),
        )

    def pids(self) -> list[int]:
        return read_pids(self.path("pids" if "pids" in self.controllers else self.controllers[0]))

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        signal_pids(self.pids(), sig)

    # -- the freezer: pause and resume every process of the container ------------------------
    def freezer_state_path(self) -> str:
        return os.path.join(self.path("freezer"), "freezer.state")

    def freeze(self) -> None:
        """Stop every task of the cgroup where it stands (``docker pause``; ``commit`` does it
        so the upper dir does not change while it is read). v1's freezer.state goes
        THAWED -> FREEZING -> FROZEN; FROZEN is reached when every task has stopped.
        See it: ``cat /sys/fs/cgroup/freezer/minidocker/<id>/freezer.state``; a frozen
        task shows state D in /proc/PID/status."""
        write(self.freezer_state_path(), "FROZEN")
        wait_for(self.frozen, f"the freezer of {self.id[:12]}")

    def thaw(self) -> None:
        write(self.freezer_state_path(), "THAWED")

    def frozen(self) -> bool:
        with open(self.freezer_state_path()) as f:
            return f.read().strip() == "FROZEN"

    def destroy(self) -> None:
        """Remove the cgroup in every hierarchy (killing what is left in it first)."""
        empty(self)
        for c in self.controllers:
            rmdir_when_free(self.path(c))
            remove_if_empty(os.path.dirname(self.path(c)))
        emit("cgroup", action="rmdir", path=os.path.join(self.root, "*", self.parent, self.id))


def _inherit_cpuset(src: str, dst: str) -> None:
    """Give ``dst`` the CPUs and memory nodes of ``src`` where it has none: each file on its
    own, since another container's start may be between writing the one and the other (a
    cgroup with CPUs but no memory nodes refuses every process: ENOSPC)."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        with open(os.path.join(dst, name)) as f:
            if f.read().strip():
                continue
        with open(os.path.join(src, name)) as f:
            value = f.read().strip()
        with open(os.path.join(dst, name), "w") as f:
            f.write(value)


def _copy_cpuset(src: str, dst: str) -> None:
    for name in ("cpuset.cpus", "cpuset.mems"):
        with open(os.path.join(src, name)) as f:
            value = f.read().strip()
        with open(os.path.join(dst, name), "w") as f:
            f.write(value)
