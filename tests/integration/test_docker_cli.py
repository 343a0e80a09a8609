"""The command line as people who script ``docker`` type it (issue #12: verbs, flags, errors).

Each case is a command line and what docker answers it with: the words on stderr that
scripts grep for, and the exit code. ``run`` lines go through both of its parsers, the fast
path (``python -m minidocker``) and the typer app that takes what the fast path leaves; the
image exists, so a flag that slipped through as an image name would start a container.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

TYPER = [sys.executable, "-c", "import sys; from minidocker.cli.app import typer_main; typer_main(sys.argv[1:])"]


def via(md, parser: str, *args: str) -> subprocess.CompletedProcess:
    """``minidocker ARGS`` through the fast path's entry point or straight into typer."""
    if parser == "fast path":
        return md(*args)
    return subprocess.run([*TYPER, *args], check=False, capture_output=True, text=True, env=md.env(), timeout=120)


UNKNOWN_FLAGS = [  # (argv; {bb} is the busybox image), the command docker's "See" line names
    (["run", "--bogus", "{bb}", "true"], "--bogus", "minidocker run"),
    (["run", "--bogus=1", "--rm", "{bb}", "true"], "--bogus", "minidocker run"),
    (["run", "--rm", "-z", "{bb}", "true"], "'z' in -z", "minidocker run"),
    (["run", "-it", "--rm", "--nope", "{bb}", "true"], "--nope", "minidocker run"),
    (["ps", "--bogus"], "--bogus", "minidocker ps"),
    (["ps", "-z"], "'z' in -z", "minidocker ps"),
    (["network", "rm", "--bogus", "x"], "--bogus", "minidocker network rm"),
    (["container", "prune", "--bogus"], "--bogus", "minidocker container prune"),
    (["logs", "--bogus", "x"], "--bogus", "minidocker logs"),
]


@pytest.mark.parametrize("parser", ["fast path", "typer"])
@pytest.mark.parametrize("argv, flag, command", UNKNOWN_FLAGS, ids=[" ".join(a) for a, _, _ in UNKNOWN_FLAGS])
def test_unknown_flag(md_run, bb, parser, argv, flag, command):
    before = md_run.ok("ps", "-aq").stdout
    r = via(md_run, parser, *(a.replace("{bb}", bb) for a in argv))
    first = f"unknown flag: {flag}" if flag.startswith("--") else f"unknown shorthand flag: {flag}"
    assert r.returncode == 125 and r.stderr == f"{first}\nSee '{command} --help'.\n", r.stderr
    assert "invalid reference" not in r.stderr and r.stdout == ""
    assert md_run.ok("ps", "-aq").stdout == before  # nothing was started


ERRORS = [  # (argv, the line on stderr, exit code) as docker has them
    (["rm", "no-such-c"], "Error: No such container: no-such-c", 1),
    (["stop", "no-such-c"], "Error: No such container: no-such-c", 1),
    (["start", "no-such-c"], "Error: No such container: no-such-c", 1),
    (["logs", "no-such-c"], "Error: No such container: no-such-c", 125),
    (["rmi", "no-such-image:1"], "Error: No such image: no-such-image:1", 1),
    (["network", "rm", "no-such-net"], "Error: network no-such-net not found", 1),
    (["run", "--rm", "{bb}", "no-such-cmd"], 'exec: "no-such-cmd": executable file not found in $PATH', 127),
    (["run", "--rm", "{bb}", "/no/such"], 'exec: "/no/such": stat /no/such: no such file or directory', 127),
    (["run", "--rm", "{bb}", "/etc/passwd"], 'exec: "/etc/passwd": permission denied', 126),
]


@pytest.mark.parametrize("argv, line, code", ERRORS, ids=[" ".join(a) for a, _, _ in ERRORS])
def test_docker_wording(md_run, bb, argv, line, code):
    r = md_run(*(a.replace("{bb}", bb) for a in argv))
    assert r.returncode == code and line in r.stderr.splitlines()[0], r.stderr
    assert "Traceback" not in r.stderr


HELP = [  # (argv, a line the help shows)
    (["--help"], "Usage: minidocker [OPTIONS] COMMAND [ARGS]..."),
    (["-h"], "Usage: minidocker [OPTIONS] COMMAND [ARGS]..."),
    (["run", "--help"], "Usage: minidocker run [OPTIONS] {IMAGE} [[COMMAND] [ARG...]]..."),
    (["ps", "-h"], "Usage: minidocker ps [OPTIONS]"),
    (["network", "rm", "-h"], "Usage: minidocker network rm [OPTIONS] {NETWORK...}..."),
    (["container", "--help"], "Usage: minidocker container [OPTIONS] COMMAND [ARGS]..."),
]


@pytest.mark.parametrize("argv, usage", HELP, ids=[" ".join(a) for a, _ in HELP])
def test_help(md_run, argv, usage):
    r = md_run(*argv)
    assert r.returncode == 0 and usage in r.stdout.splitlines(), r.stdout
    assert r.stderr == ""


def test_help_groups_commands_as_docker(md_run):
    out = md_run.ok("--help").stdout
    sections = [line for line in out.splitlines() if line.endswith("Commands:")]
    assert sections == ["Common Commands:", "Management Commands:", "Commands:"], out
    common, management, rest = (out.split("\n" + s + "\n")[1].split("\n\n")[0] for s in sections)
    first_words = [line.split()[0] for line in common.strip().splitlines()]
    assert first_words[:3] == ["run", "exec", "ps"], common
    assert "container" in management and "network" in management and "run " not in management
    assert "\n  rm " in rest and "\n  ps " not in rest
