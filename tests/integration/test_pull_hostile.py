"""Hostile layers served by a real registry: refused, and nothing written outside the store."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest


def _blob(layout: Path, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest[7:]).write_bytes(data)
    return {"digest": digest, "size": len(data)}


def make_layout(layout: Path, tar_bytes: bytes) -> Path:
    """An OCI image layout holding one image whose one layer is ``tar_bytes`` (gzipped)."""
    (layout / "blobs/sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    layer = _blob(layout, gzip.compress(tar_bytes, mtime=0))
    config = _blob(layout, json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]},
    }).encode())
    manifest = _blob(layout, json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
    }).encode())
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    return layout


def tar_of(*members: tuple) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, arg in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(arg)
                tar.addfile(info, io.BytesIO(arg))
                continue
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, arg
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, arg
            tar.addfile(info)
    return buf.getvalue()


HOSTILE = {
    "dotdot": [("file", "../../../../../../SENTINEL_DIR/owned", b"x")],
    "absolute": [("file", "SENTINEL_ABS/owned", b"x")],
    "symlink-then-write": [("symlink", "escape", "SENTINEL_DIR"), ("file", "escape/owned", b"x")],
    "symlink-to-root": [("symlink", "root", "/"), ("file", "root/SENTINEL_REL/owned", b"x")],
    "hardlink-outside": [("hardlink", "passwd", "../../../../../../SENTINEL_DIR/secret")],
    "hardlink-through-symlink": [("symlink", "s", "SENTINEL_DIR"), ("hardlink", "h", "s/secret")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_refused(md, own_registry, tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret"
    secret.write_text("do not touch")
    members = []
    for kind, name, arg in HOSTILE[case]:
        name = name.replace("SENTINEL_ABS", str(outside)).replace("SENTINEL_DIR", str(outside))
        name = name.replace("SENTINEL_REL", str(outside).lstrip("/"))
        arg = arg.replace(b"SENTINEL_DIR", str(outside).encode()) if isinstance(arg, bytes) else \
            arg.replace("SENTINEL_DIR", str(outside))
        members.append((kind, name.replace("//", "/"), arg))
    layout = make_layout(tmp_path / "layout", tar_of(*members))
    own_registry.seed(layout, "hostile")
    r = md("pull", f"{own_registry.host}/hostile")
    assert r.returncode == 125, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2 and "Traceback" not in r.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert secret.read_text() == "do not touch" and secret.stat().st_nlink == 1
    layers = md.root / "layers"
    assert not layers.exists() or list(layers.iterdir()) == []
    index = md.root / "images/index.json"
    assert not index.exists() or json.loads(index.read_text())["images"] == {}

