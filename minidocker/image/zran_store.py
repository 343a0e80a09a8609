"""The zran indexes of the store's layers: which index blob belongs to which layer blob.

An index (image/zran.py) is a blob like any other, so it lives in the content store under its
own digest (``blobs/sha256/<index>``). What it is *of* is recorded beside it, one small file
per layer, written atomically::

    zran/<hex of the layer blob's digest>      {"layer": "sha256:...", "index": "sha256:..."}

``convert --index`` writes them; ``push`` pushes the indexes of an image as its referrers
artifact (image/referrers.py) when every layer has one; the garbage collector keeps an
index's blob while the layer's blob is kept (``kept_indexes``).

See it: ``minidocker convert --index debian && ls /var/lib/minidocker/zran/``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from minidocker.errors import StoreError
from minidocker.fsutil import make_private_dir, read_json, write_json
from minidocker.image import manifest as mf
from minidocker.image.store import ImageStore
from minidocker.lazy.toc import DIGEST


def records_dir(store: ImageStore) -> Path:
    return store.layout.zran_dir


def record_path(store: ImageStore, layer_digest: str) -> Path:
    if not DIGEST.fullmatch(layer_digest):
        raise ValueError(f"not a sha256 digest: {layer_digest!r}")
    return store.layout.zran_record(layer_digest)


def save_index(store: ImageStore, layer_digest: str, data: bytes) -> str:
    """Keep ``data`` (a serialized index of the layer ``layer_digest``) in the content store
    and note whose it is; returns the index blob's digest."""
    digest = store.content.put(data)
    make_private_dir(records_dir(store))
    write_json(record_path(store, layer_digest), {"layer": layer_digest, "index": digest}, mode=0o600)
    return digest


def index_digest(store: ImageStore, layer_digest: str) -> str | None:
    """The digest of the layer's index blob, if one is recorded and still stored."""
    record = read_json(record_path(store, layer_digest), None)
    digest = record.get("index") if isinstance(record, dict) else None
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest) or not store.content.has(digest):
        return None
    return digest


def index_for(store: ImageStore, layer_digest: str) -> bytes | None:
    """The serialized index of the layer blob ``layer_digest``, or None."""
    digest = index_digest(store, layer_digest)
    if digest is None:
        return None
    with contextlib.suppress(FileNotFoundError):
        return store.content.path(digest).read_bytes()
    return None


def indexes_of(store: ImageStore, manifest: mf.Manifest) -> dict[str, bytes] | None:
    """Layer digest -> index of every layer of the image, in its order; None unless all have one."""
    out = {}
    for desc in manifest.layers:
        data = index_for(store, desc.digest)
        if data is None:
            return None
        out[desc.digest] = data
    return out or None


def kept_indexes(store: ImageStore, blobs: Iterable[str]) -> set[str]:
    """The index blobs of the layer blobs ``blobs``: what the garbage collector must keep too."""
    out = set()
    for digest in list(blobs):
        if DIGEST.fullmatch(digest) and (index := index_digest(store, digest)) is not None:
            out.add(index)
    return out


def subject_of(store: ImageStore, manifest_digest: str) -> dict[str, Any]:
    """The descriptor of a stored image manifest: what its artifact's ``subject`` names."""
    raw = store.content.read(manifest_digest)
    return {"mediaType": mf.detect_media_type(raw, None), "digest": manifest_digest, "size": len(raw)}


def index_image(store: ImageStore, image: str, span: int | None = None) -> list[str]:
    """``convert --index IMAGE``: build and keep the zran index of every gzip layer of the
    local image (one already indexed is kept as it is). Returns one line per layer."""
    from minidocker.image import zran

    lines = []
    with store.gc_guard():  # rmi must not collect a layer blob we read, nor the index we write
        manifest = store.manifest(store.resolve(image))
        for desc in manifest.layers:
            short = desc.digest[7:19]
            if mf.compression_of(desc.media_type) != "gzip":
                lines.append(f"{short}: not gzip ({desc.media_type}): no zran index")
                continue
            if (known := index_digest(store, desc.digest)) is not None:
                lines.append(f"{short}: zran index {known[7:19]} (already made)")
                continue
            if not store.content.has(desc.digest):
                raise StoreError(
                    f"layer {desc.digest[:19]} is not in the store, so it cannot be indexed",
                    hint="pull the image again",
                )
            with store.content.open(desc.digest) as blob:
                data = zran.build_index(blob, span or zran.SPAN)
            index = zran.parse_index(data)
            digest = save_index(store, desc.digest, data)
            lines.append(
                f"{short}: zran index {digest[7:19]} ({len(index.points)} checkpoints, "
                f"{len(index.entries())} entries, {len(data)} bytes for {desc.size})"
            )
    return lines
