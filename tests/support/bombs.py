"""Decompression bombs, and a registry that lies about sizes, for tests/integration/test_bombs.py.

* ``zero_tar_chunks(size)``: the tar of one file of ``size`` zero bytes, made as it is read
  (200 MiB of tar never sits in memory); ``gzip_bomb(size)`` compresses it (deflate writes
  zeros at about 1032 to 1) and returns the blob with the diff_id of the tar inside.
* ``CraftedRegistry(repos)``: a distribution API on 127.0.0.1 serving OCI image layouts
  (GET /v2/, manifests by tag and digest, blobs), which can be told to lie about one body:
  ``serve_as(key, pad=N, length=...)`` sends the true bytes and then N more, with a true
  ``Content-Length``, none (chunked), or a given one. ``sent[key]`` counts the body bytes
  the kernel accepted for that key, so a test can tell how far a client read.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import tarfile
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.registry import QuietHandler, ThreadedServer

SEND_CHUNK = 64 << 10
SNDBUF = 64 << 10  # the server's socket send buffer: keeps what is in flight small
WRITE_TIMEOUT = 30  # a client that stops reading without closing: give up on it


def zero_tar_chunks(size: int, name: str = "zeros", chunk: int = 1 << 20) -> Iterator[bytes]:
    """A tar with one regular file of ``size`` zero bytes, then the end-of-archive blocks."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    yield info.tobuf(tarfile.PAX_FORMAT)
    zeros = bytes(chunk)
    left = size
    while left:
        n = min(left, chunk)
        yield zeros[:n]
        left -= n
    yield bytes(-size % 512) + bytes(1024)


def gzip_bomb(size: int) -> tuple[bytes, str]:
    """``(gzip blob, diff_id)`` of ``zero_tar_chunks(size)``: 200 MiB of zeros in ~200 KB."""
    packer, tar_hash, out = zlib.compressobj(9, zlib.DEFLATED, 31), hashlib.sha256(), []
    for data in zero_tar_chunks(size):
        tar_hash.update(data)
        out.append(packer.compress(data))
    out.append(packer.flush())
    return b"".join(out), "sha256:" + tar_hash.hexdigest()


class ChunksReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks (in a BufferedReader: tarfile's
    ``addfile`` source, which wants whole reads)."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks, self.pending = chunks, memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not self.pending:
            self.pending = memoryview(next(self.chunks, b""))
            if not self.pending:
                return 0
        n = min(len(buf), len(self.pending))
        buf[:n], self.pending = self.pending[:n], self.pending[n:]
        return n


@dataclass
class Lie:
    pad: int = 0  # bytes sent after the true body
    pad_byte: bytes = b"\0"
    length: str | int = "exact"  # "exact", "none" (chunked, no Content-Length) or a number to claim


class CraftedRegistry:
    """The registry of the module docstring; ``host`` is "127.0.0.1:PORT". Keys of
    ``serve_as``/``sent``: a blob's digest, or ``manifest:<repo>`` for what a tag names."""

    def __init__(self, repos: dict[str, Path]):
        self.repos = {name: Path(p) for name, p in repos.items()}
        self.lies: dict[str, Lie] = {}
        self.sent: dict[str, int] = {}
        self._lock = threading.Lock()
        registry = self

        class Handler(QuietHandler):
            def do_GET(self):
                registry._answer(self, body=True)

            def do_HEAD(self):
                registry._answer(self, body=False)

        self.server = ThreadedServer("127.0.0.1", Handler)
        self.host = f"127.0.0.1:{self.server.port}"

    def serve_as(self, key: str, pad: int = 0, length: str | int = "exact", pad_byte: bytes = b"\0") -> None:
        self.lies[key] = Lie(pad, pad_byte, length)

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> CraftedRegistry:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what a request names ------------------------------------------------------------
    def _find(self, path: str) -> tuple[str, bytes, str] | None:
        """``(key, true body, content type)`` for a manifest or blob path, else None."""
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", path)
        layout = self.repos.get(m[1]) if m else None
        if layout is None:
            return None
        kind, ref = m[2], m[3]
        key = ref
        if kind == "manifests" and not ref.startswith("sha256:"):
            top = json.loads((layout / "index.json").read_text())["manifests"][0]
            key, ref = f"manifest:{m[1]}", top["digest"]
        blob = layout / "blobs/sha256" / ref.removeprefix("sha256:")
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", ref) or not blob.is_file():
            return None
        ctype = "application/vnd.oci.image.manifest.v1+json" if kind == "manifests" else "application/octet-stream"
        return key, blob.read_bytes(), ctype

    def _answer(self, h: QuietHandler, body: bool) -> None:
        if h.path.split("?")[0] in ("/v2", "/v2/"):
            return self._reply(h, 200, b"{}", "application/json")
        found = self._find(h.path.split("?")[0])
        if found is None:
            return self._reply(h, 404, b'{"errors":[{"code":"NOT_FOUND","message":"unknown"}]}', "application/json")
        key, data, ctype = found
        lie = self.lies.get(key, Lie())
        total = len(data) + lie.pad
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        if lie.length == "none":
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(total if lie.length == "exact" else lie.length))
        h.end_headers()
        if body:
            self._send_body(h, key, data, lie)

    @staticmethod
    def _reply(h: QuietHandler, status: int, data: bytes, ctype: str) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    def _send_body(self, h: QuietHandler, key: str, data: bytes, lie: Lie) -> None:
        """Write the body in small pieces, counting each one the kernel took, until it is
        all sent or the client hangs up."""
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        h.connection.settimeout(WRITE_TIMEOUT)
        padding = lie.pad_byte * SEND_CHUNK
        pieces = [data[i : i + SEND_CHUNK] for i in range(0, len(data), SEND_CHUNK)]
        left = lie.pad
        try:
            for piece in pieces:
                self._write(h, key, piece, lie)
            while left:
                piece = padding[: min(left, SEND_CHUNK)]
                self._write(h, key, piece, lie)
                left -= len(piece)
            if lie.length == "none":
                h.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client closed the connection (or stopped reading): done
            h.close_connection = True

    def _write(self, h: QuietHandler, key: str, piece: bytes, lie: Lie) -> None:
        framed = b"%x\r\n%s\r\n" % (len(piece), piece) if lie.length == "none" else piece
        h.wfile.write(framed)
        with self._lock:
            self.sent[key] = self.sent.get(key, 0) + len(piece)


def kernel_in_flight() -> int:
    """The most a TCP connection on this host can hold between a sender's write and the
    receiver's read: the receiver's buffer at its largest (tcp_rmem's maximum, which
    autotuning may reach) and our send buffer (the kernel doubles SO_SNDBUF for overhead)."""
    rmem_max = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    return rmem_max + 2 * SNDBUF
