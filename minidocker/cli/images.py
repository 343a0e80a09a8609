"""``images``, ``rmi``, ``tag`` and ``image inspect``."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

from minidocker import api
from minidocker.cli import render
from minidocker.cli.app import app, state
from minidocker.errors import ExitCode


@app.command(help="List images.")
def images(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only show image IDs."),
    digests: bool = typer.Option(False, "--digests", help="Show digests."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output."),
    fmt: Optional[str] = typer.Option(None, "--format", help="'json' for one JSON object per line."),
) -> None:
    rows = api.images(root=state.root)
    def show_id(i: str) -> str:
        return i if no_trunc else i.removeprefix("sha256:")[:12]
    if quiet:
        seen: list[str] = []
        for r in rows:
            if show_id(r["ID"]) not in seen:
                seen.append(show_id(r["ID"]))
        print("\n".join(seen)) if seen else None
        return
    if fmt == "json":
        for r in rows:
            print(json.dumps({"Repository": r["Repository"], "Tag": r["Tag"], "Digest": r["Digest"],
                              "ID": show_id(r["ID"]), "CreatedAt": r["Created"],
                              "CreatedSince": render.human_ago(r["Created"]),
                              "Size": render.human_size(r["Size"]), "VirtualSize": render.human_size(r["Size"])}))
        return
    if fmt:
        raise typer.BadParameter("only --format json is supported", param_hint="--format")
    cols = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    render.table(cols, ([r["Repository"], r["Tag"]] + ([r["Digest"]] if digests else [])
                        + [show_id(r["ID"]), render.human_ago(r["Created"]), render.human_size(r["Size"])]
                        for r in rows))


@app.command(help="Remove one or more images.")
def rmi(
    names: List[str] = typer.Argument(..., metavar="IMAGE..."),
    force: bool = typer.Option(False, "--force", "-f", help="Remove even if referenced in several repositories."),
) -> None:
    lines, errors = api.rmi(names, force=force, root=state.root)
    for line in lines:
        print(line)
    for e in errors:
        render.error(e)
    if errors:
        sys.exit(1 if len(errors) < len(names) or lines else ExitCode.MINIDOCKER_FAILED)


@app.command(help="Create a tag TARGET that refers to SOURCE.")
def tag(source: str = typer.Argument(..., metavar="SOURCE[:TAG]"),
        target: str = typer.Argument(..., metavar="TARGET[:TAG]")) -> None:
    api.tag(source, target, root=state.root)


@app.command(help="Show low-level information on containers or images.")
def inspect(
    names: List[str] = typer.Argument(..., metavar="NAME|ID..."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="Not supported yet beyond 'json'."),
) -> None:
    out, failed = [], []
    for name in names:
        try:
            out.append(api.inspect(name, root=state.root))
        except Exception as e:  # docker prints what it found, then the errors
            failed.append(e)
    render.print_json(out)
    for e in failed:
        render.error(e)
    if failed:
        sys.exit(1)
