"""The fast path for ``run`` must accept exactly the flags of the typer command."""

import pytest

from minidocker.cli import fastpath


def typer_run_flags():
    import typer.main

    from minidocker.cli import app as app_module

    app_module._register()
    command = typer.main.get_command(app_module.app).commands["run"]
    flags = {}
    for p in command.params:
        for opt in getattr(p, "opts", []) + getattr(p, "secondary_opts", []):
            if opt.startswith("-"):
                flags[opt] = p.name
    return flags


def test_the_table_and_the_typer_command_agree():
    typer_flags = typer_run_flags()
    assert set(typer_flags) == set(fastpath.RUN_FLAGS)
    for flag, (dest, _kind) in fastpath.RUN_FLAGS.items():
        expected = {"volume": "volume", "env_file": "env_file", "rm": "rm"}.get(dest, dest)
        assert typer_flags[flag] == expected, flag


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["run", "-it", "img", "sh"], {"interactive": True, "tty": True, "image": "img", "args": ["sh"]}),
        (["run", "-dit", "--rm", "img"], {"detach": True, "tty": True, "rm": True, "args": []}),
        (["run", "-eA=1", "-e", "B=2", "--env=C=3", "img"], {"env": ["A=1", "B=2", "C=3"]}),
        (
            ["run", "--name=web", "-v", "/a:/b:ro", "img", "ls", "-l"],
            {"name": "web", "volume": ["/a:/b:ro"], "args": ["ls", "-l"]},
        ),
        (
            ["--root", "/x", "run", "-m", "64m", "--cpus", "0.5", "--pids-limit", "50", "img"],
            {"memory": "64m", "cpus": 0.5, "pids_limit": 50},
        ),
        (
            ["run", "--cap-drop", "NET_RAW", "--security-opt", "seccomp=unconfined", "img"],
            {"cap_drop": ["NET_RAW"], "security_opt": ["seccomp=unconfined"]},
        ),
        (["run", "--", "img", "--not-a-flag"], {"image": "img", "args": ["--not-a-flag"]}),
    ],
)
def test_parse_run(argv, expect):
    _, opts = fastpath.parse_run(argv)
    for k, v in expect.items():
        assert opts[k] == v, k


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "--help"],
        ["run", "--bogus", "img"],
        ["run", "-m"],
        ["run", "--cpus", "half", "img"],
        ["pull", "img"],
        ["--bogus", "run", "img"],
    ],
)
def test_unknown_lines_go_to_typer(argv):
    with pytest.raises(fastpath.NotFast):
        fastpath.parse_run(argv)


@pytest.mark.parametrize(
    "argv, command",
    [
        (["run", "busybox"], "run"),
        (["--root", "/r", "run", "x"], "run"),
        (["--root=/r", "-D", "run"], "run"),
        (["exec", "c1", "run"], "exec"),
        (["--root", "run", "ps"], "ps"),  # "run" is the store's directory here
        (["--debug"], None),
    ],
)
def test_the_command_word_follows_the_global_flags(argv, command):
    from minidocker.cli.main import command_of

    assert command_of(argv) == command
