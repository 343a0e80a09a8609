"""A rate-limiting TCP forwarder on 127.0.0.1 that counts what it forwards (for bench/lazy).

bench/lazy puts it between a registry and every client: the clients are told the forwarder's
address as the registry's, and each connection they open is joined to a new connection to
the registry. Two threads per connection copy bytes, one each way. The direction that
matters, registry -> client (manifests, TOCs, chunks, whole blobs), goes through one token
bucket shared by all connections, so ``rate`` bytes per second is the link's speed whatever
the client does (one stream or twenty range requests at once), and every byte sent that way
is added to ``fetched``: "bytes fetched" is what crossed the link, HTTP headers included.
The other direction (requests) is counted in ``sent`` and never slowed.

The bucket holds at most ``burst`` bytes (a tenth of a second's worth, at least 64 KiB); a
sender that takes more than there is goes into debt and sleeps it off, so the long-run rate
is ``rate`` and a burst is short. ``rate=0`` means no limit (loopback speed; still counted).

See it: ``python -c "from bench.throttle import Throttle; t = Throttle('127.0.0.1', 5000, 1e6);
print(t.host)"`` and point ``curl`` at that address: a 10 MB body takes 10 s.
"""

from __future__ import annotations

import socket
import threading
import time

CHUNK = 64 * 1024


class TokenBucket:
    """``take(n)`` returns once ``n`` bytes may go out at ``rate`` bytes per second."""

    def __init__(self, rate: float, burst: float | None = None):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(64 * 1024, self.rate / 10))
        self.tokens = self.burst
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            self.tokens -= n
            debt = -self.tokens
        if debt > 0:
            time.sleep(debt / self.rate)

    def set_rate(self, rate: float) -> None:
        with self.lock:
            self.rate = float(rate)
            self.burst = max(64 * 1024, self.rate / 10)
            self.tokens = self.burst
            self.last = time.monotonic()


class Throttle:
    """The forwarder: listening on 127.0.0.1 (a free port) as soon as it is made, forwarding
    to ``upstream_host:upstream_port``; ``stop()`` closes every socket it opened (its threads
    are daemons and end with them)."""

    def __init__(self, upstream_host: str, upstream_port: int, rate: float = 0.0):
        self.upstream = (upstream_host, upstream_port)
        self.bucket = TokenBucket(rate)
        self.lock = threading.Lock()
        self.fetched = 0  # bytes sent to clients (registry -> client)
        self.sent = 0  # bytes sent upstream (client -> registry)
        self.connections = 0
        self.sockets: set[socket.socket] = set()
        self.half_done: set[frozenset[int]] = set()  # connections with one direction finished
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.settimeout(0.2)  # accept() wakes up to see stop()
        self.port = self.listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.stopped = False
        self.thread = threading.Thread(target=self.accept_loop, name="throttle-accept", daemon=True)
        self.thread.start()

    @property
    def rate(self) -> float:
        return self.bucket.rate

    def set_rate(self, rate: float) -> None:
        """Bytes per second from now on (0: no limit)."""
        self.bucket.set_rate(rate)

    def reset_counts(self) -> None:
        with self.lock:
            self.fetched = self.sent = self.connections = 0

    def counts(self) -> tuple[int, int]:
        """(bytes fetched by clients, bytes they sent) so far."""
        with self.lock:
            return self.fetched, self.sent

    def accept_loop(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed: stop()
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.connections += 1
                self.sockets.update((client, upstream))
            threading.Thread(target=self.pump, args=(upstream, client, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(client, upstream, False), daemon=True).start()

    def pump(self, src: socket.socket, dst: socket.socket, to_client: bool) -> None:
        """Copy ``src`` to ``dst`` until ``src`` ends; then end ``dst``'s writing side (a
        half-close, as HTTP clients may do), and close both once both directions are done."""
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                if to_client:
                    self.bucket.take(len(data))
                dst.sendall(data)
                with self.lock:
                    if to_client:
                        self.fetched += len(data)
                    else:
                        self.sent += len(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.close_if_done(src, dst)

    def close_if_done(self, a: socket.socket, b: socket.socket) -> None:
        """The second pump of a pair to finish closes both sockets."""
        with self.lock:
            key = frozenset((id(a), id(b)))
            if key not in self.half_done:
                self.half_done.add(key)
                return
            self.half_done.discard(key)
            self.sockets.discard(a)
            self.sockets.discard(b)
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def stop(self) -> None:
        self.stopped = True
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            open_sockets = list(self.sockets)
            self.sockets.clear()
        for s in open_sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self.thread.join(timeout=5)

    def __enter__(self) -> Throttle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
