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
