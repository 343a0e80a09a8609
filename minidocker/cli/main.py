"""The ``minidocker`` command's entry point.

``run`` goes through ``fastpath`` (no typer import: a container starts sooner); every other
command line, and any ``run`` line the fast path does not understand, goes to the typer app.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if "run" in args[:4]:
        from minidocker.cli import fastpath

        try:
            code = fastpath.run(args)
        except fastpath.NotFast:
            pass
        else:
            # Everything is written and recorded: leave without the interpreter's teardown
            # (garbage collection of every module), a few ms on every container start.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    from minidocker.cli.app import typer_main

    typer_main(args)
