"""fsutil.remove_tree: a tree goes, and nothing outside it, whatever it holds."""

from __future__ import annotations

import os
import subprocess

import pytest

from minidocker.errors import StoreError
from minidocker.fsutil import remove_tree


def test_a_tree_goes_and_what_its_symlinks_point_at_stays(tmp_path):
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "file").write_text("mine")
    tree = tmp_path / "tree"
    (tree / "a" / "b" / "c").mkdir(parents=True)
    (tree / "a" / "b" / "c" / "deep").write_text("x")
    (tree / "top").write_text("y")
    (tree / "a" / "to-dir").symlink_to(outside / "keep")  # must be removed, never entered
    (tree / "a" / "to-file").symlink_to(outside / "keep" / "file")
    (tree / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tree / "a" / "fifo")
    readonly = tree / "ro"
    readonly.mkdir()
    (readonly / "inside").write_text("z")
    readonly.chmod(0o500)
    remove_tree(tree)
    assert not tree.exists() and not tree.is_symlink()
    assert (outside / "keep" / "file").read_text() == "mine"


def test_a_file_a_symlink_or_nothing_at_the_path(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    remove_tree(tmp_path / "l")
    assert (tmp_path / "f").exists() and not (tmp_path / "l").is_symlink()
    remove_tree(tmp_path / "f")
    remove_tree(tmp_path / "never")  # nothing there: no error
    assert list(tmp_path.iterdir()) == []


def test_what_cannot_be_removed_is_one_store_error(tmp_path):
    tree = tmp_path / "tree"
    (tree / "mnt").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "none", str(tree / "mnt")], check=True)  # rmdir: EBUSY
    try:
        with pytest.raises(StoreError, match="cannot remove mnt"):
            remove_tree(tree)
    finally:
        subprocess.run(["umount", str(tree / "mnt")], check=True)
    remove_tree(tree)
    assert not tree.exists()
