"""``network ls``, ``network create``, ``network rm``, ``network inspect``."""

from __future__ import annotations

import json

import typer

from minidocker import api
from minidocker.cli.app import app, state

network_app = typer.Typer(help="Manage networks.", no_args_is_help=True)
app.add_typer(network_app, name="network")


@network_app.command("ls", help="List networks.")
def network_ls(quiet: bool = typer.Option(False, "--quiet", "-q", help="Only display network IDs.")) -> None:
    rows = api.network_ls(root=state.root)
    if quiet:
        for n in rows:
            print(n["Id"][:12])
        return
    print(f"{'NETWORK ID':<15}{'NAME':<20}{'DRIVER':<10}{'SUBNET':<18}BRIDGE")
    for n in rows:
        print(f"{n['Id'][:12]:<15}{n['Name']:<20}{n['Driver']:<10}{n['Subnet']:<18}{n['Bridge']}")


@network_app.command("create", help="Create a bridge network.")
def network_create(
    name: str,
    subnet: str | None = typer.Option(None, "--subnet", help="e.g. 10.90.0.0/24"),
    driver: str = typer.Option("bridge", "--driver", "-d", help="Only bridge."),
) -> None:
    if driver != "bridge":
        from minidocker.errors import MinidockerError

        raise MinidockerError(f"plugin {driver!r} not found", hint="minidocker has the bridge driver only")
    print(api.network_create(name, subnet, root=state.root))


@network_app.command("rm", help="Remove networks.")
def network_rm(names: list[str] = typer.Argument(..., metavar="NETWORK...")) -> None:
    for name in names:
        api.network_rm(name, root=state.root)
        print(name)


@network_app.command("inspect", help="Show a network as JSON.")
def network_inspect(names: list[str] = typer.Argument(..., metavar="NETWORK...")) -> None:
    print(json.dumps([api.network_inspect(n, root=state.root) for n in names], indent=4))
