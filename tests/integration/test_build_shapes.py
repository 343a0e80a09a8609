"""The Dockerfile shapes people write, each built and run: a table of (context files,
Dockerfile, build args, what the image's CMD prints). All on the busybox test image in the
session's shared store; every image a test tags is removed at its end."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest

from tests.integration.conftest import MINIDOCKER, one_error

SHAPES = {
    "workdir + COPY a file to .": (
        {"a.txt": "A\n"},
        "WORKDIR /app\nCOPY a.txt .\nRUN cat a.txt > seen\nCMD cat /app/seen",
        [],
        "A\n",
    ),
    "workdir + COPY . . + RUN": (
        {"a.txt": "A\n", "sub/b.txt": "B\n"},
        "WORKDIR /app\nCOPY . .\nRUN cat sub/b.txt > copied\nCMD cat a.txt copied; ls",
        [],
        "A\nB\nDockerfile\na.txt\ncopied\nsub\n",
    ),
    "COPY to an existing directory (or a link to one), no slash": (
        {"a.txt": "A\n"},
        "RUN ln -s /tmp /t\nCOPY a.txt /tmp\nCOPY a.txt /t\nCMD cat /tmp/a.txt; stat -c %a /tmp; readlink /t",
        [],
        "A\n1777\n/tmp\n",
    ),
    "USER then RUN": (
        {},
        "USER nobody\nRUN id -un > /tmp/who; id -u >> /tmp/who\nUSER root\nCMD cat /tmp/who; stat -c %U /tmp/who",
        [],
        "nobody\n65534\nnobody\n",
    ),
    "multi-stage, WORKDIR in both stages": (
        {"a.txt": "A\n"},
        "WORKDIR /src\nCOPY a.txt .\nRUN cp a.txt out.txt\n"
        "FROM {bb}\nWORKDIR /app\nCOPY --from=build /src/out.txt .\nCOPY --from=0 /src/a.txt ./again\n"
        "CMD pwd; cat out.txt again; ls",
        [],
        "/app\nA\nA\nagain\nout.txt\n",
    ),
    "ARG defaults, --build-arg overrides one": (
        {},
        'ARG WHO=world\nARG GREETING=hello\nRUN echo "$GREETING $WHO" > /msg\nCMD cat /msg',
        ["--build-arg", "GREETING=hi"],
        "hi world\n",
    ),
    "--build-arg NAME: from the environment, else the default": (
        {},
        'ARG FROM_ENV=default1\nARG NOT_IN_ENV=default2\nRUN echo "$FROM_ENV $NOT_IN_ENV" > /msg\nCMD cat /msg',
        ["--build-arg", "FROM_ENV", "--build-arg", "NOT_IN_ENV"],
        "from-env default2\n",
    ),
    "ARG before FROM, overridden": (
        {},
        'ARG TAIL=default\nRUN echo "tail=$TAIL" > /msg\nCMD cat /msg',
        ["--build-arg", "BASE={bb}", "--build-arg", "TAIL=given"],
        "tail=given\n",
    ),
    ".dockerignore: ! exceptions and **": (
        {
            "a.md": "",
            "README.md": "",
            "docs/keep.md": "",
            "docs/drop.md": "",
            "src/x/y.tmp": "",
            "src/x/z.c": "",
            "y.tmp": "",
            ".dockerignore": "*.md\n!README.md\ndocs\n!docs/keep.md\n**/*.tmp\n",
        },
        "COPY . /ctx\nCMD cd /ctx && find . -type f | sort",
        [],
        "./.dockerignore\n./Dockerfile\n./README.md\n./docs/keep.md\n./src/x/z.c\n",
    ),
}


def _write(ctx, files: dict[str, str], dockerfile: str) -> None:
    for name, text in files.items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    (ctx / "Dockerfile").write_text(dockerfile)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_dockerfile_shape_builds_and_runs(md_run, bb, tmp_path, shape):
    files, body, args, expected = SHAPES[shape]
    first = "ARG BASE\nFROM $BASE AS build" if "BASE=" in " ".join(args) else f"FROM {bb} AS build"
    _write(tmp_path, files, first + "\n" + body.replace("{bb}", bb) + "\n")
    tag = f"shape:{os.getpid()}"
    env = {"FROM_ENV": "from-env"}  # (os.environ has no NOT_IN_ENV)
    r = md_run.ok("build", "-t", tag, *(a.replace("{bb}", bb) for a in args), str(tmp_path), env=env)
    try:
        assert "[Warning]" not in r.stdout
        assert md_run.ok("run", "--rm", tag).stdout == expected
    finally:
        md_run("rmi", tag)


def test_a_build_arg_nobody_declared_is_warned_about(md_run, bb, tmp_path):
    """docker's warning, word for word; the build still succeeds."""
    _write(tmp_path, {}, f"FROM {bb}\nARG USED\nRUN true\n")
    r = md_run.ok("build", "--build-arg", "USED=1", "--build-arg", "NOPE=2", "--build-arg", "ALSO=3", str(tmp_path))
    assert "[Warning] One or more build-args [ALSO NOPE] were not consumed\n" in r.stdout
    assert r.stdout.rstrip().splitlines()[-1].startswith("Successfully built ")


def test_onbuild_triggers_run_in_the_child_build(md_run, bb, tmp_path):
    """ONBUILD is stored in the parent image's config and does nothing there; a build FROM
    that image runs the triggers right after FROM, against its own context; the child image
    does not inherit them."""
    parent_ctx, child_ctx = tmp_path / "parent", tmp_path / "child"
    parent_ctx.mkdir()
    child_ctx.mkdir()
    parent, child = f"onbuild-parent:{os.getpid()}", f"onbuild-child:{os.getpid()}"
    _write(parent_ctx, {}, f"FROM {bb}\nONBUILD COPY a.txt /onbuild/\nONBUILD RUN echo triggered > /onbuild/mark\n")
    _write(child_ctx, {"a.txt": "from the child's context\n"}, f"FROM {parent}\nCMD cat /onbuild/a.txt /onbuild/mark\n")
    try:
        md_run.ok("build", "-t", parent, str(parent_ctx))
        config = json.loads(md_run.ok("inspect", parent).stdout)[0]["Config"]
        assert config["OnBuild"] == ["COPY a.txt /onbuild/", "RUN echo triggered > /onbuild/mark"]
        assert md_run("run", "--rm", parent, "test", "-e", "/onbuild").returncode == 1
        r = md_run.ok("build", "-t", child, str(child_ctx))
        assert "# Executing 2 build triggers" in r.stdout
        assert md_run.ok("run", "--rm", child).stdout == "from the child's context\ntriggered\n"
        assert not json.loads(md_run.ok("inspect", child).stdout)[0]["Config"].get("OnBuild")
        (child_ctx / "a.txt").unlink()  # a trigger that fails fails the child's build, at its FROM line
        r = md_run("build", "--no-cache", str(child_ctx))
        assert r.returncode == 125 and one_error(r.stderr) and "line 1: COPY failed: file not found" in r.stderr
        _write(child_ctx, {}, f"FROM {bb}\nONBUILD FROM {bb}\n")
        r = md_run("build", str(child_ctx))
        assert r.returncode == 125 and one_error(r.stderr) and "FROM isn't allowed as an ONBUILD trigger" in r.stderr
    finally:
        md_run("rmi", child, parent)


# -- build's command line: stdin, -f, --target, --label; hard links; two builds at once -------------
def test_a_dockerfile_on_stdin_with_no_context_or_with_one(md_run, bb, tmp_path):
    """``build -``: the Dockerfile from stdin and no context at all (COPY finds nothing);
    ``build -f - PATH``: the Dockerfile from stdin, PATH the context."""
    tag = f"stdin:{os.getpid()}"
    try:
        md_run.ok("build", "-t", tag, "-", input=f"FROM {bb}\nRUN echo from-stdin > /x\nCMD cat /x\n")
        assert md_run.ok("run", "--rm", tag).stdout == "from-stdin\n"
        r = md_run("build", "-", input=f"FROM {bb}\nCOPY a.txt /\n")
        assert r.returncode == 125 and one_error(r.stderr) and "file not found in build context" in r.stderr
        _write(tmp_path, {"a.txt": "in the context\n"}, "FROM scratch-never-read\n")
        md_run.ok("build", "-t", tag, "-f", "-", str(tmp_path), input=f"FROM {bb}\nCOPY a.txt /\nCMD cat /a.txt\n")
        assert md_run.ok("run", "--rm", tag).stdout == "in the context\n"
        (tmp_path / "other.Dockerfile").write_text(f"FROM {bb}\nCMD echo other file\n")
        md_run.ok("build", "-t", tag, "-f", str(tmp_path / "other.Dockerfile"), str(tmp_path))
        assert md_run.ok("run", "--rm", tag).stdout == "other file\n"
        r = md_run("build", "-f", "-", "-", input=f"FROM {bb}\n")
        assert r.returncode == 125 and one_error(r.stderr) and "both read stdin" in r.stderr
    finally:
        md_run("rmi", tag)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_a_context_as_a_tar_on_stdin(md_run, bb):
    """``build - < context.tar.gz``: the tar is the context, its Dockerfile the Dockerfile;
    a member that would land outside the context is refused."""
    tag = f"tarctx:{os.getpid()}"
    dockerfile = f"FROM {bb}\nCOPY . /ctx\nCMD cat /ctx/sub/a.txt; ls /ctx\n".encode()
    context = _tar_gz({"Dockerfile": dockerfile, "sub/a.txt": b"from the tar\n"})
    try:
        r = subprocess.run([*MINIDOCKER, "build", "-t", tag, "-"], input=context, capture_output=True, env=md_run.env())
        assert r.returncode == 0, r.stderr
        assert md_run.ok("run", "--rm", tag).stdout == "from the tar\nDockerfile\nsub\n"
        hostile = _tar_gz({"Dockerfile": dockerfile, "../escape": b"x"})
        r = subprocess.run([*MINIDOCKER, "build", "-"], input=hostile, capture_output=True, env=md_run.env())
        err = r.stderr.decode()
        assert r.returncode == 125 and one_error(err) and "unable to unpack the build context" in err, err
    finally:
        md_run("rmi", tag)


def test_target_stops_at_a_stage_and_labels_go_on_the_image(md_run, bb, tmp_path):
    _write(
        tmp_path,
        {},
        f"FROM {bb} AS one\nRUN echo one > /stage\nFROM {bb} AS two\nLABEL old=1\nRUN echo two > /stage\n"
        "FROM two\nRUN exit 7\n",
    )
    tag = f"target:{os.getpid()}"
    labels = ["--label", "a=b", "--label", "c=d e", "--label", "x=$HOME", "--label", "empty"]
    try:
        r = md_run.ok("build", "-t", tag, "--target", "TWO", *labels, str(tmp_path))
        assert "exit 7" not in r.stdout  # the stage after the target is not built
        assert md_run.ok("run", "--rm", tag, "cat", "/stage").stdout == "two\n"
        config = json.loads(md_run.ok("inspect", tag).stdout)[0]["Config"]
        assert config["Labels"] == {"old": "1", "a": "b", "c": "d e", "x": "$HOME", "empty": ""}
        r = md_run("build", "--target", "three", str(tmp_path))
        assert r.returncode == 125 and one_error(r.stderr) and "failed to reach build target three" in r.stderr
        r = md_run("build", "--label", "=v", str(tmp_path))
        assert r.returncode == 125 and one_error(r.stderr) and "the key is empty" in r.stderr
        assert md_run("build", str(tmp_path)).returncode == 125  # all stages: the last one's RUN fails
    finally:
        md_run("rmi", tag)


def test_copy_keeps_hard_links(md_run, bb, tmp_path):
    """Two names of one inode in the context are one inode in the image (docker's COPY)."""
    _write(tmp_path, {"d/f": "shared bytes\n", "single": "alone\n"}, f"FROM {bb}\nCOPY . /h\n")
    os.link(tmp_path / "d" / "f", tmp_path / "hl")
    tag = f"hardlinks:{os.getpid()}"
    try:
        md_run.ok("build", "-t", tag, str(tmp_path))
        out = md_run.ok("run", "--rm", tag, "stat", "-c", "%i %h %n", "/h/d/f", "/h/hl", "/h/single").stdout.split()
        assert out[0] == out[3] and out[1] == out[4] == "2" and out[7] == "1", out
        assert md_run.ok("run", "--rm", tag, "cat", "/h/hl").stdout == "shared bytes\n"
    finally:
        md_run("rmi", tag)


def test_two_builds_at_once_into_one_store(md, bb, tmp_path):
    """Both succeed, though both pull the base image into an empty store and write the same
    COPY layer and RUN layer at the same time (--no-cache): every write of the store (blobs,
    layers, images, the build cache) is locked."""
    tags = [f"parallel{i}:{os.getpid()}" for i in range(2)]
    procs = []
    for i, tag in enumerate(tags):
        ctx = tmp_path / f"ctx{i}"
        ctx.mkdir()
        _write(ctx, {"n.txt": "same\n"}, f"FROM {bb}\nCOPY n.txt /\nRUN cat /n.txt > /ran\nLABEL n={i}\nCMD cat /ran\n")
        procs.append(md.popen("build", "--no-cache", "-t", tag, str(ctx)))
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert [md.ok("run", "--rm", tag).stdout for tag in tags] == ["same\n", "same\n"]
    configs = [json.loads(md.ok("inspect", tag).stdout)[0]["Config"] for tag in tags]
    assert [c["Labels"] for c in configs] == [{"n": "0"}, {"n": "1"}]


def test_ulimit_applies_to_run(md_run, bb, tmp_path):
    """``build --ulimit``: each RUN's container has the limits (soft:hard, -1 unlimited)."""
    _write(tmp_path, {}, f"FROM {bb}\nRUN ulimit -Sn > /limits; ulimit -Hn >> /limits; ulimit -c >> /limits\n")
    tag = f"ulimit:{os.getpid()}"
    before = md_run.ok("ps", "-aq").stdout
    try:
        md_run.ok("build", "--no-cache", "-t", tag, "--ulimit", "nofile=512:1024", "--ulimit", "core=-1", str(tmp_path))
        assert md_run.ok("run", "--rm", tag, "cat", "/limits").stdout == "512\n1024\nunlimited\n"
        # above this host's hard limit (root without CAP_SYS_RESOURCE): refused, nothing left
        r = md_run("build", "--no-cache", "--ulimit", "nofile=99999999:99999999", str(tmp_path))
        assert r.returncode == 125 and one_error(r.stderr) and "cannot set it" in r.stderr, r.stderr
        r = md_run("build", "--ulimit", "nofiles=1", str(tmp_path))  # (the other wrong values: unit tests)
        assert r.returncode == 125 and one_error(r.stderr) and "invalid ulimit type: nofiles" in r.stderr
        assert md_run.ok("ps", "-aq").stdout == before  # the refused RUN left no container
    finally:
        md_run("rmi", tag)


def test_a_workdir_that_is_a_file_is_refused_in_one_line(md_run, bb, tmp_path):
    _write(tmp_path, {}, f"FROM {bb}\nWORKDIR /etc/passwd\nRUN true\n")
    r = md_run("build", str(tmp_path))
    assert r.returncode == 125 and one_error(r.stderr) and "mkdir /etc/passwd: not a directory" in r.stderr, r.stderr
