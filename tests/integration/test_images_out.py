"""Images that minidocker itself wrote (commit, build) leave the machine and come back, and
tools no one here wrote accept them: the whole of issue #5 in one path.

run + change files -> commit -> push -> skopeo inspect/copy (digests verified) -> umoci
unpack gives the files `export` gives -> rmi -> pull back: the same image ID and digest ->
run it and see the changes; and save -> load into an empty store gives the same ID."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid

from tests.integration.conftest import Minidocker, _remove
from tests.support.registry import need_tool
from tests.support.trees import tree

CHANGES = (
    "echo made > /made; echo more >> /etc/passwd; rm /etc/group; "
    "rm -rf /home && mkdir /home && echo x > /home/only; chown 1000:1000 /home/only"
)


def _inspect(md, name):
    return json.loads(md.ok("inspect", name).stdout)[0]


def _tool(*argv: str) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(argv)}:\n{r.stderr}"
    return r


def test_committed_image_round_trip_through_registry_skopeo_and_umoci(md, registry, tmp_path):
    md.ok("pull", "-q", f"{registry.host}/busybox")
    name = f"c-{uuid.uuid4().hex[:8]}"
    md.ok("run", "--name", name, f"{registry.host}/busybox", "sh", "-c", CHANGES)
    repo = f"{registry.host}/committed-{uuid.uuid4().hex[:8]}"
    image_id = md.ok("commit", "-m", "round trip", "-c", 'CMD ["cat", "/made"]', name, f"{repo}:v1").stdout.strip()
    assert image_id.startswith("sha256:")

    pushed = md.ok("push", f"{repo}:v1")
    digest = pushed.stdout.split("digest: ")[1].split()[0]
    # skopeo reads what we pushed, and copying it verifies every blob's digest
    info = json.loads(
        _tool(need_tool("skopeo", "skopeo"), "inspect", "--tls-verify=false", f"docker://{repo}:v1").stdout
    )
    assert info["Digest"] == digest and len(info["Layers"]) == 2
    oci = tmp_path / "oci"
    _tool(
        need_tool("skopeo", "skopeo"),
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        f"docker://{repo}:v1",
        f"oci:{oci}:v1",
    )
    config = json.loads(_tool(need_tool("skopeo", "skopeo"), "inspect", "--config", f"oci:{oci}:v1").stdout)
    assert config["config"]["Cmd"] == ["cat", "/made"] and config["history"][-1]["comment"] == "round trip"

    # umoci applies both layers (whiteouts, opaque /home) and gets the files export gives
    bundle = tmp_path / "bundle"
    _tool(need_tool("umoci", "umoci"), "unpack", "--image", f"{oci}:v1", str(bundle))
    exported = tmp_path / "exported"
    exported.mkdir()
    tar = tmp_path / "export.tar"
    md.ok("export", "-o", str(tar), name)
    with tarfile.open(tar) as t:
        t.extractall(exported, numeric_owner=True)
    theirs, ours = tree(bundle / "rootfs", skip_dirs_meta=True), tree(exported, skip_dirs_meta=True)
    for runtime_file in ("etc/hostname", "etc/hosts", "etc/resolv.conf"):  # mount points, not in the image
        ours.pop(runtime_file, None)
        theirs.pop(runtime_file, None)
    assert theirs == ours
    assert "etc/group" not in theirs and "home/app" not in theirs and theirs["home/only"][2:4] == (1000, 1000)

    # gone from the store, pulled back: the same image, and the changes are there
    md.ok("rm", name)
    md.ok("rmi", "-f", image_id)
    md.ok("pull", "-q", f"{repo}:v1")
    back = _inspect(md, f"{repo}:v1")
    assert back["Id"] == image_id and f"{repo}@{digest}" in back["RepoDigests"]
    assert md.ok("run", "--rm", f"{repo}:v1").stdout == "made\n"
    r = md.ok("run", "--rm", f"{repo}:v1", "sh", "-c", "ls /home; test -e /etc/group || echo no-group")
    assert r.stdout.split() == ["only", "no-group"]


def test_built_image_saved_and_loaded_elsewhere(md, registry, tmp_path):
    md.ok("pull", "-q", f"{registry.host}/busybox")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello\n")
    (ctx / "Dockerfile").write_text(
        f"FROM {registry.host}/busybox\nCOPY hello.txt /hello.txt\n"
        'RUN cat /hello.txt > /copied\nCMD ["cat", "/copied"]\n'
    )
    md.ok("build", "-t", "built:1", str(ctx))
    image_id = _inspect(md, "built:1")["Id"]
    archive = tmp_path / "built.tar"
    md.ok("save", "-o", str(archive), "built:1")
    other = Minidocker(tmp_path / "other-root", tmp_path / "other-config")
    try:
        other.ok("load", "-i", str(archive))
        assert _inspect(other, "built:1")["Id"] == image_id
        assert other.ok("run", "--rm", "built:1").stdout == "hello\n"
    finally:
        _remove(other, tmp_path / "other-root")
    # skopeo reads the same archive as a docker-archive
    info = json.loads(_tool(need_tool("skopeo", "skopeo"), "inspect", f"docker-archive:{archive}").stdout)
    assert len(info["Layers"]) == 3
    # and podman loads it (same image ID), unpacks its layers for a container, and exports
    # a filesystem with our layers' files in it
    conf = tmp_path / "containers.conf"
    conf.write_text('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    runroot = tempfile.mkdtemp(prefix="mdp-", dir="/tmp")  # podman wants a runroot under 50 characters
    podman = [
        need_tool("podman", "podman"),
        "--root",
        str(tmp_path / "p-root"),
        "--runroot",
        runroot,
        "--storage-driver",
        "vfs",
    ]
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    try:
        r = subprocess.run([*podman, "load", "-i", str(archive)], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and "Loaded image: docker.io/library/built:1" in r.stdout, r.stderr
        r = subprocess.run(
            [*podman, "images", "--no-trunc", "--format", "{{.ID}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.stdout.split() == [image_id]
        subprocess.run(
            [*podman, "create", "--name", "from-minidocker", "docker.io/library/built:1"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        exported = subprocess.run(
            [*podman, "export", "from-minidocker"], env=env, check=True, capture_output=True, timeout=120
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(exported)) as t:
            assert t.extractfile("copied").read() == b"hello\n"
            assert t.extractfile("hello.txt").read() == b"hello\n"
    finally:
        subprocess.run([*podman, "system", "reset", "-f"], env=env, capture_output=True, timeout=300)
        shutil.rmtree(runroot, ignore_errors=True)
