"""A lazy layer's TOC -> the tree its file system shows (pure, no root): implied directories,
hard links, replacement in TOC order, OCI whiteouts in overlayfs's form, hostile entries."""

import hashlib
import os
import stat

import pytest

from minidocker.errors import HostileLayer, LazyLayerError
from minidocker.image.whiteout import OPAQUE_XATTR
from minidocker.lazy.toc import BLOCK, CHAR, DIR, FIFO, HARDLINK, REG, SYMLINK, Chunk, Entry, build_tree


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def reg(name: str, data: bytes = b"", **kw) -> Entry:
    chunks = [Chunk(0, len(data), digest(data), 0, len(data))] if data else []
    return Entry(name, REG, size=len(data), chunks=chunks, **kw)


def test_directories_are_implied_by_paths():
    tree = build_tree([reg("usr/bin/env", b"x")])
    usr = tree.lookup("usr")
    assert usr is not None and usr.is_dir
    assert usr.st_mode == stat.S_IFDIR | 0o755 and (usr.entry.uid, usr.entry.gid) == (0, 0)
    assert tree.lookup("/usr/bin/env") is tree.lookup("usr/bin/env") is not None
    assert tree.lookup("/") is tree.root and tree.root.ino == 1
    assert tree.lookup("usr/bin/env/x") is None and tree.lookup("usr/nothing") is None


def test_metadata_comes_from_the_entry():
    tree = build_tree(
        [
            Entry("etc", DIR, mode=0o700, uid=3, gid=4, mtime=1700000000.5),
            reg("etc/shadow", b"secret", mode=0o4640, uid=0, gid=42),
            Entry("dev/null", CHAR, mode=0o666, dev_major=1, dev_minor=3),
            Entry("dev/sda", BLOCK, mode=0o660, dev_major=8, dev_minor=0),
            Entry("run/pipe", FIFO, mode=0o600),
            Entry("bin/sh", SYMLINK, mode=0o755, link_name="busybox"),
        ]
    )
    etc, shadow = tree.lookup("etc"), tree.lookup("etc/shadow")
    assert etc.st_mode == stat.S_IFDIR | 0o700 and (etc.entry.uid, etc.entry.mtime) == (3, 1700000000.5)
    assert shadow.st_mode == stat.S_IFREG | 0o4640 and shadow.entry.gid == 42
    assert tree.lookup("dev/null").st_mode == stat.S_IFCHR | 0o666
    assert tree.lookup("dev/null").rdev == os.makedev(1, 3)
    assert tree.lookup("dev/sda").st_mode == stat.S_IFBLK | 0o660
    assert tree.lookup("dev/sda").rdev == os.makedev(8, 0)
    assert tree.lookup("run/pipe").st_mode == stat.S_IFIFO | 0o600
    assert tree.lookup("bin/sh").st_mode == stat.S_IFLNK | 0o777  # as lstat shows every symlink


def test_a_directory_listed_after_its_contents_keeps_them():
    tree = build_tree([reg("etc/motd", b"hi"), Entry("etc", DIR, mode=0o750, uid=7)])
    etc = tree.lookup("etc")
    assert list(etc.children) == ["motd"] and etc.st_mode == stat.S_IFDIR | 0o750 and etc.entry.uid == 7


def test_the_root_entry_sets_the_roots_metadata_and_may_only_be_a_directory():
    assert build_tree([Entry("./", DIR, mode=0o711)]).root.st_mode == stat.S_IFDIR | 0o711
    with pytest.raises(HostileLayer, match="root"):
        build_tree([reg("./", b"x")])


def test_a_later_entry_replaces_an_earlier_one():
    tree = build_tree([reg("a", b"old"), Entry("d/x", DIR), reg("d", b"file over a directory"), reg("a", b"new")])
    assert tree.lookup("a").entry.size == 3 and tree.lookup("a").entry.chunks[0].digest == digest(b"new")
    d = tree.lookup("d")
    assert not d.is_dir and d.entry.size == len(b"file over a directory")
    assert all(n.entry.name != "d/x" for n in tree.nodes.values())  # what was under it is gone


def test_a_hard_link_is_a_second_name_of_the_same_node():
    tree = build_tree([reg("bin/a", b"prog"), Entry("bin/b", HARDLINK, link_name="bin/a"), reg("c", b"c")])
    a, b = tree.lookup("bin/a"), tree.lookup("bin/b")
    assert a is b and a.nlink == 2 and tree.lookup("c").nlink == 1
    assert len({n.ino for n in tree.nodes.values()}) == len(tree.nodes)  # one inode number per node


def test_a_replaced_name_no_longer_counts_as_a_link():
    tree = build_tree([reg("a", b"1"), Entry("b", HARDLINK, link_name="a"), reg("a", b"2")])
    assert tree.lookup("b").nlink == 1 and tree.lookup("a").nlink == 1
    assert tree.lookup("a") is not tree.lookup("b")


def test_directory_link_counts_are_two_plus_subdirectories():
    tree = build_tree([Entry("d/e", DIR), Entry("d/f", DIR), reg("d/g", b"x")])
    assert tree.lookup("d").nlink == 4 and tree.lookup("d/e").nlink == 2
    assert tree.root.nlink == 3


@pytest.mark.parametrize(
    "entries, message",
    [
        ([Entry("b", HARDLINK, link_name="a")], "names no file"),
        ([Entry("d", DIR), Entry("b", HARDLINK, link_name="d")], "names a directory"),
        ([reg("a", b"x"), Entry("b", HARDLINK, link_name="../a")], "climbs"),
        ([Entry("/etc/passwd", REG)], "absolute"),
        ([reg("a/../../etc/passwd", b"x")], "climbs"),
        ([Entry("evil", SYMLINK, link_name="/etc"), reg("evil/passwd", b"x")], "under the symlink"),
        ([reg("f", b"x"), reg("f/g", b"x")], "under the non-directory"),
        ([Entry("s", SYMLINK, link_name="")], "empty target"),
        ([Entry("sock", "socket")], "unsupported type"),
        ([reg("a", b"x", xattrs={"trusted.overlay.redirect": b"/etc"})], "trusted.overlay.redirect"),
        ([Entry("d", DIR, xattrs={OPAQUE_XATTR: b"y"})], "trusted.overlay.opaque"),
        ([Entry("./", DIR, xattrs={"trusted.overlay.origin": b"x"})], "trusted.overlay.origin"),
        ([reg("a/.wh.", b"")], "names no file"),
    ],
)
def test_hostile_entries_are_refused(entries, message):
    with pytest.raises(HostileLayer, match=message):
        build_tree(entries)


@pytest.mark.parametrize(
    "chunks, size, message",
    [
        ([Chunk(0, 4, digest(b"abcd"), 0, 4), Chunk(5, 4, digest(b"efgh"), 4, 4)], 9, "byte 4 was expected"),
        ([Chunk(0, 4, digest(b"abcd"), 0, 4)], 8, "hold 4 bytes, the file 8"),
        ([Chunk(0, 0, digest(b""), 0, 0)], 0, "0 bytes at 0"),
        ([Chunk(0, 4, "md5:abcd", 0, 4)], 4, "not a sha256 digest"),
        ([Chunk(0, 4, "sha256:../../../etc/passwd", 0, 4)], 4, "not a sha256 digest"),
        ([Chunk(0, 4, digest(b"abcd"), -1, 4)], 4, "negative"),
    ],
)
def test_chunks_must_cover_the_file_exactly(chunks, size, message):
    with pytest.raises(LazyLayerError, match=message):
        build_tree([Entry("f", REG, size=size, chunks=chunks)])


def test_chunk_offsets_are_kept_for_the_reader():
    chunks = [Chunk(0, 4, digest(b"abcd"), 0, 9), Chunk(4, 2, digest(b"ef"), 9, 5)]
    assert build_tree([Entry("f", REG, size=6, chunks=chunks)]).lookup("f").offsets == [0, 4]


# -- OCI whiteouts -> overlayfs's form --------------------------------------------------------------
def test_a_whiteout_becomes_a_0_0_character_device_of_the_name_it_deletes():
    tree = build_tree([Entry("etc/.wh.motd", REG, size=0, mode=0o644, uid=5)])
    etc = tree.lookup("etc")
    assert list(etc.children) == ["motd"]
    node = tree.lookup("etc/motd")
    assert node.st_mode == stat.S_IFCHR and node.rdev == 0  # what overlayfs takes for a whiteout
    assert (node.entry.uid, node.entry.gid) == (0, 0)


def test_an_opaque_marker_becomes_the_opaque_xattr_of_its_directory():
    tree = build_tree([Entry("var/cache", DIR, xattrs={"user.note": b"1"}), reg("var/cache/.wh..wh..opq")])
    cache = tree.lookup("var/cache")
    assert cache.opaque and cache.children == {}  # the marker itself is not a file
    assert cache.xattrs() == {"user.note": b"1", OPAQUE_XATTR: b"y"}
    assert tree.lookup("var").xattrs() == {}


def test_an_opaque_marker_before_its_directory_and_its_files_keeps_both():
    tree = build_tree([reg("d/.wh..wh..opq"), Entry("d", DIR, mode=0o700), reg("d/kept", b"x")])
    d = tree.lookup("d")
    assert d.opaque and d.st_mode == stat.S_IFDIR | 0o700 and list(d.children) == ["kept"]


def test_the_roots_opaque_marker_makes_the_root_opaque():
    assert build_tree([reg(".wh..wh..opq")]).root.xattrs() == {OPAQUE_XATTR: b"y"}


def test_aufs_bookkeeping_is_left_out():
    tree = build_tree([Entry(".wh..wh.plnk", DIR), reg(".wh..wh.plnk/1.2", b"x"), reg("a", b"a")])
    assert list(tree.root.children) == ["a"]


@pytest.mark.parametrize(
    "entries, kind",
    [
        ([reg("x", b"1"), reg(".wh.x")], "whiteout"),  # the whiteout comes later: it wins
        ([reg(".wh.x"), reg("x", b"1")], "file"),  # the file comes later: it wins
    ],
)
def test_a_whiteout_and_a_file_of_the_same_name_the_later_wins(entries, kind):
    node = build_tree(entries).lookup("x")
    assert (node.st_mode == stat.S_IFCHR and node.rdev == 0) == (kind == "whiteout")
