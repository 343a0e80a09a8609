"""An eStargz layer served lazily from a real registry (issue #16): debian converted by
minidocker and pushed to a docker-registry process of this module's own; its layer is
mounted from its TOC (two range requests), files read through the FUSE mount have the
layer's bytes while the registry's access log shows only a small part of the blob went out;
a new server over the same chunk cache fetches nothing; a tampered chunk and a registry
that is gone give the reader EIO, never wrong bytes and never a hang."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path

import pytest

from minidocker.image import estargz
from minidocker.image.reference import parse
from minidocker.image.registry import RegistryClient
from minidocker.lazy.fs import mount_layer, unmount_layer
from minidocker.lazy.remote import open_remote_layer
from tests.integration.conftest import busybox_store
from tests.support.lazy import layer_files

FILES = ("usr/lib/os-release", "usr/bin/bash", "usr/lib/x86_64-linux-gnu/libc.so.6")


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, registry, image_layouts):
    """debian, converted to eStargz and pushed to a registry this module may break; yields
    (that registry, the pushed reference, its layer's descriptor)."""
    from tests.support.registry import start_registry

    own = start_registry(tmp_path_factory.mktemp("lazy-registry"))
    try:
        with busybox_store(tmp_path_factory, registry, "lazy-remote") as (m, _):
            m.ok("pull", "-q", f"{registry.host}/debian:latest")
            target = f"{own.host}/lazy/debian:latest"
            m.ok("convert", "--estargz", f"{registry.host}/debian:latest", target)
            m.ok("push", "-q", target)
        with RegistryClient(own.host) as client:
            raw, _, _ = client.get_manifest(parse(target))
        layer = json.loads(raw)["layers"][0]
        assert estargz.TOC_DIGEST_ANNOTATION in layer.get("annotations", {}), layer
        yield own, target, layer
    finally:
        own.stop()


@pytest.fixture(scope="module")
def originals(image_layouts) -> dict[str, bytes]:
    """The bytes of FILES in debian's layer (its OCI layout's blob)."""
    out = layer_files(image_layouts["debian"], lambda name, _: name in FILES)
    assert set(out) == set(FILES), set(FILES) - set(out)
    return out


def blob_bytes_sent(reg, digest: str) -> list[tuple[int, int]]:
    """(status, bytes) of every GET of the blob in the registry's access log."""
    time.sleep(0.2)  # (the registry logs a request after answering it)
    return [(r["status"], int(r["size"])) for r in reg.requests if r["method"] == "GET" and digest in r["path"]]


class Mounted:
    def __init__(self, pushed, tmp_path: Path, cache: Path | None = None):
        reg, target, self.layer = pushed
        self.client = RegistryClient(reg.host)
        self.tree, source, self.toc_ranges = open_remote_layer(self.client, parse(target), self.layer)
        self.point = tmp_path / "mnt"
        self.point.mkdir(exist_ok=True)
        cache = cache or tmp_path / "cache"
        self.mount = mount_layer(
            self.tree, source, cache, self.point, name="debian", fetch_timeout=10, log_path=tmp_path / "server.log"
        )

    def close(self) -> None:
        unmount_layer(self.mount)
        self.client.close()


def test_files_read_lazily_are_the_layers_and_little_of_the_blob_is_fetched(pushed, originals, tmp_path):
    reg, _, layer = pushed
    reg.requests.clear()
    m = Mounted(pushed, tmp_path)
    try:
        assert m.toc_ranges.stats.requests == 2  # the footer, then the TOC
        assert blob_bytes_sent(reg, layer["digest"])[0][0] == 206
        listing = sorted(p.name for p in (m.point / "etc").iterdir())
        assert "passwd" in listing and "group" in listing
        for name, want in originals.items():
            assert (m.point / name).read_bytes() == want, name
        assert (m.point / "bin").is_symlink() or (m.point / "bin").is_dir()
        sent = blob_bytes_sent(reg, layer["digest"])
        assert all(status == 206 for status, _ in sent), sent
        fetched = sum(size for _, size in sent)
        assert fetched < 0.10 * layer["size"], (fetched, layer["size"])  # bash and libc: 2 of 56 MB here
    finally:
        m.close()
    reg.requests.clear()
    again = Mounted(pushed, tmp_path, cache=tmp_path / "cache")  # a new server, the same chunk cache
    try:
        for name, want in originals.items():
            assert (again.point / name).read_bytes() == want, name
        sent = blob_bytes_sent(reg, layer["digest"])
        assert len(sent) == 2, sent  # the footer and the TOC again; no chunk
    finally:
        again.close()


def test_a_tampered_chunk_gives_eio_not_wrong_bytes(pushed, tmp_path):
    reg, _, layer = pushed
    m = Mounted(pushed, tmp_path)
    stored = reg.blob_path(layer["digest"])
    original = stored.read_bytes()
    node = m.tree.lookup("usr/lib/os-release")
    chunk = node.entry.chunks[0]
    damaged = bytearray(original)
    damaged[chunk.source_offset + chunk.source_length // 2] ^= 0xFF  # inside the chunk's gzip member
    try:
        stored.write_bytes(bytes(damaged))
        started = time.monotonic()
        with pytest.raises(OSError) as e:
            (m.point / "usr/lib/os-release").read_bytes()
        assert e.value.errno == errno.EIO and time.monotonic() - started < 15
    finally:
        stored.write_bytes(original)
        m.close()


def test_a_registry_gone_mid_run_gives_eio_within_the_time_limit(pushed, originals, tmp_path):
    """(Last in this module: it stops the module's registry.)"""
    reg, _, _ = pushed
    m = Mounted(pushed, tmp_path)
    try:
        assert (m.point / "usr/lib/os-release").read_bytes() == originals["usr/lib/os-release"]
        reg.stop()
        started = time.monotonic()
        with pytest.raises(OSError) as e:
            (m.point / "usr/bin/bash").read_bytes()
        assert e.value.errno == errno.EIO and time.monotonic() - started < 15
        assert (m.point / "usr/lib/os-release").read_bytes() == originals["usr/lib/os-release"]  # (from the cache)
        assert "bash" in (tmp_path / "server.log").read_text()  # the line that says which file failed
    finally:
        m.close()
