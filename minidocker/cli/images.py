"""``images``, ``rmi``, ``tag`` and ``image inspect``."""

from __future__ import annotations

import json
import sys

import typer

from minidocker import api
from minidocker.cli import render
from minidocker.cli.app import app, state


@app.command(help="List images.")
def images(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only show image IDs."),
    digests: bool = typer.Option(False, "--digests", help="Show digests."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output."),
    fmt: str | None = typer.Option(None, "--format", help="'json' for one JSON object per line."),
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
            print(
                json.dumps(
                    {
                        "Repository": r["Repository"],
                        "Tag": r["Tag"],
                        "Digest": r["Digest"],
                        "ID": show_id(r["ID"]),
                        "CreatedAt": r["Created"],
                        "CreatedSince": render.human_ago(r["Created"]),
                        "Size": render.human_size(r["Size"]),
                        "VirtualSize": render.human_size(r["Size"]),
                    }
                )
            )
        return
    if fmt:
        raise typer.BadParameter("only --format json is supported", param_hint="--format")
    cols = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    render.table(
        cols,
        (
            [r["Repository"], r["Tag"]]
            + ([r["Digest"]] if digests else [])
            + [show_id(r["ID"]), render.human_ago(r["Created"]), render.human_size(r["Size"])]
            for r in rows
        ),
    )


@app.command(help="Remove one or more images.")
def rmi(
    names: list[str] = typer.Argument(..., metavar="IMAGE..."),
    force: bool = typer.Option(False, "--force", "-f", help="Remove even if referenced in several repositories."),
) -> None:
    lines, errors = api.rmi(names, force=force, root=state.root)
    for line in lines:
        print(line)
    for e in errors:
        render.error(e)
    if errors:
        sys.exit(1)  # docker's code for a failed rmi, some names removed or none


@app.command(help="Create a tag TARGET that refers to SOURCE.")
def tag(
    source: str = typer.Argument(..., metavar="SOURCE[:TAG]"), target: str = typer.Argument(..., metavar="TARGET[:TAG]")
) -> None:
    api.tag(source, target, root=state.root)


@app.command(help="Show low-level information on containers or images.")
def inspect(
    names: list[str] = typer.Argument(..., metavar="NAME|ID..."),
    fmt: str | None = typer.Option(None, "--format", "-f", help="Not supported yet beyond 'json'."),
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


image_app = typer.Typer(help="Manage images.", no_args_is_help=True)
app.add_typer(image_app, name="image")


@image_app.command("prune", help="Remove dangling images (with -a: every image no container uses).")
def image_prune(
    all_unused: bool = typer.Option(False, "--all", "-a", help="Remove all unused images, not just dangling ones."),
    force: bool = typer.Option(False, "--force", "-f", help="Do not prompt for confirmation."),
) -> None:
    what = "all images without at least one container associated to them" if all_unused else "all dangling images"
    if not force and not render.confirmed(what):
        return
    deleted, freed = api.image_prune(all_unused, root=state.root)
    render.pruned("Deleted Images:", deleted, freed, prefix="deleted: ")


@app.command(help="Show what this host offers containers, and what the store holds.")
def info(fmt: str | None = typer.Option(None, "--format", help="'json' for one JSON object.")) -> None:
    doc = api.info(root=state.root)
    if fmt == "json":
        print(json.dumps(doc))
        return
    labels = [
        ("Containers", "Containers"),
        (" Running", "ContainersRunning"),
        (" Stopped", "ContainersStopped"),
        ("Images", "Images"),
        ("Server Version", "ServerVersion"),
        ("Storage Driver", "Driver"),
        ("Cgroup Version", "CgroupVersion"),
        ("Cgroup Controllers", "CgroupControllers"),
        ("Security Options", "SecurityOptions"),
        ("Kernel Version", "KernelVersion"),
        ("Architecture", "Architecture"),
        ("CPUs", "NCPU"),
        ("Total Memory", "MemTotal"),
        ("Root Dir", "DockerRootDir"),
    ]
    for label, key in labels:
        value = doc[key]
        if key == "MemTotal":
            value = render.human_size(value)
        elif isinstance(value, list):
            value = ", ".join(value)
        print(f"{label}: {value}")
