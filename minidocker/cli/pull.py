"""``minidocker pull [--platform P] [-q] REF``"""

from __future__ import annotations

import typer

from minidocker import api
from minidocker.cli import render
from minidocker.cli.app import app, state


@app.command(help="Download an image from a registry.")
def pull(
    ref: str = typer.Argument(..., metavar="NAME[:TAG|@DIGEST]"),
    platform: str | None = typer.Option(None, "--platform", help="os/arch[/variant], default: this host's."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the image's name."),
    lazy: bool | None = typer.Option(
        None, "--lazy/--no-lazy", help="Leave big eStargz or indexed layers in the registry, read on demand."
    ),
) -> None:
    with render.PullProgress(quiet=quiet) as progress:
        result = api.pull(ref, root=state.root, platform=platform, progress=progress, lazy=lazy)
    if not quiet:
        status = "Downloaded newer image" if result.downloaded else "Image is up to date"
        render.PullProgress()._line(f"Status: {status} for {result.ref.familiar()}")
    print(str(result.ref))
