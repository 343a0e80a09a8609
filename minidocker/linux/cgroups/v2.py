"""cgroup v2: one unified tree, ``/sys/fs/cgroup/minidocker/<id>``, plain file writes.

A controller works in a child only if the parent lists it in ``cgroup.subtree_control``;
and a cgroup with controllers enabled for its children may hold no processes itself (the
"no internal processes" rule), so processes live only in the leaves.
"""

from __future__ import annotations

import errno
import os
import signal

from minidocker.linux import cgroups as shared  # the parts both hierarchies' managers use
from minidocker.linux.cgroups import read_int, write
from minidocker.linux.events import emit

WANTED = ("cpu", "cpuset", "memory", "pids", "io")


class CgroupV2:
    version = 2

    def __init__(self, container_id: str, root: str = "/sys/fs/cgroup", parent: str = shared.PARENT):
        self.id = container_id
        self.root = root
        self.parent = os.path.join(root, parent)  # (an OCI bundle's cgroupsPath may name another)
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
                above = self.root
                self._enable(above)
                for part in [p for p in os.path.relpath(self.parent, self.root).split("/") if p not in ("", ".")]:
                    above = os.path.join(above, part)  # (an OCI cgroupsPath: any depth)
                    self._enable(above)
                os.makedirs(self.dir, exist_ok=True)
                break
            except OSError as e:  # ENOENT: no parent any more; ENODEV: its files are gone
                if e.errno not in (errno.ENOENT, errno.ENODEV) or attempt == 4:
                    raise
        emit("cgroup", action="mkdir", path=self.dir)

    def apply_limits(self, limits: shared.Limits, privileged: bool = False) -> None:
        """docker run's flags as cgroup v2 files, and the device rules as an eBPF program
        attached to the cgroup (v2 has no devices.allow: see linux/bpf.py)."""
        d = self.dir
        if not privileged:
            from minidocker.linux.bpf import attach_device_filter

            attach_device_filter(d, limits.device_rules())
        if limits.memory is not None:
            write(f"{d}/memory.max", str(limits.memory))
            swap = limits.memory_swap if limits.memory_swap is not None else 2 * limits.memory
            if os.path.exists(f"{d}/memory.swap.max"):
                write(f"{d}/memory.swap.max", "max" if swap == -1 else str(max(0, swap - limits.memory)))
        if limits.cpus is not None:
            write(f"{d}/cpu.max", f"{limits.cpu_quota_us()} {limits.period_us()}")
        if limits.cpu_shares is not None:  # docker's conversion of shares (2..262144) to weight (1..10000)
            weight = 1 + ((limits.cpu_shares - 2) * 9999) // 262142
            write(f"{d}/cpu.weight", str(max(1, min(10000, weight))))
        if limits.cpuset_cpus is not None:
            write(f"{d}/cpuset.cpus", limits.cpuset_cpus)
        if limits.cpuset_mems is not None:
            write(f"{d}/cpuset.mems", limits.cpuset_mems)
        if limits.pids is not None:
            write(f"{d}/pids.max", str(limits.pids) if limits.pids > 0 else "max")

    def oom_killed(self) -> bool:
        try:
            with open(f"{self.dir}/memory.events") as f:
                fields = dict(line.split() for line in f if line.strip())
        except OSError:
            return False
        return int(fields.get("oom_kill", 0)) > 0

    def stats(self) -> shared.Stats:
        usage = 0
        try:
            with open(f"{self.dir}/cpu.stat") as f:
                usage = int(dict(line.split() for line in f if line.strip()).get("usage_usec", 0)) * 1000
        except OSError:
            pass
        limit = read_int(f"{self.dir}/memory.max", -1)
        return shared.Stats(
            cpu_usage_ns=usage,
            memory_usage=read_int(f"{self.dir}/memory.current"),
            memory_limit=None if limit < 0 else limit,
            pids=len(self.pids()),
        )

    def add(self, pid: int) -> None:
        with open(os.path.join(self.dir, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        emit("cgroup", action="write", path=os.path.join(self.dir, "cgroup.procs"), value=str(pid))

    def pids(self) -> list[int]:
        return shared.read_pids(self.dir)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        kill = os.path.join(self.dir, "cgroup.kill")
        if sig == signal.SIGKILL and os.path.exists(kill):
            with open(kill, "w") as f:
                f.write("1")
            return
        shared.signal_pids(self.pids(), sig)

    # -- the freezer: pause and resume every process of the container ------------------------
    def freeze(self) -> None:
        """v2 has no freezer controller: every non-root cgroup has ``cgroup.freeze``. Writing
        1 asks the kernel to freeze the subtree; ``cgroup.events`` says ``frozen 1`` once
        every task has stopped."""
        write(os.path.join(self.dir, "cgroup.freeze"), "1")
        shared.wait_for(self.frozen, f"cgroup.events of {self.id[:12]} to say frozen")

    def thaw(self) -> None:
        write(os.path.join(self.dir, "cgroup.freeze"), "0")

    def frozen(self) -> bool:
        with open(os.path.join(self.dir, "cgroup.events")) as f:
            fields = dict(line.split() for line in f if line.strip())
        return fields.get("frozen") == "1"

    def destroy(self) -> None:
        shared.empty(self)
        shared.rmdir_when_free(self.dir)
        shared.remove_if_empty(self.parent)
        emit("cgroup", action="rmdir", path=self.dir)
