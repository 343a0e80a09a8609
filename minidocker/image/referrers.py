"""An image's zran indexes as an OCI artifact that *refers* to it (OCI distribution spec 1.1).

A registry can hold things about an image besides the image: signatures, SBOMs, and here
the zran index of each layer (image/zran.py), which makes an ordinary gzip image lazily
pullable without converting it. Such a thing is an **artifact**: an image manifest whose
``artifactType`` says what it is, whose ``config`` is the empty blob (``{}``, its media type
``application/vnd.oci.empty.v1+json``), whose ``layers`` are its blobs, and whose
``subject`` is the descriptor of the image manifest it is about::

    image manifest  sha256:aaa...   <--subject--  artifact manifest sha256:zzz...
                                                    artifactType: application/vnd.minidocker.zran.v1
                                                    config: {} (the empty blob)
                                                    layers: one index blob per image layer, its
                                                      annotation dev.minidocker.zran.layer naming
                                                      the image layer's digest

Pushing it: the blobs, then the manifest *by digest* (it has no tag of its own). Finding it
again, given only the image's manifest digest, two ways:

    referrers API    GET /v2/<name>/referrers/<digest>: an image index listing every
                     manifest whose subject is <digest>. A registry that has it answers the
                     manifest PUT with an ``OCI-Subject`` header, and keeps the list itself.
    tag fallback     a registry without it (Debian's docker-registry, distribution 2.8)
                     answers 404 there. The client then keeps the list: an image index
                     tagged ``sha256-<hex of the subject>``, which it reads, adds to, and
                     writes back (read, merge, write; two writers at once may lose one).

``find_zran_artifact`` tries the API first, then the tag; each index blob it returns was
checked against its digest, which the artifact manifest (checked against its own) names.
Who may push an artifact may claim any index for the image: the index's TOC is then believed
(names, modes, owners), but a byte served is always a byte of the layer (image/zran.py).

See it: ``curl -s http://127.0.0.1:PORT/v2/NAME/manifests/sha256-HEX -H 'Accept:
application/vnd.oci.image.index.v1+json'`` after ``minidocker push`` of an indexed image.
"""

from __future__ import annotations

import json
from typing import Any

from minidocker.errors import ImageNotFound, RegistryError
from minidocker.image import manifest as mf
from minidocker.image import zran
from minidocker.image.reference import Reference
from minidocker.image.registry import MAX_MANIFEST_SIZE, RegistryClient, _error_text, read_capped

ARTIFACT_TYPE = "application/vnd.minidocker.zran.v1"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
LAYER_ANNOTATION = "dev.minidocker.zran.layer"  # on each index blob: the image layer it indexes


def fallback_tag(digest: str) -> str:
    """The tag schema's name for the referrers of ``digest``: ``sha256:HEX`` -> ``sha256-HEX``."""
    algorithm, _, hex_digest = digest.partition(":")
    return f"{algorithm}-{hex_digest}"


def artifact_manifest(subject: dict[str, Any], indexes: dict[str, bytes]) -> bytes:
    """The artifact's manifest: ``indexes`` (image layer digest -> index blob) as its
    layers, in the order given, about ``subject`` (a descriptor). No time stamp: the same
    indexes of the same image make the same manifest, so pushing twice adds nothing."""
    layers = [
        {
            "mediaType": zran.MEDIA_TYPE,
            "digest": mf.sha256_digest(data),
            "size": len(data),
            "annotations": {LAYER_ANNOTATION: layer},
        }
        for layer, data in indexes.items()
    ]
    doc = {
        "schemaVersion": 2,
        "mediaType": mf.OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_TYPE, "digest": mf.sha256_digest(EMPTY), "size": len(EMPTY)},
        "layers": layers,
        "subject": {k: subject[k] for k in ("mediaType", "digest", "size")},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def push_scope(ref: Reference) -> str:
    return f"repository:{ref.path}:push,pull"


def push_small_blob(client: RegistryClient, ref: Reference, data: bytes) -> str:
    """One blob into the repository (unless it is there): a POST, then one PUT with it all."""
    digest, scope = mf.sha256_digest(data), push_scope(ref)
    if not client.blob_exists(ref, digest, scope):
        location = client.start_upload(ref, scope)
        assert location is not None, "an upload without a mount always has a Location"
        client.finish_upload(location, scope, digest, body=lambda: iter([data]), size=len(data))
    return digest


def put_manifest(client: RegistryClient, ref: Reference, reference: str, raw: bytes, media_type: str) -> bool:
    """PUT a manifest at ``reference`` (a digest or a tag); True when the registry says, by
    the ``OCI-Subject`` header, that it keeps the referrers list of the subject itself."""
    resp = client.request(
        "PUT",
        f"/v2/{ref.path}/manifests/{reference}",
        scope=push_scope(ref),
        headers={"Content-Type": media_type},
        content=raw,
    )
    try:
        if resp.status_code not in (200, 201, 202):
            raise RegistryError(f"{client.domain} refused the manifest {reference[:19]}: {_error_text(resp)}")
        return bool(resp.headers.get("OCI-Subject"))
    finally:
        resp.close()


def push_zran_artifact(
    client: RegistryClient, ref: Reference, subject: dict[str, Any], indexes: dict[str, bytes]
) -> str:
    """Push the indexes of the image whose manifest descriptor is ``subject`` as its zran
    artifact (blobs, then the manifest by digest; then the tag fallback's index, unless the
    registry keeps referrers itself). Returns the artifact manifest's digest."""
    push_small_blob(client, ref, EMPTY)
    for data in indexes.values():
        push_small_blob(client, ref, data)
    raw = artifact_manifest(subject, indexes)
    digest = mf.sha256_digest(raw)
    if not put_manifest(client, ref, digest, raw, mf.OCI_MANIFEST):
        descriptor = {"mediaType": mf.OCI_MANIFEST, "digest": digest, "size": len(raw)}
        add_to_fallback(client, ref, subject["digest"], descriptor)
    return digest


def add_to_fallback(client: RegistryClient, ref: Reference, subject_digest: str, descriptor: dict[str, Any]) -> None:
    """The tag schema: read the index tagged ``sha256-<hex>`` (or start one), add the
    artifact's descriptor unless it is listed, write it back."""
    tag = fallback_tag(subject_digest)
    try:
        raw, _, _ = client.get_manifest(ref, tag)
        doc = json.loads(raw)
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
            raise RegistryError(f"the tag {tag} of {ref.familiar_name} is not an image index")
    except ImageNotFound:
        doc = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": []}
    if any(isinstance(m, dict) and m.get("digest") == descriptor["digest"] for m in doc["manifests"]):
        return
    doc["manifests"].append({**descriptor, "artifactType": ARTIFACT_TYPE})
    put_manifest(client, ref, tag, json.dumps(doc, separators=(",", ":")).encode(), mf.OCI_INDEX)


def referrers(client: RegistryClient, ref: Reference, digest: str) -> list[dict[str, Any]] | None:
    """The descriptors of the manifests that refer to ``digest`` (zran artifacts first asked
    for), by the referrers API, else by the tag fallback; None when neither knows of any."""
    listed = referrers_api(client, ref, digest)
    if listed is None:
        try:
            raw, _, _ = client.get_manifest(ref, fallback_tag(digest))
        except ImageNotFound:
            return None
        listed = manifests_of(raw, f"the tag {fallback_tag(digest)} of {ref.familiar_name}")
    return listed


def referrers_api(client: RegistryClient, ref: Reference, digest: str) -> list[dict[str, Any]] | None:
    """``GET /v2/<name>/referrers/<digest>?artifactType=...``; None when the registry has no
    such API (404, or anything but 200: the spec's cue to fall back to the tag)."""
    resp = client.request(
        "GET",
        f"/v2/{ref.path}/referrers/{digest}?artifactType={ARTIFACT_TYPE}",
        scope=f"repository:{ref.path}:pull",
        headers={"Accept": mf.OCI_INDEX},
        stream=True,
    )
    try:
        if resp.status_code != 200 or not resp.headers.get("Content-Type", "").startswith(mf.OCI_INDEX):
            return None
        raw = read_capped(resp, MAX_MANIFEST_SIZE, f"the referrers of {digest[:19]}")
    finally:
        resp.close()
    return manifests_of(raw, f"the referrers of {digest[:19]}")


def manifests_of(raw: bytes, what: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise RegistryError(f"{what} is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
        raise RegistryError(f"{what} is not an image index")
    return [m for m in doc["manifests"] if isinstance(m, dict)]


def find_zran_artifact(client: RegistryClient, ref: Reference, manifest_digest: str) -> dict[str, bytes] | None:
    """The zran indexes of the image ``manifest_digest`` in ``ref``'s repository: image layer
    digest -> index blob (verified), from its newest zran artifact that is still there;
    None if it has none."""
    listed = referrers(client, ref, manifest_digest) or []
    candidates = [
        m["digest"] for m in listed if m.get("artifactType") == ARTIFACT_TYPE and isinstance(m.get("digest"), str)
    ]
    for artifact in reversed(candidates):  # (the tag fallback appends: the last is the newest)
        try:
            raw, _, _ = client.get_manifest(ref, artifact)
        except ImageNotFound:  # a referrer deleted since it was listed (the tag's list is not kept by the registry)
            continue
        return artifact_indexes(client, ref, artifact, raw, manifest_digest)
    return None


def artifact_indexes(
    client: RegistryClient, ref: Reference, artifact: str, raw: bytes, manifest_digest: str
) -> dict[str, bytes] | None:
    """The index blobs a zran artifact's manifest names, each fetched and verified."""
    doc = json.loads(raw)  # (get_manifest made sure it is JSON)
    subject = doc.get("subject") if isinstance(doc, dict) else None
    if not isinstance(subject, dict) or doc.get("artifactType") != ARTIFACT_TYPE:
        raise RegistryError(f"manifest {artifact[:19]} of {ref.familiar_name} is not a zran artifact")
    if subject.get("digest") != manifest_digest:
        raise RegistryError(f"zran artifact {artifact[:19]} is about {str(subject.get('digest'))[:19]}, not this image")
    out: dict[str, bytes] = {}
    layers = doc.get("layers")
    for layer in layers if isinstance(layers, list) else []:
        desc = mf.Descriptor.from_json(layer)
        target = (desc.annotations or {}).get(LAYER_ANNOTATION)
        if desc.media_type == zran.MEDIA_TYPE and target:
            out[target] = client.get_blob(ref, desc.digest, desc.size, limit=zran.MAX_INDEX)
    return out or None
