import hashlib
import json

import pytest

from minidocker.errors import RegistryError
from minidocker.image import manifest as mf


def index(*platforms):
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mf.OCI_INDEX,
            "manifests": [
                {"mediaType": mf.OCI_MANIFEST, "digest": "sha256:" + str(i) * 64, "size": 10, "platform": p}
                for i, p in enumerate(platforms)
            ],
        }
    ).encode()


AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64", "variant": "v8"}
ARMV7 = {"os": "linux", "architecture": "arm", "variant": "v7"}
WIN = {"os": "windows", "architecture": "amd64"}


@pytest.mark.parametrize(
    "want, expect",
    [
        ("linux/amd64", 1),
        ("linux/arm64", 2),
        ("linux/arm64/v8", 2),
        ("linux/arm/v7", 3),
        ("windows/amd64", 0),
        ("linux/x86_64", 1),
        ("linux/aarch64", 2),
    ],
)
def test_select_platform(want, expect):
    raw = index(WIN, AMD64, ARM64, ARMV7)
    assert mf.select_platform(raw, mf.Platform.parse(want)).digest == "sha256:" + str(expect) * 64


def test_select_platform_missing_names_what_exists():
    with pytest.raises(RegistryError) as e:
        mf.select_platform(index(AMD64, ARM64), mf.Platform.parse("linux/s390x"))
    assert "no matching manifest for linux/s390x" in e.value.message
    assert "linux/amd64" in e.value.hint and "linux/arm64" in e.value.hint


@pytest.mark.parametrize("bad", ["linux", "linux/", "/amd64", "a/b/c/d"])
def test_platform_parse_refuses(bad):
    with pytest.raises(RegistryError):
        mf.Platform.parse(bad)


def test_chain_ids_follow_the_spec():
    a, b, c = ("sha256:" + h * 64 for h in "abc")
    chains = mf.chain_ids([a, b, c])
    assert chains[0] == a
    assert chains[1] == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chains[2] == "sha256:" + hashlib.sha256(f"{chains[1]} {c}".encode()).hexdigest()
    assert mf.chain_ids([]) == []


@pytest.mark.parametrize(
    "media_type, comp",
    [
        (mf.OCI_LAYER_GZIP, "gzip"),
        (mf.DOCKER_LAYER_GZIP, "gzip"),
        (mf.OCI_LAYER_ZSTD, "zstd"),
        (mf.OCI_LAYER, "none"),
        (mf.DOCKER_LAYER_FOREIGN, "gzip"),
    ],
)
def test_compression_of(media_type, comp):
    assert mf.compression_of(media_type) == comp


def test_compression_of_unknown():
    with pytest.raises(RegistryError):
        mf.compression_of("application/vnd.example.layer.v1.tar+lz4")


def test_detect_media_type_prefers_the_document():
    raw = json.dumps({"schemaVersion": 2, "mediaType": mf.DOCKER_LIST, "manifests": []}).encode()
    assert mf.detect_media_type(raw, mf.OCI_MANIFEST) == mf.DOCKER_LIST
    raw = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert mf.detect_media_type(raw, None) == mf.OCI_INDEX
    assert mf.detect_media_type(raw, mf.DOCKER_LIST + "; charset=utf-8") == mf.DOCKER_LIST
    with pytest.raises(RegistryError):
        mf.detect_media_type(b"<html>", "text/html")


def test_parse_manifest_refuses_schema1():
    with pytest.raises(RegistryError):
        mf.parse_manifest(json.dumps({"schemaVersion": 1, "fsLayers": []}).encode())
