"""The cgroup v2 guest: a slow, separate test target.

These tests boot a Debian 12 guest under qemu's software emulation (see guest.py), so they
take minutes, not seconds. They run only when asked for by path:

    .venv/bin/python -m pytest tests/v2guest -q

A plain ``pytest`` from the repository root does not collect them: ``pytest_ignore_collect``
below ignores this directory unless a command-line argument points into it (or
MINIDOCKER_V2GUEST=1 is set).

``guest`` (session): builds the image if needed (vagrant/v2-guest/build.sh, cached), boots one
guest for the whole session, copies the project onto its disk, and powers it off at the end;
qemu is killed by PID even when a test fails. A missing tool fails the fixture naming the
Debian package; nothing is skipped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_timings: dict[str, object] = {}


def _asked_for(config) -> bool:
    if os.environ.get("MINIDOCKER_V2GUEST") == "1":
        return True
    for arg in config.args:
        path = Path(arg.split("::")[0])
        path = (Path(config.invocation_params.dir) / path).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    if HERE in collection_path.parents and not _asked_for(config):
        return True
    return None


@pytest.fixture(scope="session")
def guest(tmp_path_factory):
    from tests.v2guest.guest import Guest, GuestError, build, need_tools

    t0 = time.monotonic()
    try:
        need_tools()
        t = time.monotonic()
        cache = build()
        _timings["build_or_cache_check_s"] = round(time.monotonic() - t, 1)
    except GuestError as e:
        pytest.fail(str(e), pytrace=False)
    g = Guest(cache, workdir=tmp_path_factory.mktemp("v2guest"))
    try:
        try:
            _timings["boot_to_ssh_s"] = round(g.boot(), 1)
            _timings["put_project_s"] = round(g.put_project(), 1)
        except GuestError as e:
            pytest.fail(str(e), pytrace=False)
        yield g
    finally:
        g.shutdown()
        cmds = g.timings.get("commands") or []
        if cmds:
            _timings["ssh_commands"] = len(cmds)
            _timings["fastest_round_trip_s"] = round(min(cmds), 2)
        _timings["guest_session_s"] = round(time.monotonic() - t0, 1)
        _timings["cache_on_disk"] = _du(cache)


@pytest.fixture(scope="session")
def guest_timings() -> dict[str, object]:
    """Where a test records what it measured; printed in the terminal summary below."""
    return _timings


def _du(path: Path) -> str:
    total = 0
    for p in path.rglob("*"):
        if p.is_file():
            total += p.stat().st_blocks * 512
    return f"{total / (1 << 20):.0f} MiB"


def pytest_terminal_summary(terminalreporter):
    if _timings:
        terminalreporter.section("cgroup v2 guest")
        for k, v in _timings.items():
            terminalreporter.write_line(f"{k}: {v}")
