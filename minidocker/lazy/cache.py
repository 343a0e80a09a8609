"""The chunk cache: every chunk a lazy layer has fetched, on disk, named by its digest.

A chunk is fetched once. Its bytes are checked against the digest the TOC gives, then written
under that digest, as the content store keeps blobs (``blobs/sha256/<hex>``)::

    <cache>/sha256/0d5e...41     the 4 MiB (or smaller) piece of some file whose sha256 is that

Naming by digest makes the cache safe to share: two files, or two layers, with the same
chunk keep it once, and a name can only ever hold one content. A chunk is written the way
all state is (``fsutil.atomic_output``): to a temp file beside it, renamed. So a reader sees
the whole chunk or none, and what is under a name was verified before it got the name. It is
not fsynced (here a put takes 0.14 ms without its two fsyncs, 0.78 ms with): a power cut may
leave a name with a torn chunk, so a chunk that this process did not put is checked against
its digest the first time it is read, and fetched again if it fails. After that a read of a
cached chunk reads only the bytes it needs (``pread``).

See it: ``ls -l <cache>/sha256`` after ``cat`` of a file of a mounted lazy layer: one file
per chunk read, each as big as the TOC's chunk size or the file's tail.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from minidocker.errors import DigestMismatch
from minidocker.fsutil import atomic_output
from minidocker.lazy.toc import DIGEST, Chunk


class ChunkCache:
    """The chunks of ``directory``: ``read`` what is there, ``put`` what was fetched."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory).absolute()  # the server process works from /
        self.verified: set[str] = set()  # chunks known whole: put by this process, or checked once
        (self.directory / "sha256").mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, digest: str) -> Path:
        """``sha256:HEX`` -> ``<cache>/sha256/HEX``. Anything but a sha256 digest is refused
        (``ValueError``): the name comes from a TOC, and must not be a path of its own."""
        if not DIGEST.fullmatch(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        algorithm, _, hex_digest = digest.partition(":")
        return self.directory / algorithm / hex_digest

    def read(self, chunk: Chunk, offset: int, length: int) -> bytes | None:
        """``length`` bytes of the cached ``chunk`` from ``offset`` (within the chunk), or
        None when it is not cached (or not whole: then it is fetched again). A chunk this
        process did not put is checked whole against its digest the first time it is read."""
        try:
            fd = os.open(self.path(chunk.digest), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # not there (or the cache is unreadable): the source has it
            return None
        try:
            if chunk.digest not in self.verified:
                whole = os.pread(fd, chunk.size + 1, 0)
                if len(whole) != chunk.size or "sha256:" + hashlib.sha256(whole).hexdigest() != chunk.digest:
                    return None  # torn by a power cut (puts are not fsynced): fetched again, put anew
                self.verified.add(chunk.digest)
                return whole[offset : offset + length] if offset + length <= len(whole) else None
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        return data if len(data) == length else None

    def has(self, chunk: Chunk) -> bool:
        """Is the whole chunk here? (a stat: prefetch skips what an earlier run fetched)"""
        try:
            return os.stat(self.path(chunk.digest)).st_size == chunk.size
        except OSError:
            return False

    def put(self, chunk: Chunk, data: bytes) -> None:
        """Keep ``data``, already verified (``verify``), under its digest. Not fsynced: a
        cache may lose a chunk (it is fetched again), and ``read`` checks one it did not put."""
        with atomic_output(self.path(chunk.digest), mode=0o600, durable=False) as f:  # a second put replaces it alike
            f.write(data)
        self.verified.add(chunk.digest)


def verify(chunk: Chunk, data: bytes, name: str) -> None:
    """Raise ``DigestMismatch`` unless ``data`` is the chunk the TOC describes: its size, its
    sha256. The source says it verified; this is checked again before anything is served or
    cached, because wrong bytes in a container's file are worse than an error."""
    if len(data) != chunk.size:
        raise DigestMismatch(f"chunk {chunk.digest} of {name!r} is {len(data)} bytes, the TOC says {chunk.size}")
    got = "sha256:" + hashlib.sha256(data).hexdigest()
    if got != chunk.digest:
        raise DigestMismatch(
            f"chunk of {name!r} at byte {chunk.offset_in_file} has the digest {got}, not {chunk.digest}"
        )
