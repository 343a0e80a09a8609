"""A SIGKILL at any point leaves a consistent store and no frozen container (issue #9, item 4).

pull, commit, build, run -d and rmi are each killed at several points, of two kinds:

* crash points: ``MINIDOCKER_TEST_KILL_AT=NAME`` makes the command SIGKILL itself exactly at
  ``crashpoint(NAME)`` (minidocker/crashpoint.py): ``commit:after-freeze`` (the container
  just frozen), ``commit:blob-written`` (the layer's blob stored, the layer not yet named),
  ``index:before-write`` (everything stored, images/index.json not yet written),
  ``gc:layer-renamed`` and ``gc:before-blobs`` (halfway through a garbage collection);
* progress and time: the test SIGKILLs the command (by the PID it started) once a temp file
  in ``ingest/`` has grown past N bytes, once a build's RUN is running, or after a delay
  spread across the measured duration of an unkilled run of the same command.

After every kill: the store is consistent (tests/support/storecheck.py), no container is
frozen but the one the test paused itself, ``ps -a`` works, and a committed container still
runs ``exec``; then ``system prune -f``, or the next writer, leaves no orphan: no file in
``ingest/``, no ``layers/.tmp-*``, no blob or layer that no image references.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import MINIDOCKER, Minidocker, busybox_store
from tests.support import storecheck

KILLED = -signal.SIGKILL


@pytest.fixture(scope="module")
def crash(tmp_path_factory, registry) -> Minidocker:
    """This module's own store (it is pruned after every kill), with busybox pulled."""
    with busybox_store(tmp_path_factory, registry, "crash") as (m, _base):
        yield m


@pytest.fixture(scope="module")
def bb(registry) -> str:
    return f"{registry.host}/busybox:latest"


# -- killing --------------------------------------------------------------------------------
def kill_at(m: Minidocker, point: str, *args: str) -> None:
    """Run the command with crash point ``point`` armed; it must die there."""
    r = m(*args, env={"MINIDOCKER_TEST_KILL_AT": point})
    assert r.returncode == KILLED, f"minidocker {' '.join(args)} did not reach {point}: exit {r.returncode}\n{r.stderr}"


def kill_when(m: Minidocker, ready: Callable[[], bool], *args: str, timeout: float = 120) -> int:
    """Start the command and SIGKILL it as soon as ``ready()``; its exit status (KILLED, or 0
    when it finished first). Its output goes to files: its children may keep pipes open."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [*MINIDOCKER, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=m.env()
        )
        try:
            deadline = time.monotonic() + timeout
            while proc.poll() is None and not ready():
                assert time.monotonic() < deadline, f"minidocker {' '.join(args)}: the kill point never came"
                time.sleep(0.002)
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        assert proc.returncode in (0, KILLED), f"minidocker {' '.join(args)} exited {proc.returncode}:\n{err.read()}"
    return proc.returncode


def kill_after(m: Minidocker, delay: float, *args: str) -> int:
    start = time.monotonic()
    return kill_when(m, lambda: time.monotonic() - start >= delay, *args)


def timed(m: Minidocker, *args: str) -> tuple[float, str]:
    start = time.monotonic()
    out = m.ok(*args).stdout.strip()
    return time.monotonic() - start, out


def ingest_past(m: Minidocker, size: int, prefix: str = "") -> Callable[[], bool]:
    """True once a temp file of ``ingest/`` (named ``prefix*``) holds ``size`` bytes."""

    def ready() -> bool:
        try:
            return any(p.stat().st_size >= size for p in (m.root / "ingest").iterdir() if p.name.startswith(prefix))
        except FileNotFoundError:  # not there yet, or renamed away as we looked
            return False

    return ready


# -- what must hold after a kill --------------------------------------------------------------
def assert_consistent(m: Minidocker, paused: frozenset[str] = frozenset()) -> None:
    assert storecheck.problems(m.root) == []
    assert storecheck.wait_thawed(m.root, paused) == []
    r = m("ps", "-a")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def assert_pruned(m: Minidocker) -> None:
    """``system prune -f`` reclaims what the kill left: nothing unreferenced remains."""
    m.ok("system", "prune", "-f")
    assert storecheck.orphans(m.root) == []
    assert storecheck.problems(m.root) == []


def remove_new_containers(m: Minidocker, before: set[str]) -> list[str]:
    """``rm -f`` the containers a killed command left (a RUN step's, a half-started one)."""
    made = sorted(set(m.ok("ps", "-aq", "--no-trunc").stdout.split()) - before)
    if made:
        m.ok("rm", "-f", *made)
    assert all(storecheck.freezer_state(cid) is None for cid in made)  # their cgroups went too
    return made


def status(m: Minidocker, cid: str) -> str:
    return json.loads(m.ok("inspect", cid).stdout)[0]["State"]["Status"]


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


# -- pull -----------------------------------------------------------------------------------
def test_killed_pulls(md, registry):
    """debian (one layer of 48 MB, downloaded and unpacked as one stream), killed early,
    halfway, near the end and just before the index write."""
    ref = f"{registry.host}/debian:latest"
    assert kill_when(md, ingest_past(md, 2 << 20), "pull", "-q", ref) == KILLED
    assert_consistent(md)
    assert storecheck.orphans(md.root)  # what the kill left: the prune has work to do
    assert_pruned(md)
    for size in (24 << 20, 45 << 20):  # each next pull is the next writer of the same temp files
        assert kill_when(md, ingest_past(md, size), "pull", "-q", ref) == KILLED
        assert_consistent(md)
    kill_at(md, "index:before-write", "pull", "-q", ref)
    assert_consistent(md)
    assert md.ok("images", "-q").stdout == ""  # no image yet: its index entry is the last write
    md.ok("pull", "-q", ref)
    assert_consistent(md)
    assert storecheck.orphans(md.root) == []  # the next writers took over or reclaimed it all
    assert md.ok("run", "--rm", ref, "cat", "/etc/debian_version").stdout.strip()


# -- commit ---------------------------------------------------------------------------------
def start_shell(m: Minidocker, image: str, *script: str) -> str:
    """A detached container running the shell ``script`` (its parts joined); its ID."""
    return m.ok("run", "-d", image, "sh", "-c", "".join(script)).stdout.strip()


def assert_running_as_before(m: Minidocker, cid: str) -> None:
    assert storecheck.freezer_state(cid) == "THAWED" and status(m, cid) == "running"
    assert "(Paused)" not in m.ok("ps").stdout
    assert m.ok("exec", cid, "echo", "alive").stdout == "alive\n"


def test_killed_commits_leave_the_container_running(crash, bb):
    m = crash
    cid = start_shell(
        m,
        bb,
        "dd if=/dev/urandom of=/big bs=1M count=20 2>/dev/null; touch /ready; while true; do sleep 0.05; done",
    )
    wait_for(m.root / "containers" / cid / "upper" / "ready")
    duration, _ = timed(m, "commit", cid, "crash:whole")
    for point in ("commit:after-freeze", "commit:blob-written", "index:before-write"):
        kill_at(m, point, "commit", cid, "crash:killed")
        assert_consistent(m)
        assert_running_as_before(m, cid)
        assert_pruned(m)
    assert kill_when(m, ingest_past(m, 4 << 20, "new-"), "commit", cid, "crash:killed") == KILLED  # mid-tar
    assert_consistent(m)
    assert_running_as_before(m, cid)
    assert any(o.startswith("ingest/new-") for o in storecheck.orphans(m.root))
    for fraction in (0.5, 0.8):  # the next writer reclaims what the last one left
        kill_after(m, duration * fraction, "commit", cid, "crash:killed")
        assert_consistent(m)
        assert_running_as_before(m, cid)
    assert_pruned(m)
    r = m.ok("run", "--rm", "crash:whole", "stat", "-c", "%s", "/big")
    assert r.stdout.strip() == str(20 << 20)
    m.ok("rm", "-f", cid)


def test_a_killed_commit_leaves_a_paused_container_paused(crash, bb):
    """What the user froze, the user thaws: commit neither freezes nor thaws it."""
    m = crash
    cid = start_shell(m, bb, "echo x > /x; touch /ready; while true; do sleep 0.05; done")
    wait_for(m.root / "containers" / cid / "upper" / "ready")
    m.ok("pause", cid)
    kill_at(m, "index:before-write", "commit", cid, "crash:paused")
    assert_consistent(m, paused=frozenset({cid}))
    assert storecheck.freezer_state(cid) == "FROZEN" and status(m, cid) == "paused"
    m.ok("commit", cid, "crash:paused")
    assert storecheck.freezer_state(cid) == "FROZEN" and status(m, cid) == "paused"
    m.ok("unpause", cid)
    assert_running_as_before(m, cid)
    assert_pruned(m)
    m.ok("rm", "-f", cid)


# -- build ----------------------------------------------------------------------------------
def test_killed_builds(crash, bb, tmp_path):
    m = crash
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "data").write_bytes(bytes(range(256)) * 4096)
    (ctx / "Dockerfile").write_text(
        f"FROM {bb}\nRUN head -c 3000000 /dev/urandom > /r && touch /started && sleep 1\nCOPY data /data\n"
    )
    build = ("build", "--no-cache", "-t", "crash:built", str(ctx))
    before = set(m.ok("ps", "-aq", "--no-trunc").stdout.split())
    duration, _ = timed(m, *build)

    def run_step_started() -> bool:
        return any((d / "upper" / "started").exists() for d in (m.root / "containers").glob("*"))

    assert kill_when(m, run_step_started, *build) == KILLED  # mid-RUN
    for point in ("commit:blob-written", "index:before-write"):  # mid-commit of the RUN step
        kill_at(m, point, *build)
    kill_after(m, duration * 0.9, *build)  # about when the COPY step commits
    remove_new_containers(m, before)
    assert_consistent(m)
    assert_pruned(m)
    m.ok("build", "-t", "crash:built", str(ctx))
    assert m.ok("run", "--rm", "crash:built", "sh", "-c", "wc -c < /data; wc -c < /r").stdout.split() == [
        str(256 * 4096),
        "3000000",
    ]
    remove_new_containers(m, before)
    assert_pruned(m)


# -- run -d ---------------------------------------------------------------------------------
def test_killed_detached_runs(crash, bb):
    m = crash
    before = set(m.ok("ps", "-aq", "--no-trunc").stdout.split())
    duration, cid = timed(m, "run", "-d", bb, "sleep", "60")
    m.ok("rm", "-f", cid)
    results = []
    for fraction in (0.3, 0.5, 0.7, 0.85, 0.95):
        results.append(kill_after(m, duration * fraction, "run", "-d", bb, "sleep", "60"))
        assert_consistent(m)
        remove_new_containers(m, before)
        assert_pruned(m)
    assert KILLED in results


# -- rmi ------------------------------------------------------------------------------------
def test_killed_rmis(crash, bb):
    """Four images, each with a layer of 1,000 files of its own; rmi killed halfway through
    the garbage collection, just before its first write, and after a delay."""
    m = crash
    cid = start_shell(
        m,
        bb,
        "mkdir /many && cd /many && i=0; "
        "while [ $i -lt 1000 ]; do echo $i > f$i; i=$((i+1)); done; touch /ready; "
        "while true; do sleep 0.05; done",
    )
    wait_for(m.root / "containers" / cid / "upper" / "ready")
    for n in range(4):
        m.ok("exec", cid, "sh", "-c", f"echo {n} > /marker")
        m.ok("commit", cid, f"crash:rmi{n}")
    duration, _ = timed(m, "rmi", "crash:rmi0")
    for n, point in ((1, "gc:layer-renamed"), (2, "gc:before-blobs")):
        kill_at(m, point, "rmi", f"crash:rmi{n}")
        assert_consistent(m)
        assert m("inspect", f"crash:rmi{n}").returncode != 0  # gone from the index, the first write
        if point == "gc:layer-renamed":  # renamed out of the layers' names, not yet deleted
            assert any(o.startswith("layers/.tmp-gc-") for o in storecheck.orphans(m.root))
        assert_pruned(m)
    kill_at(m, "index:before-write", "rmi", "crash:rmi3")
    assert_consistent(m)
    assert m.ok("run", "--rm", "crash:rmi3", "sh", "-c", "cat /marker; ls /many | wc -l").stdout.split() == [
        "3",
        "1000",
    ]
    kill_after(m, duration * 0.7, "rmi", "crash:rmi3")
    assert_consistent(m)
    assert_pruned(m)
    m.ok("rm", "-f", cid)
