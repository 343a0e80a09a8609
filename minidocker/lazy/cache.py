"""The chunk cache: every chunk a lazy layer has fetched, on disk, in one file of the layer.

A chunk is fetched once. Its bytes are checked against the digest the TOC gives, then kept in
``<cache>/chunks``: one sparse file in which every distinct chunk of the layer has a place of
its own, fixed by the TOC alone (``Places``)::

    <cache>/chunks     chunk 0 at byte 0, chunk 1 at the next 4 KiB boundary after it, ...
                       a chunk never fetched is a hole: it takes no disk space

Chunks are named by their digest, so two files of the layer with the same chunk keep it
once. Keeping a chunk is one ``pwrite`` at its place, and reading one is one ``pread``, both
on a descriptor the cache keeps open: no file is created per chunk (a layer has thousands of
them, and creating and renaming thousands of files in one directory was most of what a lazy
read of a whole layer cost). Places start on 4 KiB boundaries (the file system's block), so
``lseek(SEEK_DATA)`` tells whether a place was ever written: ``has`` asks the kernel which
blocks of the file hold data, and a hole is a chunk not fetched yet.

The kernel is asked to start writing the file out every ``WRITEBACK`` bytes kept
(``sync_file_range``, which does not wait). Without that, a read of a whole layer leaves
hundreds of MB of the file dirty in the page cache, and the end of the container waits for
them: unmounting its overlay syncs the file system of its upper directory, which is the
store's, and so writes out every dirty page there (a 0.3 s wait after ``find / -exec cat``).

A write is not fsynced (a cache may lose a chunk: it is fetched again): a power cut or a
SIGKILL may leave a place half written, or written with zeros where the rest should be. So a
chunk that this process did not put is checked against its digest the first time it is
read, and fetched again (its place written anew) if it fails; after that a read of it reads
only the bytes it needs. What a reader gets was always verified by this process.

See it: ``du -h --apparent-size <cache>/chunks`` (the layer's size) beside ``du -h
<cache>/chunks`` (what was fetched), and ``filefrag -v <cache>/chunks``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from minidocker.errors import DigestMismatch
from minidocker.lazy.toc import DIGEST, Chunk, Tree
from minidocker.linux.syscalls import sync_file_range

BLOCK = 4096  # where places start: the block size of ext4 and of tmpfs pages
WRITEBACK = 8 << 20  # bytes kept between two requests to start writing the file out


class Places:
    """Where each distinct chunk of a layer lives in its cache file: digest -> byte offset,
    in the order the chunks first appear in the tree (so the same TOC gives the same places
    in every process that opens the cache)."""

    def __init__(self, chunks: Iterable[Chunk]):
        self.at: dict[str, int] = {}
        end = 0
        for c in chunks:
            if not DIGEST.fullmatch(c.digest):
                raise ValueError(f"not a sha256 digest: {c.digest!r}")  # (it comes from a TOC)
            if c.digest not in self.at:
                self.at[c.digest] = end
                end += -(-c.size // BLOCK) * BLOCK
        self.size = end  # the file's size once every chunk is in

    @classmethod
    def of_tree(cls, tree: Tree) -> Places:
        return cls(c for node in tree.nodes.values() if node.offsets for c in node.entry.chunks)


class ChunkCache:
    """The chunks of one layer (``places``) kept in ``directory``: ``read`` what is there,
    ``put`` what was fetched, ``has`` to ask without reading. Safe to share between threads.
    The file is opened on first use, and opened anew in a forked child (a FUSE server)."""

    def __init__(self, directory: Path | str, places: Places):
        self.directory = Path(directory).absolute()  # the server process works from /
        self.places = places
        self.file = self.directory / "chunks"
        self.verified: set[str] = set()  # chunks known whole: put by this process, or checked once
        self._fd: int | None = None
        self._pid = 0
        self._unwritten = 0  # bytes put since the kernel was last asked to write the file out
        self._lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def fd(self) -> int:
        """The cache file, open for reading and writing (0600: only root reads a layer's bytes
        before a container shows them)."""
        if self._fd is None or self._pid != os.getpid():
            with self._lock:
                if self._fd is None or self._pid != os.getpid():
                    self._fd = os.open(self.file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
                    self._pid = os.getpid()
        return self._fd

    def place(self, chunk: Chunk) -> int:
        try:
            return self.places.at[chunk.digest]
        except KeyError:
            raise ValueError(f"chunk {chunk.digest} is not one of this layer's") from None

    def read(self, chunk: Chunk, offset: int, length: int) -> bytes | None:
        """``length`` bytes of the cached ``chunk`` from ``offset`` (within the chunk), or
        None when it is not cached (or not whole: then it is fetched again). A chunk this
        process did not put is checked whole against its digest the first time it is read."""
        at = self.place(chunk)
        try:
            fd = self.fd()
            if chunk.digest not in self.verified:
                whole = os.pread(fd, chunk.size, at)
                if len(whole) != chunk.size or "sha256:" + hashlib.sha256(whole).hexdigest() != chunk.digest:
                    return None  # never written, or torn (writes are not fsynced): fetched again
                self.verified.add(chunk.digest)
                return whole[offset : offset + length] if offset + length <= len(whole) else None
            data = os.pread(fd, length, at + offset)
        except OSError:  # the cache is unreadable: the source has it
            return None
        return data if len(data) == length else None

    def cached_at(self, chunk: Chunk) -> int | None:
        """Where in the cache file the chunk's bytes are, if they are there and known whole
        (put by this process, or checked once by ``read``): a reader may be handed that range
        of ``fd()`` itself. None: ``read`` it (which checks it), or fetch it."""
        return self.places.at.get(chunk.digest) if chunk.digest in self.verified else None

    def has(self, chunk: Chunk) -> bool:
        """Was the chunk's place written? (prefetch and readahead skip what an earlier run
        fetched: the kernel's SEEK_DATA, no read; ``read`` still checks it before serving)"""
        if chunk.digest in self.verified:
            return True
        at = self.place(chunk)
        try:
            return os.lseek(self.fd(), at, os.SEEK_DATA) == at
        except OSError:  # ENXIO: no data at or after ``at``
            return False

    def put(self, chunk: Chunk, data: bytes | memoryview) -> None:
        """Keep ``data``, already verified (``verify``), at the chunk's place. Not fsynced: a
        cache may lose a chunk (it is fetched again), and ``read`` checks one it did not put."""
        if len(data) != chunk.size:
            raise DigestMismatch(f"chunk {chunk.digest} is {len(data)} bytes, the TOC says {chunk.size}")
        at, fd = self.place(chunk), self.fd()
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:] if done else data, at + done)
        self.verified.add(chunk.digest)
        self._unwritten += len(data)  # (threads may race here: a lost count only delays the hint)
        if self._unwritten >= WRITEBACK:
            self._unwritten = 0
            try:
                sync_file_range(fd, 0, 0)
            except OSError:
                pass  # only a hint to the kernel: the chunk is kept all the same

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None


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
