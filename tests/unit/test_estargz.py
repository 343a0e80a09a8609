"""image/estargz.py: the eStargz writer and reader against the format's rules (a blob the
reference Go reader checks too: tests/integration/test_estargz.py)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import zlib

import pytest

from minidocker.errors import ChunkCorrupt, EstargzError
from minidocker.image import estargz as es
from minidocker.image import manifest as mf


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for m, data in members:
            t.addfile(m, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def info(name: str, type_: bytes = tarfile.REGTYPE, data: bytes | None = None, **attrs) -> tuple:
    m = tarfile.TarInfo(name)
    m.type = type_
    m.size = len(data) if data is not None else 0
    m.mtime = 1_700_000_000
    for k, v in attrs.items():
        setattr(m, k, v)
    return m, data


def convert(tar: bytes, **kw) -> tuple[bytes, es.EstargzLayer]:
    out = io.BytesIO()
    layer = es.write_estargz(io.BytesIO(tar), out.write, **kw)
    return out.getvalue(), layer


def toc_of(blob: bytes) -> list[dict]:
    return es.EstargzReader(blob).toc["entries"]


BIG = bytes(range(256)) * 10 + b"tail"  # 2564 bytes: three chunks of 1000


@pytest.fixture
def every_type() -> bytes:
    return make_tar(
        [
            info("etc", tarfile.DIRTYPE, mode=0o755),
            info("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n", mode=0o644, uname="root", gname="root"),
            info(
                "bin/ping",
                data=b"\x7fELF" + b"\0" * 100,
                mode=0o4755,
                uid=1000,
                gid=1001,
                pax_headers={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02 \x00\x00\x00"},
            ),
            info("bin/sh", tarfile.SYMTYPE, linkname="busybox", mode=0o777),
            info("bin/ping2", tarfile.LNKTYPE, linkname="bin/ping", mode=0o4755),
            info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
            info("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o660),
            info("run/fifo", tarfile.FIFOTYPE, mode=0o600),
            info("etc/empty", data=b"", mode=0o600),
            info("var/.wh.gone", data=b""),
            info("opt/.wh..wh..opq", data=b""),
        ]
    )


# -- the footer ------------------------------------------------------------------------------------
def test_footer_is_the_51_bytes_the_spec_gives_and_parses_back():
    footer = es.footer_bytes(0x1234ABCD)
    assert len(footer) == es.FOOTER_SIZE == 51
    expected = (
        "1f8b0804" "00000000" "00ff"  # magic, deflate, FEXTRA; mtime 0; XFL 0, OS 255
        "1a00"  # XLEN 26
        "5347" "1600"  # SI1 'S', SI2 'G', LEN 22
        + b"000000001234abcdSTARGZ".hex()
        + "010000ffff"  # an empty final stored block
        "00000000" "00000000"  # CRC32 0, ISIZE 0
    )  # fmt: skip
    assert footer.hex() == expected
    assert gzip.decompress(footer) == b""  # an empty gzip member
    assert es.toc_offset_from_tail(footer) == 0x1234ABCD
    assert es.toc_offset_from_tail(b"anything before" + footer) == 0x1234ABCD


@pytest.mark.parametrize(
    "tail",
    [
        b"short",
        b"\0" * 51,
        es.footer_bytes(5)[:-1] + b"\1",  # a trailer that is not an empty member's
        es.footer_bytes(5).replace(b"STARGZ", b"STARGY"),
        es.footer_bytes(5).replace(b"SG", b"SX", 1),
    ],
)
def test_a_tail_that_is_no_footer_is_refused(tail):
    with pytest.raises(EstargzError):
        es.toc_offset_from_tail(tail)


def test_tail_bytes_give_the_toc_offset_of_a_written_blob(every_type):
    blob, layer = convert(every_type)
    assert es.toc_offset_from_tail(blob[-4096:]) == layer.toc_offset
    assert blob[layer.toc_offset : layer.toc_offset + 2] == b"\x1f\x8b"  # a gzip member starts there
    toc, digest = es.parse_toc(blob[layer.toc_offset : -es.FOOTER_SIZE])
    assert digest == layer.toc_digest and toc["version"] == 1


# -- the TOC ---------------------------------------------------------------------------------------
def test_toc_fields_for_each_entry_type(every_type):
    blob, layer = convert(every_type)
    entries = {e["name"]: e for e in toc_of(blob)}
    assert entries["etc/"] == {"name": "etc/", "type": "dir", "mode": 0o755, "uid": 0, "gid": 0,
                               "modtime": "2023-11-14T22:13:20Z"}  # fmt: skip
    passwd = entries["etc/passwd"]
    data = b"root:x:0:0::/root:/bin/sh\n"
    assert passwd["type"] == "reg" and passwd["size"] == len(data)
    assert passwd["userName"] == "root" and passwd["groupName"] == "root"
    assert passwd["digest"] == passwd["chunkDigest"] == sha(data)
    assert "chunkSize" not in passwd and passwd["offset"] > 0  # one chunk: chunkSize 0 (omitted)
    ping = entries["bin/ping"]
    assert (ping["mode"], ping["uid"], ping["gid"]) == (0o4755, 1000, 1001)
    assert ping["xattrs"] == {"security.capability": "AQAAAiAAAAA="}  # base64 of the raw bytes
    assert entries["bin/sh"]["type"] == "symlink" and entries["bin/sh"]["linkName"] == "busybox"
    assert entries["bin/ping2"]["type"] == "hardlink" and entries["bin/ping2"]["linkName"] == "bin/ping"
    assert entries["dev/null"]["type"] == "char"
    assert (entries["dev/null"]["devMajor"], entries["dev/null"]["devMinor"]) == (1, 3)
    assert entries["dev/sda"]["type"] == "block" and entries["dev/sda"]["devMajor"] == 8
    assert entries["run/fifo"]["type"] == "fifo"
    for name in ("etc/empty", "var/.wh.gone", "opt/.wh..wh..opq"):  # whiteouts pass through as files
        assert entries[name]["type"] == "reg" and "offset" not in entries[name]
    # each regular file's data starts a gzip member of its own, which holds just that data
    for name, content in (("etc/passwd", data), ("bin/ping", b"\x7fELF" + b"\0" * 100)):
        member = zlib.decompressobj(31)
        assert member.decompress(blob[entries[name]["offset"] :]) == content and member.eof
    assert layer.entries == len(entries)
    assert layer.annotations() == {
        "containerd.io/snapshot/stargz/toc.digest": layer.toc_digest,
        "io.containers.estargz.uncompressed-size": str(layer.uncompressed_size),
    }


def test_a_file_larger_than_the_chunk_size_is_split_into_chunk_entries():
    blob, _ = convert(make_tar([info("big", data=BIG, mode=0o644)]), chunk_size=1000)
    chunks = [e for e in toc_of(blob) if e["name"] == "big"]
    assert [c["type"] for c in chunks] == ["reg", "chunk", "chunk"]
    assert [c.get("chunkOffset", 0) for c in chunks] == [0, 1000, 2000]
    assert [c.get("chunkSize", 0) for c in chunks] == [1000, 1000, 0]  # the last: to the end
    assert chunks[0]["size"] == len(BIG) and chunks[0]["digest"] == sha(BIG)
    pieces = [BIG[0:1000], BIG[1000:2000], BIG[2000:]]
    assert [c["chunkDigest"] for c in chunks] == [sha(p) for p in pieces]
    offsets = [c["offset"] for c in chunks]
    assert offsets == sorted(set(offsets))
    for c, piece in zip(chunks, pieces, strict=True):  # each chunk: its own gzip member
        member = zlib.decompressobj(31)
        assert member.decompress(blob[c["offset"] :]) == piece and member.eof
    reader = es.EstargzReader(blob)
    ranges = reader.chunks("big")
    assert [(c.chunk_offset, c.chunk_size) for c in ranges] == [(0, 1000), (1000, 1000), (2000, 564)]
    assert all(c.offset + c.compressed_size <= reader.toc_offset for c in ranges)
    assert reader.read_chunk(ranges[1]) == pieces[1]
    # a caller with only the byte range (an HTTP range request) gets the chunk too
    c = ranges[2]
    assert es.inflate_chunk(blob[c.offset : c.offset + c.compressed_size], c) == pieces[2]
    assert reader.read_file("big") == BIG
    start, end = reader.file_range("big")
    assert (start, end) == (ranges[0].offset, ranges[2].offset + ranges[2].compressed_size)
    fetched = blob[start:end]  # one range request, then each chunk from its part of it
    pieces_back = [
        es.inflate_chunk(fetched[c.offset - start : c.offset - start + c.compressed_size], c) for c in ranges
    ]
    assert b"".join(pieces_back) == BIG


def test_without_prefetch_the_no_prefetch_landmark_comes_first(every_type):
    blob, _ = convert(every_type)
    names = [e["name"] for e in toc_of(blob) if e["type"] != "chunk"]
    assert names[0] == ".no.prefetch.landmark" and ".prefetch.landmark" not in names
    assert es.EstargzReader(blob).read_file(".no.prefetch.landmark") == b"\x0f"


def test_with_prefetch_the_listed_files_come_first_then_the_landmark(every_type):
    blob, layer = convert(every_type, prefetch=["bin/ping2", "/etc/passwd", "nosuch"])
    names = [e["name"] for e in toc_of(blob) if e["type"] != "chunk"]
    # the hard link's target first, its parents implied by names only; etc/ before etc/passwd
    assert names[:4] == ["bin/ping", "bin/ping2", "etc/", "etc/passwd"]
    assert names[4] == ".prefetch.landmark" and ".no.prefetch.landmark" not in names
    assert sorted(names[5:]) == sorted(n for n in toc_names(every_type) if n not in names[:4])
    assert layer.missed_prefetch == ["nosuch"]
    assert es.EstargzReader(blob).read_file(".prefetch.landmark") == b"\x0f"


def toc_names(tar: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        return [m.name + "/" if m.isdir() else m.name for m in t.getmembers()]


def test_the_blob_is_ordinary_gzip_of_a_tar_whose_last_member_is_the_toc(every_type):
    blob, layer = convert(every_type)
    plain = gzip.decompress(blob)
    assert sha(plain) == layer.diff_id and len(plain) == layer.uncompressed_size
    assert sha(blob) == layer.digest and len(blob) == layer.size
    with tarfile.open(fileobj=io.BytesIO(plain)) as t:
        members = t.getmembers()
        assert members[-1].name == "stargz.index.json"
        raw = t.extractfile(members[-1]).read()
        assert sha(raw) == layer.toc_digest and json.loads(raw)["version"] == 1
        by_name = {m.name: m for m in members}
        assert t.extractfile(by_name["etc/passwd"]).read() == b"root:x:0:0::/root:/bin/sh\n"
        ping = by_name["bin/ping"]
        assert ping.mode == 0o4755 and ping.pax_headers["SCHILY.xattr.security.capability"].startswith("\x01")
        assert by_name["dev/null"].ischr() and by_name["bin/ping2"].islnk()
    with tarfile.open(fileobj=io.BytesIO(every_type)) as t:
        assert {m.name for m in t.getmembers()} | {".no.prefetch.landmark", "stargz.index.json"} == set(by_name)


def test_converting_an_estargz_layer_again_keeps_one_toc_and_one_landmark(every_type):
    blob, first = convert(every_type)
    again, second = convert(gzip.decompress(blob))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(again))) as t:
        names = t.getnames()
    assert names.count("stargz.index.json") == 1 and names.count(".no.prefetch.landmark") == 1
    assert second.diff_id == first.diff_id  # the same tar comes out
    assert convert(every_type)[0] == blob  # and the same blob: push --estargz twice, one digest


# -- the reader ------------------------------------------------------------------------------------
def test_reader_opens_bytes_and_files_and_checks_the_toc_digest(every_type, tmp_path):
    blob, layer = convert(every_type)
    path = tmp_path / "blob"
    path.write_bytes(blob)
    with open(path, "rb") as f:
        reader = es.EstargzReader(f, layer.toc_digest)
        assert reader.read_file("bin/ping2") == b"\x7fELF" + b"\0" * 100  # a hard link: its target's data
        assert reader.verify() == 3  # the landmark, passwd, ping: one chunk each
    assert [e.name for e in es.EstargzReader(blob).entries][:2] == [".no.prefetch.landmark", "etc/"]
    assert es.EstargzReader(blob).lookup("./etc/").type == "dir"
    with pytest.raises(EstargzError, match="descriptor says"):
        es.EstargzReader(blob, "sha256:" + "0" * 64)
    with pytest.raises(EstargzError):
        es.EstargzReader(blob).chunks("bin/sh")  # a symlink has no data


def test_a_corrupted_chunk_raises_chunk_corrupt():
    blob, _ = convert(make_tar([info("big", data=BIG)]), chunk_size=1000)
    reader = es.EstargzReader(blob)
    second = reader.chunks("big")[1]
    damaged = bytearray(blob)
    damaged[second.offset + 20] ^= 0xFF  # inside the chunk's deflate data
    with pytest.raises(ChunkCorrupt):
        es.EstargzReader(bytes(damaged)).read_file("big")
    assert reader.read_chunk(reader.chunks("big")[0]) == BIG[:1000]  # the others still read
    # bytes that inflate well but are not what the TOC's digest names
    other = es.Chunk("big", 0, 4, 0, 0, sha(b"abcd"))
    with pytest.raises(ChunkCorrupt, match="hashes to"):
        es.inflate_chunk(gzip.compress(b"abce"), other)
    with pytest.raises(ChunkCorrupt, match="of its 4 bytes"):
        es.inflate_chunk(gzip.compress(b"abc"), other)


def test_a_blob_that_is_not_estargz_is_refused():
    with pytest.raises(EstargzError, match="not an eStargz blob"):
        es.EstargzReader(gzip.compress(make_tar([info("a", data=b"x")])))


def test_descriptors_keep_their_annotations():
    raw = {"mediaType": mf.OCI_LAYER_GZIP, "digest": "sha256:" + "a" * 64, "size": 3,
           "annotations": {es.TOC_DIGEST_ANNOTATION: "sha256:" + "b" * 64}}  # fmt: skip
    desc = mf.Descriptor.from_json(raw)
    assert desc.annotations == raw["annotations"] and desc.to_json() == raw


# -- convert: a store's image -> a new image of eStargz layers --------------------------------------
def test_convert_image_writes_estargz_layers_unpacks_them_and_tags_the_new_image(tmp_path):
    from minidocker.image import commit as cm
    from minidocker.image.convert import convert_image
    from minidocker.image.store import ImageStore

    store = ImageStore(tmp_path / "store")
    base, _ = cm.create_image(store, None, lambda write: write(make_tar([info("a.txt", data=b"A" * 5000)])))
    top, _ = cm.create_image(  # a zstd layer on a gzip one: each source is inflated as its type says
        store, base, lambda write: write(make_tar([info("b/big", data=BIG)])), compression="zstd", tag="src:1"
    )
    layers_before = set(os.listdir(store.layout.layers_dir))
    said: list[str] = []
    new_id = convert_image(store, "src:1", "dst:esgz", chunk_size=1000, say=said.append)
    assert new_id != top and store.resolve("dst:esgz") == new_id and store.resolve("src:1") == top
    assert len(said) == 2
    manifest = store.manifest(new_id)
    config = store.config(new_id)
    assert manifest.media_type == mf.OCI_MANIFEST and len(manifest.layers) == 2
    for desc, diff_id in zip(manifest.layers, config["rootfs"]["diff_ids"], strict=True):
        assert desc.media_type == mf.OCI_LAYER_GZIP
        raw = store.content.read(desc.digest)
        assert sha(raw) == desc.digest and sha(gzip.decompress(raw)) == diff_id
        assert desc.annotations is not None
        reader = es.EstargzReader(raw, desc.annotations[es.TOC_DIGEST_ANNOTATION])
        assert reader.verify() >= 2  # the landmark and the file
    assert config["history"] == store.config(top)["history"]
    # the new layers are unpacked under their new chain IDs, landmark and TOC included
    lower = store.get(new_id)
    assert (lower[0] / "b" / "big").read_bytes() == BIG and (lower[1] / "a.txt").read_bytes() == b"A" * 5000
    assert (lower[0] / "stargz.index.json").exists() and (lower[1] / ".no.prefetch.landmark").read_bytes() == b"\x0f"
    new_layers = set(os.listdir(store.layout.layers_dir)) - layers_before
    assert len(new_layers) == 2
    # the same conversion again: the same image, nothing more unpacked
    assert convert_image(store, top, None, chunk_size=1000) == new_id
    assert set(os.listdir(store.layout.layers_dir)) - layers_before == new_layers
    with pytest.raises(EstargzError, match="positive"):
        convert_image(store, top, None, chunk_size=0)


def with_toc(blob: bytes, toc_offset: int, entries: list[dict]) -> bytes:
    """``blob`` with another TOC: the same members up to the TOC, a new TOC member, a new footer."""
    raw = json.dumps({"version": 1, "entries": entries}).encode()
    m = tarfile.TarInfo(es.TOC_NAME)
    m.size = len(raw)
    member = gzip.compress(m.tobuf(tarfile.PAX_FORMAT) + raw + b"\0" * (-len(raw) % 512) + b"\0" * 1024)
    return blob[:toc_offset] + member + es.footer_bytes(toc_offset)


def test_a_toc_whose_chunks_do_not_cover_the_file_is_refused():
    blob, layer = convert(make_tar([info("big", data=BIG)]), chunk_size=1000)
    entries = toc_of(blob)
    assert es.EstargzReader(with_toc(blob, layer.toc_offset, entries)).read_file("big") == BIG  # (the helper works)
    del entries[2]  # the second chunk
    with pytest.raises(EstargzError, match="nowhere"):
        es.EstargzReader(with_toc(blob, layer.toc_offset, entries)).chunks("big")


def test_a_name_that_is_not_utf8_keeps_its_bytes():
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")  # as tarfile reads such a name
    blob, layer = convert(make_tar([info(name, data=b"latin-1")]))
    assert es.EstargzReader(blob, layer.toc_digest).read_file(name) == b"latin-1"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as t:
        assert name in t.getnames()


def test_a_toc_that_inflates_too_far_is_refused_unread(monkeypatch):
    """A TOC member is bounded twice: its compressed size before it is read, and what it
    inflates to (a gzip bomb in place of stargz.index.json stops at the bound)."""
    import zlib

    monkeypatch.setattr(es, "MAX_TOC", 1 << 20)
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = z.compress(b"\0" * (4 << 20)) + z.flush()
    with pytest.raises(es.EstargzError, match="inflates to more than"):
        es.parse_toc(bomb)
    monkeypatch.setattr(es, "MAX_TOC_MEMBER", 100)
    with pytest.raises(es.EstargzError, match="more than the 100 read"):
        es.parse_toc(bomb)
    blob = bytes(200) + es.footer_bytes(0)  # a footer that puts a 200-byte TOC at 0
    with pytest.raises(es.EstargzError, match="more than 100"):
        es.EstargzReader(blob)
