"""``minidocker save [-o FILE] IMAGE...`` and ``minidocker load [-i FILE] [-q]``"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from minidocker import api
from minidocker.cli import render
from minidocker.cli.app import app, state
from minidocker.errors import MinidockerError


@app.command(help="Save one or more images to a tar archive (streamed to STDOUT by default).")
def save(
    names: list[str] = typer.Argument(..., metavar="IMAGE..."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to a file, instead of STDOUT."),
) -> None:
    if output is None:
        if sys.stdout.isatty():
            raise MinidockerError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        sys.stdout.flush()
        api.save(names, stream=sys.stdout.buffer, root=state.root)
        sys.stdout.buffer.flush()
        return
    api.save(names, output=output, root=state.root)


@app.command(help="Load an image from a tar archive or STDIN.")
def load(
    input: Path | None = typer.Option(
        None, "--input", "-i", help="Read from a tar archive file (or an OCI layout directory)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Suppress the load output."),
) -> None:
    if input is None and sys.stdin.isatty():
        raise MinidockerError(
            "requested load from stdin, but stdin is empty",
            hint="give a file with -i, or redirect one: minidocker load < image.tar",
        )
    with render.PullProgress(quiet=quiet) as progress:
        lines = api.load(input, stdin=sys.stdin.buffer if input is None else None, root=state.root, progress=progress)
    for line in lines:
        print(line)
