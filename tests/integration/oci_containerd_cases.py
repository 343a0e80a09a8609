"""containerd drives minidocker-runc (issue #15): ``ctr run`` with ``--runc-binary``.

Not collected by default (no ``test_`` prefix): it becomes ``test_oci_containerd.py`` when
minidocker-runc lands. Run it explicitly::

    .venv/bin/python -m pytest tests/integration/oci_containerd_cases.py
    OCI_RUNTIME_UNDER_TEST=/usr/sbin/runc .venv/bin/python -m pytest tests/integration/oci_containerd_cases.py
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from tests.support.containerd import Containerd, start_containerd


def oci_runtime() -> str:
    override = os.environ.get("OCI_RUNTIME_UNDER_TEST")
    if override:
        return override
    path = shutil.which("minidocker-runc")
    if path is None:
        pytest.fail("minidocker-runc is not installed: it comes with the minidocker package (issue #15)")
    return path


@pytest.fixture
def cd(tmp_path, registry):
    with start_containerd(tmp_path / "containerd") as cd:
        image = f"{registry.host}/busybox:latest"
        pulled = cd.ctr("images", "pull", "--plain-http", image, timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        cd.image = image  # type: ignore[attr-defined]
        yield cd


def _run(cd: Containerd, *args: str, timeout: float = 60):
    runtime = ["--runtime", "io.containerd.runc.v2", "--runc-binary", oci_runtime()]
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
    assert cd.ctr("task", "kill", "d1").returncode == 0
    assert _stopped(cd, "d1"), cd.ctr("task", "ls").stdout
    assert cd.ctr("task", "rm", "d1").returncode == 0
    assert cd.ctr("container", "rm", "d1").returncode == 0
    assert "d1" not in cd.ctr("container", "ls", "-q").stdout.split()
