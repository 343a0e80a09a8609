"""Pure parts of push, save/load and import: config changes, archive names and links,
the deterministic manifest, blob sources, the upload protocol's URLs."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from minidocker.errors import ArchiveError, DockerfileError, MinidockerError
from minidocker.image import manifest as mf
from minidocker.image.archive import TarSource, _digest_in_name, uncompressed_manifest
from minidocker.image.dockerfile import apply_changes


@pytest.mark.parametrize(
    "changes, expected",
    [
        (['CMD ["sh", "-c", "x"]'], {"Cmd": ["sh", "-c", "x"]}),
        (["CMD echo hi"], {"Cmd": ["/bin/sh", "-c", "echo hi"]}),
        (['ENTRYPOINT ["/init"]'], {"Entrypoint": ["/init"]}),
        (["ENV A=1 B=2", "ENV A=3"], {"Env": ["B=2", "A=3"]}),
        (["ENV NAME hello world"], {"Env": ["NAME=hello world"]}),
        (['LABEL a=1 "b=two words"'], {"Labels": {"a": "1", "b": "two words"}}),
        (["EXPOSE 80 53/udp"], {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}),
        (["VOLUME /data /logs"], {"Volumes": {"/data": {}, "/logs": {}}}),
        (['VOLUME ["/data"]'], {"Volumes": {"/data": {}}}),
        (
            ["USER 1000:1000", "WORKDIR /srv", "STOPSIGNAL SIGINT"],
            {"User": "1000:1000", "WorkingDir": "/srv", "StopSignal": "SIGINT"},
        ),
        (["cmd lowercase works"], {"Cmd": ["/bin/sh", "-c", "lowercase works"]}),
    ],
)
def test_changes(changes, expected):
    assert apply_changes({}, changes) == expected


@pytest.mark.parametrize("change", ["RUN rm -rf /", "FROM scratch", "CMD", "ENV A=1 junk", "EXPOSE http"])
def test_bad_changes(change):
    with pytest.raises(DockerfileError):
        apply_changes({}, [change])


@pytest.mark.parametrize(
    "name, digest",
    [
        ("blobs/sha256/" + "a" * 64, "sha256:" + "a" * 64),
        ("b" * 64 + ".json", "sha256:" + "b" * 64),
        ("c" * 64 + ".tar", "sha256:" + "c" * 64),
        ("c" * 12 + "/layer.tar", None),
        ("manifest.json", None),
        ("blobs/sha256/" + "A" * 64, None),
    ],
)
def test_digest_in_name(name, digest):
    assert _digest_in_name(name) == digest


def test_uncompressed_manifest_is_deterministic_and_valid():
    config = b'{"rootfs":{"type":"layers","diff_ids":[]}}'
    a = uncompressed_manifest(config, [("sha256:" + "1" * 64, 10)])
    assert a == uncompressed_manifest(config, [("sha256:" + "1" * 64, 10)])
    m = mf.parse_manifest(a)
    assert m.config.digest == "sha256:" + hashlib.sha256(config).hexdigest() and m.config.size == len(config)
    assert [(d.media_type, d.size) for d in m.layers] == [(mf.OCI_LAYER, 10)]


def _tar(*members: tarfile.TarInfo, data: dict[str, bytes] | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members:
            body = (data or {}).get(m.name)
            if body is not None:
                m.size = len(body)
            tar.addfile(m, io.BytesIO(body) if body is not None else None)
    buf.seek(0)
    return buf


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, link
    return m


def test_tar_source_follows_links_inside_the_archive():
    src = TarSource(
        _tar(
            _member("a/layer.tar"),
            _member("b/layer.tar", tarfile.SYMTYPE, "../a/layer.tar"),
            _member("c", tarfile.LNKTYPE, "a/layer.tar"),
            data={"a/layer.tar": b"payload"},
        )
    )
    assert src.open("b/layer.tar").read() == b"payload" == src.open("./c").read()
    assert src.exists("a/layer.tar") and not src.exists("nothing")


@pytest.mark.parametrize(
    "members",
    [
        [_member("../escape")],
        [_member("/etc/passwd")],
        [_member("ok/../../x")],
    ],
)
def test_tar_source_refuses_hostile_names(members):
    with pytest.raises(ArchiveError):
        TarSource(_tar(*members))


def test_tar_source_refuses_links_out_of_the_archive_and_loops():
    src = TarSource(
        _tar(
            _member("out", tarfile.SYMTYPE, "../../etc/shadow"),
            _member("loop1", tarfile.SYMTYPE, "loop2"),
            _member("loop2", tarfile.SYMTYPE, "loop1"),
        )
    )
    with pytest.raises(ArchiveError, match="leaves the archive"):
        src.open("out")
    with pytest.raises(ArchiveError, match="too many links"):
        src.open("loop1")


def test_truncated_tar_is_an_archive_error():
    full = _tar(_member("big"), data={"big": b"x" * 100_000}).getvalue()
    with pytest.raises(MinidockerError):
        src = TarSource(io.BytesIO(full[:50_000]))
        src.open("big").read()


def test_blob_sources_come_from_repo_digests(tmp_path):
    """Which repositories of the same registry hold a blob: from RepoDigests, not others'."""
    from minidocker.image.push import blob_sources, push_scope
    from minidocker.image.reference import parse
    from minidocker.image.store import ImageStore

    store = ImageStore(tmp_path)
    store.ensure()
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "2" * 64]}}).encode()
    layer = "sha256:" + "3" * 64
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mf.OCI_MANIFEST,
            "config": {"mediaType": mf.OCI_CONFIG, "digest": mf.sha256_digest(config), "size": len(config)},
            "layers": [{"mediaType": mf.OCI_LAYER_GZIP, "digest": layer, "size": 1}],
        }
    ).encode()
    image_id = store.content.put(config)
    mdigest = store.content.put(manifest)
    store.record_image(image_id, mdigest, "r.example:5000/a/app:1", f"r.example:5000/a/app@{mdigest}")
    store.record_image(image_id, mdigest, None, f"other.example/app@{mdigest}")
    target = parse("r.example:5000/b/copy:1")
    sources = blob_sources(store, target, store.read_index())
    assert sources == {image_id: ["a/app"], layer: ["a/app"]}
    assert blob_sources(store, parse("r.example:5000/a/app:2"), store.read_index()) == {}  # its own repo
    assert push_scope(target) == "repository:b/copy:push,pull"
