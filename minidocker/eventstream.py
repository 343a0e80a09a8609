"""Reading the store's event log (eventlog.py) as ``docker events`` does: a time window
(``--since``, ``--until``), filters (``--filter``), and following the log as it grows.

Three pure parts and one loop:

- ``parse_time`` reads docker's forms of a point in time (its ``timetypes.GetTimestamp``):
  a Go duration before now (``10m``, ``1h30m``), a Unix time (``1700000000.5``), or an RFC
  3339 date or date-time, with or without a zone (without one, the local zone);
- ``parse_filters`` and ``matches`` are docker's ``daemon/events/filter.go``: values of one
  key are ORed, different keys ANDed, but every ``label=`` must hold; ``container=``,
  ``network=`` and ``volume=`` match the actor's ID or name exactly or by prefix; ``image=``
  matches the image's ID or name, with or without its tag;
- ``read_events`` yields the events of the log in a window, then, when asked to follow,
  polls the live file for new lines until the window closes or the caller stops.

See it: ``minidocker events --since 10m --until 0s --filter type=container``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from minidocker.errors import MinidockerError
from minidocker.paths import Layout

GO_DURATION = re.compile(r"([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$")
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
UNIX_TIME = re.compile(r"(\d+)(?:\.(\d{1,9}))?$")
RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:T(\d\d)(?::(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?)?([zZ]|[+-]\d\d:\d\d)?$")
FILTER_KEYS = ("container", "event", "image", "label", "network", "scope", "type", "volume")


def parse_time(value: str, now_ns: int) -> int:
    """``--since``/``--until``'s value as nanoseconds since the epoch."""
    if value == "0" or GO_DURATION.match(value):
        sign = -1 if value.startswith("-") else 1
        parts = DURATION_PART.findall(value)
        return now_ns - sign * sum(round(float(n) * UNIT_NS[u]) for n, u in parts)
    m = UNIX_TIME.match(value)
    if m:
        return int(m[1]) * 10**9 + int((m[2] or "0").ljust(9, "0"))
    m = RFC3339.match(value)
    if not m:
        raise MinidockerError(f'failed to parse value as time or duration: "{value}"')
    y, mo, d, h, mi, s = (int(g or 0) for g in m.groups()[:6])
    frac = int((m[7] or "0").ljust(9, "0"))
    zone = m[8]
    if zone is None:  # the local zone, as docker's ParseInLocation(time.Local)
        seconds = int(time.mktime((y, mo, d, h, mi, s, 0, 0, -1)))
    else:
        import calendar

        offset = 0 if zone in "zZ" else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:]) * 60)
        seconds = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - offset
    return seconds * 10**9 + frac


def parse_filters(args: list[str]) -> dict[str, set[str]]:
    """``--filter key=value`` flags as ``{key: values}``; ``action=`` is ``event=``."""
    wanted: dict[str, set[str]] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        key = key.strip().lower()
        key = "event" if key == "action" else key
        if not sep or key not in FILTER_KEYS:
            raise MinidockerError(f"Invalid filter '{arg}'", hint="keys: " + ", ".join(FILTER_KEYS))
        wanted.setdefault(key, set()).add(value)
    return wanted


def _fuzzy(wanted: dict[str, set[str]], key: str, *sources: str) -> bool:
    """docker's ``Args.FuzzyMatch``: no such filter, or a value equal to or a prefix of a source."""
    values = wanted.get(key)
    return not values or any(src and src.startswith(v) for v in values for src in sources)


def _exact(wanted: dict[str, set[str]], key: str, *sources: str) -> bool:
    values = wanted.get(key)
    return not values or any(src in values for src in sources)


def _strip_tag(name: str) -> str:
    """``busybox:1.36`` -> ``busybox`` (a port's colon, ``host:5000/img``, is no tag)."""
    head, sep, tail = name.rpartition(":")
    return head if sep and "/" not in tail else name


def _labels(wanted: dict[str, set[str]], attributes: dict[str, str]) -> bool:
    """docker's ``MatchKVList``: every ``label=k`` or ``label=k=v`` holds."""
    for value in wanted.get("label", ()):
        k, sep, v = value.partition("=")
        if k not in attributes or (sep and attributes[k] != v):
            return False
    return True


def matches(ev: dict[str, Any], wanted: dict[str, set[str]]) -> bool:
    """Whether event ``ev`` passes the filters (docker's ``Filter.Include``)."""
    actor = ev.get("Actor") or {}
    aid, attrs = actor.get("ID", ""), actor.get("Attributes") or {}
    name = attrs.get("name", "")
    action = ev.get("Action", "")
    events = wanted.get("event", set())
    if events & {"exec_create", "exec_start", "health_status"}:
        event_ok = _fuzzy(wanted, "event", action)  # docker's rule for actions with a ": cmd" tail
    else:
        event_ok = _exact(wanted, "event", action)
    image = attrs.get("name" if ev.get("Type") == "image" else "image", "")
    return (
        event_ok
        and _exact(wanted, "type", ev.get("Type", ""))
        and _exact(wanted, "scope", ev.get("scope", ""))
        and all(_fuzzy(wanted, key, aid, name) for key in ("container", "network", "volume"))
        and _exact(wanted, "image", aid, image, _strip_tag(aid), _strip_tag(image))
        and _labels(wanted, attrs)
    )


def _lines(f) -> Iterator[dict[str, Any]]:
    """The whole lines of ``f`` from where it stands (a line not ended yet is left for later);
    a line that is not JSON (a damaged log) is skipped."""
    while True:
        at = f.tell()
        line = f.readline()
        if not line.endswith(b"\n"):
            f.seek(at)
            return
        try:
            yield json.loads(line)
        except ValueError:
            continue


def read_events(
    root: str,
    since_ns: int | None,
    until_ns: int | None,
    wanted: dict[str, set[str]],
    follow: bool,
    clock: Callable[[], int] = time.time_ns,
    poll: float = 0.05,
) -> Iterator[dict[str, Any]]:
    """The events in ``[since, until]`` that pass ``wanted``, oldest first; with ``follow``,
    then the new ones as they are written, until ``until`` passes (or forever)."""
    layout = Layout(root)
    path = str(layout.event_log)
    live = _open(path)
    if since_ns is not None or until_ns is not None:  # the past is read only when asked for
        old = _open(str(layout.rotated_event_log))
        for source in (old, live):
            if source is not None:
                yield from _window(_lines(source), since_ns, until_ns, wanted)
        if old is not None:
            old.close()
    elif live is not None:
        live.seek(0, os.SEEK_END)  # plain `events`: from now on
    while follow and (until_ns is None or clock() <= until_ns):
        if live is not None:
            yield from _window(_lines(live), since_ns, until_ns, wanted)
        if _replaced(path, live):  # rotated (or made for the first time): drain, then reopen
            if live is not None:
                yield from _window(_lines(live), since_ns, until_ns, wanted)
                live.close()
            live = _open(path)
            continue
        time.sleep(poll)
    if live is not None:
        live.close()


def _window(events, since_ns, until_ns, wanted) -> Iterator[dict[str, Any]]:
    for ev in events:
        t = ev.get("timeNano", 0)
        if (since_ns is None or t >= since_ns) and (until_ns is None or t <= until_ns) and matches(ev, wanted):
            yield ev


def _open(path: str):
    try:
        return open(path, "rb")  # noqa: SIM115 - kept open while following
    except FileNotFoundError:
        return None


def _replaced(path: str, live) -> bool:
    """Whether the live file is another one than ``live`` (a writer rotated the log)."""
    try:
        ino = os.stat(path).st_ino
    except FileNotFoundError:
        return False
    return live is None or os.fstat(live.fileno()).st_ino != ino
