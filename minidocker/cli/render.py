"""The only module that imports rich: tables, progress bars, errors.

Everything the CLI prints goes through here, so the library stays free of presentation and a
student reading ``api.py`` sees only what a command does.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from minidocker.errors import MinidockerError, printable


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def error(e: MinidockerError | str, hint: str | None = None, debug: bool = False) -> None:
    """``Error: ...`` on one line of stderr (and the hint on a second one)."""
    msg = printable(e.message if isinstance(e, MinidockerError) else str(e))
    hint = hint or (e.hint if isinstance(e, MinidockerError) else None)
    hint = printable(hint) if hint else None
    if debug and isinstance(e, BaseException):
        import traceback

        traceback.print_exception(e, file=sys.stderr)
    if sys.stderr.isatty():
        con = _console(stderr=True)
        con.print(f"[bold red]Error:[/] {escape(msg)}")
        if hint:
            con.print(f"[dim]hint: {escape(hint)}[/]")
    else:
        print(f"Error: {msg}", file=sys.stderr)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)


def unexpected_error(e: Exception, debug: bool = False) -> None:
    """An exception that is not a MinidockerError, still as one ``Error:`` line: an OSError
    as its text and path, anything else as an internal error (``--debug``: the traceback)."""
    if debug:
        import traceback

        traceback.print_exception(e, file=sys.stderr)
    if isinstance(e, OSError):
        error(f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}")
    else:
        error(f"internal error: {type(e).__name__}: {e}", hint=None if debug else "run with --debug for the traceback")


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=4))


def table(columns: list[str], rows: Iterable[list[str]]) -> None:
    """A docker-style table: plain, left-aligned columns separated by three spaces."""
    rows = list(rows)
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]

    def line(cells):
        return "   ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    print(line(columns))
    for r in rows:
        print(line(r))


def human_size(n: float) -> str:
    """Sizes as docker prints them: decimal units, three significant digits."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


def confirmed(warning: str) -> bool:
    """docker's prune question, on stderr; the answer from stdin (a terminal or a pipe: ``yes |``
    works); no answer means no."""
    print(f"WARNING! This will remove {warning}.\nAre you sure you want to continue? [y/N] ", end="", file=sys.stderr)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def pruned(title: str, items: list[str], freed: int, prefix: str = "") -> None:
    """A prune's report: ``Deleted X:`` and each item (if any), then the space reclaimed."""
    if items:
        print(title)
        for item in items:
            print(prefix + item)
        print()
    print(f"Total reclaimed space: {human_size(freed)}")


def human_ago(iso: str, now: float | None = None) -> str:
    """``2 hours ago`` from an RFC 3339 time, the way docker words it."""
    if not iso:
        return "N/A"
    try:
        t = datetime.fromisoformat(iso.replace("Z", "+00:00")[:26] + ("+00:00" if iso.endswith("Z") else ""))
    except ValueError:
        try:
            t = datetime.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            return iso
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    secs = (now or time.time()) - t.timestamp()
    return human_duration(secs) + " ago"


def human_duration_since(iso: str, now: float | None = None) -> str:
    """``3 minutes`` since an RFC 3339 time (``Up 3 minutes``)."""
    text = human_ago(iso, now)
    return text[:-4] if text.endswith(" ago") else text


def human_duration(secs: float) -> str:
    s = int(secs)
    if s < 1:
        return "Less than a second"
    if s < 60:
        return f"{s} seconds" if s != 1 else "1 second"
    m = s // 60
    if m < 60:
        return "About a minute" if m == 1 else f"{m} minutes"
    h = round(s / 3600)
    if h < 48:
        return "About an hour" if h == 1 else f"{h} hours"
    d = s // 86400
    if d < 14:
        return f"{d} days"
    if d < 60:
        return f"{d // 7} weeks"
    if d < 730:
        return f"{d // 30} months"
    return f"{d // 365} years"


def ports_text(ports: list[dict]) -> str:
    """``ps``'s PORTS column: ``0.0.0.0:8080->80/tcp, ...``."""
    return ", ".join(f"{p['host_ip'] or '0.0.0.0'}:{p['host_port']}->{p['port']}/{p['proto']}" for p in ports)


def explain_to_stderr() -> None:
    """``--explain``: narrate each kernel-facing step as it happens, one line each."""
    import time as _time

    from minidocker import api
    from minidocker.cli.explain import describe_event

    start = _time.monotonic()
    import os

    fd = os.dup(2)  # close-on-exec: the container's program never sees it

    def narrate(ev: dict) -> None:
        ms = (ev["t"] - start) * 1000
        try:
            os.write(fd, f"[{ms:7.1f} ms] pid {os.getpid():<6} {describe_event(ev)}\n".encode())
        except OSError:  # the reader went away (``... 2>&1 | head``): the run goes on, unexplained
            api.listen_events(None)

    api.listen_events(narrate)


def pause_guide_to_stderr(step: str) -> None:
    """``--pause-at``: when the container's PID 1 stops, say where and what to look at."""
    import os

    from minidocker import api
    from minidocker.cli.explain import describe_pause

    api.pause_at(step, lambda facts: os.write(2, describe_pause(facts).encode()))


def stats_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    cols = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"]
    out = []
    for r in rows:
        limit = r["MemLimit"]
        mem = f"{human_size(r['MemUsage'])} / {human_size(limit) if limit else 'unlimited'}"
        perc = f"{r['MemUsage'] / limit * 100:.2f}%" if limit else "--"
        out.append([r["ID"][:12], r["Name"], f"{r['CPUPerc']:.2f}%", mem, perc, str(r["PIDs"])])
    return cols, out


def live(make_table) -> None:
    """Redraw a table about once a second until Ctrl-C (``stats`` without --no-stream)."""
    from rich.live import Live
    from rich.table import Table

    def build():
        cols, rows = make_table()
        t = Table(*cols, box=None, pad_edge=False)
        for r in rows:
            t.add_row(*r)
        return t

    try:
        with Live(build(), console=_console(), auto_refresh=False) as view:
            while True:
                view.update(build(), refresh=True)
    except KeyboardInterrupt:
        pass


def stream(sample) -> None:
    """``stats --format`` without --no-stream: a new sample about once a second until Ctrl-C,
    each over the last on a terminal (docker clears the screen), one after another in a pipe."""
    clear = "\033[2J\033[H" if sys.stdout.isatty() else ""
    try:
        while True:
            text = sample()
            sys.stdout.write(clear + text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # (``stats --format ... | head -1``)
        pass


class PullProgress:
    """Renders ``PullEvent``s: a rich bar per layer on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.progress = None
        self.tasks: dict[str, Any] = {}
        self.last: dict[str, str] = {}

    def __enter__(self) -> PullProgress:
        if self.tty and not self.quiet:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[status]}"),
                console=_console(stderr=True),
                transient=False,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """End the live display (before a fork, and before a container takes the terminal)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __call__(self, ev) -> None:
        if self.quiet:
            return
        if not ev.id:
            self._line(ev.status)
            return
        if self.progress is not None:
            task = self.tasks.get(ev.id)
            if task is None:
                task = self.tasks[ev.id] = self.progress.add_task(ev.id, total=ev.total or None, status=ev.status)
            self.progress.update(task, completed=ev.current, total=ev.total or None, status=ev.status)
        elif self.last.get(ev.id) != ev.status:  # plain: one line per change of status
            self.last[ev.id] = ev.status
            print(f"{ev.id}: {ev.status}", file=sys.stderr, flush=True)

    def _line(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(escape(text))
        else:
            print(text, file=sys.stderr, flush=True)
