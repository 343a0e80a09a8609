"""``cp``'s unpacking rules (runtime/copy.py ``_extract``), on tar streams made here."""

from __future__ import annotations

import io
import tarfile

import pytest

from minidocker.errors import CopyError
from minidocker.runtime.copy import _extract


def _tar(*members: tuple[str, str, str]) -> io.BytesIO:
    """(name, kind "file"|"dir"|"symlink", content or link target) -> a tar stream."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, data in members:
            ti = tarfile.TarInfo(name)
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data.encode()))
    buf.seek(0)
    return buf


def test_into_an_existing_dir_or_as_a_new_name(tmp_path):
    (tmp_path / "existing").mkdir()
    _extract(_tar(("d", "dir", ""), ("d/f", "file", "x")), "d", tmp_path / "existing", False)
    assert (tmp_path / "existing/d/f").read_text() == "x"
    _extract(_tar(("d", "dir", ""), ("d/f", "file", "y")), "d", tmp_path / "new", False)
    assert (tmp_path / "new/f").read_text() == "y"
    _extract(_tar(("f", "file", "z")), "f", tmp_path / "renamed.txt", False)
    assert (tmp_path / "renamed.txt").read_text() == "z"
    with pytest.raises(CopyError, match="does not exist"):
        _extract(_tar(("f", "file", "z")), "f", tmp_path / "missing/dir/x", False)


def test_nothing_is_written_outside_the_destination(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    hostile = _tar(("d", "dir", ""), ("d/link", "symlink", str(outside)), ("d/link/evil", "file", "owned"))
    with pytest.raises(CopyError, match="refused"):
        _extract(hostile, "d", dest, False)
    assert not (outside / "evil").exists()
    with pytest.raises(CopyError, match="refused"):
        _extract(_tar(("../escape", "file", "x")), "..", dest, False)
    assert not (tmp_path / "escape").exists()
    # an absolute symlink itself is fine: it is copied as a link, not followed
    _extract(_tar(("pw", "symlink", "/etc/passwd")), "pw", dest, False)
    assert (dest / "pw").is_symlink() and str((dest / "pw").readlink()) == "/etc/passwd"
