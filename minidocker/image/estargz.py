"""eStargz: a gzip layer whose files can be found, fetched and checked one at a time.

An ordinary layer is one gzip stream: to read one file you must inflate everything before
it. eStargz (stargz-snapshotter's "extended seekable tar.gz", docs/estargz.md there) is the
same tar, compressed as a *concatenation of gzip members* cut at file boundaries, plus an
index. A gzip reader that knows nothing of it inflates the members one after another (RFC
1952 allows several members in one file), so the blob is still an ordinary
``tar+gzip`` layer: ``pull`` of it works everywhere. A reader that knows the index can
inflate just the members of the file it wants. The blob, front to back::

    offset 0        [gzip] tar headers: .no.prefetch.landmark, dirs, symlinks, ...
    offset A        [gzip] bin/busybox, its first chunk: 4 MiB of its bytes, nothing else
    offset B        [gzip] bin/busybox, its second chunk (a "chunk" entry of the TOC)
                    [gzip] the tar's padding, the next headers, ...
    toc_offset      [gzip] the tar header of stargz.index.json, the TOC (JSON), the tar's end
    size - 51       [gzip, empty] the footer: its header's extra field holds
                    "%016x" % toc_offset + "STARGZ"

The TOC (``{"version": 1, "entries": [...]}``) has one entry per tar member (and per extra
chunk of a big file): its name, type, mode, owner, times, xattrs, and for file data the
``offset`` of the gzip member holding it, ``chunkOffset``/``chunkSize`` (where in the file,
how much), ``chunkDigest`` (sha256 of that chunk) and ``digest`` (of the whole file). The
layer's descriptor names the sha256 of the TOC JSON (annotation
``containerd.io/snapshot/stargz/toc.digest``): the manifest, verified by its digest, thus
vouches for the TOC, and the TOC for every chunk. So a lazy reader fetches the last bytes
(footer -> TOC offset), the TOC, then per file a byte range ``[offset, next offset)``, and
checks each piece before it serves it.

The *landmark* tells what to prefetch: files listed to prefetch come first, then a
``.prefetch.landmark`` entry; with no list, a ``.no.prefetch.landmark`` entry comes first.
Each is a regular file of one byte, 0x0f (the format's ``landmarkContents``).

The API a lazy reader needs (range reads, then FUSE): ``FOOTER_SIZE`` bytes at the end ->
``toc_offset_from_tail`` -> the bytes ``[toc_offset, size - FOOTER_SIZE)`` -> ``parse_toc``
(check its digest against the annotation) -> per file ``EstargzReader.chunks`` (each
``Chunk``'s ``offset`` and ``compressed_size`` are its byte range; ``file_range`` is the
whole file's) -> ``inflate_chunk`` of the bytes fetched, which raises ``ChunkCorrupt`` when
they are not what the TOC names. ``EstargzReader`` does all of it on a local file.

The tar stream inside differs from the source layer's (new headers, the landmark, the TOC
member), so the layer's diff_id changes: ``write_estargz`` returns the new one.

See it: ``minidocker image convert --estargz busybox busybox:esgz``, then
``gzip -dc /var/lib/minidocker/blobs/sha256/<layer> | tar -tv | sed -n '1p;$p'``: the
landmark first, ``stargz.index.json`` last.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import posixpath
import struct
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from minidocker.errors import ChunkCorrupt, EstargzError

TOC_NAME = "stargz.index.json"
PREFETCH_LANDMARK = ".prefetch.landmark"
NO_PREFETCH_LANDMARK = ".no.prefetch.landmark"
LANDMARK_CONTENT = b"\x0f"  # the format's one byte of landmark data
TOC_DIGEST_ANNOTATION = "containerd.io/snapshot/stargz/toc.digest"
UNCOMPRESSED_SIZE_ANNOTATION = "io.containers.estargz.uncompressed-size"
FOOTER_SIZE = 51
MAX_TOC_MEMBER = 64 << 20  # the TOC's gzip member, as read (a lazy pull fetches it by one range request)
MAX_TOC = 256 << 20  # the TOC inflated: a debian layer's is about 2 MB; more is a bomb, not a layer
CHUNK_SIZE = 4 << 20  # a regular file's data is cut into gzip members of at most this many bytes
GZIP_LEVEL = 1  # ISA-L's fastest level, as commit uses
READ_SIZE = 1 << 20
BLOCK = tarfile.BLOCKSIZE  # 512: tar pads every member's data to a multiple of it
_RESERVED = (TOC_NAME, PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK)  # dropped from a source, made anew

# tar type flag -> TOC type (a regular file's later chunks are "chunk" entries)
_TYPES = {
    tarfile.REGTYPE: "reg",
    tarfile.AREGTYPE: "reg",
    tarfile.CONTTYPE: "reg",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


# -- the footer ----------------------------------------------------------------------------------
def footer_bytes(toc_offset: int) -> bytes:
    """The 51-byte footer: an empty gzip member (RFC 1952) whose header has an extra field
    with one subfield, ID ``SG``, of 22 bytes: ``%016x`` of the TOC's offset, then ``STARGZ``.

    ``1f 8b`` magic, ``08`` deflate, ``04`` FLG.FEXTRA, mtime 0, XFL 0, OS 255 (unknown);
    XLEN 26; ``S G``, LEN 22, the subfield; then an empty *stored* deflate block (``01 00 00
    ff ff``: final, type 0, LEN 0, NLEN ~0) and the trailer: CRC32 0, ISIZE 0."""
    if not 0 <= toc_offset < 1 << 64:
        raise EstargzError(f"TOC offset {toc_offset} does not fit the footer")
    subfield = b"%016xSTARGZ" % toc_offset
    extra = b"SG" + struct.pack("<H", len(subfield)) + subfield
    header = b"\x1f\x8b\x08\x04" + b"\x00\x00\x00\x00" + b"\x00\xff" + struct.pack("<H", len(extra)) + extra
    return header + b"\x01\x00\x00\xff\xff" + struct.pack("<II", 0, 0)


def toc_offset_from_tail(tail: bytes) -> int:
    """The TOC's offset, from the last bytes of a blob (at least ``FOOTER_SIZE`` of them):
    what a lazy reader asks for first, with one HTTP range request for the end of the blob."""
    if len(tail) < FOOTER_SIZE:
        raise EstargzError(f"not an eStargz blob: {len(tail)} bytes are too few for its {FOOTER_SIZE}-byte footer")
    footer = tail[-FOOTER_SIZE:]
    if footer[:3] != b"\x1f\x8b\x08" or not footer[3] & 0x04:
        raise EstargzError("not an eStargz blob: its last 51 bytes are not a gzip header with an extra field")
    (xlen,) = struct.unpack("<H", footer[10:12])
    extra = footer[12 : 12 + xlen]
    if xlen != 26 or extra[:2] != b"SG" or struct.unpack("<H", extra[2:4])[0] != 22 or extra[-6:] != b"STARGZ":
        raise EstargzError("not an eStargz blob: its footer has no SG subfield ending in STARGZ")
    try:
        offset = int(extra[4:20], 16)
        empty = zlib.decompressobj(31)
        if empty.decompress(footer) or not empty.eof:
            raise ValueError("the footer's gzip member is not empty")
    except (ValueError, zlib.error) as e:
        raise EstargzError(f"not an eStargz blob: a damaged footer ({e})") from None
    return offset


# -- TOC entries -----------------------------------------------------------------------------------
@dataclass
class TocEntry:
    """One entry of the TOC, in the format's JSON names (``to_json``/``from_json``)."""

    name: str
    type: str
    size: int = 0  # a regular file's whole size
    modtime: str = ""  # RFC 3339, UTC
    link_name: str = ""
    mode: int = 0
    uid: int = 0
    gid: int = 0
    user_name: str = ""
    group_name: str = ""
    dev_major: int = 0
    dev_minor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    digest: str = ""  # sha256 of the whole file ("reg" entries with data)
    offset: int = 0  # of the gzip member holding this entry's (first) chunk
    chunk_offset: int = 0
    chunk_size: int = 0  # 0 in the JSON for the last (or only) chunk: up to the file's end
    chunk_digest: str = ""

    _JSON = (
        ("size", "size"),
        ("modtime", "modtime"),
        ("link_name", "linkName"),
        ("user_name", "userName"),
        ("group_name", "groupName"),
        ("dev_major", "devMajor"),
        ("dev_minor", "devMinor"),
        ("digest", "digest"),
        ("offset", "offset"),
        ("chunk_offset", "chunkOffset"),
        ("chunk_size", "chunkSize"),
        ("chunk_digest", "chunkDigest"),
    )

    def to_json(self) -> dict[str, Any]:
        """The JSON object: name, type, mode, uid and gid always (the spec requires them);
        the others when set (the reference writer's ``omitempty``)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type != "chunk":
            out.update(mode=self.mode, uid=self.uid, gid=self.gid)
        for attr, key in self._JSON:
            if value := getattr(self, attr):
                out[key] = value
        if self.xattrs:
            out["xattrs"] = {k: base64.b64encode(v).decode() for k, v in self.xattrs.items()}
        return out

    @classmethod
    def from_json(cls, doc: Any) -> TocEntry:
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not isinstance(doc.get("type"), str):
            raise EstargzError(f"a TOC entry without a name or type: {str(doc)[:80]}")
        try:
            entry = cls(doc["name"], doc["type"], mode=int(doc.get("mode", 0)))
            entry.uid, entry.gid = int(doc.get("uid", 0)), int(doc.get("gid", 0))
            for attr, key in cls._JSON:
                if key in doc:
                    setattr(entry, attr, type(getattr(entry, attr))(doc[key]))
            entry.xattrs = {k: base64.b64decode(v) for k, v in (doc.get("xattrs") or {}).items()}
        except (TypeError, ValueError) as e:
            raise EstargzError(f"TOC entry {doc['name']!r} has a malformed field ({e})") from None
        return entry


@dataclass(frozen=True)
class Chunk:
    """One piece of a regular file's data, and where it lies in the blob: the bytes
    ``[offset, offset + compressed_size)`` hold it (its gzip member, and up to the next
    chunk's member: perhaps tar headers too), ``chunk_size`` bytes once inflated."""

    name: str
    chunk_offset: int  # in the file
    chunk_size: int
    offset: int  # in the blob
    compressed_size: int
    digest: str  # sha256 of the chunk's bytes


def _modtime(mtime: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(round(mtime))) if mtime else ""


def clean_name(name: str) -> str:
    """A member name as the TOC's readers compare them: no leading ``/`` or ``./``, no
    trailing ``/``, no ``//``: ``./usr/bin/`` -> ``usr/bin``; the root is ``""``."""
    return posixpath.normpath("/" + name).lstrip("/")


def _entry_of(m: tarfile.TarInfo) -> TocEntry:
    kind = _TYPES.get(m.type)
    if kind is None or m.issparse():
        raise EstargzError(f"cannot convert member {m.name!r} to eStargz: tar type {m.type!r} has no TOC type")
    entry = TocEntry(m.name + "/" if m.isdir() else m.name, kind, modtime=_modtime(m.mtime), mode=m.mode)
    entry.uid, entry.gid, entry.user_name, entry.group_name = m.uid, m.gid, m.uname, m.gname
    if m.issym() or m.islnk():
        entry.link_name = m.linkname
    if m.ischr() or m.isblk():
        entry.dev_major, entry.dev_minor = m.devmajor, m.devminor
    if m.isreg():
        entry.size = m.size
    for key, value in m.pax_headers.items():
        if key.startswith("SCHILY.xattr."):  # tarfile decoded the raw bytes so
            entry.xattrs[key[len("SCHILY.xattr.") :]] = value.encode("utf-8", "surrogateescape")
    return entry


# -- the writer ------------------------------------------------------------------------------------
@dataclass
class EstargzLayer:
    """What ``write_estargz`` made."""

    digest: str  # sha256 of the blob
    size: int  # of the blob
    diff_id: str  # sha256 of the tar inside (not the source's: new headers, landmark, TOC)
    uncompressed_size: int  # of that tar
    toc_digest: str  # sha256 of the TOC JSON
    toc_offset: int
    entries: int  # TOC entries (chunks included)
    missed_prefetch: list[str] = field(default_factory=list)  # listed to prefetch, not in the layer

    def annotations(self) -> dict[str, str]:
        """The layer descriptor's annotations that make it lazily pullable."""
        return {TOC_DIGEST_ANNOTATION: self.toc_digest, UNCOMPRESSED_SIZE_ANNOTATION: str(self.uncompressed_size)}


class _Members:
    """The blob being written: tar bytes go into the current gzip member (one is opened when
    bytes come); ``cut`` ends it, so that the next bytes start a member of their own.
    Counts the compressed offset and hashes both streams (the blob, the tar)."""

    def __init__(self, write: Callable[[bytes], Any]):
        from isal import isal_zlib

        self._write, self._compressobj = write, isal_zlib.compressobj
        self.offset = 0
        self.blob_hash, self.tar_hash = hashlib.sha256(), hashlib.sha256()
        self.tar_size = 0
        self.z: Any = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.tar_hash.update(data)
        self.tar_size += len(data)
        if self.z is None:
            self.z = self._compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: a gzip member
        self.emit(self.z.compress(data))

    def cut(self) -> None:
        if self.z is not None:
            self.emit(self.z.flush())
            self.z = None

    def emit(self, raw: bytes) -> None:
        """Bytes of the blob as they are (compressed already, or the footer)."""
        if raw:
            self.blob_hash.update(raw)
            self._write(raw)
            self.offset += len(raw)


def _header(m: tarfile.TarInfo) -> bytes:
    return m.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


class _Writer:
    def __init__(self, members: _Members, chunk_size: int):
        self.out, self.chunk_size = members, chunk_size
        self.toc: list[TocEntry] = []

    def add(self, m: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        """One member: its header into the current gzip member; a regular file's data in
        gzip members of its own, one per chunk; its padding with what follows."""
        entry = _entry_of(m)
        if m.isreg() and m.type != tarfile.REGTYPE:
            m = _copy(m, type=tarfile.REGTYPE)  # (old-style and contiguous files: plain regular ones)
        self.out.write(_header(m))
        if not m.isreg() or m.size == 0:
            self.toc.append(entry)
            return
        assert data is not None, "a regular file with data comes with its data"
        whole = hashlib.sha256()
        done, current = 0, entry
        while done < m.size:
            size = min(self.chunk_size, m.size - done)
            self.out.cut()
            current.offset, current.chunk_offset = self.out.offset, done
            current.chunk_size = size if done + size < m.size else 0  # 0: the last (or only) chunk
            piece = hashlib.sha256()
            left = size
            while left:
                buf = data.read(min(READ_SIZE, left))
                if not buf:
                    raise EstargzError(f"the source layer ends inside {m.name!r}")
                left -= len(buf)
                piece.update(buf)
                whole.update(buf)
                self.out.write(buf)
            current.chunk_digest = "sha256:" + piece.hexdigest()
            self.toc.append(current)
            done += size
            current = TocEntry(m.name, "chunk")
        self.out.cut()
        entry.digest = "sha256:" + whole.hexdigest()
        self.out.write(_padding(m.size))

    def add_bytes(self, name: str, content: bytes) -> None:
        m = tarfile.TarInfo(name)
        m.size, m.mode = len(content), 0o644
        self.add(m, io.BytesIO(content))

    def finish(self) -> tuple[int, str]:
        """The TOC as the tar's last member, in a gzip member of its own, the tar's end
        (two zero blocks), then the footer. Returns the TOC's offset and digest."""
        doc = {"version": 1, "entries": [e.to_json() for e in self.toc]}
        # a name that is not UTF-8 (tarfile hands its bytes over as surrogates) stays its bytes
        raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogateescape")
        self.out.cut()
        toc_offset = self.out.offset
        m = tarfile.TarInfo(TOC_NAME)
        m.size, m.mode = len(raw), 0o644
        self.out.write(_header(m) + raw + _padding(len(raw)) + b"\0" * (2 * BLOCK))
        self.out.cut()
        self.out.emit(footer_bytes(toc_offset))
        return toc_offset, "sha256:" + hashlib.sha256(raw).hexdigest()


def _copy(m: tarfile.TarInfo, **changes: Any) -> tarfile.TarInfo:
    new = tarfile.TarInfo(m.name)
    for attr in ("mode", "uid", "gid", "size", "mtime", "type", "linkname", "uname", "gname", "devmajor", "devminor"):
        setattr(new, attr, getattr(m, attr))
    new.pax_headers = dict(m.pax_headers)
    for attr, value in changes.items():
        setattr(new, attr, value)
    return new


def write_estargz(
    tar: BinaryIO,
    write: Callable[[bytes], Any],
    *,
    prefetch: Sequence[str] = (),
    chunk_size: int = CHUNK_SIZE,
    spool_dir: str | None = None,
) -> EstargzLayer:
    """Read the uncompressed layer tar ``tar`` and ``write`` it as an eStargz blob.

    Without ``prefetch`` the members keep their order and the tar is read once, as a
    stream. With it, the files it names (each with the directories above it, and a hard
    link's target) come first, in its order, then ``.prefetch.landmark``, then the rest:
    the tar is first copied to a temp file in ``spool_dir`` to be read out of order (a
    name listed twice in the source keeps only its last member, which wins on unpacking
    anyway). Whiteouts and opaque markers are members like any other. A TOC or landmark
    in the source (a layer converted before) is dropped and made anew."""
    if chunk_size <= 0:
        raise EstargzError(f"the chunk size must be positive, not {chunk_size}")
    members = _Members(write)
    writer = _Writer(members, chunk_size)
    missed: list[str] = []
    try:
        if prefetch:
            with tempfile.TemporaryFile(dir=spool_dir) as spool:
                while buf := tar.read(READ_SIZE):
                    spool.write(buf)
                spool.seek(0)
                with tarfile.TarFile(fileobj=spool, mode="r") as source:
                    ordered, missed = _prefetch_order(source.getmembers(), prefetch)
                    for m in ordered[0]:
                        writer.add(m, source.extractfile(m) if m.isreg() else None)
                    writer.add_bytes(PREFETCH_LANDMARK, LANDMARK_CONTENT)
                    for m in ordered[1]:
                        writer.add(m, source.extractfile(m) if m.isreg() else None)
        else:
            from minidocker.image.layer import ForwardReader

            writer.add_bytes(NO_PREFETCH_LANDMARK, LANDMARK_CONTENT)
            source = tarfile.TarFile(fileobj=ForwardReader(tar), mode="r")
            for m in source:
                if clean_name(m.name) not in _RESERVED:
                    writer.add(m, source.extractfile(m) if m.isreg() else None)
    except tarfile.TarError as e:
        raise EstargzError(f"the source layer is not a valid tar: {e}") from None
    toc_offset, toc_digest = writer.finish()
    return EstargzLayer(
        digest="sha256:" + members.blob_hash.hexdigest(),
        size=members.offset,
        diff_id="sha256:" + members.tar_hash.hexdigest(),
        uncompressed_size=members.tar_size,
        toc_digest=toc_digest,
        toc_offset=toc_offset,
        entries=len(writer.toc),
        missed_prefetch=missed,
    )


def _prefetch_order(
    members: list[tarfile.TarInfo], prefetch: Sequence[str]
) -> tuple[tuple[list[tarfile.TarInfo], list[tarfile.TarInfo]], list[str]]:
    """(the members to prefetch, the others), and the listed names the layer lacks."""
    last = {clean_name(m.name): i for i, m in enumerate(members)}
    taken: dict[int, None] = {}  # (ordered)

    def take(name: str) -> bool:
        i = last.get(name)
        if i is None:
            return False
        if i not in taken:
            parent = posixpath.dirname(name)
            if parent and parent != name:
                take(parent)
            if members[i].islnk():
                take(clean_name(members[i].linkname))
            taken[i] = None
        return True

    missed = [name for name in prefetch if not take(clean_name(name))]
    first = [members[i] for i in taken]
    rest = [
        m
        for i, m in enumerate(members)
        if i not in taken and last[clean_name(m.name)] == i and clean_name(m.name) not in _RESERVED
    ]
    return (first, rest), missed


# -- the reader ------------------------------------------------------------------------------------
def parse_toc(member: bytes) -> tuple[dict[str, Any], str]:
    """The TOC and its digest, from the blob's bytes ``[toc_offset, size - 51)``: one gzip
    member holding the tar header of ``stargz.index.json`` and the JSON."""
    if len(member) > MAX_TOC_MEMBER:
        raise EstargzError(f"the TOC's member is {len(member)} bytes, more than the {MAX_TOC_MEMBER} read")
    try:
        z = zlib.decompressobj(31)
        plain = z.decompress(member, MAX_TOC + 1)
        if len(plain) > MAX_TOC:
            raise EstargzError(f"the TOC inflates to more than {MAX_TOC} bytes")
        if not z.eof:
            raise EstargzError("the TOC's gzip member is cut short")
        m = tarfile.TarInfo.frombuf(plain[:BLOCK], "utf-8", "surrogateescape")
    except (zlib.error, tarfile.TarError) as e:
        raise EstargzError(f"the TOC's member is damaged: {e}") from None
    if m.name != TOC_NAME or not m.isreg() or len(plain) < BLOCK + m.size:
        raise EstargzError(f"the blob's last tar member is {m.name!r}, not a whole {TOC_NAME}")
    raw = plain[BLOCK : BLOCK + m.size]
    try:
        doc = json.loads(raw.decode("utf-8", "surrogateescape"))
    except ValueError as e:
        raise EstargzError(f"{TOC_NAME} is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("entries"), list):
        raise EstargzError(f'{TOC_NAME} is not a version 1 TOC ({{"version": 1, "entries": [...]}})')
    return doc, "sha256:" + hashlib.sha256(raw).hexdigest()


def inflate_chunk(data: bytes | memoryview, chunk: Chunk) -> bytes:
    """The bytes of ``chunk``, inflated from ``data`` (the blob's bytes from ``chunk.offset``,
    at most ``chunk.compressed_size`` of them, e.g. from an HTTP range request) and checked
    against its digest: ``ChunkCorrupt`` if they are not what the TOC says."""
    from isal import isal_zlib  # ISA-L's inflate: zlib's API, 2.5 times as fast here (a lazy read-all is CPU-bound)

    out: list[bytes] = []
    got = 0
    try:
        while got < chunk.chunk_size and data:
            z = isal_zlib.decompressobj(31)
            piece = z.decompress(data, chunk.chunk_size - got)
            out.append(piece)
            got += len(piece)
            data = z.unused_data if z.eof else b""  # (a member may end before the chunk does)
    except (zlib.error, isal_zlib.error) as e:  # type: ignore[misc]  # (the stubs do not say it is an exception)
        raise ChunkCorrupt(f"chunk {chunk.chunk_offset} of {chunk.name!r} does not inflate: {e}") from None
    result = b"".join(out)
    if len(result) != chunk.chunk_size:
        raise ChunkCorrupt(
            f"chunk {chunk.chunk_offset} of {chunk.name!r} has {len(result)} of its {chunk.chunk_size} bytes"
        )
    actual = "sha256:" + hashlib.sha256(result).hexdigest()
    if actual != chunk.digest:
        raise ChunkCorrupt(
            f"chunk {chunk.chunk_offset} of {chunk.name!r} hashes to {actual[:19]}, the TOC says {chunk.digest[:19]}"
        )
    return result


class EstargzReader:
    """An eStargz blob opened from a seekable binary file (or bytes): the footer, then the
    TOC, checked against ``toc_digest`` when given (the layer descriptor's annotation);
    files and chunks are read by inflating only their own gzip members, each chunk checked."""

    def __init__(self, blob: BinaryIO | bytes, toc_digest: str | None = None):
        self.blob: BinaryIO = io.BytesIO(blob) if isinstance(blob, bytes | bytearray) else blob
        self.size = self.blob.seek(0, os.SEEK_END)
        self.toc_offset = toc_offset_from_tail(self._read(max(0, self.size - FOOTER_SIZE), FOOTER_SIZE))
        if not 0 <= self.toc_offset < self.size - FOOTER_SIZE:
            raise EstargzError(f"the footer's TOC offset {self.toc_offset} is outside the blob of {self.size} bytes")
        member = self.size - FOOTER_SIZE - self.toc_offset
        if member > MAX_TOC_MEMBER:  # (checked before it is read: over HTTP, before it is fetched)
            raise EstargzError(
                f"the footer puts a TOC of {member} bytes at {self.toc_offset}: more than {MAX_TOC_MEMBER}"
            )
        self.toc, self.toc_digest = parse_toc(self._read(self.toc_offset, member))
        if toc_digest is not None and toc_digest != self.toc_digest:
            raise EstargzError(
                f"the TOC hashes to {self.toc_digest[:19]}, the layer's descriptor says {toc_digest[:19]}"
            )
        self._index([TocEntry.from_json(e) for e in self.toc["entries"]])

    def _read(self, offset: int, size: int) -> bytes:
        self.blob.seek(offset)
        return self.blob.read(size)

    def _index(self, all_entries: list[TocEntry]) -> None:
        self.entries: list[TocEntry] = []  # the files, dirs, links ... in TOC order (no "chunk"s)
        self.by_name: dict[str, TocEntry] = {}
        self._chunks: dict[str, list[TocEntry]] = {}
        starts = sorted({e.offset for e in all_entries if e.type in ("reg", "chunk") and e.offset} | {self.toc_offset})
        self._next = {a: b for a, b in zip(starts, starts[1:], strict=False)}
        for e in all_entries:
            if e.type == "chunk":
                last = self.entries[-1] if self.entries else None
                if last is None or last.type != "reg":
                    raise EstargzError(f"the TOC has a chunk of {e.name!r} that follows no regular file")
                self._chunks[clean_name(last.name)].append(e)
                continue
            self.entries.append(e)
            self.by_name[clean_name(e.name)] = e
            if e.type == "reg":
                self._chunks[clean_name(e.name)] = [e] if e.size else []

    def lookup(self, name: str) -> TocEntry:
        try:
            return self.by_name[clean_name(name)]
        except KeyError:
            raise EstargzError(f"no {name!r} in the layer's TOC") from None

    def chunks(self, name: str) -> list[Chunk]:
        """A regular file's chunks (a hard link's: its target's), with their byte ranges."""
        entry = self.lookup(name)
        seen = set()
        while entry.type == "hardlink" and entry.name not in seen:
            seen.add(entry.name)
            entry = self.lookup(entry.link_name)
        if entry.type != "reg":
            raise EstargzError(f"{name!r} is a {entry.type}, not a regular file")
        out: list[Chunk] = []
        for e in self._chunks[clean_name(entry.name)]:
            size = e.chunk_size or entry.size - e.chunk_offset
            end = out[-1].chunk_offset + out[-1].chunk_size if out else 0
            if e.offset not in self._next or size <= 0 or e.chunk_offset != end or end + size > entry.size:
                raise EstargzError(f"the TOC places chunk {e.chunk_offset} of {entry.name!r} nowhere")
            out.append(
                Chunk(entry.name, e.chunk_offset, size, e.offset, self._next[e.offset] - e.offset, e.chunk_digest)
            )
        if out and out[-1].chunk_offset + out[-1].chunk_size != entry.size:
            raise EstargzError(f"the TOC's chunks of {entry.name!r} do not cover its {entry.size} bytes")
        return out

    def file_range(self, name: str) -> tuple[int, int]:
        """The blob's bytes ``[start, end)`` that hold all of a regular file's chunks: one
        HTTP range request fetches the whole file (``inflate_chunk`` each piece of it)."""
        chunks = self.chunks(name)
        if not chunks:
            return (0, 0)  # an empty file: nothing to fetch
        return chunks[0].offset, chunks[-1].offset + chunks[-1].compressed_size

    def read_chunk(self, chunk: Chunk) -> bytes:
        return inflate_chunk(self._read(chunk.offset, chunk.compressed_size), chunk)

    def read_file(self, name: str) -> bytes:
        """A regular file's bytes, every chunk checked, then the whole file's digest."""
        entry = self.lookup(name)
        data = b"".join(self.read_chunk(c) for c in self.chunks(name))
        while entry.type == "hardlink":
            entry = self.lookup(entry.link_name)
        if entry.digest and "sha256:" + hashlib.sha256(data).hexdigest() != entry.digest:
            raise ChunkCorrupt(f"{name!r} does not hash to the digest the TOC names")
        return data

    def iter_chunks(self) -> Iterator[Chunk]:
        for e in self.entries:
            if e.type == "reg" and e.size:
                yield from self.chunks(e.name)

    def verify(self) -> int:
        """Check every chunk of every file against the TOC; returns how many were checked."""
        n = 0
        for e in self.entries:
            if e.type == "reg" and e.size:
                self.read_file(e.name)
                n += len(self._chunks[clean_name(e.name)])
        return n
