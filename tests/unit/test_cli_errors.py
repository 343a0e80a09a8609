"""The one error exit (``cli/main.py``'s ``report_errors``), on both parsers of ``run``.

The CLI runs in a subprocess whose ``api.run`` is replaced by one that raises, so the error
comes from inside the command as a real one would, with no container and no root needed.
The same line goes through the fast path (``main()``, which never imports typer for it) and
through the typer app (``typer_main``, as ``tests/unit/test_fuzz_run_flags.py`` calls it);
both must end the same way: one ``Error:`` line and 125 for an OSError or a bug, 130 for
Ctrl-C, and a traceback only with ``--debug``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import minidocker

WORKTREE = str(Path(minidocker.__file__).parent.parent)  # the code under test, whatever the cwd
FAILURES = {
    "oserror": "OSError(errno.EIO, 'boom', '/x')",
    "ctrl-c": "KeyboardInterrupt()",
    "bug": "RuntimeError('a bug')",
    "minidocker": "MinidockerError('no such thing', hint='try another', exit_code=127)",
}
# api.run raises FAILURE; stdout says whether typer was imported by then (which parser ran)
WRAPPER = """
import errno, sys
from minidocker import api
from minidocker.errors import MinidockerError

def failing_run(*args, **kwargs):
    print("typer imported" if "typer" in sys.modules else "typer not imported", flush=True)
    raise {failure}

api.run = failing_run
if sys.argv[1] == "typer":
    from minidocker.cli.app import typer_main as entry
else:
    from minidocker.cli.main import main as entry
entry(sys.argv[2:])
"""
PARSERS = ["fast path", "typer"]


def run_cli(parser: str, failure: str, *argv: str, root: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINIDOCKER_")}
    env["PYTHONPATH"] = WORKTREE
    code = WRAPPER.format(failure=FAILURES[failure])
    return subprocess.run(
        [sys.executable, "-c", code, parser, "--root", str(root), *argv],
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_took(parser: str, r: subprocess.CompletedProcess) -> None:
    """The line went through the parser the test meant (the fast path never imports typer)."""
    expected = "typer imported" if parser == "typer" else "typer not imported"
    assert r.stdout.strip() == expected, (r.stdout, r.stderr)


@pytest.mark.parametrize("parser", PARSERS)
def test_an_oserror_is_one_error_line_and_125(parser, tmp_path):
    r = run_cli(parser, "oserror", "run", "--rm", "busybox", "true", root=tmp_path)
    assert_took(parser, r)
    assert r.returncode == 125, r.stderr
    assert r.stderr.splitlines() == ["Error: boom: /x"], r.stderr


@pytest.mark.parametrize("parser", PARSERS)
def test_ctrl_c_exits_130_without_a_traceback(parser, tmp_path):
    r = run_cli(parser, "ctrl-c", "run", "--rm", "busybox", "true", root=tmp_path)
    assert_took(parser, r)
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip() == "", r.stderr  # (not a terminal: not even the newline after ^C)


@pytest.mark.parametrize("parser", PARSERS)
def test_a_bug_is_one_internal_error_line_and_125(parser, tmp_path):
    r = run_cli(parser, "bug", "run", "-e", "A=1", "busybox", "true", root=tmp_path)
    assert_took(parser, r)
    assert r.returncode == 125, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [
        "Error: internal error: RuntimeError: a bug",
        "hint: run with --debug for the traceback",
    ], r.stderr


@pytest.mark.parametrize("parser", PARSERS)
def test_a_minidocker_error_keeps_its_code_and_hint(parser, tmp_path):
    r = run_cli(parser, "minidocker", "run", "--rm", "busybox", "true", root=tmp_path)
    assert_took(parser, r)
    assert r.returncode == 127, r.stderr
    assert r.stderr.splitlines() == ["Error: no such thing", "hint: try another"], r.stderr


@pytest.mark.parametrize("parser", PARSERS)
def test_debug_adds_the_traceback(parser, tmp_path):
    r = run_cli(parser, "oserror", "--debug", "run", "--rm", "busybox", "true", root=tmp_path)
    assert_took(parser, r)
    assert r.returncode == 125, r.stderr
    assert "Traceback" in r.stderr and "failing_run" in r.stderr, r.stderr
    assert r.stderr.splitlines()[-1] == "Error: boom: /x", r.stderr
