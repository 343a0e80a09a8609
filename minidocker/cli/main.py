"""The ``minidocker`` command's entry point.

``run`` goes through ``fastpath`` (no typer import: a container starts sooner); every other
command line, and any ``run`` line the fast path does not understand, goes to the typer app.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if "run" in args[:4]:
        from minidocker.cli import fastpath

        try:
            sys.exit(fastpath.run(args))
        except fastpath.NotFast:
            pass
    from minidocker.cli.app import typer_main

    typer_main(args)
