"""``cp`` between the host and running or stopped containers; paths resolve inside the
container, symlinks included, never on the host."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from pathlib import Path

from tests.integration.conftest import MINIDOCKER, one_error

SETUP = (
    "mkdir -p /data/sub; echo one > /data/a; echo two > /data/sub/b; ln -s / /data/root; "
    "ln -s /etc/passwd /data/pw; echo container-secret > /etc/only-here; exec sleep 60"
)


def test_cp_out_and_in(md_run, bb, tmp_path):
    cid = md_run.ok("run", "-d", bb, "sh", "-c", SETUP).stdout.strip()
    time.sleep(0.3)
    md_run.ok("cp", f"{cid}:/data", str(tmp_path))
    assert (tmp_path / "data/a").read_text() == "one\n" and (tmp_path / "data/sub/b").read_text() == "two\n"
    assert os.readlink(tmp_path / "data/pw") == "/etc/passwd"  # copied as a link, not followed
    md_run.ok("cp", f"{cid}:/data/a", str(tmp_path / "renamed"))
    assert (tmp_path / "renamed").read_text() == "one\n"
    md_run.ok("cp", f"{cid}:/data/.", str(tmp_path / "contents"))
    assert sorted(p.name for p in (tmp_path / "contents").iterdir()) == ["a", "pw", "root", "sub"]
    # a path through the container's "/data/root -> /" symlink stays in the container
    md_run.ok("cp", f"{cid}:/data/root/etc/only-here", str(tmp_path / "secret"))
    assert (tmp_path / "secret").read_text() == "container-secret\n"
    r = md_run("cp", f"{cid}:/data/root/etc/machine-id-not-there", str(tmp_path / "x"))
    assert r.returncode == 125 and one_error(r.stderr)
    # into the running container
    (tmp_path / "in.txt").write_text("hello\n")
    md_run.ok("cp", str(tmp_path / "in.txt"), f"{cid}:/tmp/")
    md_run.ok("cp", str(tmp_path / "data"), f"{cid}:/copied")
    out = md_run.ok("exec", cid, "sh", "-c", "cat /tmp/in.txt; stat -c %u /tmp/in.txt; cat /copied/sub/b").stdout
    assert out.split() == ["hello", "0", "two"]
    # a stopped container: its overlay is mounted in a private namespace for the copy
    md_run.ok("stop", "-t", "1", cid)
    md_run.ok("cp", f"{cid}:/tmp/in.txt", str(tmp_path / "from-stopped"))
    assert (tmp_path / "from-stopped").read_text() == "hello\n"
    md_run.ok("cp", str(tmp_path / "in.txt"), f"{cid}:/stopped.txt")
    upper = Path(md_run.root / "containers" / cid / "upper")
    assert (upper / "stopped.txt").read_text() == "hello\n"
    assert str(md_run.root / "containers" / cid) not in Path("/proc/self/mounts").read_text()
    md_run.ok("rm", cid)


def test_cp_errors(md_run, bb, tmp_path):
    cid = md_run.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    for args, message in (
        (["/etc/hostname", str(tmp_path / "x")], "exactly one CONTAINER:PATH"),
        ([f"{cid}:/nope", str(tmp_path / "x")], "Could not find"),
        (["nosuch:/etc/hostname", str(tmp_path)], "No such container"),
        ([str(tmp_path / "missing"), f"{cid}:/tmp/"], "no such file"),
    ):
        r = md_run("cp", *args)
        assert r.returncode == 125 and one_error(r.stderr) and message in r.stderr, (args, r.stderr)
    md_run.ok("rm", "-f", cid)


def _tar(*members: tuple[str, bytes, int]) -> bytes:
    """A tar stream of regular files: (name, bytes, uid) each, gid = uid + 1."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data, uid in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.uid, ti.gid, ti.mode = len(data), uid, uid + 1, 0o640
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _cp_bytes(md, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([*MINIDOCKER, "cp", *args], input=stdin, capture_output=True, env=md.env(), timeout=60)


def test_cp_tar_streams_and_archive_mode(md_run, bb, tmp_path):
    """``cp C:SRC -`` writes a tar (with the container's owners), ``cp - C:DIR`` unpacks one
    (owned by the container's root), ``-a`` keeps the owners the files have, both ways."""
    cid = md_run.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    try:
        md_run.ok("exec", cid, "sh", "-c", "mkdir /data /arch; echo one > /data/a; chown 1000:50 /data/a")
        r = _cp_bytes(md_run, f"{cid}:/data", "-")
        assert r.returncode == 0, r.stderr
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
            members = {m.name: m for m in t}
            assert sorted(members) == ["data", "data/a"] and t.extractfile(members["data/a"]).read() == b"one\n"
        assert (members["data/a"].uid, members["data/a"].gid) == (1000, 50)
        stream = _tar(("in/f", b"from a tar\n", 1234))
        assert _cp_bytes(md_run, "-", f"{cid}:/tmp", stdin=stream).returncode == 0
        assert _cp_bytes(md_run, "-a", "-", f"{cid}:/arch", stdin=stream).returncode == 0
        out = md_run.ok("exec", cid, "sh", "-c", "cat /tmp/in/f; stat -c '%u:%g %a' /tmp/in/f /arch/in/f").stdout
        assert out.splitlines() == ["from a tar", "0:0 640", "1234:1235 640"]
        md_run.ok("cp", f"{cid}:/data/a", str(tmp_path / "plain"))
        md_run.ok("cp", "-a", f"{cid}:/data/a", str(tmp_path / "kept"))
        owners = [(os.stat(tmp_path / n).st_uid, os.stat(tmp_path / n).st_gid) for n in ("plain", "kept")]
        assert owners == [(0, 0), (1000, 50)]
        (tmp_path / "mine").write_text("host file\n")
        os.chown(tmp_path / "mine", 4321, 4322)
        md_run.ok("cp", "-a", str(tmp_path / "mine"), f"{cid}:/arch/")
        assert md_run.ok("exec", cid, "stat", "-c", "%u:%g", "/arch/mine").stdout == "4321:4322\n"
        for args, stdin, words in (
            (["-", f"{cid}:/data/a"], stream, "is not a directory"),
            (["-", f"{cid}:/nope"], stream, "does not exist"),
            (["-", f"{cid}:/tmp"], b"not a tar at all" * 64, "the copy failed"),
        ):
            r = _cp_bytes(md_run, *args, stdin=stdin)
            err = r.stderr.decode()
            assert r.returncode == 125 and one_error(err) and words in err, (args, err)
    finally:
        md_run("rm", "-f", cid)
