"""The typer application. Each command lives in a small module of its own: parse -> api ->
render. This file wires them together and turns errors into one line and an exit code.
(``cli/main.py`` is the entry point: it tries the fast path for ``run`` first.)"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from minidocker import __version__
from minidocker.errors import ExitCode, MinidockerError

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
    root: Optional[Path] = None
    debug: bool = False


state = State()


def _version(value: bool) -> None:
    if value:
        print(f"minidocker version {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    root: Optional[Path] = typer.Option(None, "--root", envvar="MINIDOCKER_ROOT",
                                        help="Where images and containers are stored [/var/lib/minidocker]."),
    debug: bool = typer.Option(False, "--debug", "-D", help="Show tracebacks."),
    version: bool = typer.Option(False, "--version", "-v", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    state.root = root
    state.debug = debug


def _register() -> None:
    from minidocker.cli import (archive, commit, containers, images, login, network, pull, push,  # noqa: F401
                                run, transfer)  # (each adds its commands)
    from minidocker.cli import system  # noqa: F401


def typer_main(argv: list[str] | None = None) -> None:
    from minidocker.cli import render

    _register()
    args = sys.argv[1:] if argv is None else argv
    try:
        rc = app(args=args, prog_name="minidocker", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)  # typer.Exit(code) comes back as a return value here
    except MinidockerError as e:
        render.error(e, debug=state.debug)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        sys.exit(ExitCode.SIGNAL_BASE + 2)
    except Exception as e:  # click's usage errors, and anything unexpected
        if isinstance(e, typer.Abort):
            sys.exit(ExitCode.SIGNAL_BASE + 2)
        if isinstance(e, typer.Exit):
            sys.exit(e.exit_code)
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # click's usage errors
            e.show(file=sys.stderr)
            sys.exit(ExitCode.MINIDOCKER_FAILED)  # docker exits 125 on a bad flag
        render.unexpected_error(e, debug=state.debug or bool(os.environ.get("MINIDOCKER_DEBUG")))
        sys.exit(ExitCode.MINIDOCKER_FAILED)
