"""``events``: the lives of containers as a stream of events, read from their records.

Docker's daemon sends an event at each step of a container's life (create, start, die,
destroy, pause, unpause). minidocker has no daemon, and a container's start must not pay for
writing events no one may read, so the events are *derived*: every container's record
already says when it was created, started and finished (state.json), and a watcher that
reads the records again and again sees each change as it happens (``watch``). Past events
(``--since``) come from the records that are still there (``past``): the last start and die
of each container; a container removed before the watcher looked left no trace.

An event is docker's JSON message: ``{"Type": "container", "Action": "die", "Actor": {"ID":
..., "Attributes": {"exitCode": "0", "image": ..., "name": ...}}, "time": ..., "timeNano": ...}``.

See it: ``minidocker events`` in one terminal, ``minidocker run --rm busybox true`` in another.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from minidocker.runtime.container import Container, ContainerStore
from minidocker.runtime.logs import record_time

Snapshot = dict[str, dict[str, Any]]  # container ID -> what its record says now
POLL_SECONDS = 0.05


def snapshot(store: ContainerStore) -> Snapshot:
    return {c.id: facts(c) for c in store.all()}


def facts(c: Container) -> dict[str, Any]:
    st = c.state
    return {
        "name": c.name,
        "image": c.spec.image,
        "status": st.get("Status", ""),
        "created": st.get("Created", ""),
        "started": st.get("StartedAt", ""),
        "finished": st.get("FinishedAt", ""),
        "code": st.get("ExitCode", 0),
    }


def event(cid: str, action: str, f: dict[str, Any], when: str | float | None) -> dict[str, Any]:
    """docker's message for ``action`` of container ``cid`` at ``when`` (a record's time,
    a Unix time, or None: now)."""
    t = record_time(when) if isinstance(when, str) and when else (when if isinstance(when, float) else time.time())
    attributes = {"image": f["image"], "name": f["name"]}
    if action == "die":
        attributes["exitCode"] = str(f["code"])
    return {
        "status": action,
        "id": cid,
        "from": f["image"],
        "Type": "container",
        "Action": action,
        "Actor": {"ID": cid, "Attributes": dict(sorted(attributes.items()))},
        "scope": "local",
        "time": int(t),
        "timeNano": int(t * 1e9),
    }


def past(snap: Snapshot, since: float, until: float | None) -> list[dict[str, Any]]:
    """The events the records still tell of, in [``since``, ``until``), oldest first."""
    out = []
    for cid, f in snap.items():
        for action, key in (("create", "created"), ("start", "started"), ("die", "finished")):
            if f[key] and (action != "die" or f["status"] in ("exited", "dead")):
                out.append(event(cid, action, f, f[key]))
    out.sort(key=lambda e: e["timeNano"])
    return [e for e in out if e["timeNano"] >= since * 1e9 and (until is None or e["timeNano"] < until * 1e9)]


def changes(before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
    """The events between two snapshots: new containers, starts, deaths, pauses, removals."""
    out = []
    for cid, f in after.items():
        old = before.get(cid)
        if old is None:
            out.append(event(cid, "create", f, f["created"]))
        if f["started"] and (old is None or f["started"] != old["started"]):
            out.append(event(cid, "start", f, f["started"]))
        if old is not None and old["status"] == "running" and f["status"] == "paused":
            out.append(event(cid, "pause", f, None))
        if old is not None and old["status"] == "paused" and f["status"] == "running":
            out.append(event(cid, "unpause", f, None))
        if f["finished"] and f["status"] == "exited" and (old is None or f["finished"] != old["finished"]):
            out.append(event(cid, "die", f, f["finished"]))
    for cid, f in before.items():
        if cid not in after:
            out.append(event(cid, "destroy", f, None))
    return out


def watch(
    store: ContainerStore, since: float | None, until: float | None, clock: Callable[[], float] = time.time
) -> Iterator[dict[str, Any]]:
    """The past events from ``since`` (if given), then each change as it happens, until
    ``until`` (None: for ever)."""
    seen = snapshot(store)
    if since is not None:
        yield from past(seen, since, until)
    while until is None or clock() < until:
        time.sleep(POLL_SECONDS)
        now = snapshot(store)
        yield from changes(seen, now)
        seen = now
