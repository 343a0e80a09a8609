"""``images``, ``rmi``, ``tag`` and ``image inspect``."""

from __future__ import annotations

import json
import sys

import typer

from minidocker import api
from minidocker.cli import render
from minidocker.cli.app import app, state
from minidocker.cli.manage import add_inspect, management_app
from minidocker.errors import MinidockerError


@app.command(help="List images.")
def images(
    repository: str | None = typer.Argument(None, metavar="[REPOSITORY[:TAG]]"),
    all: bool = typer.Option(False, "--all", "-a", help="Show all images (default hides intermediate images)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only show image IDs."),
    digests: bool = typer.Option(False, "--digests", help="Show digests."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output."),
    fmt: str | None = typer.Option(None, "--format", help="'table', 'json', 'table TEMPLATE' or a Go template."),
    filters: list[str] = typer.Option([], "--filter", "-f", help="Filter output based on conditions provided."),
) -> None:
    from minidocker.cli import formatter, listing

    wanted = listing.parse_filters(filters, listing.IMAGE_FILTERS)
    if repository:
        wanted.setdefault("reference", []).append(repository)
    formatter.check_format(fmt)
    rows = listing.filter_images(api.images(root=state.root, all=all), wanted)
    if quiet:
        ids = dict.fromkeys(listing.image_struct(r, trunc=not no_trunc)["ID"] for r in rows)
        formatter.print_text("".join(i + "\n" for i in ids))
        return
    if fmt in (None, "", "table"):
        fmt = "table {{.Repository}}\t{{.Tag}}" + ("\t{{.Digest}}" if digests else "")
        fmt += "\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    contexts = [listing.image_struct(r, trunc=not no_trunc) for r in rows]
    formatter.print_text(formatter.format_rows(fmt, contexts, listing.IMAGE_HEADERS))


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


INSPECT_TYPES = ("container", "image", "volume", "network")


@app.command(help="Return low-level information on containers, images, volumes or networks.")
def inspect(
    names: list[str] = typer.Argument(..., metavar="NAME|ID..."),
    fmt: str | None = typer.Option(None, "--format", "-f", help="'json' or a Go template, e.g. '{{.State.Pid}}'."),
    kind: str | None = typer.Option(None, "--type", help="Only this type: container, image, volume or network."),
    size: bool = typer.Option(False, "--size", "-s", help="Display total file sizes (containers)."),
) -> None:
    if kind is not None and kind not in INSPECT_TYPES:
        from minidocker.errors import MinidockerError

        raise MinidockerError(f'"{kind}" is not a valid value for --type')
    show_inspected(names, lambda name: api.inspect_any(name, kind, root=state.root, size=size), fmt)


def show_inspected(names: list[str], find, fmt: str | None) -> None:
    """docker's inspect output: what was found (an indented JSON array, one compact line for
    ``--format json``, or the template once per object), then one error line per name not
    found, exit 1. A bad template prints nothing but its error (exit 125)."""
    from minidocker.cli import formatter

    tmpl = formatter.compile_template(fmt) if fmt not in (None, "", "json") else None
    found, failed = [], []
    for name in names:
        try:
            found.append(find(name))
        except MinidockerError as e:  # docker prints what it found, then the errors
            failed.append(e)
    if tmpl is not None:
        formatter.print_text("".join(formatter.execute(tmpl, doc) + "\n" for doc in found))
    elif fmt == "json":
        print(json.dumps(found, separators=(",", ":"), ensure_ascii=False))
    else:
        render.print_json(found)
    for e in failed:
        render.error(e)
    if failed:
        sys.exit(1)


image_app = management_app("image")
add_inspect(image_app, "image", "{{.Config.Cmd}}")


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
def info(fmt: str | None = typer.Option(None, "--format", "-f", help="'json' or a Go template.")) -> None:
    doc = api.info(root=state.root)
    if fmt:
        from minidocker.cli import formatter

        formatter.print_text(formatter.format_document(fmt, doc))
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
