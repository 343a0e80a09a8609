"""``minidocker run|create [OPTIONS] IMAGE [COMMAND] [ARG...]``

The typer command: its flags are made from RunOptions' fields (``cli/options.py``), and its
work is ``fastpath.run_container``, the same as the fast parser's."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer

from minidocker import api
from minidocker.cli import fastpath
from minidocker.cli.app import app, state
from minidocker.cli.options import with_run_flags
from minidocker.errors import ExitCode, MinidockerError

Work = Callable[[str, list[str], "api.RunOptions"], None]
ARGS_AFTER_IMAGE = {"allow_interspersed_args": False, "ignore_unknown_options": True}


def image_command(help: str) -> Callable[[Work], Work]:
    """Registers ``work(image, args, opts)`` as the command of its name, of docker's grammar
    ``[OPTIONS] IMAGE [COMMAND] [ARG...]`` with run's flags (``opts``: the RunOptions)."""

    def register(work: Work) -> Work:
        @app.command(work.__name__, context_settings=ARGS_AFTER_IMAGE, help=help)
        @with_run_flags
        def command(
            image: str = typer.Argument(..., metavar="IMAGE"),
            args: list[str] = typer.Argument(None, metavar="[COMMAND] [ARG...]"),
            **flags: Any,
        ) -> None:
            refuse_unknown_flag(image)
            work(image, args or [], api.RunOptions(**flags))

        return work

    return register


@image_command(help="Create and run a new container from an image.")
def run(image: str, args: list[str], opts: api.RunOptions) -> None:
    raise typer.Exit(fastpath.run_container(image, args, opts, state.root))


@image_command(help="Create a new container (start it with: minidocker start).")
def create(image: str, args: list[str], opts: api.RunOptions) -> None:
    if opts.pause_at is not None:
        raise MinidockerError("--pause-at is a flag of a foreground run: minidocker run --pause-at STEP ...")
    progress = fastpath.PullDisplay(announce=opts.pull != "always")
    try:
        cid = api.create(image, args, opts, root=state.root, progress=progress, on_pull=progress.start)
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
