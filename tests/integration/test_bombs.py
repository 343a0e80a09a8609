"""Decompression bombs and oversized bodies (issue #9, item 3): each attack fails cleanly.

Cleanly means: exit 125 with one ``Error:`` line and no traceback; the reading stopped early
(the server counts the bytes it managed to send); nothing half-written in the store (no
``layers/.tmp-*``, nothing in ``ingest/``, no new blob, no new image); nothing written
outside it (minidocker's ``$TMPDIR`` stays empty); and nothing lost (an image pulled before
is still whole).

The bombs are small and quick: 200 MiB of zeros in a ~200 KB gzip, against a 50 MiB
expansion limit set through ``$MINIDOCKER_MAX_LAYER_EXPANSION``, or a 64 MiB tmpfs for the
free-space reserve. Everything is served from a registry in this process on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from minidocker.image.limits import EXPANSION_VAR, RESERVE_VAR
from minidocker.image.registry import CHUNK, MAX_MANIFEST_SIZE
from tests.integration.conftest import one_error
from tests.integration.layouts import Packed, make_layout, tar_of
from tests.support.bombs import ChunksReader, CraftedRegistry, gzip_bomb, kernel_in_flight, zero_tar_chunks

BOMB_SIZE = 200 << 20
LOW_LIMIT = {EXPANSION_VAR: "50m"}
ENDLESS = 256 << 20  # "endless" padding: far more than any bound below lets through


@pytest.fixture(scope="module")
def bomb() -> Packed:
    return Packed(*gzip_bomb(BOMB_SIZE))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, bomb) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("bomb-layouts")
    return {
        "good": make_layout(base / "good", tar_of(("file", "hello", b"hello\n"))),
        "other": make_layout(base / "other", tar_of(("file", "other", os.urandom(300_000)))),
        "bomb": make_layout(base / "bomb", bomb),
    }


@pytest.fixture
def crafted(layouts):
    with CraftedRegistry(layouts) as reg:
        yield reg


def manifest_of(layout: Path) -> dict:
    top = json.loads((layout / "index.json").read_text())["manifests"][0]
    return json.loads((layout / "blobs/sha256" / top["digest"][7:]).read_text())


def run(md, tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    """``md(*args)`` with ``$TMPDIR`` an empty directory of the test's, which must stay empty."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir(exist_ok=True)
    r = md(*args, env={"TMPDIR": str(tmpdir), **(env or {})})
    assert list(tmpdir.iterdir()) == [], "minidocker wrote outside its store"
    return r


def pull_good(md, crafted) -> dict:
    """Pull the small good image first: what an attack must not damage. Returns its state."""
    md.ok("pull", "-q", f"{crafted.host}/good")
    return store_state(md.root)


def store_state(root: Path) -> dict:
    index = json.loads((root / "images/index.json").read_text())
    lower = [root / "layers" / d.name / "diff" for d in (root / "layers").iterdir() if not d.name.startswith(".")]
    return {
        "images": set(index["images"]),
        "blobs": {p.name for p in (root / "blobs/sha256").iterdir()},
        "files": {str(p.relative_to(d)): p.read_bytes() for d in lower for p in d.rglob("*") if p.is_file()},
    }


def assert_failed_cleanly(r, *words: str) -> None:
    assert r.returncode == 125, r.stderr
    assert one_error(r.stderr), r.stderr
    for word in words:
        assert word in r.stderr, r.stderr


def assert_nothing_half_written(root: Path, before: dict) -> None:
    assert [p.name for p in (root / "layers").iterdir() if p.name.startswith(".tmp-")] == []
    assert list((root / "ingest").iterdir()) == []
    assert store_state(root) == before  # no new image or blob, and the good image's files intact


# -- (1) a gzip layer that expands far past the limit --------------------------------------------


def test_gzip_bomb_layer_stops_at_the_expansion_limit(md, crafted, tmp_path):
    before = pull_good(md, crafted)
    r = run(md, tmp_path, "pull", f"{crafted.host}/bomb", env=LOW_LIMIT)
    assert_failed_cleanly(r, "expands to more than 50.0 MiB", "decompression bomb", EXPANSION_VAR)
    assert_nothing_half_written(md.root, before)


# -- (2) a blob longer than its descriptor ---------------------------------------------------------


@pytest.mark.parametrize("length", ["none", "exact"])
def test_blob_longer_than_its_descriptor_is_cut_off(md, crafted, layouts, tmp_path, length):
    """Without Content-Length (chunked), reading stops one chunk past the descriptor's size;
    with a true Content-Length beyond it, before the first byte. Either way the server's
    count of what it sent stays within that plus what the kernel holds in flight."""
    before = pull_good(md, crafted)
    layer = manifest_of(layouts["other"])["layers"][0]
    crafted.serve_as(layer["digest"], pad=ENDLESS, length=length)
    r = run(md, tmp_path, "pull", f"{crafted.host}/other")
    assert_failed_cleanly(r, f"is longer than the {layer['size']} bytes its descriptor gives")
    assert ("Content-Length" in r.stderr) == (length == "exact")
    assert crafted.sent[layer["digest"]] <= layer["size"] + CHUNK + kernel_in_flight()
    assert_nothing_half_written(md.root, before)


# -- (3) a huge manifest ---------------------------------------------------------------------------


@pytest.mark.parametrize("size, length", [(6 << 20, "exact"), (200 << 20, "exact"), (ENDLESS, "none")])
def test_huge_manifest_is_refused_without_reading_it_all(md, crafted, tmp_path, size, length):
    """Padded with spaces, the manifest is valid JSON: only its size can refuse it. With a
    Content-Length, nothing is read; without, reading stops one network read past 4 MiB."""
    before = pull_good(md, crafted)
    crafted.serve_as("manifest:other", pad=size, length=length, pad_byte=b" ")
    r = run(md, tmp_path, "pull", f"{crafted.host}/other")
    assert_failed_cleanly(r, f"the {MAX_MANIFEST_SIZE} bytes minidocker accepts")
    read_at_most = 0 if length == "exact" else MAX_MANIFEST_SIZE + CHUNK
    assert crafted.sent["manifest:other"] <= read_at_most + kernel_in_flight()
    assert_nothing_half_written(md.root, before)


# -- (4) the free-space reserve --------------------------------------------------------------------


class LowestFreeSpace:
    """Samples the free space of a file system in a thread while the ``with`` block runs."""

    def __init__(self, path: Path):
        self.path, self.lowest, self._stop = path, free_bytes(path), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            self.lowest = min(self.lowest, free_bytes(self.path))

    def __enter__(self) -> LowestFreeSpace:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.mark.parametrize("reserve", ["default", "0"])
def test_free_space_reserve_on_a_small_tmpfs(md, crafted, tmp_path, reserve):
    """The 200 MiB layer is within the default expansion limit (1 GiB), so only the disk
    stops it: the reserve (5% of 64 MiB) before the tmpfs is full; with the reserve switched
    off, the kernel's ENOSPC, which must be just as clean."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)], check=True)
    try:
        md.root = small / "root"
        before = pull_good(md, crafted)
        free_before = free_bytes(small)
        with LowestFreeSpace(small) as watch:
            r = run(
                md, tmp_path, "pull", f"{crafted.host}/bomb", env={} if reserve == "default" else {RESERVE_VAR: "0"}
            )
        if reserve == "default":
            assert_failed_cleanly(r, "no space left on device for layer", "keeps a reserve of 3.2 MiB", RESERVE_VAR)
            assert watch.lowest > 0, "the tmpfs was full"
        else:
            assert_failed_cleanly(r, "no space left on device while")
        assert_nothing_half_written(md.root, before)
        assert free_bytes(small) >= free_before - (64 << 10)  # all of it given back
    finally:
        subprocess.run(["umount", str(small)], check=True)


# -- load and import of a bomb ---------------------------------------------------------------------


def write_gzipped_archive_bomb(path: Path, size: int) -> None:
    """An OCI layout tar, gzipped, whose one layer is a *plain* tar of ``size`` zero bytes:
    ~200 KB on disk, ``size`` bytes once ``load`` gunzips the archive."""
    tar_hash, tar_size = hashlib.sha256(), 0
    for chunk in zero_tar_chunks(size):
        tar_hash.update(chunk)
        tar_size += len(chunk)
    diff_id = "sha256:" + tar_hash.hexdigest()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id, "size": tar_size}],
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
                    "size": len(manifest),
                }
            ],
        }
    ).encode()
    with gzip.open(path, "wb", compresslevel=9) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        for name, data in (
            ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            ("index.json", index),
            (f"blobs/sha256/{hashlib.sha256(config).hexdigest()}", config),
            (f"blobs/sha256/{hashlib.sha256(manifest).hexdigest()}", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(f"blobs/sha256/{diff_id[7:]}")
        info.size = tar_size
        tar.addfile(info, io.BufferedReader(ChunksReader(zero_tar_chunks(size))))


@pytest.mark.parametrize("form", ["gzip layer", "gzipped archive"])
def test_load_of_a_bomb_is_refused(md, crafted, layouts, tmp_path, form):
    before = pull_good(md, crafted)
    archive = tmp_path / "bomb.tar"
    if form == "gzip layer":
        with tarfile.open(archive, "w") as tar:
            tar.add(layouts["bomb"], arcname=".")
        words = ("of the archive expands to more than 50.0 MiB",)
    else:
        write_gzipped_archive_bomb(archive, BOMB_SIZE)
        words = ("the gzipped archive expands to more than 50.0 MiB",)
    r = run(md, tmp_path, "load", "-i", str(archive), env=LOW_LIMIT)
    assert_failed_cleanly(r, *words, "decompression bomb", EXPANSION_VAR)
    assert_nothing_half_written(md.root, before)


def test_import_of_a_bomb_is_refused(md, crafted, bomb, tmp_path):
    before = pull_good(md, crafted)
    rootfs = tmp_path / "rootfs.tar.gz"
    rootfs.write_bytes(bomb.blob)
    r = run(md, tmp_path, "import", str(rootfs), "bomb:1", env=LOW_LIMIT)
    assert_failed_cleanly(r, "the input of import expands to more than 50.0 MiB", "decompression bomb")
    assert_nothing_half_written(md.root, before)
