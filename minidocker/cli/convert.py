"""``minidocker [image] convert --estargz [--estargz-prefetch FILE]... SOURCE TARGET``"""

from __future__ import annotations

import sys

import typer

from minidocker import api
from minidocker.cli.app import app, state
from minidocker.errors import MinidockerError


@app.command(help="Make a copy of an image in another layer format (--estargz: lazily pullable gzip).")
def convert(
    source: str = typer.Argument(..., metavar="SOURCE"),
    target: str = typer.Argument(..., metavar="TARGET[:TAG]"),
    estargz: bool = typer.Option(False, "--estargz", help="Write every layer as eStargz."),
    prefetch: list[str] = typer.Option(
        [], "--estargz-prefetch", help="A file to put before the prefetch landmark (repeatable)."
    ),
    chunk_size: int | None = typer.Option(
        None, "--estargz-chunk-size", help="Bytes of a file per gzip member [4194304]."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the new image ID."),
) -> None:
    if not estargz:
        raise MinidockerError("convert needs a format to convert to", hint="give --estargz")

    def say(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    print(api.convert(source, target, root=state.root, prefetch=prefetch, chunk_size=chunk_size, say=say))
