"""``minidocker [image] convert --estargz [--estargz-prefetch FILE]... SOURCE TARGET``
and ``minidocker [image] convert --index IMAGE`` (zran indexes of its gzip layers)"""

from __future__ import annotations

import sys

import typer

from minidocker import api
from minidocker.cli.app import app, state
from minidocker.errors import MinidockerError


@app.command(help="Make a copy of an image in another layer format (--estargz: lazily pullable gzip).")
def convert(
    source: str = typer.Argument(..., metavar="SOURCE"),
    target: str | None = typer.Argument(None, metavar="TARGET[:TAG]"),
    estargz: bool = typer.Option(False, "--estargz", help="Write every layer as eStargz."),
    index: bool = typer.Option(False, "--index", help="Index every gzip layer (zran) for lazy pulls; no copy."),
    prefetch: list[str] = typer.Option(
        [], "--estargz-prefetch", help="A file to put before the prefetch landmark (repeatable)."
    ),
    chunk_size: int | None = typer.Option(
        None, "--estargz-chunk-size", help="Bytes of a file per gzip member [4194304]."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the new image ID."),
) -> None:
    if index:  # (zran, #16)
        if estargz or target is not None:
            raise MinidockerError("convert --index takes one image and no other format", hint="convert --index IMAGE")
        for line in api.index_layers(source, root=state.root):
            print(line)
        return
    if not estargz:
        raise MinidockerError("convert needs a format to convert to", hint="give --estargz or --index")
    if target is None:
        raise MinidockerError("convert --estargz needs a TARGET", hint="convert --estargz SOURCE TARGET")

    def say(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    print(api.convert(source, target, root=state.root, prefetch=prefetch, chunk_size=chunk_size, say=say))
