"""``cp`` between the host and running or stopped containers; paths resolve inside the
container, symlinks included, never on the host."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.integration.conftest import one_error

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
