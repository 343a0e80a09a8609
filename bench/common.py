"""Shared helpers for the scripts in bench/ (benchmarks, not tests).

What every benchmark here needs, following ../shared/host-notes.md:

* the machine's state at the start (load average: the VM has 2 cores and other people's
  work shows up in every number);
* tools run *alternately*, round by round, with the order rotated each round, so that drift
  of the machine (the ext4 disk slows down after deletions) hits every tool alike;
* medians and min..max, never means, and ratios of medians against a peer;
* podman in a private configuration (containers.conf, storage.conf, registries.conf in a
  temp dir), so the host's podman setup is neither read for storage nor written;
* cleanup that survives Ctrl-C and SIGTERM: mounts under our temp dirs are unmounted before
  anything is deleted, and processes we started are stopped by PID.

Run the scripts with the venv's interpreter (``.venv/bin/python bench/NAME``), as root.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def venv_console_script(name: str) -> str:
    """A console script next to the running interpreter (the venv), else the repo's venv."""
    for candidate in (Path(sys.executable).parent / name, REPO / ".venv" / "bin" / name):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise BenchError(
        f"{name} not found next to {sys.executable} nor in {REPO}/.venv/bin: "
        f"run the benchmark with the venv's python (.venv/bin/python bench/...)"
    )


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


class ToolFailed(BenchError):
    """A measured command exited non-zero; carries its stderr so it can be reported."""

    def __init__(self, name: str, argv: Sequence[str], returncode: int, stdout: str, stderr: str):
        self.name, self.argv, self.returncode = name, list(argv), returncode
        self.stdout, self.stderr = stdout, stderr
        super().__init__(
            f"{name} failed with exit code {returncode}\n"
            f"  command: {' '.join(map(str, argv))}\n"
            f"  stderr:\n{indent(stderr.strip() or '(empty)')}"
            + (f"\n  stdout:\n{indent(stdout.strip())}" if stdout.strip() else "")
        )


def indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def need_root() -> None:
    if os.geteuid() != 0:
        raise BenchError("run as root: the tools mount overlays and the script mounts a tmpfs")


def need_program(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        raise BenchError(f"{name} is not installed (apt-get install {name})")
    return path


# -- the machine ------------------------------------------------------------------------------


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def machine_state() -> dict:
    """What else the machine is doing, for the header of a report."""
    meminfo = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        meminfo[key] = int(value.split()[0]) if value.split() else 0
    fields = Path("/proc/loadavg").read_text().split()
    return {
        "loadavg": list(load_average()),
        "runnable": fields[3],
        "cpus": os.cpu_count(),
        "mem_available_mib": meminfo.get("MemAvailable", 0) // 1024,
        "dirty_mib": meminfo.get("Dirty", 0) // 1024,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def busy_processes(min_cpu_percent: float = 10.0, limit: int = 5) -> list[str]:
    """Processes using noticeable CPU right now (ps's %CPU is a lifetime average, so this is
    a hint, not a measurement), ours excluded."""
    r = subprocess.run(
        ["ps", "-eo", "pid,ppid,pcpu,etime,args", "--sort=-pcpu", "--no-headers"], capture_output=True, text=True
    )
    out = []
    for line in r.stdout.splitlines():
        parts = line.split(None, 4)
        if len(parts) < 5:
            continue
        pid, ppid, pcpu = int(parts[0]), int(parts[1]), float(parts[2])
        if pcpu < min_cpu_percent or os.getpid() in (pid, ppid):
            continue
        out.append(f"{pid} {pcpu:.0f}% {parts[3]} {parts[4][:100]}")
        if len(out) >= limit:
            break
    return out


def describe_machine(state: dict) -> str:
    la = " ".join(f"{x:.2f}" for x in state["loadavg"])
    return (
        f"load average {la} (runnable/total {state['runnable']}), {state['cpus']} CPUs, "
        f"{state['mem_available_mib']} MiB available, {state['dirty_mib']} MiB dirty, at {state['time']}"
    )


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_busy_seconds() -> float:
    """CPU-seconds the whole machine has spent busy since boot (/proc/stat: user, nice,
    system, irq, softirq, steal; not idle nor iowait), summed over all CPUs."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one live process (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def own_cpu_seconds(extra_pids: Iterable[int] = ()) -> float:
    """CPU-seconds of this process, its waited-for children (and theirs), and ``extra_pids``
    (children still running, such as the registry)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system + sum(map(process_cpu_seconds, extra_pids))


class CpuWatch:
    """How much CPU the rest of the machine used while we measured: the machine's busy
    CPU-seconds minus ours. Kernel threads working for us (ext4 writeback, kworkers) count
    as "others" too, so on the disk a few CPU-seconds are normal; a qemu guest or a test
    suite running alongside shows up as tens of seconds."""

    def __init__(self, extra_pids: Iterable[int] = ()):
        self.extra_pids = list(extra_pids)
        self.t0, self.busy0, self.ours0 = time.monotonic(), cpu_busy_seconds(), own_cpu_seconds(self.extra_pids)

    def others(self) -> tuple[float, float]:
        """(CPU-seconds used by others, seconds elapsed) since the start."""
        busy = cpu_busy_seconds() - self.busy0
        ours = own_cpu_seconds(self.extra_pids) - self.ours0
        return max(0.0, busy - ours), time.monotonic() - self.t0

    def describe(self) -> str:
        other, elapsed = self.others()
        return (
            f"other processes and kernel threads used {other:.1f} CPU-s in {elapsed:.0f} s "
            f"({other / elapsed if elapsed else 0:.2f} of {os.cpu_count()} CPUs)"
        )


def wait_until_quiet(
    max_busy_cpus: float = 0.3, window: float = 10.0, timeout: float = 600.0, log: Callable[[str], None] | None = None
) -> bool:
    """Wait until the machine (not counting us) is busy with less than ``max_busy_cpus`` CPUs
    on average over ``window`` seconds; give up after ``timeout``. True if it became quiet."""
    deadline = time.monotonic() + timeout
    while True:
        watch = CpuWatch()
        time.sleep(window)
        other, elapsed = watch.others()
        busy = other / elapsed
        if busy <= max_busy_cpus:
            if log:
                log(f"machine quiet: {busy:.2f} CPUs busy over {elapsed:.0f} s")
            return True
        if time.monotonic() > deadline:
            if log:
                log(f"machine still busy ({busy:.2f} CPUs over {elapsed:.0f} s) after {timeout:.0f} s: going on anyway")
            return False
        if log:
            hogs = "; ".join(busy_processes(min_cpu_percent=20, limit=2)) or "no single process stands out"
            log(f"waiting for a quiet machine: {busy:.2f} CPUs busy ({hogs})")


def filesystem_of(path: Path) -> str:
    """The fstype of the mount that holds ``path`` (from /proc/self/mountinfo)."""
    path = Path(os.path.realpath(path))
    best, fstype = "", "?"
    for m in mountinfo():
        mp = m["mount_point"]
        if (path == Path(mp) or str(path).startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
            best, fstype = mp, m["fstype"]
    return fstype


# -- statistics and reports -------------------------------------------------------------------


@dataclass
class Summary:
    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def max(self) -> float:
        return max(self.runs)

    def as_dict(self) -> dict:
        return {
            "runs": [round(x, 4) for x in self.runs],
            "n": len(self.runs),
            "median": round(self.median, 4),
            "min": round(self.min, 4),
            "max": round(self.max, 4),
        }


def fmt_seconds(x: float, unit: str = "s") -> str:
    if unit == "ms":
        return f"{x * 1000:.1f}"
    return f"{x:.2f}" if x >= 0.1 else f"{x:.3f}"


def fmt_range(s: Summary, unit: str = "s") -> str:
    return f"{fmt_seconds(s.min, unit)}..{fmt_seconds(s.max, unit)}"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def ratio(results: dict[str, Summary], tool: str, baseline: str) -> float | None:
    if tool in results and baseline in results and results[baseline].median > 0:
        return results[tool].median / results[baseline].median
    return None


def render_table(results: dict[str, Summary], baseline: str, unit: str = "s") -> str:
    """tool | median | min..max | median / baseline's median."""
    rows = [("tool", f"median ({unit})", f"min..max ({unit})", f"vs {baseline}")]
    for tool, s in results.items():
        rows.append((tool, fmt_seconds(s.median, unit), fmt_range(s, unit), fmt_ratio(ratio(results, tool, baseline))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for r in rows:
        lines.append(f"{r[0]:<{widths[0]}}   {r[1]:>{widths[1]}}   {r[2]:>{widths[2]}}   {r[3]:>{widths[3]}}")
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def render_runs(results: dict[str, Summary], unit: str = "s") -> str:
    width = max(map(len, results), default=0)
    return "\n".join(
        f"  {tool:<{width}}  " + " ".join(fmt_seconds(x, unit) for x in s.runs) for tool, s in results.items()
    )


def target_line(results: dict[str, Summary], tool: str, baseline: str, short: tuple[str, str], target: float) -> str:
    r = ratio(results, tool, baseline)
    name = f"{short[0]}/{short[1]}"
    if r is None:
        return f"{name} = n/a ({tool!r} or {baseline!r} was not run) (target <= {target:.2f})"
    return f"{name} = {r:.2f}x (target <= {target:.2f})"


def ratio_line(results: dict[str, Summary], tool: str, baseline: str, short: tuple[str, str]) -> str:
    """``short[0]/short[1] = X.XXx``: the ratio of medians of a pair that has no target."""
    r = ratio(results, tool, baseline)
    name = f"{short[0]}/{short[1]}"
    return f"{name} = n/a ({tool!r} or {baseline!r} was not run)" if r is None else f"{name} = {r:.2f}x"


def dump_json(obj, stream=None) -> None:
    json.dump(obj, stream or sys.stdout, indent=2)
    (stream or sys.stdout).write("\n")


# -- running tools alternately ----------------------------------------------------------------


@dataclass
class Tool:
    """One contender. ``prepare(i)`` and ``cleanup(i)`` run outside the timing; ``argv(i)`` and
    ``env(i)`` describe the timed command of run ``i``."""

    name: str
    argv: Callable[[int], list[str]]
    env: Callable[[int], dict[str, str] | None] = lambda i: None
    prepare: Callable[[int], None] = lambda i: None
    cleanup: Callable[[int], None] = lambda i: None
    runs: list[float] = field(default_factory=list)


def timed(
    name: str,
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float | None = 1800,
) -> float:
    """Wall-clock seconds of one command, its output captured (both tools see pipes, not a
    TTY). Raises ToolFailed with its stderr if it exits non-zero."""
    t0 = time.perf_counter()
    r = subprocess.run(
        list(argv),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise ToolFailed(name, argv, r.returncode, r.stdout, r.stderr)
    return elapsed


def rotation(names: Sequence[str], round_index: int) -> list[str]:
    """Round 0: A B C; round 1: B C A; round 2: C A B; ..."""
    k = round_index % len(names) if names else 0
    return list(names[k:]) + list(names[:k])


def alternate(
    tools: Sequence[Tool],
    rounds: int,
    warmup: int = 0,
    sync_between: bool = True,
    settle: float = 0.0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Summary]:
    """Run every tool once per round, the order rotated each round; ``warmup`` extra rounds
    first whose times are thrown away. Between runs (outside the timing) the result is
    cleaned up, then ``sync`` so one tool's dirty pages are not written back during the next
    tool's run, then ``settle`` seconds of sleep."""
    by_name = {t.name: t for t in tools}
    names = [t.name for t in tools]
    run_no = 0
    for r in range(-warmup, rounds):
        for name in rotation(names, r):
            tool = by_name[name]
            i = run_no
            run_no += 1
            tool.prepare(i)
            try:
                seconds = timed(name, tool.argv(i), tool.env(i))
            finally:
                tool.cleanup(i)
                if sync_between:
                    os.sync()
                if settle:
                    time.sleep(settle)
            if r >= 0:
                tool.runs.append(seconds)
            if log:
                log(f"{'warm-up' if r < 0 else f'round {r + 1}/{rounds}'}: {name:<28} {seconds:7.3f} s")
    return {t.name: Summary(t.runs) for t in tools}


# -- mounts and trees -------------------------------------------------------------------------


def _unescape(s: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mountinfo() -> list[dict]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        out.append({"mount_point": _unescape(lf[4]), "fstype": rf[0], "source": _unescape(rf[1])})
    return out


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    root = os.path.realpath(path)
    found = [
        m["mount_point"]
        for m in mountinfo()
        if m["mount_point"] == root or m["mount_point"].startswith(root.rstrip("/") + "/")
    ]
    return sorted(set(found), key=lambda p: (p.count("/"), p), reverse=True)


_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


def umount(path: str) -> None:
    """umount(2), falling back to a lazy detach if the mount is busy."""
    if _libc.umount2(os.fsencode(path), 0) == 0:
        return
    err = ctypes.get_errno()
    if err == 22:  # EINVAL: not a mount point (any more)
        return
    if _libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err != 22:
            raise OSError(err, f"umount {path}: {os.strerror(err)}")


def unmount_all_under(path: Path) -> list[str]:
    """Unmount everything at or below ``path`` (stacked mounts included); returns what was
    unmounted. Raises if something stays mounted."""
    done = []
    for _ in range(8):  # mounts can be stacked on one mount point
        mps = mounts_under(path)
        if not mps:
            return done
        for mp in mps:
            umount(mp)
            done.append(mp)
    left = mounts_under(path)
    if left:
        raise BenchError(f"still mounted under {path}: {left}")
    return done


def remove_tree(path: Path) -> None:
    """Unmount whatever is mounted under ``path``, then delete it. Never deletes through a
    mount: if something stays mounted, it raises instead."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    unmount_all_under(path)
    if path.is_dir() and not path.is_symlink():
        r = subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], capture_output=True, text=True)
        if path.exists():
            raise BenchError(f"could not remove {path}: {r.stderr.strip()}")
    else:
        path.unlink()


@contextlib.contextmanager
def private_tmpfs(parent: Path, size: str = "8g") -> Iterator[Path]:
    """A tmpfs mounted on a new private directory under ``parent``; unmounted (everything
    under it first) and removed on the way out."""
    mp = Path(tempfile.mkdtemp(prefix="t", dir=parent))
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "bench-tmpfs", str(mp)], capture_output=True, text=True
    )
    if r.returncode != 0:
        mp.rmdir()
        raise BenchError(f"mount tmpfs on {mp}: {r.stderr.strip()}")
    try:
        yield mp
    finally:
        with shielded():
            unmount_all_under(mp)
            mp.rmdir()


def overlay_and_tmpfs_mounts() -> list[str]:
    """The lines of /proc/mounts that mention overlay or tmpfs (for a before/after check)."""
    return [line for line in Path("/proc/mounts").read_text().splitlines() if "overlay" in line or "tmpfs" in line]


# -- signals ----------------------------------------------------------------------------------


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C so every ``finally`` runs."""


def raise_on_termination() -> None:
    def handler(signum, frame):
        raise Terminated(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


@contextlib.contextmanager
def shielded():
    """Ignore SIGINT/SIGTERM/SIGHUP while cleaning up, so a second Ctrl-C does not leave
    mounts or processes behind. (Children started meanwhile inherit the ignore; they are
    only cleanup commands.)"""
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for s in old:
        signal.signal(s, signal.SIG_IGN)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# -- podman, isolated -------------------------------------------------------------------------


class PodmanSandbox:
    """podman with its configuration in ``confdir`` (containers.conf, storage.conf,
    registries.conf via CONTAINERS_CONF / CONTAINERS_STORAGE_CONF / CONTAINERS_REGISTRIES_CONF),
    and its storage wherever ``argv(root, runroot)`` says. The host's files under
    /etc/containers and /var/lib/containers are not used for storage; its policy.json is
    read (podman has no containers.conf key for it)."""

    def __init__(self, confdir: Path, copy_tmp_dir: Path | None = None, runtime: str | None = None):
        """``copy_tmp_dir``: where podman keeps a blob between download and unpack (its
        image_copy_tmp_dir, default /var/tmp). Put it on the destination's filesystem to
        compare it with a tool that downloads into its own store. (``"storage"``, which
        should mean graphroot/tmp, follows storage.conf's graphroot and not --root in
        podman 4.3, so a fixed directory it is.)"""
        self.confdir = Path(confdir)
        self.confdir.mkdir(parents=True, exist_ok=True)
        self.copy_tmp_dir = Path(copy_tmp_dir) if copy_tmp_dir else Path("/var/tmp")
        self.copy_tmp_dir.mkdir(parents=True, exist_ok=True)
        self.binary = need_program("podman")
        d = self.confdir
        (d / "tmp").mkdir(exist_ok=True)
        (d / "networks").mkdir(exist_ok=True)
        self.containers_conf = d / "containers.conf"
        self.containers_conf.write_text(
            "# written by bench/common.py; see ../shared/host-notes.md\n"
            "[containers]\n"
            'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
            'log_driver = "k8s-file"\n'
            "[network]\n"
            f'network_config_dir = "{d}/networks"\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            + (f'runtime = "{runtime}"\n' if runtime else "")
            + 'events_logger = "file"\n'
            f'events_logfile_path = "{d}/events.log"\n'
            f'tmp_dir = "{d}/tmp"\n'
            f'image_copy_tmp_dir = "{self.copy_tmp_dir}"\n'
        )
        self.storage_conf = d / "storage.conf"
        # graphroot/runroot here are placeholders: every command passes --root/--runroot.
        self.storage_conf.write_text(
            "# written by bench/common.py\n"
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{d}/default-graph"\n'
            f'runroot = "{d}/default-run"\n'
            "[storage.options.overlay]\n"
            'mountopt = "nodev"\n'
        )
        self.registries_conf = d / "registries.conf"
        self.registries_conf.write_text("# written by bench/common.py\nunqualified-search-registries = []\n")
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(self.containers_conf),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
        }

    def argv(self, root: Path, runroot: Path) -> list[str]:
        if len(str(runroot)) > 50:
            raise BenchError(f"podman refuses a runroot longer than 50 characters: {runroot} (use a shorter --workdir)")
        return [
            self.binary,
            "--root",
            str(root),
            "--runroot",
            str(runroot),
            "--storage-driver",
            "overlay",
            "--cgroup-manager=cgroupfs",
        ]

    def reset(self, root: Path, runroot: Path) -> None:
        """``podman system reset -f`` on that storage, then unmount anything left under it
        and delete both directories."""
        if Path(root).exists():
            subprocess.run(
                self.argv(root, runroot) + ["system", "reset", "-f"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=300,
            )
        remove_tree(Path(root))
        remove_tree(Path(runroot))


def enter_private_cgroup_view() -> None:
    """Re-exec this script in a private mount *and network* namespace. crun 1.8 refuses this
    host's hybrid cgroup layout, so /sys/fs/cgroup/unified is unmounted there and every tool
    (minidocker included) sees the same plain cgroup v1 tree. In the private network
    namespace (only ``lo``, brought up), the bridges, veths and iptables rules that
    minidocker's and podman's default networks make live and die with the benchmark: the
    host's own network and mounts stay untouched."""
    if os.environ.get("MINIDOCKER_BENCH_NS") == "1":
        if "MINIDOCKER_HOST_NETNS_FD" in os.environ:  # no tool or container we start gets it
            os.set_inheritable(int(os.environ["MINIDOCKER_HOST_NETNS_FD"]), False)
        return
    unified = "/sys/fs/cgroup/unified"
    again = f"exec {sys.executable} {' '.join(map(repr, sys.argv))}"
    inner = f"ip link set lo up && {{ umount {unified} 2>/dev/null; {again}; }}"
    host = os.open("/proc/self/ns/net", os.O_RDONLY)  # inherited: image builds go back to it to download
    os.set_inheritable(host, True)
    env = {**os.environ, "MINIDOCKER_BENCH_NS": "1", "MINIDOCKER_HOST_NETNS_FD": str(host)}
    os.execvpe("unshare", ["unshare", "-m", "-n", "--propagation", "private", "sh", "-c", inner], env)


# -- the registry -----------------------------------------------------------------------------


@contextlib.contextmanager
def local_registry(workdir: Path, images: Iterable[str], log: Callable[[str], None] | None = None):
    """A docker-registry on 127.0.0.1 (tests/support/registry.py) seeded with the images
    built offline by images/build.py; stopped (its own child process, by PID) on the way out."""
    try:
        from images.build import build_image
        from tests.support.netns import host_network
        from tests.support.registry import start_registry
    except ImportError as e:
        raise BenchError(f"cannot import the image builder or the test registry from {REPO}: {e}") from e
    layouts = {}
    for name in images:
        t0 = time.perf_counter()
        with host_network():  # the benchmark's namespace has no way out; a cold build downloads
            layouts[name] = build_image(name)
        if log:
            log(f"image {name}: {layouts[name]} ({time.perf_counter() - t0:.1f} s to build or find)")
    reg = start_registry(Path(workdir))
    try:
        for name, layout in layouts.items():
            t0 = time.perf_counter()
            reg.seed(layout, name, "latest")
            if log:
                log(f"seeded {reg.host}/{name}:latest ({time.perf_counter() - t0:.1f} s), registry pid {reg.pid}")
        yield reg
    finally:
        with shielded():
            reg.stop()


def image_layout(name: str) -> Path:
    """The OCI layout of recipe ``name`` that local_registry seeds the registry from (built by
    images/build.py, or found in its cache at once)."""
    try:
        from images.build import build_image
        from tests.support.netns import host_network
    except ImportError as e:
        raise BenchError(f"cannot import the image builder from {REPO}: {e}") from e
    with host_network():
        return build_image(name)


def layer_blobs(layout: Path) -> list[tuple[Path, str]]:
    """The layers of the image tagged ``latest`` in an OCI layout (the manifest
    Registry.seed pushes), bottom first: (blob file, its media type's tail, such as
    ``tar+gzip``). An index in between (a multi-platform image) is followed to this
    machine's platform, else to its first manifest."""
    layout = Path(layout)

    def blob(digest: str) -> Path:
        algorithm, hexdigest = digest.split(":", 1)
        return layout / "blobs" / algorithm / hexdigest

    top = json.loads((layout / "index.json").read_text())["manifests"][0]
    doc = json.loads(blob(top["digest"]).read_text())
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    while "manifests" in doc:  # an index: pick a platform
        mine = [m for m in doc["manifests"] if m.get("platform", {}).get("architecture") == arch]
        doc = json.loads(blob((mine or doc["manifests"])[0]["digest"]).read_text())
    layers = []
    for desc in doc["layers"]:
        # OCI's ...layer.v1.tar, ...v1.tar+gzip, ...v1.tar+zstd; Docker's ...rootfs.diff.tar.gzip
        mt = desc["mediaType"].replace("diff.tar.gzip", "diff.tar+gzip")
        kind = mt[mt.rindex(".tar") + 1 :] if ".tar" in mt else mt
        layers.append((blob(desc["digest"]), kind))
    return layers
