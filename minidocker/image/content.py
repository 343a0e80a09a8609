"""The content store: blobs named by their digest, written by *ingest, verify, rename*.

A blob (a manifest, a config or a compressed layer) is first written under ``ingest/`` while
its sha256 is computed; only if the digest (and size) match what was asked for is it renamed
to ``blobs/sha256/<hex>``. So a file under ``blobs/`` is always whole and always what its name
says, whatever crashed or lied on the way::

    ls /var/lib/minidocker/blobs/sha256/ && sha256sum /var/lib/minidocker/blobs/sha256/* | head

**Whose temp file is this?** A writer killed halfway (SIGKILL, a power cut) leaves its temp
file in ``ingest/``, and nothing in the file says whether its writer is still at work. So
every writer holds ``flock(2)`` on its own temp file, from the moment it creates it until it
has renamed it into ``blobs/`` or deleted it. The kernel drops a flock when its holder dies,
however it dies; so a temp file whose lock anyone can take (``LOCK_EX|LOCK_NB``) belongs to
nobody, and is removed: by the next writer (one ``listdir`` of ``ingest/`` each), by the
garbage collector (``rmi``, ``image prune``, ``system prune``). A lock, not a PID: PIDs are
reused. The unpacked layers' temp directories (``layers/.tmp-*``) follow the same rule.
See a live writer's lock: ``cat /proc/locks`` during a pull, next to ``ls -i ingest/``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from minidocker.errors import DigestMismatch, StoreError
from minidocker.fsutil import fsync_dir, locked, make_private_dir, remove_tree, storage_error
from minidocker.paths import Layout

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import BinaryIO

# -- temp files and their owners (the module docstring's rule) ---------------------------------
ATTEMPTS = 100  # create_owned gives up on a name that something it cannot remove holds (a symlink)


def create_owned(path: Path, directory: bool = False) -> int:
    """Create the temp file (or directory) ``path`` and lock it: returns the descriptor that
    holds the flock, to be closed only after the temp file is renamed away or deleted.

    A leftover of a dead writer under the same name is removed first. After locking, check
    that ``path`` still names what we created: a reclaimer may have opened it in the instant
    before our lock (and found the lock free); then it has deleted it, and we start again."""
    for _ in range(ATTEMPTS):
        try:
            if directory:  # 0700 and 0600: other host users never see what is being written
                os.mkdir(path, 0o700)
            else:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            remove_orphan(path, wait=True)
            continue
        if directory:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:  # a reclaimer took our empty directory before we opened it
                continue
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits only for a reclaimer that saw it first
        if _still_names(path, fd):
            return fd
        os.close(fd)
    raise FileExistsError(errno.EEXIST, "something that is no writer's temp file is in the way", str(path))


def remove_orphan(path: Path, wait: bool = False) -> bool:
    """Remove the temp file or directory ``path`` if its writer is gone (its flock is free;
    ``wait``: wait for the lock instead). Only the lock's holder ever removes a temp file, so
    a live writer's file is never touched. True if it was removed."""
    try:  # O_NONBLOCK: a fifo someone put here must not hang us; O_NOFOLLOW: no symlinks
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # gone already, or nothing we could have made
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False  # its writer is alive
        if not _still_names(path, fd):
            return False  # renamed into place, or removed, while we waited: not ours
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            remove_tree(path)
        else:
            os.unlink(path)
        return True
    finally:
        os.close(fd)


def reclaim_orphans(folder: Path, prefix: str = "") -> list[str]:
    """Remove the entries of ``folder`` named ``prefix*`` whose writers are gone; returns
    their names."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return [n for n in sorted(names) if n.startswith(prefix) and remove_orphan(folder / n)]


def _still_names(path: Path, fd: int) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


class Ingest:
    """Bytes on their way into ``blobs/``, the one writer of the content store: written to a
    locked temp file of ``ingest/`` while their sha256 is computed; ``commit`` checks them
    and renames the file to its blob name. containerd's ``Commit(size, expected)``: what is
    expected may be told when the writer opens (a download: the descriptor names the
    digest and size), when it commits, or never (what ``commit`` makes itself, whose digest
    nobody knows before the last byte; then the blob is named by what it hashed to).

    A writer told its digest up front writes ``ingest/<hex>``, and its caller holds that
    digest's lock (``ContentStore.lock``), so a second writer of the same blob waits and a
    file a killed writer left is started over. Any other writes ``ingest/new-<random>`` and
    takes the lock of its digest only to rename. The temp file's own flock is let go only
    after the rename (``close``), so the file is never an orphan while its writer lives."""

    def __init__(self, store: ContentStore, expected: str | None = None, size: int | None = None):
        import hashlib

        self.store, self.expected, self.expected_size = store, expected, size
        self.digest: str | None = None  # what the bytes hashed to, once committed
        layout = store.layout
        self.path = layout.ingest_file(expected) if expected else layout.new_ingest_file(os.urandom(12).hex())
        self.hash = hashlib.sha256()
        self.size = 0
        self._file: BinaryIO = os.fdopen(create_owned(self.path), "wb")

    def write(self, data: bytes | memoryview) -> None:
        self.hash.update(data)
        self.size += len(data)
        self._file.write(data)

    def commit(self, expected: str | None = None, size: int | None = None) -> str:
        """Check the bytes against the expected digest and size (those given here, else
        those given when the writer opened, if any), then publish them; returns the digest."""
        expected = expected or self.expected
        size = self.expected_size if size is None else size
        actual = "sha256:" + self.hash.hexdigest()
        named = (expected or actual)[:19]
        if size is not None and self.size != size:
            raise DigestMismatch(f"blob {named} is truncated or padded: got {self.size} bytes, expected {size}")
        if expected is not None and actual != expected:
            raise DigestMismatch(
                f"digest mismatch for {named}: the content hashes to {actual[:19]}",
                hint="the registry sent content that is not what it named; nothing was stored",
            )
        with contextlib.nullcontext() if self.expected else self.store.lock(actual):
            self._publish(self.store.path(actual))
        self.close()
        self.digest = actual
        return actual

    def _publish(self, final: Path) -> None:
        """fsync, then rename to ``final`` (or, if ``final`` exists, drop ours: same bytes)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        if final.exists():
            os.unlink(self.path)
        else:
            os.rename(self.path, final)
            fsync_dir(final.parent)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()

    def abort(self) -> None:
        """Delete the temp file (a write that will not be committed), then let go of its lock."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.close()


class ContentStore:
    def __init__(self, root: Path):
        self.layout = Layout(root)

    def ensure(self) -> None:
        for d in (self.layout.blobs_dir, self.layout.ingest_dir, self.layout.locks_dir):
            make_private_dir(d)

    def path(self, digest: str) -> Path:
        return self.layout.blob(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(
                f"blob {digest} is missing from the store", hint="pull the image again to repair the store"
            ) from None

    def open(self, digest: str) -> BinaryIO:
        return open(self.path(digest), "rb")

    def lock(self, digest: str):
        """An exclusive lock on one digest: held while its blob (or layer) is produced."""
        return locked(self.layout.blob_lock(digest))

    def reclaim_ingest(self) -> list[str]:
        """Remove the temp files of ``ingest/`` whose writers are gone (the module docstring)."""
        return reclaim_orphans(self.layout.ingest_dir)

    @contextlib.contextmanager
    def ingest(self, expected: str | None = None, size: int | None = None) -> Iterator[Ingest]:
        """An ``Ingest`` for the ``with`` block: committed at its end unless the block did
        (checked against ``expected`` and ``size`` when given: the caller then holds
        ``lock(expected)``), aborted (temp file deleted) if the block fails.
        ``writer.digest`` names the blob afterwards. What killed writers left goes first."""
        what = f"writing blob {expected[:19]}" if expected else "writing a new blob"
        self.ensure()
        self.reclaim_ingest()
        try:
            writer = Ingest(self, expected, size)
        except OSError as e:
            raise storage_error(e, what) from None
        try:
            yield writer
            if writer.digest is None:
                writer.commit()
        except OSError as e:
            writer.abort()
            raise storage_error(e, what) from None
        except BaseException:
            writer.abort()
            raise

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store small bytes (a manifest, a config); verifies ``digest`` when given."""
        import hashlib

        digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
        if self.has(digest):
            return digest
        with self.lock(digest):
            if not self.has(digest):
                with self.ingest(digest, len(data)) as ing:
                    ing.write(data)
        return digest

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(digest))
