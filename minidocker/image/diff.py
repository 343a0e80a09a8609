"""diff_layer: a container's overlay upper dir -> its changes, and -> one layer tar.

A running container writes only to its *upper dir* (``containers/<id>/upper``): overlayfs
copies a file up there before changing it, creates new files there, and records deletions
there in the kernel's own form (``whiteout.py`` teaches both forms)::

    upper/etc/passwd     a regular file: added, or changed (copied up, then written)
    upper/etc/group      a character device 0/0: a *whiteout*, etc/group is deleted
    upper/home/          a dir with trusted.overlay.opaque=y: "rm -rf /home; mkdir /home",
                         nothing of the image's /home shows through any more

So the upper dir *is* the container's diff against its image, and ``commit`` turns it into a
layer by writing it as a tar, turning each kernel marker back into the tar form:

    whiteout device etc/group  ->  etc/.wh.group              (an empty regular file)
    opaque dir home/           ->  home/ then home/.wh..wh..opq

``changes`` reads the same walk as ``docker diff`` prints it, comparing with the image's
layers (the *lower view*) to tell A (added) from C (changed), plus D (deleted)::

    C /etc          a directory whose content changed
    D /etc/group
    C /etc/passwd
    C /home         replaced by a new dir: what the image had in it is deleted ...
    D /home/app     ... (docker itself prints the replaced dir as "D /home" and then its
    A /home/f       new content as A; we say what a reader of the image sees)

Two kinds of upper entries are not the container's doing and are left out of both: the
empty files and dirs the runtime made as *mount points* (/etc/hosts, /etc/hostname,
/etc/resolv.conf, /proc, /dev, /sys, volume and tmpfs targets, when the image lacks them;
docker keeps those in a separate "init" layer), and a directory that is in the upper dir
only because such a mount point was made in it (same owner and mode as in the image, no
other content). overlayfs's own xattrs (``trusted.overlay.*``: origin, impure, uuid...)
describe the upper dir to the kernel and are never copied into a layer.

See it (as root)::

    minidocker run --name c1 busybox sh -c 'rm /etc/group; echo hi > /new'
    ls -l /var/lib/minidocker/containers/<id>/upper/etc     # group: c--------- 0, 0
    minidocker diff c1 && minidocker commit c1 img1

The tar is written with our own few lines (``TarWriter``), not ``tarfile.TarFile.add``: a
tar is a 512-byte header per member, the data padded to 512 bytes, and two zero blocks at
the end; tarfile builds the headers (PAX format: long names, xattrs) and we stream the data
in 1 MiB pieces. Ending with exactly two zero blocks, as Go's archive/tar does (tarfile
pads to 10 KiB), makes an empty diff the well-known empty tar
(``sha256:5f70bf18...``), which docker records as an *empty layer*.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from minidocker.image import whiteout

BLOCK = 512
CHUNK = 1 << 20
OVERLAY_XATTR_PREFIX = "trusted.overlay."
# sha256 of two zero blocks, the tar with no members: docker's "empty layer"
EMPTY_TAR_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
# mount points every container gets (runtime/rootfs.py): made in upper if the image lacks them
RUNTIME_MOUNTPOINTS = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/proc", "/dev", "/sys")

ADDED, CHANGED, DELETED = "A", "C", "D"


@dataclass(frozen=True)
class Change:
    kind: str  # "A", "C" or "D"
    path: str  # absolute, as seen in the container

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


@dataclass
class Entry:
    """One entry of the upper dir that belongs in the layer, in tar order."""

    rel: str  # "etc/passwd"
    path: str  # its full path on the host
    st: os.stat_result
    whiteout: bool = False  # a 0/0 char device: the image's file at ``rel`` is deleted
    opaque: bool = False  # a dir with trusted.overlay.opaque=y: the image's dir was replaced


# -- the image's side: what the lower layers show ----------------------------------------------
class LowerView:
    """What the stack of lowerdirs (top first) shows at a path, by overlayfs's rules, asked
    of the layer directories directly (no mount): the topmost layer that has an entry for a
    path decides; a whiteout there means "absent"; an opaque directory hides the same
    directory in every layer below it."""

    def __init__(self, lowerdirs: Iterable[str | os.PathLike]):
        self.layers = [os.fspath(d) for d in lowerdirs]
        self._dirs: dict[str, list[str]] = {"": list(self.layers)}  # dir -> layers that show into it

    def _layers_of_dir(self, rel: str) -> list[str]:
        """The layers whose entries show in directory ``rel`` ([] if it is not a directory)."""
        if rel in self._dirs:
            return self._dirs[rel]
        parent, _, _ = rel.rpartition("/")
        visible: list[str] = []
        for layer in self._layers_of_dir(parent):
            st = _lstat(f"{layer}/{rel}")
            if st is None:
                continue
            if not stat.S_ISDIR(st.st_mode):
                if not visible:
                    break  # the topmost entry is a file or a whiteout: no directory here
                break  # a lower non-directory under a directory is hidden
            visible.append(layer)
            if _is_opaque(f"{layer}/{rel}"):
                break
        self._dirs[rel] = visible
        return visible

    def lookup(self, rel: str) -> os.stat_result | None:
        """lstat of ``rel`` as the image shows it, or None if the image has no such path."""
        parent, _, _ = rel.rpartition("/")
        for layer in self._layers_of_dir(parent):
            st = _lstat(f"{layer}/{rel}")
            if st is not None:
                return None if whiteout.is_overlay_whiteout(st) else st
        return None

    def children(self, rel: str) -> set[str]:
        """The names the image shows in directory ``rel``."""
        names: set[str] = set()
        hidden: set[str] = set()
        for layer in self._layers_of_dir(rel):
            try:
                with os.scandir(f"{layer}/{rel}" if rel else layer) as it:
                    for e in it:
                        if e.name in names or e.name in hidden:
                            continue
                        if whiteout.is_overlay_whiteout(e.stat(follow_symlinks=False)):
                            hidden.add(e.name)
                        else:
                            names.add(e.name)
            except FileNotFoundError:
                continue
        return names


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _is_opaque(path: str) -> bool:
    try:
        return whiteout.is_opaque_value(os.getxattr(path, whiteout.OPAQUE_XATTR, follow_symlinks=False))
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.ENOENT):
            return False
        raise


# -- the container's side: the upper dir -------------------------------------------------------
def walk_upper(
    upper: str | os.PathLike,
    lower: LowerView,
    mountpoints: Iterable[str] = RUNTIME_MOUNTPOINTS,
    idmap: dict[str, int] | None = None,
) -> Iterator[Entry]:
    """Every entry of the upper dir that belongs in the layer, parents before children and
    names in byte order (the order ``docker diff`` and a tar list them), one by one as the
    walk finds them: commit writes each into the tar before the walk goes on, so walking,
    reading and compressing overlap. The upper dir's own root is not an entry. ``idmap``:
    the container ran with ``--userns=auto``, so what it wrote is owned by host IDs; the
    entries show the owners the container saw."""
    skip = {m.strip("/") for m in mountpoints}
    return _walk_dir(os.fspath(upper), "", lower, skip, idmap)


def container_id(host_id: int, base: int, size: int) -> int:
    """A host user or group ID as a user-namespaced container saw it (IDs outside its block
    are left alone: the image's own files, seen through a read-only view, have those)."""
    return host_id - base if base <= host_id < base + size else host_id


def as_container_saw(st: os.stat_result, idmap: dict[str, int] | None) -> os.stat_result:
    """``st`` with owners mapped back through ``idmap`` (None: unchanged)."""
    if not idmap:
        return st
    fields = list(st)
    fields[4] = container_id(st.st_uid, idmap["uid"], idmap["size"])
    fields[5] = container_id(st.st_gid, idmap["gid"], idmap["size"])
    extra = {
        k: getattr(st, k)
        for k in (
            "st_atime",
            "st_mtime",
            "st_ctime",
            "st_atime_ns",
            "st_mtime_ns",
            "st_ctime_ns",
            "st_blksize",
            "st_blocks",
            "st_rdev",
        )
    }
    return os.stat_result(fields, extra)


def _walk_dir(
    upper: str, rel: str, lower: LowerView, skip: set[str], idmap: dict[str, int] | None = None
) -> Iterator[Entry]:
    with os.scandir(f"{upper}/{rel}" if rel else upper) as it:
        names = sorted(e.name for e in it)
    for name in names:
        crel = f"{rel}/{name}" if rel else name
        path = f"{upper}/{crel}"
        st = as_container_saw(os.lstat(path), idmap)
        if stat.S_ISCHR(st.st_mode) and whiteout.is_overlay_whiteout(st):
            yield Entry(crel, path, st, whiteout=True)
            continue
        if crel in skip and _is_empty_mountpoint(path, st):
            continue  # the runtime's mount point, not the container's doing
        if not stat.S_ISDIR(st.st_mode):
            yield Entry(crel, path, st)
            continue
        entry = Entry(crel, path, st, opaque=_is_opaque(path))
        inside = _walk_dir(upper, crel, lower, skip, idmap)
        first = next(inside, None)  # a directory waits for its first entry (or the lack of one)
        if first is None and not entry.opaque and _only_made_for_a_mountpoint(crel, st, lower, skip):
            continue
        yield entry
        if first is not None:
            yield first
            yield from inside


def _is_empty_mountpoint(path: str, st: os.stat_result) -> bool:
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if stat.S_ISDIR(st.st_mode):
        with os.scandir(path) as it:
            return next(it, None) is None
    return False


def _only_made_for_a_mountpoint(rel: str, st: os.stat_result, lower: LowerView, skip: set[str]) -> bool:
    """An empty (after skipping) upper dir that holds a skipped mount point and looks like the
    image's: it was copied up only so that the mount point could be created in it."""
    if not any(s.startswith(rel + "/") for s in skip):
        return False
    low = lower.lookup(rel)
    return (
        low is not None
        and stat.S_ISDIR(low.st_mode)
        and low.st_mode == st.st_mode
        and low.st_uid == st.st_uid
        and low.st_gid == st.st_gid
    )


# -- docker diff ------------------------------------------------------------------------------
def changes(entries: list[Entry], lower: LowerView) -> list[Change]:
    """The A/C/D list ``docker diff`` prints, from ``walk_upper``'s entries.

    Docker's rules (moby pkg/archive/changes.go): an upper entry the image lacks is A, one
    it has is C, a whiteout is D; a directory that is in the upper dir but has the image's
    size, mode and mtime is not itself a change (it was copied up for a file inside);
    the parent of an A or D is listed as C. And ours for an opaque directory that replaced
    one of the image's: it is C, and each name the image had in it that is not there now
    is D."""
    found: dict[str, str] = {}
    upper_names: dict[str, set[str]] = {}
    for e in entries:
        parent, _, name = e.rel.rpartition("/")
        upper_names.setdefault(parent, set()).add(name)
    for e in entries:
        path = "/" + e.rel
        if e.whiteout:
            found[path] = DELETED
            continue
        low = lower.lookup(e.rel)
        if low is None:
            found[path] = ADDED
        elif e.opaque and stat.S_ISDIR(low.st_mode):
            found[path] = CHANGED
            for gone in lower.children(e.rel) - upper_names.get(e.rel, set()):
                found[f"{path}/{gone}"] = DELETED
        elif (
            stat.S_ISDIR(e.st.st_mode)
            and stat.S_ISDIR(low.st_mode)
            and e.st.st_size == low.st_size
            and e.st.st_mode == low.st_mode
            and int(e.st.st_mtime) == int(low.st_mtime)
        ):
            continue
        else:
            found[path] = CHANGED
    for path, kind in list(found.items()):
        parent = path.rpartition("/")[0]
        if kind in (ADDED, DELETED) and parent and parent not in found:
            found[parent] = CHANGED
    return [Change(found[p], p) for p in sorted(found, key=lambda p: p.split("/"))]


# -- the layer tar ------------------------------------------------------------------------------
def tar_members(entries: Iterable[Entry]) -> Iterator[tuple[tarfile.TarInfo, str | None]]:
    """Each entry as the tar member(s) it becomes, with the file to copy data from (or None).

    Numeric owners, permission bits (setuid & co. included), whole-second mtimes (docker
    truncates them too), xattrs as PAX ``SCHILY.xattr.*`` records; a file with several names
    in the upper dir is stored once, later names as hard links to the first."""
    links: dict[tuple[int, int], str] = {}
    for e in entries:
        st = e.st
        if e.whiteout:
            yield _member(whiteout.whiteout_name(e.rel), tarfile.REGTYPE, st, mode=0o600), None
            continue
        ti = _member(e.rel, tarfile.REGTYPE, st)
        ti.pax_headers = {**ti.pax_headers, **_xattrs(e.path)}
        mode = st.st_mode
        if stat.S_ISREG(mode) and st.st_nlink > 1:
            first = links.setdefault((st.st_dev, st.st_ino), e.rel)
            if first != e.rel:
                ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, first, 0
                yield ti, None
                continue
        if stat.S_ISREG(mode):
            ti.size = st.st_size
            yield ti, e.path
        elif stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
            ti.name = e.rel + "/"
            yield ti, None
            if e.opaque:
                yield _member(whiteout.opaque_marker(e.rel), tarfile.REGTYPE, st, mode=stat.S_IMODE(mode)), None
        elif stat.S_ISLNK(mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(e.path)
            yield ti, None
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            yield ti, None
        elif stat.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
            yield ti, None
        # sockets: a tar cannot hold one (docker and GNU tar skip them too)


def _member(name: str, kind: bytes, st: os.stat_result, mode: int | None = None) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = stat.S_IMODE(st.st_mode) if mode is None else mode
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = int(st.st_mtime)
    return ti


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    out = {}
    for name in sorted(names):
        if name.startswith(OVERLAY_XATTR_PREFIX):
            continue  # overlayfs's bookkeeping about the upper dir, not the image's
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno == errno.ENODATA:
                continue
            raise
        # tarfile writes PAX values from str; surrogateescape carries any bytes through
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


class TarWriter:
    """Writes tar members to ``write`` (a callable taking bytes), in PAX format."""

    def __init__(self, write: Callable[[bytes | memoryview], None]):
        self.write = write
        self.buffer = memoryview(bytearray(CHUNK))
        self.pending = bytearray()  # headers are small: gather them, write in one call

    def _flush(self) -> None:
        if self.pending:
            self.write(bytes(self.pending))
            self.pending.clear()

    def add(self, ti: tarfile.TarInfo, source: str | None = None) -> None:
        self.pending += ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if source is None or ti.size == 0:
            if len(self.pending) >= CHUNK:
                self._flush()
            return
        self._flush()
        self._copy(source, ti.size)

    def _copy(self, source: str, size: int) -> None:
        """Exactly ``size`` bytes of ``source`` (zeros if it shrank meanwhile, as GNU tar
        does: a running container may write while --pause=false), padded to a block."""
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            remaining = size
            while remaining:
                n = os.readv(fd, [self.buffer[: min(remaining, CHUNK)]])
                if n == 0:
                    break
                self.write(self.buffer[:n])
                remaining -= n
        finally:
            os.close(fd)
        while remaining:
            n = min(remaining, CHUNK)
            self.write(bytes(n))
            remaining -= n
        if size % BLOCK:
            self.pending += bytes(BLOCK - size % BLOCK)

    def close(self) -> None:
        """The end-of-archive marker: two zero blocks, nothing more."""
        self.pending += bytes(2 * BLOCK)
        self._flush()


def write_layer_tar(entries: Iterable[Entry], write: Callable[[bytes | memoryview], None]) -> int:
    """``diff_layer``: the upper dir's entries as one tar, to ``write``; returns the number
    of members written."""
    tw = TarWriter(write)
    n = 0
    for ti, source in tar_members(entries):
        tw.add(ti, source)
        n += 1
    tw.close()
    return n
