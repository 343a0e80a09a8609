"""A container's log file, and the loop that fills it from the container's output.

``LogWriter`` writes ``container.log`` in docker's json-file format (``{"log": "...",
"stream": "stdout", "time": "..."}``, one record a line) and rotates it; ``copy_streams``
copies the container's stdout and stderr to the log (and to a terminal, and to attached
clients) until both close. Both are used by a foreground ``run`` (stdio.py) and by the
watcher of a detached one (watch.py), which must stay small: this module imports nothing
but the standard library's smallest parts (no pathlib, no typing).
"""

from __future__ import annotations

import json
import os
import select
import time

TYPE_CHECKING = False  # (typing is not imported: the watcher's memory is counted per container)
if TYPE_CHECKING:
    from minidocker.lazy.notices import LazyNotices
    from minidocker.runtime.console import ConsoleServer


def now_iso() -> str:
    """docker's timestamps: UTC, nanoseconds, a Z."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class LogWriter:
    """``container.log``: each line of each stream a JSON record with its time. With
    ``max_size`` the log is rotated as docker's json-file driver rotates it: when a record
    would take the file past ``max_size`` bytes, ``container.log`` becomes ``container.log.1``
    (``.1`` becomes ``.2`` ...; ``max_file`` files in all, the oldest dropped). ``path``
    None (``--log-driver none``): nothing is kept."""

    def __init__(self, path: str | None, max_size: int | None = None, max_file: int = 1):
        self.path, self.max_size, self.max_file = path, max_size, max_file
        self.f = open(path, "ab", buffering=0) if path is not None else None
        self.size = self.f.tell() if self.f is not None else 0
        self.partial: dict[str, bytes] = {}

    def feed(self, stream: str, data: bytes) -> None:
        if self.f is None:
            return
        buf = self.partial.get(stream, b"") + data
        *lines, rest = buf.split(b"\n")
        for line in lines:
            self._write(stream, line + b"\n")
        self.partial[stream] = rest

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._write(stream, rest)
        self.partial.clear()

    def _write(self, stream: str, line: bytes) -> None:
        rec = {"log": line.decode("utf-8", "replace"), "stream": stream, "time": now_iso()}
        data = (json.dumps(rec) + "\n").encode()
        if self.max_size is not None and self.size and self.size + len(data) > self.max_size:
            self._rotate()
        assert self.f is not None  # (feed and flush write nothing without a file)
        self.f.write(data)
        self.size += len(data)

    def _rotate(self) -> None:
        """container.log.N-1 dropped, each .K renamed .K+1, container.log renamed .1, a new
        container.log (with max_file 1: the one file emptied)."""
        assert self.f is not None and self.path is not None
        self.f.close()
        for k in range(self.max_file - 1, 0, -1):
            older = rotated(self.path, k)
            if not os.path.exists(older):
                continue
            if k + 1 < self.max_file:
                os.replace(older, rotated(self.path, k + 1))
            else:
                os.unlink(older)
        if self.max_file > 1:
            os.replace(self.path, rotated(self.path, 1))
        self.f = open(self.path, "wb", buffering=0)
        self.size = 0


def tell_notices(
    notices: LazyNotices, streams: dict[int, tuple[int, str]], log: LogWriter, console: ConsoleServer | None
) -> None:
    """Each new warning of a lazy layer: to the log and the user's stderr, as stderr."""
    lines = notices.poll()
    if not lines:
        return
    err = next((out for out, name in streams.values() if name == "stderr"), -1)
    for line in lines:
        log.feed("stderr", line)
        if console is not None:
            console.broadcast("stderr", line)
        if err >= 0:
            try:
                write_all(err, line)
            except OSError:
                err = -1


def rotated(path: str, k: int) -> str:
    """The ``k``-th older file of a rotated log: container.log.1 is the one before container.log."""
    return f"{path}.{k}"


def copy_streams(
    streams: dict[int, tuple[int, str]],
    log: LogWriter,
    console: ConsoleServer | None = None,
    notices: LazyNotices | None = None,
) -> None:
    """Copy each of the container's outputs ({fd: (our fd or -1, "stdout"|"stderr")}) to the
    log and to our fd until all of them close. If our fd goes away (``| head``), the log
    still gets everything. A pty master reads EIO once the container's side is closed:
    that is its end of file. A monitor's ``console`` (console.py) gets the output too, and
    its clients are served meanwhile. ``notices``: the warnings of the container's lazy
    layers (lazy/notices.py), checked twice a second and told as its stderr is."""
    while streams:
        if notices is not None:
            tell_notices(notices, streams, log, console)
        timeout = 0.5 if notices is not None else None
        ready, _, _ = select.select(list(streams) + (console.fds() if console else []), [], [], timeout)
        for fd in ready:
            if fd not in streams:
                assert console is not None  # (only its sockets are selected besides the streams)
                console.ready(fd)
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            out_fd, name = streams[fd]
            if not data:
                os.close(fd)
                del streams[fd]
                continue
            log.feed(name, data)
            if console is not None:
                console.broadcast(name, data)
            if out_fd >= 0:
                try:
                    write_all(out_fd, data)
                except BrokenPipeError:
                    streams[fd] = (-1, name)
    log.flush()


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
