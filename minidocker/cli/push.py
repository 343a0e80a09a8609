"""``minidocker push [-q] [--estargz] NAME[:TAG]``"""

from __future__ import annotations

import sys

import typer

from minidocker import api
from minidocker.cli import render
from minidocker.cli.app import app, state


@app.command(help="Upload an image to a registry.")
def push(
    ref: str = typer.Argument(..., metavar="NAME[:TAG]"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Suppress verbose output."),
    estargz: bool = typer.Option(False, "--estargz", help="Push an eStargz copy of the image (lazy pull)."),
) -> None:
    with render.PullProgress(quiet=quiet) as progress:
        result = api.push(ref, root=state.root, progress=progress, estargz=estargz)
    if result.zran_artifact:  # (zran, #16)
        print(f"Pushed the zran indexes of its layers as {result.zran_artifact} (a referrer)", file=sys.stderr)
    if quiet:
        print(str(result.ref))
    else:
        print(f"{result.ref.tag}: digest: {result.digest} size: {result.size}")
