"""The management commands of the four kinds of object: ``container``, ``image``, ``network``
and ``volume``, each a group of its own with an ``inspect`` command."""

from __future__ import annotations

import typer

from minidocker import api
from minidocker.cli.app import app, state


def management_app(kind: str) -> typer.Typer:
    """``minidocker KIND ...`` ("Manage KINDs."), added to the app; its commands are added
    to what it returns."""
    group = typer.Typer(help=f"Manage {kind}s.", no_args_is_help=True)
    app.add_typer(group, name=kind)
    return group


def add_inspect(group: typer.Typer, kind: str, example: str, *, sizes: bool = False) -> None:
    """``minidocker KIND inspect [-f F] NAME...``: docker's inspect output of that kind's
    objects (``example``: a template the help shows); ``sizes``: with ``-s`` too (a
    container's)."""
    names_argument = typer.Argument(..., metavar=f"{kind.upper()}...")
    format_option = typer.Option(None, "--format", "-f", help=f"'json' or a Go template, e.g. '{example}'.")

    def show(names: list[str], fmt: str | None, size: bool = False) -> None:
        from minidocker.cli.images import show_inspected

        show_inspected(names, lambda name: api.inspect_any(name, kind, root=state.root, size=size), fmt)

    def inspect(names: list[str] = names_argument, fmt: str | None = format_option) -> None:
        show(names, fmt)

    def inspect_sized(
        names: list[str] = names_argument,
        fmt: str | None = format_option,
        size: bool = typer.Option(False, "--size", "-s", help="Display total file sizes."),
    ) -> None:
        show(names, fmt, size)

    help = f"Display detailed information on one or more {kind}s."
    group.command("inspect", help=help)(inspect_sized if sizes else inspect)
