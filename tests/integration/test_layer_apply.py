"""apply_layer against the real kernel: every member type in overlay form, hostile layers
refused without touching anything outside, and overlayfs reading two applied layers.

Tars are built in memory with tarfile (the sparse and GNU-tar cases run GNU tar on a local
tree); nothing comes from the network. Runs as root (owners, devices, trusted.* xattrs).
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from minidocker.errors import HostileLayer, StoreError
from minidocker.image.layer import LayerStats, apply_layer, may_skip_xattr
from minidocker.image.whiteout import OPAQUE_XATTR, opaque_marker, whiteout_name

MTIME = 1_600_000_000
CAP_NET_RAW = 13
# security.capability, VFS_CAP_REVISION_2 with the "effective" flag: cap_net_raw+ep
FILE_CAPS = struct.pack("<IIIII", 0x02000000 | 1, 1 << CAP_NET_RAW, 0, 0, 0)


# -- building layers in memory -----------------------------------------------------------------
def entry(
    name: str,
    type_: bytes = tarfile.REGTYPE,
    *,
    data: bytes = b"",
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: float = MTIME,
    linkname: str = "",
    dev: tuple[int, int] = (0, 0),
    xattrs: dict[str, bytes | str] | None = None,
):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = type_, mode, uid, gid, mtime
    info.linkname = linkname
    info.devmajor, info.devminor = dev
    info.size = len(data) if type_ == tarfile.REGTYPE else 0
    if xattrs:
        info.pax_headers = {
            f"SCHILY.xattr.{k}": v if isinstance(v, str) else v.decode("utf-8", "surrogateescape")
            for k, v in xattrs.items()
        }
    return info, data


def file(name, data=b"", **kw):
    return entry(name, tarfile.REGTYPE, data=data, **kw)


def directory(name, mode=0o755, **kw):
    return entry(name, tarfile.DIRTYPE, mode=mode, **kw)


def symlink(name, target, mode=0o777, **kw):
    return entry(name, tarfile.SYMTYPE, linkname=target, mode=mode, **kw)


def hardlink(name, target, **kw):
    return entry(name, tarfile.LNKTYPE, linkname=target, **kw)


def whiteout(path):
    return file(whiteout_name(path), mode=0o600)


def opaque(path):
    return file(opaque_marker(path), mode=0o600)


def tar_of(*entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


class OneWayStream(io.RawIOBase):
    """A pipe-like stream: no seek, no tell; counts what was read."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), len(self.data) - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def apply(data: bytes, dest: Path) -> LayerStats:
    dest.mkdir(parents=True, exist_ok=True)
    return apply_layer(io.BufferedReader(OneWayStream(data), 1 << 16), dest)


def xattr(path: Path, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.ENODATA:
            return None
        raise


# -- every member type, in overlay form ----------------------------------------------------------
def test_every_type_with_owner_mode_and_mtime(tmp_path):
    dest = tmp_path / "diff"
    stats = apply(
        tar_of(
            directory(".", mode=0o755, mtime=MTIME - 9),
            directory("etc", mode=0o750, uid=0, gid=42, mtime=MTIME + 1),
            file("etc/conf", b"hello\n", mode=0o640, uid=1000, gid=1001, mtime=MTIME + 2),
            file("bin/su", b"\x7fELF", mode=0o4755, uid=0, gid=0),  # parent "bin" not listed
            file("bin/sg", b"sg", mode=0o2711, uid=1234, gid=5678),  # setgid survives chown
            file("bin/suid-user", b"x", mode=0o6750, uid=1234, gid=5678),
            directory("tmp", mode=0o1777, mtime=MTIME + 3),
            symlink("etc/link", "/etc/conf", uid=77, gid=88, mtime=MTIME + 4),
            symlink("dangling", "no/such/file"),
            hardlink("etc/conf.hard", "etc/conf"),
            entry("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3), mtime=MTIME + 5),
            entry("dev/loop0", tarfile.BLKTYPE, mode=0o660, gid=6, dev=(7, 0)),
            entry("run/fifo", tarfile.FIFOTYPE, mode=0o620, uid=3, gid=4),
            directory("etc/deep/deeper", mode=0o700, mtime=MTIME + 6),  # "etc/deep" implied
            file("etc/deep/deeper/f", b"", mode=0o600),
        ),
        dest,
    )
    assert stats.entries == 15 and stats.size == len(b"hello\n\x7fELFsgx") and stats.xattrs_skipped == 0

    def check(rel, kind, mode, uid=0, gid=0, mtime=None):
        st = os.lstat(dest / rel)
        assert stat.S_IFMT(st.st_mode) == kind, rel
        if mode is not None:
            assert stat.S_IMODE(st.st_mode) == mode, (rel, oct(st.st_mode))
        assert (st.st_uid, st.st_gid) == (uid, gid), rel
        if mtime is not None:
            assert st.st_mtime == mtime, rel
        return st

    check(".", stat.S_IFDIR, 0o755, mtime=MTIME - 9)
    check("etc", stat.S_IFDIR, 0o750, 0, 42, MTIME + 1)  # set after its children were made
    conf = check("etc/conf", stat.S_IFREG, 0o640, 1000, 1001, MTIME + 2)
    assert (dest / "etc/conf").read_bytes() == b"hello\n"
    check("bin", stat.S_IFDIR, 0o755)  # made for its children: 0755 root, as tar does
    check("bin/su", stat.S_IFREG, 0o4755, mtime=MTIME)
    check("bin/sg", stat.S_IFREG, 0o2711, 1234, 5678)
    check("bin/suid-user", stat.S_IFREG, 0o6750, 1234, 5678)
    check("tmp", stat.S_IFDIR, 0o1777, mtime=MTIME + 3)
    check("etc/link", stat.S_IFLNK, None, 77, 88, MTIME + 4)
    assert os.readlink(dest / "etc/link") == "/etc/conf"
    assert os.readlink(dest / "dangling") == "no/such/file"
    hard = check("etc/conf.hard", stat.S_IFREG, 0o640, 1000, 1001)
    assert hard.st_ino == conf.st_ino and hard.st_nlink == 2
    null = check("dev/null", stat.S_IFCHR, 0o666, mtime=MTIME + 5)
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    loop = check("dev/loop0", stat.S_IFBLK, 0o660, 0, 6)
    assert (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 0)
    check("run/fifo", stat.S_IFIFO, 0o620, 3, 4)
    check("etc/deep", stat.S_IFDIR, 0o755)
    check("etc/deep/deeper", stat.S_IFDIR, 0o700, mtime=MTIME + 6)


def test_xattrs_are_set_after_chown_and_never_on_a_symlink_target(tmp_path):
    dest = tmp_path / "diff"
    stats = apply(
        tar_of(
            file("ping", b"\x7fELF", mode=0o4755, uid=0, gid=0, xattrs={"security.capability": FILE_CAPS}),
            file(
                "owned-ping", b"\x7fELF", mode=0o755, uid=1000, gid=1000, xattrs={"security.capability": FILE_CAPS}
            ),  # chown would clear caps set before it
            file("f", b"data", xattrs={"user.comment": "hi there", "trusted.md5": b"\x00\xff\x80binary"}),
            directory("d", xattrs={"user.dir": "yes", "trusted.x": "1"}),
            symlink("s", "f", xattrs={"trusted.on-link": "1", "user.refused-on-links": "skipped"}),
        ),
        dest,
    )
    assert xattr(dest / "ping", "security.capability") == FILE_CAPS
    assert xattr(dest / "owned-ping", "security.capability") == FILE_CAPS
    assert stat.S_IMODE(os.stat(dest / "ping").st_mode) == 0o4755
    assert xattr(dest / "f", "user.comment") == b"hi there"
    assert xattr(dest / "f", "trusted.md5") == b"\x00\xff\x80binary"
    assert xattr(dest / "d", "user.dir") == b"yes" and xattr(dest / "d", "trusted.x") == b"1"
    assert xattr(dest / "s", "trusted.on-link") == b"1"
    assert xattr(dest / "f", "trusted.on-link") is None  # the link was not followed
    # the kernel allows user.* only on files and directories: skipped, and counted
    assert xattr(dest / "s", "user.refused-on-links") is None
    assert stats.xattrs_skipped == 1


def file_member(type_):
    return entry("x", type_)[0]


@pytest.mark.parametrize(
    "name, err, type_, skip",
    [
        ("security.capability", errno.ENOTSUP, tarfile.REGTYPE, False),  # never lose file caps
        ("security.capability", errno.EPERM, tarfile.REGTYPE, False),
        ("security.selinux", errno.EINVAL, tarfile.REGTYPE, True),  # the builder's labels
        ("security.selinux", errno.EPERM, tarfile.DIRTYPE, True),
        ("security.ima", errno.EACCES, tarfile.REGTYPE, True),
        ("user.x", errno.ENOTSUP, tarfile.REGTYPE, True),  # the file system has no user xattrs
        ("user.x", errno.EPERM, tarfile.SYMTYPE, True),  # not on symlinks
        ("user.x", errno.EPERM, tarfile.CHRTYPE, True),
        ("user.x", errno.EPERM, tarfile.REGTYPE, False),
        ("trusted.x", errno.EPERM, tarfile.REGTYPE, False),
        ("user.x", errno.ENOSPC, tarfile.REGTYPE, False),
        ("user.x", errno.E2BIG, tarfile.REGTYPE, False),
    ],
)
def test_xattr_skip_policy(name, err, type_, skip):
    assert may_skip_xattr(name, err, file_member(type_)) is skip


def test_whiteouts_become_0_0_char_devices_and_opaque_keeps_this_layers_files(tmp_path):
    dest = tmp_path / "diff"
    apply(
        tar_of(
            directory("var", mtime=MTIME),
            file("var/cache/before", b"listed before the marker"),
            opaque("var/cache"),
            file("var/cache/after", b"listed after the marker"),
            whiteout("etc/motd"),  # parent "etc" not listed
            whiteout("var/gone-dir"),
            file("var/local", b"will be whited out by this same layer"),
            whiteout("var/local"),
            opaque("fresh/dir"),  # a directory that exists only through its marker
            file(".wh..wh.plnk/1234.5678", b"aufs bookkeeping"),
        ),
        dest,
    )
    for rel in ("etc/motd", "var/gone-dir", "var/local"):
        st = os.lstat(dest / rel)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and stat.S_IMODE(st.st_mode) == 0, rel
        assert (st.st_uid, st.st_gid) == (0, 0)
    assert xattr(dest / "var/cache", OPAQUE_XATTR) == b"y"
    assert xattr(dest / "fresh/dir", OPAQUE_XATTR) == b"y"
    assert xattr(dest / "var", OPAQUE_XATTR) is None
    assert sorted(os.listdir(dest / "var/cache")) == ["after", "before"]
    assert os.lstat(dest / "var").st_mtime == MTIME  # whiteouts made inside came earlier
    names = [p.name for p in dest.rglob("*")]
    assert not [n for n in names if n.startswith(".wh.")], names  # no marker is written


def test_later_members_replace_earlier_ones(tmp_path):
    dest = tmp_path / "diff"
    apply(
        tar_of(
            file("f2f", b"old"),
            file("f2f", b"new", mode=0o600),
            file("d2f", b"file first"),
            directory("d2f", mode=0o711),
            file("d2f/inside", b"ok"),
            directory("f2d"),
            file("f2d/child", b"goes away"),
            directory("f2d/sub"),
            file("f2d", b"now a file"),
            directory("keep", mode=0o755, uid=1),
            file("keep/child", b"stays"),
            directory("keep", mode=0o700, uid=2),
            directory("l2d"),
            symlink("l2d", "/"),
            directory("l2d", mode=0o751),
            file("target", b"T"),
            hardlink("link", "target"),
            file("target", b"replaced"),
            directory("gone"),
            file("gone/x", b""),
            symlink("gone", "elsewhere"),
            # a replaced directory is forgotten whole: its old subdirectories must be made again
            directory("t"),
            file("t/sub/deeper/x", b"old"),
            file("t", b"file"),
            directory("t"),
            file("t/sub/deeper/y", b"new"),
        ),
        dest,
    )
    assert (dest / "f2f").read_bytes() == b"new" and stat.S_IMODE(os.stat(dest / "f2f").st_mode) == 0o600
    assert (dest / "d2f").is_dir() and (dest / "d2f/inside").read_bytes() == b"ok"
    assert stat.S_IMODE(os.stat(dest / "d2f").st_mode) == 0o711
    assert (dest / "f2d").read_bytes() == b"now a file"
    assert (dest / "keep/child").read_bytes() == b"stays"
    st = os.stat(dest / "keep")
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o700, 2)
    assert os.lstat(dest / "l2d").st_mode == stat.S_IFDIR | 0o751
    assert (dest / "link").read_bytes() == b"T" and (dest / "target").read_bytes() == b"replaced"
    assert os.readlink(dest / "gone") == "elsewhere"
    assert sorted(p.name for p in (dest / "t").rglob("*")) == ["deeper", "sub", "y"]


def test_hard_links_to_symlinks_and_in_any_directory(tmp_path):
    dest = tmp_path / "diff"
    apply(
        tar_of(
            symlink("usr/bin/sh", "dash"),
            hardlink("bin/sh", "usr/bin/sh"),  # links the symlink itself, not what it names
            file("a/b/c", b"deep"),
            hardlink("./x/y/z", "./a/b/c"),  # "./" prefixes and missing parents
        ),
        dest,
    )
    assert os.lstat(dest / "bin/sh").st_ino == os.lstat(dest / "usr/bin/sh").st_ino
    assert os.readlink(dest / "bin/sh") == "dash"
    assert os.lstat(dest / "x/y/z").st_ino == os.lstat(dest / "a/b/c").st_ino


# -- the stream contract -----------------------------------------------------------------------
def test_reads_in_order_and_leaves_the_rest_for_the_caller(tmp_path):
    data = tar_of(file("big", os.urandom(3 * (1 << 20) + 7)), file("small", b"s"), symlink("l", "big"), directory("d"))
    raw = OneWayStream(data)
    stream = io.BufferedReader(raw, 1 << 20)
    stats = apply_layer(stream, tmp_path)
    assert stats.entries == 4 and stats.size == 3 * (1 << 20) + 8
    assert not stream.closed
    rest = stream.read()  # what the caller hashes after us: the end-of-archive padding
    assert rest == b"\0" * len(rest) and len(rest) >= 512
    assert raw.pos == len(data)


def test_empty_layer(tmp_path):
    assert apply(tar_of(), tmp_path / "diff") == LayerStats()


def test_refuses_a_destination_that_is_not_empty(tmp_path):
    (tmp_path / "already").write_text("x")
    with pytest.raises(StoreError, match="not empty"):
        apply_layer(io.BytesIO(tar_of(file("f"))), tmp_path)


def test_sparse_and_long_names_written_by_gnu_tar(tmp_path):
    """tarfile cannot write sparse members: GNU tar writes them from a local sparse file."""
    if shutil.which("tar") is None:
        pytest.fail("GNU tar is needed for this test: apt-get install tar")
    src = tmp_path / "src"
    longdir = src / ("d" * 120) / ("e" * 120)
    longdir.mkdir(parents=True)
    with open(src / "sparse", "wb") as f:
        f.seek(5 << 20)
        f.write(b"end")
        f.seek(1 << 20)
        f.write(b"middle")
    (longdir / ("f" * 200)).write_bytes(b"long name")
    os.symlink("../" + "x" * 150, longdir / "longlink")
    for fmt in ("gnu", "pax"):
        archive = tmp_path / f"{fmt}.tar"
        subprocess.run(["tar", "-c", "--sparse", f"--format={fmt}", "-f", archive, "-C", src, "."], check=True)
        dest = tmp_path / f"diff-{fmt}"
        apply(archive.read_bytes(), dest)
        assert (dest / "sparse").read_bytes() == (src / "sparse").read_bytes(), fmt
        rel = longdir.relative_to(src)
        assert (dest / rel / ("f" * 200)).read_bytes() == b"long name"
        assert os.readlink(dest / rel / "longlink") == "../" + "x" * 150


def test_same_tree_as_gnu_tar(tmp_path):
    """An independent oracle: GNU tar extracting a GNU tar archive of a varied tree."""
    src = tmp_path / "src"
    (src / "d/sub").mkdir(parents=True)
    (src / "d/f").write_bytes(b"file")
    os.chown(src / "d/f", 1000, 2000)
    os.chmod(src / "d/f", 0o4751)
    os.link(src / "d/f", src / "d/sub/hard")
    os.symlink("/abs/target", src / "d/sym")
    os.mkfifo(src / "d/fifo", 0o640)
    os.setxattr(src / "d/f", "user.note", b"kept")
    os.utime(src / "d/sub", (MTIME, MTIME))
    os.utime(src / "d", (MTIME + 1, MTIME + 1))
    archive = tmp_path / "a.tar"
    subprocess.run(
        ["tar", "-c", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-f", archive, "-C", src, "."], check=True
    )
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    apply(archive.read_bytes(), ours)
    theirs.mkdir()
    subprocess.run(
        ["tar", "-x", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-p", "-f", archive, "-C", theirs],
        check=True,
    )

    def describe(root: Path) -> dict:
        out, inodes = {}, {}
        for path in sorted(root.rglob("*")):
            st = os.lstat(path)
            group = inodes.setdefault(st.st_ino, len(inodes))
            out[str(path.relative_to(root))] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_nlink,
                group,
                int(st.st_mtime) if not stat.S_ISLNK(st.st_mode) else None,
                path.read_bytes() if stat.S_ISREG(st.st_mode) else None,
                os.readlink(path) if stat.S_ISLNK(st.st_mode) else None,
                sorted(
                    (n, os.getxattr(path, n, follow_symlinks=False)) for n in os.listxattr(path, follow_symlinks=False)
                ),
            )
        return out

    assert describe(ours) == describe(theirs)


# -- hostile layers ----------------------------------------------------------------------------
def hostile_cases(outside: Path):
    """name -> members; ``outside`` holds the sentinel that must stay untouched."""
    out = str(outside)
    rel_from_root = out.lstrip("/")
    return {
        "dotdot": [file("../../../../../../../../" + rel_from_root + "/owned", b"x")],
        "dotdot-first": [file("../x", b"x")],
        "absolute": [file(out + "/owned", b"x")],
        "absolute-dir": [directory(out, mode=0o777)],
        "dotdot-inside": [file("a/../../x", b"x")],
        "symlink-then-write": [symlink("evil", out), file("evil/owned", b"x")],
        "symlink-then-mkdir": [symlink("evil", out), directory("evil/sub")],
        "symlink-then-overwrite": [symlink("evil", out), file("evil/sentinel", b"overwritten", mode=0o777)],
        "symlink-then-whiteout": [symlink("evil", out), whiteout("evil/sentinel")],
        "symlink-then-opaque": [symlink("evil", out), opaque("evil")],
        "symlink-then-fifo": [symlink("evil", out), entry("evil/fifo", tarfile.FIFOTYPE)],
        "symlink-then-hardlink": [symlink("evil", out), hardlink("h", "evil/sentinel")],
        "symlink-dir-replaced": [directory("d"), file("d/ok", b"fine"), symlink("d", out), file("d/owned", b"x")],
        # the cache of directories we made must forget "d/outside" when "d" is replaced
        "nested-dir-replaced-by-symlink": [
            directory("d/outside"),
            symlink("d", str(outside.parent)),
            file("d/outside/owned", b"x"),
        ],
        "absolute-symlink-parent": [symlink("link", "/"), file(f"link/{rel_from_root}/owned", b"x")],
        "relative-symlink-parent": [symlink("up", "../../../../../../../.."), file(f"up/{rel_from_root}/owned", b"x")],
        "hardlink-outside": [hardlink("passwd", "../../../../../../../../" + rel_from_root + "/sentinel")],
        "hardlink-absolute": [hardlink("passwd", out + "/sentinel")],
        "hardlink-dotdot": [hardlink("h", "../")],
        "hardlink-to-missing": [hardlink("h", "not/in/this/layer")],
        "hardlink-to-dir": [directory("d"), hardlink("h", "d")],
        "hardlink-replaces-its-target-dir": [file("d/f", b"x"), hardlink("d", "d/f")],
        "replace-dest-file": [file("./", b"x")],
        "replace-dest-symlink": [symlink(".", out)],
        "replace-dest-hardlink": [file("f"), hardlink(".", "f")],
        "whiteout-dotdot": [file("a/.wh...", b"")],
        "whiteout-dot": [file("a/.wh..", b"")],
        "overlay-xattr": [directory("d", xattrs={"trusted.overlay.redirect": "/etc"})],
        "file-as-parent": [file("f", b"x"), file("f/g", b"y")],
    }


CASE_NAMES = sorted(hostile_cases(Path("/x")))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_hostile_layer_is_refused_and_nothing_outside_changes(tmp_path, case):
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    sentinel = outside / "sentinel"
    sentinel.write_text("do not touch")
    os.chmod(sentinel, 0o644)
    os.utime(sentinel, (MTIME, MTIME))
    os.utime(outside, (MTIME, MTIME))
    before = {p: os.lstat(p) for p in (outside, sentinel)}

    dest = tmp_path / "layer" / "diff"
    with pytest.raises(HostileLayer) as caught:
        apply(tar_of(*hostile_cases(outside)[case]), dest)
    assert caught.value.message.startswith("layer refused: ")

    assert sorted(p.name for p in outside.iterdir()) == ["sentinel"]
    assert sentinel.read_text() == "do not touch"
    for path, old in before.items():
        new = os.lstat(path)
        assert (new.st_mode, new.st_uid, new.st_gid, new.st_nlink, new.st_mtime, new.st_ino) == (
            old.st_mode,
            old.st_uid,
            old.st_gid,
            old.st_nlink,
            old.st_mtime,
            old.st_ino,
        ), path
        assert os.listxattr(path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer", "outside"]
    assert sorted(p.name for p in (tmp_path / "layer").iterdir()) == ["diff"]


def test_symlink_metadata_never_reaches_its_target(tmp_path):
    """Not hostile, and applied: but owner, mode and time land on the link, not the host."""
    outside = tmp_path / "outside"
    outside.write_text("host file")
    os.chmod(outside, 0o600)
    os.utime(outside, (MTIME, MTIME))
    dest = tmp_path / "diff"
    apply(
        tar_of(
            symlink("s", str(outside), uid=1234, gid=1234, mtime=0, mode=0o7777, xattrs={"trusted.tag": "on the link"})
        ),
        dest,
    )
    st = os.stat(outside)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime) == (0, 0, 0o600, MTIME)
    assert os.listxattr(outside) == []
    assert os.lstat(dest / "s").st_uid == 1234


# -- the kernel's view of two applied layers ---------------------------------------------------
def test_overlay_of_two_applied_layers(tmp_path):
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.fail("mount(8) is needed for this test: apt-get install mount")
    lower, upper_layer = tmp_path / "lower/diff", tmp_path / "upper-layer/diff"
    apply(
        tar_of(
            file("etc/keep", b"lower keep"),
            file("etc/gone", b"deleted above"),
            directory("etc/gone-dir"),
            file("etc/gone-dir/inner", b"deleted with its dir"),
            file("cache/lower-file", b"hidden by opaque"),
            file("cache/sub/deep", b"hidden by opaque"),
            file("cache/shadowed", b"lower version"),
        ),
        lower,
    )
    apply(
        tar_of(
            whiteout("etc/gone"),
            whiteout("etc/gone-dir"),
            file("cache/before", b"upper before marker"),
            opaque("cache"),
            file("cache/after", b"upper after marker"),
            file("cache/shadowed", b"upper version"),
            file("etc/new", b"upper new"),
        ),
        upper_layer,
    )
    merged, upper, work = tmp_path / "merged", tmp_path / "upper", tmp_path / "work"
    for d in (merged, upper, work):
        d.mkdir()
    options = f"lowerdir={upper_layer}:{lower},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    try:
        assert sorted(os.listdir(merged / "etc")) == ["keep", "new"]
        assert (merged / "etc/keep").read_bytes() == b"lower keep"
        assert not os.path.lexists(merged / "etc/gone")
        assert not os.path.lexists(merged / "etc/gone-dir")
        assert sorted(os.listdir(merged / "cache")) == ["after", "before", "shadowed"]
        assert (merged / "cache/shadowed").read_bytes() == b"upper version"
        assert not os.path.lexists(merged / "cache/lower-file")
        assert not os.path.lexists(merged / "cache/sub")
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    assert str(merged) not in Path("/proc/mounts").read_text()
