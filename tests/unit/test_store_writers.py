"""The store's one blob writer (``content.Ingest``) and one layer writer (``store.create``),
each with an optional expected name, and the storage-driver verbs on a store in a temp dir:
create -> apply_diff -> commit, get, diff."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import tarfile

import pytest

from minidocker.errors import DigestMismatch
from minidocker.image import commit as cm
from minidocker.image import manifest as mf
from minidocker.image.content import ContentStore
from minidocker.image.store import ImageStore, chain_id_of


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# -- blobs: one writer, the digest told at the start, at the end, or never ---------------------
@pytest.mark.parametrize("told", ["at open", "at commit", "never"])
def test_a_blob_is_named_by_its_digest_however_it_was_told(tmp_path, told):
    store = ContentStore(tmp_path)
    data = b"some bytes" * 100
    with contextlib.ExitStack() as stack:
        if told == "at open":  # a writer told its digest up front writes under that digest's lock
            stack.enter_context(store.lock(sha(data)))
        w = stack.enter_context(store.ingest(sha(data) if told == "at open" else None))
        w.write(data)
        if told == "at commit":
            assert w.commit(sha(data), len(data)) == sha(data)
    assert w.digest == sha(data) and store.read(sha(data)) == data
    assert os.listdir(store.layout.ingest_dir) == []


@pytest.mark.parametrize("expected, size", [(sha(b"other"), None), (None, 3), (sha(b"payload"), 8)])
def test_a_blob_that_is_not_what_commit_expects_is_not_stored(tmp_path, expected, size):
    store = ContentStore(tmp_path)
    with pytest.raises(DigestMismatch), store.ingest() as w:
        w.write(b"payload")
        w.commit(expected, size)
    assert not store.has(sha(b"payload")) and os.listdir(store.layout.blobs_dir) == []
    assert os.listdir(store.layout.ingest_dir) == []


# -- layers: create -> apply_diff -> commit ------------------------------------------------------
def make_layer(store: ImageStore, tar: bytes, parent: str | None, expected: str | None = None) -> str:
    with store.create(expected, parent) as layer:
        stats = layer.apply_diff(io.BytesIO(tar))
        layer.commit({"diff_id": sha(tar), "size": stats.size})
    return layer.chain_id


def test_a_layer_is_named_by_its_chain_once_committed_and_only_once(tmp_path):
    store = ImageStore(tmp_path)
    store.ensure()
    base_tar, top_tar = layer_tar({"etc/os": b"base\n"}), layer_tar({"app": b"top\n"})
    base = make_layer(store, base_tar, None, expected=sha(base_tar))  # a pull: the name told first
    top = make_layer(store, top_tar, base)  # a commit: the name learnt from the content
    assert (
        base == sha(base_tar)
        and top == chain_id_of(base, sha(top_tar)) == mf.chain_ids([sha(base_tar), sha(top_tar)])[1]
    )
    assert store.layer_meta(top)["parent"] == base and (store.layout.layer(top).diff / "app").read_bytes() == b"top\n"
    with store.create(None, base) as again:  # the same content again: no second copy
        again.apply_diff(io.BytesIO(top_tar))
        assert again.commit({"diff_id": sha(top_tar)}) is False
    assert sorted(os.listdir(store.layout.layers_dir)) == sorted([base[7:], top[7:]])


def test_a_layer_that_is_not_the_expected_chain_is_thrown_away(tmp_path):
    store = ImageStore(tmp_path)
    store.ensure()
    tar = layer_tar({"f": b"x"})
    with pytest.raises(DigestMismatch):
        make_layer(store, tar, None, expected=sha(b"another layer"))
    assert os.listdir(store.layout.layers_dir) == [] and not store.has_layer(sha(tar))


# -- get and diff --------------------------------------------------------------------------------
def test_get_stacks_an_image_or_a_layer_with_its_ancestors_top_first(tmp_path):
    store = ImageStore(tmp_path)
    files = [{"etc/os": b"one\n"}, {"etc/os": b"two\n"}, {"app": b"three\n"}]
    image_id = None
    for f in files:
        image_id, _ = cm.create_image(store, image_id, lambda write, f=f: write(layer_tar(f)))
    chains = store.chain_ids(image_id)
    diffs = [store.layout.layer(c).diff for c in chains]
    assert store.get(image_id) == store.get(chains[2]) == diffs[::-1]
    assert store.get(chains[1]) == [diffs[1], diffs[0]] and store.get(chains[0]) == [diffs[0]]
    assert store.put(image_id) is None  # nothing to unmount: see the store's docstring


def test_diff_gives_a_layer_back_as_the_compressed_tar_it_was_committed_as(tmp_path):
    store = ImageStore(tmp_path)
    tar = layer_tar({"hello": b"world\n"})
    image_id, layer = cm.create_image(store, None, lambda write: write(tar))
    (chain,) = store.chain_ids(image_id)
    with store.diff(chain) as blob:
        packed = blob.read()
    assert sha(packed) == layer.digest == store.manifest(image_id).layers[0].digest
    assert gzip.decompress(packed) == tar and sha(tar) == layer.diff_id


@pytest.mark.parametrize("compression, media_type", [("gzip", mf.OCI_LAYER_GZIP), ("zstd", mf.OCI_LAYER_ZSTD)])
def test_a_new_layer_is_compressed_as_asked(tmp_path, compression, media_type):
    import zstandard

    store = ImageStore(tmp_path)
    tar = layer_tar({"big": os.urandom(3 << 20), "small": b"x\n"})

    def produce(write):  # many chunks through the compressing thread's queue
        for i in range(0, len(tar), 1 << 16):
            write(memoryview(tar)[i : i + (1 << 16)])

    image_id, layer = cm.create_image(store, None, produce, compression=compression)
    manifest = store.manifest(image_id)
    assert manifest.media_type == mf.OCI_MANIFEST and manifest.layers[0].media_type == media_type
    packed = store.content.read(layer.digest)
    plain = (
        gzip.decompress(packed)
        if compression == "gzip"
        else zstandard.ZstdDecompressor().decompressobj().decompress(packed)
    )
    assert plain == tar and sha(tar) == layer.diff_id
    assert packed[:4] == b"\x28\xb5\x2f\xfd" if compression == "zstd" else packed[:2] == b"\x1f\x8b"
    assert store.layer_meta(layer.chain_id)["media_type"] == media_type


def test_an_unknown_compression_is_refused_before_any_write(tmp_path):
    from minidocker.errors import MinidockerError

    store = ImageStore(tmp_path)
    with pytest.raises(MinidockerError) as e:
        cm.create_image(store, None, lambda write: write(layer_tar({"a": b"a"})), compression="xz")
    assert e.value.exit_code == 125 and "gzip or zstd" in e.value.message
    assert not (tmp_path / "blobs").exists() or os.listdir(store.layout.blobs_dir) == []


def test_a_failing_blob_write_stops_the_tar_and_never_blocks_it():
    class FullDisk:
        def write(self, data):
            raise OSError(28, "No space left on device")

    compressing = cm.Compressing("gzip", FullDisk())
    with pytest.raises(OSError, match="No space"):
        for _ in range(10 * cm.QUEUE_CHUNKS):  # far more chunks than the queue holds
            compressing.write(os.urandom(1 << 20))
    compressing.close()
    assert isinstance(compressing.error, OSError)
