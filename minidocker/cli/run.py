"""``minidocker run|create [OPTIONS] IMAGE [COMMAND] [ARG...]``

The typer command: its flags are made from RunOptions' fields (``cli/options.py``), and its
work is ``fastpath.run_container``, the same as the fast parser's."""

from __future__ import annotations

import sys
from typing import Any

import typer

from minidocker import api
from minidocker.cli import fastpath
from minidocker.cli.app import app, state
from minidocker.cli.options import with_run_flags
from minidocker.errors import ExitCode, MinidockerError

ARGS_AFTER_IMAGE = {"allow_interspersed_args": False, "ignore_unknown_options": True}


@app.command(context_settings=ARGS_AFTER_IMAGE, help="Create and run a new container from an image.")
@with_run_flags
def run(
    image: str = typer.Argument(..., metavar="IMAGE"),
    args: list[str] = typer.Argument(None, metavar="[COMMAND] [ARG...]"),
    **flags: Any,
) -> None:
    refuse_unknown_flag(image)
    raise typer.Exit(fastpath.run_container(image, args or [], api.RunOptions(**flags), state.root))


@app.command(context_settings=ARGS_AFTER_IMAGE, help="Create a new container (start it with: minidocker start).")
@with_run_flags
def create(
    image: str = typer.Argument(..., metavar="IMAGE"),
    args: list[str] = typer.Argument(None, metavar="[COMMAND] [ARG...]"),
    **flags: Any,
) -> None:
    refuse_unknown_flag(image)
    opts = api.RunOptions(**flags)
    if opts.pause_at is not None:
        raise MinidockerError("--pause-at is a flag of a foreground run: minidocker run --pause-at STEP ...")
    progress = fastpath.PullDisplay(announce=opts.pull != "always")
    try:
        cid = api.create(image, args or [], opts, root=state.root, progress=progress, on_pull=progress.start)
    finally:
        progress.stop()
    print(cid)


def refuse_unknown_flag(image: str) -> None:
    """The command takes every word after its image as the container's (docker's grammar),
    so click lets an unknown flag through as the image's name: ``run --bogus busybox``.
    No image name starts with a dash; such a word is the flag docker refuses, exit 125
    (named after the command as typed: ``minidocker container run``)."""
    if image.startswith("-") and image != "-":
        from typer._click.globals import get_current_context

        from minidocker.cli.app import unknown_flag

        print(unknown_flag(image, get_current_context().command_path), file=sys.stderr)
        raise typer.Exit(ExitCode.MINIDOCKER_FAILED)
