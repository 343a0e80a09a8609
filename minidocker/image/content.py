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
from pathlib import Path
from typing import Any, BinaryIO, Callable, ContextManager, Iterator

from minidocker.errors import DigestMismatch, StoreError
from minidocker.fsutil import fsync_dir, locked, make_private_dir, remove_tree, storage_error


def hex_of(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise DigestMismatch(f"unsupported or malformed digest {digest!r}")
    return hexpart


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


class TempBlob:
    """Bytes on their way into ``blobs/``: written to a locked temp file of ``ingest/`` while
    their sha256 is computed. ``publish`` fsyncs the file and renames it to its blob name;
    the lock is let go only after that (``close``), so the file is never an orphan while its
    writer lives."""

    def __init__(self, path: Path):
        import hashlib

        self.path = path
        self.hash = hashlib.sha256()
        self.size = 0
        self._file: BinaryIO = os.fdopen(create_owned(path), "wb")

    def write(self, data: bytes | memoryview) -> None:
        self.hash.update(data)
        self.size += len(data)
        self._file.write(data)

    def publish(self, final: Path) -> None:
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


class Ingest(TempBlob):
    """A blob whose digest we were told: ``write`` bytes, then ``commit`` checks and publishes.

    The ingest file is named after the digest it should become and guarded by a lock on that
    digest, so a second writer of the same blob waits, and a file left by a killed writer is
    simply started over.
    """

    def __init__(self, store: "ContentStore", digest: str, size: int | None):
        self.store, self.digest, self.expected_size = store, digest, size
        super().__init__(store.ingest_dir / hex_of(digest))

    def commit(self) -> Path:
        actual = "sha256:" + self.hash.hexdigest()
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestMismatch(
                f"blob {self.digest[:19]} is truncated or padded: got {self.size} bytes, "
                f"expected {self.expected_size}")
        if actual != self.digest:
            raise DigestMismatch(f"digest mismatch for {self.digest[:19]}: the content hashes to {actual[:19]}",
                                 hint="the registry sent content that is not what it named; nothing was stored")
        final = self.store.path(self.digest)
        self.publish(final)
        self.close()
        return final


class BlobWriter(TempBlob):
    """The other way into the store: content we produce ourselves (``commit``), whose digest
    nobody can tell us in advance. Same rule, in a different order: *ingest, hash, rename*.

    Bytes go to ``ingest/new-<random>`` while their sha256 is computed; ``commit`` fsyncs the
    file and renames it to ``blobs/sha256/<the digest it hashed to>``, under that digest's
    lock. A crash leaves only a ``new-*`` file in ``ingest/``, never a wrong blob."""

    def __init__(self, store: "ContentStore"):
        self.store = store
        self.digest: str | None = None
        super().__init__(store.ingest_dir / f"new-{os.urandom(12).hex()}")

    def commit(self) -> str:
        digest = "sha256:" + self.hash.hexdigest()
        with self.store.lock(digest):
            self.publish(self.store.path(digest))
        self.close()
        self.digest = digest
        return digest


class ContentStore:
    def __init__(self, root: Path):
        self.root = root
        self.blobs_dir = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"
        self.locks_dir = root / "locks"

    def ensure(self) -> None:
        for d in (self.blobs_dir, self.ingest_dir, self.locks_dir):
            make_private_dir(d)

    def path(self, digest: str) -> Path:
        return self.blobs_dir / hex_of(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store",
                             hint="pull the image again to repair the store") from None

    def open(self, digest: str) -> BinaryIO:
        return open(self.path(digest), "rb")

    def lock(self, digest: str):
        """An exclusive lock on one digest: held while its blob (or layer) is produced."""
        return locked(self.locks_dir / f"{hex_of(digest)}.lock")

    def reclaim_ingest(self) -> list[str]:
        """Remove the temp files of ``ingest/`` whose writers are gone (the module docstring)."""
        return reclaim_orphans(self.ingest_dir)

    def ingest(self, digest: str, size: int | None = None) -> ContextManager[Ingest]:
        """Write a blob under ``ingest/``; caller holds ``lock(digest)``. Commits on success."""
        return self._writing(lambda: Ingest(self, digest, size), f"writing blob {digest[:19]}")

    def new_blob(self) -> ContextManager[BlobWriter]:
        """Write a blob whose digest is known only at the end (a layer ``commit`` makes);
        ``writer.digest`` is set once the block ends and the blob is in ``blobs/``."""
        return self._writing(lambda: BlobWriter(self), "writing a new blob")

    @contextlib.contextmanager
    def _writing(self, make: Callable[[], Ingest | BlobWriter], what: str) -> Iterator[Any]:
        """A writer from ``make()`` for the ``with`` block: committed at its end, aborted
        (temp file deleted) if the block fails. What killed writers left goes first."""
        self.ensure()
        self.reclaim_ingest()
        try:
            writer = make()
        except OSError as e:
            raise storage_error(e, what) from None
        try:
            yield writer
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
