"""An ordinary gzip layer served lazily by its zran index (issue #16), against a real registry:
debian from the test images (never converted) gets ``convert --index``, ``push`` sends the
image and then its zran artifact to a docker-registry process (distribution 2.8, which has no
referrers API: the tag fallback), ``find_zran_artifact`` finds it from the image's manifest
digest, and the layer mounted from the index reads the layer's bytes of /usr/bin/bash and
/etc/os-release while the registry's access log shows a small part of the blob went out; a
tampered layer blob gives the reader EIO, never wrong bytes. (The referrers API, against a
registry that has it: test_referrers.py, which reuses index_and_push and sent.)"""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path

import pytest

from minidocker.image import zran
from minidocker.image.reference import parse
from minidocker.image.referrers import ARTIFACT_TYPE, fallback_tag, find_zran_artifact
from minidocker.image.registry import RegistryClient
from minidocker.image.zran import open_zran_layer, parse_index
from minidocker.lazy.fs import mount_layer, unmount_layer
from tests.integration.conftest import busybox_store, one_error
from tests.support.lazy import layer_files

FILES = ("usr/lib/os-release", "usr/bin/bash")  # (etc/os-release is a symlink to the first)


def index_and_push(tmp_path_factory, registry, own, name: str) -> tuple:
    """debian from ``registry`` (the session's), indexed with ``convert --index`` and pushed
    twice with its zran artifact to ``own`` as zran/debian:latest, from a store of its own
    (``name``); returns (the reference, its layer's descriptor, its manifest's digest, what
    convert --index and the first push printed)."""
    with busybox_store(tmp_path_factory, registry, name) as (m, _):
        m.ok("pull", "-q", f"{registry.host}/debian:latest")
        target = f"{own.host}/zran/debian:latest"
        m.ok("tag", f"{registry.host}/debian:latest", target)
        indexed = m.ok("convert", "--index", target).stdout
        again = m.ok("convert", "--index", target).stdout
        assert "(already made)" in again and len(again.splitlines()) == 1, again
        push = m.ok("push", target)
        m.ok("push", target)  # a second push adds no second referrer (test_the_artifact_is_found...)
    with RegistryClient(own.host) as client:
        raw, _, digest = client.get_manifest(parse(target))
    layer = json.loads(raw)["layers"][0]
    return target, layer, digest, indexed, push


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, registry, image_layouts):
    """debian, indexed and pushed with its zran artifact to a registry this module may break;
    yields (that registry, the reference, its layer's descriptor, its manifest's digest,
    what convert --index and push printed)."""
    from tests.support.registry import start_registry

    own = start_registry(tmp_path_factory.mktemp("zran-registry"))
    try:
        yield (own, *index_and_push(tmp_path_factory, registry, own, "lazy-zran"))
    finally:
        own.stop()


@pytest.fixture(scope="module")
def originals(image_layouts) -> dict[str, bytes]:
    """The bytes of FILES in debian's layer (its OCI layout's blob)."""
    out = layer_files(image_layouts["debian"], lambda name, _: name in FILES)
    assert set(out) == set(FILES), set(FILES) - set(out)
    return out


@pytest.fixture(scope="module")
def many(image_layouts) -> dict[str, bytes]:
    """Thirty-two files of debian's layer, spread over it (every 40th of /usr's regular files)."""
    usr = [0]

    def pick(name: str, _: int) -> bool:
        if not name.startswith("usr/") or usr[0] >= 32 * 40:
            return False
        usr[0] += 1
        return usr[0] % 40 == 0

    out = layer_files(image_layouts["debian"], pick)
    assert len(out) == 32
    return out


def sent(reg, digest: str) -> list[tuple[int, int]]:
    """(status, bytes) of every GET of ``digest``'s blob in the registry's access log (a
    docker-registry's, or a referrers registry's: their ``requests`` have the same keys)."""
    time.sleep(0.2)  # (the registry logs a request after answering it)
    return [(r["status"], int(r["size"])) for r in reg.requests if r["method"] == "GET" and digest in r["path"]]


def test_convert_index_prints_a_line_per_layer_and_push_says_it_pushed_the_artifact(pushed):
    _, _, layer, _, indexed, push = pushed
    lines = indexed.splitlines()
    assert len(lines) == 1 and lines[0].startswith(layer["digest"][7:19] + ": zran index "), indexed
    said = [line for line in push.stderr.splitlines() if "zran index" in line]
    assert len(said) == 1 and "sha256:" in said[0], push.stderr


def test_convert_index_refuses_what_it_cannot_do_with_one_line(shared_md, bb):
    r = shared_md("convert", "--index", bb, "other:tag")
    assert r.returncode == 125 and one_error(r.stderr) and "--index" in r.stderr
    r = shared_md("convert", "--index", "nosuch/image:latest")
    assert r.returncode != 0 and one_error(r.stderr) and "nosuch" in r.stderr


def test_the_artifact_is_found_by_the_tag_fallback(pushed):
    reg, target, layer, digest, _, _ = pushed
    reg.requests.clear()
    with RegistryClient(reg.host) as client:
        found = find_zran_artifact(client, parse(target), digest)
        tagged, _, _ = client.get_manifest(parse(target), fallback_tag(digest))
    assert found is not None and set(found) == {layer["digest"]}
    index = parse_index(found[layer["digest"]])
    assert (index.layer_digest, index.layer_size) == (layer["digest"], layer["size"])
    assert [m["artifactType"] for m in json.loads(tagged)["manifests"]] == [ARTIFACT_TYPE]
    time.sleep(0.2)
    api = [r["status"] for r in reg.requests if "/referrers/" in r["path"]]
    assert api == [404], list(reg.requests)  # distribution 2.8: no referrers API, so the tag was read
    assert any(fallback_tag(digest) in r["path"] and r["status"] == 200 for r in reg.requests)


def test_an_image_without_an_artifact_has_none(pushed):
    reg, target, _, _, _, _ = pushed
    with RegistryClient(reg.host) as client:
        assert find_zran_artifact(client, parse(target), "sha256:" + "0" * 64) is None


class Mounted:
    def __init__(self, pushed, tmp_path: Path):
        reg, target, self.layer, digest, _, _ = pushed
        self.client = RegistryClient(reg.host)
        indexes = find_zran_artifact(self.client, parse(target), digest)
        assert indexes is not None
        self.tree, source = open_zran_layer(self.client, parse(target), self.layer, indexes[self.layer["digest"]])
        self.point = tmp_path / "mnt"
        self.point.mkdir(exist_ok=True)
        self.mount = mount_layer(
            self.tree,
            source,
            tmp_path / "cache",
            self.point,
            name="debian-zran",
            fetch_timeout=10,
            log_path=tmp_path / "server.log",
        )

    def close(self) -> None:
        unmount_layer(self.mount)
        self.client.close()


def test_files_read_lazily_are_the_layers_and_little_of_the_blob_is_fetched(pushed, originals, tmp_path):
    reg, _, layer, _, _, _ = pushed
    reg.requests.clear()
    m = Mounted(pushed, tmp_path)
    try:
        assert sent(reg, layer["digest"]) == []  # the tree comes from the index: no byte of the layer
        assert "passwd" in {p.name for p in (m.point / "etc").iterdir()}
        assert (m.point / "etc/os-release").read_bytes() == originals["usr/lib/os-release"]
        assert (m.point / "usr/bin/bash").read_bytes() == originals["usr/bin/bash"]
        got = sent(reg, layer["digest"])
        assert got and all(status == 206 for status, _ in got), got
        fetched = sum(size for _, size in got)
        assert fetched < 0.05 * layer["size"], (fetched, layer["size"])
    finally:
        m.close()


def test_a_tampered_layer_blob_gives_eio_not_wrong_bytes(pushed, tmp_path):
    reg, _, layer, _, _, _ = pushed
    m = Mounted(pushed, tmp_path)
    stored = reg.blob_path(layer["digest"])
    original = stored.read_bytes()
    chunk = m.tree.lookup("usr/lib/os-release").entry.chunks[0]
    damaged = bytearray(original)
    for at in range(chunk.source_offset + 16, chunk.source_offset + chunk.source_length - zran.TAIL_MARGIN):
        damaged[at] ^= 0xFF  # every compressed byte from the checkpoint before the file to its end
    try:
        stored.write_bytes(bytes(damaged))
        started = time.monotonic()
        with pytest.raises(OSError) as e:
            (m.point / "usr/lib/os-release").read_bytes()
        assert e.value.errno == errno.EIO and time.monotonic() - started < 15
        assert "os-release" in (tmp_path / "server.log").read_text()
    finally:
        stored.write_bytes(original)
        m.close()


def test_files_read_at_once_by_many_threads_are_the_layers(pushed, many, tmp_path):
    """The FUSE server inflates several chunks at a time (a thread each): each from its own
    checkpoint, with an inflater of its own."""
    from concurrent.futures import ThreadPoolExecutor

    m = Mounted(pushed, tmp_path)
    try:
        with ThreadPoolExecutor(8) as pool:
            got = dict(zip(many, pool.map(lambda name: (m.point / name).read_bytes(), many)))
        wrong = [name for name, data in many.items() if got[name] != data]
        assert not wrong, wrong
    finally:
        m.close()


def test_a_lazy_run_of_the_indexed_image_reads_its_bytes_fetching_little(pushed, originals, md):
    """``run --pull=lazy`` (lazy/pull.py) finds the zran artifact and leaves the ordinary
    layer in the registry: bash runs, the files are the layer's, a fraction is fetched."""
    import hashlib

    from tests.support.lazy import fuse_mounts_under

    reg, target, layer, _, _, _ = pushed
    reg.requests.clear()
    script = "head -c 300 /etc/os-release; sha256sum /usr/bin/bash"
    out = md.ok("run", "--rm", "--pull=lazy", target, "bash", "-c", script, env={"MINIDOCKER_LAZY_BACKGROUND": "off"})
    assert originals["usr/lib/os-release"][:300].decode() in out.stdout, out.stdout
    assert hashlib.sha256(originals["usr/bin/bash"]).hexdigest() in out.stdout, out.stdout
    assert not list((md.root / "layers").glob("[0-9a-f]*")), "the layer was unpacked, not served lazily"
    got = sent(reg, layer["digest"])
    fetched = sum(size for _, size in got)
    assert got and all(status == 206 for status, _ in got) and fetched < 0.10 * layer["size"], (got, layer["size"])
    assert fuse_mounts_under(md.root) == [], "run --rm left a FUSE layer"


def test_a_lazy_pull_of_an_unindexed_image_indexes_it_for_the_next(pushed, registry, md, tmp_path):
    """No artifact in the registry: ``pull --lazy`` pulls the layer whole, then indexes it in
    the background; pushed elsewhere with its artifact, a fresh store pulls that lazily."""
    from tests.integration.conftest import Minidocker, _remove
    from tests.support.lazy import wait_until

    reg = pushed[0]
    plain = f"{registry.host}/debian:latest"
    md.ok("pull", "--lazy", plain, env={"MINIDOCKER_LAZY_BACKGROUND": "off"})
    assert len(list((md.root / "layers").glob("[0-9a-f]*"))) == 1  # pulled whole
    wait_until(lambda: list((md.root / "zran").glob("[0-9a-f]*")), "the layer indexed in the background", 60)
    target = f"{reg.host}/zran/debian:auto"
    md.ok("tag", plain, target)
    assert "zran" in md.ok("push", target).stderr
    fresh = Minidocker(tmp_path / "fresh" / "root", tmp_path / "fresh" / "config")
    try:
        r = fresh.ok("pull", "--lazy", target, env={"MINIDOCKER_LAZY_BACKGROUND": "off"})
        assert "Lazy (zran" in r.stdout + r.stderr, r.stderr
    finally:
        _remove(fresh, tmp_path / "fresh")
