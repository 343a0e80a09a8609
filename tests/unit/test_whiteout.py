import os
import stat
from types import SimpleNamespace

import pytest

from minidocker.image.whiteout import classify, is_overlay_whiteout, opaque_marker, whiteout_name


@pytest.mark.parametrize("name, expect", [
    ("etc/.wh.motd", ("whiteout", "etc/motd")),
    (".wh.top", ("whiteout", "top")),
    ("a/b/.wh..hidden", ("whiteout", "a/b/.hidden")),
    ("var/cache/.wh..wh..opq", ("opaque", "var/cache")),
    (".wh..wh..opq", ("opaque", "")),
    ("etc/motd", ("regular", "etc/motd")),
    ("etc/x.wh.y", ("regular", "etc/x.wh.y")),
    ("dir/", ("regular", "dir/")),
])
def test_classify(name, expect):
    assert classify(name) == expect


@pytest.mark.parametrize("path, tar_name", [("etc/motd", "etc/.wh.motd"), ("top", ".wh.top")])
def test_whiteout_name_round_trips(path, tar_name):
    assert whiteout_name(path) == tar_name
    assert classify(tar_name) == ("whiteout", path)


def test_opaque_marker_round_trips():
    assert classify(opaque_marker("var/cache")) == ("opaque", "var/cache")


@pytest.mark.parametrize("mode, rdev, expect", [
    (stat.S_IFCHR, 0, True), (stat.S_IFCHR, os.makedev(1, 3), False), (stat.S_IFREG | 0o644, 0, False),
])
def test_is_overlay_whiteout(mode, rdev, expect):
    st = SimpleNamespace(st_mode=mode, st_rdev=rdev)
    assert is_overlay_whiteout(st) is expect
