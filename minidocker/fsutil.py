"""Crash-safe writes and file locks: the two rules every piece of state on disk follows.

1. *Atomic replace*: write the new bytes to a temp file in the same directory, ``fsync`` it,
   ``rename`` it over the old name, ``fsync`` the directory. ``rename(2)`` is atomic within a
   file system, so a reader (or a crash) sees the old file or the new one, never half of one.
2. *One writer at a time*: ``flock(2)`` an exclusive lock on a lock file around every
   read-modify-write. The kernel drops the lock when the process dies, even by SIGKILL, so a
   killed ``minidocker`` never leaves a stale lock behind.
3. *Private directories*: the store is root's alone (``make_private_dir``, see paths.py).

Try it: ``flock /var/lib/minidocker/lock sleep 30`` in one shell makes ``minidocker pull``
wait in another.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from minidocker.errors import StoreError

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import Any, BinaryIO


def storage_error(e: OSError, what: str) -> StoreError:
    """Turn an OSError into one clear line (disk full gets its own words)."""
    if e.errno == errno.ENOSPC:
        return StoreError(
            f"no space left on device while {what}",
            hint="free some disk space (minidocker rmi, minidocker image prune, minidocker container prune) and retry",
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError(
            f"permission denied while {what}: {e.filename or ''}".rstrip(": "),
            hint="minidocker needs root (sudo) to write its store",
        )
    return StoreError(f"{e.strerror or e} while {what}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: Path, mode: int = 0o644, durable: bool = True) -> Iterator[BinaryIO]:
    """Rule 1 for content too big to hold in memory: the ``with`` block writes into a temp
    file beside ``path`` (through the file object, or its ``fileno()`` after a flush),
    which replaces ``path`` only once the block has ended without an error. An error
    removes the temp file and leaves ``path`` as it was. ``path``'s directory must exist.
    ``durable`` False skips the two fsyncs: for a cache whose reader checks what it reads
    (a power cut may then leave the name with fewer bytes, or none, never other ones)."""
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)  # made 0600, so no one reads it half-written
            if durable:
                os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)  # and the new name is on disk too


def temp_beside(path: Path) -> tuple[int, str]:
    """A new, empty, 0600 file beside ``path``, opened for writing: ``.NAME.RANDOM.tmp``.
    O_EXCL makes the name ours alone and O_NOFOLLOW refuses a planted symlink (what
    ``tempfile.mkstemp`` does, without importing tempfile and random on every start)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, mode) as f:
        f.write(data)


def write_json(path: Path, obj: Any, mode: int = 0o644) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), mode)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except ValueError as e:
        raise StoreError(f"{path} is corrupt: {e}") from None


@contextlib.contextmanager
def locked(path: Path, shared: bool = False) -> Iterator[None]:
    """Hold ``flock`` on ``path`` (created if missing) for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last fd releases the lock


def remove_tree(path: Path) -> None:
    """Remove a directory tree we own (an unpacked layer, a container's files), bottom-up
    through directory fds (os.fwalk): a symlink is removed, never followed. An entry gone
    meanwhile is no error; a read-only directory (from a layer) is made writable and its
    entry removed once more. (Not shutil.rmtree: importing shutil, with bz2 and lzma, costs
    a ``run --rm`` more than removing its few files does.)"""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    if not path.exists():
        return
    for _, dirs, files, fd in os.fwalk(path, topdown=False):
        for name in files:
            remove_entry(os.unlink, name, fd, path)
        for name in dirs:
            remove_entry(os.rmdir, name, fd, path)
    remove_entry(os.rmdir, str(path), None, path)


def remove_entry(remove: Any, name: str, dir_fd: int | None, tree: Path) -> None:
    """``remove`` (os.unlink or os.rmdir) one entry of the directory ``dir_fd`` of ``tree``."""
    try:
        remove(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except NotADirectoryError:  # a symlink to a directory: fwalk lists it among the directories
        os.unlink(name, dir_fd=dir_fd)
    except PermissionError as e:
        try:
            os.chmod(dir_fd if dir_fd is not None else os.path.dirname(name), 0o700)
            remove(name, dir_fd=dir_fd)
        except OSError:
            raise StoreError(f"cannot remove {name} in {tree}: {e.strerror}") from None
    except OSError as e:
        raise StoreError(f"cannot remove {name} in {tree}: {e.strerror}") from None


def mkdir_apart(path: Path, mode: int = 0o777) -> None:
    """``mkdir PATH``, asking the file system to place it, and the tree that will grow under
    it, in a block group of its own rather than next to its parent.

    Why: on ext4 without a journal (this project's machines), ``ext4_new_inode`` will not
    reuse an inode freed less than a minute ago (five, while its inode table block is
    dirty): it scans the group's free bits from the start and skips each recently deleted
    one (``recently_deleted()`` in fs/ext4/ialloc.c). New files go to their directory's
    group, and a new directory to its parent's, so a layer unpacked where another tree was
    just deleted (a removed image, the previous round of a benchmark) pays that scan on
    every file it creates: 0.2-0.3 ms a file instead of about 10 us, so a Debian layer of
    6,700 entries takes 2-4 s where it takes 1 s in a fresh group.
    ext4's Orlov allocator spreads the subdirectories of a directory flagged
    ``FS_TOPDIR_FL`` (``chattr +T``) over the groups with the most room and the fewest
    directories, starting at a hash of the name: so the parent is flagged for a moment and
    PATH is made under a random name, then renamed (its inode keeps its group). File
    systems without the flag (tmpfs, xfs, btrfs, overlayfs) make PATH the plain way.
    PATH must not exist yet (``FileExistsError``, as mkdir). See it: ``ls -i`` of two
    layers' files (an inode's group is ``(ino - 1) // inodes per group``), ``lsattr -d``."""
    from minidocker.linux.inodeflags import FS_TOPDIR_FL, get_inode_flags, set_inode_flags

    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            flags = get_inode_flags(fd)
            set_inode_flags(fd, flags | FS_TOPDIR_FL)
        except OSError:  # ENOTTY, EOPNOTSUPP, EINVAL: no such flag here
            os.mkdir(path, mode)
            return
        try:
            if os.path.lexists(path):  # rename(2) would replace an empty directory
                raise FileExistsError(errno.EEXIST, "File exists", str(path))
            tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}"
            os.mkdir(tmp, mode)
            try:
                os.rename(tmp, path)
            except OSError:
                os.rmdir(tmp)
                raise
        finally:
            if not flags & FS_TOPDIR_FL:
                set_inode_flags(fd, flags)
    finally:
        os.close(fd)


def make_private_dir(path: Path, mode: int = 0o700, group: int | None = None) -> Path:
    """``mkdir -p PATH`` for the store, closed to other users.

    Each directory this makes is created 0700 (never wider, not even for a moment), given
    ``group`` if one is named, then set to exactly ``mode``: mkdir(2) subtracts the umask
    from the mode it is given, chmod(2) does not, and ``Path.mkdir(mode=)`` leaves the
    parents it makes at the umask's mercy. A PATH that exists already keeps its owner and
    loses any permission bit beyond ``mode`` (see ``restrict_dir``)."""
    path = Path(path)
    if not path.parent.is_dir():
        make_private_dir(path.parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        restrict_dir(path, mode)
        return path
    if group is not None:
        os.chown(path, -1, group)
    os.chmod(path, mode)
    return path


def restrict_dir(path: Path, mode: int = 0o700) -> None:
    """Take away from an existing directory every permission bit that ``mode`` lacks (a
    store made by an older minidocker had 0755 everywhere); one stat, and a chmod only if
    something must go. A path that is not a directory is refused, as mkdir -p would."""
    st = os.stat(path)  # follows a symlinked store root to the real directory, as chmod does
    if not stat.S_ISDIR(st.st_mode):
        raise FileExistsError(errno.EEXIST, "File exists (not a directory)", str(path))
    if stat.S_IMODE(st.st_mode) & ~mode:
        os.chmod(path, stat.S_IMODE(st.st_mode) & mode)


def disk_usage(*trees: Path) -> int:
    """The bytes of disk the files under ``trees`` take, as ``du -s`` counts them: allocated
    blocks (``st_blocks`` is in 512-byte units whatever the file system's block size), so a
    sparse file counts what it holds and a file removed meanwhile counts nothing."""
    total = 0
    for tree in trees:
        for dirpath, _dirs, files in os.walk(tree):
            for f in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total
