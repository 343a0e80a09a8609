"""commit: a layer tar -> a new image in the store (blob, unpacked layer, config, manifest, tag).

The steps, in order (``create_image``)::

    write_layer      the tar, produced once as the walk of the upper dir goes (each entry
                     is written before the next is looked for), goes three ways at once:
                       sha256 of the tar            -> diff_id (names the unpacked layer)
                       a queue -> the compressing thread: gzip (ISA-L) or zstd
                                  -> sha256 -> ingest/new-*  -> blobs/sha256/<digest>
                       a pipe -> apply_diff (a thread) -> layers/.tmp-new-*/diff
                     then layers/.tmp-new-* is renamed to layers/<chain-id>/ (the store's
                     create(None, parent) -> apply_diff -> commit, named by what it holds)
    new config       the parent's config + the changes; rootfs.diff_ids + [diff_id];
                     one more history entry; "created" now
    new manifest     the parent's layers + the new one, in the parent's media-type family
                     (Docker schema 2 or OCI); config and manifest stored by digest. A zstd
                     layer (``--compression zstd``) has no Docker schema 2 type, so it makes
                     an OCI manifest: the parent's gzip layers keep their blobs, under OCI's
                     name for the same bytes
    record_image     images/index.json (under the store lock): the ID, the tag, the parent

Applying the tar we just wrote (rather than copying the upper dir) keeps the store's
invariant simple: ``layers/<chain-id>/diff`` is exactly what ``apply_layer`` makes of the
blob, as after a pull, and it costs no second read of the data: the apply thread reads the
tar from a pipe while it is being written. So three threads work at once: the walk that
reads files and hashes them, the compression, and the unpacking; their writes, the
hashing and the compression release the GIL, so both cores work. (Unpacking, the kernel
creating and writing the files, is usually the slowest of the three: the others wait for
it at the queue and the pipe, each holding at most a few MiB.)

An empty tar (no changes) makes no layer: docker records such a commit as a history entry
with ``empty_layer: true`` and the same rootfs, and so do we. The whole commit happens under
the store's *gc guard*, so a concurrent ``rmi`` cannot collect the blobs and the layer
between their creation and the index entry that keeps them.

**Killed halfway?** The order above is the crash story. Everything before ``record_image``
only adds things nobody names yet: a locked temp file in ``ingest/``, a locked
``layers/.tmp-new-*``, then a blob, a layer, a config and a manifest that no index entry
references. The one write of ``images/index.json`` is the moment the image exists, and by
then all it names is on disk. A kill before it leaves only garbage, which the next writer
(temp files) and the garbage collector (``rmi``, ``image prune``, ``system prune``) remove;
a kill after it leaves a whole image. Never an index entry whose blobs or layers are missing.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minidocker.crashpoint import crashpoint
from minidocker.errors import MinidockerError
from minidocker.image import manifest as mf
from minidocker.image.diff import EMPTY_TAR_DIFF_ID
from minidocker.image.reference import parse as parse_reference
from minidocker.image.store import ImageStore, chain_id_of, now_iso

GZIP_LEVEL = 1  # ISA-L's levels are 0-3; 1 and 2 compress alike, 1 is the fastest of them
ZSTD_LEVEL = 1  # the fastest of zstd's standard levels; it still packs tighter than gzip -1
COMPRESSIONS = {"gzip": mf.OCI_LAYER_GZIP, "zstd": mf.OCI_LAYER_ZSTD}  # --compression's values
DOCKER_TO_OCI = {mf.DOCKER_LAYER_GZIP: mf.OCI_LAYER_GZIP, mf.DOCKER_LAYER_FOREIGN: mf.OCI_LAYER_NONDIST_GZIP}
PIPE_SIZE = 1 << 20
QUEUE_CHUNKS = 8  # tar chunks (up to 1 MiB each) waiting for the compressing thread
F_SETPIPE_SZ = 1031

Producer = Callable[[Callable[[bytes | memoryview], None]], Any]


@dataclass
class NewLayer:
    diff_id: str
    digest: str  # of the compressed blob
    size: int  # of the compressed blob
    media_type: str
    content_size: int  # bytes of file content unpacked (the SIZE docker shows)
    chain_id: str


def create_image(
    store: ImageStore,
    base_id: str | None,
    produce: Producer | None,
    *,
    changes: Callable[[dict[str, Any]], None] | None = None,
    created_by: str = "",
    author: str = "",
    comment: str = "",
    tag: str | None = None,
    empty: bool = False,
    intermediate: bool = False,
    compression: str = "gzip",
) -> tuple[str, NewLayer | None]:
    """A new image on top of ``base_id`` (None: from scratch): the layer ``produce`` writes
    (nothing when ``empty``), compressed with ``compression`` (gzip or zstd), the config
    changed by ``changes(config["config"])``, a history entry. Returns the new image ID (its
    config's digest) and the layer (None if empty)."""
    check_compression(compression)
    store.ensure()
    ref = parse_reference(tag) if tag else None
    if ref is not None and ref.digest:
        from minidocker.errors import InvalidReference

        raise InvalidReference(f"refusing to create a tag with a digest reference: {tag}")
    with store.gc_guard():
        base_cfg, base_manifest = base_of(store, base_id)
        # docker's schema 2 has no zstd layer: a zstd layer makes the manifest an OCI one
        docker = base_manifest.media_type == mf.DOCKER_MANIFEST and (empty or compression == "gzip")
        diff_ids = list(base_cfg["rootfs"]["diff_ids"])
        layers = list(base_manifest.layers) if docker else [as_oci(d) for d in base_manifest.layers]
        layer = None
        if not empty and produce is not None:
            chains = mf.chain_ids(diff_ids)
            parent_chain = chains[-1] if chains else None
            layer = write_layer(store, parent_chain, produce, layer_media_type(compression, docker))
            if layer.diff_id == EMPTY_TAR_DIFF_ID:
                layer = None  # docker's empty layer: recorded in history only
            else:
                diff_ids.append(layer.diff_id)
                layers.append(mf.Descriptor(layer.media_type, layer.digest, layer.size))
        entry = {"created_by": created_by, "author": author, "comment": comment, "empty_layer": layer is None}
        cfg = new_config(base_cfg, diff_ids, changes, author, entry)
        config_digest, manifest_digest = store_config_and_manifest(store, cfg, layers, docker)
        store.record_image(
            config_digest, manifest_digest, str(ref) if ref else None, parent=base_id, intermediate=bool(intermediate)
        )
    return config_digest, layer


def check_compression(compression: str) -> None:
    """Refuse a compression commit cannot write, before any work."""
    if compression not in COMPRESSIONS:
        raise MinidockerError(
            f'invalid argument "{compression}" for "--compression" flag: give {" or ".join(COMPRESSIONS)}'
        )


def layer_media_type(compression: str, docker: bool) -> str:
    """The new layer's media type: Docker schema 2's gzip type in a Docker manifest, else OCI's."""
    return mf.DOCKER_LAYER_GZIP if docker and compression == "gzip" else COMPRESSIONS[compression]


def as_oci(desc: mf.Descriptor) -> mf.Descriptor:
    """A base layer's descriptor in an OCI manifest: Docker's gzip layer types are OCI's
    gzip ones (the same bytes), only the name changes; annotations (an eStargz layer's TOC
    digest) stay."""
    media_type = DOCKER_TO_OCI.get(desc.media_type, desc.media_type)
    return mf.Descriptor(media_type, desc.digest, desc.size, desc.platform, desc.urls, desc.annotations)


def base_of(store: ImageStore, base_id: str | None) -> tuple[dict[str, Any], mf.Manifest]:
    """The config and manifest a new image starts from: its base image's, or scratch's."""
    if base_id:
        return store.config(base_id), store.manifest(base_id)
    scratch = {
        "architecture": mf.Platform.host().architecture,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {},
    }
    return scratch, mf.Manifest(mf.OCI_MANIFEST, mf.Descriptor(mf.OCI_CONFIG, "", 0), [])


def new_config(
    base_cfg: dict[str, Any],
    diff_ids: list[str],
    changes: Callable[[dict[str, Any]], None] | None,
    author: str,
    step: dict[str, Any],
) -> dict[str, Any]:
    """The base config copied, ``changes`` applied to its ``config``, the layers' diff_ids,
    and one more history entry (``step``: created_by, author, comment, empty_layer; empty
    values are left out, as docker leaves them out)."""
    cfg = json.loads(json.dumps(base_cfg))  # a deep copy
    cfg["created"] = now_iso()
    cfg.pop("comment", None)  # the base's comment is not the new image's
    if step.get("comment"):
        cfg["comment"] = step["comment"]
    if author:
        cfg["author"] = author
    cfg.setdefault("config", {})
    cfg["config"] = dict(cfg["config"] or {})
    if changes:
        changes(cfg["config"])
    cfg["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    entry: dict[str, Any] = {"created": cfg["created"], "created_by": step["created_by"]}
    entry.update({k: v for k, v in step.items() if k != "created_by" and v})
    cfg["history"] = list(base_cfg.get("history") or []) + [entry]
    return cfg


def store_config_and_manifest(
    store: ImageStore, cfg: dict[str, Any], layers: list[mf.Descriptor], docker: bool
) -> tuple[str, str]:
    """Put the config and then the manifest that names it into the content store; their digests."""
    config_raw = json.dumps(cfg, separators=(",", ":")).encode()
    config_digest = store.content.put(config_raw)
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": mf.DOCKER_MANIFEST if docker else mf.OCI_MANIFEST,
        "config": {
            "mediaType": mf.DOCKER_CONFIG if docker else mf.OCI_CONFIG,
            "digest": config_digest,
            "size": len(config_raw),
        },
        "layers": [d.to_json() for d in layers],
    }
    manifest_raw = json.dumps(manifest_doc, separators=(",", ":")).encode()
    return config_digest, store.content.put(manifest_raw)


def write_layer(store: ImageStore, parent_chain: str | None, produce: Producer, media_type: str) -> NewLayer:
    """Run ``produce(write)`` (it writes one tar) and store what it wrote: a blob compressed
    as ``media_type`` says (gzip or zstd), and the unpacked layer named by its chain ID on
    top of ``parent_chain``. Caller holds ``store.gc_guard()``. For an empty tar nothing is
    kept (the blob, a few bytes, stays unreferenced until the next garbage collection)."""
    import hashlib

    tar_hash = hashlib.sha256()
    with store.create(None, parent_chain) as layer:
        with store.content.ingest() as blob:
            compressing = Compressing(mf.compression_of(media_type), blob)
            try:
                stats = _write_and_apply(produce, layer, tar_hash, compressing)
            finally:
                compressing.close()  # (done already, unless the pipe could not be made)
        crashpoint("commit:blob-written")
        diff_id = "sha256:" + tar_hash.hexdigest()
        if diff_id != EMPTY_TAR_DIFF_ID:
            layer.commit(
                {
                    "diff_id": diff_id,
                    "digest": blob.digest,
                    "media_type": media_type,
                    "size": stats.size,
                    "entries": stats.entries,
                    "committed": True,
                }
            )
    assert blob.digest is not None, "leaving ingest() committed the blob, so it has a digest"
    return NewLayer(diff_id, blob.digest, blob.size, media_type, stats.size, chain_id_of(parent_chain, diff_id))


def new_compressor(compression: str):
    """A streaming compressor (``compress(data)``, ``flush()``) for a layer blob."""
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compressobj()
    from isal import isal_zlib

    return isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31)  # wbits 31: a gzip stream


class Compressing:
    """The compressing thread: tar chunks in (``write``), compressed bytes out to ``blob``
    (which hashes them as it writes). It runs while the producer reads the next files, and
    ISA-L, zstd and sha256 all release the GIL, so the two really overlap. A failure here
    (a full disk) is raised by the next ``write``, or after ``close``, as ``error``."""

    def __init__(self, compression: str, blob) -> None:
        self.compressor = new_compressor(compression)
        self.blob = blob
        self.chunks: queue.Queue[bytes | None] = queue.Queue(QUEUE_CHUNKS)
        self.error: BaseException | None = None
        self.closed = False
        self.thread = threading.Thread(target=self._run, name="compress-layer", daemon=True)
        self.thread.start()

    def write(self, data: bytes | memoryview) -> None:
        if self.error is not None:
            raise self.error
        self.chunks.put(bytes(data))  # a copy: the tar writer reuses its buffer

    def close(self) -> None:
        """End of the tar: the thread compresses what is queued, flushes, and ends."""
        if not self.closed:
            self.closed = True
            self.chunks.put(None)
            self.thread.join()

    def _run(self) -> None:
        chunk = self.chunks.get()
        try:
            while chunk is not None:
                out = self.compressor.compress(chunk)
                if out:
                    self.blob.write(out)
                chunk = self.chunks.get()
            self.blob.write(self.compressor.flush())
        except BaseException as e:  # noqa: BLE001 - raised by the writing thread
            self.error = e
            while chunk is not None:  # go on taking chunks, so that ``write`` never blocks
                chunk = self.chunks.get()


def _write_and_apply(produce: Producer, layer, tar_hash, compressing: Compressing):
    """The tar from ``produce`` goes three ways at once: hashed here (the diff_id), to the
    compressing thread (-> the blob), and through a pipe to the layer's apply_diff (a thread)."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        fcntl.fcntl(write_fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # a smaller pipe only means more context switches
    result: dict[str, Any] = {}

    def apply() -> None:
        try:
            with open(read_fd, "rb", buffering=PIPE_SIZE) as stream:
                result["stats"] = layer.apply_diff(stream)
                while stream.read(PIPE_SIZE):  # the rest of the end-of-archive blocks
                    pass
        except BaseException as e:  # noqa: BLE001 - reported by the writing thread
            result["error"] = e

    thread = threading.Thread(target=apply, name="apply-layer", daemon=True)
    thread.start()
    pipe = io.FileIO(write_fd, "wb")

    def write(data: bytes | memoryview) -> None:
        tar_hash.update(data)
        compressing.write(data)
        view = memoryview(data)
        while view:
            view = view[pipe.write(view) :]

    try:
        try:
            produce(write)
        finally:
            pipe.close()  # EOF for the apply thread
            thread.join()
            compressing.close()
    except BrokenPipeError:
        if "error" not in result:
            raise
    if "error" in result:
        raise _unpack_error(result["error"])
    if compressing.error is not None:
        raise compressing.error
    return result["stats"]


def _unpack_error(e: BaseException) -> BaseException:
    """What the apply thread's failure is reported as."""
    if isinstance(e, MinidockerError):
        return e
    if isinstance(e, OSError):
        from minidocker.fsutil import storage_error

        return storage_error(e, "unpacking the new layer")
    return MinidockerError(f"unpacking the new layer failed: {type(e).__name__}: {e}")


def history(store: ImageStore, name: str) -> list[dict[str, Any]]:
    """``docker history``: the image's history entries, newest first, each with the ID of the
    local image it belongs to (``<missing>`` when that image is not here: docker's wording
    for entries of pulled images, whose parents are not separate images) and its layer's
    size (0 for an empty_layer entry)."""
    doc = store.read_index()
    image_id = store.resolve(name, doc)
    # the chain of local parents: [(image id, number of history entries it has)]
    owners: list[tuple[str, int]] = []
    current: str | None = image_id
    seen = set()
    while current and current in doc["images"] and current not in seen:
        seen.add(current)
        owners.append((current, len(store.config(current).get("history") or [])))
        current = doc["images"][current].get("parent")
    cfg = store.config(image_id)
    entries = list(cfg.get("history") or [])
    chains = mf.chain_ids(cfg["rootfs"]["diff_ids"])
    rows = []
    layer_index = 0
    for i, h in enumerate(entries):
        size = 0
        if not h.get("empty_layer"):
            if layer_index < len(chains):
                size = store.layer_meta(chains[layer_index]).get("size", 0)
            layer_index += 1
        # entry i belongs to the oldest local image that already has i + 1 entries
        owner = "<missing>"
        for oid, count in owners:
            if count >= i + 1:
                owner = oid
        rows.append(
            {
                "ID": owner,
                "Created": h.get("created", ""),
                "CreatedBy": h.get("created_by", ""),
                "Size": size,
                "Comment": h.get("comment", ""),
                "EmptyLayer": bool(h.get("empty_layer")),
            }
        )
    rows.reverse()
    # docker names only the top entry of each local image; the others are <missing>
    shown = set()
    for r in rows:
        if r["ID"] in shown:
            r["ID"] = "<missing>"
        elif r["ID"] != "<missing>":
            shown.add(r["ID"])
    return rows
