"""``inspect IMAGE``: an image of the store, in the fields docker shows.

An image is three things in the store: a record in ``images/index.json`` (its tags, the
manifest it came from, when it was added), its config blob (``blobs/sha256/<id>``: the
command, environment, history and the ``diff_id`` of each layer), and its unpacked layers
(``layers/<chain-id>/``), which become the overlay's lowerdirs. ``inspect`` joins them.

See it: ``minidocker inspect busybox`` beside ``cat /var/lib/minidocker/images/index.json``
and ``cat /var/lib/minidocker/blobs/sha256/<Id without sha256:>``.
"""

from __future__ import annotations

from typing import Any

from minidocker.image.reference import parse


def describe_image(store, name: str) -> dict[str, Any]:
    """``docker image inspect``'s fields for the image ``name`` names in ``store``."""
    doc = store.read_index()
    image_id = store.resolve(name, doc)
    cfg = store.config(image_id)
    rec = doc["images"][image_id]
    lowerdir = ":".join(str(p) for p in store.get(image_id, mount=False))  # (a lazy layer's: not mounted for this)
    return {
        "Id": image_id,
        "RepoTags": [parse(t).familiar() for t in store.tags_of(image_id, doc)],
        "RepoDigests": [parse(d).familiar() for d in rec["repo_digests"]],
        "Parent": rec.get("parent", ""),  # a commit's or build step's base, as docker keeps it
        "Comment": last_comment(cfg),
        "Created": cfg.get("created", ""),
        "Author": cfg.get("author", ""),
        "Config": cfg.get("config") or {},
        "Architecture": cfg.get("architecture", ""),
        "Variant": cfg.get("variant"),
        "Os": cfg.get("os", ""),
        "Size": sum(store.layer_meta(c).get("size", 0) for c in store.chain_ids(image_id)),
        "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": lowerdir}},
        "RootFS": {"Type": "layers", "Layers": list(cfg["rootfs"]["diff_ids"])},
        "Metadata": {"LastTagTime": rec.get("added", "")},
        "Descriptor": {"digest": rec["manifest"]},
    }


def last_comment(config: dict[str, Any]) -> str:
    """The image's own comment (``commit -m``): its newest history entry's, else the config's
    ``comment``; never an older layer's, as docker shows it."""
    history = config.get("history") or []
    return (history[-1].get("comment", "") if history else "") or config.get("comment", "")
