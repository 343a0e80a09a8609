"""The commands of ``minidocker-runc`` that act on a container made by ``create``: ps, pause,
resume, events, update, list. Each reads the state ``create`` left (container.py) and works
on the container's cgroup (linux/cgroups), as runc's do::

    ps        the PIDs in the cgroup (json), or the host's ps(1) rows of them (table)
    pause     the freezer: v1 freezer.state FROZEN, v2 cgroup.freeze 1; state says "paused"
    resume    THAWED / 0
    events    the cgroup's counters as runc's JSON events, one line each; "oom" when the
              memory controller counts a new OOM kill
    update    linux.resources (a JSON file, or runc's flags) into the cgroup's files
    list      every container under --root

See it: ``minidocker-runc pause c1; minidocker-runc state c1; cat /sys/fs/cgroup/freezer/minidocker/c1/freezer.state``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from minidocker.errors import BundleError, Conflict, MinidockerError
from minidocker.linux import cgroups
from minidocker.oci import container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def live(root: str, cid: str, verb: str) -> dict[str, Any]:
    """The state of a container that is created or running (paused too), else Conflict."""
    st = container.load_state(root, cid)
    status = container.status_of(container.state_dir(root, cid), st)
    if status not in ("created", "running", "paused"):
        raise Conflict(f"cannot {verb} a container that is {status}")
    return st | {"status": status}


def ps(root: str, cid: str, fmt: str, ps_args: list[str]) -> str:
    st = container.load_state(root, cid)
    pids = container.cgroup_of(st).pids()
    if fmt == "json":
        return json.dumps(pids) + "\n"
    if fmt != "table":
        raise BundleError(f"invalid format option {fmt!r}: table or json")
    from minidocker.runtime.describe import ps_rows

    return ps_rows(pids, ps_args or ["-ef"])


def pause(root: str, cid: str) -> None:
    """Freeze every process of the container. Should we be stopped halfway (the freeze is not
    done at once: every task must reach its stopping point), we thaw it again, so that a
    failed pause leaves nothing half frozen; ``delete --force`` thaws what a SIGKILL left."""
    st = live(root, cid, "pause")
    if st["status"] == "paused":
        raise Conflict(f"container {cid} is already paused")
    cg = container.cgroup_of(st)
    previous = signal.signal(signal.SIGTERM, interrupted)  # (SIGKILL is the kernel's: delete --force thaws)
    try:
        cg.freeze()
    except BaseException:
        cg.thaw()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted(signum: int, _frame: Any) -> None:
    raise MinidockerError(f"interrupted by signal {signum}")


def resume(root: str, cid: str) -> None:
    st = live(root, cid, "resume")
    if st["status"] != "paused":
        raise Conflict(f"container {cid} is not paused")
    container.cgroup_of(st).thaw()


def stats_event(cid: str, cg: cgroups.CgroupManager) -> dict[str, Any]:
    """runc's ``events --stats`` line: ``{"type": "stats", "id": .., "data": {cpu, memory, pids}}``."""
    s = cg.stats()
    data = {
        "cpu": {"usage": {"total": s.cpu_usage_ns}},
        "memory": {"usage": {"usage": s.memory_usage, "limit": s.memory_limit or 0}},
        "pids": {"current": s.pids},
    }
    return {"type": "stats", "id": cid, "data": data}


def parse_interval(text: str) -> float:
    """Go's durations as runc takes them: 5s, 500ms, 1m, 1.5s."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            try:
                value = float(text[: -len(suffix)]) * units[suffix]
            except ValueError:
                break
            if value > 0:
                return value
            break
    raise BundleError(f"--interval {text!r}: a duration such as 5s or 500ms is needed")


def events(root: str, cid: str, stats: bool, interval: str) -> None:
    """``--stats``: one line of counters. Otherwise a stats line every interval, and an
    "oom" line whenever the memory controller has counted a new OOM kill, until the
    container stops."""
    st = live(root, cid, "get events of")
    cg = container.cgroup_of(st)
    if stats:
        print(json.dumps(stats_event(cid, cg)), flush=True)
        return
    period = parse_interval(interval)
    oom_seen = cg.oom_killed()
    while True:
        stopped = container.status_of(container.state_dir(root, cid), st) == "stopped"
        if not oom_seen and cg.oom_killed():  # (read once more after the end: the kill may be what ended it)
            print(json.dumps({"type": "oom", "id": cid}), flush=True)
            oom_seen = True
        if stopped:
            return
        print(json.dumps(stats_event(cid, cg)), flush=True)
        time.sleep(period)


RESOURCE_FLAGS = {  # runc update's flags -> (linux.resources section, key)
    "memory": ("memory", "limit"),
    "memory_swap": ("memory", "swap"),
    "cpu_quota": ("cpu", "quota"),
    "cpu_period": ("cpu", "period"),
    "cpu_shares": ("cpu", "shares"),
    "cpuset_cpus": ("cpu", "cpus"),
    "pids_limit": ("pids", "limit"),
}


def read_resources(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        resources = json.loads(sys.stdin.read() if path == "-" else open(path).read())
    except OSError as e:
        raise BundleError(f"--resources {path}: {e.strerror}") from None
    except ValueError as e:
        raise BundleError(f"--resources {path}: not valid JSON: {e}") from None
    if not isinstance(resources, dict):
        raise BundleError(f"--resources {path}: a JSON object (linux.resources) is needed")
    return resources


def resources_of(path: str | None, flags: dict[str, str | None]) -> dict[str, Any]:
    """The spec's linux.resources: the file's, and the flags over it."""
    resources = read_resources(path)
    for flag, (section, key) in RESOURCE_FLAGS.items():
        value = flags.get(flag)
        if value is None:
            continue
        if flag in ("memory", "memory_swap"):
            number: Any = -1 if value.strip() == "-1" else cgroups.parse_size(value)
        elif flag == "cpuset_cpus":
            number = value
        else:
            try:
                number = int(value)
            except ValueError:
                raise BundleError(f"--{flag.replace('_', '-')} {value!r}: a number is needed") from None
        resources.setdefault(section, {})[key] = number
    return resources


def update(root: str, cid: str, resources_path: str | None, flags: dict[str, str | None]) -> None:
    """New limits into the running container's cgroup, as bundle.limits_of reads them from
    config.json; a growing memory limit goes in after its swap limit (v1 refuses a memory
    limit above memory+swap), as ``minidocker update`` does; device rules stay as they are."""
    from minidocker.oci.bundle import limits_of

    st = live(root, cid, "update")
    resources = resources_of(resources_path, flags)
    resources.pop("devices", None)  # (as runc: the device rules are create's)
    limits = limits_of(resources)
    if "cpus" not in limits and "period" in (resources.get("cpu") or {}):
        raise BundleError("--cpu-period needs --cpu-quota here (the quota is kept as a share of a period)")
    cg = container.cgroup_of(st)
    try:
        current = cg.stats().memory_limit if "memory" in limits else None
        if current and limits["memory"] > current:  # memory+swap first, to hold the new memory
            swap = limits.get("memory_swap", 2 * limits["memory"])
            cg.apply_limits(cgroups.Limits(memory=current, memory_swap=swap), privileged=True)
        cg.apply_limits(cgroups.Limits(**limits), privileged=True)
    except OSError as e:
        raise MinidockerError(f"cannot update container {cid}: {e.strerror or e}") from None


def list_containers(root: str, quiet: bool, fmt: str) -> str:
    """runc's ``list``: ID PID STATUS BUNDLE CREATED OWNER; -q the IDs alone."""
    if fmt not in ("table", "json"):
        raise BundleError(f"invalid format option {fmt!r}: table or json")
    rows = []
    for cid in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        try:
            rows.append(container.oci_state(root, cid))
        except (MinidockerError, OSError, ValueError):
            continue  # (another runtime's delete took it meanwhile, or not one of ours)
    if quiet:
        return "".join(r["id"] + "\n" for r in rows)
    if fmt == "json":
        return json.dumps([{**r, "owner": "root"} for r in rows]) + "\n"
    lines = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    lines += [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], "root") for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(6)]
    return "".join("   ".join(f.ljust(w) for f, w in zip(line, widths, strict=True)).rstrip() + "\n" for line in lines)
