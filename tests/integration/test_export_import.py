"""``minidocker export`` (a container's flattened filesystem) and ``import`` (a rootfs tar as
a one-layer image), against the real kernel's overlayfs."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.integration.conftest import MINIDOCKER, busybox_store, one_error

CHANGES = "echo new > /newfile; rm /etc/passwd; rm -rf /home; mkdir -p /home/x; echo y > /home/x/y"


@pytest.fixture(scope="module")
def emd(tmp_path_factory, registry):
    """A store of this module's own, with busybox; every container removed at the end."""
    with busybox_store(tmp_path_factory, registry, "export") as (m, _base):
        yield m


@pytest.fixture
def changed(emd, registry):
    """A stopped container that added, deleted and replaced files (opaque /home)."""
    image = f"{registry.host}/busybox:latest"
    lower = Path(json.loads(emd.ok("inspect", image).stdout)[0]["GraphDriver"]["Data"]["LowerDir"])
    assert (lower / "etc/passwd").is_file() and (lower / "home").is_dir()  # what the changes delete
    cid = emd.ok("run", "-d", image, "sh", "-c", CHANGES).stdout.strip()
    assert emd.ok("wait", cid).stdout.strip() == "0"
    yield cid
    emd("rm", "-f", cid)


def tar_members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def overlay_mounts_of(path: Path) -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines() if str(path) in line]


def test_export_shows_the_changes_and_no_whiteouts(emd, changed, tmp_path):
    out = tmp_path / "c.tar"
    emd.ok("export", "-o", str(out), changed)
    data = out.read_bytes()
    members = tar_members(data)
    assert "bin/busybox" in members and members["bin/busybox"].size > 500_000
    assert "newfile" in members and "etc/passwd" not in members and "etc" in members
    assert sorted(n for n in members if n.startswith("home/")) == ["home/x", "home/x/y"]
    assert not [n for n in members if ".wh." in n]
    assert not [m for m in members.values() if m.ischr() and (m.devmajor, m.devminor) == (0, 0)]
    assert all(not n.startswith(("/", "./")) for n in members)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile("newfile").read() == b"new\n"
    # to stdout when it is not a terminal: the same bytes; no mount is left anywhere
    piped = subprocess.run([*MINIDOCKER, "export", changed], capture_output=True, env=emd.env(), timeout=120)
    assert piped.returncode == 0 and piped.stdout == data
    assert overlay_mounts_of(emd.root) == []


def test_export_of_a_running_container(emd, registry):
    cid = emd.ok("run", "-d", f"{registry.host}/busybox", "sh", "-c", "echo live > /live; sleep 30").stdout.strip()
    try:
        members = {}
        for _ in range(100):  # the file appears once the shell has run its first command
            piped = subprocess.run([*MINIDOCKER, "export", cid], capture_output=True, env=emd.env(), timeout=60)
            assert piped.returncode == 0, piped.stderr
            members = tar_members(piped.stdout)
            if "live" in members:
                break
            time.sleep(0.05)
        assert "live" in members and "bin/busybox" in members
        assert "proc" in members and not [n for n in members if n.startswith("proc/")]  # no /proc contents
        assert json.loads(emd.ok("inspect", cid).stdout)[0]["State"]["Running"]
    finally:
        emd("rm", "-f", cid)


def test_import_of_an_export_runs(emd, changed, tmp_path):
    out = tmp_path / "c.tar"
    emd.ok("export", "-o", str(out), changed)
    r = emd.ok(
        "import",
        "-c",
        'CMD ["cat", "/newfile"]',
        "-c",
        'ENV GREETING="hi there"',
        "-m",
        "flattened",
        str(out),
        "flat:v1",
    )
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    info = json.loads(emd.ok("inspect", "flat:v1").stdout)[0]
    assert info["Id"] == image_id and len(info["RootFS"]["Layers"]) == 1
    assert info["Config"]["Cmd"] == ["cat", "/newfile"] and info["Config"]["Env"] == ["GREETING=hi there"]
    assert info["Comment"] == "flattened" and (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert emd.ok("run", "--rm", "flat:v1").stdout == "new\n"
    assert emd.ok("run", "--rm", "flat:v1", "sh", "-c", "echo $GREETING; ls /home").stdout == "hi there\nx\n"
    assert emd("run", "--rm", "flat:v1", "cat", "/etc/passwd").returncode != 0
    # from stdin, gzipped, without a name: the same layer, a new image ID (its own created time)
    gz = gzip.compress(out.read_bytes(), compresslevel=1)
    p = subprocess.run([*MINIDOCKER, "import", "-"], input=gz, capture_output=True, env=emd.env(), timeout=120)
    assert p.returncode == 0, p.stderr
    other = json.loads(emd.ok("inspect", p.stdout.decode().strip()).stdout)[0]
    assert other["RootFS"]["Layers"] == info["RootFS"]["Layers"] and other["RepoTags"] == []
    emd.ok("run", "--rm", p.stdout.decode().strip()[7:19], "true")
    emd.ok("rmi", "flat:v1", other["Id"])


def test_import_refuses_what_is_not_a_tar(emd, tmp_path):
    before = (
        sorted(p.name for p in (emd.root / "layers").iterdir()),
        sorted(p.name for p in (emd.root / "blobs/sha256").iterdir()),
        emd.ok("images", "-q").stdout,
    )
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all " * 200)
    for args in (
        ["import", str(junk), "junk:1"],
        ["import", str(tmp_path / "missing.tar")],
        ["import", "-c", "RUN rm -rf /", str(junk)],
    ):
        r = emd(*args)
        assert r.returncode == 125 and one_error(r.stderr), (args, r.stderr)
    after = (
        sorted(p.name for p in (emd.root / "layers").iterdir()),
        sorted(p.name for p in (emd.root / "blobs/sha256").iterdir()),
        emd.ok("images", "-q").stdout,
    )
    assert after == before
    assert not list((emd.root / "ingest").iterdir())


def test_export_of_an_unknown_container(emd, tmp_path):
    r = emd("export", "-o", str(tmp_path / "x.tar"), "no-such-container")
    assert r.returncode == 125 and one_error(r.stderr) and not (tmp_path / "x.tar").exists()
