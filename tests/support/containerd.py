"""A containerd of a test's own: its config, socket, root and state under the test's directory.

``start_containerd(workdir)`` is a context manager yielding a ``Containerd`` (``.address``,
``.ctr(*args)``); at the end it stops the daemon by PID (SIGTERM, then SIGKILL), ends the shims it
left (found by their ``-address`` argument), unmounts what is mounted under its root and state,
removes the cgroups its tasks made and its directories, even when the test failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.registry import need_tool

NAMESPACE = "minidocker-test"
# The runc shim keeps state outside containerd's own dirs: runc's root /run/containerd/runc/<ns>,
# its sockets in /run/containerd/s and its fifos in /run/containerd/fifo.
SHIM_RUN = Path("/run/containerd")


@dataclass
class Containerd:
    namespace: str
    address: str
    root: Path
    state: Path
    proc: subprocess.Popen[bytes]

    def ctr(self, *args: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess[str]:
        cmd = ["ctr", "--address", self.address, "--namespace", self.namespace, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check)


def _config(root: Path, state: Path, address: str) -> str:
    return (
        "version = 2\n"
        f'root = "{root}"\n'
        f'state = "{state}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "[grpc]\n"
        f'  address = "{address}"\n'
        "[ttrpc]\n"
        f'  address = "{address}.ttrpc"\n'
        "[debug]\n"
        f'  address = "{address}.debug"\n'
        '[plugins."io.containerd.service.v1.diff-service"]\n'
        '  default = ["walking"]\n'
        '[plugins."io.containerd.runtime.v1.linux"]\n'
        "  shim_debug = false\n"
    )


def _wait_until_up(cd: Containerd, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cd.proc.poll() is not None:
            raise RuntimeError(f"containerd exited with {cd.proc.returncode} before answering")
        if os.path.exists(cd.address) and cd.ctr("version", timeout=5).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"containerd did not answer on {cd.address} within {timeout}s")


def _shim_pids(address: str) -> list[int]:
    """The shims of this containerd: processes whose command line names its socket."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and address.encode() in argv:
            pids.append(int(entry.name))
    return pids


def _end(pid: int, timeout: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)


def _unmount_under(*dirs: Path) -> None:
    prefixes = tuple(str(d) + "/" for d in dirs)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefixes)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _shim_run_entries() -> set[Path]:
    return {p for d in ("s", "fifo", "runc") if (SHIM_RUN / d).is_dir() for p in (SHIM_RUN / d).iterdir()}


def _remove_shim_state(namespace: str, before: set[Path]) -> None:
    runc_root = SHIM_RUN / "runc" / namespace
    if runc_root.is_dir():
        for bundle in runc_root.iterdir():
            subprocess.run(["runc", "--root", str(runc_root), "delete", "--force", bundle.name], capture_output=True)
    for entry in _shim_run_entries() - before:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _remove_cgroups(namespace: str) -> None:
    """Tasks of the namespace get cgroups named /NAMESPACE/ID under each hierarchy (runc's default)."""
    base = Path("/sys/fs/cgroup")
    for top in [base, *(p for p in base.iterdir() if p.is_dir())]:
        ns = top / namespace
        if not ns.is_dir():
            continue
        for child in sorted(ns.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if child.is_dir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        with contextlib.suppress(OSError):
            ns.rmdir()


@contextlib.contextmanager
def start_containerd(workdir: Path) -> Iterator[Containerd]:
    binary = need_tool("containerd", "containerd")
    need_tool("ctr", "containerd")
    root, state = workdir / "root", workdir / "state"
    root.mkdir(parents=True)
    state.mkdir(parents=True)
    address = str(workdir / "c.sock")
    config = workdir / "config.toml"
    config.write_text(_config(root, state, address))
    log = open(workdir / "containerd.log", "wb")
    before = _shim_run_entries()
    proc = subprocess.Popen([binary, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    cd = Containerd(f"{NAMESPACE}-{os.getpid()}-{workdir.name}", address, root, state, proc)
    try:
        _wait_until_up(cd)
        yield cd
    finally:
        _end(proc.pid)
        proc.wait()
        log.close()
        for pid in _shim_pids(address):
            _end(pid)
        _unmount_under(root, state)
        _remove_shim_state(cd.namespace, before)
        _remove_cgroups(cd.namespace)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
