"""Parts of a blob, by HTTP Range requests: what a lazily pulled layer reads (issue #16).

A lazy layer needs only some bytes of its blob: the eStargz footer and table of contents at
the end, then the compressed chunks of the files a container opens. The registry API serves
a blob with ``GET /v2/NAME/blobs/DIGEST``; with a ``Range: bytes=A-B`` header a server that
can answers ``206 Partial Content`` and only those bytes (RFC 9110, section 14). The steps::

    resolve    the first request goes to the registry, which may answer 307 with a CDN's
               signed URL: that redirect is followed once and the URL kept for every later
               range (the registry's token never goes to another host)
    merge      the ranges wanted at once, sorted, with neighbours less than MERGE_GAP
               bytes apart joined: one request for a run of small chunks
    fetch      one GET with Range per merged run; 206 with the Content-Range asked for is
               the only good answer. A 200 means the server ignores Range:
               ``RangesUnsupported``, and the caller pulls the blob whole instead
    account    every request and byte is counted (``stats``), for --explain and bench/lazy

The bytes are not verified here (a range of a blob has no digest of its own): the caller
checks each chunk against the digest its table of contents gives.

See it: ``curl -sI -H 'Range: bytes=0-9' http://127.0.0.1:PORT/v2/busybox/blobs/sha256:...``.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import urljoin, urlsplit

from minidocker.errors import ImageNotFound, RangesUnsupported, RegistryError
from minidocker.image.reference import Reference
from minidocker.image.registry import RegistryClient
from minidocker.record import record

MERGE_GAP = 64 * 1024  # ranges closer than this are fetched in one request (the gap is read and dropped)
REDIRECTS = (301, 302, 303, 307, 308)
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@record
class RangeStats:
    requests: int = 0  # GETs with a Range header, the resolving one included
    bytes: int = 0  # bytes received in their bodies


def merge_ranges(ranges: list[tuple[int, int]], gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """``(start, length)`` ranges -> the fewest ``(start, length)`` runs that cover them,
    joining two when less than ``gap`` bytes lie between them (overlaps always join)."""
    runs: list[list[int]] = []
    for start, length in sorted(r for r in ranges if r[1] > 0):
        if runs and start <= runs[-1][1] + gap:
            runs[-1][1] = max(runs[-1][1], start + length)
        else:
            runs.append([start, start + length])
    return [(a, b - a) for a, b in runs]


class BlobRanges:
    """Range reads of one blob of ``size`` bytes (its descriptor's) from a registry.
    Safe to share between threads (a FUSE server's): the client's HTTP pool is."""

    def __init__(self, client: RegistryClient, ref: Reference, digest: str, size: int):
        self.client, self.ref, self.digest, self.size = client, ref, digest, size
        self.scope = f"repository:{ref.path}:pull"
        self.stats = RangeStats()
        self._url: str | None = None  # where the blob is served from, once resolved
        self._headers: dict[str, str] = {}
        self._lock = threading.Lock()

    def read(self, start: int, length: int) -> bytes:
        """``length`` bytes of the blob from ``start``."""
        if start < 0 or length < 0 or start + length > self.size:
            raise RegistryError(f"range {start}+{length} lies outside blob {self.digest[:19]} of {self.size} bytes")
        if length == 0:
            return b""
        return self._fetch(start, length)

    def read_tail(self, length: int) -> bytes:
        """The last ``length`` bytes (or the whole blob if it is shorter): an eStargz footer."""
        length = min(length, self.size)
        return self.read(self.size - length, length)

    def read_many(self, ranges: list[tuple[int, int]], gap: int = MERGE_GAP) -> dict[tuple[int, int], memoryview]:
        """Each ``(start, length)`` asked for -> its bytes, fetched as merged runs."""
        out = {}
        for run_start, run_length in merge_ranges(ranges, gap):
            data = memoryview(self.read(run_start, run_length))  # (slices of it copy nothing)
            for start, length in ranges:
                if run_start <= start and start + length <= run_start + run_length:
                    out[(start, length)] = data[start - run_start : start - run_start + length]
        return out

    def _fetch(self, start: int, length: int) -> bytes:
        headers = {"Range": f"bytes={start}-{start + length - 1}", "Accept-Encoding": "identity"}
        resp = self._get(headers)
        try:
            if resp.status_code == 403 and self._url is not None:  # a CDN's signed URL may expire
                resp.close()
                self._url = None
                resp = self._get(headers)
            if resp.status_code == 404:
                raise ImageNotFound(f"blob {self.digest[:19]} of {self.ref.familiar_name} not found")
            if resp.status_code == 200:
                raise RangesUnsupported(
                    f"{urlsplit(str(resp.request.url)).netloc} ignores Range requests for blob {self.digest[:19]}",
                    hint="the layer is pulled whole instead",
                )
            if resp.status_code != 206:
                raise RegistryError(f"range request for blob {self.digest[:19]} answered {resp.status_code}")
            m = CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or (int(m[1]), int(m[2])) != (start, start + length - 1):
                got = resp.headers.get("Content-Range", "none")
                raise RegistryError(f"range request for blob {self.digest[:19]} got Content-Range {got}")
            data = resp.read()
        except self.client._httpx.TransportError as e:
            raise RegistryError(
                f"range request for blob {self.digest[:19]} broke off: {e or type(e).__name__}"
            ) from None
        finally:
            resp.close()
        with self._lock:
            self.stats.requests += 1
            self.stats.bytes += len(data)
        if len(data) != length:
            raise RegistryError(f"range request for blob {self.digest[:19]}: {len(data)} bytes of {length}")
        return data

    def _get(self, headers: dict[str, str]):
        """The ranged GET: to the URL resolved before, or to the registry (following one
        redirect, whose target is kept; credentials only for the registry's own host)."""
        if self._url is not None:
            return self.client._send("GET", self._url, {**headers, **self._headers}, stream=True)
        path = f"/v2/{self.ref.path}/blobs/{self.digest}"
        resp = self.client.request("GET", path, scope=self.scope, headers=headers, stream=True)
        url = str(resp.request.url)
        if resp.status_code in REDIRECTS:
            location = urljoin(url, resp.headers.get("Location", ""))
            resp.close()
            same_host = urlsplit(location).netloc == urlsplit(url).netloc
            self._headers = self.client._auth_header(self.scope) if same_host else {}
            self._url = location
            return self.client._send("GET", location, {**headers, **self._headers}, stream=True)
        self._url, self._headers = url, self.client._auth_header(self.scope)
        return resp


class RemoteBlob:
    """A blob in its registry that a process reads by range (a lazy layer's chunk source):
    ``ranges()`` is its BlobRanges, made anew in each process, since an HTTP pool does not
    survive a fork (the FUSE server is a forked process)."""

    def __init__(self, domain: str, ref: Reference, digest: str, size: int):
        self.domain, self.ref, self.digest, self.size = domain, ref, digest, size
        self._pid = -1
        self._ranges: BlobRanges | None = None

    def ranges(self) -> BlobRanges:
        import os

        if self._ranges is None or self._pid != os.getpid():
            self._ranges = BlobRanges(RegistryClient(self.domain), self.ref, self.digest, self.size)
            self._pid = os.getpid()
        return self._ranges
