"""The typer application. Each command lives in a small module of its own: parse -> api ->
render. This file wires them together and turns typer's ways of ending into exit codes;
what a command raises goes to the one error exit, ``cli/main.py``'s ``report_errors``.
(``cli/main.py`` is the entry point: it tries the fast path for ``run`` first.)"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from minidocker import __version__
from minidocker.errors import ExitCode, printable

# ``minidocker --help`` lists the commands in docker's three groups: the ones people type
# most, then the management groups (``container ls``...), then the rest.
COMMON_COMMANDS = ("run", "exec", "ps", "build", "pull", "push", "images", "login", "logout", "version", "info")


class DockerGroup(TyperGroup):
    """The top-level command group, whose help groups its commands as docker's does."""

    def format_commands(self, ctx, formatter) -> None:
        listed = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        shown = [(name, cmd) for name, cmd in listed if cmd is not None and not cmd.hidden]
        common = [(n, c) for n in COMMON_COMMANDS for name, c in shown if name == n]
        management = [(n, c) for n, c in shown if hasattr(c, "list_commands")]
        rest = sorted((n, c) for n, c in shown if (n, c) not in common and (n, c) not in management)
        width = formatter.width - 6 - max((len(n) for n, _ in shown), default=0)
        for title, group in (("Common Commands", common), ("Management Commands", management), ("Commands", rest)):
            if group:
                with formatter.section(title):
                    formatter.write_dl([(n, c.get_short_help_str(width)) for n, c in group])


app = typer.Typer(
    cls=DockerGroup,
    name="minidocker",
    help="A small, real container runtime, written to be read.",
    add_completion=True,  # --install-completion, --show-completion: typer's shell completion
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class State:
    root: Path | None = None
    debug: bool = False


state = State()


def _version(value: bool) -> None:
    if value:
        print(f"minidocker version {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    root: Path | None = typer.Option(
        None, "--root", envvar="MINIDOCKER_ROOT", help="Where images and containers are stored [/var/lib/minidocker]."
    ),
    debug: bool = typer.Option(False, "--debug", "-D", help="Show tracebacks."),
    version: bool = typer.Option(
        False, "--version", "-v", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    state.root = root
    state.debug = debug


def _register() -> None:
    from minidocker.cli import (  # noqa: F401
        archive,
        commit,
        containers,
        convert,
        events,
        images,
        lesson,
        login,
        network,
        pull,
        push,
        run,  # (each adds its commands)
        system,  # noqa: F401
        transfer,
        volume,
    )

    alias_commands("container", CONTAINER_ALIASES)
    alias_commands("image", IMAGE_ALIASES)


# docker's management-command spellings of the top-level commands: ``container stop`` is
# ``stop``, ``image rm`` is ``rmi`` (group -> {its name: the top-level command's})
CONTAINER_ALIASES = {
    name: name
    for name in (
        "attach", "commit", "cp", "create", "diff", "exec", "export", "kill", "logs", "pause", "port",
        "rename", "restart", "rm", "run", "start", "stop", "stats", "top", "unpause", "update", "wait",
    )
} | {"ls": "ps", "list": "ps", "ps": "ps"}  # fmt: skip
IMAGE_ALIASES = {
    "build": "build", "convert": "convert", "history": "history", "import": "import", "load": "load",
    "pull": "pull", "push": "push", "rm": "rmi", "save": "save", "tag": "tag", "ls": "images", "list": "images",
}  # fmt: skip


def alias_commands(group: str, aliases: dict[str, str]) -> None:
    """Register the top-level commands ``aliases`` names under ``group`` as well (same
    function, help and parsing), once every command module has registered its own."""
    sub = next(g.typer_instance for g in app.registered_groups if g.name == group)
    assert sub is not None  # (each group is added with its Typer)
    commands = {c.name or c.callback.__name__.replace("_", "-"): c for c in app.registered_commands if c.callback}
    have = {c.name for c in sub.registered_commands}
    for alias, name in aliases.items():
        if alias in have or name not in commands:
            continue  # (a group's own command of that name wins)
        info = commands[name]
        sub.command(alias, help=info.help, context_settings=info.context_settings)(info.callback)


def typer_main(argv: list[str] | None = None) -> None:
    """Run the typer app on ``argv`` and exit with its code, errors reported by the one error
    exit (``cli/main.py``), as on the fast path."""
    from minidocker.cli.main import report_errors

    _register()
    args = sys.argv[1:] if argv is None else argv
    sys.exit(report_errors(lambda: call_app(args), debug=lambda: state.debug))


def call_app(args: list[str]) -> int:
    """The app's exit code, typer's own ways of ending included; anything else is raised."""
    try:
        rc = app(args=args, prog_name="minidocker", standalone_mode=False)
    except typer.Abort:  # click's name for Ctrl-C (or end of input) at a prompt
        return ExitCode.SIGNAL_BASE + signal.SIGINT
    except Exception as e:
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # click's usage errors (typer vendors click)
            show_usage_error(e)
            return ExitCode.MINIDOCKER_FAILED  # docker exits 125 on a bad flag
        raise
    return rc if isinstance(rc, int) else 0  # typer.Exit(code) comes back as a return value here


def show_usage_error(e) -> None:
    """A usage error on stderr. An unknown flag in docker's words, which scripts look for::

        unknown flag: --bogus                 (a short one: unknown shorthand flag: 'z' in -z)
        See 'minidocker ps --help'.

    any other (a missing argument, a bad number) as click words it."""
    name = getattr(e, "option_name", None)
    if type(e).__name__ != "NoSuchOption" or not name:
        e.show(file=sys.stderr)
        return
    print(unknown_flag(name, e.ctx.command_path if e.ctx else "minidocker"), file=sys.stderr)


def unknown_flag(flag: str, command_path: str) -> str:
    """docker's two lines for a flag its command does not know (also the fast path's)."""
    if flag.startswith("--"):
        first = f"unknown flag: {printable(flag.partition('=')[0])}"
    else:  # (pflag's words: the first letter it did not know, in the word given)
        first = f"unknown shorthand flag: {printable(flag[1:2])!r} in {printable(flag)}"
    return f"{first}\nSee '{command_path} --help'."
