"""``pull``: from a reference to unpacked layers in the store, every byte verified.

The steps, in order (each is one function below)::

    resolve_manifest   GET the manifest; an index (manifest list) -> the one for our platform
    fetch_config       GET the config blob: its rootfs.diff_ids name the unpacked layers
    fetch_layer        for each layer not yet in the store, in parallel:
                         HTTP body -> ingest/ (sha256 of the compressed bytes)
                                   -> gunzip / zstd (a thread of its own)
                                   -> sha256 of the tar (must equal the diff_id)
                                   -> apply_diff into layers/.tmp-<chain>/diff
                       then verify both digests and rename into layers/<chain>/
                       (the store's create -> apply_diff -> commit)
    record_image       tag -> image id in images/index.json (under the store lock)

The layer is streamed: it is unpacked while it downloads and is never held whole in memory
or written twice. Nothing becomes visible under its final name until its digests check out.
Nothing is taken on trust in size either: the download stops at the descriptor's size, and
the unpacking at the expansion limit and the free-space reserve of ``limits.py`` (a layer
that breaks one is thrown away, its ingest file with it).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, cast

from minidocker.errors import DigestMismatch, MinidockerError, PullAborted, RegistryError
from minidocker.image import manifest as mf
from minidocker.image.limits import ByteStream, LayerBudget, UnpackLimits
from minidocker.image.reference import Reference
from minidocker.image.registry import RegistryClient
from minidocker.image.store import ImageStore

if TYPE_CHECKING:
    from minidocker.lazy.layers import LazySettings

PARALLEL_LAYERS = 3
READ_SIZE = 1 << 20


@dataclass
class PullEvent:
    """One line of progress: ``id`` is a short layer digest, or "" for the whole pull."""

    id: str
    status: str
    current: int = 0
    total: int = 0


Progress = Callable[[PullEvent], None]


@dataclass
class PullResult:
    ref: Reference
    image_id: str
    digest: str  # the digest the registry names the image by (the index's, if any)
    downloaded: bool  # False when every layer was already in the store
    lazy: list[int] = field(default_factory=list)  # the layers left in the registry (pull --lazy), by index


def _noop(event: PullEvent) -> None:
    pass


class ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks, copying each chunk to ``sink``."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        sink: Callable[[bytes], None] | None,
        on_bytes: Callable[[int], None],
        abort: threading.Event,
    ):
        self.chunks, self.sink, self.on_bytes, self.abort = chunks, sink, on_bytes, abort
        self.pending = memoryview(b"")
        self.total = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        data = super().read(size)
        assert data is not None, "readinto blocks for data, so read never returns None"
        return data

    def readinto(self, buf) -> int:
        while not self.pending:
            if self.abort.is_set():
                raise PullAborted("pull aborted")
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            if self.sink:
                self.sink(chunk)
            self.total += len(chunk)
            self.on_bytes(self.total)
            self.pending = memoryview(chunk)
        n = min(len(buf), len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def drain(self) -> None:
        while self.readinto(bytearray(READ_SIZE)):
            pass


class HashingReader(io.RawIOBase):
    """Passes reads through and computes the sha256 of everything read (the diff_id); each
    read counts against ``budget``'s expansion limit (the bytes of the uncompressed tar)."""

    def __init__(self, inner: ByteStream, budget: LayerBudget | None = None):
        self.inner = inner
        self.hash = hashlib.sha256()
        self.budget = budget or LayerBudget.unlimited()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        data = self.inner.read(len(buf))
        n = len(data)
        self.budget.count_expanded(n)
        buf[:n] = data
        self.hash.update(data)
        return n

    def drain(self) -> None:
        while self.readinto(bytearray(READ_SIZE)):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def open_decompressed(raw: ByteStream, compression: str) -> ByteStream:
    """The uncompressed tar stream of a layer."""
    if compression == "gzip":
        from isal import igzip_threaded  # ISA-L's gzip, decompressing in its own thread

        return igzip_threaded.open(raw, "rb", threads=1, block_size=READ_SIZE)
    if compression == "zstd":
        import zstandard

        # zstandard's stubs ask for IO[bytes]; the reader only ever calls raw.read(n)
        source = cast(IO[bytes], raw)
        return zstandard.ZstdDecompressor().stream_reader(source, read_size=READ_SIZE, read_across_frames=True)
    return raw


# Errors a broken compressed or tar stream raises, deep in the decoders.
def _decode_errors() -> tuple[type[BaseException], ...]:
    import zstandard
    from isal import igzip

    return (EOFError, zlib.error, tarfile.TarError, zstandard.ZstdError, igzip.BadGzipFile, ValueError)


def resolve_manifest(
    reg: RegistryClient, ref: Reference, platform: mf.Platform, progress: Progress
) -> tuple[bytes, str, str, bytes | None]:
    """Return ``(manifest bytes, manifest digest, repo digest, index bytes or None)``.

    The repo digest is what the registry names the image by: the index's digest when the
    tag points at an index, as ``docker images --digests`` shows it."""
    raw, media_type, digest = reg.get_manifest(ref)
    if media_type in mf.INDEX_TYPES:
        entry = mf.select_platform(raw, platform)
        progress(PullEvent("", f"Resolved {ref.familiar()} for {platform} to {entry.digest[:19]}"))
        index_raw = raw
        raw, media_type, mdigest = reg.get_manifest(ref, entry.digest)
        if media_type in mf.INDEX_TYPES:
            raise RegistryError("nested manifest lists are not supported")
        return raw, mdigest, digest, index_raw
    if media_type not in mf.MANIFEST_TYPES:
        raise RegistryError(
            f"{ref.familiar()} is a {media_type or 'document of unknown type'}, not an image manifest",
            hint="only OCI and Docker schema 2 images can be pulled",
        )
    return raw, digest, digest, None


def fetch_config(reg: RegistryClient, store: ImageStore, ref: Reference, desc: mf.Descriptor) -> bytes:
    if store.content.has(desc.digest):
        return store.content.read(desc.digest)
    return reg.get_blob(ref, desc.digest, desc.size)


def fetch_layer(
    reg: RegistryClient,
    store: ImageStore,
    ref: Reference,
    desc: mf.Descriptor,
    diff_id: str,
    chain_id: str,
    parent: str | None,
    progress: Progress,
    abort: threading.Event,
    limits: UnpackLimits,
) -> bool:
    """Download, verify and unpack one layer. Returns False if it was already there."""
    sid = desc.digest[7:19]
    budget = LayerBudget(limits, store.layout.layers_dir, f"layer {sid}", desc.size)
    with store.layer_lock(chain_id):
        if store.has_layer(chain_id):  # another pull unpacked it while we waited
            progress(PullEvent(sid, "Already exists", desc.size, desc.size))
            return False
        with store.content.lock(desc.digest), store.create(chain_id, parent) as layer:
            compression = mf.compression_of(desc.media_type)
            with contextlib.ExitStack() as stack:
                if store.content.has(desc.digest):  # verified when it was stored
                    blob = stack.enter_context(store.content.open(desc.digest))
                    chunks, sink = iter(lambda: blob.read(READ_SIZE), b""), None
                else:
                    budget.check_free_space(desc.size)  # room for the blob in ingest/, above the reserve
                    chunks = stack.enter_context(reg.open_blob(ref, desc.digest, desc.size))
                    sink = stack.enter_context(store.content.ingest(desc.digest, desc.size)).write
                raw = ChunkReader(chunks, sink, lambda n: progress(PullEvent(sid, "Downloading", n, desc.size)), abort)
                decompressed = stack.enter_context(open_decompressed(raw, compression))
                tar = HashingReader(decompressed, budget)
                try:
                    stats = layer.apply_diff(io.BufferedReader(tar, READ_SIZE), budget)
                    tar.drain()  # the tar's end-of-archive padding counts for the diff_id
                    raw.drain()  # so does the compressed stream's trailer for the digest
                except _decode_errors() as e:
                    raise decode_failure(e, decompressed, raw, sink, desc, compression) from None
                progress(PullEvent(sid, "Verifying", desc.size, desc.size))
            # leaving the ExitStack verified the compressed digest and published the blob
            if tar.digest != diff_id:
                raise DigestMismatch(
                    f"layer {sid} unpacks to {tar.digest[:19]}, but the image config names diff_id {diff_id[:19]}"
                )
            meta = {"diff_id": diff_id, "digest": desc.digest, "media_type": desc.media_type}
            layer.commit({**meta, "size": stats.size, "entries": stats.entries})
    progress(PullEvent(sid, "Pull complete", desc.size, desc.size))
    return True


def decode_failure(
    e: BaseException, decompressed, raw: ChunkReader, sink, desc: mf.Descriptor, compression: str
) -> MinidockerError:
    """What a broken compressed or tar stream means: if the compressed bytes do not hash to
    the layer's digest, the registry sent the wrong content (say so); else the layer itself
    is not a valid tar of its kind."""
    sid = desc.digest[7:19]
    with contextlib.suppress(Exception):
        decompressed.close()  # stop the decoder thread before we read on
        raw.drain()  # finish the compressed digest: a mismatch explains it best
    ingest_hash = getattr(getattr(sink, "__self__", None), "hash", None)
    if ingest_hash is not None and "sha256:" + ingest_hash.hexdigest() != desc.digest:
        return DigestMismatch(f"layer {sid} is corrupt: its content does not match digest {desc.digest[:19]} ({e})")
    return RegistryError(f"layer {sid} is not a valid {compression} tar: {e}")


def pull_image(
    store: ImageStore,
    ref: Reference,
    platform: mf.Platform | None = None,
    progress: Progress | None = None,
    explicit_platform: bool = False,
    lazy: LazySettings | None = None,
) -> PullResult:
    """``pull``; with ``lazy`` (its settings), big layers that can be read by range stay in
    the registry: only their tables of contents are fetched (lazy/pull.py)."""
    progress = progress or _noop
    platform = platform or mf.Platform.host()
    limits = UnpackLimits.from_env()  # a bad setting fails before anything is fetched
    store.ensure()
    with RegistryClient(ref.domain) as reg, store.gc_guard():
        progress(PullEvent("", f"Pulling from {ref.familiar_name}"))
        raw, manifest_digest, repo_digest, index_raw = resolve_manifest(reg, ref, platform, progress)
        index_digest = repo_digest if index_raw is not None else None
        manifest = mf.parse_manifest(raw)
        config_raw = fetch_config(reg, store, ref, manifest.config)
        config = json.loads(config_raw)
        check_config(ref, config, manifest, platform, explicit_platform and index_digest is None)
        diff_ids: list[str] = config["rootfs"]["diff_ids"]
        chains = mf.chain_ids(diff_ids)
        todo = layers_to_fetch(store, manifest, chains, progress)
        lazily: list[int] = []
        if lazy is not None and todo:
            from minidocker.lazy.pull import lazy_layers

            whole = lazy_layers(reg, store, ref, manifest, manifest_digest, diff_ids, chains, todo, lazy, progress)
            lazily, todo = [i for i in todo if i not in whole], whole
        if todo:
            jobs = [(manifest.layers[i], diff_ids[i], chains[i], chains[i - 1] if i else None) for i in todo]
            fetch_layers(reg, store, ref, jobs, progress, limits)
        store.content.put(config_raw, manifest.config.digest)
        store.content.put(raw, manifest_digest)
        if index_digest:
            assert index_raw is not None, "an index digest comes only with the index bytes"
            store.content.put(index_raw, index_digest)
        image_id = manifest.config.digest
        store.record_image(
            image_id,
            manifest_digest,
            str(ref) if ref.tag and not ref.digest else None,
            f"{ref.name}@{repo_digest}",
            index_digest,
        )
    progress(PullEvent("", f"Digest: {repo_digest}"))
    return PullResult(ref, image_id, repo_digest, bool(todo or lazily), lazily)


def layers_to_fetch(store: ImageStore, manifest: mf.Manifest, chains: list[str], progress: Progress) -> list[int]:
    """The indexes of the layers not yet in the store (each announced, as docker does)."""
    todo = []
    for i, desc in enumerate(manifest.layers):
        if store.has_layer(chains[i]):
            progress(PullEvent(desc.digest[7:19], "Already exists", desc.size, desc.size))
        else:
            progress(PullEvent(desc.digest[7:19], "Pulling fs layer", 0, desc.size))
            todo.append(i)
    return todo


def fetch_layers(
    reg: RegistryClient,
    store: ImageStore,
    ref: Reference,
    jobs: list[tuple[mf.Descriptor, str, str, str | None]],
    progress: Progress,
    limits: UnpackLimits,
) -> None:
    """``fetch_layer`` for each (descriptor, diff_id, chain_id, parent) in parallel threads;
    the first real failure stops the others (they see ``abort``) and is raised."""
    abort = threading.Event()
    with ThreadPoolExecutor(min(PARALLEL_LAYERS, len(jobs)), thread_name_prefix="layer") as pool:
        futures = [
            pool.submit(fetch_layer, reg, store, ref, desc, diff_id, chain, parent, progress, abort, limits)
            for desc, diff_id, chain, parent in jobs
        ]
        try:
            errors = []
            for f in futures:
                try:
                    f.result()
                except BaseException as e:  # stop the other layers, report the first cause
                    abort.set()
                    errors.append(e)
            real = [e for e in errors if not isinstance(e, PullAborted)]
            if real or errors:
                raise (real or errors)[0]
        except BaseException:
            abort.set()
            raise


def check_config(
    ref: Reference, config: dict[str, Any], manifest: mf.Manifest, platform: mf.Platform, check_platform: bool
) -> None:
    diff_ids = (config.get("rootfs") or {}).get("diff_ids")
    if not isinstance(diff_ids, list) or len(diff_ids) != len(manifest.layers):
        raise RegistryError(
            f"the config of {ref.familiar()} names {len(diff_ids or [])} layers but its "
            f"manifest has {len(manifest.layers)}"
        )
    if check_platform and not platform.matches(config):
        actual = mf.Platform(
            config.get("os", "?"), mf.normalize_arch(config.get("architecture", "?")), config.get("variant")
        )
        raise RegistryError(
            f"image with reference {ref.familiar()} was found but does not match the "
            f"specified platform: wanted {platform}, actual: {actual}"
        )
