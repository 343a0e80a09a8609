"""zran indexes of ordinary gzip layers (no root): a real gzip tar built here, indexed, parsed
back; its files read through LayerFS (no mount) from the checkpoints equal the tar's bytes at
every offset tried; hostile and truncated indexes are refused with one line; the referrers
artifact's manifest, and which of a listing's referrers are fetched, skipped or refused; the
store's record of which index is whose."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import random
import struct
import tarfile
import zlib
from itertools import pairwise
from pathlib import Path

import pytest

from minidocker.errors import DigestMismatch, ImageNotFound, LazyLayerError, RegistryError
from minidocker.image import manifest as mf
from minidocker.image import referrers, zran, zran_store
from minidocker.image.estargz import clean_name
from minidocker.image.reference import parse
from minidocker.image.store import ImageStore
from minidocker.lazy import toc
from minidocker.lazy.fs import LayerFS

SPAN = 64 << 10  # small spans, so that a small tar has many checkpoints
CHUNK = 1 << 20


def noise(n: int, seed: int) -> bytes:
    """Bytes that compress about 2:1, as a layer's do (half random, half repeated)."""
    rnd = random.Random(seed)
    out = bytearray()
    while len(out) < n:
        out += rnd.randbytes(512) + bytes([rnd.randrange(256)]) * 512
    return bytes(out[:n])


FILES = {
    "etc/os-release": b'PRETTY_NAME="Test"\n',
    "usr/bin/big": noise(3 * CHUNK + 12345, 1),  # four chunks, the last one short
    "usr/lib/mid": noise(300_000, 2),
    "usr/share/empty": b"",
}


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **kw) -> None:
    info = tarfile.TarInfo(name)
    for key, value in kw.items():
        setattr(info, key, value)
    info.size = len(data) if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    tar.addfile(info, io.BytesIO(data) if info.size else None)


def make_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "./", type=tarfile.DIRTYPE, mode=0o755)
        add(tar, "etc/", type=tarfile.DIRTYPE, mode=0o755, mtime=1_700_000_000)
        for name, data in FILES.items():
            add(tar, name, data, mode=0o644, uid=7, gid=8, mtime=1_700_000_001)
        for i in range(40):  # small files spread over many spans
            add(tar, f"usr/share/doc/f{i}", noise(1000 + 37 * i, 100 + i) + noise(20_000, i), mode=0o600)
        add(tar, "usr/bin/setuid", b"#!/bin/sh\n", mode=0o4755)
        add(tar, "usr/bin/sh", type=tarfile.SYMTYPE, linkname="big")
        add(tar, "usr/bin/hard", type=tarfile.LNKTYPE, linkname="usr/bin/big")
        add(tar, "dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
        add(tar, "run/fifo", type=tarfile.FIFOTYPE, mode=0o600)
        add(tar, "usr/bin/ping", b"ping", pax_headers={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"})
        add(tar, "opt/.wh.gone")
    return buf.getvalue()


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> tuple[Path, bytes]:
    """A gzip layer blob (a file) and the tar inside it."""
    tar = make_tar()
    path = tmp_path_factory.mktemp("zran") / "layer.tar.gz"
    path.write_bytes(gzip.compress(tar, 6))
    return path, tar


@pytest.fixture(scope="module")
def built(layer) -> bytes:
    return zran.build_index(layer[0], span=SPAN, chunk_size=CHUNK)


def members(tar: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        return {clean_name(m.name): m for m in t.getmembers()}


def test_the_index_lists_every_member_with_its_metadata(layer, built):
    _, tar = layer
    index = zran.parse_index(built)
    digest = "sha256:" + hashlib.sha256(layer[0].read_bytes()).hexdigest()
    assert (index.layer_digest, index.layer_size, index.uncompressed_size) == (
        digest,
        layer[0].stat().st_size,
        len(tar),
    )
    assert len(index.points) > 10 and index.points[0].uncmp_offset == 0
    by_name = {e.name: e for e in index.entries()}
    want = members(tar)
    assert set(by_name) == set(want)
    for name, m in want.items():
        e = by_name[name]
        assert (e.mode, e.uid, e.gid, e.mtime) == (m.mode, m.uid, m.gid, m.mtime), name
        assert e.size == (m.size if m.isreg() else 0), name
    assert by_name["usr/bin/sh"].type == toc.SYMLINK and by_name["usr/bin/sh"].link_name == "big"
    assert by_name["usr/bin/hard"].type == toc.HARDLINK and by_name["usr/bin/hard"].link_name == "usr/bin/big"
    assert (by_name["dev/null"].type, by_name["dev/null"].dev_major, by_name["dev/null"].dev_minor) == (toc.CHAR, 1, 3)
    assert by_name["run/fifo"].type == toc.FIFO and by_name["usr/bin/setuid"].mode == 0o4755
    assert by_name["usr/bin/ping"].xattrs == {"security.capability": b"\x01\x00\x00\x02"}
    big = by_name["usr/bin/big"]
    assert [c.size for c in big.chunks] == [CHUNK, CHUNK, CHUNK, 12345]
    assert [c.offset_in_file for c in big.chunks] == [0, CHUNK, 2 * CHUNK, 3 * CHUNK]
    assert by_name["usr/share/empty"].chunks == [] and by_name["usr/share/empty"].type == toc.REG
    tree = toc.build_tree(index.entries())  # lazy.toc accepts it: whiteouts in overlayfs's form
    assert tree.lookup("opt/gone").entry.type == toc.CHAR
    assert tree.lookup("usr/bin/hard") is tree.lookup("usr/bin/big")


def test_the_same_layer_gives_the_same_index(layer, built):
    assert zran.build_index(layer[0], span=SPAN, chunk_size=CHUNK) == built
    with open(layer[0], "rb") as f:  # an open file indexes as its path does
        assert zran.build_index(f, span=SPAN, chunk_size=CHUNK) == built


@pytest.fixture
def fs(layer, built, tmp_path) -> LayerFS:
    index = zran.parse_index(built)
    return LayerFS(toc.build_tree(index.entries()), zran.LocalChunks(layer[0], index), tmp_path / "cache")


@pytest.mark.parametrize(
    ("name", "offset", "size"),
    [
        ("etc/os-release", 0, 4096),
        ("usr/bin/big", 0, 1),
        ("usr/bin/big", 5, 100_000),
        ("usr/bin/big", CHUNK - 10, 20),  # across a chunk's end
        ("usr/bin/big", 2 * CHUNK + 777, CHUNK),  # across the last full chunk into the short one
        ("usr/bin/big", 3 * CHUNK + 12000, 4096),  # the file's end
        ("usr/lib/mid", 131_072, 131_072),
        ("usr/share/doc/f39", 1000, 5000),
        ("usr/bin/ping", 0, 10),
    ],
)
def test_reads_from_the_checkpoints_equal_the_tars_bytes(fs, name, offset, size):
    want = FILES.get(name) or members_data(name)
    assert fs.read_node(fs.tree.lookup(name), offset, size) == want[offset : offset + size]
    assert fs.counters.fetched >= 1 and fs.counters.failed == 0


def members_data(name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(make_tar())) as t:
        f = t.extractfile(name)
        assert f is not None
        return f.read()


def test_every_file_reads_whole(layer, fs):
    _, tar = layer
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        for m in t.getmembers():
            if m.isreg() and ".wh." not in m.name:  # (a whiteout is a device in the tree)
                node = fs.tree.lookup(m.name)
                assert fs.read_node(node, 0, m.size + 10) == t.extractfile(m).read(), m.name


def test_every_checkpoint_inflates_to_the_tars_bytes_whatever_bit_of_its_byte_it_starts_at(layer, built):
    """ISA-L starts only at a byte: a point inside one is reached through empty blocks of our
    own (zran.resume_stream). Every point of the layer, and all eight bit positions."""
    path, tar = layer
    blob = path.read_bytes()
    index = zran.parse_index(built)
    assert {p.bits for p in index.points} == set(range(8))  # (the layer's deflate puts a point at each)
    for p in index.points:
        for into in (0, 777):  # at the point, and from a byte after it (inflated, then skipped)
            start = p.fetch_from if p.uncmp_offset + into else 0
            got = index.inflate(blob[start:], start, p.uncmp_offset + into, 5000)
            assert got == tar[p.uncmp_offset + into : p.uncmp_offset + into + 5000], (p.cmp_offset, p.bits, into)


@pytest.mark.parametrize("r", range(1, 8))
def test_the_empty_blocks_end_r_bits_into_a_byte_and_put_out_nothing(r):
    from isal import isal_zlib

    value, count = zran.empty_blocks(r)
    assert count % 8 == r
    w = zran.BitWriter()
    w.value, w.count = value, count
    w.field(1, 1)  # then a last block, empty, of the fixed codes: a whole deflate stream
    w.field(1, 2)
    w.code(0, 7)
    stream = w.value.to_bytes((w.count + 7) // 8, "little")
    for inflater in (zlib.decompressobj(-15), isal_zlib.decompressobj(-15)):
        assert inflater.decompress(stream) == b"" and inflater.eof and inflater.unused_data == b""


def test_a_checkpoint_that_was_not_fetched_is_an_error_not_bytes(layer, built):
    path, _ = layer
    index = zran.parse_index(built)
    p = index.points[5]
    with pytest.raises(LazyLayerError, match="checkpoint was not fetched"):
        index.inflate(path.read_bytes()[p.fetch_from + 1 :], p.fetch_from + 1, p.uncmp_offset + 10, 100)


def test_a_small_files_read_fetches_about_a_span_not_the_layer(layer, built):
    index = zran.parse_index(built)
    sizes = [c.source_length for e in index.entries() if e.name.startswith("usr/share/doc/") for c in e.chunks]
    layer_size = layer[0].stat().st_size
    assert max(sizes) < SPAN + 50_000 < layer_size // 10, (max(sizes), layer_size)


def test_a_layer_whose_index_would_be_too_big_gets_longer_spans(layer, built, tmp_path):
    small = zran.build_index(layer[0], span=SPAN, chunk_size=CHUNK, max_size=len(built) // 2)
    index = zran.parse_index(small)
    assert len(small) <= len(built) // 2 and index.span >= 2 * SPAN
    assert len(index.points) < len(zran.parse_index(built).points)
    fs = LayerFS(toc.build_tree(index.entries()), zran.LocalChunks(layer[0], index), tmp_path / "c")
    assert fs.read_node(fs.tree.lookup("usr/bin/big"), CHUNK - 5, 10) == FILES["usr/bin/big"][CHUNK - 5 : CHUNK + 5]


def test_a_multi_member_gzip_layer_indexes_and_reads(tmp_path):
    """RFC 1952 allows members back to back (eStargz is such a layer): each is inflated, one
    after another, however many a read goes across."""
    tar = make_tar()
    cuts = [0, len(tar) // 5, 2 * len(tar) // 5, len(tar) // 2, 3 * len(tar) // 5, len(tar)]
    path = tmp_path / "five.tar.gz"
    path.write_bytes(b"".join(gzip.compress(tar[a:b], 6 if i % 2 else 1) for i, (a, b) in enumerate(pairwise(cuts))))
    index = zran.parse_index(zran.build_index(path, span=SPAN, chunk_size=CHUNK))
    fs = LayerFS(toc.build_tree(index.entries()), zran.LocalChunks(path, index), tmp_path / "c")
    assert fs.read_node(fs.tree.lookup("usr/bin/big"), 0, 4 * CHUNK) == FILES["usr/bin/big"]
    blob = path.read_bytes()
    got = index.inflate(blob, 0, 0, len(tar))  # from the start, across all five
    assert got == tar
    p = index.points[3]
    assert index.inflate(blob[p.fetch_from :], p.fetch_from, p.uncmp_offset, len(tar)) == tar[p.uncmp_offset :]


def test_a_tampered_blob_fails_the_digest_never_gives_its_bytes(layer, built, tmp_path):
    index = zran.parse_index(built)
    entry = next(e for e in index.entries() if e.name == "usr/lib/mid")
    chunk = entry.chunks[0]
    damaged = bytearray(layer[0].read_bytes())
    damaged[chunk.source_offset + chunk.source_length // 2] ^= 0x55
    path = tmp_path / "damaged.tar.gz"
    path.write_bytes(bytes(damaged))
    with pytest.raises((DigestMismatch, LazyLayerError)):
        zran.LocalChunks(path, index).read_chunk(entry, chunk)


@pytest.mark.parametrize(
    "blob",
    [
        lambda tar: tar,  # not gzip at all
        lambda tar: gzip.compress(tar)[: len(gzip.compress(tar)) // 2],  # cut in the middle
        lambda tar: gzip.compress(tar)[:-6],  # its trailer cut
        lambda tar: gzip.compress(tar[: len(tar) // 2]),  # a whole gzip of half a tar
    ],
    ids=["plain-tar", "half", "no-trailer", "half-tar"],
)
def test_a_layer_that_is_not_a_whole_gzip_tar_is_refused_with_one_line(tmp_path, blob):
    path = tmp_path / "layer"
    path.write_bytes(blob(make_tar()))
    with pytest.raises(LazyLayerError) as e:
        zran.build_index(path)
    assert "\n" not in str(e.value) and str(e.value).startswith("cannot index the layer: "), str(e.value)


# -- hostile and truncated indexes -------------------------------------------------------------------
def split(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack_from("<Q", data, 8)
    return json.loads(zlib.decompress(data[16 : 16 + length])), data[16 + length :]


def join(doc: dict, windows: bytes) -> bytes:
    header = zlib.compress(json.dumps(doc).encode())
    return zran.MAGIC + struct.pack("<Q", len(header)) + header + windows


def refused_line(data: bytes) -> str:
    with pytest.raises(LazyLayerError) as e:
        zran.parse_index(data)
    text = str(e.value)
    assert text.startswith("zran index refused: ") and "\n" not in text, text
    return text


@pytest.mark.parametrize("cut", [0, 5, 8, 12, 16, 100, -1, -1000])
def test_a_truncated_index_is_refused(built, cut):
    refused_line(built[:cut])


def edited(built: bytes, change) -> bytes:
    doc, windows = split(built)
    windows = change(doc, windows) or windows
    return join(doc, windows)


HOSTILE = {
    "the magic": lambda b: b"NOTZRAN!" + b[8:],
    "a newer version": lambda b: zran.MAGIC[:-1] + b"\x02" + b[8:],
    "a header longer than the blob": lambda b: b[:8] + struct.pack("<Q", 1 << 40) + b[16:],
    "a header that is not zlib": lambda b: b[:8] + struct.pack("<Q", 4) + b"abcd" + b[20:],
    "a header that is not JSON": lambda b: join_raw(b"not json"),
    "a header bomb": lambda b: join_raw(b" " * (zran.MAX_HEADER + 1)),
    "points out of order": lambda b: edited(b, lambda d, w: d["points"].reverse()),
    "a point outside the layer": lambda b: edited(b, lambda d, w: d["points"][-1].__setitem__(0, 1 << 50)),
    "bits past a byte": lambda b: edited(b, lambda d, w: d["points"][3].__setitem__(2, 9)),
    "a negative offset": lambda b: edited(b, lambda d, w: d["points"][2].__setitem__(1, -5)),
    "a float offset": lambda b: edited(b, lambda d, w: d["points"][2].__setitem__(1, 5.5)),
    "no point at the start": lambda b: edited(b, lambda d, w: d["points"].pop(0) and None),
    "windows cut short": lambda b: edited(b, lambda d, w: w[:-10]),
    "bytes after the windows": lambda b: edited(b, lambda d, w: w + b"x"),
    "a chunk outside the tar": lambda b: edited(b, lambda d, w: first_chunk(d).__setitem__(3, 1 << 50)),
    "a chunk past the blob": lambda b: edited(b, lambda d, w: first_chunk(d).__setitem__(4, 1 << 50)),
    "a chunk too big to inflate": lambda b: edited(b, lambda d, w: first_chunk(d).__setitem__(1, zran.MAX_CHUNK + 1)),
    "a chunk named by no digest": lambda b: edited(b, lambda d, w: first_chunk(d).__setitem__(2, "../../x")),
    "an mtime of NaN": lambda b: edited(b, lambda d, w: d["entries"][1].__setitem__("mtime", float("nan"))),
    "a layer named by no digest": lambda b: edited(b, lambda d, w: d["layer"].__setitem__("digest", "md5:x")),
    "a window size not deflate's": lambda b: edited(b, lambda d, w: d.__setitem__("window_size", 1 << 30)),
    "too many entries": lambda b: edited(b, lambda d, w: d.__setitem__("entries", [{}] * (zran.MAX_ENTRIES + 1))),
    "an entry that is no object": lambda b: edited(b, lambda d, w: d["entries"].append(5)),
    "xattrs that are not base64": lambda b: edited(b, lambda d, w: d["entries"][1].__setitem__("xattrs", {"a": "!"})),
    "a document of another version": lambda b: edited(b, lambda d, w: d.__setitem__("version", 2)),
}


def join_raw(text: bytes) -> bytes:
    header = zlib.compress(text, 9)
    return zran.MAGIC + struct.pack("<Q", len(header)) + header


def first_chunk(doc: dict) -> list:
    return next(e for e in doc["entries"] if e.get("chunks"))["chunks"][0]


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_a_hostile_index_is_refused_with_one_line(built, what):
    refused_line(HOSTILE[what](built))


def test_an_index_bigger_than_the_limit_is_refused_before_it_is_read():
    assert "more than" in refused_line(b"\0" * (zran.MAX_INDEX + 1))


def test_a_window_that_does_not_inflate_gives_an_error_not_bytes(layer, built):
    doc, windows = split(built)
    bad = bytearray(windows)
    bad[: len(bad)] = bytes(len(bad))  # every window zeroed: no longer zlib
    index = zran.parse_index(join(doc, bytes(bad)))  # (windows are inflated when used)
    entry = next(e for e in index.entries() if e.name == "usr/share/doc/f39")
    with pytest.raises(LazyLayerError, match="window"):
        zran.LocalChunks(layer[0], index).read_chunk(entry, entry.chunks[0])


def test_chunks_of_another_layer_are_refused(built):
    index = zran.parse_index(built)
    with pytest.raises(LazyLayerError, match="not of"):
        zran.ZranChunks("127.0.0.1:1", parse("127.0.0.1:1/x"), "sha256:" + "0" * 64, index.layer_size, index)


# -- the artifact and the store -----------------------------------------------------------------------
def test_the_artifact_manifest_refers_to_the_image_and_names_each_layer():
    subject = {"mediaType": mf.OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 482, "annotations": {"x": "y"}}
    indexes = {"sha256:" + "1" * 64: b"index one", "sha256:" + "2" * 64: b"index two"}
    raw = referrers.artifact_manifest(subject, indexes)
    assert referrers.artifact_manifest(subject, indexes) == raw  # the same: pushing twice adds nothing
    doc = json.loads(raw)
    assert doc["artifactType"] == referrers.ARTIFACT_TYPE and doc["mediaType"] == mf.OCI_MANIFEST
    assert doc["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
    }
    assert doc["subject"] == {"mediaType": mf.OCI_MANIFEST, "digest": subject["digest"], "size": 482}
    assert [(d["annotations"][referrers.LAYER_ANNOTATION], d["digest"], d["size"]) for d in doc["layers"]] == [
        (layer, mf.sha256_digest(data), len(data)) for layer, data in indexes.items()
    ]
    assert all(d["mediaType"] == zran.MEDIA_TYPE for d in doc["layers"])
    assert referrers.fallback_tag(subject["digest"]) == "sha256-" + "a" * 64


class FakeRegistry:
    """A RegistryClient's get_manifest and get_blob, from dicts; ``asked`` lists the
    manifests asked for, in order."""

    def __init__(self, manifests: dict[str, bytes], blobs: dict[str, bytes]):
        self.manifests, self.blobs, self.asked = manifests, blobs, []

    def get_manifest(self, ref, reference=None):
        self.asked.append(reference)
        if reference not in self.manifests:
            raise ImageNotFound(f"manifest {reference} not found")
        raw = self.manifests[reference]
        return raw, mf.OCI_MANIFEST, mf.sha256_digest(raw)

    def get_blob(self, ref, digest, size, limit=0):
        return self.blobs[digest]


IMAGE = {"mediaType": mf.OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 482}
OTHER_IMAGE = {**IMAGE, "digest": "sha256:" + "b" * 64}
LAYER = "sha256:" + "1" * 64


def referring(subject: dict, artifact_type: str = referrers.ARTIFACT_TYPE) -> bytes:
    """An artifact manifest about ``subject`` with one index blob (b"index"), of any type."""
    doc = json.loads(referrers.artifact_manifest(subject, {LAYER: b"index"}))
    return json.dumps({**doc, "artifactType": artifact_type}).encode()


@pytest.fixture
def listed():
    """A registry holding our artifact about IMAGE, an SBOM about IMAGE (empty config too),
    and a zran artifact about OTHER_IMAGE; -> (the registry, their digests)."""
    raws = {
        "ours": referring(IMAGE),
        "sbom": referring(IMAGE, "application/spdx+json"),
        "other": referring(OTHER_IMAGE),
    }
    digests = {name: mf.sha256_digest(raw) for name, raw in raws.items()}
    reg = FakeRegistry({digests[n]: raw for n, raw in raws.items()}, {mf.sha256_digest(b"index"): b"index"})
    return reg, digests


def test_a_listing_names_ours_by_its_artifact_type_or_by_its_empty_config():
    """Claimed (artifactType ours) first, then those that may be ours (the empty config's
    type, or none: a registry that names an artifact by its config), the last listed first;
    another type is never fetched."""
    listing = [
        {"digest": "sha256:e1", "artifactType": referrers.EMPTY_TYPE},
        {"digest": "sha256:z1", "artifactType": referrers.ARTIFACT_TYPE},
        {"digest": "sha256:s1", "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"},
        {"digest": "sha256:n1"},
        {"digest": "sha256:z2", "artifactType": referrers.ARTIFACT_TYPE},
        {"artifactType": referrers.ARTIFACT_TYPE},  # (no digest)
    ]
    assert referrers.candidates(listing) == [
        ("sha256:z2", True),
        ("sha256:z1", True),
        ("sha256:n1", False),
        ("sha256:e1", False),
    ]


def test_a_referrer_named_by_its_config_that_is_not_ours_is_skipped(listed):
    reg, d = listed
    ref = parse("127.0.0.1:1/zran/debian")
    empty = referrers.EMPTY_TYPE  # what go-containerregistry's pkg/registry lists for all three
    listing = [{"digest": d[name], "artifactType": empty} for name in ("ours", "other", "sbom")]
    found = referrers.first_zran_artifact(reg, ref, IMAGE["digest"], listing)
    assert found == {LAYER: b"index"}
    assert reg.asked == [d["sbom"], d["other"], d["ours"]]  # the last listed first; two skipped
    reg.asked.clear()
    assert referrers.first_zran_artifact(reg, ref, IMAGE["digest"], listing[1:]) is None
    assert referrers.first_zran_artifact(reg, ref, IMAGE["digest"], [{"digest": "sha256:" + "9" * 64}]) is None


def test_a_referrer_listed_as_ours_that_is_not_is_an_error(listed):
    reg, d = listed
    ref = parse("127.0.0.1:1/zran/debian")
    claimed = referrers.ARTIFACT_TYPE
    with pytest.raises(RegistryError, match="is not a zran artifact"):
        referrers.first_zran_artifact(reg, ref, IMAGE["digest"], [{"digest": d["sbom"], "artifactType": claimed}])
    with pytest.raises(RegistryError, match="about sha256:bbbbbbbbbbbb, not this image"):
        referrers.first_zran_artifact(reg, ref, IMAGE["digest"], [{"digest": d["other"], "artifactType": claimed}])


def test_the_tag_is_read_when_the_api_lists_no_zran_artifact_of_the_image(listed, monkeypatch):
    reg, d = listed
    ref = parse("127.0.0.1:1/zran/debian")
    tag = referrers.fallback_tag(IMAGE["digest"])
    reg.manifests[tag] = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mf.OCI_INDEX,
            "manifests": [{"digest": d["ours"], "artifactType": referrers.ARTIFACT_TYPE}],
        }
    ).encode()
    api = [{"digest": d["sbom"], "artifactType": referrers.EMPTY_TYPE}]
    monkeypatch.setattr(referrers, "referrers_api", lambda client, ref, digest: api)
    assert referrers.find_zran_artifact(reg, ref, IMAGE["digest"]) == {LAYER: b"index"}
    assert reg.asked == [d["sbom"], tag, d["ours"]]
    reg.asked.clear()
    api.append({"digest": d["ours"], "artifactType": referrers.EMPTY_TYPE})
    assert referrers.find_zran_artifact(reg, ref, IMAGE["digest"]) == {LAYER: b"index"}
    assert reg.asked == [d["ours"]]  # found through the API: the tag is not read
    reg.asked.clear()
    monkeypatch.setattr(referrers, "referrers_api", lambda client, ref, digest: None)  # no API
    assert referrers.find_zran_artifact(reg, ref, IMAGE["digest"]) == {LAYER: b"index"}
    assert reg.asked == [tag, d["ours"]]


def test_the_store_records_whose_index_is_which_and_gc_keeps_it(tmp_path, built):
    store = ImageStore(tmp_path / "root")
    store.ensure()
    layer = "sha256:" + "c" * 64
    assert zran_store.index_for(store, layer) is None
    digest = zran_store.save_index(store, layer, built)
    assert zran_store.index_for(store, layer) == built
    assert store.content.read(digest) == built
    assert zran_store.kept_indexes(store, {layer, "sha256:" + "d" * 64}) == {digest}
    assert zran_store.kept_indexes(store, {"sha256:" + "d" * 64}) == set()
    store.content.delete(digest)  # an index whose blob is gone is no index
    assert zran_store.index_for(store, layer) is None
    with pytest.raises(ValueError):
        zran_store.record_path(store, "sha256:../../etc")


def test_xattr_values_keep_their_bytes(tmp_path):
    raw = b"\xff\x00binary"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "f", b"x", pax_headers={"SCHILY.xattr.user.k": raw.decode("utf-8", "surrogateescape")})
    path = tmp_path / "x.tar.gz"
    path.write_bytes(gzip.compress(buf.getvalue()))
    entry = zran.parse_index(zran.build_index(path)).entries()[0]
    assert entry.xattrs == {"user.k": raw}
    assert base64.b64encode(raw)  # (the JSON holds them as base64)
