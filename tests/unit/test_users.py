import pytest

from minidocker.errors import MinidockerError
from minidocker.runtime.users import resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
"""
GROUP = """root:x:0:
staff:x:50:app
wheel:x:10:root,app
nogroup:x:65534:
app:x:1000:
"""


@pytest.mark.parametrize(
    "spec, uid, gid, groups, home",
    [
        ("", 0, 0, [10], "/root"),
        ("root", 0, 0, [10], "/root"),
        ("app", 1000, 1000, [10, 50], "/home/app"),
        ("1000", 1000, 1000, [10, 50], "/home/app"),
        ("app:staff", 1000, 50, [], "/home/app"),
        ("app:65534", 1000, 65534, [], "/home/app"),
        ("4242", 4242, 0, [], "/"),
        ("4242:4343", 4242, 4343, [], "/"),
        ("nobody", 65534, 65534, [], "/nonexistent"),
    ],
)
def test_resolve_user(spec, uid, gid, groups, home):
    u = resolve_user(spec, PASSWD, GROUP)
    assert (u.uid, u.gid, u.groups, u.home) == (uid, gid, groups, home)


@pytest.mark.parametrize(
    "spec, text", [("ghost", "unable to find user ghost"), ("app:ghosts", "unable to find group ghosts")]
)
def test_unknown_names_fail(spec, text):
    with pytest.raises(MinidockerError) as e:
        resolve_user(spec, PASSWD, GROUP)
    assert text in e.value.message
