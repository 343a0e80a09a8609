"""OCI and Docker manifests, indexes and image configs; choosing a platform.

A registry stores an image as a small tree of JSON documents and blobs, each named by the
sha256 of its bytes (its *digest*)::

    index (manifest list)  --platform-->  manifest  -->  config (the image's JSON)
                                                   \\-->  layers (compressed tars)

An index lists one manifest per platform (``linux/amd64``, ``linux/arm64/v8`` ...); a
manifest names the config and the layers; the config holds the run settings (Env, Cmd, ...)
and ``rootfs.diff_ids``: the digests of the *uncompressed* layers, which are what identify a
layer once it is unpacked. The image ID docker shows is the config's digest.

Try it: ``skopeo inspect --raw docker://HOST/busybox`` prints a manifest.
"""

from __future__ import annotations

import json
import os

from minidocker.errors import RegistryError
from minidocker.record import field, record

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import Any

# Media types (OCI image-spec and Docker's image manifest v2 schema 2).
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
# What we send in Accept when asking for a manifest: every form we can read.
ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)


def compression_of(media_type: str) -> str:
    """``gzip``, ``zstd`` or ``none``, from a layer's media type."""
    if media_type.endswith("+zstd") or media_type.endswith(".zstd"):
        return "zstd"
    if media_type.endswith("gzip"):
        return "gzip"
    if media_type.endswith(".tar") or media_type == "application/x-tar":
        return "none"
    raise RegistryError(f"unsupported layer media type {media_type}")


def sha256_digest(data: bytes) -> str:
    import hashlib  # here, not at the top: `run` never needs it, and it costs ~2 ms to load

    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).

    A chain ID names a layer *together with everything below it*, which is what an overlay
    lowerdir stack is: two images share an unpacked layer only if they share its whole chain.
    """
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(diff_id if not out else sha256_digest(f"{out[-1]} {diff_id}".encode()))
    return out


@record(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise RegistryError(f"invalid platform {text!r}", hint="write os/arch[/variant], e.g. linux/arm64/v8")
        os_, arch = parts[0], normalize_arch(parts[1])
        variant = parts[2] if len(parts) == 3 else None
        if arch == "arm64" and variant == "v8":
            variant = None  # linux/arm64 and linux/arm64/v8 name the same thing
        return cls(os_, arch, variant)

    @classmethod
    def host(cls) -> Platform:
        return cls("linux", normalize_arch(os.uname().machine))

    def matches(self, other: dict[str, Any]) -> bool:
        arch = normalize_arch(other.get("architecture", ""))
        variant = other.get("variant") or None
        if arch == "arm64" and variant == "v8":
            variant = None
        if other.get("os") != self.os or arch != self.architecture:
            return False
        return self.variant is None or variant == self.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


_ARCH = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armv7l": "arm",
    "i386": "386",
    "i686": "386",
}


def normalize_arch(arch: str) -> str:
    return _ARCH.get(arch, arch)


@record(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] | None = None  # e.g. an eStargz layer's TOC digest (image/estargz.py)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Descriptor:
        try:
            notes = d.get("annotations")
            desc = cls(
                d["mediaType"],
                d["digest"],
                int(d["size"]),
                d.get("platform"),
                tuple(d.get("urls") or ()),
                {str(k): str(v) for k, v in notes.items()} if isinstance(notes, dict) and notes else None,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise RegistryError(f"malformed descriptor in manifest: {e}") from None
        if desc.size < 0:  # every read is bounded by it: it must be a size
            raise RegistryError(f"malformed descriptor in manifest: size {desc.size}")
        return desc

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            d["platform"] = self.platform
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d


@record
class Manifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor] = field(default_factory=list)


def detect_media_type(raw: bytes, content_type: str | None) -> str:
    """A manifest's type: its own ``mediaType`` field, else the HTTP Content-Type."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise RegistryError("the registry sent a manifest that is not JSON") from None
    mt = doc.get("mediaType") if isinstance(doc, dict) else None
    if not mt and content_type:
        mt = content_type.split(";")[0].strip()
    if not mt and isinstance(doc, dict):
        mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    return mt or ""


def parse_manifest(raw: bytes) -> Manifest:
    doc = json.loads(raw)
    mt = doc.get("mediaType") or OCI_MANIFEST
    if doc.get("schemaVersion") != 2 or "config" not in doc:
        raise RegistryError("unsupported manifest: only schema 2 and OCI manifests are supported")
    return Manifest(
        mt, Descriptor.from_json(doc["config"]), [Descriptor.from_json(layer) for layer in doc.get("layers", [])]
    )


def select_platform(raw_index: bytes, want: Platform) -> Descriptor:
    """Pick the manifest for ``want`` from an index (manifest list)."""
    doc = json.loads(raw_index)
    entries = [Descriptor.from_json(m) for m in doc.get("manifests", [])]
    candidates = [e for e in entries if e.media_type not in INDEX_TYPES and e.platform and want.matches(e.platform)]
    if not candidates:
        have = sorted(
            {
                str(Platform(p.get("os", "?"), p.get("architecture", "?"), p.get("variant")))
                for e in entries
                if (p := e.platform)
            }
        )
        raise RegistryError(
            f"no matching manifest for {want} in the manifest list entries",
            hint=f"the image is available for: {', '.join(have) or 'no platform'}",
        )
    return candidates[0]
