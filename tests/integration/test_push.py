"""``minidocker push`` against real registry processes, checked with skopeo and umoci."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import Minidocker, _remove, busybox_store, one_error
from tests.support.oci import layout_manifest, read_blob
from tests.support.registry import need_tool, start_registry
from tests.support.trees import FaultyRegistry, tree


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def pmd(tmp_path_factory, registry):
    """A store of this module's own with busybox pulled from ``registry``."""
    with busybox_store(tmp_path_factory, registry, "push") as (m, _base):
        yield m


@pytest.fixture
def fresh_registry(tmp_path):
    """An empty registry for one test: nothing in it to mount from."""
    reg = start_registry(tmp_path / "fresh")
    try:
        yield reg
    finally:
        reg.stop()


def blob_requests(reg) -> list[tuple[str, str, int]]:
    return [(r["method"], r["path"], r["status"]) for r in reg.requests if "/blobs/" in r["path"]]


def skopeo(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([need_tool("skopeo", "skopeo"), *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"skopeo {' '.join(args)}:\n{r.stderr}"
    return r


def test_push_uploads_then_skips_and_skopeo_agrees(pmd, registry, fresh_registry, image_layouts, tmp_path):
    src = f"{registry.host}/busybox:latest"
    dst = f"{fresh_registry.host}/{unique('copy')}:v1"
    pmd.ok("tag", src, dst)
    r = pmd.ok("push", dst)
    manifest, manifest_digest = layout_manifest(image_layouts["busybox"])
    size = len(read_blob(image_layouts["busybox"], manifest_digest))
    assert r.stdout == f"v1: digest: {manifest_digest} size: {size}\n"
    assert "The push refers to repository" in r.stderr and "Pushed" in r.stderr
    # every blob went up through an upload session: POST 202, then the PUT that closes it
    reqs = blob_requests(fresh_registry)
    posts = [x for x in reqs if x[0] == "POST"]
    puts = [x for x in reqs if x[0] == "PUT" and "digest=" in x[1]]
    assert len(posts) == len(puts) == 1 + len(manifest["layers"]), reqs
    assert all(status == 202 for _, _, status in posts) and all(status == 201 for _, _, status in puts)
    # the same bytes: the registry names the image by the digest the layout (and pull) had
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{dst}").stdout)
    assert info["Digest"] == manifest_digest
    # a second push finds every blob there: HEADs only, no upload at all
    fresh_registry.requests.clear()
    again = pmd.ok("push", dst)
    assert again.stderr.count("Layer already exists") == len(manifest["layers"]) + 1  # + the config
    assert {m for m, _, _ in blob_requests(fresh_registry)} == {"HEAD"}
    # the pushed repository is now one of the image's repo digests
    pushed = json.loads(pmd.ok("inspect", dst).stdout)[0]
    assert f"{dst.rsplit(':', 1)[0]}@{manifest_digest}" in pushed["RepoDigests"]
    # skopeo copies it (verifying every digest) and umoci unpacks the same files we have
    oci_dir = tmp_path / "oci"
    skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{dst}", f"oci:{oci_dir}:v1")
    bundle = tmp_path / "bundle"
    u = subprocess.run(
        [need_tool("umoci", "umoci"), "unpack", "--image", f"{oci_dir}:v1", str(bundle)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert u.returncode == 0, u.stderr
    lower = Path(pushed["GraphDriver"]["Data"]["LowerDir"])
    ours, theirs = tree(lower), tree(bundle / "rootfs")
    assert len(ours) > 100 and ours == theirs


def test_push_rmi_pull_back_gives_the_same_image(md, registry, fresh_registry):
    md.ok("pull", "-q", f"{registry.host}/busybox")
    dst = f"{fresh_registry.host}/{unique('roundtrip')}:latest"
    md.ok("tag", f"{registry.host}/busybox", dst)
    before = json.loads(md.ok("inspect", dst).stdout)[0]
    digest = md.ok("push", dst).stdout.split()[2]
    md.ok("rmi", "-f", before["Id"])
    assert md.ok("images", "-q").stdout == ""
    md.ok("pull", "-q", dst)
    after = json.loads(md.ok("inspect", dst).stdout)[0]
    assert after["Id"] == before["Id"]
    assert after["RepoDigests"] == [f"{dst.rsplit(':', 1)[0]}@{digest}"]
    assert before["RepoDigests"] == [f"{registry.host}/busybox@{digest}"]  # the bytes pulled = pushed
    md.ok("run", "--rm", dst, "true")


def test_cross_repository_mount(pmd, registry):
    dst = f"{registry.host}/{unique('mounted')}:v1"
    pmd.ok("tag", f"{registry.host}/busybox", dst)
    registry.requests.clear()
    r = pmd.ok("push", dst)
    reqs = blob_requests(registry)
    quiet = pmd.ok("push", "-q", dst)
    assert quiet.stdout == f"{dst}\n" and quiet.stderr == ""
    mounts = [x for x in reqs if x[0] == "POST" and "mount=sha256" in x[1] and "from=busybox" in x[1]]
    assert mounts and all(status == 201 for _, _, status in mounts), reqs  # 201: linked, no upload
    assert not [x for x in reqs if x[0] in ("PATCH", "PUT")], reqs  # not one byte of a blob sent
    assert "Mounted from busybox" in r.stderr
    assert json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{dst}").stdout)["Name"]


def test_chunked_upload_uses_each_location(pmd, registry, fresh_registry, monkeypatch, tmp_path):
    """Big blobs go up in PATCHes with Content-Range; skopeo then verifies every digest."""
    from minidocker import api

    dst = f"{fresh_registry.host}/{unique('chunked')}:v1"
    pmd.ok("tag", f"{registry.host}/busybox", dst)
    monkeypatch.setenv("MINIDOCKER_CONFIG", str(pmd.config))
    result = api.push(dst, root=pmd.root, chunk_size=256 << 10)
    patches = [x for x in blob_requests(fresh_registry) if x[0] == "PATCH"]
    assert len(patches) >= 3 and all(status == 202 for _, _, status in patches), patches
    assert len({p for _, p, _ in patches}) == len(patches)  # each to the Location the last answer gave
    assert result.uploaded == 2 and result.mounted == result.skipped == 0
    skopeo("copy", "--quiet", "--src-tls-verify=false", f"docker://{dst}", f"oci:{tmp_path / 'oci'}:v1")


def test_push_with_basic_auth(pmd, registry, basic_registry):
    dst = f"{basic_registry.host}/{unique('basic')}:v1"
    pmd.ok("tag", f"{registry.host}/busybox", dst)
    r = pmd("push", dst)
    assert r.returncode == 125 and one_error(r.stderr) and "login" in r.stderr
    pmd.ok(
        "login", "-u", basic_registry.username, "--password-stdin", basic_registry.host, input=basic_registry.password
    )
    pmd.ok("push", dst)
    info = json.loads(
        skopeo(
            "inspect",
            "--tls-verify=false",
            "--creds",
            f"{basic_registry.username}:{basic_registry.password}",
            f"docker://{dst}",
        ).stdout
    )
    assert info["Digest"] == json.loads(pmd.ok("inspect", dst).stdout)[0]["Descriptor"]["digest"]


def test_push_with_a_bearer_token(tmp_path, registry, token_registry):
    m = Minidocker(tmp_path / "root", tmp_path / "config")
    try:
        m.ok("pull", "-q", f"{registry.host}/busybox")
        repo = f"private/{unique('pushed')}"
        dst = f"{token_registry.host}/{repo}:v1"
        m.ok("tag", f"{registry.host}/busybox", dst)
        anon = m("push", dst)  # anonymous tokens never allow push
        assert anon.returncode == 125 and one_error(anon.stderr) and "denied" in anon.stderr
        m.ok("login", "-u", token_registry.username, "-p", token_registry.password, token_registry.host)
        token_registry.token_requests.clear()
        m.ok("push", dst)
        scopes = [s for t in token_registry.token_requests for s in t["scopes"]]
        assert f"repository:{repo}:push,pull" in scopes, token_registry.token_requests
        assert all(t["username"] == token_registry.username for t in token_registry.token_requests)
        # a mount across repositories asks one token for both: push here, pull there
        dst2 = f"{token_registry.host}/private/{unique('again')}:v1"
        m.ok("tag", dst, dst2)
        token_registry.token_requests.clear()
        r = m.ok("push", dst2)
        assert "Mounted from" in r.stderr
        assert any(
            f"repository:{repo}:pull" in t["scopes"] and len(t["scopes"]) == 2 for t in token_registry.token_requests
        ), token_registry.token_requests
    finally:
        _remove(m, tmp_path / "root")


@pytest.mark.parametrize("status", [403, 500])
def test_registry_refusal_is_one_error(pmd, registry, status):
    faulty = FaultyRegistry(status)
    try:
        dst = f"{faulty.host}/refused:v1"
        pmd.ok("tag", f"{registry.host}/busybox", dst)
        r = pmd("push", dst)
        assert r.returncode == 125 and one_error(r.stderr), r.stderr
        assert ("denied" in r.stderr) if status == 403 else ("refused" in r.stderr)
        assert any(method == "POST" for method, _ in faulty.requests)
    finally:
        faulty.stop()


def test_registry_down_and_unknown_tag(pmd, registry):
    from tests.support.registry import free_port

    dst = f"127.0.0.1:{free_port()}/down:v1"
    pmd.ok("tag", f"{registry.host}/busybox", dst)
    r = pmd("push", dst)
    assert r.returncode == 125 and one_error(r.stderr) and "unreachable" in r.stderr
    r = pmd("push", f"{registry.host}/never-tagged:v1")
    assert r.returncode == 125 and one_error(r.stderr) and "does not exist locally" in r.stderr
