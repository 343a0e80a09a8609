"""Volumes as a docker user meets them: ``volume create|ls|inspect|rm|prune``, ``-v NAME:/path``,
``-v /path`` and an image's ``VOLUME``, copy-up of the image's files with their owners and
modes, ``--mount`` of each type, ``--volumes-from``, ``rm -v`` and ``--rm``, ``--userns=auto``,
``commit`` (volume content left out) and ``cp`` into and out of a volume. Real containers,
real mounts; every container runs with ``--network none``."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import uuid

import pytest

from minidocker.runtime.idranges import SUBGID, SUBUID, blocks, read_ranges
from tests.integration.conftest import one_error

OWNERS_DOCKERFILE = """\
FROM {base}
RUN mkdir -p /data/sub && echo hello > /data/a && chown 1:2 /data/a && chmod 0600 /data/a \\
 && echo s > /data/sub/b && chown -R 33:44 /data/sub && chmod 0750 /data/sub \\
 && chown 7:8 /data && chmod 0711 /data && ln -s a /data/link
VOLUME /imgvol
"""


@pytest.fixture(scope="module")
def owners_image(shared_md, bb, tmp_path_factory):
    """An image whose /data holds files of several owners and modes, and a ``VOLUME /imgvol``."""
    ctx = tmp_path_factory.mktemp("owners-ctx")
    (ctx / "Dockerfile").write_text(OWNERS_DOCKERFILE.format(base=bb))
    shared_md.ok("build", "-t", "volumes-owners:test", str(ctx))
    return "volumes-owners:test"


@pytest.fixture
def mdv(md_run):
    """The shared store; the containers and then the volumes a test made are removed after it."""
    containers = set(md_run.ok("ps", "-aq", "--no-trunc").stdout.split())
    volumes = set(md_run.ok("volume", "ls", "-q").stdout.split())
    yield md_run
    new = set(md_run("ps", "-aq", "--no-trunc").stdout.split()) - containers
    if new:
        md_run("rm", "-f", *new)
    gone = set(md_run("volume", "ls", "-q").stdout.split()) - volumes
    if gone:
        md_run("volume", "rm", "-f", *gone)


@pytest.fixture
def fresh(md, bb):
    """A store of this test's own (prune reaches everything unused in a store), with busybox."""
    md.ok("pull", "-q", bb)
    return md


def name(prefix: str = "vol") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def run(m, *args: str, **kw) -> subprocess.CompletedProcess:
    return m.ok("run", "--network", "none", *args, **kw)


def volumes(m) -> set[str]:
    return set(m.ok("volume", "ls", "-q").stdout.split())


def inspect(m, what: str) -> dict:
    doc = json.loads(m.ok("inspect", what).stdout)
    return doc[0] if isinstance(doc, list) else doc


def refused(r, *words: str) -> None:
    assert r.returncode == 125, r.stderr
    assert one_error(r.stderr), r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def mountpoint(m, vol: str) -> str:
    return json.loads(m.ok("volume", "inspect", vol).stdout)[0]["Mountpoint"]


LIST = "stat -c '%u:%g %a %N' /data /data/a /data/sub /data/sub/b /data/link"
EXPECTED = {
    "/data": "7:8 711",
    "/data/a": "1:2 600",
    "/data/sub": "33:44 750",
    "/data/sub/b": "33:44 644",
    "/data/link": "0:0 777",
}


def listing(text: str) -> dict[str, str]:
    """stat's lines -> {path: "uid:gid mode"} (a symlink's line names its target too)."""
    out = {}
    for line in text.splitlines():
        owner, mode, path = line.split(" ", 2)
        out[path.split(" -> ")[0].strip("'\u2018\u2019")] = f"{owner} {mode}"
    return out


def test_copy_up_keeps_owners_modes_and_symlinks(mdv, owners_image):
    vol = name()
    r = run(mdv, "--rm", "-v", f"{vol}:/data", owners_image, "sh", "-c", LIST + "; readlink /data/link")
    assert listing(r.stdout.rsplit("\n", 2)[0]) == EXPECTED
    assert r.stdout.strip().endswith("\na")
    # the files are in the volume on the host, with the same owners and modes
    data = mountpoint(mdv, vol)
    st = os.stat(os.path.join(data, "a"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1, 2, 0o600)
    assert os.readlink(os.path.join(data, "link")) == "a"
    assert (os.stat(data).st_uid, os.stat(data).st_mode & 0o777) == (7, 0o711)


@pytest.mark.parametrize("how", ["-v {vol}:/data:nocopy", "--mount type=volume,src={vol},dst=/data,volume-nocopy"])
def test_nocopy_leaves_the_volume_empty(mdv, owners_image, how):
    vol = name()
    r = run(mdv, "--rm", *shlex.split(how.format(vol=vol)), owners_image, "ls", "-A", "/data")
    assert r.stdout.strip() == ""
    assert os.listdir(mountpoint(mdv, vol)) == []


def test_a_volume_that_is_not_empty_is_not_copied_over(mdv, owners_image):
    vol = name()
    mdv.ok("volume", "create", vol)
    open(os.path.join(mountpoint(mdv, vol), "mine"), "w").close()
    r = run(mdv, "--rm", "-v", f"{vol}:/data", owners_image, "ls", "-A", "/data")
    assert r.stdout.split() == ["mine"]


def test_named_volume_data_outlives_the_container(mdv, bb):
    vol = name()
    run(mdv, "--name", name("c"), "-v", f"{vol}:/store", bb, "sh", "-c", "echo kept > /store/f")
    first = mdv.ok("ps", "-aq").stdout.split()[0]
    mdv.ok("rm", "-v", first)  # -v takes anonymous volumes only
    assert vol in volumes(mdv)
    assert run(mdv, "--rm", "-v", f"{vol}:/other", bb, "cat", "/other/f").stdout == "kept\n"


def test_anonymous_volumes_go_with_rm_v_and_with_run_rm(mdv, bb):
    before = volumes(mdv)
    named = name()
    run(mdv, "--rm", "-v", "/anon", "-v", f"{named}:/named", bb, "sh", "-c", "echo x > /anon/f")
    assert volumes(mdv) - before == {named}  # --rm: the anonymous one went, the named one stays
    c = name("c")
    run(mdv, "--name", c, "-v", "/anon", bb, "true")
    [anon] = volumes(mdv) - before - {named}
    assert len(anon) == 64 and all(ch in "0123456789abcdef" for ch in anon)
    assert inspect(mdv, c)["Mounts"][0]["Name"] == anon
    mdv.ok("rm", "-v", c)
    assert volumes(mdv) - before == {named}


def test_image_volume_makes_an_anonymous_volume(mdv, owners_image):
    before = volumes(mdv)
    c = name("c")
    run(mdv, "--name", c, owners_image, "sh", "-c", "echo in-volume > /imgvol/f")
    [anon] = volumes(mdv) - before
    mounts = inspect(mdv, c)["Mounts"]
    assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [("volume", anon, "/imgvol")]
    assert open(os.path.join(mountpoint(mdv, anon), "f")).read() == "in-volume\n"
    info = json.loads(mdv.ok("volume", "inspect", anon).stdout)[0]
    assert "com.docker.volume.anonymous" in info["Labels"]
    # a -v at the same path replaces the image's volume: no anonymous one then
    vol = name()
    run(mdv, "--rm", "-v", f"{vol}:/imgvol", owners_image, "true")
    assert volumes(mdv) - before == {anon, vol}


def test_volumes_from_shares_the_mounts_read_only_when_asked(mdv, bb, tmp_path):
    vol, src = name(), name("src")
    (tmp_path / "host").mkdir()
    run(mdv, "--name", src, "-v", f"{vol}:/shared", "-v", f"{tmp_path / 'host'}:/hostdir", bb, "true")
    r = run(
        mdv, "--rm", "--volumes-from", src, bb, "sh", "-c", "echo hi > /shared/f; echo h > /hostdir/g; cat /shared/f"
    )
    assert r.stdout == "hi\n" and (tmp_path / "host" / "g").read_text() == "h\n"
    r = mdv(
        "run",
        "--rm",
        "--network",
        "none",
        "--volumes-from",
        f"{src}:ro",
        bb,
        "sh",
        "-c",
        "cat /shared/f; touch /shared/x",
    )
    assert r.returncode == 1 and r.stdout == "hi\n" and "Read-only file system" in r.stderr
    refused(
        mdv("run", "--rm", "--network", "none", "--volumes-from", "no-such-container", bb, "true"), "No such container"
    )


def test_mount_bind_volume_and_tmpfs(mdv, bb, tmp_path):
    (tmp_path / "f").write_text("from host\n")
    vol = name()
    script = (
        "cat /b/f; touch /b/nope 2>/dev/null || echo ro; echo v > /v/f; grep ' /t ' /proc/mounts; df -k /t | tail -1"
    )
    r = run(
        mdv,
        "--rm",
        "--mount",
        f"type=bind,source={tmp_path},target=/b,readonly",
        "--mount",
        f"type=volume,src={vol},dst=/v",
        "--mount",
        "type=tmpfs,destination=/t,tmpfs-size=2m,tmpfs-mode=1770",
        bb,
        "sh",
        "-c",
        script,
    )
    lines = r.stdout.splitlines()
    assert lines[:2] == ["from host", "ro"]
    assert "tmpfs /t tmpfs" in lines[2] and "size=2048k" in lines[2] and "mode=1770" in lines[2]
    assert lines[3].split()[1] == "2048"  # df: 2048 1K-blocks
    assert open(os.path.join(mountpoint(mdv, vol), "f")).read() == "v\n"


def test_volume_create_with_tmpfs_options(mdv, bb):
    vol = name()
    assert (
        mdv.ok("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=3m", vol).stdout
        == f"{vol}\n"
    )
    info = json.loads(mdv.ok("volume", "inspect", vol).stdout)[0]
    assert info["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=3m"} and info["Driver"] == "local"
    r = run(mdv, "--rm", "-v", f"{vol}:/t", bb, "sh", "-c", "grep ' /t ' /proc/mounts")
    assert r.stdout.startswith("tmpfs /t tmpfs") and "size=3072k" in r.stdout
    refused(mdv("volume", "create", "--opt", "type=tmpfs", name()), 'missing required option: "device"')
    refused(mdv("volume", "create", "--opt", "colour=blue", name()), 'invalid option key: "colour"')


def test_volume_ls_inspect_rm_prune(fresh, bb):
    used, unused, labelled = name(), name(), name()
    fresh.ok("volume", "create", unused)
    fresh.ok("volume", "create", "--label", "team=blue", labelled)
    c = name("c")
    run(fresh, "--name", c, "-v", f"{used}:/u", "-v", "/anon-used", bb, "true")
    anon_free = fresh.ok("volume", "create").stdout.strip()  # no name: 64 hex digits, not anonymous to prune
    info = json.loads(fresh.ok("volume", "inspect", labelled).stdout)[0]
    assert set(info) >= {"Name", "Driver", "Mountpoint", "Labels", "Options", "Scope", "CreatedAt"}
    assert info["Labels"] == {"team": "blue"} and info["Scope"] == "local"
    assert info["Mountpoint"].endswith(f"/volumes/{labelled}/_data") and os.path.isdir(info["Mountpoint"])
    assert fresh.ok("volume", "ls", "-q", "--filter", "label=team=blue").stdout.split() == [labelled]
    assert fresh.ok("volume", "ls", "-q", "--filter", f"name={unused}").stdout.split() == [unused]
    dangling = set(fresh.ok("volume", "ls", "-q", "--filter", "dangling=true").stdout.split())
    assert {unused, labelled, anon_free} <= dangling and used not in dangling
    assert "DRIVER" in fresh.ok("volume", "ls").stdout
    # rm: refused while a container (stopped here) uses it
    refused(fresh("volume", "rm", used), f"remove {used}: volume is in use")
    assert used in volumes(fresh)
    refused(fresh("volume", "rm", name()), "No such volume")
    assert fresh.ok("volume", "rm", "-f", name()).returncode == 0
    assert fresh.ok("volume", "rm", unused).stdout == f"{unused}\n" and unused not in volumes(fresh)
    # prune: anonymous unused ones only (a named one, or one made by volume create, stays);
    # with -a every unused one; never one in use
    [anon_of_c] = [m["Name"] for m in inspect(fresh, c)["Mounts"] if m["Destination"] == "/anon-used"]
    assert anon_of_c not in fresh.ok("volume", "prune", "-f").stdout  # c, stopped, still uses it
    fresh.ok("rm", c)  # without -v: its anonymous volume is left, dangling
    pruned = fresh.ok("volume", "prune", "-f").stdout
    assert anon_of_c in pruned and anon_of_c not in volumes(fresh)
    assert {labelled, anon_free, used} <= volumes(fresh)
    out = fresh.ok("volume", "prune", "-f", "-a").stdout
    for v in (labelled, used, anon_free):
        assert v in out and v not in volumes(fresh)


def test_prune_takes_the_anonymous_volume_of_a_removed_container(fresh, bb):
    c = name("c")
    before = volumes(fresh)
    run(fresh, "--name", c, "-v", "/anon", bb, "true")
    [anon] = volumes(fresh) - before
    assert anon not in fresh.ok("volume", "prune", "-f").stdout  # still used by the stopped container
    fresh.ok("rm", c)
    assert anon in volumes(fresh)
    assert anon in fresh.ok("volume", "prune", "-f").stdout and anon not in volumes(fresh)


def test_system_prune_volumes(fresh, bb):
    c = name("c")
    before = volumes(fresh)
    run(fresh, "--name", c, "-v", "/anon", bb, "true")
    [anon] = volumes(fresh) - before
    out = fresh.ok("system", "prune", "-f", "--volumes").stdout  # the container goes first, then its volume
    assert "Deleted Volumes:" in out and anon in out and anon not in volumes(fresh)


@pytest.mark.parametrize(
    "args, words",
    [
        (["-v", "vol-dup1:/x", "-v", "vol-dup2:/x"], ["Duplicate mount point: /x"]),
        (["-v", "vol-dup1:/x", "--mount", "type=tmpfs,dst=/x"], ["Duplicate mount point: /x"]),
        (["--mount", "type=bind,src=/x,dst=/y,colour=red"], ["unexpected key 'colour'"]),
        (["--mount", "type=bind,src=/no/such/dir/here,dst=/y"], ["bind source path does not exist: /no/such/dir/here"]),
        (["--mount", "type=floppy,dst=/y"], ['invalid mount config for type "floppy"']),
        (["--mount", "type=tmpfs,src=x,dst=/y"], ["field Source must not be specified"]),
        (["--mount", "type=volume,src=vv,dst=/y,tmpfs-size=1m"], ["field TmpfsOptions must not be specified"]),
        (["-v", "b@d:/x"], ['"b@d" includes invalid characters for a local volume name']),
        (["-v", "vol-ok:relative"], ["must be absolute"]),
        (["-v", "vol-ok:/x:rx"], ["invalid mode: rx"]),
        (["-v", "/x:ro"], ["invalid volume specification"]),
        (["-v", "vol-ok:/"], ["destination can't be '/'"]),
    ],
)
def test_bad_mounts_are_refused_before_anything_is_made(mdv, bb, args, words):
    before_v, before_c = volumes(mdv), mdv.ok("ps", "-aq").stdout
    refused(mdv("run", "--rm", "--network", "none", *args, bb, "true"), *words)
    assert volumes(mdv) == before_v and mdv.ok("ps", "-aq").stdout == before_c


def test_bad_volume_names_are_refused(mdv):
    refused(mdv("volume", "create", "x"), '"x" includes invalid characters for a local volume name')
    refused(mdv("volume", "create", "../etc"), "includes invalid characters")
    r = mdv("volume", "inspect", "../etc")  # docker's inspect: what it found ([]), the error, exit 1
    assert (r.returncode, r.stdout) == (1, "[]\n") and one_error(r.stderr) and "No such volume" in r.stderr


def test_z_options_are_accepted_without_selinux(mdv, bb):
    vol = name()
    r = run(mdv, "--rm", "-v", f"{vol}:/z:z", "-v", f"{vol}:/Z:Z,ro", bb, "sh", "-c", "echo a > /z/f; cat /Z/f")
    assert r.stdout == "a\n"


def test_volumes_with_userns_auto(mdv, owners_image):
    if not blocks(read_ranges(SUBUID)) or not blocks(read_ranges(SUBGID)):
        pytest.fail("no ID ranges for 'minidocker' in /etc/subuid and /etc/subgid: run vagrant/provision.sh")
    vol, empty = name(), name()
    script = LIST + "; echo mine > /data/mine; stat -c '%u:%g' /data/mine; touch /empty/f; stat -c '%u:%g' /empty/f"
    r = run(
        mdv, "--rm", "--userns=auto", "-v", f"{vol}:/data", "-v", f"{empty}:/empty", owners_image, "sh", "-c", script
    )
    lines = r.stdout.splitlines()
    assert listing("\n".join(lines[:5])) == EXPECTED  # the container sees the image's owners
    assert lines[5:] == ["0:0", "0:0"]  # and what its root writes as its own
    data = mountpoint(mdv, vol)
    root_uid = os.stat(os.path.join(data, "mine")).st_uid
    assert root_uid >= 100000  # on the host: the block's first uid, never root
    assert os.stat(os.path.join(data, "a")).st_uid == root_uid + 1
    assert os.stat(os.path.join(data, "sub")).st_gid == os.stat(os.path.join(data, "mine")).st_gid + 44
    assert os.stat(mountpoint(mdv, empty)).st_uid == root_uid


def test_commit_leaves_volume_content_out(mdv, bb):
    vol, c, img = name(), name("c"), name("img") + ":test"
    run(mdv, "--name", c, "-v", f"{vol}:/vdata", bb, "sh", "-c", "echo secret > /vdata/s; echo kept > /kept")
    mdv.ok("commit", c, img)
    try:
        r = run(mdv, "--rm", img, "sh", "-c", "cat /kept; ls -A /vdata 2>/dev/null | wc -l")
        assert r.stdout.split() == ["kept", "0"]
    finally:
        mdv("rmi", img)


@pytest.mark.parametrize("running", [True, False])
def test_cp_into_and_out_of_a_volume(mdv, bb, tmp_path, running):
    vol, c = name(), name("c")
    if running:
        mdv.ok(
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            c,
            "-v",
            f"{vol}:/vd",
            bb,
            "sh",
            "-c",
            "echo in > /vd/f; sleep 60",
        )
        mdv.ok("exec", c, "sh", "-c", "while [ ! -e /vd/f ]; do sleep 0.05; done")
    else:
        run(mdv, "--name", c, "-v", f"{vol}:/vd", bb, "sh", "-c", "echo in > /vd/f")
    mdv.ok("cp", f"{c}:/vd/f", str(tmp_path / "out"))
    assert (tmp_path / "out").read_text() == "in\n"
    (tmp_path / "host").write_text("from host\n")
    mdv.ok("cp", str(tmp_path / "host"), f"{c}:/vd/")
    assert open(os.path.join(mountpoint(mdv, vol), "host")).read() == "from host\n"
    assert mdv.ok("diff", c).stdout.find("/vd/host") == -1  # not in the container's own layer


def test_explain_shows_the_volume_steps(mdv, owners_image):
    vol = name()
    r = run(mdv, "--rm", "--explain", "-v", f"{vol}:/data", owners_image, "true")
    assert f"volume {vol}" in r.stderr  # made on first use
    assert "cp -a" in r.stderr and "the empty volume gets the image's files" in r.stderr
    assert f"mount --bind {mountpoint(mdv, vol)}" in r.stderr
