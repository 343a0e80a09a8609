"""Issue #9.5: one damaged container record must not break the store.

Truncate (or garble, or delete) one container's ``state.json`` or ``config.json``: ``ps -a``
still lists every container, the damaged one as ``Dead`` (docker's word for a container it
cannot load), ``inspect`` says why, and ``rm -f`` removes it together with what it still holds
on the host: its processes, its cgroup, its address on a network.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.integration.conftest import one_error
from tests.integration.test_network import netns  # noqa: F401 - the fixture

DAMAGES = {
    "truncated-state": ("state.json", lambda p: p.write_bytes(p.read_bytes()[:7])),
    "empty-state": ("state.json", lambda p: p.write_bytes(b"")),
    "state-not-an-object": ("state.json", lambda p: p.write_text("[1, 2]")),
    "truncated-config": ("config.json", lambda p: p.write_bytes(p.read_bytes()[:20])),
    "config-of-another-shape": ("config.json", lambda p: p.write_text(json.dumps({"id": 7}))),
    "config-deleted": ("config.json", lambda p: p.unlink()),
}


def cgroup_dirs(cid: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"*/minidocker/{cid}") if p.is_dir()]


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_running_container_is_dead_and_rm_f_frees_it(md_run, bb, damage):
    m = md_run
    healthy = m.ok("run", "-d", "--name", f"healthy-{damage}", bb, "sleep", "60").stdout.strip()
    cid = m.ok("run", "-d", "--name", f"victim-{damage}", "-m", "32m", bb, "sleep", "60").stdout.strip()
    state = json.loads((m.root / "containers" / cid / "state.json").read_text())
    pid, monitor = state["Pid"], state["MonitorPid"]
    assert pid_alive(pid) and cgroup_dirs(cid)

    filename, break_it = DAMAGES[damage]
    break_it(m.root / "containers" / cid / filename)

    ps = m("ps", "-a", "--no-trunc")
    assert ps.returncode == 0 and "Traceback" not in ps.stderr, ps.stderr
    lines = {line.split()[0]: line for line in ps.stdout.splitlines()[1:]}
    assert healthy in lines and "Up" in lines[healthy]  # the others are untouched
    assert cid in lines and "Dead" in lines[cid]
    assert m.ok("ps", "-aq", "--no-trunc").stdout.split().count(cid) == 1

    info = json.loads(m.ok("inspect", cid).stdout)[0]
    assert info["State"]["Status"] == "dead" and info["State"]["Dead"] is True
    assert filename in info["State"]["Error"]

    r = m("start", cid)
    assert r.returncode == 1 and one_error(r.stderr) and "rm -f" in r.stderr  # docker start exits 1

    m.ok("rm", "-f", cid)
    assert not (m.root / "containers" / cid).exists()
    assert not any(p.name.endswith(cid) for p in (m.root / "containers").iterdir())
    for _ in range(100):  # SIGKILLed: give the kernel a moment to reap
        if not pid_alive(pid) and not pid_alive(monitor):
            break
        time.sleep(0.05)
    assert not pid_alive(pid), "the damaged container's process survived rm -f"
    assert not pid_alive(monitor), "the damaged container's monitor survived rm -f"
    assert not cgroup_dirs(cid), f"cgroups left: {cgroup_dirs(cid)}"
    assert "Up" in m.ok("ps").stdout  # the healthy one still runs
    m.ok("rm", "-f", healthy)


def test_a_damaged_record_on_a_network_gives_its_address_back(netns, bb):  # noqa: F811 - the fixture
    """A container whose config is lost is found on its network by ID; rm -f releases its
    address (the test's own network namespace: the host's network is never touched)."""
    root = netns.md.root
    netns.ok("network", "create", "--subnet", "10.98.0.0/24", "damagenet")
    cid = netns.ok("run", "-d", "--network", "damagenet", bb, "sleep", "60").stdout.strip()
    assert cid in json.loads((root / "networks" / "damagenet.json").read_text())["Containers"]
    (root / "containers" / cid / "config.json").write_text("{")
    assert "Dead" in netns.ok("ps", "-a", "--no-trunc").stdout
    netns.ok("rm", "-f", cid)
    assert cid not in json.loads((root / "networks" / "damagenet.json").read_text())["Containers"]
    assert not cgroup_dirs(cid)


def test_a_killed_create_or_rm_leaves_nothing_visible(md_run, bb):
    """Records appear by one rename and go by one rename; leftovers are reclaimed."""
    m = md_run
    containers = m.root / "containers"
    half = containers / (".new-" + "ab" * 32)
    (half / "upper").mkdir(parents=True)
    gone = containers / (".rm-" + "cd" * 32)
    (gone / "upper").mkdir(parents=True)
    assert "ab" * 32 not in m.ok("ps", "-aq", "--no-trunc").stdout.split()
    m.ok("run", bb, "true")
    assert not half.exists() and not gone.exists()
    assert os.listdir(containers)  # the new record is there
