"""``system prune [-a] [-f]``: stopped containers, unused networks, dangling images (with -a:
every unused image), stale build cache and what killed commands left; docker's question
first, and a refusal when there is no terminal to ask."""

from __future__ import annotations

import json
import os
import pty
import subprocess

from tests.integration.conftest import MINIDOCKER
from tests.support import storecheck


def _images(md) -> set[str]:
    return set(json.loads((md.root / "images" / "index.json").read_text())["images"])


def _prune(md, *flags: str, stdin=None) -> subprocess.CompletedProcess:
    """In a network namespace of its own (``unshare --net``): removing a network looks for its
    bridge and NAT rules, and must look in an empty namespace, never the host's."""
    return subprocess.run(
        ["unshare", "--net", *MINIDOCKER, "system", "prune", *flags],
        env=md.env(),
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_system_prune(md, registry, tmp_path):
    bb = f"{registry.host}/busybox:latest"
    md.ok("pull", "-q", bb)
    md.ok("run", "--name", "stopped", bb, "sh", "-c", "head -c 300000 /dev/urandom > /blob")
    running = md.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    stopped = json.loads(md.ok("inspect", "stopped").stdout)[0]["Id"]
    dangling = md.ok("commit", "stopped").stdout.strip()
    kept = md.ok("commit", "stopped", "kept:1").stdout.strip()
    md.ok("network", "create", "--subnet", "10.77.0.0/24", "unused")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {bb}\nRUN echo one > /one\n")
    md.ok("build", "-t", "built:1", str(ctx))
    md.ok("rmi", "built:1")  # its build cache entry now names no image
    r = md("commit", "stopped", env={"MINIDOCKER_TEST_KILL_AT": "commit:blob-written"})
    assert r.returncode == -9 and storecheck.orphans(md.root)  # a killed commit's leftovers
    everything = (set(md.ok("ps", "-aq", "--no-trunc").stdout.split()), _images(md), storecheck.orphans(md.root))

    # no answer (stdin at its end), a piped "n" and a terminal's "n": nothing removed
    r = _prune(md, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "Are you sure" in r.stderr and r.stdout == "", r.stderr
    r = subprocess.run(
        ["unshare", "--net", *MINIDOCKER, "system", "prune"],
        env=md.env(),
        input="n\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout == "", r.stderr
    primary, secondary = pty.openpty()
    try:
        os.write(primary, b"n\n")
        r = _prune(md, stdin=secondary)
    finally:
        os.close(secondary)
        os.close(primary)
    assert (
        r.returncode == 0
        and "all dangling images" in r.stderr
        and "Are you sure you want to continue? [y/N]" in r.stderr
        and r.stdout == ""
    )
    assert (
        set(md.ok("ps", "-aq", "--no-trunc").stdout.split()),
        _images(md),
        storecheck.orphans(md.root),
    ) == everything

    r = _prune(md, "-f")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(
        f"Deleted Containers:\n{stopped}\n\nDeleted Networks:\nunused\n\n"
        f"Deleted Images:\ndeleted: {dangling}\n\nDeleted build cache objects:\n"
    )
    last = r.stdout.splitlines()[-1]
    assert last.startswith("Total reclaimed space: ") and last != "Total reclaimed space: 0B"
    assert md.ok("ps", "-q", "--no-trunc").stdout.split() == [running]
    assert md.ok("network", "ls").stdout.split().count("unused") == 0
    base = json.loads(md.ok("inspect", bb).stdout)[0]["Id"]
    assert {base, kept} <= _images(md) and dangling not in _images(md)
    assert storecheck.orphans(md.root) == [] and storecheck.problems(md.root) == []
    assert "Deleted" not in _prune(md, "-f").stdout  # nothing left to prune

    # -a: every image no container uses; the running container's image stays
    r = _prune(md, "-a", "-f")
    assert f"deleted: {kept}" in r.stdout and _images(md) == {base}
    assert md.ok("exec", running, "true").returncode == 0
