"""``network ls``, ``create``, ``rm``, ``inspect``, ``connect``, ``disconnect``, ``prune``."""

from __future__ import annotations

import typer

from minidocker import api
from minidocker.cli.app import state
from minidocker.cli.manage import add_inspect, management_app

network_app = management_app("network")


@network_app.command("ls", help="List networks.")
def network_ls(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only display network IDs."),
    fmt: str | None = typer.Option(None, "--format", help="'table', 'json', 'table TEMPLATE' or a Go template."),
    filters: list[str] = typer.Option([], "--filter", "-f", help="name=, id=, label=, driver=, type=custom|builtin"),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Do not truncate the output."),
) -> None:
    from minidocker.cli import formatter, listing

    wanted = listing.parse_filters(filters, listing.NETWORK_FILTERS)
    formatter.check_format(fmt)
    rows = listing.filter_networks(api.network_ls(root=state.root), wanted)
    if quiet:
        formatter.print_text("".join((n["Id"] if no_trunc else n["Id"][:12]) + "\n" for n in rows))
        return
    if fmt in (None, "", "table"):  # docker's columns (the subnet and bridge: network inspect)
        fmt = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
    contexts = [listing.network_struct(n, trunc=not no_trunc) for n in rows]
    formatter.print_text(formatter.format_rows(fmt, contexts, listing.NETWORK_HEADERS))


@network_app.command("create", help="Create a bridge network.")
def network_create(
    name: str,
    subnet: str | None = typer.Option(None, "--subnet", help="e.g. 10.90.0.0/24"),
    driver: str = typer.Option("bridge", "--driver", "-d", help="Only bridge."),
    internal: bool = typer.Option(False, "--internal", help="No way out: no NAT, no outbound route."),
) -> None:
    if driver != "bridge":
        from minidocker.errors import MinidockerError

        raise MinidockerError(f"plugin {driver!r} not found", hint="minidocker has the bridge driver only")
    print(api.network_create(name, subnet, internal, root=state.root))


@network_app.command("rm", help="Remove networks.")
def network_rm(names: list[str] = typer.Argument(..., metavar="NETWORK...")) -> None:
    """Each name in turn, as docker: an error is printed and the rest still go; exit 1 then."""
    from minidocker.cli import render
    from minidocker.errors import MinidockerError

    failed = False
    for name in names:
        try:
            api.network_rm(name, root=state.root)
        except MinidockerError as e:
            render.error(e)
            failed = True
            continue
        print(name)
    if failed:
        raise typer.Exit(1)


add_inspect(network_app, "network", "{{.IPAM.Config}}")


@network_app.command("connect", help="Connect a container to a network.")
def network_connect(
    network: str,
    container: str,
    alias: list[str] = typer.Option([], "--alias", help="Another name for the container on this network."),
    ip: str | None = typer.Option(None, "--ip", help="The container's IPv4 address on this network."),
) -> None:
    api.network_connect(network, container, alias, ip, root=state.root)


@network_app.command("disconnect", help="Disconnect a container from a network.")
def network_disconnect(
    network: str,
    container: str,
    force: bool = typer.Option(False, "--force", "-f", help="Disconnect even if it is not connected."),
) -> None:
    api.network_disconnect(network, container, force, root=state.root)


@network_app.command("prune", help="Remove all unused networks.")
def network_prune(force: bool = typer.Option(False, "--force", "-f", help="Do not prompt for confirmation.")) -> None:
    if not force:
        answer = input(
            "WARNING! This will remove all custom networks not used by at least one container.\n"
            "Are you sure you want to continue? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            return
    removed = api.network_prune(root=state.root)
    if removed:
        print("Deleted Networks:")
        for name in removed:
            print(name)
