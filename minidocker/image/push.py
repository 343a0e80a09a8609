"""``push``: an image of the store to a registry, blob by blob, then its manifest.

A registry accepts an image the way it serves one, bottom up: every blob the manifest names
must be in the repository before the manifest may be, because the registry checks that the
manifest's references resolve. The steps, in order (each is one function below)::

    blob_sources   which repositories of the same registry each blob came from (the
                   image's RepoDigests, recorded by pull and by earlier pushes)
    push_blob      for each layer (in parallel), then the config:
                     HEAD      already in the repository?          -> "Layer already exists"
                     POST ?mount=<digest>&from=<repo>  201         -> "Mounted from <repo>"
                     POST      202 + Location: an upload session
                     PUT  <Location>?digest=  the whole blob       (small blobs)
                  or PATCH <Location> Content-Range: a-b  ...      (big blobs, in chunks)
                     PUT  <Location>?digest=  with no body
    put_manifest   PUT /v2/<name>/manifests/<tag>, the manifest's exact bytes
    record         the repository digest, as ``docker images --digests`` shows it

Blobs are read from the content store as they were pulled (or made), never re-compressed:
so the manifest pushed is byte for byte the one pulled, and its digest is the same. The
registry hashes every upload and refuses one whose digest is not what we claimed.

See it: ``minidocker push 127.0.0.1:5000/copy`` twice, then
``grep -E 'HEAD|POST|PATCH|PUT' registry-access.log``: the second push only asks HEADs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from minidocker.errors import AuthenticationError, ImageNotFound, InvalidReference, PushAborted, StoreError
from minidocker.image import manifest as mf
from minidocker.image.pull import PullEvent, _noop
from minidocker.image.reference import Reference, parse
from minidocker.image.registry import RegistryClient
from minidocker.image.store import ImageStore

PARALLEL_UPLOADS = 3
CHUNK_SIZE = 8 << 20  # blobs up to this size go in one PUT; bigger ones in PATCHes of this size
READ_SIZE = 1 << 20

Progress = Callable[[PullEvent], None]


@dataclass
class PushResult:
    ref: Reference
    image_id: str
    digest: str  # the manifest's digest: what the registry now names ref by
    size: int  # the manifest's size in bytes
    uploaded: int  # blobs sent
    mounted: int  # blobs linked from another repository
    skipped: int  # blobs the repository already had
    zran_artifact: str | None = None  # the digest of its zran indexes' artifact, if pushed (image/referrers.py)


def push_scope(ref: Reference) -> str:
    """The token scope a push needs: to write and to read back what it wrote."""
    return f"repository:{ref.path}:push,pull"


def blob_sources(store: ImageStore, ref: Reference, doc: dict) -> dict[str, list[str]]:
    """digest -> repository paths on ``ref``'s registry that hold it (other than ``ref``'s).

    Where a blob came from is what the store already records: each image's RepoDigests name
    the repositories its manifest was pulled from or pushed to, and a repository that has a
    manifest has every blob the manifest names. (Docker keeps a table per layer instead,
    ``distribution/v2metadata-by-diffid``; the facts are the same.)"""
    out: dict[str, list[str]] = {}
    for image_id, rec in doc["images"].items():
        repos = []
        for rd in rec.get("repo_digests", []):
            try:
                r = parse(rd)
            except InvalidReference:
                continue
            if r.domain == ref.domain and r.path != ref.path and r.path not in repos:
                repos.append(r.path)
        if not repos:
            continue
        try:
            manifest = store.manifest(image_id, doc)
        except (StoreError, KeyError, ValueError):
            continue
        for desc in [manifest.config, *manifest.layers]:
            known = out.setdefault(desc.digest, [])
            known.extend(p for p in repos if p not in known)
    return out


def iter_file(
    path,
    start: int = 0,
    limit: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
    abort: threading.Event | None = None,
) -> Iterator[bytes]:
    """Read ``limit`` bytes of ``path`` from ``start`` in 1 MiB pieces, reporting progress."""
    sent = 0
    with open(path, "rb") as f:
        f.seek(start)
        while limit is None or sent < limit:
            if abort is not None and abort.is_set():
                raise PushAborted("push aborted")
            data = f.read(READ_SIZE if limit is None else min(READ_SIZE, limit - sent))
            if not data:
                break
            sent += len(data)
            if on_bytes:
                on_bytes(start + sent)
            yield data


def push_blob(
    reg: RegistryClient,
    store: ImageStore,
    ref: Reference,
    desc: mf.Descriptor,
    sources: list[str],
    progress: Progress,
    abort: threading.Event,
    chunk_size: int = CHUNK_SIZE,
) -> str:
    """Get one blob into ``ref``'s repository; returns "exists", "mounted" or "uploaded"."""
    sid = desc.digest[7:19]
    scope = push_scope(ref)
    if reg.blob_exists(ref, desc.digest, scope):
        progress(PullEvent(sid, "Layer already exists", desc.size, desc.size))
        return "exists"
    if not store.content.has(desc.digest):
        raise StoreError(
            f"blob {desc.digest[:19]} of {ref.familiar()} is not in the store, so it cannot be pushed",
            hint="pull the image again (a layer shared with another image may "
            "have been unpacked without keeping its compressed blob)",
        )
    location = None
    if sources:
        # A mount reads from the source repository: the token must allow that too. If it
        # does not (no pull right there), the registry says 401: upload as if no source.
        mount_scope = f"{scope} repository:{sources[0]}:pull"
        try:
            location = reg.start_upload(ref, mount_scope, mount=desc.digest, source=sources[0])
        except AuthenticationError:
            location = None
        else:
            if location is None:  # 201 Created: linked, not one byte sent
                progress(PullEvent(sid, f"Mounted from {sources[0]}", desc.size, desc.size))
                return "mounted"
            scope = mount_scope  # 202: an ordinary upload session, for this token: use it
    location = location or reg.start_upload(ref, scope)  # no mount: a fresh upload session
    assert location is not None, "an upload without a mount always has a Location"
    path = store.content.path(desc.digest)
    size = path.stat().st_size
    if size != desc.size:
        raise StoreError(f"blob {desc.digest[:19]} in the store has {size} bytes, the manifest says {desc.size}")
    report = lambda n: progress(PullEvent(sid, "Pushing", n, size))  # noqa: E731
    report(0)
    if size <= chunk_size:  # monolithic: one PUT carries the blob and closes the session
        reg.finish_upload(location, scope, desc.digest, body=lambda: iter_file(path, 0, size, report, abort), size=size)
    else:  # chunked: PATCH each piece to the Location the last answer gave, then an empty PUT
        offset = 0
        while offset < size:
            if abort.is_set():
                raise PushAborted("push aborted")
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(min(chunk_size, size - offset))
            location = reg.upload_chunk(location, scope, offset, data)
            offset += len(data)
            report(offset)
        reg.finish_upload(location, scope, desc.digest)
    progress(PullEvent(sid, "Pushed", size, size))
    return "uploaded"


def resolve_for_push(store: ImageStore, ref: Reference, doc: dict | None = None) -> str:
    """The image ID the tag ``ref`` names, in push's words when it names none."""
    if ref.digest:
        raise InvalidReference(
            f"cannot push a digest reference: {ref.familiar()}",
            hint="tag the image first: minidocker tag IMAGE NAME:TAG",
        )
    try:
        return store.resolve(str(ref), doc)
    except ImageNotFound:
        raise ImageNotFound(
            f"An image does not exist locally with the tag: {ref.familiar_name}",
            hint=f"tag an image first: minidocker tag IMAGE {ref.familiar()}",
        ) from None


def push_image(
    store: ImageStore,
    ref: Reference,
    progress: Progress | None = None,
    chunk_size: int = CHUNK_SIZE,
    image_id: str | None = None,
) -> PushResult:
    """Push the image tagged ``ref`` (or the image ``image_id``: ``push --estargz`` pushes a
    converted copy under the original's name) to ``ref``'s repository and tag."""
    progress = progress or _noop
    doc = store.read_index()
    found = resolve_for_push(store, ref, doc)
    image_id = image_id or found
    manifest_digest = doc["images"][image_id]["manifest"]
    raw = store.content.read(manifest_digest)
    manifest = mf.parse_manifest(raw)
    media_type = mf.detect_media_type(raw, None)
    sources = blob_sources(store, ref, doc)
    counts = {"exists": 0, "mounted": 0, "uploaded": 0}
    progress(PullEvent("", f"The push refers to repository [{ref.familiar_name}]"))
    with RegistryClient(ref.domain) as reg, store.gc_guard():  # rmi must not collect a blob we read
        for desc in manifest.layers:
            progress(PullEvent(desc.digest[7:19], "Preparing", 0, desc.size))
        abort = threading.Event()

        def one(desc: mf.Descriptor) -> str:
            return push_blob(reg, store, ref, desc, sources.get(desc.digest, []), progress, abort, chunk_size)

        if manifest.layers:
            with ThreadPoolExecutor(min(PARALLEL_UPLOADS, len(manifest.layers)), thread_name_prefix="push") as pool:
                futures = [pool.submit(one, d) for d in manifest.layers]
                errors = []
                for f in futures:
                    try:
                        counts[f.result()] += 1
                    except BaseException as e:  # stop the others, report the first real cause
                        abort.set()
                        errors.append(e)
                if errors:
                    raise next((e for e in errors if not isinstance(e, PushAborted)), errors[0])
        counts[one(manifest.config)] += 1  # the config last, as docker does
        digest = reg.put_manifest(ref, ref.tag or "latest", raw, media_type, push_scope(ref))
    store.record_image(image_id, manifest_digest, None, f"{ref.name}@{digest}")
    return PushResult(ref, image_id, digest, len(raw), counts["uploaded"], counts["mounted"], counts["exists"])
