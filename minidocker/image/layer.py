"""apply_layer: a layer's tar stream -> one overlayfs lowerdir, and nothing outside it.

A layer is a tar of the files that changed. We unpack it into an *empty* directory of its
own (``layers/<chain-id>/diff``), in the form overlayfs reads as a lowerdir: whiteout
files become 0/0 character devices, opaque markers become the ``trusted.overlay.opaque``
xattr (``whiteout.py`` explains both). The kernel then stacks these directories.

A layer comes from the network, so it is treated as hostile. The rules:

* a member name must be relative and free of ``..``: an absolute name (``/etc/passwd``) or
  one that climbs (``../x``, ``a/../../x``) refuses the whole layer;
* no member is ever written *through* a symlink: every parent directory of a member must be
  a real directory this layer created (``evil -> /etc`` followed by ``evil/passwd`` is
  refused); symlink *targets* may point anywhere, since they are only followed later,
  inside the container, where ``/`` is the container's root;
* a hard link must name a member this layer already created, by the same rules;
* metadata calls never follow symlinks (``lchown``, ``utime(follow_symlinks=False)``), and
  regular files are created with ``O_EXCL|O_NOFOLLOW``;
* a layer may not set ``trusted.overlay.*`` xattrs itself: they would forge whiteouts or
  redirects for the kernel. Only our own opaque conversion sets one.

Because the directory starts empty and only this code writes to it, the applier *knows*
what exists (``self.kinds``) and never needs to ``lstat`` a path to find out: on a slow disk
that saves a syscall per file and per parent directory.

Try it: ``tar -tvf layer.tar | head`` beside ``ls -la /var/lib/minidocker/layers/*/diff``.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from minidocker.errors import HostileLayer
from minidocker.image.whiteout import OPAQUE_XATTR, classify

COPY_CHUNK = 1 << 20
XATTR_PREFIX = "SCHILY.xattr."
FORBIDDEN_XATTRS = ("trusted.overlay.",)

DIR, FILE, LINK, OTHER = "dir", "file", "symlink", "other"


@dataclass
class LayerStats:
    entries: int = 0  # members applied (whiteouts and opaque markers included)
    size: int = 0  # bytes of regular file content


def apply_layer(stream: BinaryIO, dest: Path | str) -> LayerStats:
    """Unpack the uncompressed tar ``stream`` into the empty directory ``dest``.

    Reads the stream strictly in order and leaves it open (the caller finishes hashing
    it). Raises ``HostileLayer`` for a member that breaks the rules above."""
    applier = LayerApplier(os.fspath(dest))
    with tarfile.open(fileobj=stream, mode="r|", bufsize=COPY_CHUNK) as tar:
        for member in tar:
            applier.apply(member, tar)
    applier.finish()
    return applier.stats


def split_name(name: str, what: str = "member") -> list[str]:
    """``./a//b/`` -> ``["a", "b"]``; refuse absolute names and ``..``."""
    if name.startswith("/"):
        raise HostileLayer(f"layer refused: {what} {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise HostileLayer(f"layer refused: {what} {name!r} climbs out of the layer with '..'")
    return parts


class LayerApplier:
    def __init__(self, dest: str):
        self.dest = dest
        self.kinds: dict[str, str] = {"": DIR}  # what this layer has created, by relative path
        self.dir_times: dict[str, float] = {}
        self.stats = LayerStats()

    def path(self, rel: str) -> str:
        return f"{self.dest}/{rel}" if rel else self.dest

    # -- the rules ------------------------------------------------------------------------
    def ensure_parents(self, parts: list[str], name: str) -> None:
        """Every parent must be a real directory of this layer; create missing ones."""
        rel = ""
        for p in parts:
            rel = f"{rel}/{p}" if rel else p
            kind = self.kinds.get(rel)
            if kind == DIR:
                continue
            if kind == LINK:
                raise HostileLayer(f"layer refused: member {name!r} would be written through the symlink {rel!r}")
            if kind is not None:
                raise HostileLayer(f"layer refused: member {name!r} needs {rel!r} to be a directory")
            os.mkdir(self.path(rel), 0o755)
            self.kinds[rel] = DIR

    def clear(self, rel: str, keep_dir: bool) -> None:
        """Make room for a new entry at ``rel`` (tar semantics: the later member wins)."""
        kind = self.kinds.get(rel)
        if kind is None or (kind == DIR and keep_dir):
            return
        if kind == DIR:
            shutil.rmtree(self.path(rel))
            prefix = rel + "/"
            for k in [k for k in self.kinds if k.startswith(prefix)]:
                del self.kinds[k]
                self.dir_times.pop(k, None)
            self.dir_times.pop(rel, None)
        else:
            os.unlink(self.path(rel))
        del self.kinds[rel]

    # -- one member -----------------------------------------------------------------------
    def apply(self, m: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        parts = split_name(m.name)
        self.stats.entries += 1
        if not parts:  # "./": the layer's root directory itself
            if not m.isdir():
                raise HostileLayer(f"layer refused: member {m.name!r} would replace the layer's root")
            self.set_metadata("", m)
            return
        rel = "/".join(parts)
        action, target = classify(rel)
        self.ensure_parents(parts[:-1], m.name)
        if action == "whiteout":
            self.make_whiteout(target)
        elif action == "opaque":
            self.make_opaque(target, m)
        elif m.isdir():
            self.clear(rel, keep_dir=True)
            if rel not in self.kinds:
                os.mkdir(self.path(rel), 0o700)
                self.kinds[rel] = DIR
            self.set_metadata(rel, m)
        elif m.isreg():
            self.clear(rel, keep_dir=False)
            self.write_file(rel, m, tar)
        elif m.issym():
            self.clear(rel, keep_dir=False)
            os.symlink(m.linkname, self.path(rel))
            self.kinds[rel] = LINK
            self.set_metadata(rel, m, chmod=False)
        elif m.islnk():
            self.make_hardlink(rel, m)
        elif m.ischr() or m.isblk() or m.isfifo():
            self.clear(rel, keep_dir=False)
            if m.isfifo():
                os.mkfifo(self.path(rel), 0o600)
            else:
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                os.mknod(self.path(rel), 0o600 | kind, os.makedev(m.devmajor, m.devminor))
            self.kinds[rel] = OTHER
            self.set_metadata(rel, m)
        else:
            raise HostileLayer(f"layer refused: member {m.name!r} has an unsupported type {m.type!r}")

    def write_file(self, rel: str, m: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        fd = os.open(self.path(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self.kinds[rel] = FILE
        try:
            src = tar.extractfile(m)
            remaining = m.size
            while remaining > 0:
                chunk = src.read(min(COPY_CHUNK, remaining))
                if not chunk:
                    raise tarfile.ReadError(f"unexpected end of data in {m.name!r}")
                _write_all(fd, chunk)
                remaining -= len(chunk)
            self.stats.size += m.size
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, stat.S_IMODE(m.mode))  # after chown, which clears setuid/setgid
            self.set_xattrs(fd, m)
            os.utime(fd, (m.mtime, m.mtime))
        finally:
            os.close(fd)

    def make_hardlink(self, rel: str, m: tarfile.TarInfo) -> None:
        target_parts = split_name(m.linkname, what=f"hard link target of {m.name!r}")
        target = "/".join(target_parts)
        for i in range(1, len(target_parts)):
            if self.kinds.get("/".join(target_parts[:i])) != DIR:
                raise HostileLayer(f"layer refused: hard link {m.name!r} -> {m.linkname!r} goes through "
                                   "something that is not a directory of this layer")
        if self.kinds.get(target) in (None, DIR):
            raise HostileLayer(f"layer refused: hard link {m.name!r} -> {m.linkname!r} names no file of this layer")
        if target == rel:
            return
        self.clear(rel, keep_dir=False)
        os.link(self.path(target), self.path(rel), follow_symlinks=False)
        self.kinds[rel] = self.kinds[target]

    def make_whiteout(self, rel: str) -> None:
        self.clear(rel, keep_dir=False)
        os.mknod(self.path(rel), stat.S_IFCHR | 0o000, os.makedev(0, 0))
        self.kinds[rel] = OTHER

    def make_opaque(self, rel: str, m: tarfile.TarInfo) -> None:
        """Opaque hides the *lower* layers' contents of ``rel``; this layer's own stay."""
        if self.kinds.get(rel) != DIR:
            self.clear(rel, keep_dir=False)
            os.mkdir(self.path(rel), 0o755)
            self.kinds[rel] = DIR
        os.setxattr(self.path(rel), OPAQUE_XATTR, b"y", follow_symlinks=False)

    # -- metadata ---------------------------------------------------------------------------
    def set_metadata(self, rel: str, m: tarfile.TarInfo, chmod: bool = True) -> None:
        path = self.path(rel)
        os.chown(path, m.uid, m.gid, follow_symlinks=False)
        if chmod:
            os.chmod(path, stat.S_IMODE(m.mode))
        self.set_xattrs(path, m)
        if m.isdir():
            self.dir_times[rel] = m.mtime  # set last: creating children changes a dir's mtime
        else:
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)

    def set_xattrs(self, target: int | str, m: tarfile.TarInfo) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith(XATTR_PREFIX):
                continue
            name = key[len(XATTR_PREFIX):]
            if name.startswith(FORBIDDEN_XATTRS):
                raise HostileLayer(f"layer refused: member {m.name!r} sets the xattr {name}, "
                                   "which only the kernel's overlayfs may interpret")
            data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, data)
                else:
                    os.setxattr(target, name, data, follow_symlinks=False)
            except OSError as e:
                # a file system or symlink that cannot carry this xattr: skip it, as tar does
                if e.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP):
                    raise

    def finish(self) -> None:
        """Directory mtimes last, deepest first (their children are all written)."""
        for rel in sorted(self.dir_times, key=lambda r: r.count("/"), reverse=True):
            os.utime(self.path(rel), (self.dir_times[rel], self.dir_times[rel]), follow_symlinks=False)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
