"""``events`` (and ``system events``): the store's lifecycle events, as docker's stream.

Without ``--until`` (or with one still to come) the command follows the log until Ctrl-C,
which ends it with exit 0, as docker's. Each event is one line: docker's default

    2024-01-01T00:00:00.000000000Z container start 3f4e... (image=busybox, name=c1)

or ``--format``'s: ``json`` (``{{json .}}``, the event in docker's JSON), or a Go template
over docker's ``events.Message`` fields (``{{.Type}} {{.Action}} {{.Actor.ID}}``,
``{{.Actor.Attributes.name}}``, ``{{.TimeNano}}``).
"""

from __future__ import annotations

import json
import signal
import sys
import time

import typer

from minidocker import api
from minidocker.cli import formatter
from minidocker.cli.app import app, state
from minidocker.cli.gotemplate import Struct, to_json
from minidocker.cli.system import system_app

FILTER_HELP = "type=, container=, image=, event= (action=), label=, network=, volume=, scope=; repeatable."


def default_line(ev: dict) -> str:
    """docker's ``prettyPrintEvent``: time (RFC 3339, nanoseconds), type, action, actor ID,
    and the attributes sorted by key in parentheses."""
    ns = ev.get("timeNano") or ev.get("time", 0) * 10**9
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"
    actor = ev.get("Actor") or {}
    line = f"{stamp} {ev.get('Type', '')} {ev.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


class EventStruct(Struct):
    """An event as docker's templates see it (Go's field names: ``.Status``, ``.ID``,
    ``.From``, ``.Scope``, ``.TimeNano``); ``json`` of it is the event's own JSON."""

    type_name = "events.Message"
    source: dict = {}


def event_struct(ev: dict) -> EventStruct:
    actor = ev.get("Actor") or {}
    s = EventStruct(
        Status=ev.get("status", ""),
        ID=ev.get("id", ""),
        From=ev.get("from", ""),
        Type=ev.get("Type", ""),
        Action=ev.get("Action", ""),
        Actor=Struct(ID=actor.get("ID", ""), Attributes=dict(actor.get("Attributes") or {})),
        Scope=ev.get("scope", ""),
        Time=ev.get("time", 0),
        TimeNano=ev.get("timeNano", 0),
    )
    s.source = ev
    return s


def _json(v) -> str:
    """``json`` of the whole event is its JSON as written (docker's field order); of a part, the engine's."""
    return json.dumps(v.source, separators=(",", ":")) if isinstance(v, EventStruct) else to_json(v)


def events(
    since: str | None = typer.Option(None, "--since", help="Show events since a time: Unix time, RFC 3339, or 10m."),
    until: str | None = typer.Option(None, "--until", help="Stream events until this time (same forms)."),
    filters: list[str] = typer.Option([], "--filter", "-f", help=FILTER_HELP),
    fmt: str | None = typer.Option(None, "--format", help="'json' or a Go template, e.g. '{{.Type}} {{.Action}}'."),
) -> None:
    tmpl = None
    if fmt:
        tmpl = formatter.compile_template("{{json .}}" if fmt == "json" else fmt, {"json": _json})
    stream = api.events(since, until, filters, root=state.root)  # bad times and filters fail here
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))  # Ctrl-C ends the stream: exit 0, as docker
    for ev in stream:
        text = default_line(ev) if tmpl is None else formatter.execute(tmpl, event_struct(ev))
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


HELP = "Get real time events from the store."
app.command("events", help=HELP)(events)
system_app.command("events", help=HELP)(events)
