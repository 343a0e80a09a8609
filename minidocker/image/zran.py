"""A zran index: an ordinary gzip layer made lazily readable, as it is (SOCI's idea, issue #16).

eStargz makes a layer seekable by *rewriting* it (a gzip member per chunk). Most images were
never converted, and their layers are one gzip stream: to read byte N you must inflate every
byte before it, because deflate refers back up to 32 KiB and its blocks start at bit, not
byte, boundaries. zlib's ``examples/zran.c`` shows the way around that without touching the
blob: inflate it once, and every *span* of output stop at a block boundary and keep a
**checkpoint**: the compressed offset, the bit offset within that byte, the uncompressed
offset, and the 32 KiB of output before it (the *window* the next block may refer to).
Later, to read byte N, take the last checkpoint before N, prime an inflater with its bits
and window, and inflate from there: only the compressed bytes between that checkpoint and
the end of what is wanted are needed, and those a registry serves by one HTTP Range request.

``indexed_gzip`` (zran.c grown into a library) finds the checkpoints; ISA-L inflates from
them (``ZranIndex.inflate``: debian-large's whole stream 2.3 times as fast as zlib, 300 random
reads from its checkpoints 2.6 times as fast as indexed_gzip), reaching a checkpoint that falls
inside a byte through empty deflate blocks of our own (``resume_stream``). This module adds
what a lazy layer needs on top (``build_index``)::

    checkpoints   indexed_gzip over the blob, one every SPAN bytes of output
    TOC           every tar member (name, type, size, mode, owner, time, link target,
                  device numbers, xattrs of its PAX headers) and, for a regular file, its
                  data cut into chunks of at most CHUNK_SIZE bytes, each with the sha256 of
                  its bytes, its offset in the *uncompressed* tar, and ``cmp_end``: the
                  compressed offset by which all of its bytes have come out of the inflater
                  (measured while building, to within READ_SIZE), so a read fetches
                  ``[checkpoint before it, cmp_end)`` and not up to the next checkpoint

Why SPAN = 1 MiB (measured on debian's layer: 48.7 MB gzip, 121 MB of tar, 4,863 files of
at most 64 KiB): a small file's first read fetches the compressed bytes from the checkpoint
before it to its end, and every lazy pull fetches the whole index first::

    span       index     points   a small file's first read (median, mean)
    512 KiB    3.26 MB   216       86 KB, 127 KB
    1 MiB      1.81 MB   112      160 KB, 237 KB
    2 MiB      1.08 MB    58      408 KB, 510 KB
    4 MiB      0.68 MB    30      494 KB, 897 KB   (SOCI's default span)

(``bench/zran`` measures it; on debian-large, 155 MB gzip, 1 MiB spans give a 5.6 MB index
and 137 KB / 197 KB first reads, 4 MiB spans 1.8 MB and 605 KB / 782 KB.)
Going from 4 MiB to 1 MiB costs 1.1 MB more index and saves 0.66 MB on every first read:
it pays from the second file a container opens. Halving again doubles the index (+1.45 MB)
to save 110 KB a read, which pays only after thirteen. Building takes 1.5-2 s either way.

The blob (``MEDIA_TYPE``), version 1, all integers little-endian::

    MAGIC                      8 bytes, b"MDZRAN\\x00\\x01" (the last byte is the version)
    header length              8 bytes: H
    header                     H bytes: zlib of the JSON document below
    windows                    the rest: each checkpoint's window, zlib'd one by one,
                               back to back in the order of the points that have one

    {"version": 1, "layer": {"digest": "sha256:...", "size": N}, "uncompressed_size": U,
     "span": 1048576, "window_size": 32768,
     "points": [[cmp_offset, uncmp_offset, bits, window_length], ...],
     "entries": [{"name", "type", "size", "mode", "uid", "gid", "mtime", "link_name",
                  "dev_major", "dev_minor", "xattrs": {name: base64},
                  "chunks": [[offset_in_file, size, "sha256:...", uncmp_offset, cmp_end]]}]}

An index comes from a registry that may be hostile, so ``parse_index`` bounds everything it
reads (MAX_INDEX, MAX_HEADER, MAX_POINTS, MAX_ENTRIES, MAX_CHUNK) and checks what it must before a byte
is served: points in order and inside the layer, every chunk inside the tar and the blob.
What it cannot check is that a name's chunks hold that file's bytes; the layer's bytes are
checked against each chunk's digest, so an index can only ever show bytes of the layer.

See it: ``minidocker convert --index debian`` prints each layer's index; ``python -c
"import indexed_gzip as ig; f = ig.IndexedGzipFile('LAYER', spacing=1<<20);
f.build_full_index(); print(list(f.seek_points())[:3])"`` shows checkpoints.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import io
import json
import math
import struct
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from minidocker.errors import DigestMismatch, LazyLayerError
from minidocker.image.blobrange import RemoteBlob
from minidocker.image.estargz import clean_name
from minidocker.image.reference import Reference
from minidocker.image.registry import RegistryClient
from minidocker.lazy import toc

MEDIA_TYPE = "application/vnd.minidocker.zran.index.v1"
VERSION = 1
MAGIC = b"MDZRAN\x00" + bytes([VERSION])
SPAN = 1 << 20  # uncompressed bytes between checkpoints (the module docstring: why)
WINDOW = 32 << 10  # deflate's window: the output a checkpoint must keep
CHUNK_SIZE = 4 << 20  # a regular file's bytes are verified (and cached) in pieces of at most this
READ_SIZE = 16 << 10  # compressed bytes fed to the inflater at a time while building: cmp_end's precision
MAX_INDEX = 64 << 20  # the blob as fetched
MAX_HEADER = 128 << 20  # its JSON, inflated (debian's: 1.3 MB for 6,658 entries)
MAX_POINTS = 1 << 16  # 64 Ki checkpoints: 64 GiB of tar at 1 MiB spans
MAX_ENTRIES = 1 << 20
MAX_CHUNK = 16 << 20  # a chunk is inflated into memory whole (ours are CHUNK_SIZE)
GZIP_MAGIC = b"\x1f\x8b"
TAIL_MARGIN = 64  # compressed bytes fetched past cmp_end: the inflater's look-ahead, to be safe

# indexed_gzip's export format (zran.c, zran_export_index): how it hands us its checkpoints
GZIDX_HEADER = struct.Struct("<5sBBQQIII")  # id, version, flags, sizes, spacing, window, npoints
GZIDX_POINT = struct.Struct("<QQBB")  # cmp_offset, uncmp_offset, bits, has window

TAR_TYPES = {
    tarfile.REGTYPE: toc.REG,
    tarfile.AREGTYPE: toc.REG,
    tarfile.CONTTYPE: toc.REG,
    tarfile.DIRTYPE: toc.DIR,
    tarfile.SYMTYPE: toc.SYMLINK,
    tarfile.LNKTYPE: toc.HARDLINK,
    tarfile.CHRTYPE: toc.CHAR,
    tarfile.BLKTYPE: toc.BLOCK,
    tarfile.FIFOTYPE: toc.FIFO,
}


@dataclass(frozen=True)
class Point:
    """A checkpoint: inflating may start at compressed byte ``cmp_offset`` (``bits`` of the
    byte before it first) with ``window`` as its history, giving the tar from ``uncmp_offset``."""

    cmp_offset: int
    uncmp_offset: int
    bits: int
    window: bytes  # zlib'd; b"" where inflating starts afresh (the stream's start, a member's)

    @property
    def fetch_from(self) -> int:
        """The first compressed byte an inflater starting here reads."""
        return self.cmp_offset - (1 if self.bits else 0)


@dataclass(frozen=True)
class Place:
    """Where a chunk's bytes are: ``uncmp_offset`` in the tar; all out of the inflater once
    compressed byte ``cmp_end`` is in."""

    uncmp_offset: int
    cmp_end: int


class ZranIndex:
    """A parsed index (``parse_index``): the layer it is of, its checkpoints, its TOC."""

    def __init__(
        self,
        layer_digest: str,
        layer_size: int,
        uncompressed_size: int,
        span: int,
        window_size: int,
        points: list[Point],
        entries: list[toc.Entry],
        places: dict[str, Place],
    ):
        self.layer_digest, self.layer_size, self.uncompressed_size = layer_digest, layer_size, uncompressed_size
        self.span, self.window_size = span, window_size
        self.points, self._entries, self.places = points, entries, places
        self._starts = [p.uncmp_offset for p in points]

    def entries(self) -> list[toc.Entry]:
        """The TOC in lazy.toc's model, each chunk's source range the bytes ``ZranChunks`` fetches."""
        return self._entries

    def point_before(self, uncmp_offset: int) -> Point:
        """The last checkpoint at or before ``uncmp_offset`` (parse_index made sure one is at 0)."""
        return self.points[bisect.bisect_right(self._starts, uncmp_offset) - 1]

    def point_after(self, uncmp_offset: int) -> Point | None:
        """The first checkpoint at or after ``uncmp_offset``, if any."""
        i = bisect.bisect_left(self._starts, uncmp_offset)
        return self.points[i] if i < len(self.points) else None

    def fetch_range(self, uncmp_offset: int, cmp_end: int) -> tuple[int, int]:
        """``(start, length)`` of the blob to fetch for bytes from ``uncmp_offset`` that are
        all out by compressed byte ``cmp_end``."""
        start = 0 if uncmp_offset == 0 else self.point_before(uncmp_offset).fetch_from
        end = min(self.layer_size, max(cmp_end + TAIL_MARGIN, start))
        return start, end - start

    def inflate(self, fetched: bytes, start: int, uncmp_offset: int, size: int) -> bytes:
        """``size`` bytes of the tar from ``uncmp_offset``, inflated from the checkpoint before
        it out of ``fetched`` (the blob's bytes from ``start``): ISA-L's inflater, primed with
        the point's window as its dictionary and fed the point's stream (``resume_stream``).
        What follows the deflate stream that ends (another gzip member) is inflated in turn."""
        from isal import isal_zlib  # ISA-L's inflate (the module docstring: how much faster)

        point = self.point_before(uncmp_offset)
        if point.fetch_from < start:
            raise LazyLayerError(
                f"cannot inflate the tar's bytes {uncmp_offset}+{size}: their checkpoint was not fetched"
            )
        skip = uncmp_offset - point.uncmp_offset
        want = skip + size
        window = inflate_window(point.window, self.window_size) if point.window else b""
        data = resume_stream(point, fetched, start)
        raw = bool(window) or data[:2] != GZIP_MAGIC  # (a point with no window starts a member: at its header?)
        if window:
            d = isal_zlib.decompressobj(-15, zdict=window)
        else:
            d = isal_zlib.decompressobj(-15 if raw else 31)
        out, have = [], 0
        try:
            while data and have < want:
                got = d.decompress(data, want - have)
                out.append(got)
                have += len(got)
                if not d.eof:
                    data = d.unconsumed_tail
                    continue
                # the member's end; a raw inflater leaves its trailer (CRC-32, size) unread. Another member?
                data = d.unused_data[8:] if raw else d.unused_data
                if data[:2] != GZIP_MAGIC:
                    break
                d, raw = isal_zlib.decompressobj(31), False
        except isal_zlib.error as e:  # type: ignore[misc]  # (the stubs do not say it is an exception)
            raise LazyLayerError(f"cannot inflate the tar's bytes {uncmp_offset}+{size}: {e}") from None
        return b"".join(out)[skip:want]


def inflate_window(data: bytes, size: int) -> bytes:
    """A checkpoint's window, inflated: exactly ``size`` bytes, never more (a bomb stops here)."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, size)
    except zlib.error as e:
        raise LazyLayerError(f"a checkpoint's window of the zran index does not inflate: {e}") from None
    if len(out) != size or d.unconsumed_tail or not d.eof:
        raise LazyLayerError(f"a checkpoint's window of the zran index is not {size} bytes")
    return out


def resume_stream(point: Point, fetched: bytes, start: int) -> bytes | memoryview:
    """What a raw inflater is fed to go on from ``point``, out of ``fetched`` (the blob's
    bytes from ``start``): the blob from the point's byte, after a head if the point is
    inside a byte.

    A deflate block may begin at any bit of a byte; ISA-L's inflater (and Python's zlib)
    can only begin at a byte. At a point ``bits`` into its byte (zran.c's ``inflatePrime``
    case: the block starts in the top ``bits`` bits of byte ``cmp_offset - 1``, the low
    ``r = 8 - bits`` are the block before's), the head is deflate blocks of our own that put
    out nothing and end exactly ``r`` bits into a byte (``empty_blocks``), that byte
    completed with the point's top ``bits`` bits::

        [ empty blocks: 8q + r bits         | top 8-r bits of byte cmp_offset-1 ][ byte cmp_offset ...

    An empty block changes neither the output nor the window, so after the head the
    inflater is where zlib's is after ``inflatePrime``."""
    at = point.cmp_offset - start
    view = memoryview(fetched)[at:]
    if not point.bits:
        return view
    r = 8 - point.bits
    value, count = empty_blocks(r)
    q = count // 8
    head = bytearray((value >> (8 * i)) & 0xFF for i in range(q))
    head.append((value >> (8 * q)) & ((1 << r) - 1) | (fetched[at - 1] & (0xFF << r) & 0xFF))
    return bytes(head) + view


class BitWriter:
    """Bits in deflate's order (RFC 1951 3.1.1): a field's bits from its least significant
    one, a Huffman code's from its most significant one, the first bit in a byte's lowest."""

    def __init__(self) -> None:
        self.value, self.count = 0, 0

    def field(self, value: int, count: int) -> None:
        self.value |= (value & ((1 << count) - 1)) << self.count
        self.count += count

    def code(self, code: int, length: int) -> None:
        for i in range(length - 1, -1, -1):
            self.field(code >> i, 1)


CODE_LENGTH_ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)  # RFC 1951 3.2.7


def empty_fixed_block(w: BitWriter) -> None:
    """A block of the fixed codes holding only its end (10 bits): not last, type 01, code 256 (0000000)."""
    w.field(0, 1)
    w.field(1, 2)
    w.code(0, 7)


def empty_dynamic_block(w: BitWriter) -> None:
    """A block of codes of its own holding only its end (97 bits, an odd count, which the
    10-bit fixed block cannot make): literal/length codes 0 and 256 (the end) of one bit
    each, no distance code, described by all 19 code-length codes of which three are used
    (1: one bit; 0 and 18, "zero, 11 to 138 times": two)."""
    w.field(0, 1)
    w.field(2, 2)
    w.field(257 - 257, 5)  # HLIT: codes 0..256
    w.field(1 - 1, 5)  # HDIST: one distance code
    w.field(19 - 4, 4)  # HCLEN: all 19 code-length codes
    lengths = {1: 1, 0: 2, 18: 2}
    for symbol in CODE_LENGTH_ORDER:
        w.field(lengths.get(symbol, 0), 3)
    one, zero, zeros = (0, 1), (0b10, 2), (0b11, 2)  # the canonical codes of those lengths
    w.code(*one)  # literal 0: one bit
    w.code(*zeros)
    w.field(138 - 11, 7)  # literals 1..138: none
    w.code(*zeros)
    w.field(117 - 11, 7)  # literals 139..255: none
    w.code(*one)  # 256, the end: one bit
    w.code(*zero)  # the distance code: none
    w.code(1, 1)  # the block's end (0 is literal 0's code)


def empty_blocks(r: int) -> tuple[int, int]:
    """Empty deflate blocks whose bit count is ``r`` more than a multiple of 8: (bits, count)."""
    w = BitWriter()
    if r % 2:
        empty_dynamic_block(w)
    while w.count % 8 != r:
        empty_fixed_block(w)
    return w.value, w.count


# -- building ------------------------------------------------------------------------------------
class MeasuringInflater(io.RawIOBase):
    """The tar inside a gzip blob, as a stream, that notes after every READ_SIZE compressed
    bytes how much tar has come out (``cmp_end``), and hashes the blob as it goes. RFC 1952
    allows several gzip members back to back: each is inflated in turn."""

    def __init__(self, blob: BinaryIO):
        self.blob = blob
        self.hash = hashlib.sha256()
        self.cmp = 0  # compressed bytes read so far
        self.uncmp = 0  # tar bytes handed out so far
        self.d = zlib.decompressobj(wbits=31)
        self.pending = b""
        self.outs: list[int] = []  # tar bytes out ...
        self.ins: list[int] = []  # ... once this many compressed bytes were in
        self.made = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            data = self.blob.read(READ_SIZE)
            if not data:
                return 0
            self.hash.update(data)
            self.cmp += len(data)
            out = []
            while data:
                try:
                    out.append(self.d.decompress(data))
                except zlib.error as e:
                    raise LazyLayerError(f"cannot index the layer: it is not a whole gzip stream ({e})") from None
                if not self.d.eof:
                    break
                data = self.d.unused_data
                if not data.strip(b"\0"):
                    break  # (zeros after the last member, as some tools write: not a member)
                self.d = zlib.decompressobj(wbits=31)
            self.pending = b"".join(out)
            self.made += len(self.pending)
            self.outs.append(self.made)
            self.ins.append(self.cmp)
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.uncmp += n
        return n

    def cmp_end(self, uncmp_end: int) -> int:
        """The compressed offset by which tar byte ``uncmp_end - 1`` had come out."""
        i = bisect.bisect_left(self.outs, uncmp_end)
        return self.ins[i] if i < len(self.ins) else self.cmp

    def finish(self) -> tuple[str, int]:
        """Read the rest of the blob (the tar's end, the trailer): its digest and size."""
        while data := self.blob.read(1 << 20):
            self.hash.update(data)
            self.cmp += len(data)
        return "sha256:" + self.hash.hexdigest(), self.cmp


def build_index(
    blob: str | Path | BinaryIO, span: int = SPAN, chunk_size: int = CHUNK_SIZE, max_size: int = MAX_INDEX // 2
) -> bytes:
    """The serialized zran index and TOC of the gzip layer ``blob`` (a path, or a seekable
    binary file of the blob, read from its start): the module docstring's format. A layer so
    big that its index would pass ``max_size`` (a 4 GB tar at 1 MiB spans) gets longer spans,
    doubled as often as its size says, until it fits: readers refuse one past MAX_INDEX."""
    if isinstance(blob, (str, Path)):
        with open(blob, "rb") as f:
            return build_index(f, span, chunk_size, max_size)
    blob.seek(0)
    entries, digest, size = read_toc(blob, chunk_size)
    while True:
        blob.seek(0)
        points, uncompressed = checkpoints(blob, span)
        if not points or points[0][1] != 0:
            raise LazyLayerError("indexed_gzip made no checkpoint at the start of the layer")
        windows = [zlib.compress(window, 9) if window else b"" for _, _, _, window in points]
        doc = {
            "version": VERSION,
            "layer": {"digest": digest, "size": size},
            "uncompressed_size": uncompressed,
            "span": span,
            "window_size": WINDOW,
            "points": [[c, u, bits, len(w)] for (c, u, bits, _), w in zip(points, windows, strict=True)],
            "entries": entries,
        }
        header = zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 6)
        data = MAGIC + struct.pack("<Q", len(header)) + header + b"".join(windows)
        if len(data) <= max_size or len(points) <= 2:
            return data
        span *= 1 << max(1, math.ceil(math.log2(len(data) / max_size)))  # (the windows are most of it)


def checkpoints(blob: BinaryIO, span: int) -> tuple[list[tuple[int, int, int, bytes]], int]:
    """indexed_gzip's checkpoints of the blob, one per ``span`` bytes of tar: ``(cmp_offset,
    uncmp_offset, bits, window)``, and the tar's size (read back from its export format)."""
    import indexed_gzip

    f = indexed_gzip.IndexedGzipFile(fileobj=blob, spacing=span, window_size=WINDOW, readbuf_size=1 << 20)
    try:
        f.build_full_index()
        out = io.BytesIO()
        f.export_index(fileobj=out)
    except Exception as e:  # indexed_gzip's ZranError: not gzip, or a broken stream
        raise LazyLayerError(f"cannot index the layer: it is not a whole gzip stream ({e})") from None
    finally:
        f.close()
    raw = out.getvalue()
    _, _, _, _, uncompressed, _, window_size, n = GZIDX_HEADER.unpack_from(raw, 0)
    pos = GZIDX_HEADER.size
    heads = []
    for _ in range(n):
        heads.append(GZIDX_POINT.unpack_from(raw, pos))
        pos += GZIDX_POINT.size
    points = []
    for cmp_offset, uncmp_offset, bits, has_window in heads:
        window = raw[pos : pos + window_size] if has_window else b""
        pos += window_size if has_window else 0
        points.append((cmp_offset, uncmp_offset, bits, window))
    return points, uncompressed


def read_toc(blob: BinaryIO, chunk_size: int) -> tuple[list[dict[str, Any]], str, int]:
    """Every member of the tar in the blob as the format's JSON entry; the blob's digest, size."""
    stream = MeasuringInflater(blob)
    entries = []
    try:
        with tarfile.open(fileobj=io.BufferedReader(stream, 1 << 20), mode="r|") as tar:
            for member in tar:
                entries.append(entry_json(member, tar, stream, chunk_size))
    except (tarfile.TarError, zlib.error, EOFError) as e:
        raise LazyLayerError(f"cannot index the layer: its tar does not read ({e})") from None
    digest, size = stream.finish()
    return entries, digest, size


def entry_json(m: tarfile.TarInfo, tar: tarfile.TarFile, stream: MeasuringInflater, chunk_size: int) -> dict:
    kind = TAR_TYPES.get(m.type)
    if kind is None or m.issparse():
        raise LazyLayerError(f"cannot index the layer: member {m.name!r} has the tar type {m.type!r}")
    out: dict[str, Any] = {"name": clean_name(m.name), "type": kind, "mode": m.mode & 0o7777}
    out.update(uid=m.uid, gid=m.gid, mtime=m.mtime)
    if kind == toc.SYMLINK:
        out["link_name"] = m.linkname
    elif kind == toc.HARDLINK:
        out["link_name"] = clean_name(m.linkname)
    if kind in (toc.CHAR, toc.BLOCK):
        out.update(dev_major=m.devmajor, dev_minor=m.devminor)
    xattrs = {
        key[len("SCHILY.xattr.") :]: base64.b64encode(value.encode("utf-8", "surrogateescape")).decode()
        for key, value in m.pax_headers.items()
        if key.startswith("SCHILY.xattr.")  # (tarfile decoded the raw bytes so)
    }
    if xattrs:
        out["xattrs"] = xattrs
    if kind == toc.REG:
        out["size"] = m.size
        out["chunks"] = list(file_chunks(m, tar, stream, chunk_size))
    return out


def file_chunks(m: tarfile.TarInfo, tar: tarfile.TarFile, stream: MeasuringInflater, chunk_size: int) -> Iterator:
    """A regular file's chunks: ``[offset_in_file, size, digest, uncmp_offset, cmp_end]``."""
    data = tar.extractfile(m)
    assert data is not None
    done = 0
    while done < m.size:
        piece = data.read(min(chunk_size, m.size - done))
        if not piece:
            raise LazyLayerError(f"cannot index the layer: member {m.name!r} ends early")
        start = m.offset_data + done
        digest = "sha256:" + hashlib.sha256(piece).hexdigest()
        yield [done, len(piece), digest, start, stream.cmp_end(start + len(piece))]
        done += len(piece)


# -- parsing ---------------------------------------------------------------------------------------
def parse_index(data: bytes) -> ZranIndex:
    """The index in ``data`` (``build_index``'s), checked and bounded as a hostile registry's
    bytes must be; ``LazyLayerError`` with one line for anything that does not add up."""
    if len(data) > MAX_INDEX:
        raise refused(f"it is {len(data)} bytes, more than the {MAX_INDEX} minidocker reads")
    if data[: len(MAGIC) - 1] != MAGIC[:-1]:
        raise refused("it does not start with the format's magic bytes")
    if data[len(MAGIC) - 1] != VERSION:
        raise refused(f"it is version {data[len(MAGIC) - 1]} of the format; this minidocker reads {VERSION}")
    if len(data) < len(MAGIC) + 8:
        raise refused("it ends inside its header")
    (length,) = struct.unpack_from("<Q", data, len(MAGIC))
    body = len(MAGIC) + 8
    if length > len(data) - body:
        raise refused(f"its header is {length} bytes, but only {len(data) - body} follow")
    d = zlib.decompressobj()
    try:
        text = d.decompress(data[body : body + length], MAX_HEADER)
    except zlib.error as e:
        raise refused(f"its header does not inflate ({e})") from None
    if d.unconsumed_tail:
        raise refused(f"its header inflates to more than {MAX_HEADER} bytes")
    if not d.eof:
        raise refused("its header is cut short")
    try:
        doc = json.loads(text)
        return index_of(doc, data[body + length :])
    except (ValueError, TypeError, KeyError, IndexError) as e:  # JSON that is not of the format
        raise refused(f"its header is malformed ({type(e).__name__}: {e})") from None


def refused(why: str) -> LazyLayerError:
    return LazyLayerError(f"zran index refused: {why}")


def index_of(doc: Any, windows: bytes) -> ZranIndex:
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise refused("its header is not a version 1 document")
    layer = doc["layer"]
    digest, size = str(layer["digest"]), whole(layer["size"])
    if not toc.DIGEST.fullmatch(digest):
        raise refused(f"it names the layer {digest[:80]!r}, not a sha256 digest")
    uncompressed, span, window_size = whole(doc["uncompressed_size"]), whole(doc["span"]), whole(doc["window_size"])
    if window_size != WINDOW or span < window_size:
        raise refused(f"its window size {window_size} or span {span} is not deflate's")
    rows = doc["points"]
    if not isinstance(rows, list) or not 0 < len(rows) <= MAX_POINTS:
        raise refused(f"it has {len(rows) if isinstance(rows, list) else 'no list of'} checkpoints")
    points, pos, last = [], 0, (-1, -1)
    for row in rows:
        cmp_offset, uncmp_offset, bits, length = (whole(x) for x in row)
        if cmp_offset < last[0] or uncmp_offset < last[1] or cmp_offset > size:
            raise refused(f"its checkpoint at {cmp_offset}/{uncmp_offset} is out of order or outside the layer")
        if bits > 7 or uncmp_offset > uncompressed or (bits and not cmp_offset):
            raise refused(f"its checkpoint at {cmp_offset}/{uncmp_offset} is not a place in the layer")
        if pos + length > len(windows):
            raise refused("its checkpoints' windows are cut short")
        points.append(Point(cmp_offset, uncmp_offset, bits, windows[pos : pos + length]))
        pos, last = pos + length, (cmp_offset, uncmp_offset)
    if pos != len(windows):
        raise refused(f"{len(windows) - pos} bytes follow its last window")
    if points[0].uncmp_offset != 0:
        raise refused("its first checkpoint is not at the start of the tar")
    rows = doc["entries"]
    if not isinstance(rows, list) or len(rows) > MAX_ENTRIES:
        raise refused(f"it lists more than {MAX_ENTRIES} entries")
    places: dict[str, Place] = {}
    entries = [entry_of(row, places, size, uncompressed) for row in rows]
    index = ZranIndex(digest, size, uncompressed, span, window_size, points, [], places)
    for entry in entries:  # each chunk's source range: what ZranChunks will fetch for it
        entry.chunks = [
            toc.Chunk(c.offset_in_file, c.size, c.digest, *index.fetch_range(*placed(places[c.digest])))
            for c in entry.chunks
        ]
    index._entries = entries
    return index


def placed(place: Place) -> tuple[int, int]:
    return place.uncmp_offset, place.cmp_end


def whole(value: Any) -> int:
    """A JSON number that must be a non-negative integer (not a bool, not a float)."""
    if type(value) is not int or value < 0:
        raise refused(f"{str(value)[:40]!r} where a whole number belongs")
    return value


def seconds(value: Any) -> float:
    """A JSON time in seconds: a finite number (Python's JSON reads NaN and Infinity too)."""
    if type(value) not in (int, float) or not math.isfinite(value):
        raise refused(f"{str(value)[:40]!r} where a time belongs")
    return float(value)


def entry_of(row: Any, places: dict[str, Place], size: int, uncompressed: int) -> toc.Entry:
    """One entry of the header, in lazy.toc's model; its chunks' places noted in ``places``."""
    if not isinstance(row, dict) or not isinstance(row.get("name"), str) or not isinstance(row.get("type"), str):
        raise refused(f"an entry without a name or type: {str(row)[:80]}")
    xattrs = row.get("xattrs") or {}
    if not isinstance(xattrs, dict):
        raise refused(f"entry {row['name']!r} has xattrs that are not a mapping")
    entry = toc.Entry(
        name=row["name"],
        type=row["type"],
        size=whole(row.get("size", 0)),
        mode=whole(row.get("mode", 0)) & 0o7777,
        uid=whole(row.get("uid", 0)),
        gid=whole(row.get("gid", 0)),
        mtime=seconds(row.get("mtime", 0)),
        link_name=str(row.get("link_name", "")),
        dev_major=whole(row.get("dev_major", 0)),
        dev_minor=whole(row.get("dev_minor", 0)),
        xattrs={str(k): base64.b64decode(str(v), validate=True) for k, v in xattrs.items()},
    )
    for c in row.get("chunks") or []:
        offset_in_file, length, digest, uncmp_offset, cmp_end = c
        offset_in_file, length, uncmp_offset, cmp_end = map(whole, (offset_in_file, length, uncmp_offset, cmp_end))
        if not isinstance(digest, str) or not toc.DIGEST.fullmatch(digest):
            raise refused(f"a chunk of {entry.name!r} is named by {str(digest)[:80]!r}, not a sha256 digest")
        if length > MAX_CHUNK:
            raise refused(f"a chunk of {entry.name!r} is {length} bytes, more than the {MAX_CHUNK} minidocker inflates")
        if uncmp_offset + length > uncompressed or cmp_end > size:
            raise refused(f"a chunk of {entry.name!r} lies outside the layer")
        places.setdefault(digest, Place(uncmp_offset, cmp_end))  # (the same bytes anywhere will do)
        entry.chunks.append(toc.Chunk(offset_in_file, length, digest, 0, 0))
    return entry


# -- serving ---------------------------------------------------------------------------------------
class ZranChunks(RemoteBlob):
    """lazy/fs.py's ChunkSource for an ordinary gzip layer in a registry: a chunk's bytes are
    inflated from the checkpoint before it, out of the one range of the blob that holds them
    (``ZranIndex.fetch_range``), and checked against its digest. The HTTP client is made in
    the process that reads (the FUSE server is a forked one), as RegistryChunks' is."""

    verifies = True  # every chunk it gives was checked against the TOC's digest (read_verified, read_many)

    def __init__(self, domain: str, ref: Reference, layer_digest: str, layer_size: int, index: ZranIndex):
        if (index.layer_digest, index.layer_size) != (layer_digest, layer_size):
            raise LazyLayerError(
                f"the zran index is of layer {index.layer_digest[:19]} ({index.layer_size} bytes), "
                f"not of {layer_digest[:19]} ({layer_size} bytes)"
            )
        super().__init__(domain, ref, layer_digest, layer_size)
        self.index = index

    def read_chunk(self, entry: toc.Entry, chunk: toc.Chunk) -> bytes:
        place = self.index.places.get(chunk.digest)
        if place is None:
            raise LazyLayerError(f"the zran index has no place for chunk {chunk.digest} of {entry.name!r}")
        start, length = self.index.fetch_range(place.uncmp_offset, place.cmp_end)
        window = self.ranges().read(start, length)
        return read_verified(self.index, window, start, place, chunk, entry.name)

    def boundary(self, chunk: toc.Chunk) -> int:
        """Which checkpoint's stretch of the blob the chunk starts in. lazy/fs.py cuts a
        readahead into parallel requests only where this changes: each request then starts at
        a checkpoint of its own, and no two fetch (and inflate) the same stretch."""
        place = self.index.places.get(chunk.digest)
        return -1 if place is None else bisect.bisect_right(self.index._starts, place.uncmp_offset)

    def read_many(self, wanted: list[tuple[toc.Entry, toc.Chunk]], gap: int) -> dict[str, bytes | BaseException]:
        """Many chunks at once (a prefetch, lazy/fs.py's readahead): one range of the blob from
        the checkpoint before the first to where the last is out, inflated once, each chunk
        cut out of it and checked; chunk digest -> its bytes, or its error. (``gap``: the
        chunks come near one another already, by their places in the blob.)"""
        placed = []
        for e, c in wanted:
            place = self.index.places.get(c.digest)
            if place is not None:
                placed.append((place, e, c))
        if not placed:
            return {}
        placed.sort(key=lambda t: t[0].uncmp_offset)
        first = placed[0][0].uncmp_offset
        last = max(p.uncmp_offset + c.size for p, _, c in placed)
        start, length = self.index.fetch_range(first, max(p.cmp_end for p, _, _ in placed))
        data = self.index.inflate(self.ranges().read(start, length), start, first, last - first)
        out: dict[str, bytes | BaseException] = {}
        for p, e, c in placed:
            piece = data[p.uncmp_offset - first : p.uncmp_offset - first + c.size]
            got = "sha256:" + hashlib.sha256(piece).hexdigest()
            out[c.digest] = (
                piece
                if got == c.digest
                else DigestMismatch(f"chunk of {e.name!r} at byte {c.offset_in_file} inflates to {got}")
            )
        return out


def read_verified(index: ZranIndex, window: bytes, start: int, place: Place, chunk: toc.Chunk, name: str) -> bytes:
    """The chunk inflated out of the fetched ``window``, checked against its digest."""
    data = index.inflate(window, start, place.uncmp_offset, chunk.size)
    got = "sha256:" + hashlib.sha256(data).hexdigest()
    if len(data) != chunk.size or got != chunk.digest:
        raise DigestMismatch(f"chunk of {name!r} at byte {chunk.offset_in_file} inflates to {got}, not {chunk.digest}")
    return data


class LocalChunks:
    """The same over a local copy of the blob (a path): what the unit tests read through."""

    def __init__(self, path: str | Path, index: ZranIndex):
        self.path, self.index = Path(path), index

    def read_chunk(self, entry: toc.Entry, chunk: toc.Chunk) -> bytes:
        place = self.index.places[chunk.digest]
        start, length = self.index.fetch_range(place.uncmp_offset, place.cmp_end)
        with open(self.path, "rb") as f:
            f.seek(start)
            window = f.read(length)
        return read_verified(self.index, window, start, place, chunk, entry.name)


def open_zran_layer(
    client: RegistryClient, ref: Reference, layer_descriptor: dict[str, Any], index_bytes: bytes
) -> tuple[toc.Tree, ZranChunks]:
    """An ordinary gzip layer in its registry as a lazy layer: its tree (from the index's TOC,
    no request) and its chunk source."""
    index = parse_index(index_bytes)
    source = ZranChunks(client.domain, ref, layer_descriptor["digest"], int(layer_descriptor["size"]), index)
    return toc.build_tree(index.entries()), source
