"""The fixtures are real: registries that answer, refuse and redirect as the real ones do,
and images whose contents match what images/layers_expect.py says about them."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse

import pytest

from images.layers_expect import LAYER_MEDIA_TYPES, LAYERS_EXPECTED, verify_tree
from tests.support.oci import layer_tar, layout_config, layout_manifest, layout_top, unpack_overlay_form
from tests.support.registry import SigningKey, basic_auth, http_request, parse_challenge, sha256_digest

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def skopeo_inspect(ref: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", *extra, f"docker://{ref}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def token_for(reg, scope: str, creds: tuple[str, str] | None = None) -> tuple[int, dict]:
    """Ask the registry's realm for a token, as a client would after a 401."""
    status, headers, _ = http_request(f"{reg.url}/v2/")
    assert status == 401
    scheme, params = parse_challenge(headers["www-authenticate"])
    assert scheme == "bearer"
    query = urllib.parse.urlencode({"service": params["service"], "scope": scope})
    h = {"Authorization": basic_auth(*creds)} if creds else {}
    status, _, body = http_request(f"{params['realm']}?{query}", headers=h)
    return status, json.loads(body)


# -- the plain registry -------------------------------------------------------------------


def test_skopeo_sees_busybox_with_the_layouts_digest(registry, image_layouts):
    r = skopeo_inspect(f"{registry.host}/busybox:latest")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    _, digest = layout_manifest(image_layouts["busybox"])
    assert info["Digest"] == digest
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"


@pytest.mark.parametrize(
    "repo,layout",
    [
        ("busybox", "busybox"),
        ("library/busybox", "busybox"),
        ("debian", "debian"),
        ("library/debian", "debian"),
        ("layers", "layers"),
        ("multiarch", "multiarch"),
        ("multiarch-docker", "multiarch-docker"),
    ],
)
def test_seeded_manifests_keep_their_digests(registry, image_layouts, repo, layout):
    top, _ = layout_top(image_layouts[layout])
    status, headers, body = http_request(f"{registry.url}/v2/{repo}/manifests/latest", headers={"Accept": ACCEPT})
    assert status == 200
    assert headers["docker-content-digest"] == top["digest"] == sha256_digest(body)
    assert headers["content-type"] == top["mediaType"]


def test_multiarch_index_has_both_platforms(registry):
    r = skopeo_inspect(f"{registry.host}/multiarch:latest", "--raw")
    assert r.returncode == 0, r.stderr
    index = json.loads(r.stdout)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    platforms = sorted((m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"])
    assert platforms == [("linux", "amd64"), ("linux", "arm64")]
    for m in index["manifests"]:  # every child is there, by digest
        status, _, _ = http_request(f"{registry.url}/v2/multiarch/manifests/{m['digest']}", "HEAD", {"Accept": ACCEPT})
        assert status == 200


def test_blob_path_is_the_stored_blob(registry, image_layouts):
    manifest, _ = layout_manifest(image_layouts["busybox"])
    digest = manifest["layers"][0]["digest"]
    path = registry.blob_path(digest)
    assert path.is_file() and sha256_digest(path.read_bytes()) == digest


def test_access_log_records_requests(registry):
    registry.requests.clear()
    http_request(f"{registry.url}/v2/busybox/manifests/latest", "HEAD", {"Accept": ACCEPT})
    deadline = time.monotonic() + 2
    while not len(registry.requests) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(r["method"], r["path"], r["status"]) for r in registry.requests] == [
        ("HEAD", "/v2/busybox/manifests/latest", 200)
    ]


# -- basic auth -----------------------------------------------------------------------------


def test_basic_registry_refuses_without_credentials(basic_registry):
    url = f"{basic_registry.url}/v2/busybox/manifests/latest"
    status, headers, _ = http_request(url, "HEAD", {"Accept": ACCEPT})
    assert status == 401 and parse_challenge(headers["www-authenticate"])[0] == "basic"
    status, _, _ = http_request(url, "HEAD", {"Accept": ACCEPT, "Authorization": basic_auth("tester", "wrong")})
    assert status == 401
    status, _, _ = http_request(
        url, "HEAD", {"Accept": ACCEPT, "Authorization": basic_auth(basic_registry.username, basic_registry.password)}
    )
    assert status == 200


# -- token auth -----------------------------------------------------------------------------


def test_token_challenge_names_the_realm_and_service(token_registry):
    status, headers, _ = http_request(f"{token_registry.url}/v2/busybox/manifests/latest", headers={"Accept": ACCEPT})
    assert status == 401
    scheme, params = parse_challenge(headers["www-authenticate"])
    assert scheme == "bearer"
    assert params["realm"].startswith("http://127.0.0.1:") and params["realm"].endswith("/token")
    assert params["service"] == "minidocker-test"
    assert params["scope"] == "repository:busybox:pull"


def test_anonymous_token_pulls_public_not_private(token_registry):
    token_registry.token_requests.clear()
    status, body = token_for(token_registry, "repository:busybox:pull")
    assert status == 200 and body["token"] == body["access_token"] and body["expires_in"] == 300
    url = f"{token_registry.url}/v2/busybox/manifests/latest"
    status, _, _ = http_request(url, headers={"Accept": ACCEPT, "Authorization": f"Bearer {body['token']}"})
    assert status == 200
    rec = token_registry.token_requests[-1]
    assert rec["scopes"] == ["repository:busybox:pull"] and rec["username"] is None
    assert rec["authorization"] is False

    # a token for busybox is not a token for private/busybox
    url = f"{token_registry.url}/v2/private/busybox/manifests/latest"
    status, headers, _ = http_request(url, headers={"Accept": ACCEPT, "Authorization": f"Bearer {body['token']}"})
    assert status == 401 and 'error="insufficient_scope"' in headers["www-authenticate"]
    # and an anonymous token asked for private/busybox grants nothing
    status, body = token_for(token_registry, "repository:private/busybox:pull")
    assert status == 200
    status, headers, _ = http_request(url, headers={"Accept": ACCEPT, "Authorization": f"Bearer {body['token']}"})
    assert status in (401, 403)


def test_credentials_get_private_access_and_wrong_ones_401(token_registry):
    token_registry.token_requests.clear()
    status, _ = token_for(token_registry, "repository:private/busybox:pull", ("tester", "wrong"))
    assert status == 401
    status, body = token_for(
        token_registry, "repository:private/busybox:pull", (token_registry.username, token_registry.password)
    )
    assert status == 200
    url = f"{token_registry.url}/v2/private/busybox/manifests/latest"
    status, _, _ = http_request(url, headers={"Accept": ACCEPT, "Authorization": f"Bearer {body['token']}"})
    assert status == 200
    assert [(r["username"], r["authorization"], r["status"]) for r in token_registry.token_requests] == [
        ("tester", True, 401),
        ("tester", True, 200),
    ]


def test_registry_verifies_the_token_signature(token_registry):
    """A token with every claim right but signed by a key outside rootcertbundle: refused."""
    forger = SigningKey("forger")
    now = int(time.time())
    claims = {
        "iss": "minidocker-test-token-issuer",
        "sub": "tester",
        "aud": "minidocker-test",
        "exp": now + 300,
        "nbf": now - 1,
        "iat": now,
        "jti": "forged",
        "access": [{"type": "repository", "name": "private/busybox", "actions": ["pull"]}],
    }
    url = f"{token_registry.url}/v2/private/busybox/manifests/latest"
    status, headers, _ = http_request(url, headers={"Accept": ACCEPT, "Authorization": f"Bearer {forger.jwt(claims)}"})
    assert status == 401 and 'error="invalid_token"' in headers["www-authenticate"]
    genuine = token_registry.token_server.signing.jwt(claims)
    status, _, _ = http_request(url, headers={"Accept": ACCEPT, "Authorization": f"Bearer {genuine}"})
    assert status == 200


def test_skopeo_through_token_auth(token_registry):
    r = skopeo_inspect(f"{token_registry.host}/busybox:latest")
    assert r.returncode == 0, r.stderr
    r = skopeo_inspect(f"{token_registry.host}/private/busybox:latest")
    assert r.returncode != 0
    r = skopeo_inspect(f"{token_registry.host}/private/busybox:latest", "--creds", "tester:s3cret")
    assert r.returncode == 0, r.stderr


# -- the redirecting front ------------------------------------------------------------------


def test_front_redirects_blobs_to_the_cdn_host(redirect_front, image_layouts):
    front = redirect_front
    manifest, digest = layout_manifest(image_layouts["busybox"])
    status, headers, body = http_request(f"{front.url}/v2/busybox/manifests/latest", headers={"Accept": ACCEPT})
    assert status == 200 and headers["docker-content-digest"] == digest
    layer = manifest["layers"][0]["digest"]
    status, headers, _ = http_request(
        f"{front.url}/v2/busybox/blobs/{layer}",
        follow_redirects=False,
        headers={"Authorization": "Bearer not-for-the-cdn"},
    )
    assert status == 307
    location = urllib.parse.urlsplit(headers["location"])
    assert location.hostname == "127.0.0.2" and location.path == f"/cdn/{layer}"
    front.cdn_requests.clear()
    status, _, blob = http_request(headers["location"])
    assert status == 200 and sha256_digest(blob) == layer
    assert "Authorization" not in front.cdn_requests[-1]["headers"]
    status, _, part = http_request(f"{front.cdn_url}/cdn/{layer}?sig=x", headers={"Range": "bytes=10-19"})
    assert status == 206 and part == blob[10:20]
    assert http_request(f"{front.cdn_url}/cdn/{layer}")[0] == 403  # no signature
    # unknown blobs and HEADs are the registry's own answers
    missing = "sha256:" + "0" * 64
    assert http_request(f"{front.url}/v2/busybox/blobs/{missing}", follow_redirects=False)[0] == 404
    assert http_request(f"{front.url}/v2/busybox/blobs/{layer}", "HEAD")[0] == 200


def test_skopeo_pulls_through_the_front(redirect_front, tmp_path):
    redirect_front.cdn_requests.clear()
    r = subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            f"docker://{redirect_front.host}/busybox:latest",
            f"oci:{tmp_path}/out:latest",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert [c["status"] for c in redirect_front.cdn_requests] and all(
        c["status"] == 200 for c in redirect_front.cdn_requests
    )


# -- the images -----------------------------------------------------------------------------


def test_layers_manifest_media_types(image_layouts):
    manifest, _ = layout_manifest(image_layouts["layers"])
    assert [d["mediaType"] for d in manifest["layers"]] == LAYER_MEDIA_TYPES
    assert [e["media_type"] for e in LAYERS_EXPECTED["layers"]] == LAYER_MEDIA_TYPES
    config = layout_config(image_layouts["layers"])
    assert config["rootfs"]["diff_ids"] == [
        sha256_digest(layer_tar(image_layouts["layers"], d)) for d in manifest["layers"]
    ]


def test_busybox_config(image_layouts):
    config = layout_config(image_layouts["busybox"])
    assert config["config"]["Cmd"] == ["sh"]
    assert config["config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert layout_config(image_layouts["debian"])["config"]["Cmd"] == ["bash"]


def test_layers_expectation_matches_the_kernels_overlayfs(image_layouts, tmp_path):
    """Unpack each layer in overlay form, check it, mount them all: the merged view must be
    what LAYERS_EXPECTED says. This checks the expectation itself against the kernel."""
    layout = image_layouts["layers"]
    manifest, _ = layout_manifest(layout)
    lowers = []
    for i, (desc, spec) in enumerate(zip(manifest["layers"], LAYERS_EXPECTED["layers"])):
        d = tmp_path / f"l{i}"
        unpack_overlay_form(layer_tar(layout, desc), d)
        assert verify_tree(d, spec) == [], f"layer {i}"
        lowers.append(d)
    merged = tmp_path / "merged"
    merged.mkdir()
    lowerdir = ":".join(str(d) for d in reversed(lowers))  # the top layer first
    r = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lowerdir}", str(merged)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    try:
        assert verify_tree(merged, LAYERS_EXPECTED["merged"]) == []
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_rebuilds_are_bit_for_bit_identical(image_layouts, tmp_path, monkeypatch):
    from images.build import build_image

    monkeypatch.setenv("MINIDOCKER_IMAGE_CACHE", str(tmp_path))
    for name in ("busybox", "layers", "multiarch"):
        again = build_image(name)
        assert again.parent == tmp_path
        assert (again / "index.json").read_bytes() == (image_layouts[name] / "index.json").read_bytes()
        assert sorted(p.name for p in (again / "blobs/sha256").iterdir()) == sorted(
            p.name for p in (image_layouts[name] / "blobs/sha256").iterdir()
        )


def test_the_recipe_stamp_rebuilds_a_changed_recipe(tmp_path, monkeypatch):
    from images import build

    monkeypatch.setenv("MINIDOCKER_IMAGE_CACHE", str(tmp_path))
    first = build.build_image("busybox")
    inode = (first / "index.json").stat().st_ino
    assert build.build_image("busybox") == first and (first / "index.json").stat().st_ino == inode
    monkeypatch.setattr(build.RECIPES["busybox"], "version", build.RECIPES["busybox"].version + 1)
    build.build_image("busybox")
    assert (first / "index.json").stat().st_ino != inode
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["busybox"]
    assert not [p for p in tmp_path.iterdir() if ".build-" in p.name or ".old-" in p.name]


def test_token_server_speaks_oauth_post_too(token_registry):
    """containerd and docker POST credentials to the realm (grant_type=password)."""
    _, headers, _ = http_request(f"{token_registry.url}/v2/")
    realm = parse_challenge(headers["www-authenticate"])[1]["realm"]
    form = {
        "grant_type": "password",
        "username": "tester",
        "password": "s3cret",
        "service": "minidocker-test",
        "scope": "repository:private/busybox:pull",
        "client_id": "minidocker",
        "access_type": "offline",
    }
    status, _, body = http_request(
        realm, "POST", {"Content-Type": "application/x-www-form-urlencoded"}, urllib.parse.urlencode(form).encode()
    )
    assert status == 200
    doc = json.loads(body)
    url = f"{token_registry.url}/v2/private/busybox/manifests/latest"
    assert http_request(url, "HEAD", {"Accept": ACCEPT, "Authorization": f"Bearer {doc['access_token']}"})[0] == 200
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": doc["refresh_token"],
        "service": "minidocker-test",
        "scope": "repository:private/busybox:pull",
        "client_id": "minidocker",
    }
    status, _, body = http_request(
        realm, "POST", {"Content-Type": "application/x-www-form-urlencoded"}, urllib.parse.urlencode(refresh).encode()
    )
    assert status == 200 and token_registry.token_requests[-1]["username"] == "tester"
    form["password"] = "wrong"
    status, _, _ = http_request(
        realm, "POST", {"Content-Type": "application/x-www-form-urlencoded"}, urllib.parse.urlencode(form).encode()
    )
    assert status == 401


def test_debian_large_is_a_big_one_layer_image_with_python_and_gcc():
    """#16's lazy-pull image: one gzip layer of more than 300 MB unpacked, python3 and gcc in it."""
    import gzip
    import tarfile

    from images.build import build_image

    layout = build_image("debian-large")
    manifest, _ = layout_manifest(layout)
    assert len(manifest["layers"]) == 1
    blob = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].removeprefix("sha256:")
    names, unpacked = set(), 0
    with gzip.open(blob) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for member in tar:
            names.add(member.name.removeprefix("./"))
            unpacked += member.size
    assert unpacked > 300 * 1024 * 1024, unpacked
    assert {"usr/bin/python3", "usr/bin/gcc", "usr/bin/make"} <= names
