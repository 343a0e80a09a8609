"""``login`` and ``logout``."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from minidocker import api
from minidocker.cli.app import app


@app.command(help="Log in to a registry (credentials are saved in a 0600 file).")
def login(
    server: Optional[str] = typer.Argument(None, metavar="[SERVER]"),
    username: Optional[str] = typer.Option(None, "--username", "-u"),
    password: Optional[str] = typer.Option(None, "--password", "-p"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    if password_stdin:
        password = sys.stdin.read().rstrip("\n")
    print(api.login(server or "", username, password))


@app.command(help="Log out from a registry.")
def logout(server: Optional[str] = typer.Argument(None, metavar="[SERVER]")) -> None:
    print(api.logout(server))
