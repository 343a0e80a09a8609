"""containerd drives minidocker-runc (issue #15): ``ctr run`` with ``--runc-binary``, and
``ctr task exec``, ``ps``, ``pause``, ``resume``, ``kill`` on what it runs.

The runtime is this worktree's code (a wrapper script, as the podman tests' fixture makes);
another binary can be named to check the harness itself::

    OCI_RUNTIME_UNDER_TEST=/usr/sbin/runc .venv/bin/python -m pytest tests/integration/test_oci_containerd.py

containerd's default spec allows devices (linux.resources.devices "allow" rules, docker's
list) and mounts /run as a tmpfs with ``strictatime``: bundle.py must take both.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.support.containerd import Containerd, start_containerd

WORKTREE = Path(__file__).resolve().parents[2]


def oci_runtime(directory: Path) -> str:
    """OCI_RUNTIME_UNDER_TEST, else a wrapper that runs minidocker-runc from this worktree
    (the shim runs the binary in the bundle's directory, with containerd's environment)."""
    override = os.environ.get("OCI_RUNTIME_UNDER_TEST")
    if override:
        return override
    wrapper = directory / "minidocker-runc"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={WORKTREE} exec {sys.executable} -m minidocker.oci "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.fixture
def cd(tmp_path, registry):
    with start_containerd(tmp_path / "containerd") as cd:
        image = f"{registry.host}/busybox:latest"
        pulled = cd.ctr("images", "pull", "--plain-http", image, timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        cd.image = image  # type: ignore[attr-defined]
        cd.runtime = oci_runtime(tmp_path)  # type: ignore[attr-defined]
        yield cd


def _run(cd: Containerd, *args: str, timeout: float = 60):
    runtime = ["--runtime", "io.containerd.runc.v2", "--runc-binary", cd.runtime]  # type: ignore[attr-defined]
    return cd.ctr("run", *runtime, *args, timeout=timeout)


def _stopped(cd: Containerd, cid: str, timeout: float = 15.0) -> bool:
    """ctr 1.6 has no ``task wait``: poll ``task ls`` until the task shows STOPPED."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [line.split() for line in cd.ctr("task", "ls").stdout.splitlines()]
        if any(row[:1] == [cid] and "STOPPED" in row for row in rows):
            return True
        time.sleep(0.1)
    return False


def _status(cd: Containerd, cid: str) -> str:
    rows = [line.split() for line in cd.ctr("task", "ls").stdout.splitlines()]
    return next((row[-1] for row in rows if row[:1] == [cid]), "")


def test_run_prints_and_passes_exit_code(cd):
    out = _run(cd, "--rm", cd.image, "c1", "echo", "hi")
    assert (out.returncode, out.stdout) == (0, "hi\n"), out.stderr
    out = _run(cd, "--rm", cd.image, "c2", "sh", "-c", "exit 3")
    assert out.returncode == 3, out.stderr


def test_detached_task_ps_exec_kill(cd):
    # The task is PID 1 of its namespace: SIGTERM does nothing to it without a handler.
    sh = "trap 'exit 143' TERM; while :; do sleep 1; done"
    out = _run(cd, "-d", cd.image, "d1", "sh", "-c", sh)
    assert out.returncode == 0, out.stderr
    ps = cd.ctr("task", "ps", "d1")
    assert ps.returncode == 0, ps.stderr
    assert ps.stdout.split()[2].isdigit(), ps.stdout  # header PID INFO, then the task's pid
    ex = cd.ctr("task", "exec", "--exec-id", "e1", "d1", "echo", "there")
    assert (ex.returncode, ex.stdout) == (0, "there\n"), ex.stderr
    ex = cd.ctr("task", "exec", "--exec-id", "e2", "d1", "sh", "-c", "exit 4")
    assert ex.returncode == 4, ex.stderr
    assert cd.ctr("task", "pause", "d1").returncode == 0
    assert _status(cd, "d1") == "PAUSED"
    assert cd.ctr("task", "resume", "d1").returncode == 0
    assert _status(cd, "d1") == "RUNNING"
    assert cd.ctr("task", "kill", "d1").returncode == 0
    assert _stopped(cd, "d1"), cd.ctr("task", "ls").stdout
    assert cd.ctr("task", "rm", "d1").returncode == 0
    assert cd.ctr("container", "rm", "d1").returncode == 0
    assert "d1" not in cd.ctr("container", "ls", "-q").stdout.split()
