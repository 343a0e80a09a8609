"""eStargz images (issue #16, part 1): ``image convert --estargz``, ``push --estargz`` and
``build --estargz``, each blob checked by the format's reference reader (the Go ``estargz``
package, through tests/estargz-verify/main.go), pulled back and run by minidocker, and
pulled and run by podman, which knows nothing of our code."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from minidocker.image import estargz as es
from tests.integration.conftest import Minidocker, busybox_store, one_error
from tests.support.registry import ToolMissing, go_binary

REPO = Path(__file__).resolve().parents[2]
VERIFY_SOURCE = REPO / "tests" / "estargz-verify"
GOPATH = Path("/usr/share/gocode")
GO_LIBRARY = GOPATH / "src/github.com/containerd/stargz-snapshotter/estargz"


@pytest.fixture(scope="session")
def estargz_verify() -> Path:
    """Our Go check (tests/estargz-verify), built once with Debian's Go from Debian's Go
    sources of the estargz package (tests/support/registry.py ``go_binary``: offline, cached)."""
    if not GO_LIBRARY.is_dir():
        pytest.fail(
            "the Go estargz package is missing: apt-get install golang-github-containerd-stargz-snapshotter-dev",
            pytrace=False,
        )
    try:
        return go_binary(VERIFY_SOURCE, GOPATH)
    except ToolMissing as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def emd(tmp_path_factory, registry):
    """A store of this module's own with busybox pulled from ``registry``."""
    with busybox_store(tmp_path_factory, registry, "estargz") as (m, _base):
        yield m


def image_record(m: Minidocker, ref: str) -> tuple[dict, dict]:
    """(manifest, config) of ``ref`` in ``m``'s store, read from its files."""
    image_id = json.loads(m.ok("image", "inspect", ref).stdout)[0]["Id"]
    index = json.loads((m.root / "images" / "index.json").read_text())
    manifest = json.loads(blob(m, index["images"][image_id]["manifest"]).read_bytes())
    return manifest, json.loads(blob(m, image_id).read_bytes())


def blob(m: Minidocker, digest: str) -> Path:
    return m.root / "blobs" / "sha256" / digest.removeprefix("sha256:")


def check_estargz_image(m: Minidocker, ref: str, verify: Path) -> list[str]:
    """Every layer of ``ref``: eStargz by its annotations, by our reader and by the reference
    reader; its diff_id the sha256 of what it inflates to. Returns the Go check's lines."""
    manifest, config = image_record(m, ref)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert len(manifest["layers"]) == len(config["rootfs"]["diff_ids"]) >= 1
    lines = []
    for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        assert desc["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        toc_digest = desc["annotations"][es.TOC_DIGEST_ANNOTATION]
        path = blob(m, desc["digest"])
        plain = gzip.decompress(path.read_bytes())  # ordinary gzip, as any puller sees it
        assert "sha256:" + hashlib.sha256(plain).hexdigest() == diff_id
        assert desc["annotations"][es.UNCOMPRESSED_SIZE_ANNOTATION] == str(len(plain))
        with open(path, "rb") as f:
            assert es.EstargzReader(f, toc_digest).verify() > 0
        r = subprocess.run([str(verify), str(path), toc_digest], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.startswith("ok "), f"the reference reader refused {path}:\n{r.stderr}"
        lines.append(r.stdout.strip())
    return lines


def test_convert_busybox_passes_the_reference_reader_and_runs(emd, registry, estargz_verify):
    src = f"{registry.host}/busybox:latest"
    r = emd.ok("image", "convert", "--estargz", src, "esgz/busybox:latest")
    new_id = r.stdout.strip()
    assert new_id.startswith("sha256:") and new_id != json.loads(emd.ok("inspect", src).stdout)[0]["Id"]
    assert "eStargz" in r.stderr  # a line per layer
    lines = check_estargz_image(emd, "esgz/busybox:latest", estargz_verify)
    assert all("landmark=.no.prefetch.landmark" in line for line in lines)
    manifest, _ = image_record(emd, "esgz/busybox:latest")  # the check can fail: a wrong TOC digest
    wrong = subprocess.run([estargz_verify, blob(emd, manifest["layers"][0]["digest"]), "sha256:" + "0" * 64])
    assert wrong.returncode == 1
    # the config is the source's but for the diff_ids
    _, old = image_record(emd, src)
    _, new = image_record(emd, "esgz/busybox:latest")
    assert new["config"] == old["config"] and new["history"] == old["history"]
    assert new["rootfs"]["diff_ids"] != old["rootfs"]["diff_ids"]
    out = emd.ok("run", "--rm", "--network", "none", "esgz/busybox:latest", "sh", "-c", "echo hi; ls /bin | wc -l")
    want = emd.ok("run", "--rm", "--network", "none", src, "sh", "-c", "echo hi; ls /bin | wc -l")
    assert out.stdout == want.stdout and out.stdout.startswith("hi\n")


def test_convert_with_prefetch_and_small_chunks(emd, registry, estargz_verify):
    """The landmark after the listed file; busybox's binary (about 1 MiB) in 64 KiB chunks,
    each a "chunk" entry the reference reader finds and verifies."""
    src = f"{registry.host}/busybox:latest"
    flags = ("--estargz-prefetch", "bin/busybox", "--estargz-chunk-size", "65536")
    emd.ok("convert", "--estargz", *flags, src, "esgz/busybox:prefetch")
    lines = check_estargz_image(emd, "esgz/busybox:prefetch", estargz_verify)
    assert any("landmark=.prefetch.landmark" in line for line in lines)
    manifest, _ = image_record(emd, "esgz/busybox:prefetch")
    reader = es.EstargzReader(blob(emd, manifest["layers"][-1]["digest"]).read_bytes())
    names = [e.name for e in reader.entries]
    assert names.index("bin/busybox") < names.index(".prefetch.landmark")
    size = reader.lookup("bin/busybox").size
    assert len(reader.chunks("bin/busybox")) == -(-size // 65536) > 1
    chunks = sum(int(line.split("chunks=")[1].split()[0]) for line in lines)
    files = sum(int(line.split("files=")[1].split()[0]) for line in lines)
    assert chunks >= files + len(reader.chunks("bin/busybox")) - 1  # Go read them chunk by chunk
    out = emd.ok("run", "--rm", "--network", "none", "esgz/busybox:prefetch", "busybox", "echo", "chunked")
    assert out.stdout == "chunked\n"


def test_convert_needs_a_format(emd, registry):
    r = emd("image", "convert", f"{registry.host}/busybox:latest", "esgz/x:1")
    assert r.returncode == 125 and one_error(r.stderr) and "--estargz" in r.stderr
    r = emd("convert", "--estargz", "--estargz-chunk-size", "0", f"{registry.host}/busybox:latest", "esgz/x:1")
    assert r.returncode == 125 and one_error(r.stderr) and "positive" in r.stderr
    assert emd("inspect", "esgz/x:1").returncode != 0  # nothing was made


def test_convert_debian_big_layer(shared_md, registry, estargz_verify):
    src = f"{registry.host}/debian:latest"
    shared_md.ok("pull", "-q", src)
    shared_md.ok("image", "convert", "--estargz", src, "esgz/debian:latest")
    lines = check_estargz_image(shared_md, "esgz/debian:latest", estargz_verify)
    files = sum(int(line.split("files=")[1].split()[0]) for line in lines)
    assert files > 1000, lines  # thousands of files, each its own gzip member
    args = ("--network", "none")
    out = shared_md.ok("run", "--rm", *args, "esgz/debian:latest", "cat", "/etc/debian_version").stdout
    assert out == shared_md.ok("run", "--rm", *args, src, "cat", "/etc/debian_version").stdout != ""


def test_push_estargz_then_pull_back_and_run(emd, md, registry, estargz_verify):
    src = f"{registry.host}/busybox:latest"
    dst = f"{registry.host}/esgz-{uuid.uuid4().hex[:8]}/busybox:latest"
    emd.ok("tag", src, dst)
    r = emd.ok("push", "--estargz", dst)
    digest = r.stdout.split()[2]
    assert "eStargz" in r.stderr and "Pushed" in r.stderr  # the conversion's line per layer, then the push
    # the local tag still names the original image; the pushed one is the converted copy
    assert json.loads(emd.ok("inspect", dst).stdout)[0]["Id"] == json.loads(emd.ok("inspect", src).stdout)[0]["Id"]
    md.ok("pull", "-q", dst)
    pulled = json.loads(md.ok("inspect", dst).stdout)[0]
    assert pulled["RepoDigests"] == [f"{dst.rsplit(':', 1)[0]}@{digest}"]
    check_estargz_image(md, dst, estargz_verify)  # annotations and blobs came through the registry
    assert md.ok("run", "--rm", "--network", "none", dst, "echo", "lazy").stdout == "lazy\n"


def test_build_estargz_tags_the_converted_image(emd, registry, tmp_path, estargz_verify):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello from estargz\n")
    (ctx / "Dockerfile").write_text(f"FROM {registry.host}/busybox:latest\nCOPY hello.txt /hello.txt\n")
    before = set(emd.ok("images", "-q", "--no-trunc").stdout.split())
    before_all = set(emd.ok("images", "-a", "-q", "--no-trunc").stdout.split())
    new_id = emd.ok("build", "--estargz", "-q", "-t", "esgz/built:1", str(ctx)).stdout.strip()
    assert json.loads(emd.ok("inspect", "esgz/built:1").stdout)[0]["Id"] == new_id
    # the image built before its conversion is the build's cache: listed only with -a
    assert set(emd.ok("images", "-q", "--no-trunc").stdout.split()) - before == {new_id}
    assert len(set(emd.ok("images", "-a", "-q", "--no-trunc").stdout.split()) - before_all - {new_id}) >= 1
    manifest, _ = image_record(emd, "esgz/built:1")
    assert len(manifest["layers"]) == 2  # busybox's layer and the COPY's, both eStargz
    check_estargz_image(emd, "esgz/built:1", estargz_verify)
    assert (
        emd.ok("run", "--rm", "--network", "none", "esgz/built:1", "cat", "/hello.txt").stdout == "hello from estargz\n"
    )


# -- podman, which knows nothing of our code -----------------------------------------------------
@pytest.fixture
def podman(tmp_path):
    """podman with a private store and configuration (tests/support/podman.py), runc as its
    runtime (crun refuses this host's hybrid cgroups: host-notes)."""
    from tests.support.podman import podman_sandbox

    if shutil.which("runc") is None:
        pytest.fail("runc is not installed: apt-get install runc", pytrace=False)
    conf = tmp_path / "podman"
    conf.mkdir()
    with podman_sandbox(conf, shutil.which("runc") or "runc", prefix="mde-") as run:
        yield run


def test_podman_pulls_and_runs_the_estargz_image(emd, registry, podman):
    src = f"{registry.host}/busybox:latest"
    dst = f"{registry.host}/esgz-{uuid.uuid4().hex[:8]}/busybox:latest"
    emd.ok("tag", src, dst)
    emd.ok("push", "--estargz", dst)
    r = podman("pull", "-q", "--tls-verify=false", dst)
    assert r.returncode == 0, r.stderr
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dst}")  # as the registry serves it
    assert all(es.TOC_DIGEST_ANNOTATION in d["annotations"] for d in json.loads(raw)["layers"])
    r = podman("run", "--rm", "--network", "none", dst, "echo", "from podman")
    assert r.returncode == 0 and r.stdout == "from podman\n", r.stderr


def skopeo(*args: str) -> str:
    from tests.support.registry import need_tool

    r = subprocess.run([need_tool("skopeo", "skopeo"), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"skopeo {' '.join(args)}:\n{r.stderr}"
    return r.stdout
