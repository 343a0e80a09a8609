"""bench/lazy's own parts, without root: a timed run (the moment the awaited line arrives, the
exit, the link's counts at both), a failed run's one line, and the choice of links."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.throttle import Throttle

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "lazy"


def load_script():
    loader = importlib.machinery.SourceFileLoader("bench_lazy_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # (dataclasses look their module up by name)
    loader.exec_module(module)
    return module


lazy = load_script()


@pytest.fixture
def link() -> Iterator[tuple[Throttle, int]]:
    """A throttle in front of a server that sends 100,000 bytes to each connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"x" * 100_000)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    throttle = Throttle("127.0.0.1", server.getsockname()[1])
    try:
        yield throttle, throttle.port
    finally:
        throttle.stop()
        stop.set()
        thread.join(timeout=5)
        server.close()


def fetch_then(port: int, then: str) -> list[str]:
    """A command that fetches through the link (python: read to EOF), then runs ``then``."""
    py = f"import socket; s = socket.create_connection(('127.0.0.1', {port})); exec('while s.recv(65536): pass')"
    return ["sh", "-c", f'echo progress >&2; {sys.executable} -c "{py}"; {then}']


def test_the_awaited_line_and_the_exit_are_timed_with_the_counts(link) -> None:
    throttle, port = link
    run = lazy.measure(fetch_then(port, "sleep 0.3; echo ready; sleep 0.4"), None, "ready", throttle, 30)
    assert 0.3 <= run.first_output < run.exit
    assert run.exit - run.first_output >= 0.35
    assert run.bytes_first == run.bytes_total == 100_000


def test_a_failed_run_is_one_line_with_its_error(link) -> None:
    throttle, _ = link
    argv = ["sh", "-c", "echo 'Pulling fs layer' >&2; echo 'Error: no such image: x' >&2; exit 125"]
    with pytest.raises(lazy.RunFailed, match=r"^exit code 125: Error: no such image: x$"):
        lazy.measure(argv, None, "ready", throttle, 30)


def test_exit_zero_without_the_line_fails(link) -> None:
    throttle, _ = link
    with pytest.raises(lazy.RunFailed, match="exit code 0 but no 'ready' on stdout"):
        lazy.measure(["sh", "-c", "echo something else"], None, "ready", throttle, 30)


def test_a_run_past_its_timeout_is_killed(link) -> None:
    throttle, _ = link
    with pytest.raises(lazy.RunFailed, match="^timed out"):
        lazy.measure(["sleep", "30"], None, "ready", throttle, 0.5)


@pytest.mark.parametrize(
    "argv, links",
    [
        ([], ["loopback", "10 MB/s"]),
        (["--rate", "0"], ["loopback"]),
        (["--rate", "2.5", "--network", "limited"], ["2.5 MB/s"]),
        (["--network", "loopback"], ["loopback"]),
    ],
)
def test_the_links(argv: list[str], links: list[str]) -> None:
    assert [name for name, _ in lazy.parse_args(argv).networks] == links


def test_the_tools_and_workloads_chosen() -> None:
    args = lazy.parse_args(["--only", "md-full,podman", "--workload", "read"])
    assert args.tools == ["md-full", "podman"]
    assert args.workloads == ["read all"]
    with pytest.raises(SystemExit):
        lazy.parse_args(["--only", "docker"])
