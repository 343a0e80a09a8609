"""The store's event log: what ``minidocker events`` streams, as docker's daemon does.

Docker's daemon sees every change it makes and publishes each as an *event*: a container
was created, started, died with exit code 1; an image was tagged; a network was connected.
minidocker has no daemon, so the processes that make the changes (the CLI, a container's
monitor) append the events to one file of the store, ``events.jsonl``, one JSON object a
line in docker's shape::

    {"status": "start", "id": "<container id>", "from": "busybox",
     "Type": "container", "Action": "start",
     "Actor": {"ID": "<container id>", "Attributes": {"image": "busybox", "name": "c1"}},
     "scope": "local", "time": 1700000000, "timeNano": 1700000000123456789}

**Many writers, no lock.** Each event is one ``write`` of one whole line on a file opened
with ``O_APPEND``: the kernel moves the offset to the end and writes the bytes as one step,
so two processes appending at once never interleave their lines (POSIX promises this for
a regular file; a line of a few hundred bytes is written whole). A writer that crashes
leaves either its whole line or nothing.

**Bounded.** Docker keeps its last events in memory; we keep the log from growing without
end by *rotating* it: a writer that finds the file past ``MAX_BYTES`` renames it to
``events.jsonl.1`` (replacing the older one), under ``locks/events.lock`` so that two
writers do not rotate twice. Readers read ``.1`` then the live file, and a follower that
sees the live file replaced drains the old one first. So about the last two files' worth of
events (a few thousand) can be asked for with ``--since``.

Writing costs a container start one ``open``, ``write``, ``fstat`` and ``close`` (json and
os are loaded already); nothing here is imported but by the writers.

See it: ``minidocker run --rm busybox true; tail -n 3 /var/lib/minidocker/events.jsonl``.
"""

from __future__ import annotations

import json
import os
import time

from minidocker.paths import Layout

MAX_BYTES = 512 * 1024  # about 1500 events of ~350 bytes in the live file, as many in .1


def event(type_: str, action: str, actor_id: str, attributes: dict[str, str], now_ns: int) -> dict:
    """One event in docker's shape (``events.Message``): the legacy ``status``/``id``/``from``
    fields are there for container and image events only, as docker's."""
    ev: dict = {}
    if type_ in ("container", "image"):
        ev["status"], ev["id"] = action, actor_id
        if type_ == "container" and "image" in attributes:
            ev["from"] = attributes["image"]
    ev.update(
        Type=type_,
        Action=action,
        Actor={"ID": actor_id, "Attributes": {k: str(attributes[k]) for k in sorted(attributes)}},  # a Go map: sorted
        scope="local",
        time=now_ns // 1_000_000_000,
        timeNano=now_ns,
    )
    return ev


def record(root, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None) -> None:
    """Append one event to the store's log at ``root``. Never raises: an event that cannot
    be written (a full disk, a store being removed) must not fail the change it tells of."""
    line = json.dumps(event(type_, action, actor_id, attributes or {}, time.time_ns()), separators=(",", ":"))
    path = Layout(root).event_log
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        os.write(fd, (line + "\n").encode())
        size = os.fstat(fd).st_size
    except OSError:
        return
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        rotate(root)


def rotate(root) -> None:
    """``events.jsonl`` -> ``events.jsonl.1``, once: under the lock, only if the file is
    still past the limit (another writer may have rotated it while we waited)."""
    import fcntl

    layout = Layout(root)
    try:
        lock = os.open(layout.events_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.stat(layout.event_log).st_size > MAX_BYTES:
            os.rename(layout.event_log, layout.rotated_event_log)
    except OSError:
        pass
    finally:
        os.close(lock)
