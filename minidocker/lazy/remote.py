"""An eStargz layer still in its registry, served as a lazy layer (issue #16).

The table of contents comes by two HTTP range requests; a file's bytes come when it is first
read, one range request per chunk (image/blobrange.py), inflated and checked against the
TOC's digest (image/estargz.py). What the pieces do, in order::

    RangeFile       the blob as a file that reads itself by range requests: what
                    estargz.EstargzReader opens, so the footer (the last 51 bytes) and the
                    TOC (its own gzip member) are the only bytes fetched to list the layer
    check the TOC   its sha256 against the descriptor's containerd.io/snapshot/stargz/toc.digest
    toc_entries     eStargz's entries as lazy.toc's: each regular file's chunks with the byte
                    range of the blob that holds them (stargz.index.json and the prefetch
                    landmarks are the format's, not the image's: left out)
    RegistryChunks  the ChunkSource lazy/fs.py serves from: a chunk's range, inflated,
                    checked; the HTTP client is made in the FUSE server process, on its first read

See it: ``minidocker convert --estargz debian esgz/debian`` and ``push`` it, then
tests/integration/test_lazy_remote.py mounts its layer and counts the registry's bytes.
"""

from __future__ import annotations

import io
import os
from datetime import datetime
from typing import Any

from minidocker.errors import EstargzError
from minidocker.image import estargz
from minidocker.image.blobrange import BlobRanges, RemoteBlob
from minidocker.image.reference import Reference
from minidocker.image.registry import RegistryClient
from minidocker.lazy import toc

FORMAT_FILES = {estargz.TOC_NAME, estargz.PREFETCH_LANDMARK, estargz.NO_PREFETCH_LANDMARK}
PARSED: dict[str, tuple[toc.Tree, list[str]]] = {}  # TOC digest -> (tree, prefetch group) read in this process


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a blob whose reads are range requests."""

    def __init__(self, ranges: BlobRanges):
        self.ranges, self.pos = ranges, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: self.ranges.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, size: int = -1) -> bytes:
        end = self.ranges.size if size < 0 else min(self.ranges.size, self.pos + size)
        data = self.ranges.read(self.pos, max(0, end - self.pos))
        self.pos += len(data)
        return data


def read_remote_toc(ranges: BlobRanges, descriptor: dict[str, Any]) -> estargz.EstargzReader:
    """The layer's TOC, fetched by range and checked against the descriptor's annotation."""
    want = (descriptor.get("annotations") or {}).get(estargz.TOC_DIGEST_ANNOTATION)
    if not want:
        raise EstargzError(
            f"layer {descriptor['digest'][:19]} has no {estargz.TOC_DIGEST_ANNOTATION} annotation: not eStargz",
            hint="convert the image first: minidocker convert --estargz SRC DST",
        )
    return estargz.EstargzReader(RangeFile(ranges), toc_digest=want)  # type: ignore[arg-type]


def toc_entries(reader: estargz.EstargzReader) -> list[toc.Entry]:
    """The TOC's entries in lazy.toc's model (a chunk's source range: its gzip member)."""
    out = []
    for e in reader.entries:
        name = estargz.clean_name(e.name)
        if name in FORMAT_FILES:
            continue
        entry = toc.Entry(
            name=name,
            type=e.type,
            size=e.size if e.type == toc.REG else 0,
            mode=e.mode & 0o7777,
            uid=e.uid,
            gid=e.gid,
            mtime=modtime(e.modtime),
            link_name=estargz.clean_name(e.link_name) if e.type == toc.HARDLINK else e.link_name,
            dev_major=e.dev_major,
            dev_minor=e.dev_minor,
            xattrs=dict(e.xattrs),
        )
        if e.type == toc.REG:
            entry.chunks = [
                toc.Chunk(c.chunk_offset, c.chunk_size, c.digest, c.offset, c.compressed_size)
                for c in reader.chunks(name)
            ]
        out.append(entry)
    return out


def modtime(text: str) -> float:
    """RFC 3339 (``2024-01-02T03:04:05Z``) -> seconds since the epoch; "" -> 0."""
    if not text:
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise EstargzError(f"a TOC entry's modtime {text!r} is not RFC 3339") from None


class RegistryChunks(RemoteBlob):
    """lazy/fs.py's ChunkSource over a registry: each chunk is the range of its gzip member,
    inflated and checked (estargz.ChunkCorrupt, which the file system turns into EIO)."""

    verifies = True  # every chunk it gives was checked against the TOC's digest (inflate_chunk)

    def read_chunk(self, entry: toc.Entry, chunk: toc.Chunk) -> bytes:
        data = self.ranges().read(chunk.source_offset, chunk.source_length)
        return estargz.inflate_chunk(data, self.piece(entry, chunk))

    def read_many(self, wanted: list[tuple[toc.Entry, toc.Chunk]], gap: int) -> dict[str, bytes | BaseException]:
        """Many chunks at once (a prefetch, a readahead): their gzip members fetched as merged
        runs, one range request for members less than ``gap`` bytes apart; chunk digest ->
        its bytes, or the error that one chunk's inflating or checking raised."""
        spans = [(c.source_offset, c.source_length) for _, c in wanted]
        fetched = self.ranges().read_many(spans, gap)
        out: dict[str, bytes | BaseException] = {}
        for e, c in wanted:
            try:
                out[c.digest] = estargz.inflate_chunk(fetched[(c.source_offset, c.source_length)], self.piece(e, c))
            except EstargzError as exc:
                out[c.digest] = exc
        return out

    @staticmethod
    def piece(entry: toc.Entry, chunk: toc.Chunk) -> estargz.Chunk:
        return estargz.Chunk(
            entry.name, chunk.offset_in_file, chunk.size, chunk.source_offset, chunk.source_length, chunk.digest
        )


def open_remote_layer(
    client: RegistryClient, ref: Reference, descriptor: dict[str, Any]
) -> tuple[toc.Tree, RegistryChunks, BlobRanges]:
    """A pushed eStargz layer's tree (from its TOC, two range requests) and its chunk
    source; the BlobRanges that read the TOC is returned too, for its byte counts."""
    ranges = BlobRanges(client, ref, descriptor["digest"], int(descriptor["size"]))
    reader = read_remote_toc(ranges, descriptor)
    tree = toc.build_tree(toc_entries(reader))
    return tree, RegistryChunks(client.domain, ref, descriptor["digest"], int(descriptor["size"])), ranges


class TailBlob(io.RawIOBase):
    """An eStargz blob of which only the tail is at hand (``data``: its bytes from
    ``start``, the TOC's member and the footer): what the store keeps of a lazy layer to
    read its TOC again. A read anywhere else is a bug, not a fetch: ValueError."""

    def __init__(self, size: int, start: int, data: bytes):
        self.size, self.start, self.data, self.pos = size, start, data, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, size: int = -1) -> bytes:
        end = self.size if size < 0 else min(self.size, self.pos + size)
        if self.pos < self.start:
            raise ValueError(f"byte {self.pos} of the blob is not in the TOC's tail (from {self.start})")
        data = self.data[self.pos - self.start : end - self.start]
        self.pos += len(data)
        return data


def fetch_toc_tail(client: RegistryClient, ref: Reference, descriptor: dict[str, Any]) -> tuple[bytes, int, BlobRanges]:
    """A pushed eStargz layer's tail (TOC member and footer, from the TOC's offset), fetched
    by two range requests and checked against the descriptor's toc.digest: what a lazy pull
    records. Returns (the tail, its offset in the blob, the BlobRanges with its byte counts)."""
    want = (descriptor.get("annotations") or {}).get(estargz.TOC_DIGEST_ANNOTATION)
    if not want:
        raise EstargzError(f"layer {descriptor['digest'][:19]} has no {estargz.TOC_DIGEST_ANNOTATION} annotation")
    size = int(descriptor["size"])
    ranges = BlobRanges(client, ref, descriptor["digest"], size)
    footer = ranges.read_tail(estargz.FOOTER_SIZE)
    start = estargz.toc_offset_from_tail(footer)
    if not 0 <= start < size - estargz.FOOTER_SIZE or size - start > estargz.MAX_TOC_MEMBER + estargz.FOOTER_SIZE:
        raise EstargzError(f"the footer of layer {descriptor['digest'][:19]} puts its TOC at {start}, out of bounds")
    tail = ranges.read(start, size - estargz.FOOTER_SIZE - start) + footer
    estargz.EstargzReader(TailBlob(size, start, tail), toc_digest=want)  # type: ignore[arg-type]  # checks it
    return tail, start, ranges


def open_recorded(meta: dict[str, Any], toc_bytes: bytes) -> tuple[toc.Tree, Any, list[str]]:
    """A recorded lazy layer (lazy/layers.py's meta.json and toc) as the tree and the chunk
    source its FUSE server serves, and the files its format says to prefetch (eStargz: those
    before ``.prefetch.landmark``); the TOC is checked again against its digest."""
    from minidocker.image.reference import parse

    ref = parse(meta["reference"])
    size, digest = int(meta["size_compressed"]), meta["digest"]
    if meta.get("format") == "estargz":
        known = PARSED.get(meta["toc_digest"])  # (the pull of this process read it a moment ago)
        if known is not None:
            return known[0], RegistryChunks(ref.domain, ref, digest, size), known[1]
        blob = TailBlob(size, int(meta["toc_offset"]), toc_bytes)
        reader = estargz.EstargzReader(blob, toc_digest=meta["toc_digest"])  # type: ignore[arg-type]
        return toc.build_tree(toc_entries(reader)), RegistryChunks(ref.domain, ref, digest, size), landmarked(reader)
    if meta.get("format") == "zran":
        from minidocker.image import zran

        index = zran.parse_index(toc_bytes)
        return toc.build_tree(index.entries()), zran.ZranChunks(ref.domain, ref, digest, size, index), []
    raise EstargzError(f"lazy layer {digest[:19]} has an unknown format {meta.get('format')!r}")


def landmarked(reader: estargz.EstargzReader) -> list[str]:
    """The regular files before the prefetch landmark, in TOC order ([] without one)."""
    names = [estargz.clean_name(e.name) for e in reader.entries]
    if estargz.PREFETCH_LANDMARK not in names:
        return []
    ahead = reader.entries[: names.index(estargz.PREFETCH_LANDMARK)]
    return [estargz.clean_name(e.name) for e in ahead if e.type == toc.REG and e.size]
