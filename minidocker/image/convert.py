"""``image convert --estargz``: a copy of an image whose layers are eStargz blobs.

The steps, in order (``convert_image``)::

    for each layer, bottom up:
      source blob     blobs/sha256/<digest>, inflated as its media type says (gzip, zstd, none)
      write_estargz   -> ingest/new-*  -> blobs/sha256/<new digest>   (image/estargz.py:
                         one gzip member per chunk, the TOC, the footer; a new diff_id)
      apply_diff      the new blob, inflated, unpacked into layers/<new chain-id>/
                      (the store's create -> apply_diff -> commit, as a pull does)
    new config        the source's, with rootfs.diff_ids the new ones (history kept)
    new manifest      OCI; each layer ``tar+gzip`` with the annotations
                      containerd.io/snapshot/stargz/toc.digest and
                      io.containers.estargz.uncompressed-size
    record_image      images/index.json (under the store lock): the new ID, the tag

Why unpack again? The tar inside an eStargz blob is not the source's (the landmark and
``stargz.index.json`` are members of it, the headers are rewritten), so the layer has a new
diff_id, hence a new chain ID, and ``layers/<chain-id>/diff`` must be what ``apply_layer``
makes of *this* blob: the same rule as after a pull or a commit. So an eStargz image runs
here like any other, and a later pull of it finds its layers already unpacked.

All of it happens under the store's gc guard; the one write of images/index.json is the
moment the new image exists (a kill before it leaves only unreferenced blobs and layers,
garbage for the next ``rmi``/``prune``), as in image/commit.py.

See it: ``minidocker image convert --estargz busybox busybox:esgz && minidocker image inspect
busybox:esgz`` (a new ID, new RootFS.Layers); the manifest's layer annotations are in
``blobs/sha256/<manifest>``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Any

from minidocker.errors import InvalidReference, StoreError
from minidocker.image import estargz
from minidocker.image import manifest as mf
from minidocker.image.reference import parse as parse_reference
from minidocker.image.store import ImageStore, chain_id_of, short_id


def convert_image(
    store: ImageStore,
    source: str,
    tag: str | None = None,
    *,
    prefetch: Sequence[str] = (),
    chunk_size: int = estargz.CHUNK_SIZE,
    say: Callable[[str], None] = lambda line: None,
) -> str:
    """A new image in the store: ``source``'s config and layers, every layer written as
    eStargz (``prefetch``: the files to put before the prefetch landmark, in each layer that
    has them); tagged ``tag`` if given. Returns the new image ID."""
    if chunk_size <= 0:
        raise estargz.EstargzError(f"the eStargz chunk size must be a positive number of bytes, not {chunk_size}")
    ref = parse_reference(tag) if tag else None
    if ref is not None and ref.digest:
        raise InvalidReference(f"refusing to create a tag with a digest reference: {tag}")
    store.ensure()
    with store.gc_guard():
        doc = store.read_index()
        source_id = store.resolve(source, doc)
        if not prefetch:  # the files a recorded run opened first (run --record-access): put first
            prefetch = store.accesses(source_id)
            if prefetch:
                say(f"Prefetch group: the {len(prefetch)} files run --record-access recorded")
        manifest = store.manifest(source_id, doc)
        config = store.config(source_id)
        diff_ids: list[str] = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(manifest.layers):
            raise StoreError(
                f"image {short_id(source_id)} has {len(manifest.layers)} layers but {len(diff_ids)} diff_ids"
            )
        layers: list[mf.Descriptor] = []
        new_diff_ids: list[str] = []
        parent: str | None = None
        for desc in manifest.layers:
            layer = convert_layer(store, desc, prefetch, chunk_size)
            parent = unpack_layer(store, layer, parent)
            new_diff_ids.append(layer.diff_id)
            layers.append(mf.Descriptor(mf.OCI_LAYER_GZIP, layer.digest, layer.size, annotations=layer.annotations()))
            say(
                f"{desc.digest[7:19]}: eStargz {layer.digest[7:19]} ({layer.entries} TOC entries, "
                f"{desc.size} -> {layer.size} bytes)"
            )
        new_config = json.loads(json.dumps(config))  # a deep copy
        new_config["rootfs"] = {"type": "layers", "diff_ids": new_diff_ids}
        config_digest, manifest_digest = store_oci_image(store, new_config, layers)
        store.record_image(config_digest, manifest_digest, str(ref) if ref else None)
    return config_digest


def convert_built_image(store: ImageStore, built: str, tags: list[str], say: Callable[[str], None]) -> str:
    """``build --estargz``: convert what was built; the tags name the eStargz image, and the
    built one stays as build cache, hidden as the build's steps are. Returns the new ID."""
    say("Converting the image's layers to eStargz")
    image_id = convert_image(store, built, tags[0] if tags else None, say=lambda line: say(" ---> " + line))
    for t in tags[1:]:
        store.tag(image_id, t)
    doc = store.read_index()
    if not store.tags_of(built, doc):
        store.record_image(built, doc["images"][built]["manifest"], None, intermediate=True)
    say(f"Successfully converted to {image_id[7:19]}")
    return image_id


def convert_layer(
    store: ImageStore, desc: mf.Descriptor, prefetch: Sequence[str], chunk_size: int
) -> estargz.EstargzLayer:
    """The layer blob ``desc`` rewritten as eStargz into the content store (ingest, verify,
    rename: the blob's digest is what the writer hashed)."""
    from minidocker.image.pull import open_decompressed

    if not store.content.has(desc.digest):
        raise StoreError(
            f"layer {desc.digest[:19]} is not in the store, so it cannot be converted",
            hint="pull the image again (a layer shared with another image may have been unpacked "
            "without keeping its compressed blob)",
        )
    compression = mf.compression_of(desc.media_type)
    with (
        store.content.open(desc.digest) as blob,
        open_decompressed(blob, compression) as tar,
        store.content.ingest() as ingest,
    ):
        layer = estargz.write_estargz(
            tar, ingest.write, prefetch=prefetch, chunk_size=chunk_size, spool_dir=str(store.layout.ingest_dir)
        )
        ingest.commit(layer.digest, layer.size)
    return layer


def unpack_layer(store: ImageStore, layer: estargz.EstargzLayer, parent: str | None) -> str:
    """``layers/<chain-id>/``, unpacked from the new blob, unless it is there already;
    its diff_id checked. Returns its chain ID."""
    from minidocker.errors import DigestMismatch
    from minidocker.image.pull import READ_SIZE, HashingReader, open_decompressed

    chain_id = chain_id_of(parent, layer.diff_id)
    with store.layer_lock(chain_id):
        if store.has_layer(chain_id):
            return chain_id
        with store.create(chain_id, parent) as writer, store.content.open(layer.digest) as blob:
            with open_decompressed(blob, "gzip") as plain:
                tar = HashingReader(plain)
                stats = writer.apply_diff(io.BufferedReader(tar, READ_SIZE))
                tar.drain()
            if tar.digest != layer.diff_id:
                raise DigestMismatch(
                    f"eStargz layer {layer.digest[7:19]} unpacks to {tar.digest[:19]}, not its diff_id"
                )
            meta: dict[str, Any] = {"diff_id": layer.diff_id, "digest": layer.digest, "media_type": mf.OCI_LAYER_GZIP}
            writer.commit({**meta, "size": stats.size, "entries": stats.entries, "estargz": layer.toc_digest})
    return chain_id


def store_oci_image(store: ImageStore, config: dict[str, Any], layers: list[mf.Descriptor]) -> tuple[str, str]:
    """The config, then an OCI manifest naming it and ``layers`` (annotations included)."""
    config_raw = json.dumps(config, separators=(",", ":")).encode()
    config_digest = store.content.put(config_raw)
    manifest = {
        "schemaVersion": 2,
        "mediaType": mf.OCI_MANIFEST,
        "config": {"mediaType": mf.OCI_CONFIG, "digest": config_digest, "size": len(config_raw)},
        "layers": [d.to_json() for d in layers],
    }
    return config_digest, store.content.put(json.dumps(manifest, separators=(",", ":")).encode())
