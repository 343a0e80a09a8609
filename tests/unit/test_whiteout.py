"""The whiteout vocabulary: tar names <-> overlayfs forms (pure, no root)."""

import os
import stat

import pytest

from minidocker.image.whiteout import (
    OPAQUE_MARKER,
    OPAQUE_XATTR,
    WHITEOUT_PREFIX,
    classify,
    is_opaque_value,
    is_overlay_whiteout,
    opaque_marker,
    whiteout_name,
)


def test_constants_are_the_spec_names():
    assert (WHITEOUT_PREFIX, OPAQUE_MARKER, OPAQUE_XATTR) == (".wh.", ".wh..wh..opq", "trusted.overlay.opaque")


@pytest.mark.parametrize(
    "name, expect",
    [
        # whiteouts: the deleted path sits next to the marker
        ("etc/.wh.motd", ("whiteout", "etc/motd")),
        (".wh.top", ("whiteout", "top")),
        ("a/b/.wh..hidden", ("whiteout", "a/b/.hidden")),
        ("a/.wh..wh", ("whiteout", "a/.wh")),
        ("a/.wh.x/", ("whiteout", "a/x")),
        # opaque markers: the directory they are in; "" is the layer's root
        ("var/cache/.wh..wh..opq", ("opaque", "var/cache")),
        (".wh..wh..opq", ("opaque", "")),
        # AUFS bookkeeping, not files of the image
        (".wh..wh.plnk", ("meta", ".wh..wh.plnk")),
        (".wh..wh.plnk/123.456", ("meta", ".wh..wh.plnk/123.456")),
        (".wh..wh.aufs", ("meta", ".wh..wh.aufs")),
        # ordinary names, including ones that merely contain the prefix
        ("etc/motd", ("regular", "etc/motd")),
        ("etc/x.wh.y", ("regular", "etc/x.wh.y")),
        (".wh.dir/file", ("regular", ".wh.dir/file")),
        ("dir/", ("regular", "dir/")),
        ("", ("regular", "")),
    ],
)
def test_classify(name, expect):
    assert classify(name) == expect


@pytest.mark.parametrize("name", [".wh.", "a/.wh.", "a/.wh..", "a/.wh...", ".wh...", "a/.wh../"])
def test_classify_refuses_whiteouts_of_nothing_dot_or_dotdot(name):
    with pytest.raises(ValueError, match="names no file"):
        classify(name)


@pytest.mark.parametrize(
    "path, tar_name",
    [
        ("etc/motd", "etc/.wh.motd"),
        ("top", ".wh.top"),
        ("a/b/.hidden", "a/b/.wh..hidden"),
        ("dir/sub/", "dir/.wh.sub"),
    ],
)
def test_whiteout_name_round_trips(path, tar_name):
    assert whiteout_name(path) == tar_name
    assert classify(tar_name) == ("whiteout", path.rstrip("/"))


@pytest.mark.parametrize("path", ["", ".", "a/..", "/"])
def test_whiteout_name_refuses_paths_that_name_no_file(path):
    with pytest.raises(ValueError):
        whiteout_name(path)


@pytest.mark.parametrize(
    "directory, marker",
    [
        ("var/cache", "var/cache/.wh..wh..opq"),
        ("var/cache/", "var/cache/.wh..wh..opq"),
        ("", ".wh..wh..opq"),
    ],
)
def test_opaque_marker_round_trips(directory, marker):
    assert opaque_marker(directory) == marker
    assert classify(marker) == ("opaque", directory.rstrip("/"))


def stat_result(mode: int, rdev: int) -> os.stat_result:
    return os.stat_result((mode, 1, 1, 1, 0, 0, 0, 0, 0, 0), {"st_rdev": rdev})


@pytest.mark.parametrize(
    "mode, rdev, expect",
    [
        (stat.S_IFCHR, 0, True),  # c--------- 0, 0: the kernel's whiteout
        (stat.S_IFCHR | 0o644, 0, True),  # the mode does not matter to overlayfs
        (stat.S_IFCHR, os.makedev(1, 3), False),  # /dev/null is a real device
        (stat.S_IFBLK, 0, False),
        (stat.S_IFREG | 0o644, 0, False),
        (stat.S_IFDIR | 0o755, 0, False),
        (stat.S_IFIFO, 0, False),
    ],
)
def test_is_overlay_whiteout(mode, rdev, expect):
    assert is_overlay_whiteout(stat_result(mode, rdev)) is expect


@pytest.mark.parametrize("value, expect", [(b"y", True), (b"x", False), (b"n", False), (b"", False), (None, False)])
def test_is_opaque_value(value, expect):
    assert is_opaque_value(value) is expect
