"""``login`` and ``logout``."""

from __future__ import annotations

import sys

import typer

from minidocker import api
from minidocker.cli.app import app


@app.command(help="Log in to a registry (credentials are saved in a 0600 file).")
def login(
    server: str | None = typer.Argument(None, metavar="[SERVER]"),
    username: str | None = typer.Option(None, "--username", "-u"),
    password: str | None = typer.Option(None, "--password", "-p"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    if password_stdin:
        password = sys.stdin.read().rstrip("\n")
    print(api.login(server or "", username, password))


@app.command(help="Log out from a registry.")
def logout(server: str | None = typer.Argument(None, metavar="[SERVER]")) -> None:
    print(api.logout(server))
