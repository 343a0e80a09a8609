"""``diff``, ``commit``, ``history`` and ``build``: images out of containers."""

from __future__ import annotations

import sys

import typer

from minidocker import api
from minidocker.cli import render
from minidocker.cli.app import app, state
from minidocker.errors import MinidockerError

TRUE, FALSE = ("true", "1", "t", "yes"), ("false", "0", "f", "no")


@app.command(help="Inspect changes to files or directories on a container's filesystem.")
def diff(container: str) -> None:
    for line in api.diff(container, root=state.root):
        print(line)


@app.command(
    context_settings={"ignore_unknown_options": True},
    help="Create a new image from a container's changes. "
    "-p, --pause[=true|false]: pause the container during commit (default true). "
    "-q, --quiet: print only the new image's ID (as podman's).",
)
def commit(
    args: list[str] = typer.Argument(..., metavar="CONTAINER [REPOSITORY[:TAG]]"),
    message: str = typer.Option("", "--message", "-m", help="Commit message."),
    author: str = typer.Option("", "--author", "-a", help='Author (e.g. "Jane Doe <jane@example.com>").'),
    change: list[str] = typer.Option([], "--change", "-c", help="Apply a Dockerfile instruction to the image."),
    compression: str = typer.Option(
        "gzip", "--compression", help="Compression of the new layer: gzip or zstd (zstd: an OCI manifest)."
    ),
) -> None:
    pause, rest = True, []
    for a in args:  # docker's bool flag: -p, --pause, --pause=false
        if a in ("-p", "--pause"):
            pause = True
        elif a in ("-q", "--quiet"):
            continue  # the image ID is all commit prints: -q is accepted for scripts that pass it
        elif a.startswith(("--pause=", "-p=")):
            value = a.split("=", 1)[1].lower()
            if value not in TRUE + FALSE:
                raise MinidockerError(f'invalid argument "{value}" for "-p, --pause" flag: give true or false')
            pause = value in TRUE
        elif a.startswith("-") and a != "-":
            raise MinidockerError(f"unknown flag: {a}", hint="see 'minidocker commit --help'")
        else:
            rest.append(a)
    if len(rest) not in (1, 2):
        raise MinidockerError(
            '"commit" requires at least 1 and at most 2 arguments',
            hint="Usage: minidocker commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
        )
    print(
        api.commit(
            rest[0],
            rest[1] if len(rest) == 2 else None,
            root=state.root,
            message=message,
            author=author,
            changes=change,
            pause=pause,
            compression=compression,
        )
    )


@app.command(help="Show the history of an image.")
def history(
    image: str,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only show image IDs."),
    no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output."),
    human: bool = typer.Option(True, "--human/--no-human", "-H", help="Sizes and dates in human readable format."),
    fmt: str | None = typer.Option(None, "--format", help="'table', 'json', 'table TEMPLATE' or a Go template."),
) -> None:
    if fmt not in (None, "", "table"):
        from minidocker.cli.listing import show_history

        show_history(api.history(image, root=state.root), fmt, not no_trunc, human)
        return
    rows = api.history(image, root=state.root)

    def show_id(i: str) -> str:
        return i if no_trunc or i == "<missing>" else i.removeprefix("sha256:")[:12]

    if quiet:
        for r in rows:
            print(show_id(r["ID"]))
        return

    def created_by(r) -> str:
        text = r["CreatedBy"].replace("\t", " ")
        return text if no_trunc or len(text) <= 45 else text[:44] + "…"

    render.table(
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        (
            [
                show_id(r["ID"]),
                render.human_ago(r["Created"]) if human else r["Created"],
                created_by(r),
                render.human_size(r["Size"]) if human else str(r["Size"]),
                r["Comment"],
            ]
            for r in rows
        ),
    )


@app.command(
    help="Build an image from a Dockerfile. PATH is the build context; with '-', stdin is the "
    "context as a tar (plain, gzip, bzip2 or xz), or a Dockerfile and no context. -f - reads "
    "the Dockerfile from stdin, with PATH as the context."
)
def build(
    context: str = typer.Argument(..., metavar="PATH"),
    tags: list[str] = typer.Option([], "--tag", "-t", help="Name and optionally a tag (name:tag)."),
    file: str | None = typer.Option(None, "--file", "-f", help="Name of the Dockerfile (default PATH/Dockerfile)."),
    build_args: list[str] = typer.Option([], "--build-arg", help="Set a build-time variable (KEY=VALUE)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the cache."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the image ID."),
    target: str | None = typer.Option(None, "--target", help="Set the target build stage to build."),
    labels: list[str] = typer.Option([], "--label", help="Set metadata for an image (KEY=VALUE)."),
    ulimits: list[str] = typer.Option([], "--ulimit", help="Ulimit options for RUN (NAME=SOFT[:HARD])."),
    estargz: bool = typer.Option(False, "--estargz", help="Then convert the image's layers to eStargz (lazy pull)."),
) -> None:
    def say(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    image_id = api.build(
        None if context == "-" else context,
        tags=tags,
        dockerfile=file,
        stdin=sys.stdin.buffer.read() if "-" in (context, file) else None,  # build - / build -f - PATH
        build_args=build_args,
        no_cache=no_cache,
        root=state.root,
        say=say,
        quiet=quiet,
        target=target,
        labels=labels,
        ulimits=ulimits,
        estargz=estargz,
    )
    if quiet:
        print(image_id)
    sys.stdout.flush()
