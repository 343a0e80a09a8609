"""A lazy pull: which layers stay in the registry, and what is fetched of them instead.

``pull_image(..., lazy=True)`` (image/pull.py) asks this module, once it knows the manifest,
the config and which layers the store lacks, to record as many of them lazily as it can.
For each layer, in order:

    small?        under the threshold (lazy/layers.py ``settings``): pulled whole, as always
    eStargz?      its descriptor carries ``containerd.io/snapshot/stargz/toc.digest``: its
                  footer and TOC are fetched by two range requests (lazy/remote.py), checked
                  against that digest, and recorded (``format: estargz``)
    indexed?      an ordinary gzip layer for which the registry holds a zran index, an
                  artifact that refers to the image (image/referrers.py): the index is
                  recorded (``format: zran``)
    otherwise     pulled whole. So is a layer whose registry ignores Range requests (a
                  200 to a ranged GET: ``RangesUnsupported``)

Nothing here mounts anything: a lazy layer is mounted by the first container that needs
it (lazy/mounts.py). The pull then records the image as usual; its layers are the ordinary
ones and the lazy ones, and ``ImageStore.get`` tells them apart.

See it: ``minidocker pull --lazy HOST/IMAGE`` prints ``Lazy (TOC 412 kB by 2 ranges)`` for a
layer it left in the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from minidocker.errors import LazyLayerError, RangesUnsupported, RegistryError
from minidocker.image import manifest as mf
from minidocker.image.reference import Reference
from minidocker.image.registry import RegistryClient
from minidocker.image.store import ImageStore
from minidocker.lazy.layers import LazyLayers, LazySettings, short
from minidocker.linux.events import emit


def lazy_layers(
    reg: RegistryClient,
    store: ImageStore,
    ref: Reference,
    manifest: mf.Manifest,
    manifest_digest: str,
    diff_ids: list[str],
    chains: list[str],
    todo: list[int],
    settings: LazySettings,
    progress: Callable[[Any], None],
) -> list[int]:
    """Record lazily what can be of the layers ``todo`` (indexes); returns those that are
    left to pull whole."""
    from minidocker.image.pull import PullEvent

    lazy = LazyLayers(store.layout)
    indexes: dict[str, bytes] | None = None  # the registry's zran indexes, looked up once
    whole = []
    for i in todo:
        desc = manifest.layers[i]
        sid = desc.digest[7:19]
        meta: dict[str, Any] = {
            "parent": chains[i - 1] if i else None,
            "diff_id": diff_ids[i],
            "digest": desc.digest,
            "media_type": desc.media_type,
            "size_compressed": desc.size,
            "reference": f"{ref.name}@{manifest_digest}",
        }
        if desc.size < settings.threshold or mf.compression_of(desc.media_type) != "gzip":
            whole.append(i)
            continue
        if lazy.has(chains[i]) and lazy.meta(chains[i]).get("digest") == desc.digest:
            progress(PullEvent(sid, "Already exists (lazy)", desc.size, desc.size))
            continue
        try:
            if (desc.annotations or {}).get("containerd.io/snapshot/stargz/toc.digest"):
                fetched = record_estargz(reg, ref, desc, meta)
            else:
                if indexes is None:
                    indexes = zran_indexes(reg, ref, manifest_digest)
                if desc.digest not in indexes:
                    whole.append(i)
                    continue
                fetched = record_zran(indexes[desc.digest], meta, desc)
        except RangesUnsupported:
            progress(PullEvent(sid, "Range requests refused: pulling whole", 0, desc.size))
            whole.append(i)
            continue
        except LazyLayerError as e:  # (an index that is not this layer's: the layer is pulled as it is)
            progress(PullEvent(sid, f"Not lazy ({e}): pulling whole", 0, desc.size))
            whole.append(i)
            continue
        toc = cast(bytes, meta.pop("_toc"))
        lazy.record(chains[i], meta, toc)
        emit(
            "lazy_layer", layer=short(chains[i]), format=meta["format"], requests=meta.pop("_requests"), bytes=fetched,
            size=desc.size, files=meta["entries"],
        )  # fmt: skip
        progress(PullEvent(sid, f"Lazy ({meta['format']}: {human(fetched)} fetched of {human(desc.size)})"))
    return whole


def record_estargz(reg: RegistryClient, ref: Reference, desc: mf.Descriptor, meta: dict[str, Any]) -> int:
    """Fetch and check an eStargz layer's TOC; ``meta`` gains what mounting it needs."""
    from minidocker.image import estargz
    from minidocker.lazy import toc
    from minidocker.lazy.remote import PARSED, TailBlob, fetch_toc_tail, landmarked, toc_entries

    descriptor = {"digest": desc.digest, "size": desc.size, "annotations": desc.annotations or {}}
    tail, start, ranges = fetch_toc_tail(reg, ref, descriptor)
    want = (desc.annotations or {})[estargz.TOC_DIGEST_ANNOTATION]
    reader = estargz.EstargzReader(TailBlob(desc.size, start, tail), toc_digest=want)  # type: ignore[arg-type]
    entries = toc_entries(reader)
    tree = toc.build_tree(entries)  # a TOC that does not make a tree is refused now, not at the first run
    PARSED[want] = (tree, landmarked(reader))  # (a run --pull=lazy mounts it next: read once)
    meta.update(
        format="estargz",
        toc_offset=start,
        toc_digest=want,
        size=sum(e.size for e in entries),
        entries=len(entries),
        _toc=tail,
        _requests=ranges.stats.requests,
    )
    return ranges.stats.bytes


def zran_indexes(reg: RegistryClient, ref: Reference, manifest_digest: str) -> dict[str, bytes]:
    """The zran indexes the registry holds for this image (layer digest -> index), or none."""
    try:
        from minidocker.image import referrers
    except ImportError:  # (the zran index is not part of this build)
        return {}
    try:
        return referrers.find_zran_artifact(reg, ref, manifest_digest) or {}
    except RegistryError:
        return {}


def record_zran(index_bytes: bytes, meta: dict[str, Any], desc: mf.Descriptor) -> int:
    """Check a layer's zran index (it must be of this very blob); ``meta`` gains its format."""
    from minidocker.image import zran
    from minidocker.lazy import toc

    index = zran.parse_index(index_bytes)
    if (index.layer_digest, index.layer_size) != (desc.digest, desc.size):
        raise LazyLayerError(f"the registry's zran index of layer {desc.digest[:19]} is of {index.layer_digest[:19]}")
    entries = index.entries()
    toc.build_tree(entries)
    meta.update(format="zran", size=sum(e.size for e in entries), entries=len(entries), _toc=index_bytes, _requests=1)
    return len(index_bytes)


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
