"""The zran artifact through the OCI referrers API (issue #16), against a registry that has
it: go-containerregistry's pkg/registry (tests/referrers-registry, built from the source
vagrant/provision.sh unpacks; distribution 2.8, in test_lazy_zran.py, has only the tag
fallback). debian gets ``convert --index`` and ``push``; the registry's own listing
(``GET /v2/<name>/referrers/<digest>``) names the artifact, whose manifest refers to the
image; ``find_zran_artifact`` finds the indexes by the API alone (its log shows no GET of the
``sha256-<hex>`` tag, and the tag deleted changes nothing); and ``run --pull=lazy`` from
that registry serves the ordinary gzip layer by the index it found there.

What this registry does that a client must cope with: it lists each referrer with the media
type of its config as its artifactType (ours: the empty blob's), it ignores the
``?artifactType=`` filter, and it never answers a manifest PUT with ``OCI-Subject``, so push
writes the tag fallback too (image/referrers.py)."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from minidocker.image import manifest as mf
from minidocker.image.reference import parse
from minidocker.image.referrers import (
    ARTIFACT_TYPE,
    EMPTY,
    EMPTY_TYPE,
    LAYER_ANNOTATION,
    fallback_tag,
    find_zran_artifact,
)
from minidocker.image.registry import RegistryClient
from minidocker.image.zran import parse_index
from tests.conftest import _fail_if_missing
from tests.integration.test_lazy_zran import FILES, index_and_push, sent
from tests.support.lazy import layer_files
from tests.support.registry import ReferrersRegistry, ToolMissing, start_referrers_registry

REPO = "zran/debian"  # (index_and_push pushes to it)


@pytest.fixture(scope="module")
def referrers_registry(tmp_path_factory):
    """A registry with the referrers API of this module's own (in memory); not provisioned:
    a failure that says to run vagrant/provision.sh."""
    with _fail_if_missing(start_referrers_registry, tmp_path_factory.mktemp("referrers-registry")) as reg:
        yield reg


@dataclass
class Pushed:
    reg: ReferrersRegistry
    target: str  # the image's reference
    layer: dict  # its one layer's descriptor
    digest: str  # its manifest's digest
    artifact: str  # the digest of its zran artifact's manifest, as push said


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, registry, referrers_registry):
    """debian, indexed and pushed (twice) with its zran artifact to the referrers registry."""
    target, layer, digest, _, push = index_and_push(tmp_path_factory, registry, referrers_registry, "referrers")
    said = re.search(r"zran indexes of its layers as (sha256:[0-9a-f]{64})", push.stderr)
    assert said, push.stderr
    return Pushed(referrers_registry, target, layer, digest, said[1])


@pytest.fixture(scope="module")
def originals(image_layouts) -> dict[str, bytes]:
    """The bytes of FILES in debian's layer (its OCI layout's blob)."""
    return layer_files(image_layouts["debian"], lambda name, _: name in FILES)


def get(reg: ReferrersRegistry, path: str, accept: str = mf.OCI_INDEX) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) of a plain GET of ``path`` from the registry (127.0.0.1)."""
    req = urllib.request.Request(reg.url + path, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def referrers_gets(reg: ReferrersRegistry) -> list[tuple[int, str]]:
    """(status, query) of every GET of the referrers API in the registry's log."""
    return [(r["status"], r["query"]) for r in reg.requests if r["method"] == "GET" and "/referrers/" in r["path"]]


def tag_requests(reg: ReferrersRegistry, digest: str) -> list[dict]:
    """Every request of the registry's log that names the fallback tag of ``digest``."""
    return [r for r in reg.requests if fallback_tag(digest) in r["path"]]


def test_the_registrys_listing_names_the_artifact_which_refers_to_the_image(pushed):
    status, content_type, body = get(pushed.reg, f"/v2/{REPO}/referrers/{pushed.digest}")
    assert status == 200 and content_type == mf.OCI_INDEX, (status, body)
    listing = json.loads(body)
    assert listing["mediaType"] == mf.OCI_INDEX
    ours = [m for m in listing["manifests"] if m["digest"] == pushed.artifact]
    assert len(ours) == 1, listing  # pushed twice, listed once
    # pkg/registry 0.20 names it by its config (the spec: by its artifactType)
    assert ours[0]["mediaType"] == mf.OCI_MANIFEST and ours[0]["artifactType"] in (ARTIFACT_TYPE, EMPTY_TYPE)

    status, _, raw = get(pushed.reg, f"/v2/{REPO}/manifests/{pushed.artifact}", accept=mf.OCI_MANIFEST)
    assert status == 200 and mf.sha256_digest(raw) == pushed.artifact and len(raw) == ours[0]["size"]
    artifact = json.loads(raw)
    assert artifact["artifactType"] == ARTIFACT_TYPE
    assert artifact["config"] == {"mediaType": EMPTY_TYPE, "digest": mf.sha256_digest(EMPTY), "size": len(EMPTY)}
    _, _, image = get(pushed.reg, f"/v2/{REPO}/manifests/{pushed.digest}", accept=mf.ACCEPT)
    subject = {"mediaType": json.loads(image)["mediaType"], "digest": mf.sha256_digest(image), "size": len(image)}
    assert subject["digest"] == pushed.digest and artifact["subject"] == subject
    assert [layer["annotations"][LAYER_ANNOTATION] for layer in artifact["layers"]] == [pushed.layer["digest"]]


def test_find_zran_artifact_asks_the_api_and_never_the_tag(pushed):
    pushed.reg.requests.clear()
    with RegistryClient(pushed.reg.host) as client:
        found = find_zran_artifact(client, parse(pushed.target), pushed.digest)
    assert found is not None and set(found) == {pushed.layer["digest"]}
    index = parse_index(found[pushed.layer["digest"]])
    assert (index.layer_digest, index.layer_size) == (pushed.layer["digest"], pushed.layer["size"])
    assert referrers_gets(pushed.reg) == [(200, f"artifactType={ARTIFACT_TYPE}")], list(pushed.reg.requests)
    assert tag_requests(pushed.reg, pushed.digest) == [], list(pushed.reg.requests)
    fetched = [r["status"] for r in pushed.reg.requests if r["path"] == f"/v2/{REPO}/manifests/{pushed.artifact}"]
    assert fetched == [200], list(pushed.reg.requests)  # the artifact, as the listing named it


def test_with_the_fallback_tag_deleted_the_api_alone_finds_the_artifact(pushed):
    """push wrote the tag too (this registry never says ``OCI-Subject``); with it gone from
    the registry, the API is all there is, and it is enough."""
    tag_path = f"/v2/{REPO}/manifests/{fallback_tag(pushed.digest)}"
    status, _, tagged = get(pushed.reg, tag_path)
    assert status == 200 and [m["digest"] for m in json.loads(tagged)["manifests"]] == [pushed.artifact]
    req = urllib.request.Request(pushed.reg.url + tag_path, method="DELETE")  # (pkg/registry deletes a tag alone)
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 202
    assert get(pushed.reg, tag_path)[0] == 404
    assert get(pushed.reg, f"/v2/{REPO}/manifests/{pushed.artifact}", accept=mf.OCI_MANIFEST)[0] == 200
    pushed.reg.requests.clear()
    with RegistryClient(pushed.reg.host) as client:
        found = find_zran_artifact(client, parse(pushed.target), pushed.digest)
    assert found is not None and set(found) == {pushed.layer["digest"]}
    assert referrers_gets(pushed.reg) == [(200, f"artifactType={ARTIFACT_TYPE}")]
    assert tag_requests(pushed.reg, pushed.digest) == [], list(pushed.reg.requests)


def test_an_image_without_an_artifact_has_none_and_the_tag_is_asked(pushed):
    """An API that lists nothing for the image: the tag is tried too (a client may have
    written one before the registry had the API), and there is none either."""
    nothing = "sha256:" + "0" * 64
    pushed.reg.requests.clear()
    with RegistryClient(pushed.reg.host) as client:
        assert find_zran_artifact(client, parse(pushed.target), nothing) is None
    assert referrers_gets(pushed.reg) == [(200, f"artifactType={ARTIFACT_TYPE}")]
    assert [r["status"] for r in tag_requests(pushed.reg, nothing)] == [404]


def test_a_lazy_run_from_the_referrers_registry_reads_the_layers_bytes(pushed, originals, md):
    """``run --pull=lazy`` (lazy/pull.py) finds the artifact by the API: bash runs, the files
    are the layer's, and only ranges of the layer blob were fetched (206), a fraction of it."""
    from tests.support.lazy import fuse_mounts_under

    pushed.reg.requests.clear()
    script = "head -c 300 /etc/os-release; sha256sum /usr/bin/bash"
    env = {"MINIDOCKER_LAZY_BACKGROUND": "off"}
    out = md.ok("run", "--rm", "--pull=lazy", pushed.target, "bash", "-c", script, env=env)
    assert originals["usr/lib/os-release"][:300].decode() in out.stdout, out.stdout
    assert hashlib.sha256(originals["usr/bin/bash"]).hexdigest() in out.stdout, out.stdout
    assert not list((md.root / "layers").glob("[0-9a-f]*")), "the layer was unpacked, not served lazily"
    got = sent(pushed.reg, pushed.layer["digest"])
    fetched = sum(size for _, size in got)
    assert got and all(status == 206 for status, _ in got), got
    assert fetched < 0.10 * pushed.layer["size"], (fetched, pushed.layer["size"])
    assert referrers_gets(pushed.reg) == [(200, f"artifactType={ARTIFACT_TYPE}")], list(pushed.reg.requests)
    assert tag_requests(pushed.reg, pushed.digest) == [], list(pushed.reg.requests)
    assert fuse_mounts_under(md.root) == [], "run --rm left a FUSE layer"


def test_the_registry_logs_each_request_and_stops_with_its_context(tmp_path):
    with start_referrers_registry(tmp_path / "own") as reg:
        assert list(reg.requests) == []  # (not the GETs of /v2/ that waited for it to answer)
        assert get(reg, "/v2/nosuch/manifests/latest")[0] == 404
        assert get(reg, f"/v2/nosuch/referrers/sha256:{'0' * 64}?artifactType=a%2Fb")[0] == 404
        assert [(r["method"], r["path"], r["query"], r["status"]) for r in reg.requests] == [
            ("GET", "/v2/nosuch/manifests/latest", "", 404),
            ("GET", f"/v2/nosuch/referrers/sha256:{'0' * 64}", "artifactType=a%2Fb", 404),
        ]
        reg.requests.clear()
        assert len(reg.requests) == 0
    assert reg.process.returncode is not None  # stopped, by its PID


def test_without_the_provisioned_source_the_fixture_names_provision_sh(tmp_path, monkeypatch):
    from tests.support import registry

    monkeypatch.setattr(registry, "GGCR_SOURCE", tmp_path / "not-provisioned")
    with pytest.raises(ToolMissing, match="run vagrant/provision.sh"):
        start_referrers_registry(tmp_path / "own")
