"""What the listings read beyond a record: sizes, an image's layer chain, ``system df``.

``ps -s`` shows a container's writable layer (its overlay ``upper/`` dir, in apparent bytes,
as docker's overlay2 driver counts it) and that plus its image ("virtual"); ``ps --filter
ancestor=IMG`` needs each image's layer chain, since an image built ``FROM`` another holds
that image's chain as its prefix; ``system df`` adds up images (each layer once), containers'
writable layers, volumes' ``_data`` and the build cache, and what a prune could reclaim.

See it: ``minidocker system df -v`` beside ``du -sb /var/lib/minidocker/containers/*/upper``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from minidocker.errors import MinidockerError


def apparent_size(tree: Path) -> int:
    """The bytes of the regular files under ``tree`` (each hard-linked inode once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(tree):
        for f in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, f))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


def image_facts(store, image_id: str, cache: dict[str, tuple[list[str], int]]) -> tuple[list[str], int]:
    """An image's layer chain IDs and size (``([], 0)`` once it is gone), cached by ID."""
    if image_id not in cache:
        try:
            chain = store.chain_ids(image_id)
            cache[image_id] = (chain, sum(store.layer_meta(c).get("size", 0) for c in chain))
        except (MinidockerError, OSError, KeyError, ValueError):
            cache[image_id] = ([], 0)
    return cache[image_id]


def add_container_facts(rows: list[dict[str, Any]], containers, store, size: bool) -> None:
    """``ImageChain`` on each ``ps`` row (for ``ancestor=``) and, with ``size``, ``SizeRw``
    and ``SizeRootFs`` (the writable layer; it plus the image)."""
    cache: dict[str, tuple[list[str], int]] = {}
    for r in rows:
        chain, image_size = image_facts(store, r["ImageID"], cache)
        r["ImageChain"] = chain
        if size:
            upper = containers.dir / r["ID"] / "upper"
            r["SizeRw"] = apparent_size(upper)
            r["SizeRootFs"] = r["SizeRw"] + image_size


def add_inspect_sizes(doc: dict[str, Any], store) -> dict[str, Any]:
    """``inspect -s`` of a container: ``SizeRw`` (its writable layer) and ``SizeRootFs``."""
    if "GraphDriver" in doc and "State" in doc:
        doc["SizeRw"] = apparent_size(Path(doc["GraphDriver"]["Data"]["UpperDir"]))
        doc["SizeRootFs"] = doc["SizeRw"] + image_facts(store, doc["Image"], {})[1]
    return doc


def image_chain(store, name: str) -> tuple[str, str | None]:
    """``ancestor=NAME``: the image's ID and the chain ID of its top layer."""
    image_id = store.resolve(name)
    chain = store.chain_ids(image_id)
    return image_id, (chain[-1] if chain else None)


def disk_usage(store, containers, volumes) -> dict[str, Any]:
    """``system df``: per kind, how many, how many in use, their size and what is reclaimable."""
    all_containers = containers.all() if containers.dir.exists() else []
    used_images = {c.spec.image_id for c in all_containers}
    try:
        images = store.images()
    except MinidockerError:  # (no store yet)
        images = []
    layer_size: dict[str, int] = {}
    used_layers: set[str] = set()
    for info in images:
        chain = store.chain_ids(info.id)
        for c in chain:
            layer_size[c] = store.layer_meta(c).get("size", 0)
        if info.id in used_images:
            used_layers.update(chain)
    sizes = {c.id: apparent_size(c.layout.upper) for c in all_containers}
    users = volumes.users()
    vol_sizes = {v["Name"]: apparent_size(Path(v["Mountpoint"])) for v in volumes.all()}
    cache = _build_cache(store)
    return {
        "Images": _usage(
            len(images),
            sum(i.id in used_images for i in images),
            sum(layer_size.values()),
            sum(s for c, s in layer_size.items() if c not in used_layers),
        ),
        "Containers": _usage(
            len(all_containers),
            sum(c.running for c in all_containers),
            sum(sizes.values()),
            sum(sizes[c.id] for c in all_containers if not c.running),
        ),
        "Volumes": _usage(
            len(vol_sizes),
            sum(bool(users.get(n)) for n in vol_sizes),
            sum(vol_sizes.values()),
            sum(s for n, s in vol_sizes.items() if not users.get(n)),
        ),
        "BuildCache": _usage(len(cache), 0, 0, 0),
        "ContainerRows": [(c, sizes[c.id]) for c in all_containers],
        "VolumeRows": [(n, len(users.get(n) or []), s) for n, s in vol_sizes.items()],
    }


def _usage(total: int, active: int, size: int, reclaimable: int) -> dict[str, int]:
    return {"TotalCount": total, "Active": active, "Size": size, "Reclaimable": reclaimable}


def _build_cache(store) -> dict[str, str]:
    from minidocker.fsutil import read_json

    return read_json(store.layout.build_cache, {}) or {}
