"""``build``'s command line, the parts that need no image (build.py): ``--ulimit`` values,
``--target``'s cut of the Dockerfile, ``--label`` as a LABEL step, a context tar on stdin."""

from __future__ import annotations

import io
import resource
import tarfile

import pytest

from minidocker.build import cut_at_target, label_instructions, parse_ulimit, unpack_context
from minidocker.errors import BuildError
from minidocker.image import dockerfile as df

UNLIMITED = resource.RLIM_INFINITY


@pytest.mark.parametrize(
    "text, limit, soft, hard",
    [
        ("nofile=1024:2048", resource.RLIMIT_NOFILE, 1024, 2048),
        ("nproc=512", resource.RLIMIT_NPROC, 512, 512),  # no hard limit given: the soft one
        ("core=-1", resource.RLIMIT_CORE, UNLIMITED, UNLIMITED),
        ("stack=8192:-1", resource.RLIMIT_STACK, 8192, UNLIMITED),
        ("locks=5", 10, 5, 5),  # RLIMIT_LOCKS, which Python's resource module does not name
    ],
)
def test_parse_ulimit(text, limit, soft, hard):
    u = parse_ulimit(text)
    assert (u.resource, u.soft, u.hard, u.text) == (limit, soft, hard, text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("nofile=2048:1024", "ulimit soft limit must be less than or equal to hard limit: 2048 > 1024"),
        ("nofile=-1:1024", "soft limit must be less than or equal to hard limit: -1 > 1024"),
        ("nofiles=1", "invalid ulimit type: nofiles"),
        ("nofile", "invalid ulimit argument: nofile"),
        ("nofile=", "invalid ulimit argument: nofile="),
        ("nofile=1:2:3", "too many limit value arguments - 1:2:3"),
        ("nofile=many", "the limits are numbers"),
    ],
)
def test_parse_ulimit_refuses_in_dockers_words(text, message):
    with pytest.raises(BuildError, match=message):
        parse_ulimit(text)


DOCKERFILE = """\
FROM busybox AS one
RUN echo one
FROM busybox AS Two
RUN echo two
FROM two
RUN echo three
"""


@pytest.mark.parametrize(
    "target, last",
    [(None, "echo three"), ("one", "echo one"), ("two", "echo two"), ("TWO", "echo two")],
)
def test_target_ends_the_build_with_its_stage(target, last):
    got = cut_at_target(df.parse(DOCKERFILE), target)
    assert got[-1].args == last and got[0].args == "busybox AS one"


def test_a_target_no_stage_is_named_after_is_refused():
    with pytest.raises(BuildError, match="failed to reach build target three in Dockerfile"):
        cut_at_target(df.parse(DOCKERFILE), "three")


def test_labels_become_one_label_step_taken_literally():
    (ins,) = label_instructions(["a=b", "c=d e", "x=$HOME", 'q="quoted"', "empty", "k=v=w"])
    config: dict = {"Labels": {"old": "1"}}
    df.apply_change(config, ins, {"HOME": "/root"})
    assert config["Labels"] == {
        "old": "1",
        "a": "b",
        "c": "d e",
        "x": "$HOME",
        "q": '"quoted"',
        "empty": "",
        "k": "v=w",
    }
    assert label_instructions([]) == []
    with pytest.raises(BuildError, match="the key is empty"):
        label_instructions(["=v"])


def _tar(mode: str, members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_a_context_tar_on_stdin_is_unpacked(tmp_path, mode):
    assert unpack_context(_tar(mode, {"Dockerfile": b"FROM x\n", "d/f": b"f\n"}), tmp_path) is True
    assert (tmp_path / "Dockerfile").read_bytes() == b"FROM x\n" and (tmp_path / "d/f").read_bytes() == b"f\n"


def test_stdin_that_is_no_tar_is_a_dockerfile_and_a_hostile_tar_is_refused(tmp_path):
    assert unpack_context(b"FROM busybox\nRUN true\n", tmp_path) is False
    assert unpack_context(b"", tmp_path) is False
    with pytest.raises(BuildError, match="unable to unpack the build context"):
        unpack_context(_tar("w", {"../escape": b"x"}), tmp_path / "ctx")
    assert not (tmp_path / "escape").exists()
