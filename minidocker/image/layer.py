"""apply_layer: a layer's tar stream -> one overlayfs lowerdir, and nothing written outside it.

An image is a stack of layers; each layer is a tar of what changed. ``pull`` unpacks every
layer into an *empty* directory of its own (``layers/<chain-id>/diff/``), and ``run`` later
stacks those directories with one overlay mount (``lowerdir=top:...:bottom``). So a layer
is written in the form the kernel's overlayfs reads, not in the form the tar uses for
deletions (``whiteout.py`` teaches both):

* ``dir/.wh.NAME`` (delete NAME)           -> ``dir/NAME``, a character device 0/0
* ``dir/.wh..wh..opq`` (hide the lower dir) -> the xattr ``trusted.overlay.opaque=y`` on dir
* everything else                           -> written as the tar says: files, directories,
  symlinks, hard links, devices, fifos, with their numeric owner, mode, mtime and xattrs

See it: ``tar -tvf layer.tar | grep .wh.`` next to ``ls -l`` of the same names under
``/var/lib/minidocker/layers/*/diff/``: each ``.wh.NAME`` of the tar is a ``c--------- 0, 0``
device called NAME in the layer directory.

**A layer comes from the network, so it is hostile until proven otherwise.** Extraction must
never write, or change the owner, mode or times of, anything outside ``dest``. The rules
(each refusal raises ``HostileLayer`` naming the member, and the caller throws the half-made
directory away):

1. A member name must be relative and free of ``..``. An absolute name (``/etc/passwd``) is
   refused, where GNU tar and Docker would quietly strip the leading ``/``: no tool that
   builds images writes one, so a layer that has one was made by hand, to probe. Any ``..``
   component is refused, even one that would stay inside (``a/../b``): simplest to check.
2. Nothing is written *through* a symlink. Every parent of a member must be a directory that
   this layer created, so ``evil -> /etc`` followed by ``evil/passwd`` is refused, and so is
   ``root -> /`` followed by ``root/etc/x``. A symlink's *target* may be anything, absolute
   too: it is only followed later, inside the container, where ``/`` is the container's root.
3. A hard link must name a file, symlink or device that this layer already created, by the
   same rules (``../../etc/shadow`` is refused; so is a name this layer does not have).
4. No member may replace ``dest`` itself (``./`` may only be a directory, which sets
   ``dest``'s owner, mode and time).
5. A layer may not carry ``trusted.overlay.*`` xattrs: the kernel would read them as
   whiteouts, opaque dirs or redirects that the layer did not declare. Our own opaque
   conversion is the only writer of one.
6. Metadata calls never follow a symlink: ``lchown``, ``utime(follow_symlinks=False)``,
   ``setxattr(follow_symlinks=False)``, and files are created with ``O_EXCL|O_NOFOLLOW``.

How can we know a parent is a directory we made without asking the disk? ``dest`` starts
empty (we check) and only this code writes in it, so the applier *remembers* every path it
created and what it is (``self.kinds``). The kernel is never asked with ``lstat``, which on
a slow disk saves a system call per member. One invariant keeps this cheap and safe: a path
is in ``kinds`` only if all its parents are directories in ``kinds``; removing a directory
forgets everything under it. So "my parent is a directory I made" is one dict lookup.

A later member with the same name replaces an earlier one, as with tar: a file over a file,
a directory over a file, a file over a directory (the directory and its contents go). A
directory over a directory keeps the contents and takes the new metadata.

**Extended attributes** (PAX ``SCHILY.xattr.NAME`` records, as GNU tar and Docker write them)
are set after ``chown`` and ``chmod``, because changing the owner clears both setuid/setgid
and the ``security.capability`` xattr. When the kernel will not store one:

* ``security.capability`` (file capabilities, as on ``ping``) must be kept: failing to set
  it is a ``StoreError``, never a silently broken binary;
* other ``security.*`` names (SELinux, IMA, AppArmor labels) belong to the builder's
  security module, not ours: refused ones (EPERM, EACCES, EINVAL, ENOTSUP) are skipped;
* any name on a file system without xattrs of that namespace (ENOTSUP), and ``user.*`` on a
  symlink or device (EPERM: the kernel allows user xattrs only on files and directories),
  are skipped; ``LayerStats.xattrs_skipped`` counts every skip;
* anything else (no space, a trusted.* refused) is a ``StoreError``.

**Speed.** This is the hot path of ``pull``. Per regular file we make the system calls GNU
tar makes (open, write, fchown, fchmod, futimens, close) and no ``lstat`` at all; the data
moves in 1 MiB ``readinto`` chunks through one reused buffer. tarfile's stream mode
(``"r|"``) copies what is left of its read-ahead buffer on every read, header or data: with
a 1 MiB buffer that costs more than all the rest (1.0-1.5 s for 7,500 members), and even
with its default 10 KiB buffer it is 20-40% slower than what we do instead: give tarfile a
forward-only "seekable" view of the stream (``ForwardReader``). Reading members in order,
tarfile only ever seeks forward, and a forward seek is a read. What is left is tarfile
parsing each 512-byte header (and PAX record) in Python: about half of the time on tmpfs.
On ext4 the kernel's own cost of creating a file depends on *where* it goes: next to a tree
deleted a minute ago it is 20 times what it is elsewhere, so the store makes each layer's
``diff/`` apart from its neighbours (``fsutil.mkdir_apart``).

**Limits.** A layer can promise far more than it weighs (a decompression bomb), so the
caller may pass a ``LayerBudget`` (``limits.py``): every member and every chunk of file data
is counted against the free-space reserve before it is written, and the holes of a sparse
file, written out as zeros, against the expansion limit. Counting is an addition per chunk;
the kernel is asked about free space only now and then, never once per member.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from minidocker.errors import HostileLayer, StoreError
from minidocker.fsutil import storage_error
from minidocker.image import whiteout
from minidocker.image.limits import MEMBER_COST, LayerBudget

COPY_CHUNK = 1 << 20
XATTR_PAX_PREFIX = "SCHILY.xattr."
OVERLAY_XATTR_PREFIX = "trusted.overlay."
FILE_CAPABILITY_XATTR = "security.capability"

# what this layer has created at a path (LayerApplier.kinds)
DIR, FILE, SYMLINK, OTHER = "dir", "file", "symlink", "other"


@dataclass
class LayerStats:
    entries: int = 0  # tar members read (whiteouts, opaque markers and skipped ones included)
    size: int = 0  # bytes of regular file content written (hard links not counted twice)
    xattrs_skipped: int = 0  # xattrs the kernel refused and the rules above allow to skip


def apply_layer(stream: BinaryIO, dest: Path | str, budget: LayerBudget | None = None) -> LayerStats:
    """Unpack the uncompressed tar read from ``stream`` into ``dest``, in overlayfs form.

    ``dest`` must be an existing, empty directory. ``stream`` is read strictly in order,
    only up to the tar's end-of-archive block, and is left open: the caller drains the rest
    for its digest. Raises ``HostileLayer`` for a member that breaks the rules above,
    ``StoreError`` when the disk fails us or ``budget`` runs out, ``tarfile.TarError`` for a
    damaged tar.
    """
    dest = os.fspath(dest)
    check_empty_directory(dest)
    reader = ForwardReader(stream)
    applier = LayerApplier(dest, reader, budget or LayerBudget.unlimited())
    tar = tarfile.TarFile(fileobj=reader, mode="r")  # reads the first header already
    for member in tar:
        try:
            applier.apply_member(member, tar)
        except OSError as e:
            raise storage_error(e, f"unpacking {member.name!r} of a layer") from None
        except (OverflowError, ValueError) as e:  # a number too big, a NUL in a name...
            raise HostileLayer(f"layer refused: member {member.name!r} has an impossible value ({e})") from None
    try:
        applier.set_directory_times()
    except OSError as e:
        raise storage_error(e, "setting directory times of a layer") from None
    return applier.stats


def check_empty_directory(dest: str) -> None:
    """The applier's knowledge of what exists rests on ``dest`` being empty: make sure."""
    try:
        if not stat.S_ISDIR(os.lstat(dest).st_mode):
            raise StoreError(f"cannot unpack a layer into {dest}: not a directory")
        with os.scandir(dest) as entries:
            if next(entries, None) is not None:
                raise StoreError(f"cannot unpack a layer into {dest}: it is not empty")
    except OSError as e:
        raise storage_error(e, f"opening {dest}") from None


def classify_member(parts: list[str]) -> tuple[str, str, str]:
    """A member's path (its ``split_member_name`` parts) -> (path, whiteout action, target),
    a malformed whiteout refused: what unpacking and a lazy layer's tree both ask first."""
    rel = "/".join(parts)
    try:
        action, target = whiteout.classify(rel)
    except ValueError as e:
        raise HostileLayer(f"layer refused: {e}") from None
    return rel, action, target


def split_member_name(name: str, what: str | None = None) -> list[str]:
    """``./usr//bin/`` -> ``["usr", "bin"]``; refuse absolute names and any ``..``."""
    what = what or f"member {name!r}"
    if name.startswith("/"):
        raise HostileLayer(f"layer refused: {what} is an absolute path")
    parts = [p for p in name.split("/") if p and p != "."]
    if ".." in parts:
        raise HostileLayer(f"layer refused: {what} climbs with '..'")
    return parts


class ForwardReader:
    """A forward-only "seekable" view of a stream, for tarfile's ordinary reading mode.

    Reading members in order, tarfile only seeks forward (past data nobody read, past the
    padding to the next 512-byte block); such a seek becomes a read that is thrown away.
    A backward seek would need the bytes again, which a stream does not have: it raises.
    """

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.pos = 0
        self.stream_readinto = getattr(stream, "readinto", None)

    def tell(self) -> int:
        return self.pos

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if 0 < len(data) < size:  # a pipe or socket may return less: tarfile wants all
            chunks = [data]
            got = len(data)
            while got < size and (more := self.stream.read(size - got)):
                chunks.append(more)
                got += len(more)
            data = b"".join(chunks)
        self.pos += len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:
        if self.stream_readinto is None:
            data = self.stream.read(len(buffer))
            buffer[: len(data)] = data
            n = len(data)
        else:
            n = self.stream_readinto(buffer) or 0
        self.pos += n
        return n

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            pos += self.pos
        elif whence != os.SEEK_SET:
            raise OSError(errno.ESPIPE, "a layer stream can only seek forward")
        if pos < self.pos:
            raise OSError(errno.ESPIPE, f"a layer stream cannot seek back from {self.pos} to {pos}")
        while self.pos < pos:
            if not self.read(min(pos - self.pos, COPY_CHUNK)):
                break  # at the end: tarfile's next read finds nothing and says so
        return self.pos

    def write(self, data: bytes) -> int:
        """tarfile's file protocol names write; a layer is only ever read."""
        raise io.UnsupportedOperation("a layer stream is read-only")

    def close(self) -> None:
        """Leave ``stream`` open: the caller drains the rest of it for its digest."""


class LayerApplier:
    """Applies one tar member at a time to ``dest``; remembers what it made (``kinds``)."""

    def __init__(self, dest: str, reader: ForwardReader, budget: LayerBudget):
        self.dest = dest
        self.reader = reader
        self.budget = budget
        self.kinds: dict[str, str] = {"": DIR}  # relative path -> DIR, FILE, SYMLINK, OTHER
        self.dir_mtimes: dict[str, float] = {}  # set last, once nothing changes them again
        self.buffer = memoryview(bytearray(COPY_CHUNK))
        self.stats = LayerStats()

    def path(self, rel: str) -> str:
        return f"{self.dest}/{rel}" if rel else self.dest

    # -- one member -------------------------------------------------------------------------
    def apply_member(self, m: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        self.stats.entries += 1
        self.budget.count_written(MEMBER_COST)
        parts = split_member_name(m.name)
        if not parts:  # "./": the layer's root directory itself
            if not m.isdir():
                raise HostileLayer(f"layer refused: member {m.name!r} would replace the layer's root")
            self.set_metadata("", m)
            return
        rel, action, target = classify_member(parts)
        if action == whiteout.META:
            return  # AUFS's bookkeeping, not a file of the image
        if action == whiteout.OPAQUE:
            self.make_opaque(target, m.name)
            return
        parent = rel.rpartition("/")[0]
        self.make_directories(parent, m.name)
        if action == whiteout.WHITEOUT:
            self.make_whiteout(target)
        elif m.isreg():
            self.remove_existing(rel)
            self.write_file(rel, m, tar)
        elif m.isdir():
            if self.kinds.get(rel) != DIR:
                self.remove_existing(rel)
                os.mkdir(self.path(rel), 0o700)  # the real mode once we own it (set_metadata)
                self.kinds[rel] = DIR
            self.set_metadata(rel, m)
        elif m.issym():
            if not m.linkname:  # symlink(2) refuses an empty target (ENOENT): say what is wrong
                raise HostileLayer(f"layer refused: symlink {m.name!r} has an empty target")
            self.remove_existing(rel)
            os.symlink(m.linkname, self.path(rel))
            self.kinds[rel] = SYMLINK
            self.set_metadata(rel, m)
        elif m.islnk():
            self.make_hardlink(rel, m)
        elif m.ischr() or m.isblk() or m.isfifo():
            self.remove_existing(rel)
            self.make_node(rel, m)
            self.set_metadata(rel, m)
        else:
            raise HostileLayer(f"layer refused: member {m.name!r} has the unsupported tar type {m.type!r}")

    # -- the rules: directories we made, and nothing else -----------------------------------
    def make_directories(self, rel: str, name: str) -> None:
        """Make sure ``rel`` is a directory of this layer, creating missing ones (0755, root,
        as tar does for parents the archive does not list)."""
        missing = []
        while (kind := self.kinds.get(rel)) is None:  # ends: "" (dest) is always there
            missing.append(rel)
            rel = rel.rpartition("/")[0]
        if kind == SYMLINK:
            raise HostileLayer(f"layer refused: member {name!r} would be written through the symlink {rel!r}")
        if kind != DIR:
            raise HostileLayer(
                f"layer refused: member {name!r} needs {rel!r} to be a directory, but this layer made it something else"
            )
        for rel in reversed(missing):
            os.mkdir(self.path(rel), 0o755)
            self.kinds[rel] = DIR

    def remove_existing(self, rel: str) -> None:
        """Make room at ``rel`` for a later member of the same name (the later one wins)."""
        kind = self.kinds.pop(rel, None)
        if kind is None:
            return
        if kind != DIR:
            os.unlink(self.path(rel))
            return
        self.dir_mtimes.pop(rel, None)
        # forget everything under it: what is on disk there is exactly what we made there
        top = self.path(rel)
        for root, dirs, files in os.walk(top):  # lists symlinks, never follows them
            base = rel + root[len(top) :]
            for entry in dirs + files:
                self.kinds.pop(f"{base}/{entry}", None)
                self.dir_mtimes.pop(f"{base}/{entry}", None)
        shutil.rmtree(top)  # never follows symlinks either

    # -- what a member makes --------------------------------------------------------------------
    def write_file(self, rel: str, m: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        # O_EXCL|O_NOFOLLOW: remove_existing made room, so anything in the way (a symlink
        # above all) means our bookkeeping is wrong: fail rather than write through it
        fd = os.open(self.path(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self.kinds[rel] = FILE
        try:
            if m.sparse is None:
                self.copy_data(fd, m)
            else:  # GNU sparse member: tarfile knows where the holes go
                # typeshed calls it bytes; tarfile makes it a list of (offset, size) pairs
                sparse = cast("list[tuple[int, int]]", m.sparse)
                self.budget.count_expanded(max(0, m.size - sum(n for _, n in sparse)))  # the holes
                src = tar.extractfile(m)
                assert src is not None, "a regular file member always has data to extract"
                with src:
                    while chunk := src.read(COPY_CHUNK):
                        self.budget.count_written(len(chunk))
                        write_all(fd, chunk)
            # data first (writing clears security.capability), then owner (chown clears
            # setuid/setgid and security.capability), then mode, then xattrs, then time
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, stat.S_IMODE(m.mode))
            self.set_xattrs(fd, m)
            os.utime(fd, (m.mtime, m.mtime))
        finally:
            os.close(fd)
        self.stats.size += m.size

    def copy_data(self, fd: int, m: tarfile.TarInfo) -> None:
        """Copy ``m.size`` bytes from the stream to ``fd`` through one reused buffer."""
        self.reader.seek(m.offset_data)  # already there: the header was the last read
        remaining = m.size
        while remaining:
            n = self.reader.readinto(self.buffer[: min(remaining, COPY_CHUNK)])
            if not n:
                raise tarfile.ReadError(f"unexpected end of data in {m.name!r}")
            self.budget.count_written(n)
            write_all(fd, self.buffer[:n])
            remaining -= n

    def make_hardlink(self, rel: str, m: tarfile.TarInfo) -> None:
        target = "/".join(split_member_name(m.linkname, f"hard link {m.name!r} -> {m.linkname!r}"))
        kind = self.kinds.get(target)
        if kind is None or kind == DIR:
            raise HostileLayer(f"layer refused: hard link {m.name!r} -> {m.linkname!r} names no file of this layer")
        if target == rel:
            return  # a link to itself: already there
        self.remove_existing(rel)
        if target not in self.kinds:  # it was inside the directory this member replaced
            raise HostileLayer(f"layer refused: hard link {m.name!r} replaces its own target {m.linkname!r}")
        os.link(self.path(target), self.path(rel), follow_symlinks=False)  # link a symlink itself
        self.kinds[rel] = kind

    def make_node(self, rel: str, m: tarfile.TarInfo) -> None:
        if m.isfifo():
            os.mkfifo(self.path(rel), 0o600)
        else:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(self.path(rel), kind | 0o600, os.makedev(m.devmajor, m.devminor))
        self.kinds[rel] = OTHER

    def make_whiteout(self, rel: str) -> None:
        """``dir/.wh.NAME`` -> ``dir/NAME`` as overlayfs's whiteout, a 0/0 character device."""
        self.remove_existing(rel)  # a whiteout for something of this same layer: it wins
        os.mknod(self.path(rel), stat.S_IFCHR | 0o000, os.makedev(0, 0))
        self.kinds[rel] = OTHER

    def make_opaque(self, rel: str, name: str) -> None:
        """``dir/.wh..wh..opq`` -> ``trusted.overlay.opaque=y`` on ``dir``.

        Opaque hides the *lower* layers' entries of ``dir``; this layer's own entries stay,
        whether the tar lists them before the marker or after it."""
        self.make_directories(rel, name)
        os.setxattr(self.path(rel), whiteout.OPAQUE_XATTR, whiteout.OPAQUE_VALUE, follow_symlinks=False)

    # -- metadata ------------------------------------------------------------------------------
    def set_metadata(self, rel: str, m: tarfile.TarInfo) -> None:
        """Owner, then mode, then xattrs, then time, never following a symlink (``rel`` is
        one we just made, so a plain ``chmod`` of a non-symlink is safe)."""
        path = self.path(rel)
        os.chown(path, m.uid, m.gid, follow_symlinks=False)
        if not m.issym():  # a symlink's mode means nothing on Linux
            os.chmod(path, stat.S_IMODE(m.mode))
        self.set_xattrs(path, m)
        if m.isdir():
            self.dir_mtimes[rel] = m.mtime  # creating entries inside would change it again
        else:
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)

    def set_xattrs(self, target: int | str, m: tarfile.TarInfo) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith(XATTR_PAX_PREFIX):
                continue
            name = key[len(XATTR_PAX_PREFIX) :]
            if name.startswith(OVERLAY_XATTR_PREFIX):
                raise HostileLayer(
                    f"layer refused: member {m.name!r} sets {name}, which would tell "
                    "overlayfs something the layer's tar does not say"
                )
            data = value.encode("utf-8", "surrogateescape")  # tarfile decoded the raw bytes so
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, data)
                else:
                    os.setxattr(target, name, data, follow_symlinks=False)
            except OSError as e:
                if not may_skip_xattr(name, e.errno, m):
                    raise StoreError(
                        f"cannot set the xattr {name} of {m.name!r}: {e.strerror}",
                        hint="unpack layers as root, on ext4, xfs, btrfs or tmpfs",
                    ) from None
                self.stats.xattrs_skipped += 1

    def set_directory_times(self) -> None:
        """Directory mtimes, now that nothing will create or remove entries in them.

        Deepest first, as tar does when it leaves each directory (once all entries exist the
        order does not matter: setting a directory's time changes no other directory)."""
        for rel in sorted(self.dir_mtimes, key=lambda r: r.count("/"), reverse=True):
            mtime = self.dir_mtimes[rel]
            os.utime(self.path(rel), (mtime, mtime), follow_symlinks=False)


def may_skip_xattr(name: str, err: int | None, m: tarfile.TarInfo) -> bool:
    """The xattr policy of the module docstring: which refusals we may ignore."""
    if name == FILE_CAPABILITY_XATTR:
        return False  # a binary without its capabilities fails later, far from the cause
    if err in (errno.ENOTSUP, errno.EOPNOTSUPP):
        return True  # this file system does not store that namespace
    if name.startswith("user.") and err == errno.EPERM and not (m.isreg() or m.isdir()):
        return True  # the kernel allows user.* only on regular files and directories
    return name.startswith("security.") and err in (errno.EPERM, errno.EACCES, errno.EINVAL)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
