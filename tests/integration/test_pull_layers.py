"""The multi-layer test image: every whiteout, opaque dir, link, mode, owner, xattr and
mtime checked in each unpacked layer, then in the kernel's overlay of all of them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from images.layers_expect import LAYER_MEDIA_TYPES, LAYERS_EXPECTED, verify_tree


def test_layers_unpack_in_overlay_form(md, registry, tmp_path):
    ref = f"{registry.host}/layers:latest"
    md.ok("pull", ref)
    info = json.loads(md.ok("inspect", ref).stdout)[0]
    lowers = info["GraphDriver"]["Data"]["LowerDir"].split(":")  # top layer first
    layers = list(reversed(lowers))
    assert len(layers) == len(LAYERS_EXPECTED["layers"]) == len(LAYER_MEDIA_TYPES)
    for spec, diff in zip(LAYERS_EXPECTED["layers"], layers):
        meta = json.loads((Path(diff).parent / "meta.json").read_text())
        assert meta["media_type"] == spec["media_type"]
        problems = verify_tree(diff, spec)
        assert problems == [], f"layer {spec['index']} ({spec['media_type']}): {problems}"
    merged, upper, work = tmp_path / "merged", tmp_path / "upper", tmp_path / "work"
    for d in (merged, upper, work):
        d.mkdir()
    subprocess.run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}",
            str(merged),
        ],
        check=True,
    )
    try:
        problems = verify_tree(merged, LAYERS_EXPECTED["merged"])
        assert problems == [], problems
    finally:
        subprocess.run(["umount", str(merged)], check=True)
