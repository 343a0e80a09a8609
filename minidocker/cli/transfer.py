"""``minidocker export [-o FILE] CONTAINER`` and ``minidocker import FILE|- [REF] [-c] [-m]``"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from minidocker import api
from minidocker.cli.app import app, state
from minidocker.errors import MinidockerError


@app.command(help="Export a container's filesystem as a tar archive (to STDOUT by default).")
def export(
    container: str = typer.Argument(..., metavar="CONTAINER"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to a file, instead of STDOUT."),
) -> None:
    if output is None and sys.stdout.isatty():
        raise MinidockerError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    sys.stdout.flush()
    api.export(container, output=output, fd=None if output else sys.stdout.fileno(), root=state.root)


@app.command(name="import", help="Import the contents from a tarball to create a filesystem image.")
def import_(
    source: str = typer.Argument(..., metavar="FILE|-"),
    ref: str | None = typer.Argument(None, metavar="[REPOSITORY[:TAG]]"),
    change: list[str] = typer.Option([], "--change", "-c", help="Apply a Dockerfile instruction to the image."),
    message: str | None = typer.Option(None, "--message", "-m", help="Set the commit message."),
) -> None:
    print(api.import_(source, ref, change, message, stdin=sys.stdin.buffer if source == "-" else None, root=state.root))
