"""Small OCI image layouts made by a test itself (for images no recipe should ship:
hostile layers, odd configs)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Packed:
    """A layer for ``make_layout`` that is compressed already: the gzip blob, and the diff_id
    of the tar inside it (a bomb too big to pass as a tar)."""

    blob: bytes
    diff_id: str


def _blob(layout: Path, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest[7:]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def make_layout(
    layout: Path, *layer_tars: bytes | Packed, config: dict[str, Any] | None = None, base: Path | None = None
) -> Path:
    """An OCI image layout with one image: the layers of ``base`` (another layout), then
    ``layer_tars`` (gzipped, unless ``Packed``), and ``config`` merged into the image config's
    ``config``."""
    (layout / "blobs/sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    layers, diff_ids, run_config = [], [], {"Cmd": ["sh"]}
    if base is not None:
        idx = json.loads((base / "index.json").read_text())["manifests"][0]["digest"]
        man = json.loads((base / "blobs/sha256" / idx[7:]).read_text())
        cfg = json.loads((base / "blobs/sha256" / man["config"]["digest"][7:]).read_text())
        for desc in man["layers"]:
            (layout / "blobs/sha256" / desc["digest"][7:]).write_bytes(
                (base / "blobs/sha256" / desc["digest"][7:]).read_bytes()
            )
            layers.append(desc)
        diff_ids = list(cfg["rootfs"]["diff_ids"])
        run_config = dict(cfg.get("config") or {})
    for tar_bytes in layer_tars:
        if not isinstance(tar_bytes, Packed):
            tar_bytes = Packed(gzip.compress(tar_bytes, mtime=0), "sha256:" + hashlib.sha256(tar_bytes).hexdigest())
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(layout, tar_bytes.blob)})
        diff_ids.append(tar_bytes.diff_id)
    run_config.update(config or {})
    cfg_desc = _blob(
        layout,
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": "2026-01-01T00:00:00Z",
                "config": run_config,
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode(),
    )
    manifest = _blob(
        layout,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg_desc},
                "layers": layers,
            }
        ).encode(),
    )
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        **manifest,
                        "annotations": {"org.opencontainers.image.ref.name": "latest"},
                    }
                ],
            }
        )
    )
    return layout


def tar_of(*members: tuple) -> bytes:
    """A tar from (kind, name, arg) tuples: ("file", name, bytes), ("dir", name, None),
    ("symlink", name, target), ("hardlink", name, target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, arg in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(arg)
                info.mode = 0o755
                tar.addfile(info, io.BytesIO(arg))
                continue
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, arg
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, arg
            tar.addfile(info)
    return buf.getvalue()
