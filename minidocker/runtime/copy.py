"""``cp``: files between a container and the host, as a tar stream through a pipe.

The container's side of the copy runs in a child process whose root directory *is* the
container's filesystem, so every path it follows, symlinks included, resolves inside the
container and never on the host (the classic ``docker cp`` escape is a symlink such as
``/data -> /`` followed by the host):

* a running container: the child joins its mount namespace with setns(2), which also sets
  the child's root and working directory to that namespace's root: the container's /;
* a stopped one: the child unshares a mount namespace of its own, mounts the container's
  overlay (image layers, upper dir) and its volumes and binds there, and chroots into it.

The files travel as a tar stream over a pipe; the receiving side unpacks it with Python's
``tar`` extraction filter (no absolute names, no ``..``, nothing written outside the
destination, not even through a symlink the stream itself made).

Copied files belong to whoever copies them (out: the host user; in: the container's root),
unless ``-a`` (archive mode) asks to keep the owners the files have (shifted through the
container's ID map when it has one). ``-`` stands for a tar stream instead of a host path:
``cp - c1:/dir`` unpacks the tar on stdin into the container's directory, ``cp c1:/path -``
writes the tar to stdout, as docker's.

See it: ``minidocker cp c1:/etc/os-release .`` and ``minidocker cp notes.txt c1:/tmp/``;
``minidocker cp c1:/etc - | tar -tv``.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from minidocker.errors import ChildFailed, CopyError
from minidocker.linux import procfs
from minidocker.linux import syscalls as sc
from minidocker.runtime.container import Container, alive
from minidocker.runtime.forked import run_in_child


def _enter_container_root(c: Container, lowerdirs: list[Path]) -> None:
    """In the child: make the container's filesystem our root (see the module docstring)."""
    pid = c.state.get("Pid")
    if c.running and alive(pid, c.state.get("PidStartTime")):
        assert pid is not None  # alive() is false without a PID
        fd = procfs.open_namespace(pid, "mnt")
        sc.setns(fd, sc.CLONE_NEWNS, why="the container's files, its / as ours")
        os.close(fd)
        return
    from minidocker.runtime import rootfs

    sc.unshare(sc.CLONE_NEWNS)
    rootfs.make_mounts_private()
    plan = rootfs.RootfsPlan(
        lowerdirs=[str(p) for p in lowerdirs],
        upper=str(c.layout.upper),
        work=str(c.layout.work),
        merged=str(c.layout.merged),
    )
    rootfs.mount_overlay(plan)
    from minidocker.runtime.volumes import rootfs_volumes

    # its binds and volumes too, where the container would see them (docker's cp reaches into
    # them); a tmpfs mount would be a new, empty one that goes with us: left out
    plan.volumes = [v for v in rootfs_volumes(c, copy=False) if v.fstype is None]
    rootfs.mount_volumes(plan)
    sc.chroot(plan.merged)
    os.chdir("/")


def _run(c: Container, lowerdirs: list[Path], work: Callable[[], None], parent_side: Callable[[], None]) -> None:
    """``work`` in a child whose root is the container's filesystem, ``parent_side`` here, at
    once (they talk through a pipe); any failure becomes ``CopyError``, the child's first."""

    def in_container() -> int:
        _enter_container_root(c, lowerdirs)
        try:
            work()
        except BrokenPipeError:
            return 1  # the parent side stopped reading: its error is the one to report
        except OSError as e:
            raise CopyError(_os_error_text(e)) from None
        except tarfile.TarError as e:  # cp - C:DIR: what came on stdin is not a tar
            raise CopyError(f"the copy failed: {e}") from None
        return 0

    try:
        code = run_in_child(in_container, parent_side)
    except ChildFailed as e:
        raise CopyError(e.message) from None
    except OSError as e:
        raise CopyError(_os_error_text(e)) from None
    except tarfile.TarError as e:
        raise CopyError(f"the copy failed: {e}") from None
    if code != 0:
        raise CopyError("the copy failed")


def _os_error_text(e: OSError) -> str:
    """One line that names the path: "cannot copy to /etc/x: Not a directory"."""
    return f"cannot copy to {e.filename}: {e.strerror}" if e.filename else f"the copy failed: {e.strerror or e}"


def _shift(c: Container, sign: int) -> tuple[int, int]:
    """What archive mode adds to the owners in the tar: nothing without a user namespace;
    with ``--userns=auto``, +the map's first host ID going in, -it coming out."""
    if not c.spec.idmap:
        return 0, 0
    return sign * c.spec.idmap["uid"], sign * c.spec.idmap["gid"]


def copy_out(c: Container, lowerdirs: list[Path], src: str, dest: Path | BinaryIO, archive: bool = False) -> None:
    """``cp CONTAINER:SRC DEST``: a file or directory of the container to the host; DEST a
    stream (``cp C:SRC -``): the tar itself, written there."""
    r, w = os.pipe()
    contents_only = src.endswith("/.")
    src_path = posixpath.normpath("/" + src)
    top = "." if contents_only else (posixpath.basename(src_path) or ".")

    def work():
        os.close(r)
        if not os.path.lexists(src_path):
            raise CopyError(f"Could not find the file {src} in container {c.name}")
        with os.fdopen(w, "wb") as out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as t:
            t.add(src_path, arcname=top, recursive=True)

    def parent_side():
        os.close(w)
        with os.fdopen(r, "rb") as f:
            if isinstance(dest, Path):
                owners = _Owners(keep=archive, shift=_shift(c, -1), default=(os.getuid(), os.getgid()))
                _extract(f, top, dest, contents_only, owners)
            else:
                shutil.copyfileobj(f, dest, 1 << 20)
                dest.flush()

    _run(c, lowerdirs, work, parent_side)


def copy_in(c: Container, lowerdirs: list[Path], src: Path | BinaryIO, dest: str, archive: bool = False) -> None:
    """``cp SRC CONTAINER:DEST``: a file or directory of the host into the container; SRC a
    stream (``cp - C:DEST``): a tar, unpacked into DEST, which must be a directory."""
    from_tar = not isinstance(src, Path)
    if isinstance(src, Path) and not src.exists():
        raise CopyError(f"no such file or directory: {src}")
    contents_only = from_tar or str(src).endswith("/.")
    top = "." if contents_only or not isinstance(src, Path) else src.name
    # owned by the container's root: host root, or with --userns=auto the block's first ID
    owners = _Owners(keep=archive, shift=_shift(c, +1), default=_shift(c, +1))
    where = Path(posixpath.normpath("/" + dest.lstrip("/")))
    r, w = os.pipe()

    def work():
        os.close(w)
        if from_tar and not where.is_dir():
            what = "is not a directory" if os.path.lexists(where) else "does not exist"
            raise CopyError(f"extraction point {dest} {what} in container {c.name}")
        with os.fdopen(r, "rb") as f:
            _extract(f, top, where, contents_only, owners)

    def parent_side():
        os.close(r)
        with os.fdopen(w, "wb") as out:
            if isinstance(src, Path):
                with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as t:
                    t.add(str(src), arcname=top, recursive=True)
            else:
                shutil.copyfileobj(src, out, 1 << 20)

    _run(c, lowerdirs, work, parent_side)


@dataclass
class _Owners:
    """Who owns what ``_extract`` writes: ``default`` for every file, or, in archive mode
    (``keep``), the owners the tar names, plus ``shift`` (a user namespace's offset)."""

    keep: bool
    shift: tuple[int, int]
    default: tuple[int, int]

    def of(self, m: tarfile.TarInfo) -> tuple[int, int]:
        return (m.uid + self.shift[0], m.gid + self.shift[1]) if self.keep else self.default


def _extract(stream, top: str, dest: Path, contents_only: bool, owners: _Owners | None = None) -> None:
    """Unpack a ``cp`` tar by docker's rules: an existing directory receives the copy (or,
    for ``SRC/.``, its contents); otherwise the copy is created *as* ``dest``."""
    if dest.is_dir() and not contents_only or dest.is_dir():
        base, rename = dest, None
    else:
        if str(dest).endswith("/"):
            raise CopyError(f"destination directory {dest} does not exist")
        if not dest.parent.is_dir():
            raise CopyError(f"destination directory {dest.parent} does not exist")
        base, rename = dest.parent, dest.name
    with tarfile.open(fileobj=stream, mode="r|") as t:
        for m in t:
            name = m.name
            if rename is not None:
                parts = name.split("/", 1)
                if parts[0] in (top, "."):
                    name = rename + ("/" + parts[1] if len(parts) > 1 else "")
            elif top == "." and name == ".":
                continue
            if (
                rename is not None
                and name == rename
                and m.isdir()
                and (base / rename).exists()
                and not (base / rename).is_dir()
            ):
                raise CopyError(f'cannot overwrite non-directory "{dest}" with directory "{top}"')
            m.name = name
            m.uid, m.gid = owners.of(m) if owners else (os.getuid(), os.getgid())  # docker: the copier's, unless -a
            m.uname = m.gname = ""
            # "tar": no absolute names, no "..", nothing written outside ``base`` (through a
            # symlink unpacked earlier either); symlinks themselves are kept as they are
            try:
                t.extract(m, base, filter="tar", set_attrs=True)
            except tarfile.FilterError as e:
                raise CopyError(f"refused to copy {m.name}: {e}") from None
