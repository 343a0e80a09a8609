"""The freezer's file writes, against a temp dir laid out like the kernel's cgroup files; and
``hold_frozen``'s helper process, which thaws when its owner ends (really killed here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minidocker.errors import FreezeFailed
from minidocker.linux.cgroups.freezer import hold_frozen
from minidocker.linux.cgroups.v1 import CgroupV1
from minidocker.linux.cgroups.v2 import CgroupV2

REPO = Path(__file__).resolve().parents[2]


def test_v2_freeze_writes_cgroup_freeze_and_waits_for_events(tmp_path):
    cg = tmp_path / "minidocker" / "c1"
    cg.mkdir(parents=True)
    (cg / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    m = CgroupV2("c1", str(tmp_path))
    m.freeze()
    assert (cg / "cgroup.freeze").read_text() == "1"
    assert m.frozen()
    m.thaw()
    assert (cg / "cgroup.freeze").read_text() == "0"


def test_v2_freeze_times_out_when_the_kernel_never_says_frozen(tmp_path, monkeypatch):
    from minidocker.linux import cgroups

    cg = tmp_path / "minidocker" / "c1"
    cg.mkdir(parents=True)
    (cg / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    real = cgroups.wait_for
    monkeypatch.setattr("minidocker.linux.cgroups.wait_for", lambda check, what: real(check, what, timeout=0.05))
    with pytest.raises(TimeoutError, match="frozen"):
        CgroupV2("c1", str(tmp_path)).freeze()


def test_v1_freeze_writes_freezer_state(tmp_path):
    d = tmp_path / "freezer" / "minidocker" / "c1"
    d.mkdir(parents=True)
    (d / "freezer.state").write_text("THAWED\n")
    m = CgroupV1("c1", str(tmp_path))
    assert not m.frozen()
    # a file is not the kernel: what we write is what we read back, FROZEN at once
    m.freeze()
    assert (d / "freezer.state").read_text() == "FROZEN" and m.frozen()
    m.thaw()
    assert (d / "freezer.state").read_text() == "THAWED"


# -- hold_frozen: the freeze is owned by a helper process that thaws when its owner ends ------

# An owner that freezes, says so, and waits to be killed: argv = cgroup root, notes file
OWNER = """
import os, sys, time
from minidocker.linux.cgroups.v1 import CgroupV1
from minidocker.linux.cgroups.freezer import hold_frozen
note = lambda text: open(sys.argv[2], "a").write(text + "\\n")
with hold_frozen(CgroupV1("c1", sys.argv[1]), on_frozen=lambda: note("frozen"), on_thawed=lambda: note("thawed")):
    print("inside", flush=True)
    time.sleep(120)
"""


def _freezer(tmp_path) -> Path:
    d = tmp_path / "freezer" / "minidocker" / "c1"
    d.mkdir(parents=True)
    (d / "freezer.state").write_text("THAWED\n")
    return d / "freezer.state"


def _wait_until(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _start_owner(tmp_path, **popen) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(tmp_path), str(tmp_path / "notes")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        **popen,
    )
    assert proc.stdout.readline() == "inside\n"
    return proc


def test_a_sigkilled_owner_leaves_nothing_frozen(tmp_path):
    state = _freezer(tmp_path)
    owner = _start_owner(tmp_path)
    assert state.read_text() == "FROZEN" and (tmp_path / "notes").read_text() == "frozen\n"
    owner.kill()  # SIGKILL: no finally runs in the owner
    owner.wait()
    assert _wait_until(lambda: state.read_text() == "THAWED")
    assert _wait_until(lambda: (tmp_path / "notes").read_text() == "frozen\nthawed\n")


# An owner whose helper takes its time between the freeze and its report (on_frozen sleeps)
SLOW_OWNER = OWNER.replace('on_frozen=lambda: note("frozen")', 'on_frozen=lambda: (note("frozen"), time.sleep(1))')


def test_an_owner_killed_before_the_helper_reports_leaves_nothing_frozen(tmp_path):
    """The owner dies while the helper is still freezing: the helper's report then meets a
    pipe with no reader (EPIPE); it must still wait for the end (at once) and thaw."""
    state = _freezer(tmp_path)
    notes = tmp_path / "notes"
    owner = subprocess.Popen([sys.executable, "-c", SLOW_OWNER, str(tmp_path), str(notes)], cwd=REPO)
    try:
        assert _wait_until(lambda: notes.exists() and notes.read_text() == "frozen\n")
        assert state.read_text() == "FROZEN"
    finally:
        owner.kill()  # (before the report: the owner is still reading it)
        owner.wait()
    assert _wait_until(lambda: state.read_text() == "THAWED"), "the helper left the cgroup frozen"
    assert _wait_until(lambda: notes.read_text() == "frozen\nthawed\n")


def test_the_helper_outlives_a_signal_to_the_whole_process_group(tmp_path):
    """SIGTERM to the group (a terminal's, a service manager's) kills the owner at once;
    the helper ignores it, so it still thaws."""
    state = _freezer(tmp_path)
    owner = _start_owner(tmp_path, start_new_session=True)
    os.killpg(owner.pid, signal.SIGTERM)  # the group of our owner: it and its helper
    assert owner.wait() == -signal.SIGTERM
    assert _wait_until(lambda: state.read_text() == "THAWED")


def test_the_owner_thaws_at_the_end_of_the_block_and_when_the_helper_is_killed(tmp_path):
    state = _freezer(tmp_path)
    notes: list[str] = []
    with hold_frozen(CgroupV1("c1", str(tmp_path)), on_thawed=lambda: notes.append("thawed")):
        assert state.read_text() == "FROZEN"
    assert state.read_text() == "THAWED" and notes == []  # the helper ran on_thawed, in its process
    helper = tmp_path / "helper.pid"
    with hold_frozen(
        CgroupV1("c1", str(tmp_path)),
        on_frozen=lambda: helper.write_text(str(os.getpid())),
        on_thawed=lambda: notes.append("thawed"),
    ):
        os.kill(int(helper.read_text()), signal.SIGKILL)  # our own child, the helper
        assert state.read_text() == "FROZEN"
    assert state.read_text() == "THAWED" and notes == ["thawed"]  # done by the owner in its place


def test_a_freeze_that_fails_is_reported_and_nothing_stays_frozen(tmp_path):
    with (
        pytest.raises(FreezeFailed, match="cannot freeze the container: .*freezer.state"),
        hold_frozen(CgroupV1("c1", str(tmp_path))),
    ):
        pytest.fail("the block must not run")
