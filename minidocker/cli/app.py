"""The typer application. Each command lives in a small module of its own: parse -> api ->
render. This file wires them together and turns typer's ways of ending into exit codes;
what a command raises goes to the one error exit, ``cli/main.py``'s ``report_errors``.
(``cli/main.py`` is the entry point: it tries the fast path for ``run`` first.)"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer

from minidocker import __version__
from minidocker.errors import ExitCode

app = typer.Typer(
    name="minidocker",
    help="A small, real container runtime, written to be read.",
    add_completion=False,
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
        events,
        images,
        login,
        network,
        pull,
        push,
        run,  # (each adds its commands)
        system,  # noqa: F401
        transfer,
        volume,
    )


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
            e.show(file=sys.stderr)
            return ExitCode.MINIDOCKER_FAILED  # docker exits 125 on a bad flag
        raise
    return rc if isinstance(rc, int) else 0  # typer.Exit(code) comes back as a return value here
