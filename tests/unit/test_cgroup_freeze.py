"""The freezer's file writes, against a temp dir laid out like the kernel's cgroup files."""

from __future__ import annotations

import pytest

from minidocker.linux.cgroups.v1 import CgroupV1
from minidocker.linux.cgroups.v2 import CgroupV2


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
    monkeypatch.setattr("minidocker.linux.cgroups.v2.wait_for", lambda check, what: real(check, what, timeout=0.05))
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
