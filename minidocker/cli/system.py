"""``system prune``: everything unused, in one command, after one question."""

from __future__ import annotations

import sys

import typer

from minidocker import api
from minidocker.cli import render
from minidocker.cli.app import app, state

system_app = typer.Typer(help="Manage minidocker.", no_args_is_help=True)
app.add_typer(system_app, name="system")


@system_app.command(
    "prune",
    help="Remove unused data: stopped containers, unused networks, dangling images "
    "(with -a: every unused image), build cache and (with --volumes) unused volumes.",
)
def system_prune(
    all_unused: bool = typer.Option(False, "--all", "-a", help="Remove all unused images, not just dangling ones."),
    force: bool = typer.Option(False, "--force", "-f", help="Do not prompt for confirmation."),
    volumes: bool = typer.Option(
        False, "--volumes", help="Prune anonymous volumes no container uses (with -a: every unused volume)."
    ),
) -> None:
    if not force and not _confirmed(all_unused, volumes):
        return
    result = api.system_prune(all_unused, volumes, root=state.root)
    for title, key, prefix in [
        ("Deleted Containers:", "Containers", ""),
        ("Deleted Networks:", "Networks", ""),
        ("Deleted Volumes:", "Volumes", ""),
        ("Deleted Images:", "Images", "deleted: "),
        ("Deleted build cache objects:", "BuildCache", ""),
    ]:
        if result[key]:
            print(title)
            for item in result[key]:
                print(prefix + item)
            print()
    print(f"Total reclaimed space: {render.human_size(result['SpaceReclaimed'])}")


def _confirmed(all_unused: bool, volumes: bool) -> bool:
    """docker's question, on stderr; the answer is read from stdin, a terminal or a pipe
    (``yes | minidocker system prune`` works, as with docker); no answer means no."""
    items = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        items.append(("all" if all_unused else "all anonymous") + " volumes not used by at least one container")
    items += (
        ["all images without at least one container associated to them", "all build cache"]
        if all_unused
        else ["all dangling images", "all dangling build cache"]
    )
    print("WARNING! This will remove:\n" + "".join(f"  - {i}\n" for i in items), file=sys.stderr)
    print("Are you sure you want to continue? [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


@system_app.command("df", help="Show minidocker disk usage.")
def system_df(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show detailed information on space usage."),
    fmt: str | None = typer.Option(None, "--format", help="'table', 'json', 'table TEMPLATE' or a Go template."),
) -> None:
    from minidocker.cli import formatter, listing

    formatter.check_format(fmt)
    usage = api.system_df(root=state.root)
    if verbose and fmt in (None, "", "table"):
        formatter.print_text(_df_verbose(usage))
        return
    fmt = listing.DF_TABLE if fmt in (None, "", "table") else fmt
    formatter.print_text(formatter.format_rows(fmt, listing.df_structs(usage), listing.DF_HEADERS))


def _df_verbose(usage: dict) -> str:
    """``system df -v``: docker's three tables (images, containers, volumes) and the cache."""
    from minidocker.cli import formatter

    sections = [
        ("Images space usage:", "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS"),
        ("Containers space usage:", "CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES"),
        ("Local Volumes space usage:", "VOLUME NAME\tLINKS\tSIZE"),
        ("Build cache usage: 0B", "CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED"),
    ]
    bodies = [_df_images(usage), _df_containers(usage), _df_volumes(usage), []]
    return "\n".join(
        f"{title}\n\n" + formatter.tabwrite("\n".join([header, *rows]) + "\n")
        for (title, header), rows in zip(sections, bodies)
    )


def _df_images(usage: dict) -> list[str]:
    users: dict[str, int] = {}
    for c, _ in usage["ContainerRows"]:
        users[c.spec.image_id] = users.get(c.spec.image_id, 0) + 1
    rows = []
    for r in api.images(root=state.root):
        size = render.human_size(r["Size"])
        created = render.human_ago(r["Created"])
        short = r["ID"].removeprefix("sha256:")[:12]
        rows.append(f"{r['Repository']}\t{r['Tag']}\t{short}\t{created}\t{size}\t0B\t{size}\t{users.get(r['ID'], 0)}")
    return rows


def _df_containers(usage: dict) -> list[str]:
    from minidocker.cli import listing

    rows = []
    for c, size in usage["ContainerRows"]:
        volumes = sum(m.type == "volume" for m in c.spec.volumes)
        command = " ".join(c.spec.argv)
        command = '"' + (command if len(command) <= 20 else command[:19] + "…") + '"'
        status = listing.container_status({"StartedAt": "", "FinishedAt": "", "ExitCode": 0, **c.state})
        created = render.human_ago(c.state.get("Created", ""))
        cells = [c.id[:12], c.spec.image, command, str(volumes), render.human_size(size), created, status, c.name]
        rows.append("\t".join(cells))
    return rows


def _df_volumes(usage: dict) -> list[str]:
    return [f"{name}\t{links}\t{render.human_size(size)}" for name, links, size in usage["VolumeRows"]]


@app.command(help="Show the minidocker version information.")
def version(fmt: str | None = typer.Option(None, "--format", "-f", help="'json' or a Go template.")) -> None:
    from minidocker.cli import formatter

    doc = _version_doc()
    if fmt:
        formatter.print_text(formatter.format_document(fmt, doc))
        return
    c, s = doc["Client"], doc["Server"]
    print(
        f"Client:\n Version:           {c['Version']}\n API version:       {c['ApiVersion']}\n"
        f" Python version:    {c['PythonVersion']}\n OS/Arch:           {c['Os']}/{c['Arch']}\n\n"
        f"Server: {s['Platform']['Name']}\n Engine:\n  Version:          {s['Version']}\n"
        f"  API version:      {s['ApiVersion']}\n  OS/Arch:          {s['Os']}/{s['Arch']}\n"
        f"  Kernel version:   {s['KernelVersion']}"
    )


def _version_doc() -> dict:
    """``docker version``'s document, in docker's keys (``.Client.Version``, ``.Server.Version``)."""
    import os
    import platform

    from minidocker import __version__

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    common = {"Version": __version__, "ApiVersion": "1.43", "Os": "linux", "Arch": arch}
    return {
        "Client": {**common, "PythonVersion": platform.python_version(), "Platform": {"Name": "minidocker"}},
        "Server": {
            **common,
            "Platform": {"Name": "minidocker"},
            "MinAPIVersion": "1.12",
            "KernelVersion": os.uname().release,
            "Components": [{"Name": "Engine", "Version": __version__}],
        },
    }
