"""``minidocker pull`` against real registry processes (docker-registry on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import MINIDOCKER as MINIDOCKER_CMD
from tests.integration.conftest import one_error


def layout_manifest(layout: Path) -> tuple[dict, str]:
    """(manifest, manifest digest) of the single image in an OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    desc = index["manifests"][0]
    doc = json.loads((layout / "blobs" / "sha256" / desc["digest"][7:]).read_text())
    return doc, desc["digest"]


def layer_dirs(root: Path) -> list[str]:
    d = root / "layers"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def blob_names(root: Path) -> list[str]:
    d = root / "blobs" / "sha256"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def assert_store_empty(root: Path) -> None:
    """Nothing stored: no image, no layer (not even a half one), no blob, no ingest file."""
    index = root / "images" / "index.json"
    if index.exists():
        assert json.loads(index.read_text())["images"] == {}
    assert layer_dirs(root) == []
    assert blob_names(root) == []
    ingest = root / "ingest"
    assert not ingest.exists() or list(ingest.iterdir()) == []


# -- the happy paths --------------------------------------------------------------------------


def test_pull_busybox(md, registry, image_layouts):
    ref = f"{registry.host}/busybox:latest"
    r = md.ok("pull", ref)
    assert r.stdout.strip() == ref
    assert "Pull complete" in r.stderr and "Downloaded newer image" in r.stderr  # plain lines: no TTY
    manifest, manifest_digest = layout_manifest(image_layouts["busybox"])
    info = json.loads(md.ok("inspect", ref).stdout)[0]
    assert info["Id"] == manifest["config"]["digest"]  # image ID = config digest
    assert info["RepoTags"] == [ref]
    assert info["RepoDigests"] == [f"{registry.host}/busybox@{manifest_digest}"]
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert info["Config"]["Cmd"] == ["sh"]
    assert len(info["RootFS"]["Layers"]) == len(manifest["layers"]) == 1
    assert info["Size"] > 500_000
    lower = Path(info["GraphDriver"]["Data"]["LowerDir"])
    assert (lower / "bin" / "busybox").stat().st_size > 500_000
    assert os.readlink(lower / "bin" / "sh") in ("busybox", "/bin/busybox")
    # every blob in the store is what its name says
    for name in blob_names(md.root):
        out = subprocess.run(["sha256sum", str(md.root / "blobs/sha256" / name)], capture_output=True, text=True)
        assert out.stdout.split()[0] == name
    # pulling again downloads nothing
    again = md.ok("pull", ref)
    assert "Image is up to date" in again.stderr and "Already exists" in again.stderr
    images = md.ok("images").stdout.splitlines()
    assert images[0].split()[:2] == ["REPOSITORY", "TAG"]
    assert images[1].split()[:3] == [f"{registry.host}/busybox", "latest", info["Id"][7:19]]
    assert md.ok("images", "-q").stdout.split() == [info["Id"][7:19]]
    rows = [json.loads(line) for line in md.ok("images", "--format", "json").stdout.splitlines()]
    assert rows[0]["Repository"] == f"{registry.host}/busybox" and rows[0]["Digest"] == manifest_digest
    assert manifest_digest in md.ok("images", "--digests").stdout


def test_pull_quiet_prints_only_the_name(md, registry):
    r = md.ok("pull", "-q", f"{registry.host}/busybox")
    assert r.stdout == f"{registry.host}/busybox:latest\n"
    assert r.stderr == ""


def test_pull_by_digest(md, registry, image_layouts):
    _, digest = layout_manifest(image_layouts["busybox"])
    ref = f"{registry.host}/busybox@{digest}"
    assert md.ok("pull", ref).stdout.strip() == ref
    info = json.loads(md.ok("inspect", ref).stdout)[0]
    assert info["RepoTags"] == [] and info["RepoDigests"] == [ref]
    assert md.ok("images").stdout.splitlines()[1].split()[:2] == [f"{registry.host}/busybox", "<none>"]


def test_pull_debian(shared_md, registry, image_layouts):
    ref = f"{registry.host}/debian:latest"
    shared_md.ok("pull", ref)
    info = json.loads(shared_md.ok("inspect", ref).stdout)[0]
    lower = Path(info["GraphDriver"]["Data"]["LowerDir"])
    assert (lower / "usr/bin/bash").is_file() and (lower / "etc/debian_version").read_text().startswith("12")
    assert info["Config"]["Cmd"] == ["bash"]
    meta = json.loads((lower.parent / "meta.json").read_text())
    assert meta["diff_id"] == info["RootFS"]["Layers"][0] and meta["entries"] > 3000


def test_docker_hub_names_go_to_the_mirror(shared_md, registry):
    shared_md.ok("pull", f"{registry.host}/debian:latest")
    r = shared_md.ok("pull", "debian", env={"MINIDOCKER_REGISTRY_MIRROR": registry.url})
    assert r.stdout.strip() == "docker.io/library/debian:latest"
    assert "Already exists" in r.stderr  # the same layer, already unpacked: shared, not copied
    info = json.loads(shared_md.ok("inspect", "debian").stdout)[0]
    assert "debian:latest" in info["RepoTags"]
    assert any(d.startswith("debian@sha256:") for d in info["RepoDigests"])
    ids = {json.loads(shared_md.ok("inspect", n).stdout)[0]["Id"] for n in ("debian", f"{registry.host}/debian")}
    assert len(ids) == 1


def test_daemon_json_mirror_serves_pull_and_run(md, registry):
    # the course VM's setting: /etc/minidocker/daemon.json (here the test's own file) names the
    # mirror, no MINIDOCKER_REGISTRY_MIRROR; `run` of a missing Docker Hub name pulls from it
    (md.config).mkdir(parents=True, exist_ok=True)
    (md.config / "daemon.json").write_text(json.dumps({"registry-mirrors": [registry.url]}))
    r = md.ok("run", "--rm", "--network", "none", "busybox", "echo", "from the mirror")
    assert r.stdout == "from the mirror\n"
    info = json.loads(md.ok("inspect", "busybox").stdout)[0]
    assert "busybox:latest" in info["RepoTags"]
    assert md.ok("pull", "busybox").stdout.strip() == "docker.io/library/busybox:latest"


def test_daemon_json_mirror_serves_debian(shared_md, registry, tmp_path):
    # in the session's store (debian is unpacked once per session)
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"registry-mirrors": [registry.url + "/"]}))
    r = shared_md.ok("pull", "debian", env={"MINIDOCKER_DAEMON_CONFIG": str(conf)})
    assert r.stdout.strip() == "docker.io/library/debian:latest"
    # the environment's mirror wins over the file's: a file naming a dead port changes nothing
    conf.write_text(json.dumps({"registry-mirrors": ["http://127.0.0.1:9"]}))
    env = {"MINIDOCKER_DAEMON_CONFIG": str(conf), "MINIDOCKER_REGISTRY_MIRROR": registry.url}
    assert shared_md.ok("pull", "debian", env=env).stdout.strip() == "docker.io/library/debian:latest"


def test_a_damaged_daemon_json_is_one_error_line(md):
    (md.config).mkdir(parents=True, exist_ok=True)
    (md.config / "daemon.json").write_text('{"registry-mirrors": ')
    r = md("pull", "debian")
    assert r.returncode == 125
    lines = r.stderr.splitlines()
    assert lines[0].startswith("Error: cannot read ") and "daemon.json" in lines[0], r.stderr
    assert all(ln.startswith(("Error:", "hint:")) for ln in lines), r.stderr
    assert "Traceback" not in r.stderr


def test_multiarch_picks_the_host_platform_or_the_flag(md, registry):
    ref = f"{registry.host}/multiarch:latest"
    md.ok("pull", ref)
    info = json.loads(md.ok("inspect", ref).stdout)[0]
    assert info["Architecture"] == "amd64"
    assert (Path(info["GraphDriver"]["Data"]["LowerDir"].split(":")[0]) / "arch").read_text().strip() == "amd64"
    md.ok("pull", "--platform", "linux/arm64", ref)
    arm = json.loads(md.ok("inspect", ref).stdout)[0]
    assert arm["Architecture"] == "arm64" and arm["Id"] != info["Id"]
    assert (Path(arm["GraphDriver"]["Data"]["LowerDir"].split(":")[0]) / "arch").read_text().strip() == "arm64"
    # the repo digest is the index's, the same for both platforms
    assert arm["RepoDigests"] == info["RepoDigests"] != []
    r = md("pull", "--platform", "linux/s390x", ref)
    assert r.returncode == 125 and "no matching manifest for linux/s390x" in r.stderr
    assert "linux/arm64" in r.stderr


def test_platform_flag_checked_against_a_single_manifest(md, registry):
    r = md("pull", "--platform", "linux/arm64", f"{registry.host}/busybox")
    assert r.returncode == 125 and "does not match the specified platform" in r.stderr
    assert (
        json.loads(
            (md.root / "images/index.json").read_text()
            if (md.root / "images/index.json").exists()
            else '{"images": {}}'
        )["images"]
        == {}
    )


# -- authentication ---------------------------------------------------------------------------


def test_basic_auth_registry(md, basic_registry):
    ref = f"{basic_registry.host}/busybox"
    r = md("pull", ref)
    assert r.returncode == 125 and "login" in r.stderr and one_error(r.stderr)
    assert_store_empty(md.root)
    bad = md("login", "-u", basic_registry.username, "--password-stdin", basic_registry.host, input="wrong\n")
    assert bad.returncode == 125 and "denied" in bad.stderr
    good = md.ok(
        "login",
        "-u",
        basic_registry.username,
        "--password-stdin",
        basic_registry.host,
        input=basic_registry.password + "\n",
    )
    assert "Login Succeeded" in good.stdout
    auth = md.config / "auth.json"
    assert auth.stat().st_mode & 0o777 == 0o600
    assert basic_registry.host in json.loads(auth.read_text())["auths"]
    md.ok("pull", ref)
    md.ok("logout", basic_registry.host)
    assert basic_registry.host not in json.loads(auth.read_text())["auths"]


def test_bearer_token_flow(md, token_registry):
    token_registry.token_requests.clear()
    md.ok("pull", f"{token_registry.host}/busybox")
    anon = [t for t in token_registry.token_requests if "repository:busybox:pull" in str(t)]
    assert anon, token_registry.token_requests
    r = md("pull", f"{token_registry.host}/private/busybox")
    assert r.returncode == 125 and ("denied" in r.stderr or "unauthorized" in r.stderr.lower())
    md.ok("login", "-u", token_registry.username, "-p", token_registry.password, token_registry.host)
    token_registry.token_requests.clear()
    md.ok("pull", f"{token_registry.host}/private/busybox")
    assert any("private/busybox" in str(t) and "tester" in str(t) for t in token_registry.token_requests), (
        token_registry.token_requests
    )


def test_cdn_redirect_drops_the_authorization_header(md, token_registry):
    """Blobs redirected to another host (Docker Hub's CDN) are fetched without our token."""
    from tests.support.registry import start_redirect_front

    front = start_redirect_front(token_registry)
    try:
        md.ok("pull", f"{front.host}/busybox")
        assert front.cdn_requests, "the blobs should have come from the CDN host"
        assert any(r["authorization"] and r["status"] == 307 for r in front.requests), (
            "the registry side should have seen the bearer token on the redirected blob requests"
        )
        for req in front.cdn_requests:
            assert "authorization" not in {k.lower() for k in req["headers"]}
    finally:
        front.stop()


def test_pull_through_the_redirect_front(md, redirect_front):
    md.ok("pull", f"{redirect_front.host}/layers")
    assert redirect_front.cdn_requests


# -- failures store nothing -------------------------------------------------------------------


def test_unknown_image_and_tag(md, registry):
    r = md("pull", f"{registry.host}/nosuchimage")
    assert r.returncode == 125 and "not found" in r.stderr and one_error(r.stderr)
    r = md("pull", f"{registry.host}/busybox:nosuchtag")
    assert r.returncode == 125 and "not found" in r.stderr
    assert_store_empty(md.root)


def test_registry_down(md):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = md("pull", f"127.0.0.1:{port}/busybox")
    assert r.returncode == 125 and "unreachable" in r.stderr and "Traceback" not in r.stderr
    assert_store_empty(md.root)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_tampered_layer_is_refused(md, own_registry, image_layouts, damage):
    own_registry.seed(image_layouts["busybox"], "busybox")
    manifest, _ = layout_manifest(image_layouts["busybox"])
    blob = own_registry.blob_path(manifest["layers"][0]["digest"])
    data = bytearray(blob.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    blob.write_bytes(bytes(data))
    r = md("pull", f"{own_registry.host}/busybox")
    assert r.returncode == 125, r.stderr
    assert (
        "digest mismatch" in r.stderr or "corrupt" in r.stderr or "truncated" in r.stderr or "broke off" in r.stderr
    ), r.stderr
    index = md.root / "images/index.json"
    assert not index.exists() or json.loads(index.read_text())["images"] == {}
    assert layer_dirs(md.root) == []  # no half layer, not even a .tmp- one
    assert manifest["layers"][0]["digest"][7:] not in blob_names(md.root)


def test_tampered_config_is_refused(md, own_registry, image_layouts):
    own_registry.seed(image_layouts["busybox"], "busybox")
    manifest, _ = layout_manifest(image_layouts["busybox"])
    blob = own_registry.blob_path(manifest["config"]["digest"])
    blob.write_bytes(blob.read_bytes().replace(b'"sh"', b'"rm"'))
    r = md("pull", f"{own_registry.host}/busybox")
    assert r.returncode == 125 and "digest mismatch" in r.stderr
    assert_store_empty(md.root)


def test_disk_full(md, registry, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(small)], check=True)
    try:
        md.root = small / "root"
        r = md("pull", f"{registry.host}/busybox")
        assert r.returncode == 125 and "no space left on device" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        index = md.root / "images/index.json"
        assert not index.exists() or json.loads(index.read_text())["images"] == {}
        assert [p for p in layer_dirs(md.root)] == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


# -- crashes and races ------------------------------------------------------------------------


def test_killed_pull_then_a_good_one(md, registry):
    ref = f"{registry.host}/debian:latest"
    proc = md.popen("pull", ref)
    deadline = time.monotonic() + 60
    # wait until it is unpacking, then kill it without warning
    while time.monotonic() < deadline:
        if any(n.startswith(".tmp-") for n in layer_dirs(md.root)) and proc.poll() is None:
            time.sleep(0.3)
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the pull finished before it could be killed"
    assert (
        not (md.root / "images/index.json").exists()
        or json.loads((md.root / "images/index.json").read_text())["images"] == {}
    )
    md.ok("pull", ref)
    assert [n for n in layer_dirs(md.root) if n.startswith(".tmp-")] == []
    info = json.loads(md.ok("inspect", ref).stdout)[0]
    lower = Path(info["GraphDriver"]["Data"]["LowerDir"])
    assert (lower / "usr/bin/bash").is_file()
    assert list((md.root / "ingest").iterdir()) == []


def test_two_pulls_at_once(md, registry):
    ref = f"{registry.host}/debian:latest"
    procs = [md.popen("pull", ref) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(layer_dirs(md.root)) == 1  # one unpacked layer, no duplicate, no leftover
    doc = json.loads((md.root / "images/index.json").read_text())
    assert len(doc["images"]) == 1 and list(doc["tags"]) == [ref]
    assert list((md.root / "ingest").iterdir()) == []


# -- tag and rmi ------------------------------------------------------------------------------


def test_tag_and_rmi_free_only_unshared_layers(md, registry):
    bb = f"{registry.host}/busybox:latest"
    md.ok("pull", bb)
    md.ok("pull", f"{registry.host}/layers:latest")
    layers_before = layer_dirs(md.root)
    bb_layers = json.loads(md.ok("inspect", bb).stdout)[0]["GraphDriver"]["Data"]["LowerDir"].split(":")
    md.ok("tag", bb, "mine/box:v1")
    assert json.loads(md.ok("inspect", "mine/box:v1").stdout)[0]["RepoTags"] == [bb, "mine/box:v1"]
    r = md.ok("rmi", "mine/box:v1")
    assert r.stdout.strip() == "Untagged: mine/box:v1"
    assert layer_dirs(md.root) == layers_before
    r = md.ok("rmi", bb)
    assert f"Untagged: {bb}" in r.stdout and "Deleted: sha256:" in r.stdout
    remaining = layer_dirs(md.root)
    for lower in bb_layers:
        assert Path(lower).parent.name not in remaining
    assert remaining and set(remaining) < set(layers_before)  # the other image's layers stay
    md.ok("inspect", f"{registry.host}/layers:latest")
    r = md("rmi", bb)
    assert r.returncode == 1 and "No such image" in r.stderr  # docker's rmi fails with 1


def test_rmi_by_id_with_two_repositories_needs_force(md, registry):
    bb = f"{registry.host}/busybox:latest"
    md.ok("pull", bb)
    md.ok("tag", bb, "other/name")
    image_id = json.loads(md.ok("inspect", bb).stdout)[0]["Id"]
    r = md("rmi", image_id[7:19])
    assert r.returncode == 1 and "must be forced" in r.stderr  # docker's rmi fails with 1
    r = md.ok("rmi", "-f", image_id[7:19])
    assert "Deleted: " + image_id in r.stdout
    assert_store_empty(md.root)


def test_rmi_by_digest_removes_that_name_only_while_others_remain(md, registry):
    ref = f"{registry.host}/busybox:latest"
    md.ok("pull", "-q", ref)
    md.ok("tag", ref, "mine:1")
    digest = json.loads(md.ok("inspect", ref).stdout)[0]["RepoDigests"][0]
    assert md.ok("rmi", digest).stdout == f"Untagged: {digest}\n"
    info = json.loads(md.ok("inspect", "mine:1").stdout)[0]
    assert info["RepoDigests"] == [] and sorted(info["RepoTags"]) == sorted([ref, "mine:1"])
    md.ok("rmi", ref)
    out = md.ok("rmi", "mine:1").stdout  # the last name: the image goes
    assert "Untagged: mine:1" in out and "Deleted: sha256:" in out
    assert md.ok("images", "-q").stdout == ""


def test_rmi_keeps_layers_another_image_shares(md, own_registry, image_layouts, tmp_path):
    from tests.integration.layouts import make_layout, tar_of

    own_registry.seed(image_layouts["busybox"], "busybox")
    derived = make_layout(tmp_path / "derived", tar_of(("file", "extra", b"x")), base=image_layouts["busybox"])
    own_registry.seed(derived, "derived")
    md.ok("pull", f"{own_registry.host}/busybox")
    r = md.ok("pull", f"{own_registry.host}/derived")
    assert "Already exists" in r.stderr  # busybox's layer is shared, not unpacked twice
    assert len(layer_dirs(md.root)) == 2
    md.ok("rmi", f"{own_registry.host}/busybox")
    assert len(layer_dirs(md.root)) == 2  # still used by derived
    md.ok("run", "--rm", f"{own_registry.host}/derived", "cat", "/extra")
    md.ok("rmi", f"{own_registry.host}/derived")
    assert_store_empty(md.root)


def test_rmi_refuses_an_image_a_container_uses(md, registry):
    bb = f"{registry.host}/busybox"
    md.ok("run", bb, "true")
    r = md("rmi", bb)
    assert r.returncode == 1 and "being used by a container" in r.stderr  # docker's rmi fails with 1
    md.ok("container", "prune", "-f")
    md.ok("rmi", bb)


def test_lying_manifest_is_refused(md, own_registry, image_layouts):
    own_registry.seed(image_layouts["busybox"], "busybox")
    _, digest = layout_manifest(image_layouts["busybox"])
    blob = own_registry.blob_path(digest)
    blob.write_bytes(
        blob.read_bytes().replace(b'"schemaVersion":2', b'"schemaVersion": 2', 1)
        if b'"schemaVersion":2' in blob.read_bytes()
        else blob.read_bytes() + b" "
    )
    for ref in (f"{own_registry.host}/busybox:latest", f"{own_registry.host}/busybox@{digest}"):
        r = md("pull", ref)
        assert r.returncode == 125 and "digest mismatch" in r.stderr, r.stderr
    assert_store_empty(md.root)


def test_progress_bars_on_a_terminal(md, registry):
    import pexpect

    p = pexpect.spawn(
        MINIDOCKER_CMD[0],
        [*MINIDOCKER_CMD[1:], "pull", f"{registry.host}/layers"],
        env=md.env(),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    p.expect(pexpect.EOF)
    p.close()
    assert p.exitstatus == 0
    assert "━" in p.before and "Pull complete" in p.before  # rich bars, one per layer
