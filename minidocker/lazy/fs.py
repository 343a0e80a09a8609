"""The read-only file system of a lazy layer: the tree from its TOC, file bytes from a source.

Once a lazy layer is mounted (``mount_layer``), every request the kernel makes of it comes
here as one call, by inode: libfuse's low-level API (linux/fuse_lowlevel.py) calls
``ll_lookup``, ``ll_getattr``, ``ll_readdir``, ``ll_readlink``, ``ll_getxattr``,
``ll_listxattr`` and ``ll_read`` of ``LayerFS``, with the kernel's node ID, which is the
tree's own inode number (the root is 1). All but ``ll_read`` answer from the tree in memory
(``toc.build_tree``), at once; nothing is ever written: the mount is read-only, so a write
gets EROFS from the kernel. (The same file system also answers by path, through libfuse's
high-level API and mfusepy: ``getattr``, ``readdir``, ``read_buf``, ...; the tests use
that, and docs/lazy-fuse.md says how the two compare.)

Every request is a round trip between a reader and this server, so the fewest are asked for:

* **No OPEN, RELEASE, OPENDIR or RELEASEDIR.** The first OPEN and OPENDIR are answered
  ENOSYS: the kernel then opens and closes files and directories by itself, keeping a file's
  pages cached across opens (FUSE's "no open" mode).
* **Listings with attributes.** Every READDIR is a READDIRPLUS: each name comes with its
  inode and attributes, so ``find`` and ``ls -l`` need no LOOKUP.
* **No GETXATTR for a layer without xattrs.** overlayfs asks every file of a lower layer
  for ``trusted.overlay.metacopy`` when it looks it up, and every directory for
  ``trusted.overlay.origin``: a request for each name ``find`` meets. When no entry of the
  layer has an xattr (no file capability, no opaque directory), ``ll_getxattr`` answers
  ENOSYS, once, and the kernel answers every later one itself (EOPNOTSUPP: "this file
  system keeps no xattrs", which is the truth).
* **No READ for what the readahead fetched.** A reader whose misses follow the blob's order
  long enough (``find / -exec cat``: the readahead at its widest) gets the files ahead of
  it put into the kernel's page cache as soon as they are fetched (``store_ahead``:
  FUSE_NOTIFY_STORE), for the inodes the kernel knows (a listing named them); the reader
  then reads them from there, with no request at all.

``find / -exec cat`` over a 9,750-file Debian layer, cold, was 46,800 requests through the
high-level API; it is 8,700 (6,480 READs of files read before the readahead reached them or
listed after it had, 2,150 listings, 46 LOOKUPs) from an eStargz layer, 4,700 from a zran one.

A READ's reply holds no bytes when it need not: ``read_parts`` names the ranges of the chunk
cache's file that hold them, and libfuse splices those pages to the kernel (the bytes go from
one page cache to the other, never through Python). A read that must wait for a fetch is
answered by a thread of its own; the loop goes on with the next request.

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

The kernel keeps what it is told for a long time (``KEEP``: entry and attribute timeouts of
an hour, the page cache kept across opens) because a layer never changes.

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
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from minidocker.errors import LazyLayerError
from minidocker.lazy.cache import ChunkCache, Places, verify
from minidocker.lazy.toc import SYMLINK, Chunk, Entry, Node, Tree
from minidocker.linux.fuse import (
    FUSE_CAP_SPLICE_MOVE,
    FUSE_CAP_SPLICE_WRITE,
    FuseMount,
    mount_fuse,
    reply_buffers,
    unmount_fuse,
)
from minidocker.linux.fuse_lowlevel import (
    FUSE_CAP_CACHE_SYMLINKS,
    FUSE_CAP_READDIRPLUS,
    FUSE_CAP_READDIRPLUS_AUTO,
    want,
)

log = logging.getLogger("minidocker.lazy")

KEEP = 3600.0  # seconds the kernel may trust a name or an inode's attributes: a layer never changes
READAHEAD_MIN = 256 << 10  # blob bytes fetched after a miss that follows the last one (doubling...)
READAHEAD_MAX = 16 << 20  # ...up to this (8 MiB: 5-10% slower to read a whole layer on loopback)
READAHEAD_CHUNKS = 4096  # (and at most this many chunks in one request)
READAHEAD_PARTS = 4  # a readahead is fetched as this many range requests at once
READAHEAD_GAP = 64 << 10  # cached chunks between two wanted ones: still one request across them
SEQUENTIAL_SLACK = 1 << 20  # a miss this close to where the last fetch ended counts as in order
STORE_PIECE = 1 << 20  # bytes of a file put into the kernel's page cache by one notify (store_ahead)

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
# ...and those of the low-level API's mount (mount_layer): the timeouts and caching are the
# file system's own answers there, and libfuse starts no threads but the one that reads
LOWLEVEL_OPTIONS: dict[str, str | bool] = {"ro": True, "default_permissions": True, "allow_other": True}
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
        cache: ChunkCache | Path | str,
        *,
        fetch_timeout: float = 30.0,
        fetch_threads: int = 8,
        name: str = "layer",
        access_log: Path | str | None = None,
        whole: tuple[str, str] | None = None,
    ):
        self.tree = tree
        self.source = source
        self.cache = cache if isinstance(cache, ChunkCache) else ChunkCache(cache, Places.of_tree(tree))
        self.fetch_timeout = fetch_timeout
        self.fetch_threads = fetch_threads
        self.name = name
        self.counters = Counters()
        self._lock = threading.RLock()  # (no FUSE operation may share its name: mfusepy would call it)
        self.inflight: dict[str, Future[bytes]] = {}
        self._pool: ThreadPoolExecutor | None = None  # made on first use: in the server process
        self._listings: dict[int, list[tuple[str, dict[str, int], int]]] = {}  # readdir's, by inode
        self.access_log = access_log  # where the first read of each file is noted (note_access)
        self._opened: set[int] = set()
        self._access: TextIO | None = None  # (opened in the server process, on the first note)
        self._order: list[tuple[int, Entry, Chunk]] | None = None  # every chunk by its blob offset (following)
        self._starts: list[int] = []
        self._last_end = -1  # where the last fetch ended in the blob (readahead: are the misses in order?)
        self._window = 0
        self._next_at: int | None = None  # the blob offset whose read starts the next readahead (read_on)
        self._ahead = 0  # where in _order the last readahead's window ended: the next one starts there
        self._head: str | None = None  # the first chunk of the newest window (store_ahead: when to read on)
        self.whole = whole  # (the unpacked layer's diff/, its meta.json): read from once it exists
        self.xattr_free = not any(n.xattrs() for n in tree.nodes.values())  # (the kernel is told so)
        self._whole_ready = False
        self._whole_checked = 0.0
        self.session: Any = None  # the low-level FUSE session serving this (linux/fuse_lowlevel.py)
        self.timeout = KEEP  # (what it tells the kernel to keep names and attributes for)
        self._known: set[int] = set()  # inodes the kernel was given (LOOKUP, READDIRPLUS): it may hold them
        self._stored: set[int] = set()  # inodes whose bytes were put into the kernel's page cache
        self._readers: ThreadPoolExecutor | None = None
        self._storer: ThreadPoolExecutor | None = None
        self._ll_listings: dict[int, list[tuple[bytes, int, dict[str, int]]]] = {}

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

    def open(self, path: str, flags: int) -> int:
        """ENOSYS: the kernel stops sending OPEN and RELEASE for this mount (see above)."""
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        if self.xattr_free:  # the kernel stops asking (see above)
            raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
        value = self.node(path).xattrs().get(name)
        if value is None:
            raise OSError(errno.ENODATA, os.strerror(errno.ENODATA))  # "no such attribute" (ENOATTR)
        return value

    def listxattr(self, path: str) -> list[str]:
        return list(self.node(path).xattrs())

    # ``read`` is given the path (no file handle: there is no OPEN). The mount is read-only,
    # so the kernel refuses a write open with EROFS by itself.
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        node = self.node(path)
        if self.access_log is not None and node.ino not in self._opened:
            self.note_access(node.ino, path)
        return self.read_node(node, offset, size)

    def read_buf(self, path: str, bufpp: object, size: int, offset: int, fh: int) -> int:
        """``read`` as libfuse calls it (every READ of the kernel's comes here): the reply
        names the ranges of the cache file that hold the bytes, and libfuse moves them to the
        kernel itself (spliced, see ``init_with_config``), never copied into Python and out
        again. Bytes not in the cache file (fetched but not kept: a full disk; or read from
        the unpacked layer) go as memory."""
        node = self.node(path)
        if self.access_log is not None and node.ino not in self._opened:
            self.note_access(node.ino, path)
        reply_buffers(bufpp, self.read_parts(node, offset, size))
        return 0

    def init_with_config(self, conn: object, config: object) -> None:
        """What the reply to the kernel's INIT asks for: READ replies spliced from the cache
        file's pages (SPLICE_WRITE; SPLICE_MOVE lets the kernel take a page instead of
        copying it, where it can), if the kernel offers it."""
        conn.want |= conn.capable & (FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE)  # type: ignore[attr-defined]

    def note_access(self, ino: int, path: str) -> None:
        """The first read of a file in this server's life: one line of the access log
        (``TIME PATH``), which ``run --record-access`` reads to learn what a container
        opens first (every file a program uses is read: execve's, ld.so's mappings, data)."""
        with self._lock:
            if ino in self._opened:
                return
            self._opened.add(ino)
            try:
                if self._access is None:
                    self._access = open(  # noqa: SIM115 - open for the server's life
                        str(self.access_log), "a", buffering=1, encoding="utf-8", errors="surrogateescape"
                    )
                self._access.write(f"{time.time():.6f} {path.lstrip('/')}\n")
            except OSError as e:
                log.warning("lazy layer %s: access log not written: %s", self.name, e.strerror or e)

    def statfs(self, path: str) -> dict[str, int]:
        size = sum(n.entry.size for n in self.tree.nodes.values() if n.offsets)
        return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": -(-size // 4096), "f_files": len(self.tree.nodes)}

    # -- the same, by inode: libfuse's low-level API (linux/fuse_lowlevel.py; mount_layer) ----
    def ll_init(self, conn: Any) -> None:
        """What the reply to INIT asks of the kernel: listings always with attributes, symlinks
        cached, replies spliced."""
        want(
            conn,
            FUSE_CAP_READDIRPLUS | FUSE_CAP_CACHE_SYMLINKS | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE,
            without=FUSE_CAP_READDIRPLUS_AUTO,
        )

    def inode(self, ino: int) -> Node:
        node = self.tree.nodes.get(ino)
        if node is None:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        return node

    def ll_lookup(self, req: Any, parent: int, name: bytes) -> None:
        children = self.inode(parent).children
        child = children.get(name.decode("utf-8", "surrogateescape")) if children is not None else None
        if child is None:
            req.no_entry(KEEP)
            return
        self._known.add(child.ino)
        req.entry(child.ino, attributes(child), KEEP)

    def ll_getattr(self, req: Any, ino: int) -> None:
        req.attr(attributes(self.inode(ino)), KEEP)

    def ll_readlink(self, req: Any, ino: int) -> None:
        node = self.inode(ino)
        if node.entry.type != SYMLINK:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        req.readlink(node.entry.link_name.encode("utf-8", "surrogateescape"))

    def ll_readdir(self, req: Any, ino: int, size: int, offset: int, plus: bool) -> None:
        node = self.inode(ino)
        if node.children is None:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        entries = self._ll_listings.get(ino)
        if entries is None:  # (the same list every time: a layer never changes)
            entries = [(b".", node.ino, attributes(node)), (b"..", 1, {"st_mode": stat.S_IFDIR})]
            entries += [(n.encode("utf-8", "surrogateescape"), c.ino, attributes(c)) for n, c in node.children.items()]
            self._ll_listings[ino] = entries
        if plus:
            self._known.update(c.ino for c in node.children.values())
        req.listing(entries, size, offset, plus)
        if plus and offset == 0 and self.streaming():
            # a reader going through the whole layer (the readahead is at its widest): the
            # files of this directory that the readahead fetched before anyone listed them go
            # to the kernel's page cache now
            files = [c for c in node.children.values() if c.offsets and c.ino not in self._stored]
            if files:
                self.storer().submit(self.store_files, files)

    def ll_getxattr(self, req: Any, ino: int, name: bytes, size: int) -> None:
        if self.xattr_free:
            raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
        value = self.inode(ino).xattrs().get(name.decode("utf-8", "surrogateescape"))
        if value is None:
            raise OSError(errno.ENODATA, os.strerror(errno.ENODATA))
        req.xattr(value, size)

    def ll_listxattr(self, req: Any, ino: int, size: int) -> None:
        names = self.inode(ino).xattrs()
        req.xattr(b"".join(n.encode("utf-8", "surrogateescape") + b"\0" for n in names), size)

    def ll_statfs(self, req: Any, ino: int) -> None:
        req.statfs(self.statfs("/"))

    def ll_read(self, req: Any, ino: int, size: int, offset: int) -> None:
        """Bytes already in the cache are answered at once, by the loop's thread; a read that
        must wait for a fetch is answered by a thread of its own, so the loop goes on."""
        node = self.inode(ino)
        if self.access_log is not None and node.ino not in self._opened:
            self.note_access(node.ino, node.entry.name)
        if self.all_cached(node, offset, size):
            req.data(self.read_parts(node, offset, size))
            return
        if self._readers is None:
            self._readers = ThreadPoolExecutor(16, thread_name_prefix=f"read-{self.name}")
        self._readers.submit(self.read_later, req, node, offset, size)

    def read_later(self, req: Any, node: Node, offset: int, size: int) -> None:
        try:
            parts = self.read_parts(node, offset, size)
        except OSError as e:
            req.error(e.errno or errno.EIO)
        except BaseException:  # noqa: BLE001 - a bug: the reader gets EIO, the log the rest
            log.exception("lazy layer %s: a read failed", self.name)
            req.error(errno.EIO)
        else:
            req.data(parts)

    def all_cached(self, node: Node, offset: int, size: int) -> bool:
        if not node.offsets:
            return True
        end = min(offset + size, node.entry.size)
        i = bisect.bisect_right(node.offsets, offset) - 1
        chunks = node.entry.chunks
        while i < len(chunks) and chunks[i].offset_in_file < end:
            if self.cache.cached_at(chunks[i]) is None:
                return False
            i += 1
        return True

    def streaming(self) -> bool:
        """Is a reader going through the whole layer? (its misses came in the blob's order so
        long that the readahead is at its widest)"""
        return self._window >= READAHEAD_MAX

    def storer(self) -> ThreadPoolExecutor:
        if self._storer is None:
            self._storer = ThreadPoolExecutor(1, thread_name_prefix=f"store-{self.name}")
        return self._storer

    def store_files(self, nodes: list[Node]) -> None:
        """Put each of ``nodes`` whose bytes are all in the cache into the kernel's page cache."""
        for node in nodes:
            if node.ino in self._stored or not self.all_cached(node, 0, node.entry.size):
                continue
            self._stored.add(node.ino)
            for start in range(0, node.entry.size, STORE_PIECE):
                if self.session.store(node.ino, start, self.read_parts(node, start, STORE_PIECE)) != 0:
                    break  # (the kernel let go of the inode: it asks with READ if it wants it)

    def store_ahead(self, group: list[tuple[Entry, Chunk]]) -> None:
        """(A fetch thread, its readers served.) Put the files that the fetch made whole in
        the cache into the kernel's page cache, if the kernel holds their inodes (a reader has
        listed or looked them up): a sequential reader (``find -exec cat``, ``tar c``) then reads
        them from there, with no READ request, no round trip to wait for."""
        nodes: dict[int, Node] = {}
        for e, _ in group:
            node = self.tree.lookup(e.name)
            if node is not None and node.ino in self._known and node.ino not in self._stored:
                nodes[node.ino] = node
        self.store_files(list(nodes.values()))
        if self._next_at is not None and self.streaming() and group[0][1].digest == self._head:
            # the reader reads the kernel's pages now, and so no longer comes by the cache
            # where it would start the next window: it starts here, when the newest window's
            # first part is in (so one window is fetched while the one before is finishing, not
            # all of the layer at once, the parts the reader waits for among them)
            self.read_on()

    # -- what they do -----------------------------------------------------------------------------
    def node(self, path: str) -> Node:
        node = self.tree.lookup(path)
        if node is None:
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        return node

    def read_node(self, node: Node, offset: int, size: int) -> bytes:
        """``size`` bytes of the file ``node`` from ``offset`` (fewer at its end): ``read_parts``,
        its ranges of the cache file read here."""
        parts = self.read_parts(node, offset, size)
        return b"".join(p if isinstance(p, bytes) else os.pread(p[0], p[2], p[1]) for p in parts)

    def read_parts(self, node: Node, offset: int, size: int) -> list[tuple[int, int, int] | bytes]:
        """The bytes of ``node`` from ``offset`` as ``reply_buffers``'s parts: ``(fd, pos, size)``
        of the cache file for each piece of a chunk known whole there (pieces that follow one another
        in the file merged), else the bytes (``chunk_bytes``: cached, checked or fetched)."""
        entry = node.entry
        end = min(offset + size, entry.size)
        parts: list[tuple[int, int, int] | bytes] = []
        i = bisect.bisect_right(node.offsets, offset) - 1
        pos = offset
        while pos < end:
            chunk = entry.chunks[i]
            lo, hi = pos - chunk.offset_in_file, min(end - chunk.offset_in_file, chunk.size)
            at = self.cache.cached_at(chunk)
            if at is None:
                parts.append(self.chunk_bytes(entry, chunk, lo, hi))
            else:
                self.counters.cache_reads += 1
                if self._next_at is not None and chunk.source_offset >= self._next_at:
                    self.read_on()
                last = parts[-1] if parts else None
                if isinstance(last, tuple) and last[1] + last[2] == at + lo:
                    parts[-1] = (last[0], last[1], last[2] + hi - lo)
                else:
                    parts.append((self.cache.fd(), at + lo, hi - lo))
            pos, i = chunk.offset_in_file + hi, i + 1
        return parts

    def chunk_bytes(self, entry: Entry, chunk: Chunk, lo: int, hi: int) -> bytes:
        """Bytes ``lo:hi`` of ``chunk``: from the cache, from the layer unpacked whole (once
        the background fetch has made it), or fetched (and then cached)."""
        data = self.cache.read(chunk, lo, hi - lo)
        if data is not None:
            self.counters.cache_reads += 1
            if self._next_at is not None and chunk.source_offset >= self._next_at:
                self.read_on()
            return data
        data = self.from_whole(entry, chunk.offset_in_file + lo, hi - lo)
        if data is not None:
            return data
        return self.fetch(entry, chunk)[lo:hi]

    def from_whole(self, entry: Entry, offset: int, size: int) -> bytes | None:
        """The bytes from the unpacked layer, if the background fetch has committed it (its
        diff_id verified: lazy/background.py); looked for at most once a second until then."""
        if self.whole is None:
            return None
        if not self._whole_ready:
            now = time.monotonic()
            if now - self._whole_checked < 1.0:
                return None
            self._whole_checked = now
            self._whole_ready = os.path.exists(self.whole[1])
            if not self._whole_ready:
                return None
        try:
            fd = open_beneath(self.whole[0], entry.name)
        except OSError:
            return None
        try:
            data = os.pread(fd, size, offset)
        finally:
            os.close(fd)
        return data if len(data) == size else None

    def fetch(self, entry: Entry, chunk: Chunk) -> bytes:
        """The verified bytes of ``chunk``, from one call of the source that every reader of
        the chunk shares, within ``fetch_timeout``; else OSError(EIO), and a line in the log."""
        with self._lock:
            future = self.inflight.get(chunk.digest)
            if future is not None and future.done():
                future = None  # a fetch whose ``forget`` has not run yet: the cache, or anew
            if future is None:
                cached = self.cache.read(chunk, 0, chunk.size)  # a fetch may have ended since our miss
                if cached is not None:
                    return cached
                future = self.start_fetch(entry, chunk)
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

    def start_fetch(self, entry: Entry, chunk: Chunk, ahead: bool = False) -> Future[bytes]:
        """(Under the lock.) Start fetching ``chunk``, with its readahead: when the misses
        walk the blob in order (``find / -exec cat``, a program reading its data files), the
        chunks that follow are fetched in the same range request, in a window that doubles
        with each miss in order, as the kernel's readahead does; a miss elsewhere (a program
        starting: its libraries lie all over the blob) fetches its chunk alone. ``ahead``:
        this is the window after the last (read_on), in order by its making."""
        in_order = ahead or (self._last_end >= 0 and abs(chunk.source_offset - self._last_end) <= SEQUENTIAL_SLACK)
        self._window = min(max(self._window * 2, READAHEAD_MIN), READAHEAD_MAX) if in_order else 0
        group = [(entry, chunk), *self.following(chunk, self._window)]
        self._last_end = max(c.source_offset + c.source_length for _, c in group)
        # the next window starts before the reader reaches the end of this one (the kernel's
        # async readahead): when it reads past the middle of it, from the cache
        self._next_at = (chunk.source_offset + self._last_end) // 2 if self._window else None
        self._head = chunk.digest
        futures: dict[str, Future[bytes]] = {}
        for _, c in group:
            f: Future[bytes] = Future()
            futures[c.digest] = f
            self.inflight[c.digest] = f
            f.add_done_callback(functools.partial(self.forget, c.digest))
        boundary = getattr(self.source, "boundary", None)
        for part in split(group, READAHEAD_PARTS, boundary):  # (in parallel: inflating and hashing let go of the GIL)
            self.pool().submit(self.fetch_and_keep, part, {c.digest: futures[c.digest] for _, c in part})
        return futures[chunk.digest]

    def read_on(self) -> None:
        """Start the next readahead window, where the last one ended, without waiting for it.
        (Where its *chunks* ended, in blob order: not at the last blob byte it fetched, which
        for a zran layer is past the checkpoints of the chunks that come next.)"""
        with self._lock:
            if self._next_at is None or self._order is None:
                return
            self._next_at = None
            i = start = min(self._ahead, len(self._order) - 1)
            while i < len(self._order):
                _, e, c = self._order[i]
                if c.digest not in self.inflight and not self.cache.has(c):
                    self.start_fetch(e, c, ahead=True)
                    return
                i += 1
                if self._starts[i - 1] > self._starts[start] + READAHEAD_MAX:
                    return  # (all cached for a long way: the reader's next miss starts anew)

    def following(self, chunk: Chunk, window: int) -> list[tuple[Entry, Chunk]]:
        """The chunks whose bytes lie in the ``window`` blob bytes after ``chunk``'s, that
        are neither cached nor on their way (only for a source that can read many at once)."""
        if window <= 0 or not hasattr(self.source, "read_many"):
            return []
        if self._order is None:  # every chunk of the layer by where it lies in the blob, once
            seen: dict[str, tuple[int, Entry, Chunk]] = {}
            for node in self.tree.nodes.values():
                for c in node.entry.chunks if node.offsets else ():
                    seen.setdefault(c.digest, (c.source_offset, node.entry, c))
            self._order = sorted(seen.values(), key=lambda t: t[0])
            self._starts = [t[0] for t in self._order]
        i = bisect.bisect_left(self._starts, chunk.source_offset)
        out: list[tuple[Entry, Chunk]] = []
        end = chunk.source_offset + window
        while i < len(self._order) and self._starts[i] < end and len(out) < READAHEAD_CHUNKS:
            _, e, c = self._order[i]
            if c.digest != chunk.digest and c.digest not in self.inflight and not self.cache.has(c):
                out.append((e, c))
            i += 1
        self._ahead = i
        return out

    def fetch_and_keep(self, group: list[tuple[Entry, Chunk]], futures: dict[str, Future[bytes]]) -> None:
        try:
            self._fetch_and_keep(group, futures)
        except BaseException as e:  # (a bug must not leave readers waiting for their timeout)
            for f in futures.values():
                if not f.done():
                    f.set_exception(e)
            raise

    def _fetch_and_keep(self, group: list[tuple[Entry, Chunk]], futures: dict[str, Future[bytes]]) -> None:
        """(In a worker thread.) Fetch the group (one range request), verify each chunk, cache
        it, hand it to its readers. Bytes that could not be cached (a full disk) are served
        all the same. If the group's request fails, the chunk asked for is fetched alone;
        the readahead's chunks are let go (a reader of one fetches it anew)."""
        started = time.monotonic()
        (entry, chunk), rest = group[0], group[1:]
        got: dict[str, bytes | BaseException] = {}
        if rest:
            try:
                got.update(self.source.read_many(group, READAHEAD_GAP))  # type: ignore[attr-defined]
            except Exception as failure:  # noqa: BLE001 - the asked-for chunk is tried alone below
                log.info("lazy layer %s: readahead of %d chunks failed: %s", self.name, len(rest), failure)
        if not isinstance(got.get(chunk.digest), bytes):
            try:
                got[chunk.digest] = self.source.read_chunk(entry, chunk)
            except Exception as failure:  # noqa: BLE001 - handed to the readers
                got[chunk.digest] = failure
        served: list[Chunk] = []
        for e, c in group:  # each chunk handed to its readers as soon as it is kept
            data = got.get(c.digest, LazyLayerError(f"chunk {c.digest} was not in the readahead"))
            try:
                if isinstance(data, BaseException):
                    raise data
                if not getattr(self.source, "verifies", False):  # (ours check each chunk as they inflate it)
                    verify(c, data, e.name)
            except Exception as exc:  # noqa: BLE001 - handed to the readers
                futures[c.digest].set_exception(exc)
                continue
            try:
                self.cache.put(c, data)
            except OSError as exc:
                log.warning("lazy layer %s: chunk %s not cached: %s", self.name, c.digest, exc.strerror or exc)
            served.append(c)
            with self._lock:
                self.counters.fetched += 1  # (before the reader wakes: it finds the count done)
            futures[c.digest].set_result(data)
        if served and self.session is not None:
            self.store_ahead(group)
        if served:
            lo = min(c.source_offset for c in served)
            hi = max(c.source_offset + c.source_length for c in served)
            more = f" (+{len(served) - 1} more)" if len(served) > 1 else ""
            log.info(
                "lazy layer %s: fetched %s%s bytes %d-%d: blob bytes %d-%d (%d) in %.1f ms",
                self.name, entry.name, more, chunk.offset_in_file, chunk.offset_in_file + chunk.size,
                lo, hi, sum(c.source_length for c in served), (time.monotonic() - started) * 1000,
            )  # fmt: skip

    def forget(self, digest: str, future: Future[bytes]) -> None:
        """A fetch is over (done or failed): the next reader looks in the cache, or fetches anew."""
        with self._lock:
            if self.inflight.get(digest) is future:
                del self.inflight[digest]

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.fetch_threads, thread_name_prefix=f"fetch-{self.name}")
        return self._pool


def split(
    group: list[tuple[Entry, Chunk]], parts: int, boundary: Callable[[Chunk], int] | None = None
) -> list[list[tuple[Entry, Chunk]]]:
    """A readahead's chunks (the one asked for first, the rest in blob order) in ``parts``
    runs over about equal stretches of the blob, each one range request; the first run
    holds the chunk asked for. (Stretches, not sums of the chunks' lengths: a zran chunk's
    range starts at its checkpoint, so the ranges of a span's chunks overlap.) With
    ``boundary`` (a zran source's checkpoint of each chunk) a run ends only where it changes."""
    if len(group) < 2 * parts:
        return [group]
    lo = min(c.source_offset for _, c in group)
    total = max(c.source_offset + c.source_length for _, c in group) - lo
    out: list[list[tuple[Entry, Chunk]]] = [[]]
    for pair in group:
        if (
            out[-1]
            and pair[1].source_offset - lo >= total / parts * len(out)
            and len(out) < parts
            and (boundary is None or boundary(pair[1]) != boundary(out[-1][-1][1]))
        ):
            out.append([])
        out[-1].append(pair)
    return out


def open_beneath(root: str, name: str) -> int:
    """Open the regular file ``name`` below ``root`` for reading, one component at a time,
    none of them followed if it is a symlink: an unpacked layer may have a link where the TOC
    has a directory (a blob whose TOC lies), and this server runs as root."""
    parts = name.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
        out = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(out).st_mode):
        os.close(out)
        raise OSError(errno.EINVAL, f"{name} is not a regular file in the unpacked layer")
    return out


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
    cache_dir: ChunkCache | Path | str,
    mountpoint: Path | str,
    *,
    name: str = "layer",
    fetch_timeout: float = 30.0,
    log_path: Path | str | None = None,
    keep_fds: tuple[int, ...] = (),
    access_log: Path | str | None = None,
    whole: tuple[str, str] | None = None,
) -> FuseMount:
    """Serve the layer ``tree`` at ``mountpoint`` (an empty directory) from a server process
    of its own, which answers before this returns. ``log_path`` gets the server's log lines
    (a chunk that could not be read, libfuse's own messages); ``keep_fds`` are the open
    files the source needs in the server, which closes all others (see linux/fuse.py)."""
    fs = LayerFS(
        tree, source, cache_dir, fetch_timeout=fetch_timeout, name=name,
        access_log=str(Path(access_log).absolute()) if access_log is not None else None, whole=whole,
    )  # fmt: skip
    try:
        return mount_fuse(
            fs,
            str(mountpoint),
            fsname=f"minidocker-lazy:{name}",
            subtype="minidocker-lazy",
            options=LOWLEVEL_OPTIONS,
            log_path=str(log_path) if log_path is not None else None,
            keep_fds=keep_fds,
            lowlevel=True,
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
