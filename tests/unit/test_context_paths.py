"""The build context looked up as if it were ``/`` (build.py ``resolve_in_context``,
``match_in_context``, ``read_dockerfile``), and the checks of run's flags that need no
image (runtime/spec.py), on real files in a temp dir."""

from __future__ import annotations

import os

import pytest

from minidocker.build import (
    match_in_context,
    read_dockerfile,
    resolve_in_context,
)
from minidocker.errors import BuildError, DockerfileError, MinidockerError
from minidocker.image.dockerfile import parse
from minidocker.runtime import spec


@pytest.fixture
def ctx(tmp_path):
    """ctx/{dir/f, abs -> /HOST, rel -> dir, up -> ../../.., loop -> loop, f -> /HOST/secret}."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host\n")
    c = tmp_path / "ctx"
    (c / "dir").mkdir(parents=True)
    (c / "dir" / "f").write_text("ctx\n")
    (c / "abs").symlink_to(host)
    (c / "rel").symlink_to("dir")
    (c / "up").symlink_to("../../..")
    (c / "loop").symlink_to("loop")
    (c / "f").symlink_to(host / "secret")
    return c


@pytest.mark.parametrize(
    "rel, follow_last, expect",
    [
        ("dir/f", False, "dir/f"),
        ("rel/f", False, "dir/f"),  # a link in the directory part: followed
        ("rel", False, "rel"),  # the last component: not followed (copied as a link)
        ("rel", True, "dir"),
        ("up/dir/f", False, "dir/f"),  # ../../.. from the root is the root
        ("up/up/up", True, ""),
        ("dir/../../../x", False, "x"),
        ("abs/secret", False, "HOST/secret"),  # an absolute target starts at the context's root
        ("f", True, "HOST/secret"),
    ],
)
def test_resolve_in_context(ctx, rel, follow_last, expect):
    host = str(ctx.parent / "host").lstrip("/")
    assert resolve_in_context(ctx, rel, follow_last) == expect.replace("HOST", host)


def test_a_loop_of_links_is_an_error(ctx):
    with pytest.raises(BuildError, match="too many levels of symbolic links"):
        resolve_in_context(ctx, "loop/x")


@pytest.mark.parametrize(
    "pattern, expect",
    [
        ("dir/*", ["dir/f"]),
        ("rel/*", ["dir/f"]),
        ("up/d?r/f", ["dir/f"]),
        ("f", ["f"]),
        ("nothing*", []),
        ("*/f", ["dir/f", "f"]),  # dir/f, rel/f (the same file) and up/f (the root's f, a link); never abs/f
        ("abs/*", []),
        ("up/host/*", []),
        ("*/secret", []),
        ("*/*/secret", []),
    ],
)
def test_globs_stay_in_the_context(ctx, pattern, expect):
    assert sorted({str(p.relative_to(ctx)) for p in match_in_context(ctx, pattern)}) == expect


def test_read_dockerfile(ctx, tmp_path):
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    assert read_dockerfile(ctx, None) == ("FROM scratch\n", True)
    (tmp_path / "outside").write_text("FROM x\n")
    assert read_dockerfile(ctx, str(tmp_path / "outside")) == ("FROM x\n", False)
    (ctx / "Dockerfile.link").symlink_to(ctx.parent / "host" / "secret")
    os.mkfifo(ctx / "fifo")
    (ctx / "latin1").write_bytes(b"FROM \xe9\n")
    for given, words in (
        ("Dockerfile.link", "leads outside"),
        (str(ctx / "fifo"), "not a regular file"),
        ("dir", "not a regular file"),
        (str(ctx / "latin1"), "not UTF-8"),
        ("missing", "No such file"),
        (str(ctx / "loop"), "symbolic link"),
    ):
        with pytest.raises(BuildError, match=words):
            read_dockerfile(ctx, given)


def test_parse_errors_do_not_quote_a_file_from_outside():
    with pytest.raises(DockerfileError, match="unknown instruction: root:x:0:0"):
        parse("root:x:0:0 secret\n")
    with pytest.raises(DockerfileError) as e:
        parse("root:x:0:0 secret\n", show_lines=False)
    assert "line 1" in e.value.message and "root" not in e.value.message


@pytest.mark.parametrize(
    "check, good, bad",
    [
        (spec.check_name, ["ab", "a.b-c_d", "/web", "A" * 255], ["a", "a/b", "../x", "_a", "a" * 256, "é1", "\udcff1"]),
        (
            spec.check_hostname,
            ["box", "a-b.c", "x" * 63, "1.2.3"],
            ["a/b", "-a", "a-", "a..b", "a_b", "x" * 64 + ".y", ""],
        ),
        (
            spec.check_publish,
            ["80", "8080:80", "127.0.0.1:8080:80/udp", "0.0.0.0::80"],
            ["1.2.3.4.5:80:80", "[::1]:80:80", "x:80:80", "0:80", "80/sctp", "1:2:3:4", "[::1]80"],
        ),
        (spec.check_cpus, [0.5, 1.0], [0.0, -1.0, float("nan"), float("inf"), 1e9]),
        (spec.parse_cpu_list, ["0", "0-0", " 0"], ["99999", "1-0", "x", "0,", "0-99999999999", "\u0663"]),
    ],
)
def test_run_flag_checks(check, good, bad):
    for value in good:
        check(value)
    for value in bad:
        with pytest.raises(MinidockerError):
            check(value)


def test_shown_keeps_a_value_on_one_short_line():
    assert spec.shown("a\nb\udcff") == "a\\nb\\xff"
    assert spec.shown("x" * 10_000).endswith("... (10000 characters)") and len(spec.shown("x" * 10_000)) < 120
