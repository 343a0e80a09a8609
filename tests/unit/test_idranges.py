"""--userns=auto's ID blocks, from subuid/subgid files (temp files here: pure parsing)."""

from __future__ import annotations

import pytest

from minidocker.errors import MinidockerError
from minidocker.runtime.idranges import BLOCK, allocate, blocks, read_ranges


def _files(tmp_path, uid_text: str, gid_text: str | None = None):
    u, g = tmp_path / "subuid", tmp_path / "subgid"
    u.write_text(uid_text)
    g.write_text(gid_text if gid_text is not None else uid_text)
    return str(u), str(g)


def test_read_ranges_keeps_only_our_well_formed_lines(tmp_path):
    u, _ = _files(
        tmp_path,
        "root:100000:65536\nminidocker:1000000:131072\n# minidocker:5:5\nminidocker:x:1\nminidocker:2000000:100\n",
    )
    assert read_ranges(u) == [(1000000, 131072), (2000000, 100)]
    assert read_ranges(str(tmp_path / "missing")) == []


def test_blocks_are_whole_65536_id_blocks():
    assert blocks([(1000000, 3 * BLOCK + 5), (9000000, BLOCK - 1)]) == [1000000, 1000000 + BLOCK, 1000000 + 2 * BLOCK]


def test_allocate_skips_taken_blocks_and_pairs_uid_with_gid(tmp_path):
    u, g = _files(tmp_path, f"minidocker:1000000:{2 * BLOCK}\n", f"minidocker:3000000:{2 * BLOCK}\n")
    assert allocate(set(), u, g) == {"uid": 1000000, "gid": 3000000, "size": BLOCK}
    assert allocate({1000000}, u, g) == {"uid": 1000000 + BLOCK, "gid": 3000000 + BLOCK, "size": BLOCK}
    with pytest.raises(MinidockerError, match="in use"):
        allocate({1000000, 1000000 + BLOCK}, u, g)


def test_allocate_without_ranges_says_what_to_add(tmp_path):
    u, g = _files(tmp_path, "root:100000:65536\n")
    with pytest.raises(MinidockerError) as e:
        allocate(set(), u, g)
    assert "minidocker:1000000:6553600" in e.value.hint
