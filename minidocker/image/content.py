"""The content store: blobs named by their digest, written by *ingest, verify, rename*.

A blob (a manifest, a config or a compressed layer) is first written under ``ingest/`` while
its sha256 is computed; only if the digest (and size) match what was asked for is it renamed
to ``blobs/sha256/<hex>``. So a file under ``blobs/`` is always whole and always what its name
says, whatever crashed or lied on the way::

    ls /var/lib/minidocker/blobs/sha256/ && sha256sum /var/lib/minidocker/blobs/sha256/* | head
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO, Iterator

from minidocker.errors import DigestMismatch, StoreError
from minidocker.fsutil import fsync_dir, locked, make_private_dir, storage_error


def hex_of(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise DigestMismatch(f"unsupported or malformed digest {digest!r}")
    return hexpart


class Ingest:
    """A blob being written: ``write`` bytes, then ``commit`` checks and publishes them.

    The ingest file is named after the digest it should become and guarded by a lock on that
    digest, so a second writer of the same blob waits, and a file left by a killed writer is
    simply started over.
    """

    def __init__(self, store: "ContentStore", digest: str, size: int | None):
        self.store, self.digest, self.expected_size = store, digest, size
        self.path = store.ingest_dir / hex_of(digest)
        import hashlib

        self.hash = hashlib.sha256()
        self.size = 0
        self._file: BinaryIO = open(self.path, "wb")

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        self.size += len(data)
        self._file.write(data)

    def commit(self) -> Path:
        actual = "sha256:" + self.hash.hexdigest()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestMismatch(
                f"blob {self.digest[:19]} is truncated or padded: got {self.size} bytes, "
                f"expected {self.expected_size}")
        if actual != self.digest:
            raise DigestMismatch(f"digest mismatch for {self.digest[:19]}: the content hashes to {actual[:19]}",
                                 hint="the registry sent content that is not what it named; nothing was stored")
        final = self.store.path(self.digest)
        os.rename(self.path, final)
        fsync_dir(final.parent)
        return final

    def abort(self) -> None:
        _discard(self._file, self.path)


def _discard(file, path: Path) -> None:
    """Close and delete a temporary file of ingest/ (a write that will not be committed)."""
    with contextlib.suppress(OSError):
        file.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class BlobWriter:
    """The other way into the store: content we produce ourselves (``commit``), whose digest
    nobody can tell us in advance. Same rule, in a different order: *ingest, hash, rename*.

    Bytes go to ``ingest/new-<random>`` while their sha256 is computed; ``commit`` fsyncs the
    file and renames it to ``blobs/sha256/<the digest it hashed to>``, under that digest's
    lock. A crash leaves only a ``new-*`` file in ``ingest/``, never a wrong blob."""

    def __init__(self, store: "ContentStore"):
        self.store = store
        self.path = store.ingest_dir / f"new-{os.urandom(12).hex()}"
        import hashlib

        self.hash = hashlib.sha256()
        self.size = 0
        self.digest: str | None = None
        self._file: BinaryIO = open(self.path, "xb")

    def write(self, data: bytes | memoryview) -> None:
        self.hash.update(data)
        self.size += len(data)
        self._file.write(data)

    def commit(self) -> str:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = "sha256:" + self.hash.hexdigest()
        final = self.store.path(digest)
        with self.store.lock(digest):
            if final.exists():  # the same bytes were stored before: keep the old file
                os.unlink(self.path)
            else:
                os.rename(self.path, final)
                fsync_dir(final.parent)
        self.digest = digest
        return digest

    def abort(self) -> None:
        _discard(self._file, self.path)


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

    @contextlib.contextmanager
    def ingest(self, digest: str, size: int | None = None) -> Iterator[Ingest]:
        """Write a blob under ``ingest/``; caller holds ``lock(digest)``. Commits on success."""
        self.ensure()
        try:
            ing = Ingest(self, digest, size)
        except OSError as e:
            raise storage_error(e, f"writing blob {digest[:19]}") from None
        try:
            yield ing
            ing.commit()
        except OSError as e:
            ing.abort()
            raise storage_error(e, f"writing blob {digest[:19]}") from None
        except BaseException:
            ing.abort()
            raise

    @contextlib.contextmanager
    def new_blob(self) -> Iterator["BlobWriter"]:
        """Write a blob whose digest is known only at the end (a layer ``commit`` makes);
        ``writer.digest`` is set once the block ends and the blob is in ``blobs/``."""
        self.ensure()
        try:
            writer = BlobWriter(self)
        except OSError as e:
            raise storage_error(e, "writing a new blob") from None
        try:
            yield writer
            writer.commit()
        except OSError as e:
            writer.abort()
            raise storage_error(e, "writing a new blob") from None
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
