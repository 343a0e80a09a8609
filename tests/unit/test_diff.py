"""diff.py on fake file trees: the lower view, the A/C/D list, the tar it writes.

(Whiteout devices and trusted.* xattrs need root: tests/integration/test_commit.py covers them
through real containers.)"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

from minidocker.image import diff


def _tree(base, files):
    for rel, content in files.items():
        p = base / rel
        if content is None:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
    return base


def _tar(entries):
    buf = io.BytesIO()
    diff.write_layer_tar(entries, buf.write)
    return buf.getvalue()


def test_changes_and_tar_of_a_plain_upper(tmp_path):
    lower = _tree(tmp_path / "l0", {"etc/passwd": "root\n", "etc/group": "g\n", "usr/bin/x": "x"})
    upper = _tree(tmp_path / "up", {"etc/passwd": "root\nme\n", "new/file": "n", "etc/hostname": ""})
    os.utime(upper / "etc", (0, 0))
    os.link(upper / "new/file", upper / "new/hard")
    os.symlink("/etc/passwd", upper / "new/sym")
    os.setxattr(upper / "new/file", "user.note", b"\xff\x00bin")
    view = diff.LowerView([lower])
    entries = list(diff.walk_upper(upper, view))
    assert [e.rel for e in entries] == ["etc", "etc/passwd", "new", "new/file", "new/hard", "new/sym"]
    assert [str(c) for c in diff.changes(entries, view)] == [
        "C /etc",
        "C /etc/passwd",
        "A /new",
        "A /new/file",
        "A /new/hard",
        "A /new/sym",
    ]
    data = _tar(entries)
    assert len(data) % 512 == 0 and data.endswith(bytes(1024))
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = {m.name: m for m in t.getmembers()}
        assert list(members) == ["etc", "etc/passwd", "new", "new/file", "new/hard", "new/sym"]
        assert t.extractfile("etc/passwd").read() == b"root\nme\n"
        assert members["new/hard"].islnk() and members["new/hard"].linkname == "new/file"
        assert members["new/sym"].issym() and members["new/sym"].linkname == "/etc/passwd"
        assert (
            members["new/file"].pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape")
            == b"\xff\x00bin"
        )
        assert members["etc"].mtime == 0


def test_only_mountpoints_means_no_changes_and_the_empty_tar(tmp_path):
    lower = _tree(tmp_path / "l0", {"etc/passwd": "root\n", "proc": None})
    upper = _tree(tmp_path / "up", {"etc/hosts": "", "etc/resolv.conf": "", "dev": None})
    os.chmod(upper / "etc", os.stat(lower / "etc").st_mode)
    view = diff.LowerView([lower])
    entries = list(diff.walk_upper(upper, view))
    assert entries == [] and diff.changes(entries, view) == []
    assert "sha256:" + hashlib.sha256(_tar(entries)).hexdigest() == diff.EMPTY_TAR_DIFF_ID


def test_a_non_empty_mountpoint_path_is_a_change(tmp_path):
    lower = _tree(tmp_path / "l0", {"etc/passwd": "root\n"})
    upper = _tree(tmp_path / "up", {"etc/hosts": "written by a build step\n"})
    view = diff.LowerView([lower])
    assert [str(c) for c in diff.changes(list(diff.walk_upper(upper, view)), view)] == ["C /etc", "A /etc/hosts"]


def test_lower_view_follows_the_topmost_layer(tmp_path):
    bottom = _tree(tmp_path / "l0", {"a/x": "0", "a/y": "0", "f": "0"})
    top = _tree(tmp_path / "l1", {"a/z": "1", "f/inner": "1"})  # f: a file below, a dir on top
    view = diff.LowerView([top, bottom])
    assert view.children("a") == {"x", "y", "z"}
    assert view.lookup("f/inner") is not None and view.lookup("a/y") is not None
    assert view.lookup("nothing") is None
