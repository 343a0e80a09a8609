"""``run``'s flags are described once (RunOptions, minidocker/options.py): the typer command
and the fast parser are both made from that description, so they must read any line alike
and ``run --help`` must show every flag with its help."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from minidocker.api import RunOptions
from minidocker.cli import app as app_module
from minidocker.cli import fastpath
from minidocker.record import fields

LINES = [
    ["img"],
    ["-it", "--rm", "img", "sh", "-c", "echo hi"],
    ["-e", "A=1", "--env=B=2", "-eC=3", "--env-file", "/f", "-v", "/a:/b:ro", "--net", "host", "img"],
    ["-m", "64m", "--memory-swap=-1", "--cpus", "0.5", "-c", "2", "--cpuset-cpus", "0", "--pids-limit", "9", "img"],
    ["--userns=auto", "--restart", "on-failure:3", "--explain", "--name", "web", "-h", "box", "-w", "/srv", "img"],
    [
        "-d",
        "-p",
        "8080:80",
        "--publish=53:53/udp",
        "--cap-add",
        "NET_ADMIN",
        "--cap-drop=ALL",
        "--privileged",
        "--security-opt",
        "no-new-privileges",
        "--tmpfs",
        "/t",
        "--read-only",
        "--init",
        "-u",
        "1:1",
        "--entrypoint",
        "",
        "img",
        "--",
        "-x",
    ],
]


def read_by_typer(argv: list[str]) -> tuple[str, list[str], RunOptions]:
    app_module._register()
    command = typer.main.get_command(app_module.app).commands["run"]
    params = dict(command.make_context("run", list(argv)).params)
    image, args = params.pop("image"), list(params.pop("args") or [])
    # click hands a repeatable option over as a tuple; typer makes it a list for the command
    return image, args, RunOptions(**{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()})


def read_by_fast_path(argv: list[str]) -> tuple[str, list[str], RunOptions]:
    _, line = fastpath.parse_run(["run", *argv])
    image, args = line.pop("image"), line.pop("args")
    return image, args, RunOptions(**line)


@pytest.mark.parametrize("argv", LINES, ids=lambda a: " ".join(a)[:40])
def test_both_parsers_read_a_line_alike(argv):
    (i1, a1, o1), (i2, a2, o2) = read_by_fast_path(argv), read_by_typer(argv)
    assert (i1, a1, vars(o1)) == (i2, a2, vars(o2))


def test_an_empty_line_is_every_default():
    assert vars(read_by_typer(["img"])[2]) == vars(RunOptions()) == vars(read_by_fast_path(["img"])[2])
    assert RunOptions().network == "default" and RunOptions().userns == "host" and RunOptions().restart == "no"


def test_run_help_shows_every_flag_with_its_help():
    r = subprocess.run(
        [sys.executable, "-m", "minidocker", "run", "--help"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    shown = " ".join(r.stdout.split())  # help lines wrap: compare with the white space folded
    for f in fields(RunOptions):
        for name in f.metadata["names"]:
            assert name in shown, name
        assert " ".join(f.metadata["help"].split()) in shown, f.name
