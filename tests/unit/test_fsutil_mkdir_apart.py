"""fsutil.mkdir_apart: a plain new directory, wherever the file system puts it, and the
parent's flags as they were (ext4's ``chattr +T`` only for the moment of the mkdir)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minidocker.fsutil import mkdir_apart
from minidocker.linux.inodeflags import FS_TOPDIR_FL, get_inode_flags, set_inode_flags


def flags_of(path: Path) -> int | None:
    """The inode flags ``lsattr -d`` shows, or None where the file system has none."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return get_inode_flags(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def set_flags(path: Path, flags: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        set_inode_flags(fd, flags)
    finally:
        os.close(fd)


@pytest.fixture(params=["tmp", "tmpfs"])
def parent(request, tmp_path):
    """A directory on the temp dir's file system (ext4 on the project's machines) and one on
    a tmpfs (which has no such flag: the plain mkdir)."""
    if request.param == "tmp":
        yield tmp_path
        return
    shm = Path("/dev/shm") / f"mkdir-apart-{os.getpid()}"
    shm.mkdir()
    try:
        yield shm
    finally:
        for entry in os.listdir(shm):
            (shm / entry).rmdir()
        shm.rmdir()


def test_it_makes_the_directory_and_leaves_nothing_else(parent):
    before = flags_of(parent)
    mkdir_apart(parent / "diff", 0o750)
    assert sorted(os.listdir(parent)) == ["diff"]  # the temp name is gone
    assert oct(os.lstat(parent / "diff").st_mode & 0o7777) == oct(0o750 & ~current_umask())
    assert flags_of(parent) == before  # +T only for the moment of the mkdir
    assert not (flags_of(parent / "diff") or 0) & FS_TOPDIR_FL


def test_a_parent_flagged_already_keeps_its_flag(tmp_path):
    flags = flags_of(tmp_path)
    if flags is None:
        pytest.fail(f"{tmp_path} has no inode flags: run the unit tests with TMPDIR on ext4")
    set_flags(tmp_path, flags | FS_TOPDIR_FL)
    try:
        mkdir_apart(tmp_path / "diff")
        assert flags_of(tmp_path) == flags | FS_TOPDIR_FL
    finally:
        set_flags(tmp_path, flags)


@pytest.mark.parametrize("kind", ["empty dir", "dir", "file"])
def test_an_existing_name_is_refused_as_mkdir_refuses_it(tmp_path, kind):
    (tmp_path / "diff").mkdir() if kind != "file" else (tmp_path / "diff").write_text("x")
    if kind == "dir":
        (tmp_path / "diff" / "keep").write_text("mine")
    with pytest.raises(FileExistsError):
        mkdir_apart(tmp_path / "diff")
    assert sorted(os.listdir(tmp_path)) == ["diff"]
    assert kind != "dir" or (tmp_path / "diff" / "keep").read_text() == "mine"


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_committed_layer_holds_its_diff_and_meta_only_and_no_flag(tmp_path):
    """The store makes each layer's diff/ apart: what is left is an ordinary layer."""
    import hashlib
    import io
    import tarfile

    from minidocker.image.store import ImageStore

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("etc/os-release")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"test\n"))
    diff_id = "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()
    store = ImageStore(tmp_path)
    store.ensure()
    with store.create(diff_id, None) as layer:
        layer.apply_diff(io.BytesIO(buf.getvalue()))
        layer.commit({"diff_id": diff_id})
    files = store.layout.layer(diff_id)
    assert sorted(os.listdir(files.dir)) == ["diff", "meta.json"]
    assert (files.diff / "etc" / "os-release").read_bytes() == b"test\n"
    for d in (files.dir, files.diff):
        assert not (flags_of(d) or 0) & FS_TOPDIR_FL, f"{d} kept chattr +T"
