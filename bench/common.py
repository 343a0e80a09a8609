"""Shared pieces of the benchmarks: a registry with the offline images, podman in a
private configuration, the peers' cgroup workaround, and median/min/max reporting.

Benchmarks are scripts, not tests: they print medians and ratios against the peers
installed from Debian (podman, crun, skopeo), running the tools alternately in one run so
that the machine's drift hits every tool alike (see ../shared/host-notes.md)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MINIDOCKER = str(Path(sys.executable).parent / "minidocker")


def enter_private_cgroup_view() -> None:
    """crun 1.8 refuses this host's hybrid cgroup layout. Re-exec this script in a private
    mount namespace without /sys/fs/cgroup/unified, so every tool (minidocker included)
    sees the same plain cgroup v1 tree. The host's mounts stay untouched."""
    if os.environ.get("MINIDOCKER_BENCH_NS") == "1":
        return
    unified = "/sys/fs/cgroup/unified"
    inner = f"umount {unified} 2>/dev/null; exec {sys.executable} {' '.join(map(repr, sys.argv))}"
    env = {**os.environ, "MINIDOCKER_BENCH_NS": "1"}
    os.execvpe("unshare", ["unshare", "-m", "--propagation", "private", "sh", "-c", inner], env)


def podman_env(base: Path) -> tuple[list[str], dict[str, str]]:
    """podman with its own storage and configuration under ``base`` (the host's is untouched)."""
    (base / "conf").mkdir(parents=True, exist_ok=True)
    containers_conf = base / "conf/containers.conf"
    containers_conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                               'log_driver = "k8s-file"\n[engine]\ncgroup_manager = "cgroupfs"\n'
                               'events_logger = "file"\nruntime = "crun"\n')
    storage_conf = base / "conf/storage.conf"
    storage_conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{base}/graph"\n'
                            f'runroot = "{base}/run"\n')
    registries = base / "conf/registries.conf"
    registries.write_text("unqualified-search-registries = []\n")
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf), "CONTAINERS_STORAGE_CONF": str(storage_conf),
           "CONTAINERS_REGISTRIES_CONF": str(registries)}
    return ["podman", "--root", f"{base}/graph", "--runroot", f"{base}/run", "--storage-driver", "overlay",
            "--cgroup-manager=cgroupfs"], env


def podman_reset(cmd: list[str], env: dict[str, str]) -> None:
    subprocess.run(cmd + ["system", "reset", "-f"], env=env, capture_output=True)


@contextlib.contextmanager
def local_registry(*images: str):
    """A docker-registry on 127.0.0.1 seeded with images built offline by images/."""
    from images.build import build_image
    from tests.support.registry import start_registry

    with tempfile.TemporaryDirectory(prefix="minidocker-bench-") as tmp:
        reg = start_registry(Path(tmp) / "registry")
        try:
            for name in images:
                reg.seed(build_image(name), name)
            yield reg
        finally:
            reg.stop()


def timed(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t
    if check and r.returncode != 0:
        raise SystemExit(f"benchmark command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr.decode()}")
    return elapsed


def report(title: str, results: dict[str, list[float]], baseline: str, unit: str = "ms",
           target: tuple[str, float] | None = None) -> dict:
    scale = 1000 if unit == "ms" else 1
    print(f"\n{title}")
    print(f"{'tool':<34}{'median':>10}  {'min..max':<22}{'vs ' + baseline}")
    base = statistics.median(results[baseline]) if baseline in results else None
    out = {}
    for tool, xs in results.items():
        med = statistics.median(xs)
        ratio = f"{med / base:.2f}x" if base else "-"
        print(f"{tool:<34}{med * scale:>9.1f}{unit[:2]:<1} {min(xs) * scale:>9.1f}..{max(xs) * scale:<9.1f}{ratio:>14}")
        out[tool] = {"median": med, "min": min(xs), "max": max(xs), "n": len(xs)}
    if target and base:
        tool, limit = target
        ratio = statistics.median(results[tool]) / base
        print(f"{tool}/{baseline} = {ratio:.2f}x (target <= {limit:.2f})")
    return out


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def clean_dir(path: Path) -> None:
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


def dump_json(obj) -> None:
    print(json.dumps(obj, indent=2))
