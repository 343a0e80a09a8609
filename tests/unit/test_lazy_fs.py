"""A lazy layer's file system without a mount (no root): the chunk cache's names and writes,
and LayerFS's operations called as libfuse would call them, over a real cache directory and
a source that counts its calls, fails, lies or hangs."""

import errno
import hashlib
import logging
import os
import stat
import threading
import time

import pytest

from minidocker.lazy.cache import ChunkCache, Places
from minidocker.lazy.fs import LayerFS, attributes
from minidocker.lazy.toc import CHAR, DIR, HARDLINK, REG, SYMLINK, Chunk, Entry, build_tree

HEX = "ab" * 32


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- the cache ---------------------------------------------------------------------------------------
def cache_for(directory, *chunks: Chunk) -> ChunkCache:
    return ChunkCache(directory, Places(chunks))


def test_each_distinct_chunk_has_a_place_of_its_own_on_a_block_boundary(tmp_path):
    a, b, c = (Chunk(0, n, digest(b"x" * n), 0, n) for n in (10, 5000, 1))
    places = Places([a, b, a, c])  # a twice (two files with the same bytes): one place
    assert places.at == {a.digest: 0, b.digest: 4096, c.digest: 3 * 4096} and places.size == 4 * 4096


@pytest.mark.parametrize(
    "bad",
    [f"sha512:{HEX}", f"sha256:{HEX.upper()}", "sha256:../../etc/passwd", f"sha256:{HEX}/x", HEX, f"sha256:{HEX}0"],
)
def test_a_chunk_whose_name_is_not_a_sha256_digest_is_refused(bad):
    with pytest.raises(ValueError, match="not a sha256 digest"):
        Places([Chunk(0, 1, bad, 0, 1)])


def test_put_writes_the_chunk_at_its_place_in_one_file_only_root_may_read(tmp_path):
    other = Chunk(0, 3, digest(b"abc"), 0, 3)
    data = b"0123456789"
    chunk = Chunk(0, len(data), digest(data), 0, len(data))
    cache = cache_for(tmp_path, other, chunk)
    assert cache.read(chunk, 0, 10) is None and not cache.has(chunk)
    cache.put(chunk, data)
    assert os.listdir(tmp_path) == ["chunks"]  # one file, no temp file beside it
    assert stat.S_IMODE(os.stat(tmp_path / "chunks").st_mode) == 0o600
    assert (tmp_path / "chunks").read_bytes()[4096:] == data
    assert cache.read(chunk, 3, 4) == b"3456" and cache.has(chunk) and not cache.has(other)


def test_a_new_cache_over_the_file_checks_a_chunk_before_serving_it(tmp_path):
    data = b"0123456789"
    chunk = Chunk(0, len(data), digest(data), 0, len(data))
    cache_for(tmp_path, chunk).put(chunk, data)
    again = cache_for(tmp_path, chunk)  # another process: nothing verified yet
    assert again.has(chunk)  # (SEEK_DATA: the place was written)
    assert again.read(chunk, 2, 3) == b"234" and chunk.digest in again.verified


def test_a_torn_or_tampered_chunk_in_the_file_is_a_miss(tmp_path):
    data = b"0123456789"
    chunk = Chunk(0, len(data), digest(data), 0, len(data))
    (tmp_path / "chunks").write_bytes(b"01234")  # a power cut: half of it
    assert cache_for(tmp_path, chunk).read(chunk, 2, 6) is None
    (tmp_path / "chunks").write_bytes(b"0123456788")  # wrong bytes
    assert cache_for(tmp_path, chunk).read(chunk, 0, 1) is None


def test_a_cache_used_in_a_forked_child_opens_its_file_anew(tmp_path):
    data = b"0123456789"
    chunk = Chunk(0, len(data), digest(data), 0, len(data))
    cache = cache_for(tmp_path, chunk)
    parent_fd = cache.fd()
    pid = os.fork()
    if pid == 0:  # (the FUSE server is such a child: its inherited descriptors point at /dev/null)
        os.dup2(os.open(os.devnull, os.O_RDWR), parent_fd)
        try:
            cache.put(chunk, data)
            os._exit(0 if cache.fd() != parent_fd else 1)
        except BaseException:
            os._exit(2)
    assert os.waitpid(pid, 0)[1] == 0
    assert cache_for(tmp_path, chunk).read(chunk, 0, 10) == data  # the child wrote the file, not /dev/null


# -- LayerFS ------------------------------------------------------------------------------------------
class CountingSource:
    """Chunks from a bytes "blob", counting calls per digest; ``wrong`` lies, ``fail`` raises,
    ``gate`` (an Event) makes every call wait for it."""

    def __init__(self, blob: bytes):
        self.blob = blob
        self.calls: list[str] = []
        self.fail: Exception | None = None
        self.wrong = False
        self.gate: threading.Event | None = None

    def read_chunk(self, entry, chunk):
        self.calls.append(chunk.digest)
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        data = self.blob[chunk.source_offset : chunk.source_offset + chunk.source_length]
        return b"X" + data[1:] if self.wrong else data


def chunked(name: str, data: bytes, size: int, blob: bytearray) -> Entry:
    chunks = []
    for off in range(0, len(data), size):
        piece = data[off : off + size]
        chunks.append(Chunk(off, len(piece), digest(piece), len(blob), len(piece)))
        blob += piece
    return Entry(name, REG, size=len(data), chunks=chunks, mode=0o640, uid=7, gid=8, mtime=1.5)


@pytest.fixture
def layer(tmp_path):
    """A LayerFS over a tree with a 3-chunk file (10 + 10 + 5 bytes) and a one-chunk one."""
    blob = bytearray()
    big = bytes(range(65, 90))  # 25 bytes: A..Y
    entries = [
        chunked("etc/big", big, 10, blob),
        chunked("etc/small", b"small", 10, blob),
        Entry("etc/link", HARDLINK, link_name="etc/big"),
        Entry("bin/sh", SYMLINK, link_name="busybox"),
        Entry("dev/null", CHAR, mode=0o666, dev_major=1, dev_minor=3),
        Entry("etc/.wh.gone", REG),
        Entry("var/cache", DIR, xattrs={"user.x": b"1"}),
        Entry("var/cache/.wh..wh..opq", REG),
        Entry("empty", REG),
    ]
    source = CountingSource(bytes(blob))
    tree = build_tree(entries)
    fs = LayerFS(tree, source, ChunkCache(tmp_path / "cache", Places.of_tree(tree)), fetch_timeout=0.5, name="test")
    try:
        yield fs, source, big
    finally:
        if source.gate is not None:
            source.gate.set()  # let a waiting fetch end before the pool is shut down
        if fs._pool is not None:
            fs._pool.shutdown(wait=True)


def read(fs: LayerFS, path: str, size: int = 1 << 20, offset: int = 0) -> bytes:
    return fs.read(path, size, offset, 0)


@pytest.mark.parametrize("offset, size", [(0, 25), (0, 100), (3, 4), (8, 4), (9, 12), (19, 3), (20, 5), (24, 9)])
def test_reads_return_the_files_bytes_across_chunk_borders(layer, offset, size):
    fs, _, big = layer
    assert read(fs, "/etc/big", size, offset) == big[offset : offset + size]


def test_reads_past_the_end_and_of_an_empty_file_return_nothing(layer):
    fs, source, _ = layer
    assert read(fs, "/etc/big", 10, 25) == b"" and read(fs, "/etc/big", 10, 1000) == b""
    assert read(fs, "/empty") == b"" and source.calls == []


def test_each_chunk_is_fetched_once_then_read_from_the_cache(layer):
    fs, source, big = layer
    assert read(fs, "/etc/big", 5, 8) == big[8:13]  # two chunks
    assert len(source.calls) == 2 and fs.counters.fetched == 2
    assert read(fs, "/etc/big") == big  # the third is new, the two others come from the cache
    assert len(source.calls) == 3 and fs.counters.cache_reads == 2
    assert read(fs, "/etc/link") == big and len(source.calls) == 3  # the same inode, the same chunks
    chunks = fs.tree.lookup("etc/big").entry.chunks
    assert all(fs.cache.has(c) for c in chunks) and len(fs.cache.verified) == 3


def test_concurrent_readers_of_a_chunk_share_one_fetch(layer):
    fs, source, big = layer
    source.gate = threading.Event()
    results: list[bytes] = []
    readers = [threading.Thread(target=lambda: results.append(read(fs, "/etc/big", 4, 2))) for _ in range(6)]
    for t in readers:
        t.start()
    time.sleep(0.1)  # all of them wait now, on the one fetch
    source.gate.set()
    for t in readers:
        t.join(5)
    assert results == [big[2:6]] * 6
    assert source.calls == [fs.tree.lookup("etc/big").entry.chunks[0].digest]


def test_a_failing_source_gives_eio_a_log_line_and_a_retry_later(layer, caplog):
    fs, source, _ = layer
    source.fail = ConnectionError("network is unreachable")
    with caplog.at_level(logging.WARNING, logger="minidocker.lazy"), pytest.raises(OSError) as e:
        read(fs, "/etc/small")
    assert e.value.errno == errno.EIO and fs.counters.failed == 1
    assert "etc/small" in caplog.text and "network is unreachable" in caplog.text and "EIO" in caplog.text
    assert not fs.cache.has(fs.tree.lookup("etc/small").entry.chunks[0])
    source.fail = None  # the network is back
    assert read(fs, "/etc/small") == b"small" and len(source.calls) == 2


def test_a_chunk_with_the_wrong_digest_gives_eio_and_is_not_cached(layer, caplog):
    fs, source, _ = layer
    source.wrong = True
    with caplog.at_level(logging.WARNING, logger="minidocker.lazy"), pytest.raises(OSError) as e:
        read(fs, "/etc/big", 4)
    assert e.value.errno == errno.EIO and "DigestMismatch" in caplog.text
    assert not any(fs.cache.has(c) for c in fs.tree.lookup("etc/big").entry.chunks)


def test_a_source_that_hangs_gives_eio_within_the_timeout(layer):
    fs, source, _ = layer
    source.gate = threading.Event()  # never set during the read
    start = time.monotonic()
    with pytest.raises(OSError) as e:
        read(fs, "/etc/small")
    took = time.monotonic() - start
    assert e.value.errno == errno.EIO and "no answer in 0.5 s" in str(e.value)
    assert 0.4 < took < 2.0


def test_getattr_shows_the_entry_in_stat_terms(layer):
    fs, _, _ = layer
    big = fs.getattr("/etc/big")
    assert big["st_mode"] == stat.S_IFREG | 0o640 and (big["st_uid"], big["st_gid"]) == (7, 8)
    assert big["st_size"] == 25 and big["st_nlink"] == 2 and big["st_mtime"] == 1_500_000_000
    assert fs.getattr("/etc/link")["st_ino"] == big["st_ino"]
    assert fs.getattr("/bin/sh")["st_size"] == len("busybox")
    assert fs.getattr("/dev/null")["st_rdev"] == os.makedev(1, 3)
    gone = fs.getattr("/etc/gone")
    assert stat.S_ISCHR(gone["st_mode"]) and gone["st_rdev"] == 0
    with pytest.raises(OSError) as e:
        fs.getattr("/etc/nothing")
    assert e.value.errno == errno.ENOENT


def test_readdir_lists_the_directory_with_types(layer):
    fs, _, _ = layer
    listing = {name: attrs["st_mode"] for name, attrs, _ in fs.readdir("/etc", 0)}
    assert set(listing) == {".", "..", "big", "small", "link", "gone"}
    assert stat.S_ISCHR(listing["gone"]) and stat.S_ISREG(listing["big"]) and stat.S_ISDIR(listing["."])
    assert [n for n, _, _ in fs.readdir("/var/cache", 0)] == [".", ".."]
    with pytest.raises(OSError) as e:
        fs.readdir("/etc/big", 0)
    assert e.value.errno == errno.ENOTDIR


def test_readlink_and_xattrs(layer):
    fs, _, _ = layer
    assert fs.readlink("/bin/sh") == "busybox"
    assert sorted(fs.listxattr("/var/cache")) == ["trusted.overlay.opaque", "user.x"]
    assert fs.getxattr("/var/cache", "trusted.overlay.opaque") == b"y"
    for call in (lambda: fs.readlink("/etc/big"), lambda: fs.getxattr("/etc/big", "user.x")):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno in (errno.EINVAL, errno.ENODATA)


def test_attributes_of_an_implied_directory():
    tree = build_tree([Entry("a/b", REG)])
    attrs = attributes(tree.lookup("a"))
    assert attrs["st_mode"] == stat.S_IFDIR | 0o755 and attrs["st_nlink"] == 2 and attrs["st_uid"] == 0


def test_layerfs_offers_libfuse_exactly_its_operations(layer):
    """mfusepy registers every attribute named like a FUSE operation (``lock``, ``flush``,
    ``init``...): a helper or field of that name would be called by the kernel's requests."""
    import mfusepy

    fs, _, _ = layer
    operations = {name for name, *_ in mfusepy.fuse_operations._fields_}
    offered = {name for name in dir(fs) if name in operations}
    assert offered == {
        "getattr",
        "readdir",
        "readlink",
        "getxattr",
        "listxattr",
        "read",
        "read_buf",  # (what libfuse calls for a READ: the reply names the cache file's pages)
        "statfs",
        "open",  # (ENOSYS, once: the kernel then opens files itself)
    }


def test_open_says_enosys_and_getxattr_too_where_the_layer_has_no_xattr(layer):
    """ENOSYS tells the kernel to stop asking (lazy/fs.py): always for OPEN, for GETXATTR
    only when no entry of the layer has an xattr."""
    fs, _, _ = layer
    with pytest.raises(OSError) as e:
        fs.open("/etc/big", os.O_RDONLY)
    assert e.value.errno == errno.ENOSYS
    has_any = any(n.xattrs() for n in fs.tree.nodes.values())
    assert fs.xattr_free == (not has_any)
    fs.xattr_free = True
    with pytest.raises(OSError) as e:
        fs.getxattr("/etc/big", "trusted.overlay.metacopy")
    assert e.value.errno == errno.ENOSYS
    fs.xattr_free = False
    with pytest.raises(OSError) as e:
        fs.getxattr("/etc/big", "trusted.overlay.metacopy")
    assert e.value.errno == errno.ENODATA


def test_a_chunk_that_cannot_be_cached_is_served_all_the_same(layer, caplog):
    fs, source, big = layer
    fs.cache.file.mkdir()  # a directory where the cache's file should be: every put fails
    with caplog.at_level(logging.WARNING, logger="minidocker.lazy"):
        assert read(fs, "/etc/big", 10) == big[:10]
    assert "not cached" in caplog.text and fs.counters.fetched == 1
    assert read(fs, "/etc/big", 10) == big[:10] and len(source.calls) == 2  # fetched again, not cached


def test_a_symlinks_size_is_its_targets_length_in_bytes():
    tree = build_tree([Entry("l", SYMLINK, link_name="caf\u00e9")])
    assert attributes(tree.lookup("l"))["st_size"] == 5


class ManySource(CountingSource):
    """A source that can read many chunks at once (as RegistryChunks and ZranChunks can)."""

    def __init__(self, blob: bytes):
        super().__init__(blob)
        self.groups: list[list[str]] = []

    def read_many(self, wanted, gap):
        self.groups.append([c.digest for _, c in wanted])
        return {c.digest: self.blob[c.source_offset : c.source_offset + c.source_length] for _, c in wanted}


def test_misses_in_blob_order_read_ahead_and_scattered_misses_do_not(tmp_path):
    blob = bytearray()
    files = {f"f{i:03d}": os.urandom(20000) for i in range(200)}  # 4 MB: f010 lies far from f150
    entries = [chunked(name, data, 32768, blob) for name, data in files.items()]  # a chunk a file
    source = ManySource(bytes(blob))
    tree = build_tree(entries)
    fs = LayerFS(tree, source, ChunkCache(tmp_path / "cache", Places.of_tree(tree)), fetch_timeout=5, name="ra")
    try:
        assert read(fs, "/f150") == files["f150"]  # a first miss: its chunk alone
        assert read(fs, "/f010") == files["f010"]  # far from the last: alone again
        assert source.groups == [] and len(source.calls) == 2
        for name in ("f011", "f012", "f013"):  # in order now: the window opens and doubles
            assert read(fs, f"/{name}") == files[name]
        assert source.groups, "no readahead for misses in blob order"
        assert len(source.groups[0]) > 1 and len(source.groups[-1]) > len(source.groups[0]) // 2
        requests = len(source.calls) + len(source.groups)
        ahead = [n for n in files if "f014" <= n <= "f100"]
        assert all(read(fs, f"/{n}") == files[n] for n in ahead)  # right bytes, most from the readahead
        assert len(source.calls) + len(source.groups) - requests < len(ahead) // 4  # a request per 4 files, or fewer
    finally:
        if fs._pool is not None:
            fs._pool.shutdown(wait=True)


def test_once_the_layer_is_unpacked_reads_come_from_it_and_never_through_a_symlink(tmp_path):
    blob = bytearray()
    data = os.urandom(5000)
    entries = [chunked("etc/a", data, 4096, blob), chunked("etc/b", b"bbbb", 4096, blob)]
    source = CountingSource(bytes(blob))
    whole = tmp_path / "layer"
    tree = build_tree(entries)
    fs = LayerFS(
        tree, source, ChunkCache(tmp_path / "cache", Places.of_tree(tree)), name="w",
        whole=(str(whole / "diff"), str(whole / "meta.json")),
    )  # fmt: skip
    try:
        assert read(fs, "/etc/b") == b"bbbb" and len(source.calls) == 1  # not unpacked yet: fetched
        (whole / "diff" / "etc").mkdir(parents=True)
        (whole / "diff" / "etc" / "a").write_bytes(data)
        (whole / "meta.json").write_text("{}")
        fs._whole_checked = 0.0  # (a second has gone by)
        assert read(fs, "/etc/a") == data and len(source.calls) == 1  # from the unpacked file
        (whole / "diff" / "etc" / "a").unlink()
        (whole / "diff" / "etc" / "a").symlink_to(tmp_path / "cache")  # a link where the TOC has a file
        os.rename(whole / "diff" / "etc", whole / "diff" / "real")
        (whole / "diff" / "etc").symlink_to("real")  # and a link where it has a directory
        fs.cache.close()
        fs.cache.file.unlink()  # (nothing cached: the next read must not follow the links)
        fs.cache.verified.clear()
        assert read(fs, "/etc/a") == data and len(source.calls) == 3  # fetched, not read through the links
    finally:
        if fs._pool is not None:
            fs._pool.shutdown(wait=True)


def test_a_readahead_is_cut_into_parallel_requests_only_where_the_boundary_changes():
    from minidocker.lazy.fs import split

    group = [(Entry(f"f{i}", REG), Chunk(0, 100, digest(b"%d" % i), i * 100, 100)) for i in range(16)]
    assert [len(p) for p in split(group, 4)] == [4, 4, 4, 4]
    checkpoint = {c.digest: (0 if i < 6 else 1 if i < 15 else 2) for i, (_, c) in enumerate(group)}
    parts = split(group, 4, lambda c: checkpoint[c.digest])  # (a zran source: the checkpoint of each chunk)
    assert [len(p) for p in parts] == [6, 9, 1]
    assert all(len({checkpoint[c.digest] for _, c in p}) == 1 for p in parts)  # no two parts share a checkpoint


def test_parts_of_a_readahead_cover_equal_stretches_of_the_blob_though_zran_ranges_overlap():
    from minidocker.lazy.fs import split

    # a zran layer's chunk range runs from its checkpoint: nine chunks of the first span
    # have overlapping ranges [0, 1000), then seven spans of one chunk each
    checkpoints = [0] * 9 + [1000 * k for k in range(1, 8)]
    group = [(Entry(f"f{i}", REG), Chunk(0, 10, digest(b"%d" % i), at, 1000)) for i, at in enumerate(checkpoints)]
    parts = split(group, 4, lambda c: c.source_offset)
    assert [len(p) for p in parts] == [10, 2, 2, 2]  # 8000 bytes of blob: a part every 2000 (by sums: 9, 1, 4, 2)


class SpanSource(ManySource):
    """A zran-like source: each chunk's range starts at its span's checkpoint and ends a
    little past the chunk's own bytes (an inflater's look-ahead), so it overlaps the next span."""

    def __init__(self, pieces: dict[str, bytes]):
        super().__init__(b"")
        self.pieces = pieces

    def read_chunk(self, entry, chunk):
        self.calls.append(chunk.digest)
        return self.pieces[chunk.digest]

    def read_many(self, wanted, gap):
        self.groups.append([c.digest for _, c in wanted])
        return {c.digest: self.pieces[c.digest] for _, c in wanted}


def test_each_readahead_window_goes_on_from_the_chunks_where_the_last_one_ended(tmp_path):
    """Not from the last blob byte it fetched: in a zran layer that lies past the next span's
    checkpoint, and starting there would leave that span's chunks for the reader to miss."""
    files = {f"f{i:03d}": os.urandom(20000) for i in range(80)}
    entries, pieces, offset = [], {}, 0
    for i, (name, data) in enumerate(files.items()):
        checkpoint = offset - (i % 4) * 20000  # a span is four files
        c = Chunk(0, len(data), digest(data), checkpoint, offset + len(data) + 64 - checkpoint)
        entries.append(Entry(name, REG, size=len(data), chunks=[c], mode=0o644))
        pieces[c.digest] = data
        offset += len(data)
    source = SpanSource(pieces)
    tree = build_tree(entries)
    cache = ChunkCache(tmp_path / "cache", Places.of_tree(tree))
    fs = LayerFS(tree, source, cache, fetch_timeout=5, fetch_threads=1, name="on")  # (one thread: groups in order)
    try:
        assert all(read(fs, f"/{name}") == data for name, data in files.items())
        fetched = [d for g in source.groups for d in g]
        in_blob_order = [c.digest for e in entries for c in e.chunks]
        assert source.calls == in_blob_order[:1]  # the first miss alone; then readaheads, each where the last ended:
        assert fetched == in_blob_order[1:], [len(g) for g in source.groups]
    finally:
        if fs._pool is not None:
            fs._pool.shutdown(wait=True)


def dirty_pages(path) -> int:
    """cachestat(2) (Linux 6.5): how many of the file's pages are dirty in the page cache."""
    import ctypes

    class Range(ctypes.Structure):
        _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]

    class Stat(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint64) for n in ("cache", "dirty", "writeback", "evicted", "recently_evicted")]

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        st = Stat()
        if libc.syscall(451, fd, ctypes.byref(Range(0, 0)), ctypes.byref(st), 0) != 0:
            raise OSError(ctypes.get_errno(), "cachestat")
        return st.dirty
    finally:
        os.close(fd)


def test_the_cache_file_is_written_out_as_chunks_are_kept_not_left_dirty(tmp_path):
    from minidocker.lazy.cache import WRITEBACK

    pieces = [os.urandom(1 << 20) for _ in range(WRITEBACK >> 20)]
    chunks = [Chunk(0, len(p), digest(p), 0, len(p)) for p in pieces]
    cache = cache_for(tmp_path, *chunks)
    for c, p in zip(chunks[:-1], pieces[:-1], strict=True):
        cache.put(c, p)
    assert dirty_pages(tmp_path / "chunks") * 4096 >= WRITEBACK - (1 << 20) - (64 << 10)  # not yet asked
    cache.put(chunks[-1], pieces[-1])  # WRITEBACK bytes kept: the kernel starts writing them out
    assert dirty_pages(tmp_path / "chunks") * 4096 < WRITEBACK // 4
