"""``logs``: reading a container's log, and following it while the container runs.

The monitor of a detached container (``runtime/monitor.py``) appends each line the
container writes to ``containers/<id>/container.log`` as one JSON object, docker's json-file
format: ``{"log": "hi\\n", "stream": "stdout", "time": "2024-05-01T10:00:00.000000000Z"}``.
Reading is therefore a matter of lines: ``--tail N`` keeps the last N, and ``--follow``
keeps reading past the end of the file, as ``tail -f`` does. A read at the end of a file
returns nothing rather than waiting, so following polls: read what is there, and when
nothing is, ask whether the container still runs; once it has exited, what is left in the
file is the last of its output.

A line can be read while the monitor is halfway through writing it: such a read ends
without a newline, and waits for the rest before it is decoded.

``--since`` and ``--until`` keep the records of a time span, read from each record's own
time; a bound is written as docker takes it (``parse_time_bound``): a duration before now
(``10m``, ``1h30m``), a Unix time (``1714557600``, ``1714557600.5``) or an RFC 3339 time
(``2024-05-01T10:00:00Z``, ``2024-05-01T12:00:00+02:00``, ``2024-05-01``: UTC when no zone).

See it: ``minidocker run -d --name t busybox sh -c 'while :; do date; sleep 1; done'``, then
``tail -f /var/lib/minidocker/containers/<id>/container.log`` beside ``minidocker logs -f t``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

Record = tuple[str, str, str]  # (stream, time, line)
POLL_SECONDS = 0.05


def parse_record(line: bytes) -> Record:
    """One json-file line as (stream, time, line)."""
    rec = json.loads(line)
    return rec["stream"], rec["time"], rec["log"]


def read_log(
    path: Path,
    tail: int | None = None,
    running: Callable[[], bool] | None = None,
    since: float | None = None,
    until: float | None = None,
) -> Iterator[Record]:
    """The records of the log at ``path`` written in [``since``, ``until``) if given, the last
    ``tail`` of them if given; with ``running`` (and no ``until``), then the records written
    later, until ``running()`` says the container has exited. A log that does not exist
    (the container never ran detached) is empty."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        lines = f.readlines()
        partial = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""  # being written
        records: Iterable[Record] = map(parse_record, [*older_lines(path), *lines])
        if since is not None or until is not None:
            records = in_span(records, since, until)
        if tail is not None:
            records = list(records)[-tail:] if tail > 0 else []
        yield from records
        if running is not None and until is None:
            yield from in_span(follow_log(f, running, partial), since, None)


def older_lines(path: Path) -> list[bytes]:
    """The lines of a rotated log's older files (``--log-opt max-size``: container.log.1 is
    the newest of them), oldest first."""
    older = sorted(
        (int(p.name.rsplit(".", 1)[1]), p) for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()
    )
    lines: list[bytes] = []
    for _, p in reversed(older):
        try:
            lines += p.read_bytes().splitlines(keepends=True)
        except FileNotFoundError:
            continue  # rotated away meanwhile
    return lines


def follow_log(f: BinaryIO, running: Callable[[], bool], buf: bytes = b"") -> Iterator[Record]:
    """Records appended to ``f`` from where it stands (``buf``: the start of a line read
    already), until the container exits."""
    while True:
        chunk = f.readline()
        if chunk:
            buf += chunk
            if buf.endswith(b"\n"):  # a whole line: the writer has finished it
                yield parse_record(buf)
                buf = b""
            continue
        if not running():
            for line in (buf + f.read()).splitlines():  # its last words, written before it exited
                yield parse_record(line)
            return
        time.sleep(POLL_SECONDS)


DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h))+")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_time_bound(text: str, now: float) -> float:
    """``--since``/``--until``'s value as a Unix time: Go's duration syntax counts back from
    ``now``; else a Unix time; else an RFC 3339 time or date."""
    from datetime import UTC, datetime

    from minidocker.errors import MinidockerError

    t = text.strip()
    if DURATION.fullmatch(t):
        return now - sum(float(n) * UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", t))
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    try:
        when = datetime.fromisoformat(shorten_fraction(t).replace("Z", "+00:00"))
    except ValueError:
        raise MinidockerError(
            f'invalid value for "since"/"until": {text!r} is not a duration, Unix time or RFC 3339 time'
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def shorten_fraction(text: str) -> str:
    """A time's fraction of a second cut to the microseconds Python's datetime holds
    (our records, like docker's, have nanoseconds)."""
    return re.sub(r"(\.\d{6})\d+", r"\1", text)


def record_time(when: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(shorten_fraction(when).replace("Z", "+00:00")).timestamp()


def in_span(records: Iterable[Record], since: float | None, until: float | None) -> Iterator[Record]:
    """The records written at ``since`` or later and before ``until`` (either may be None)."""
    for rec in records:
        t = record_time(rec[1])
        if (since is None or t >= since) and (until is None or t < until):
            yield rec
