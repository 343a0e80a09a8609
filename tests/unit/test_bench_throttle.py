"""bench/throttle.py, bench/lazy's link: a real TCP server on 127.0.0.1 behind the forwarder.
Every byte arrives, the count is exact, and the rate limit holds in both directions'
sense: a body at rate R takes about size/R, and with no limit it is fast."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from bench.throttle import Throttle, TokenBucket


class Upstream:
    """A server that answers each connection's first line ``N\\n`` with N bytes, then closes."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            with conn:
                line = b""
                while not line.endswith(b"\n"):
                    part = conn.recv(100)
                    if not part:
                        break
                    line += part
                conn.sendall(bytes(range(256)) * (int(line) // 256))

    def stop(self) -> None:
        self.stopped = True
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    try:
        yield up
    finally:
        up.stop()


def fetch(port: int, size: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"{size}\n".encode())
        got = bytearray()
        while True:
            part = s.recv(1 << 16)
            if not part:
                return bytes(got)
            got += part


def test_every_byte_is_forwarded_and_counted(upstream: Upstream) -> None:
    with Throttle("127.0.0.1", upstream.port, rate=0) as t:
        sizes = [256 * 1000, 256 * 4000, 256]
        bodies = [fetch(t.port, n) for n in sizes]
        assert [len(b) for b in bodies] == sizes
        assert bodies[0] == bytes(range(256)) * 1000
        fetched, sent = t.counts()
        assert fetched == sum(sizes)
        assert sent == sum(len(f"{n}\n") for n in sizes)
        t.reset_counts()
        assert t.counts() == (0, 0)


def test_the_rate_limit_holds(upstream: Upstream) -> None:
    size = 256 * 8000  # 2,048,000 bytes
    with Throttle("127.0.0.1", upstream.port, rate=0) as t:
        t0 = time.monotonic()
        fetch(t.port, size)
        fast = time.monotonic() - t0
        t.set_rate(4_000_000)
        t0 = time.monotonic()
        assert len(fetch(t.port, size)) == size
        slow = time.monotonic() - t0
    # at 4 MB/s, 2.05 MB less the 400 kB burst take >= 0.41 s; a loopback copy takes ~ms
    assert slow >= (size - 400_000) / 4_000_000 * 0.95
    assert slow < 3.0
    assert fast < slow / 3


def test_connections_share_one_bucket(upstream: Upstream) -> None:
    size = 256 * 4000  # 1,024,000 bytes, twice at once
    with Throttle("127.0.0.1", upstream.port, rate=2_000_000) as t:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(len(fetch(t.port, size)))) for _ in range(2)]
        t0 = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=30)
        elapsed = time.monotonic() - t0
        assert results == [size, size]
        assert t.counts()[0] == 2 * size
    # 2.05 MB at 2 MB/s through one bucket (200 kB burst): >= 0.9 s, not the ~0.45 s of two
    assert elapsed >= (2 * size - 200_000) / 2_000_000 * 0.95


def test_a_bucket_without_rate_never_waits() -> None:
    b = TokenBucket(0)
    t0 = time.monotonic()
    for _ in range(1000):
        b.take(1 << 20)
    assert time.monotonic() - t0 < 0.5
