"""The read-only file system of a lazy layer: the tree from its TOC, file bytes from a source.

Once a lazy layer is mounted (``mount_layer``), every request the kernel makes of it comes
here as one call, by path: libfuse's high-level API (through mfusepy, see docs/lazy-fuse.md
for why that binding) turns the kernel's LOOKUP, GETATTR, READDIR, READLINK, GETXATTR,
LISTXATTR, OPEN and READ requests into ``getattr``, ``readdir``, ``readlink``, ``getxattr``,
``listxattr``, ``open`` and ``read`` of ``LayerFS``. All but ``read`` answer from the tree
in memory (``toc.build_tree``); nothing is ever written, so a write gets EROFS.

``read`` finds the chunks that cover the bytes asked for (a bisect of their offsets) and
takes each from the chunk cache (``cache.py``) or, the first time, from the ``ChunkSource``:

* **Once.** Readers of the same chunk at the same time (overlayfs serves many processes)
  wait for one fetch, not one each; a fetched chunk is verified and cached before it is
  served, so a second read never calls the source.
* **Never wrong bytes.** The source promises verified bytes; their size and sha256 are
  checked once more against the TOC. A chunk that fails the check is neither served nor
  cached: the reader gets EIO.
* **Never a hang.** The source is called in a worker thread and waited for at most
  ``fetch_timeout`` seconds. A source that raises (the network is gone) or takes longer
  gives the reader EIO, and one line in the server's log; the next read tries again.

The kernel keeps what it is told for a long time (``MOUNT_OPTIONS``: entry and attribute
timeouts of an hour, the page cache kept across opens) because a layer never changes.

See it: ``grep minidocker-lazy /proc/self/mountinfo``, ``ls -l`` of the mount point, and
``getfattr -n trusted.overlay.opaque DIR`` of an opaque directory in it.
"""

from __future__ import annotations

import bisect
import errno
import functools
import logging
import os
import stat
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from minidocker.errors import LazyLayerError
from minidocker.lazy.cache import ChunkCache, verify
from minidocker.lazy.toc import SYMLINK, Chunk, Entry, Node, Tree
from minidocker.linux.fuse import FuseMount, mount_fuse, unmount_fuse

log = logging.getLogger("minidocker.lazy")

KEEP = 3600.0  # seconds the kernel may trust a name or an inode's attributes: a layer never changes

# libfuse's -o options for a layer's mount (the ``fuse`` command line's names, see mount.fuse3(8)):
MOUNT_OPTIONS: dict[str, str | bool] = {
    "ro": True,
    "default_permissions": True,  # the kernel checks modes and owners, as on any file system
    "allow_other": True,  # every user may look in, not only the one who mounted it (root)
    "use_ino": True,  # our inode numbers, so the two names of a hard link are one inode
    "kernel_cache": True,  # keep a file's pages in the page cache across opens
    "entry_timeout": str(KEEP),
    "attr_timeout": str(KEEP),
    "negative_timeout": str(KEEP),
    "max_threads": "16",  # libfuse starts a thread per request in progress, up to this
    "max_idle_threads": "4",
}
# libfuse mounts with nosuid and nodev by default, and that is kept: this mount is only ever
# read through overlayfs, whose own mount decides on setuid programs and device nodes.


class ChunkSource(Protocol):
    """Where chunks come from (the layer's blob in a registry, a local file, ...): the
    uncompressed bytes of ``chunk`` of ``entry``, verified against ``chunk.digest``, or an
    exception. It is called from worker threads of the server process, several at a time."""

    def read_chunk(self, entry: Entry, chunk: Chunk) -> bytes: ...


@dataclass
class Counters:
    """What ``LayerFS`` has done so far (for tests and the curious)."""

    fetched: int = 0  # chunks the source gave and the cache took
    cache_reads: int = 0  # reads of a chunk answered by the cache
    failed: int = 0  # reads that got EIO


class LayerFS:
    """The file system of one layer: FUSE operations (mfusepy's names and arguments) over
    ``tree``, with file bytes from ``cache`` or else ``source``."""

    use_ns = True  # mfusepy: times are integer nanoseconds

    def __init__(
        self,
        tree: Tree,
        source: ChunkSource,
        cache: ChunkCache,
        *,
        fetch_timeout: float = 30.0,
        fetch_threads: int = 8,
        name: str = "layer",
    ):
        self.tree = tree
        self.source = source
        self.cache = cache
        self.fetch_timeout = fetch_timeout
        self.fetch_threads = fetch_threads
        self.name = name
        self.counters = Counters()
        self._lock = threading.RLock()  # (no FUSE operation may share its name: mfusepy would call it)
        self.inflight: dict[str, Future[bytes]] = {}
        self._pool: ThreadPoolExecutor | None = None  # made on first use: in the server process
        self._listings: dict[int, list[tuple[str, dict[str, int], int]]] = {}  # readdir's, by inode

    # -- the FUSE operations --------------------------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        return attributes(self.node(path))

    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        """The entries of a directory with their whole attributes (the kernel takes them along
        with the names: READDIRPLUS), the same list every time: a layer never changes."""
        node = self.node(path)
        if node.children is None:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        listing = self._listings.get(node.ino)
        if listing is None:
            listing = [(".", attributes(node), 0), ("..", {"st_mode": stat.S_IFDIR}, 0)]
            listing += [(n, attributes(c), 0) for n, c in node.children.items()]
            self._listings[node.ino] = listing
        return listing

    def readlink(self, path: str) -> str:
        node = self.node(path)
        if node.entry.type != SYMLINK:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return node.entry.link_name

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        value = self.node(path).xattrs().get(name)
        if value is None:
            raise OSError(errno.ENODATA, os.strerror(errno.ENODATA))  # "no such attribute" (ENOATTR)
        return value

    def listxattr(self, path: str) -> list[str]:
        return list(self.node(path).xattrs())

    def open(self, path: str, flags: int) -> int:
        node = self.node(path)
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return node.ino  # the file handle: read() finds the node without a lookup

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        return self.read_node(self.tree.nodes[fh], offset, size)

    def statfs(self, path: str) -> dict[str, int]:
        size = sum(n.entry.size for n in self.tree.nodes.values() if n.offsets)
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": -(-size // 4096), "f_files": len(self.tree.nodes)}

    # -- what they do -----------------------------------------------------------------------------
    def node(self, path: str) -> Node:
        node = self.tree.lookup(path)
        if node is None:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        return node

    def read_node(self, node: Node, offset: int, size: int) -> bytes:
        """``size`` bytes of the file ``node`` from ``offset`` (fewer at its end)."""
        entry = node.entry
        end = min(offset + size, entry.size)
        if offset >= end:
            return b""
        i = bisect.bisect_right(node.offsets, offset) - 1
        parts, pos = [], offset
        while pos < end:
            chunk = entry.chunks[i]
            lo, hi = pos - chunk.offset_in_file, min(end - chunk.offset_in_file, chunk.size)
            parts.append(self.chunk_bytes(entry, chunk, lo, hi))
            pos, i = chunk.offset_in_file + hi, i + 1
        return b"".join(parts)

    def chunk_bytes(self, entry: Entry, chunk: Chunk, lo: int, hi: int) -> bytes:
        """Bytes ``lo:hi`` of ``chunk``: from the cache, or fetched (and then cached)."""
        data = self.cache.read(chunk, lo, hi - lo)
        if data is not None:
            self.counters.cache_reads += 1
            return data
        return self.fetch(entry, chunk)[lo:hi]

    def fetch(self, entry: Entry, chunk: Chunk) -> bytes:
        """The verified bytes of ``chunk``, from one call of the source that every reader of
        the chunk shares, within ``fetch_timeout``; else OSError(EIO), and a line in the log."""
        with self._lock:
            future = self.inflight.get(chunk.digest)
            if future is None:
                cached = self.cache.read(chunk, 0, chunk.size)  # a fetch may have ended since our miss
                if cached is not None:
                    return cached
                future = self.pool().submit(self.fetch_and_keep, entry, chunk)
                self.inflight[chunk.digest] = future
                future.add_done_callback(functools.partial(self.forget, chunk.digest))
        try:
            return future.result(timeout=self.fetch_timeout)
        except TimeoutError:
            why = f"the source gave no answer in {self.fetch_timeout:g} s"
        except Exception as e:
            why = f"{type(e).__name__}: {e}"
        with self._lock:
            self.counters.failed += 1
        log.warning(
            "lazy layer %s: %s bytes %d-%d (chunk %s): %s; the reader gets EIO",
            self.name,
            entry.name,
            chunk.offset_in_file,
            chunk.offset_in_file + chunk.size,
            chunk.digest,
            why,
        )
        raise OSError(errno.EIO, f"chunk {chunk.digest} of {entry.name!r}: {why}")

    def fetch_and_keep(self, entry: Entry, chunk: Chunk) -> bytes:
        """(In a worker thread.) Fetch, verify, cache. Bytes that could not be cached (a full
        disk) are served all the same; the next read fetches them again."""
        started = time.monotonic()
        data = self.source.read_chunk(entry, chunk)
        verify(chunk, data, entry.name)
        log.info(
            "lazy layer %s: fetched %s bytes %d-%d: blob bytes %d-%d (%d) in %.1f ms",
            self.name,
            entry.name,
            chunk.offset_in_file,
            chunk.offset_in_file + chunk.size,
            chunk.source_offset,
            chunk.source_offset + chunk.source_length,
            chunk.source_length,
            (time.monotonic() - started) * 1000,
        )
        try:
            self.cache.put(chunk, data)
        except OSError as e:
            log.warning("lazy layer %s: chunk %s not cached: %s", self.name, chunk.digest, e.strerror or e)
        with self._lock:
            self.counters.fetched += 1
        return data

    def forget(self, digest: str, future: Future[bytes]) -> None:
        """A fetch is over (done or failed): the next reader looks in the cache, or fetches anew."""
        with self._lock:
            if self.inflight.get(digest) is future:
                del self.inflight[digest]

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.fetch_threads, thread_name_prefix=f"fetch-{self.name}")
        return self._pool


def attributes(node: Node) -> dict[str, int]:
    """``stat`` of ``node``, in the keys libfuse's ``struct stat`` has (times in ns)."""
    e = node.entry
    # a symlink's size is its target's length in bytes (names keep undecodable bytes as surrogates)
    size = len(e.link_name.encode("utf-8", "surrogateescape")) if e.type == SYMLINK else e.size
    mtime = int(e.mtime * 1_000_000_000)
    return {
        "st_ino": node.ino,
        "st_mode": node.st_mode,
        "st_nlink": node.nlink,
        "st_uid": e.uid,
        "st_gid": e.gid,
        "st_rdev": node.rdev,
        "st_size": size,
        "st_blocks": -(-size // 512),
        "st_mtime": mtime,
        "st_ctime": mtime,
        "st_atime": mtime,
    }


def mount_layer(
    tree: Tree,
    source: ChunkSource,
    cache_dir: Path | str,
    mountpoint: Path | str,
    *,
    name: str = "layer",
    fetch_timeout: float = 30.0,
    log_path: Path | str | None = None,
    keep_fds: tuple[int, ...] = (),
) -> FuseMount:
    """Serve the layer ``tree`` at ``mountpoint`` (an empty directory) from a server process
    of its own, which answers before this returns. ``log_path`` gets the server's log lines
    (a chunk that could not be read, libfuse's own messages); ``keep_fds`` are the open
    files the source needs in the server, which closes all others (see linux/fuse.py)."""
    fs = LayerFS(tree, source, ChunkCache(cache_dir), fetch_timeout=fetch_timeout, name=name)
    try:
        return mount_fuse(
            fs,
            str(mountpoint),
            fsname=f"minidocker-lazy:{name}",
            subtype="minidocker-lazy",
            options=MOUNT_OPTIONS,
            log_path=str(log_path) if log_path is not None else None,
            keep_fds=keep_fds,
        )
    except OSError as e:
        raise LazyLayerError(
            f"cannot mount the lazy layer {name} on {mountpoint}: {e.strerror or e}",
            hint="FUSE needs /dev/fuse and Debian's fuse3 (apt-get install fuse3), and root",
        ) from None


def unmount_layer(mount: FuseMount) -> None:
    """Unmount a lazy layer and end its server (it must no longer be an overlay's lowerdir)."""
    try:
        unmount_fuse(mount)
    except OSError as e:
        raise LazyLayerError(f"cannot unmount the lazy layer at {mount.mountpoint}: {e.strerror or e}") from None
