"""Range reads of blobs from a real registry process (docker-registry on 127.0.0.1): the
bytes are the blob's, the registry answers 206 (its access log says how many bytes it sent),
neighbouring ranges go in one request, a CDN redirect is followed once and kept, and a
server that ignores Range is told apart (issue #16's lazy pull reads layers this way)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

from minidocker.errors import RangesUnsupported
from minidocker.image import manifest as mf
from minidocker.image.blobrange import BlobRanges
from minidocker.image.reference import parse
from minidocker.image.registry import RegistryClient
from tests.support.registry import ThreadedServer


def layer_of(client: RegistryClient, name: str) -> tuple:
    """The first layer's descriptor and its whole bytes (fetched the ordinary way)."""
    ref = parse(name)
    raw, media_type, _ = client.get_manifest(ref)
    manifest = json.loads(raw)
    if "manifests" in manifest:  # an index: its first image
        raw, _, _ = client.get_manifest(ref, manifest["manifests"][0]["digest"])
        manifest = json.loads(raw)
    layer = max(manifest["layers"], key=lambda d: d["size"])
    whole = client.get_blob(ref, layer["digest"], layer["size"], limit=1 << 30)
    assert mf.sha256_digest(whole) == layer["digest"]
    return ref, layer, whole


def test_ranges_are_the_blobs_bytes_and_the_registry_sends_only_them(registry):
    with RegistryClient(registry.host) as client:
        ref, layer, whole = layer_of(client, f"{registry.host}/debian:latest")
        ranges = BlobRanges(client, ref, layer["digest"], layer["size"])
        registry.requests.clear()
        size = layer["size"]
        assert ranges.read(0, 10) == whole[:10]
        assert ranges.read(size // 2, 4096) == whole[size // 2 : size // 2 + 4096]
        assert ranges.read_tail(51) == whole[-51:]
        assert (ranges.stats.requests, ranges.stats.bytes) == (3, 10 + 4096 + 51)
    logged = [r for r in registry.requests if "/blobs/" in r["path"]]
    assert [r["status"] for r in logged] == [206, 206, 206], logged
    assert sum(int(r["size"]) for r in logged) == 10 + 4096 + 51  # not one byte more went out


def test_neighbouring_ranges_are_fetched_in_one_request(registry):
    with RegistryClient(registry.host) as client:
        ref, layer, whole = layer_of(client, f"{registry.host}/debian:latest")
        ranges = BlobRanges(client, ref, layer["digest"], layer["size"])
        wanted = [(1000, 100), (1200, 50), (5000, 10), (3_000_000, 20)]
        got = ranges.read_many(wanted, gap=10_000)
        assert got == {(a, n): whole[a : a + n] for a, n in wanted}
        assert ranges.stats.requests == 2  # 1000..5010 in one, 3000000.. in another


def test_a_cdn_redirect_is_followed_once_and_kept(redirect_front):
    with RegistryClient(redirect_front.host) as client:
        ref, layer, whole = layer_of(client, f"{redirect_front.host}/busybox:latest")
        ranges = BlobRanges(client, ref, layer["digest"], layer["size"])
        redirect_front.requests.clear()
        redirect_front.cdn_requests.clear()
        assert ranges.read(5, 100) == whole[5:105]
        assert ranges.read(200, 300) == whole[200:500]
    blob_gets = [r for r in redirect_front.requests if "/blobs/" in r["path"] and r["method"] == "GET"]
    assert len(blob_gets) == 1 and blob_gets[0]["status"] == 307  # the registry was asked once
    assert len(redirect_front.cdn_requests) == 2
    assert all(r["status"] == 206 for r in redirect_front.cdn_requests), redirect_front.cdn_requests
    assert not any("Authorization" in r["headers"] for r in redirect_front.cdn_requests)


class WholeBlob(BaseHTTPRequestHandler):
    """A "registry" that ignores Range: every blob GET is answered 200 with all of it."""

    body = b"x" * 1000

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_a_server_that_ignores_range_is_told_apart():
    server = ThreadedServer("127.0.0.1", WholeBlob)
    try:
        host = f"127.0.0.1:{server.port}"
        with RegistryClient(host) as client:
            ranges = BlobRanges(client, parse(f"{host}/x:latest"), "sha256:" + "0" * 64, 1000)
            with pytest.raises(RangesUnsupported) as e:
                ranges.read(10, 10)
            assert "ignores Range" in e.value.message
    finally:
        server.stop()


def test_a_range_outside_the_blob_is_refused_before_any_request(registry):
    with RegistryClient(registry.host) as client:
        ranges = BlobRanges(client, parse(f"{registry.host}/busybox:latest"), "sha256:" + "1" * 64, 100)
        with pytest.raises(Exception) as e:
            ranges.read(90, 20)
        assert "outside blob" in str(e.value) and ranges.stats.requests == 0
