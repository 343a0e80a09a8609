"""Control groups: where a container's processes are counted and limited.

Two kernel interfaces, one Protocol:

* cgroup v1: one hierarchy per controller (/sys/fs/cgroup/memory/minidocker/<id>/, cpu/...,
  pids/...); a process is added to each. Driven with cgroupspy (``v1.py``).
* cgroup v2: one unified hierarchy (/sys/fs/cgroup/minidocker/<id>/) whose controllers are
  enabled by the parent's ``cgroup.subtree_control``. Plain file writes (``v2.py``).

``detect()`` picks the backend from what is mounted, not from the kernel version: a hybrid
host (v1 controllers plus an empty ``unified`` v2 mount, like this one) uses v1.

See it: ``cat /proc/self/cgroup`` inside ``minidocker run --rm busybox``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

PARENT = "minidocker"
CPU_PERIOD_US = 100_000


class Limits:
    """docker run's resource flags, in kernel units; None means "no limit". (A plain class,
    not a dataclass: this module is imported on every container start, see minidocker/record.py.)"""

    def __init__(
        self,
        memory: int | None = None,  # bytes (-m)
        memory_swap: int | None = None,  # bytes of memory + swap (--memory-swap); -1 unlimited
        cpus: float | None = None,  # --cpus: a quota of CPU time per period
        cpu_shares: int | None = None,  # --cpu-shares: relative weight (1024 = default)
        cpuset_cpus: str | None = None,  # --cpuset-cpus: "0-1", "0,2"
        pids: int | None = None,  # --pids-limit
        devices: tuple[str, ...] = (),  # --device, --device-cgroup-rule: rules allowed after DEVICE_RULES
        cpu_period: int | None = None,  # --cpu-period (an OCI bundle's cpu.period): µs, else CPU_PERIOD_US
        cpuset_mems: str | None = None,  # --cpuset-mems: "0"
    ) -> None:
        self.memory, self.memory_swap, self.cpus = memory, memory_swap, cpus
        self.cpu_shares, self.cpuset_cpus, self.pids = cpu_shares, cpuset_cpus, pids
        self.devices, self.cpu_period, self.cpuset_mems = devices, cpu_period, cpuset_mems

    def device_rules(self) -> tuple[str, ...]:
        """What the device cgroup allows: docker's defaults, then the container's own rules."""
        return DEVICE_RULES + self.devices

    def period_us(self) -> int:
        return self.cpu_period or CPU_PERIOD_US

    def cpu_quota_us(self) -> int | None:
        return None if self.cpus is None else max(1000, round(self.cpus * self.period_us()))


class Stats:
    """One reading of a container's cgroup: CPU time, memory in use and its limit, processes."""

    def __init__(self, cpu_usage_ns: int, memory_usage: int, memory_limit: int | None, pids: int) -> None:
        self.cpu_usage_ns, self.memory_usage, self.memory_limit, self.pids = (
            cpu_usage_ns,
            memory_usage,
            memory_limit,
            pids,
        )


# Docker's default device rules: every device denied, then these allowed (type major:minor access).
DEVICE_RULES = (
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
    "c *:* m",
)


TYPE_CHECKING = False  # (typing is not imported on a container start's path)
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # the interface below is for the type checker and the reader


class CgroupManager(Protocol):
    version: int

    def create(self) -> None: ...
    def apply_limits(self, limits: Limits, privileged: bool = False) -> None: ...
    def oom_killed(self) -> bool: ...
    def stats(self) -> Stats: ...
    def add(self, pid: int) -> None: ...
    def pids(self) -> list[int]: ...
    def kill_all(self, sig: int) -> None: ...
    def destroy(self) -> None: ...
    def paths(self) -> dict[str, str]: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...
    def frozen(self) -> bool: ...


_versions: dict[str, int] = {}  # root -> version, for this process: mounts do not change under us


CGROUP_ROOT = "/sys/fs/cgroup"  # where the cgroup file systems are mounted


def version(mountinfo: str | None = None, root: str = "/sys/fs/cgroup") -> int:
    """2 if ``root`` itself is a cgroup2 mount, else 1 (v1 or hybrid)."""
    if mountinfo is None:
        if root not in _versions:
            with open("/proc/self/mountinfo") as f:
                _versions[root] = version(f.read(), root)
        return _versions[root]
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) > 4 and fields[4] == root and right.split()[:1] == ["cgroup2"]:
            return 2
    return 1


def controllers(cgroup_version: int, root: str = "/sys/fs/cgroup") -> list[str]:
    """The controllers this host offers containers. cgroup v2 lists them in the root's
    ``cgroup.controllers``; v1 mounts each controller as a hierarchy of its own under
    ``root``, a directory with a ``tasks`` file (``name=systemd`` holds a hierarchy but no
    controller, and a hybrid host's ``unified`` v2 mount has no ``tasks``)."""
    if cgroup_version == 2:
        return Path(root, "cgroup.controllers").read_text().split()
    return sorted(d.name for d in Path(root).iterdir() if (d / "tasks").exists() and d.name != "systemd")


def manager(container_id: str, root: str = "/sys/fs/cgroup", parent: str = PARENT) -> CgroupManager:
    """The cgroup ``<parent>/<container_id>`` (in each v1 hierarchy, or the v2 tree)."""
    if version(root=root) == 2:
        from minidocker.linux.cgroups.v2 import CgroupV2

        return CgroupV2(container_id, root, parent)
    from minidocker.linux.cgroups.v1 import CgroupV1

    return CgroupV1(container_id, root, parent)


def read_pids(path: str) -> list[int]:
    """The PIDs in a cgroup; none if it is gone. Another process (the container's monitor,
    when its container ends) may rmdir the cgroup between our open and our read: the kernel
    then answers the read with ENODEV, and that too means no process is left in it."""
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []
    except OSError as e:
        if e.errno == errno.ENODEV:
            return []
        raise


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def empty(manager: CgroupManager) -> None:
    """SIGKILL whatever is left in the cgroup until it holds no process (rmdir needs that)."""
    import signal
    import time

    if manager.pids():
        try:
            manager.thaw()  # a frozen process would take its SIGKILL only once thawed
        except OSError:
            pass
    for _ in range(50):
        if not manager.pids():
            return
        manager.kill_all(signal.SIGKILL)
        time.sleep(0.02)


def rmdir_when_free(path: str) -> None:
    """rmdir a cgroup; the kernel says EBUSY for a moment while its last task exits."""
    import time

    for _ in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def remove_if_empty(path: str) -> None:
    """rmdir the shared ``minidocker`` parent once its last container is gone (so nothing of
    ours stays in the host's tree); another container still in it makes this a no-op."""
    try:
        os.rmdir(path)
    except OSError:
        pass


def parse_size(text: str) -> int:
    """``64m`` -> 67108864, as docker reads -m (b, k, m, g; no suffix = bytes)."""
    t = text.strip().lower().removesuffix("b") if text.strip().lower() not in ("b",) else text
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except (ValueError, OverflowError):  # "12x", or "infm": a float that no int can hold
        from minidocker.errors import MinidockerError

        raise MinidockerError(f"invalid size: {text!r}", hint="write a number with b, k, m or g, e.g. 64m") from None


def read_int(path: str, default: int = 0) -> int:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return default
    return default if text == "max" else int(text)


def write(path: str, value: str) -> None:
    from minidocker.linux.events import emit

    with open(path, "w") as f:
        f.write(value)
    emit("cgroup", action="write", path=path, value=value)


def wait_for(check, what: str, timeout: float = 10.0) -> None:
    """Poll ``check()`` until it is true: freezing is asynchronous (every task of the cgroup
    must reach the freezer's stopping point); raise TimeoutError naming ``what``."""
    import time

    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
