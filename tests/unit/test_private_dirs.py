"""make_private_dir and prepare_store: exact modes whatever the umask, older stores tightened."""

from __future__ import annotations

import contextlib
import os
import stat

import pytest

from minidocker.fsutil import make_private_dir, restrict_dir
from minidocker.paths import STORE_DIRS, prepare_store


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
@pytest.mark.parametrize("wanted", [0o700, 0o710, 0o755])
def test_the_mode_is_exact_whatever_the_umask(tmp_path, mask, wanted):
    with umask(mask):
        made = make_private_dir(tmp_path / "a" / "b" / "leaf", wanted)
    assert made == tmp_path / "a" / "b" / "leaf"
    assert mode(made) == wanted
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == 0o700  # parents it made: private


def test_a_group_is_given_to_the_new_directory_only(tmp_path):
    gid = os.getgid()
    d = make_private_dir(tmp_path / "c", 0o710, group=gid)
    assert (os.stat(d).st_gid, mode(d)) == (gid, 0o710)


@pytest.mark.parametrize(
    "before, wanted, after",
    [
        (0o755, 0o700, 0o700),
        (0o777, 0o710, 0o710),
        (0o711, 0o700, 0o700),
        (0o700, 0o700, 0o700),
        (0o500, 0o700, 0o500),  # narrower than asked: left alone
    ],
)
def test_an_existing_directory_only_loses_bits(tmp_path, before, wanted, after):
    d = tmp_path / "old"
    d.mkdir()
    os.chmod(d, before)
    make_private_dir(d, wanted)
    assert mode(d) == after


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError):
        make_private_dir(tmp_path / "f")
    with pytest.raises(FileExistsError):
        restrict_dir(tmp_path / "f")


def test_prepare_store_makes_and_closes_the_top_level(tmp_path):
    root = tmp_path / "store"
    prepare_store(root)
    assert sorted(p.name for p in root.iterdir()) == sorted(STORE_DIRS)
    assert {mode(p) for p in [root, *root.iterdir()]} == {0o700}
    for p in [root, *root.iterdir()]:  # an older store, open to all
        os.chmod(p, 0o755)
    (root / "layers" / "abc").mkdir()
    os.chmod(root / "layers" / "abc", 0o755)
    prepare_store(root)
    assert {mode(p) for p in [root, *root.iterdir()]} == {0o700}
    assert mode(root / "layers" / "abc") == 0o755  # below the top level: no walk, the root guards it
