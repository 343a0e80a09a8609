"""``image prune [-a] [-f]``: dangling images go, images in use and the parents of kept
images (a build's cache) stay, and their layers and blobs are freed."""

from __future__ import annotations

import json


def _ids(md) -> set[str]:
    index = json.loads((md.root / "images" / "index.json").read_text())
    return set(index["images"])


def test_image_prune(md, registry, tmp_path):
    bb = f"{registry.host}/busybox:latest"
    md.ok("pull", "-q", bb)
    base = json.loads(md.ok("inspect", bb).stdout)[0]["Id"]
    md.ok("run", "--name", "c1", bb, "sh", "-c", "head -c 300000 /dev/urandom > /blob")
    md.ok("run", "--name", "c2", bb, "sh", "-c", "echo other > /other")
    dangling = md.ok("commit", "c1").stdout.strip()
    tagged = md.ok("commit", "c2", "kept:1").stdout.strip()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {bb}\nRUN echo one > /one\nRUN echo two > /two\n")
    md.ok("build", "-t", "built:1", str(ctx))
    built = json.loads(md.ok("inspect", "built:1").stdout)[0]["Id"]
    layers_before = len(list((md.root / "layers").iterdir()))

    # without -f, a "no" keeps everything
    r = md("image", "prune", input="n\n")
    assert r.returncode == 0 and "Are you sure" in r.stderr and dangling in _ids(md)

    r = md.ok("image", "prune", "-f")
    assert r.stdout.splitlines()[:2] == ["Deleted Images:", f"deleted: {dangling}"]
    assert "Total reclaimed space:" in r.stdout and not r.stdout.rstrip().endswith(" 0B")
    left = _ids(md)
    assert dangling not in left and {base, tagged, built} <= left
    assert len(list((md.root / "layers").iterdir())) == layers_before - 1  # the dangling layer went
    # the build's step images are the parents of built:1: its cache survives
    assert "Using cache" in md.ok("build", "-t", "built:1", str(ctx)).stdout

    # -a: every image no container uses; the containers' image stays
    md.ok("image", "prune", "-a", "-f")
    assert _ids(md) == {base}
    assert md.ok("run", "--rm", bb, "true").returncode == 0
    md.ok("rm", "c1", "c2")
    md.ok("image", "prune", "-a", "-f")
    assert _ids(md) == set() and list((md.root / "layers").iterdir()) == []
