"""``volume create``, ``volume ls``, ``volume inspect``, ``volume rm``, ``volume prune``."""

from __future__ import annotations

import typer

from minidocker import api
from minidocker.cli import render
from minidocker.cli.app import state
from minidocker.cli.manage import add_inspect, management_app

volume_app = management_app("volume")


@volume_app.command("create", help="Create a volume.")
def volume_create(
    name: str | None = typer.Argument(None, metavar="[VOLUME]"),
    driver: str = typer.Option("local", "--driver", "-d", help="Only local."),
    labels: list[str] = typer.Option([], "--label", help="Set metadata for a volume (K=V)."),
    options: list[str] = typer.Option([], "--opt", "-o", help="The driver's options: type=, device=, o=."),
) -> None:
    print(api.volume_create(name, driver, labels, options, root=state.root))


@volume_app.command("ls", help="List volumes.")
def volume_ls(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only display volume names."),
    filters: list[str] = typer.Option([], "--filter", "-f", help="dangling=true|false, name=, label=, driver="),
    fmt: str | None = typer.Option(None, "--format", help="'table', 'json', 'table TEMPLATE' or a Go template."),
) -> None:
    from minidocker.cli import formatter, listing

    wanted = listing.parse_filters(filters, listing.VOLUME_FILTERS)
    formatter.check_format(fmt)

    def dangling() -> set[str]:
        return {v["Name"] for v in api.volume_ls(["dangling=true"], root=state.root)}

    rows = listing.filter_volumes(api.volume_ls(root=state.root), wanted, dangling)
    if quiet:
        formatter.print_text("".join(v["Name"] + "\n" for v in rows))
        return
    if fmt in (None, "", "table"):
        fmt = "table {{.Driver}}\t{{.Name}}"
    formatter.print_text(formatter.format_rows(fmt, [listing.volume_struct(v) for v in rows], listing.VOLUME_HEADERS))


add_inspect(volume_app, "volume", "{{.Mountpoint}}")


@volume_app.command("rm", help="Remove volumes (refused while a container uses one).")
def volume_rm(
    names: list[str] = typer.Argument(..., metavar="VOLUME..."),
    force: bool = typer.Option(False, "--force", "-f", help="No error for a volume that does not exist."),
) -> None:
    for name in api.volume_rm(names, force=force, root=state.root):
        print(name)


PRUNE_WARNINGS = {  # docker 23+'s words: without -a, prune takes anonymous volumes only
    False: "anonymous local volumes not used by at least one container",
    True: "all local volumes not used by at least one container",
}


@volume_app.command("prune", help="Remove unused anonymous volumes (with -a: every unused volume).")
def volume_prune(
    all_unused: bool = typer.Option(False, "--all", "-a", help="All unused volumes, not just anonymous ones."),
    force: bool = typer.Option(False, "--force", "-f", help="Do not prompt for confirmation."),
) -> None:
    if not force and not render.confirmed(PRUNE_WARNINGS[all_unused]):
        return
    removed, size = api.volume_prune(all_unused, root=state.root)
    render.pruned("Deleted Volumes:", removed, size)
