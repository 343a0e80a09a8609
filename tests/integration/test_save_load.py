"""``minidocker save`` and ``load``: docker-archive and OCI layouts, checked with skopeo;
tampered and hostile archives refused with the store unchanged."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.integration.conftest import MINIDOCKER, busybox_store, one_error
from tests.integration.layouts import make_layout, tar_of
from tests.integration.test_pull import assert_store_empty
from tests.support.oci import layout_config, layout_manifest
from tests.support.registry import need_tool


@pytest.fixture(scope="module")
def saved(tmp_path_factory, registry):
    """busybox pulled into a store of this module, saved once: (store, name, image ID, tar)."""
    with busybox_store(tmp_path_factory, registry, "save") as (m, base):
        name = f"{registry.host}/busybox:latest"
        image_id = json.loads(m.ok("inspect", name).stdout)[0]["Id"]
        out = base / "busybox.tar"
        m.ok("save", "-o", str(out), name)
        yield m, name, image_id, out


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() if m.isreg() else None for m in tar.getmembers()}


def rewrite(src: Path, dst: Path, change) -> None:
    """Copy a tar member by member; ``change(info, data)`` returns (info, data) or None to drop."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read() if m.isreg() else None
            got = change(m, data)
            if got is None:
                continue
            info, data = got
            if data is not None:
                info.size = len(data)
            tout.addfile(info, io.BytesIO(data) if data is not None else None)


def skopeo(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([need_tool("skopeo", "skopeo"), *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"skopeo {' '.join(args)}:\n{r.stderr}"
    return r


def test_saved_archive_is_docker_and_oci(saved, tmp_path):
    m, name, image_id, out = saved
    files = members(out)
    manifest = json.loads(files["manifest.json"])
    assert manifest == [{"Config": f"blobs/sha256/{image_id[7:]}", "RepoTags": [name], "Layers": manifest[0]["Layers"]}]
    config = json.loads(files[manifest[0]["Config"]])
    # each layer is the uncompressed tar: its sha256 is the diff_id the config names
    assert [f"sha256:{hashlib.sha256(files[p]).hexdigest()}" for p in manifest[0]["Layers"]] == config["rootfs"][
        "diff_ids"
    ]
    assert all(tarfile.open(fileobj=io.BytesIO(files[p])).getmembers() for p in manifest[0]["Layers"])
    repo, tag = name.rsplit(":", 1)
    assert json.loads(files["repositories"]) == {repo: {tag: manifest[0]["Layers"][-1].rsplit("/", 1)[1]}}
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    assert index["manifests"][0]["annotations"] == {
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": "latest",
    }
    # both readers of the same tar verify every digest as they copy
    skopeo("copy", "--quiet", f"docker-archive:{out}", f"oci:{tmp_path / 'a'}:x")
    skopeo("copy", "--quiet", f"oci-archive:{out}", f"oci:{tmp_path / 'b'}:x")
    # to stdout when it is not a terminal: the same bytes (save is deterministic)
    piped = subprocess.run([*MINIDOCKER, "save", name], capture_output=True, env=m.env(), timeout=120)
    assert piped.returncode == 0 and piped.stdout == out.read_bytes()


def test_save_refuses_a_terminal_and_unknown_images(saved, tmp_path):
    m, name, _, _ = saved
    r = m("save", "-o", str(tmp_path / "x.tar"), "no-such-image")
    assert r.returncode == 125 and one_error(r.stderr) and not list(tmp_path.iterdir())
    import os
    import pty

    controller, terminal = pty.openpty()
    try:
        p = subprocess.run(
            [*MINIDOCKER, "save", name], stdout=terminal, stderr=subprocess.PIPE, text=True, env=m.env(), timeout=60
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert p.returncode == 125 and "cowardly refusing" in p.stderr


def test_save_then_load_into_a_fresh_store_runs(saved, md):
    _, name, image_id, out = saved
    r = md.ok("load", "-i", str(out))
    assert r.stdout == f"Loaded image: {name}\n"
    info = json.loads(md.ok("inspect", name).stdout)[0]
    assert info["Id"] == image_id and info["RepoTags"] == [name]
    assert md.ok("run", "--rm", name, "sh", "-c", "echo loaded").stdout == "loaded\n"
    # loading it again changes nothing, from stdin this time, quietly
    with open(out, "rb") as f:
        again = subprocess.run(
            [*MINIDOCKER, "load", "-q"], stdin=f, capture_output=True, text=True, env=md.env(), timeout=120
        )
    assert again.returncode == 0 and again.stdout == f"Loaded image: {name}\n" and again.stderr == ""
    assert md.ok("images", "-q").stdout.split() == [image_id[7:19]]


def test_skopeo_docker_archive_loads(md, image_layouts, tmp_path):
    layout = image_layouts["busybox"]
    archive = tmp_path / "bb-docker.tar"
    skopeo("copy", "--quiet", f"oci:{layout}:latest", f"docker-archive:{archive}:skopeo/busybox:v2")
    r = md.ok("load", "-i", str(archive))
    assert r.stdout == "Loaded image: skopeo/busybox:v2\n"
    assert (
        json.loads(md.ok("inspect", "skopeo/busybox:v2").stdout)[0]["Id"]
        == layout_manifest(layout)[0]["config"]["digest"]
    )
    md.ok("run", "--rm", "skopeo/busybox:v2", "true")
    # the same archive gzipped loads too
    gz = tmp_path / "bb-docker.tar.gz"
    gz.write_bytes(gzip.compress(archive.read_bytes(), compresslevel=1))
    md.ok("rmi", "skopeo/busybox:v2")
    assert md.ok("load", "-i", str(gz)).stdout == "Loaded image: skopeo/busybox:v2\n"


def test_oci_layout_tar_and_directory_load(md, image_layouts, tmp_path):
    layout = image_layouts["busybox"]
    manifest, manifest_digest = layout_manifest(layout)
    archive = tmp_path / "layout.tar"
    subprocess.run(["tar", "-C", str(layout), "-cf", str(archive), "."], check=True)
    r = md.ok("load", "-i", str(archive))
    image_id = manifest["config"]["digest"]
    assert r.stdout == f"Loaded image ID: {image_id}\n"  # ref.name "latest" names no repository
    info = json.loads(md.ok("inspect", image_id).stdout)[0]
    assert info["Descriptor"]["digest"] == manifest_digest  # the layout's own manifest, kept
    md.ok("run", "--rm", image_id[7:19], "true")
    # a layout directory whose index names the image fully
    named = make_layout(tmp_path / "named", tar_of(("file", "hello", b"hi\n")), base=layout)
    idx = json.loads((named / "index.json").read_text())
    idx["manifests"][0]["annotations"]["io.containerd.image.name"] = "example.com/named:v1"
    (named / "index.json").write_text(json.dumps(idx))
    assert md.ok("load", "-i", str(named)).stdout == "Loaded image: example.com/named:v1\n"
    assert md.ok("run", "--rm", "example.com/named:v1", "cat", "/hello").stdout == "hi\n"
    assert (
        json.loads(md.ok("inspect", "example.com/named:v1").stdout)[0]["Config"]["Cmd"]
        == layout_config(layout)["config"]["Cmd"]
    )


def _tamper_layer(info, data):
    if info.name.startswith("blobs/sha256/") and data and len(data) > 100_000:
        data = data[:-2048] + b"X" * 1024 + data[-1024:]  # inside the tar's end padding: still a tar
    return info, data


def _old_style(info, data):
    """Docker's pre-25 layout, ``<id>/layer.tar``, gzipped, with a layer changed: no name
    gives its digest, so only the diff_id, found while it is unpacked, catches it."""
    if info.name == "manifest.json":
        doc = json.loads(data)
        doc[0]["Layers"] = [f"{p.rsplit('/', 1)[1][:12]}/layer.tar" for p in doc[0]["Layers"]]
        return info, json.dumps(doc).encode()
    if info.name.startswith("blobs/sha256/") and data and len(data) > 100_000:
        info, data = _tamper_layer(info, data)
        info.name = f"{info.name.rsplit('/', 1)[1][:12]}/layer.tar"
        return info, gzip.compress(data, compresslevel=1)
    if info.name == "index.json":
        return None
    return info, data


def _dotdot(info, data):
    if info.name == "repositories":
        info.name = "../../escaped"
    return info, data


@pytest.mark.parametrize("damage", ["tampered-layer", "old-style-tampered", "dotdot-member", "truncated", "not-a-tar"])
def test_bad_archive_is_refused_and_nothing_stored(saved, md, tmp_path, damage):
    _, _, _, out = saved
    bad = tmp_path / "bad.tar"
    if damage == "tampered-layer":
        rewrite(out, bad, _tamper_layer)
    elif damage == "old-style-tampered":
        rewrite(out, bad, _old_style)
    elif damage == "dotdot-member":
        rewrite(out, bad, _dotdot)
    elif damage == "truncated":
        data = out.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        bad.write_bytes(b"this is not a tar archive\n" * 100)
    r = md("load", "-i", str(bad))
    assert r.returncode == 125 and one_error(r.stderr), r.stderr
    assert_store_empty(md.root)
    assert not (tmp_path.parent / "escaped").exists()


def test_hostile_layer_in_an_archive_is_refused(md, image_layouts, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    layout = make_layout(
        tmp_path / "hostile",
        tar_of(("symlink", "escape", str(outside)), ("file", "escape/owned", b"x")),
        base=image_layouts["busybox"],
    )
    r = md("load", "-i", str(layout))
    assert r.returncode == 125 and one_error(r.stderr) and "symlink" in r.stderr
    assert list(outside.iterdir()) == []
    assert_store_empty(md.root)
