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

See it: ``minidocker run -d --name t busybox sh -c 'while :; do date; sleep 1; done'``, then
``tail -f /var/lib/minidocker/containers/<id>/container.log`` beside ``minidocker logs -f t``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

Record = tuple[str, str, str]  # (stream, time, line)
POLL_SECONDS = 0.05


def parse_record(line: bytes) -> Record:
    """One json-file line as (stream, time, line)."""
    rec = json.loads(line)
    return rec["stream"], rec["time"], rec["log"]


def read_log(path: Path, tail: int | None = None, running: Callable[[], bool] | None = None) -> Iterator[Record]:
    """The records of the log at ``path`` (the last ``tail`` of them, if given); with
    ``running``, then the records written later, until ``running()`` says the container
    has exited. A log that does not exist (the container never ran detached) is empty."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        lines = f.readlines()
        partial = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""  # being written
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        for line in lines:
            yield parse_record(line)
        if running is not None:
            yield from follow_log(f, running, partial)


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
