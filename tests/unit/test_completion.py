"""Shell completion (typer's): the script for bash, and what it completes, from the real CLI
as bash's ``complete -F`` calls it (COMP_WORDS, COMP_CWORD and _MINIDOCKER_COMPLETE)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def complete(words: str) -> list[str]:
    env = {
        **os.environ,
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        "_MINIDOCKER_COMPLETE": "complete_bash",
    }
    r = subprocess.run([sys.executable, "-m", "minidocker"], capture_output=True, text=True, env=env, check=True)
    return r.stdout.split()


def test_the_bash_script_calls_back_into_minidocker():
    r = subprocess.run(
        [sys.executable, "-m", "minidocker", "--show-completion", "bash"], capture_output=True, text=True, check=True
    )
    assert "_MINIDOCKER_COMPLETE=complete_bash" in r.stdout
    assert "complete -o default -F _minidocker_completion minidocker" in r.stdout


@pytest.mark.parametrize(
    "words, expected",
    [
        ("minidocker ru", ["run"]),
        ("minidocker network c", ["create", "connect"]),
        ("minidocker ps --fi", ["--filter"]),
        ("minidocker run --netw", ["--network"]),
        ("minidocker volume ", ["create", "inspect", "ls", "prune", "rm"]),
    ],
)
def test_commands_subcommands_and_flags_complete(words, expected):
    got = complete(words)
    assert set(expected) <= set(got), got
