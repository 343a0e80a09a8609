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

Pushing it: the blobs, then the manifest *by digest* (it has no tag of its own). A registry
that keeps the list of an image's referrers itself says so by an ``OCI-Subject`` header in
its answer to that PUT. Without the header the client keeps the list, in the tag fallback
below: Debian's docker-registry (distribution 2.8) has no referrers API, so it gets the tag;
so does go-containerregistry's pkg/registry (0.20), which has the API but never sends the
header (the spec's rule: no header, the client writes the tag; it costs one small index).

Finding it again, given only the image's manifest digest, two ways:

    referrers API    GET /v2/<name>/referrers/<digest>?artifactType=...: an image index
                     listing every manifest whose subject is <digest>, which the registry
                     keeps itself. Anything but 200 (distribution 2.8: 404) means there is
                     no such API: the spec's cue to read the tag.
    tag fallback     an image index tagged ``sha256-<hex of the subject>``, which the client
                     reads, adds to, and writes back (read, merge, write; two writers at
                     once may lose one).

``find_zran_artifact`` asks the API first, then the tag if the API is missing or listed no
zran artifact of this image. Registries differ in what a listing says of each referrer. Its
``artifactType`` is, by the spec (1.1), the manifest's ``artifactType``, else its config's
media type; by the drafts before, when an image manifest had no ``artifactType`` and an
artifact was named by its config (go-containerregistry 0.20 still does), always the config's:
for our artifact, the empty blob's. And the ``?artifactType=`` filter is optional (a
registry that applied it says so by an ``OCI-Filters-Applied`` header; pkg/registry ignores
it and lists every referrer). So, from a listing:

    artifactType ours               fetched; if its manifest is not a zran artifact about this
                                    image, that is an error (the listing said it was)
    the empty blob's type, or none  maybe ours: fetched, and skipped if it is not
    any other                       someone else's (a signature, an SBOM): not fetched

Each manifest fetched is checked against its digest, and each index blob against the digest
the manifest names. Who may push an artifact may claim any index for the image: the index's
TOC is then believed (names, modes, owners), but a byte served is always a byte of the layer
(image/zran.py).

See it: ``curl -s http://127.0.0.1:PORT/v2/NAME/manifests/sha256-HEX -H 'Accept:
application/vnd.oci.image.index.v1+json'`` after ``minidocker push`` of an indexed image; the
API of a registry that has it (tests/support/registry.py ``start_referrers_registry``):
``curl -s http://127.0.0.1:PORT/v2/NAME/referrers/sha256:HEX``.
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
    registry said by ``OCI-Subject`` that it keeps referrers itself: a registry with the API
    that does not say so gets the tag too). Returns the artifact manifest's digest."""
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


def referrers_api(client: RegistryClient, ref: Reference, digest: str) -> list[dict[str, Any]] | None:
    """The descriptors ``GET /v2/<name>/referrers/<digest>?artifactType=...`` lists (all the
    referrers, if the registry ignores the filter); None when the registry has no such API
    (404, or anything but 200: the spec's cue to fall back to the tag)."""
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


def tag_fallback(client: RegistryClient, ref: Reference, digest: str) -> list[dict[str, Any]] | None:
    """The descriptors the index tagged ``sha256-<hex>`` lists; None if there is no such tag."""
    tag = fallback_tag(digest)
    try:
        raw, _, _ = client.get_manifest(ref, tag)
    except ImageNotFound:
        return None
    return manifests_of(raw, f"the tag {tag} of {ref.familiar_name}")


def find_zran_artifact(client: RegistryClient, ref: Reference, manifest_digest: str) -> dict[str, bytes] | None:
    """The zran indexes of the image ``manifest_digest`` in ``ref``'s repository: image layer
    digest -> index blob (verified), from its zran artifact that is still there (the last
    listed: the tag fallback appends); None if it has none. The referrers API first, then
    the tag fallback if the API is missing or listed no zran artifact of this image."""
    listed = referrers_api(client, ref, manifest_digest)
    found = first_zran_artifact(client, ref, manifest_digest, listed) if listed else None
    if found is None:
        tagged = tag_fallback(client, ref, manifest_digest)
        found = first_zran_artifact(client, ref, manifest_digest, tagged) if tagged else None
    return found


def candidates(listed: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """The descriptors of a listing worth fetching, as (digest, claimed), the last listed
    first: *claimed* ones (their artifactType is ours), then the ones that may be ours (no
    artifactType, or the empty blob's: a registry that names an artifact by its config)."""
    claimed, maybe = [], []
    for m in listed:
        digest, kind = m.get("digest"), m.get("artifactType")
        if not isinstance(digest, str):
            continue
        if kind == ARTIFACT_TYPE:
            claimed.append(digest)
        elif kind in (None, "", EMPTY_TYPE):
            maybe.append(digest)
    return [(d, True) for d in reversed(claimed)] + [(d, False) for d in reversed(maybe)]


def first_zran_artifact(
    client: RegistryClient, ref: Reference, manifest_digest: str, listed: list[dict[str, Any]]
) -> dict[str, bytes] | None:
    """The indexes of the first of ``listed``'s candidates that is a zran artifact about the
    image and names any; a claimed one that is not about it is an error, another is skipped."""
    for artifact, claimed in candidates(listed):
        try:
            raw, _, _ = client.get_manifest(ref, artifact)
        except ImageNotFound:  # a referrer deleted since it was listed (the tag's list is not kept by the registry)
            continue
        doc = json.loads(raw)  # (get_manifest made sure it is JSON)
        why = not_ours(doc, manifest_digest)
        if why is not None:
            if claimed:
                raise RegistryError(f"manifest {artifact[:19]} of {ref.familiar_name} {why}")
            continue  # (someone else's artifact, named by its empty config)
        indexes = artifact_indexes(client, ref, doc)
        if indexes:
            return indexes
    return None


def not_ours(doc: Any, manifest_digest: str) -> str | None:
    """None if the manifest ``doc`` is a zran artifact about ``manifest_digest``, else why not."""
    subject = doc.get("subject") if isinstance(doc, dict) else None
    if not isinstance(subject, dict) or doc.get("artifactType") != ARTIFACT_TYPE:
        return "is not a zran artifact"
    if subject.get("digest") != manifest_digest:
        return f"is a zran artifact about {str(subject.get('digest'))[:19]}, not this image"
    return None


def artifact_indexes(client: RegistryClient, ref: Reference, doc: dict[str, Any]) -> dict[str, bytes]:
    """The index blobs a zran artifact's manifest names, each fetched and verified."""
    out: dict[str, bytes] = {}
    layers = doc.get("layers")
    for layer in layers if isinstance(layers, list) else []:
        desc = mf.Descriptor.from_json(layer)
        target = (desc.annotations or {}).get(LAYER_ANNOTATION)
        if desc.media_type == zran.MEDIA_TYPE and target:
            out[target] = client.get_blob(ref, desc.digest, desc.size, limit=zran.MAX_INDEX)
    return out
