"""Integration fixtures: the real CLI against the real kernel and registry processes.

The registries and images come from tests/conftest.py; here: a fresh store per test, a
store shared by the whole session (big images are unpacked once, see host-notes), and a
runner for the ``minidocker`` command.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import HOST_RESOLV_CONF

MINIDOCKER = [sys.executable, "-m", "minidocker"]


def pytest_collection_modifyitems(items):
    if os.geteuid() != 0:
        for item in items:
            if "/integration/" in str(item.fspath):
                item.add_marker(pytest.mark.root)


@pytest.fixture(autouse=True)
def _need_root(request):
    if "/integration/" in str(request.node.fspath) and os.geteuid() != 0:
        pytest.fail("integration tests need root (run: sudo .venv/bin/python -m pytest)")


def one_error(stderr: str) -> bool:
    """Exactly one ``Error: ...`` line (a hint may follow), and no traceback."""
    return sum(line.startswith("Error: ") for line in stderr.splitlines()) == 1 and "Traceback" not in stderr


@dataclass
class Minidocker:
    """Runs ``minidocker --root ROOT ...`` with a private credentials directory."""

    root: Path
    config: Path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINIDOCKER_")}
        env.update(MINIDOCKER_ROOT=str(self.root), MINIDOCKER_CONFIG=str(self.config))
        # not the machine's /etc/minidocker/daemon.json (a course VM has one): a test writes its own
        env.update(MINIDOCKER_DAEMON_CONFIG=str(self.config / "daemon.json"))
        env.update(MINIDOCKER_HOST_RESOLV_CONF=HOST_RESOLV_CONF)  # (tests/conftest.py: no resolver)
        env.update(extra or {})
        return env

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*MINIDOCKER, *args], capture_output=True, text=True, input=input, env=self.env(env), timeout=timeout
        )

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        r = self(*args, **kw)
        assert r.returncode == 0, f"minidocker {' '.join(args)} exited {r.returncode}:\n{r.stderr}"
        return r

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [*MINIDOCKER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env(env)
        )


def _remove(m: Minidocker, path: Path) -> None:
    """Remove every container of the store (even running ones), then its files."""
    if (m.root / "containers").exists():
        ids = m("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            m("rm", "-f", *ids)
    from tests.support.lazy import release_store

    release_store(m.root)  # (lazy layers: their FUSE mounts, servers, background fetches)
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


@pytest.fixture
def md(tmp_path) -> Minidocker:
    """A fresh, empty store for one test."""
    m = Minidocker(tmp_path / "root", tmp_path / "config")
    yield m
    _remove(m, m.root)


@contextlib.contextmanager
def busybox_store(tmp_path_factory, registry, name: str):
    """A store of a test module's own, with busybox pulled from ``registry``; every container
    and file of it removed at the end: ``with busybox_store(...) as (m, base): yield m``."""
    base = tmp_path_factory.mktemp(name)
    m = Minidocker(base / "root", base / "config")
    try:
        m.ok("pull", "-q", f"{registry.host}/busybox:latest")
        yield m, base
    finally:
        _remove(m, base)


@pytest.fixture(scope="session")
def shared_md(tmp_path_factory) -> Minidocker:
    """One store for the whole session: pull a big image once, not once per test."""
    base = tmp_path_factory.mktemp("shared")
    m = Minidocker(base / "root", base / "config")
    yield m
    _remove(m, base)


@pytest.fixture
def own_registry(tmp_path, image_layouts):
    """A registry of this test's own, which it may break (tamper with blobs, seed hostile layers)."""
    from tests.support.registry import start_registry

    reg = start_registry(tmp_path / "registry")
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def bb(shared_md, registry):
    """The busybox image's name, pulled once into the session's shared store."""
    ref = f"{registry.host}/busybox:latest"
    shared_md.ok("pull", "-q", ref)
    return ref


@pytest.fixture
def md_run(shared_md, bb):
    """The shared store, and every container a test made is removed afterwards."""
    before = set(shared_md.ok("ps", "-aq", "--no-trunc").stdout.split())
    yield shared_md
    after = set(shared_md("ps", "-aq", "--no-trunc").stdout.split())
    if after - before:
        shared_md("rm", "-f", *(after - before))
