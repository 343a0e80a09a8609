"""Reading the OCI image layouts that images/build.py makes, and a reference unpacker.

``unpack_overlay_form`` is a test oracle, not minidocker's unpacker: the smallest correct
way to turn one layer tar into an overlayfs lowerdir (whiteouts -> 0/0 char devices,
opaque markers -> ``trusted.overlay.opaque=y``), used to check images/layers_expect.py
against the kernel's own overlayfs. Trusted input only (our own images): no path checks.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
from pathlib import Path

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


def read_blob(layout: Path, digest: str) -> bytes:
    algorithm, hexdigest = digest.split(":", 1)
    return (Path(layout) / "blobs" / algorithm / hexdigest).read_bytes()


def read_json_blob(layout: Path, digest: str) -> dict:
    return json.loads(read_blob(layout, digest))


def layout_index(layout: Path) -> dict:
    return json.loads((Path(layout) / "index.json").read_text())


def layout_top(layout: Path) -> tuple[dict, dict]:
    """(the descriptor index.json tags, the document it points to: manifest or index)."""
    desc = layout_index(layout)["manifests"][0]
    return desc, read_json_blob(layout, desc["digest"])


def layout_manifest(layout: Path, architecture: str = "amd64") -> tuple[dict, str]:
    """(manifest, its digest) of the layout's image; through an index, for ``architecture``."""
    desc, doc = layout_top(layout)
    if "manifests" in doc:
        desc = next(m for m in doc["manifests"] if m["platform"]["architecture"] == architecture)
        doc = read_json_blob(layout, desc["digest"])
    return doc, desc["digest"]


def layout_config(layout: Path, architecture: str = "amd64") -> dict:
    manifest, _ = layout_manifest(layout, architecture)
    return read_json_blob(layout, manifest["config"]["digest"])


def layer_tar(layout: Path, desc: dict) -> bytes:
    """A layer's uncompressed tar, whatever its media type says it is."""
    data = read_blob(layout, desc["digest"])
    media_type = desc["mediaType"]
    if media_type.endswith("+gzip") or media_type.endswith(".tar.gzip"):
        return gzip.decompress(data)
    if media_type.endswith("+zstd") or media_type.endswith(".tar.zstd"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    if media_type.endswith(".tar") or media_type.endswith("rootfs.diff.tar"):
        return data
    raise ValueError(f"unknown layer media type {media_type}")


def unpack_overlay_form(tar: bytes, dest: Path) -> None:
    """Unpack one layer tar into ``dest`` as an overlayfs lowerdir (needs root for devices,
    owners and trusted.* xattrs)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        members = tf.getmembers()
        normal = [m for m in members if not os.path.basename(m.name).startswith(WHITEOUT_PREFIX)]
        tf.extractall(dest, members=normal, numeric_owner=True, filter="fully_trusted")
        for m in normal:
            for key, value in m.pax_headers.items():
                if key.startswith("SCHILY.xattr."):
                    os.setxattr(dest / m.name, key[len("SCHILY.xattr.") :], value.encode(), follow_symlinks=False)
        for m in members:
            parent, base = os.path.split(m.name)
            if base == OPAQUE_MARKER:
                os.setxattr(dest / parent, "trusted.overlay.opaque", b"y")
            elif base.startswith(WHITEOUT_PREFIX):
                target = dest / parent / base[len(WHITEOUT_PREFIX) :]
                os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        # extractall set directory mtimes before the whiteouts were made; nothing checks them.
