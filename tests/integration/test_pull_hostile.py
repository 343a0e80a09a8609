"""Hostile layers served by a real registry: refused, and nothing written outside the store."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import one_error
from tests.integration.layouts import make_layout, tar_of

HOSTILE = {
    "dotdot": [("file", "../../../../../../SENTINEL_DIR/owned", b"x")],
    "absolute": [("file", "SENTINEL_ABS/owned", b"x")],
    "symlink-then-write": [("symlink", "escape", "SENTINEL_DIR"), ("file", "escape/owned", b"x")],
    "symlink-to-root": [("symlink", "root", "/"), ("file", "root/SENTINEL_REL/owned", b"x")],
    "hardlink-outside": [("hardlink", "passwd", "../../../../../../SENTINEL_DIR/secret")],
    "hardlink-through-symlink": [("symlink", "s", "SENTINEL_DIR"), ("hardlink", "h", "s/secret")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_refused(md, own_registry, tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret"
    secret.write_text("do not touch")
    members = []
    for kind, name, arg in HOSTILE[case]:
        name = name.replace("SENTINEL_ABS", str(outside)).replace("SENTINEL_DIR", str(outside))
        name = name.replace("SENTINEL_REL", str(outside).lstrip("/"))
        arg = (
            arg.replace(b"SENTINEL_DIR", str(outside).encode())
            if isinstance(arg, bytes)
            else arg.replace("SENTINEL_DIR", str(outside))
        )
        members.append((kind, name.replace("//", "/"), arg))
    layout = make_layout(tmp_path / "layout", tar_of(*members))
    own_registry.seed(layout, "hostile")
    r = md("pull", f"{own_registry.host}/hostile")
    assert r.returncode == 125, r.stderr
    assert one_error(r.stderr)
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert secret.read_text() == "do not touch" and secret.stat().st_nlink == 1
    layers = md.root / "layers"
    assert not layers.exists() or list(layers.iterdir()) == []
    index = md.root / "images/index.json"
    assert not index.exists() or json.loads(index.read_text())["images"] == {}
