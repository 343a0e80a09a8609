"""A layer's table of contents (TOC), and the tree a lazy layer's file system shows from it.

A TOC lists a layer's tar members in order, as ``tar -tv`` would, with what ``tar`` needs to
recreate each (type, mode, owner, time, link target, device numbers, xattrs) and, for a
regular file, its *chunks*: consecutive pieces of its content, each with the digest of its
bytes and the place in the layer's blob where its compressed bytes lie. eStargz writes such
a TOC as JSON at the end of the blob; other formats keep one beside it. ``Entry`` and
``Chunk`` are the model every format is read into, so nothing below cares which it was.

``build_tree`` turns the list into the tree that the file system shows, with three rules:

1. **Directories are implied by paths.** ``usr/bin/env`` needs ``usr`` and ``usr/bin``; a
   directory the TOC does not list is made as tar makes one (0755, root, time 0). A later
   entry with the same name replaces an earlier one, as in a tar; a directory over a
   directory keeps what is in it and takes the new metadata.
2. **A hard link is a second name of the same node** (so the same inode number, and a link
   count of two). It must name a file, symlink or device that an earlier entry created.
3. **The view is an overlayfs layer.** The TOC carries the OCI whiteouts of the tar
   (``dir/.wh.NAME``, ``dir/.wh..wh..opq``); the kernel reads a lowerdir's whiteouts in its
   own form. So ``.wh.NAME`` becomes ``NAME``, a character device 0/0, and the opaque marker
   becomes the xattr ``trusted.overlay.opaque=y`` of its directory, exactly as
   ``image/layer.py`` writes them when it unpacks (``image/whiteout.py`` defines both forms,
   once). A TOC that sets a ``trusted.overlay.*`` xattr itself is refused, as a tar that does
   is: overlayfs would read it as a whiteout, redirect or opaque dir the layer never declared.

A TOC comes from the network, so it is checked as a tar is: no absolute names, no ``..``,
nothing under a symlink or a file, every file's chunks covering it exactly.

See it: ``tar -tvf layer.tar`` lists what a TOC lists; ``ls -l`` of a mounted lazy layer
shows each ``.wh.NAME`` of the tar as a ``c--------- 0, 0`` device called NAME.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from minidocker.errors import HostileLayer, LazyLayerError
from minidocker.image import whiteout
from minidocker.image.layer import OVERLAY_XATTR_PREFIX, classify_member, split_member_name

# Entry.type: the words eStargz's TOC uses (one per kind of tar member).
REG, DIR, SYMLINK, HARDLINK, CHAR, BLOCK, FIFO = "reg", "dir", "symlink", "hardlink", "char", "block", "fifo"

TYPE_BITS = {REG: stat.S_IFREG, DIR: stat.S_IFDIR, SYMLINK: stat.S_IFLNK, CHAR: stat.S_IFCHR}
TYPE_BITS |= {BLOCK: stat.S_IFBLK, FIFO: stat.S_IFIFO}

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Chunk:
    """One piece of a regular file: ``size`` bytes of it from ``offset_in_file``, whose
    sha256 is ``digest`` (of the uncompressed bytes, ``sha256:HEX``); the compressed bytes
    are ``source_length`` bytes at ``source_offset`` of the layer's blob."""

    offset_in_file: int
    size: int
    digest: str
    source_offset: int
    source_length: int


@dataclass
class Entry:
    """One member of the layer, as its TOC lists it. ``mode`` holds the permission bits
    (with setuid, setgid, sticky); the file type is ``type``. ``link_name`` is a symlink's
    target or, for a hard link, the path of the entry it is another name of."""

    name: str
    type: str
    size: int = 0
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: float = 0.0
    link_name: str = ""
    dev_major: int = 0
    dev_minor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)


@dataclass(eq=False)
class Node:
    """A file of the tree as the file system shows it: one per inode, so the names of a
    hard link share one. ``entry`` is where its metadata (and chunks) come from; for a
    directory the TOC only implies, and for a whiteout, it is one made up here."""

    ino: int
    entry: Entry
    st_mode: int  # file type bits | permission bits
    rdev: int = 0
    children: dict[str, Node] | None = None  # a directory's entries; None for anything else
    opaque: bool = False  # a directory that hides the lower layers' entries
    nlink: int = 1
    offsets: list[int] = field(default_factory=list)  # each chunk's offset_in_file, for bisect

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    def xattrs(self) -> dict[str, bytes]:
        """The xattrs the file system shows: the TOC's, and overlayfs's opaque marker."""
        if self.opaque:
            return {**self.entry.xattrs, whiteout.OPAQUE_XATTR: whiteout.OPAQUE_VALUE}
        return self.entry.xattrs


@dataclass
class Tree:
    """The tree of a layer: ``root`` (inode 1) and every node by its inode number."""

    root: Node
    nodes: dict[int, Node]

    def lookup(self, path: str) -> Node | None:
        """The node at ``path`` (``/usr/bin/env`` or ``usr/bin/env``; ``/`` is the root)."""
        node = self.root
        for name in path.split("/"):
            if not name:
                continue
            if node.children is None:
                return None
            child = node.children.get(name)
            if child is None:
                return None
            node = child
        return node


def build_tree(entries: Iterable[Entry]) -> Tree:
    """The tree that a layer's TOC describes, in overlayfs's form (the module's three rules).
    Raises ``HostileLayer`` for an entry that would reach outside the tree or say what the
    layer may not, ``LazyLayerError`` for one whose chunks do not add up."""
    builder = TreeBuilder()
    for entry in entries:
        builder.add(entry)
    return builder.finish()


def implied_dir(path: str) -> Entry:
    """The entry of a directory that the TOC names only as a parent (tar makes it so)."""
    return Entry(name=path, type=DIR, mode=0o755)


def whiteout_entry(path: str) -> Entry:
    """The entry of overlayfs's whiteout for ``path``: a character device 0/0, root's, mode 0."""
    return Entry(name=path, type=CHAR, mode=0)


class TreeBuilder:
    """``build_tree``'s state: the tree so far. Entries are added in the TOC's order."""

    def __init__(self) -> None:
        self.next_ino = 1
        self.root = self.new_node(implied_dir(""))

    def new_node(self, entry: Entry) -> Node:
        node = Node(ino=self.next_ino, entry=entry, st_mode=TYPE_BITS[entry.type] | stat.S_IMODE(entry.mode))
        self.next_ino += 1
        if entry.type == DIR:
            node.children = {}
        elif entry.type == SYMLINK:
            node.st_mode = stat.S_IFLNK | 0o777  # a symlink's mode means nothing on Linux: lstat shows 0777
        elif entry.type in (CHAR, BLOCK):
            node.rdev = os.makedev(entry.dev_major, entry.dev_minor)  # st_rdev's encoding of the numbers
        elif entry.type == REG:
            node.offsets = [c.offset_in_file for c in entry.chunks]
        return node

    def add(self, entry: Entry) -> None:
        parts = split_member_name(entry.name, f"TOC entry {entry.name!r}")
        if not parts:  # "./": the layer's root directory itself
            if entry.type != DIR:
                raise HostileLayer(f"layer refused: TOC entry {entry.name!r} would replace the layer's root")
            check_entry(entry)
            self.root.entry = entry
            self.root.st_mode = stat.S_IFDIR | stat.S_IMODE(entry.mode)
            return
        rel, action, target = classify_member(parts)
        if action == whiteout.META:
            return  # AUFS's bookkeeping, not a file of the image
        if action == whiteout.OPAQUE:
            self.directory(target, entry.name).opaque = True
            return
        parent_path, _, name = (target if action == whiteout.WHITEOUT else rel).rpartition("/")
        parent = self.directory(parent_path, entry.name)
        assert parent.children is not None
        if action == whiteout.WHITEOUT:  # it wins over an entry of this same layer, as in apply_layer
            parent.children[name] = self.new_node(whiteout_entry(target))
            return
        check_entry(entry)
        existing = parent.children.get(name)
        if entry.type == HARDLINK:
            parent.children[name] = self.link_target(entry)
        elif entry.type == DIR and existing is not None and existing.is_dir:
            existing.entry = entry  # a directory over a directory: new metadata, same contents
            existing.st_mode = stat.S_IFDIR | stat.S_IMODE(entry.mode)
        else:
            parent.children[name] = self.new_node(entry)

    def directory(self, path: str, name: str) -> Node:
        """The directory node at ``path``, made (as an implied directory) where missing."""
        node = self.root
        walked = []
        for part in path.split("/") if path else []:
            walked.append(part)
            assert node.children is not None
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = self.new_node(implied_dir("/".join(walked)))
            elif not child.is_dir:
                what = "the symlink" if child.entry.type == SYMLINK else "the non-directory"
                raise HostileLayer(
                    f"layer refused: TOC entry {name!r} would be placed under {what} {'/'.join(walked)!r}"
                )
            node = child
        return node

    def link_target(self, entry: Entry) -> Node:
        """The node a hard link names: one that an earlier entry made, and not a directory."""
        what = f"hard link {entry.name!r} -> {entry.link_name!r}"
        node = self.root
        for part in split_member_name(entry.link_name, what):
            child = node.children.get(part) if node.children is not None else None
            if child is None:
                raise HostileLayer(f"layer refused: {what} names no file of this layer")
            node = child
        if node.is_dir:
            raise HostileLayer(f"layer refused: {what} names a directory")
        return node

    def finish(self) -> Tree:
        """Count the links of every node still in the tree (names replaced later are gone)."""
        names: dict[int, int] = {}
        nodes = {self.root.ino: self.root}
        todo = [self.root]
        while todo:
            directory = todo.pop()
            assert directory.children is not None
            directory.nlink = 2 + sum(1 for c in directory.children.values() if c.is_dir)
            for child in directory.children.values():
                names[child.ino] = names.get(child.ino, 0) + 1
                nodes[child.ino] = child
                if child.is_dir:
                    todo.append(child)
        for ino, count in names.items():
            if not nodes[ino].is_dir:
                nodes[ino].nlink = count
        return Tree(root=self.root, nodes=nodes)


def check_entry(entry: Entry) -> None:
    """What an entry must be to be served: a known type, no overlayfs xattrs, a symlink with a
    target, a regular file whose chunks cover it exactly (in order, without gaps)."""
    if entry.type not in TYPE_BITS and entry.type != HARDLINK:
        raise HostileLayer(f"layer refused: TOC entry {entry.name!r} has the unsupported type {entry.type!r}")
    for key in entry.xattrs:
        if key.startswith(OVERLAY_XATTR_PREFIX):
            raise HostileLayer(
                f"layer refused: TOC entry {entry.name!r} sets {key}, which would tell overlayfs "
                "something the layer does not say"
            )
    if entry.type == SYMLINK and not entry.link_name:
        raise HostileLayer(f"layer refused: symlink {entry.name!r} has an empty target")
    if entry.type == REG:
        check_chunks(entry)


def check_chunks(entry: Entry) -> None:
    end = 0
    for chunk in entry.chunks:
        if chunk.offset_in_file != end or chunk.size <= 0:
            raise LazyLayerError(
                f"the TOC's chunks of {entry.name!r} do not cover it: one is {chunk.size} bytes at "
                f"{chunk.offset_in_file}, where the file's byte {end} was expected next"
            )
        if not DIGEST.fullmatch(chunk.digest):
            raise LazyLayerError(f"the TOC names a chunk of {entry.name!r} by {chunk.digest!r}, not a sha256 digest")
        if chunk.source_offset < 0 or chunk.source_length < 0:
            raise LazyLayerError(f"the TOC places a chunk of {entry.name!r} at a negative offset of the blob")
        end += chunk.size
    if end != entry.size:
        raise LazyLayerError(f"the TOC's chunks of {entry.name!r} hold {end} bytes, the file {entry.size}")
