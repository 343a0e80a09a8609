"""Runs INSIDE the cgroup v2 guest (as root): drive minidocker's cgroup backend through its
public API and measure what the kernel enforces. Prints one JSON object on its last line.

    python tests/v2guest/probe.py backend|memory|pids|cpu

Not a test module (pytest does not collect it); tests/v2guest/test_cgroup_v2.py runs it over
ssh and judges the numbers. Every mode removes the cgroups it made, also on failure.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import traceback

from minidocker.linux import cgroups
from minidocker.linux.cgroups import Limits

MiB = 1 << 20


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def keyed(path: str) -> dict[str, int]:
    """memory.events, pids.events, cpu.stat: "key value" lines."""
    return {k: int(v) for k, v in (line.split() for line in read(path).splitlines() if line.strip())}


def spawn_in(cg, target, *args) -> tuple[int, int]:
    """Fork a child that waits until the parent has put it in ``cg`` (cg.add(pid), the way the
    runtime does it), then runs ``target(report_fd, *args)``. Returns (pid, read end of the
    child's report pipe)."""
    go_r, go_w = os.pipe()
    rep_r, rep_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(go_w)
            os.close(rep_r)
            os.read(go_r, 1)
            target(rep_w, *args)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(rep_w)
    cg.add(pid)
    os.write(go_w, b"g")
    os.close(go_w)
    return pid, rep_r


def drain(fd: int) -> str:
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return b"".join(chunks).decode()


def status_of(status: int) -> dict:
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status), "exit": None}
    return {"signal": None, "exit": os.WEXITSTATUS(status)}


# ---- the children's workloads ------------------------------------------------------------------


def allocate(fd: int, total_mib: int) -> None:
    """Touch total_mib MiB, 1 MiB at a time, reporting progress after each MiB."""
    keep = []
    for i in range(1, total_mib + 1):
        keep.append(b"\x5a" * MiB)  # bytes * n writes every page
        os.write(fd, f"{i}\n".encode())


def fork_bomb(fd: int, attempts: int) -> None:
    """Fork until the kernel says no; report how many forks worked and the errno; then wait
    to be killed (the parent counts pids.current meanwhile)."""
    made, err = 0, None
    for _ in range(attempts):
        try:
            pid = os.fork()
        except OSError as e:
            err = e.errno
            break
        if pid == 0:
            while True:
                signal.pause()
        made += 1
    os.write(
        fd, json.dumps({"forked": made, "errno": err, "errno_name": errno.errorcode.get(err) if err else None}).encode()
    )
    os.close(fd)
    while True:
        signal.pause()


def spin(fd: int, seconds: float) -> None:
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    os.write(fd, str(n).encode())


# ---- the modes -----------------------------------------------------------------------------------


def mode_backend() -> dict:
    cg = cgroups.manager(f"v2probe-backend-{os.getpid()}")
    res = {
        "version": cgroups.version(),
        "class": type(cg).__name__,
        "dir": getattr(cg, "dir", None),
        "has_apply_limits": hasattr(cg, "apply_limits"),
    }
    cg.create()
    try:
        res["created"] = os.path.isdir(cg.dir)
        res["parent_subtree_control"] = read(os.path.join(cg.parent, "cgroup.subtree_control")).split()
        res["controllers"] = read(os.path.join(cg.dir, "cgroup.controllers")).split()
        pid, rep = spawn_in(cg, lambda fd: time.sleep(2))
        time.sleep(0.2)
        res["child_in_cgroup"] = pid in cg.pids()
        res["child_proc_cgroup"] = read(f"/proc/{pid}/cgroup")
        cg.kill_all(signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        drain(rep)
        res["child_after_kill_all"] = status_of(status)
    finally:
        cg.destroy()
    res["removed"] = not os.path.exists(cg.dir)
    res["parent_removed"] = not os.path.exists(cg.parent)
    return res


def mode_memory(limit_mib: int = 64, want_mib: int = 200) -> dict:
    cg = cgroups.manager(f"v2probe-memory-{os.getpid()}")
    cg.create()
    try:
        cg.apply_limits(Limits(memory=limit_mib * MiB))
        res = {"memory.max": read(f"{cg.dir}/memory.max"), "limit_mib": limit_mib, "want_mib": want_mib}
        if os.path.exists(f"{cg.dir}/memory.swap.max"):
            res["memory.swap.max"] = read(f"{cg.dir}/memory.swap.max")
        res["swap_total_kb"] = next(int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("SwapTotal:"))
        t = time.monotonic()
        pid, rep = spawn_in(cg, allocate, want_mib)
        progress = drain(rep).split()
        _, status = os.waitpid(pid, 0)
        res["seconds"] = round(time.monotonic() - t, 2)
        res["child"] = status_of(status)
        res["reached_mib"] = int(progress[-1]) if progress else 0
        res["memory.events"] = keyed(f"{cg.dir}/memory.events")
        res["oom_killed()"] = cg.oom_killed()
        if os.path.exists(f"{cg.dir}/memory.peak"):
            res["memory.peak"] = int(read(f"{cg.dir}/memory.peak"))
        res["stats"] = cg.stats().__dict__
    finally:
        cg.destroy()
    return res


def mode_pids(limit: int = 50, attempts: int = 200) -> dict:
    cg = cgroups.manager(f"v2probe-pids-{os.getpid()}")
    cg.create()
    try:
        cg.apply_limits(Limits(pids=limit))
        res = {"pids.max": read(f"{cg.dir}/pids.max"), "limit": limit, "attempts": attempts}
        t = time.monotonic()
        pid, rep = spawn_in(cg, fork_bomb, attempts)
        # the report is written once forking stopped; the forker then waits to be killed
        buf = b""
        while not buf.endswith(b"}"):
            b = os.read(rep, 4096)
            if not b:
                break
            buf += b
        res["seconds"] = round(time.monotonic() - t, 2)
        res["child_report"] = json.loads(buf.decode()) if buf else None
        res["pids.current"] = int(read(f"{cg.dir}/pids.current"))
        res["pids()"] = len(cg.pids())
        res["pids.events"] = keyed(f"{cg.dir}/pids.events")
        cg.kill_all(signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(rep)
        res["forker"] = status_of(status)
        # outside the cgroup, the guest still forks and execs as usual
        r = subprocess.run(
            ["/bin/sh", "-c", "for i in $(seq 20); do /bin/true; done; echo ok"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        res["outside_ok"] = r.returncode == 0 and r.stdout.strip() == "ok"
        res["outside_pids_max"] = read("/proc/sys/kernel/pid_max")
    finally:
        cg.destroy()
    return res


def _spin_in(name: str, limits: Limits | None, seconds: float) -> dict:
    cg = cgroups.manager(f"v2probe-{name}-{os.getpid()}")
    cg.create()
    try:
        if limits is not None:
            cg.apply_limits(limits)
        res = {"cpu.max": read(f"{cg.dir}/cpu.max")}
        before = keyed(f"{cg.dir}/cpu.stat")
        t = time.monotonic()
        pid, rep = spawn_in(cg, spin, seconds)
        loops = drain(rep)
        _, status = os.waitpid(pid, 0)
        wall = time.monotonic() - t
        after = keyed(f"{cg.dir}/cpu.stat")
        used = after["usage_usec"] - before["usage_usec"]
        res.update(
            {
                "wall_s": round(wall, 3),
                "usage_usec": used,
                "ratio": round(used / (wall * 1e6), 3),
                "nr_throttled": after.get("nr_throttled", 0),
                "throttled_usec": after.get("throttled_usec", 0),
                "loops": int(loops or 0),
                "child": status_of(status),
            }
        )
    finally:
        cg.destroy()
    return res


def mode_cpu(seconds: float = 5.0) -> dict:
    # a control run without a limit first: on this slow emulated guest a busy loop may not
    # get a whole CPU at all, and the limited run only means something next to it
    return {
        "unlimited": _spin_in("cpu-free", None, 3.0),
        "limited": _spin_in("cpu-half", Limits(cpus=0.5), seconds),
        "nproc": os.cpu_count(),
    }


MODES = {"backend": mode_backend, "memory": mode_memory, "pids": mode_pids, "cpu": mode_cpu}


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] not in MODES:
        print(f"usage: probe.py {'|'.join(MODES)}", file=sys.stderr)
        return 2
    result = MODES[sys.argv[1]]()
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
