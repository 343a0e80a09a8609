"""``commit --compression zstd``: a zstd layer, in an OCI manifest, through push, pull, save
and load, against the real kernel, a real docker-registry on 127.0.0.1 and skopeo."""

from __future__ import annotations

import json
import subprocess
import uuid

from tests.integration.conftest import Minidocker, _remove, one_error
from tests.support.registry import need_tool

ZSTD_MAGIC = bytes.fromhex("28b52ffd")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


def _inspect(md: Minidocker, name: str) -> dict:
    return json.loads(md.ok("image", "inspect", name).stdout)[0]


def _manifest_of(md: Minidocker, name: str) -> dict:
    digest = _inspect(md, name)["Descriptor"]["digest"]
    return json.loads((md.root / "blobs/sha256" / digest[7:]).read_text())


def test_zstd_commit_push_pull_save_load(md, registry, tmp_path):
    base = f"{registry.host}/busybox"
    md.ok("pull", "-q", base)
    name = f"z-{uuid.uuid4().hex[:8]}"
    md.ok("run", "--network", "none", "--name", name, base, "sh", "-c", "echo zstd-made > /made; rm /etc/group")
    repo = f"{registry.host}/zstd-{uuid.uuid4().hex[:8]}"
    image_id = md.ok("commit", "--compression", "zstd", name, f"{repo}:v1").stdout.strip()

    # inspect shows the new layer; the manifest is OCI and names it as zstd; the blob is zstd
    image = _inspect(md, f"{repo}:v1")
    assert image["Id"] == image_id
    assert len(image["RootFS"]["Layers"]) == len(_inspect(md, base)["RootFS"]["Layers"]) + 1
    manifest = _manifest_of(md, f"{repo}:v1")
    assert manifest["mediaType"] == OCI_MANIFEST
    top = manifest["layers"][-1]
    assert top["mediaType"] == OCI_LAYER_ZSTD
    assert (md.root / "blobs/sha256" / top["digest"][7:]).read_bytes()[:4] == ZSTD_MAGIC

    # pushed; the registry serves an OCI manifest with the zstd layer (skopeo reads it raw)
    md.ok("push", "-q", f"{repo}:v1")
    raw = subprocess.run(
        [need_tool("skopeo", "skopeo"), "inspect", "--raw", "--tls-verify=false", f"docker://{repo}:v1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert raw.returncode == 0, raw.stderr
    served = json.loads(raw.stdout)
    assert served["mediaType"] == OCI_MANIFEST and served["layers"][-1] == top

    # pulled into a second store: the same image, and a container sees the committed files
    other = Minidocker(tmp_path / "other-root", tmp_path / "other-config")
    try:
        other.ok("pull", "-q", f"{repo}:v1")
        assert _inspect(other, f"{repo}:v1")["Id"] == image_id
        r = other.ok("run", "--rm", "--network", "none", f"{repo}:v1", "sh", "-c", "cat /made; ls /etc/group || :")
        assert r.stdout == "zstd-made\n"
    finally:
        _remove(other, tmp_path / "other-root")

    # saved, and loaded into a third store: the same image, the same files
    archive = tmp_path / "zstd.tar"
    md.ok("save", "-o", str(archive), f"{repo}:v1")
    third = Minidocker(tmp_path / "third-root", tmp_path / "third-config")
    try:
        third.ok("load", "-i", str(archive))
        assert _inspect(third, f"{repo}:v1")["Id"] == image_id
        r = third.ok("run", "--rm", "--network", "none", f"{repo}:v1", "cat", "/made")
        assert r.stdout == "zstd-made\n"
    finally:
        _remove(third, tmp_path / "third-root")
    md.ok("rm", name)


def test_commit_refuses_an_unknown_compression(md_run, bb):
    md = md_run
    cid = md.ok("run", "-d", "--network", "none", bb, "sh", "-c", "echo x > /x").stdout.strip()
    md.ok("wait", cid)
    before = md.ok("images", "-aq", "--no-trunc").stdout
    try:
        for argv in (["--compression", "xz"], ["--compression=brotli"], ["--compression", ""]):
            r = md("commit", *argv, cid, f"never-{uuid.uuid4().hex[:8]}")
            assert r.returncode == 125, r.stderr
            assert one_error(r.stderr) and len(r.stderr.strip().splitlines()) == 1, r.stderr
            assert "--compression" in r.stderr and "gzip or zstd" in r.stderr
        assert md.ok("images", "-aq", "--no-trunc").stdout == before
    finally:
        md("rm", "-f", cid)
