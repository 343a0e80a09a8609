"""The listings' ``--filter`` and the rows their ``--format`` templates see, as docker's.

**Filters** (``--filter KEY=VALUE``, repeatable) follow docker's rule: several values of one
key are ORed (``-f status=exited -f status=created``), different keys are ANDed, and
``label`` is the exception, each label must hold. A key the command does not know is
``invalid filter 'KEY'`` (exit 125). ``name`` and ``id`` are regular expressions searched
in the name (``/web``, as docker stores names) and the full ID; ``reference`` is a glob on
``REPOSITORY[:TAG]``.

**Rows** are the fields docker's formatter offers for each command (``ps``'s ``.ID .Image
.Command .CreatedAt .RunningFor .Ports .State .Status .Size .Names .Labels .Label "k" .Mounts
.Networks``), as a ``Struct``: a field the command lacks is an error, as in docker.

See it: ``minidocker ps -a -f status=exited -f label=tier --format '{{.Names}} {{.Label "tier"}}'``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from minidocker.cli import render
from minidocker.cli.formatter import struct
from minidocker.errors import MinidockerError


# -- filters --------------------------------------------------------------------------------
def parse_filters(args: list[str], keys: tuple[str, ...]) -> dict[str, list[str]]:
    """``["status=exited", "label=a"]`` -> ``{"status": ["exited"], "label": ["a"]}``."""
    out: dict[str, list[str]] = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq:
            raise MinidockerError(f"bad format of filter '{arg}' (expected name=value)")
        if key.lower() not in keys:
            raise MinidockerError(f"invalid filter '{key}'", hint="filters here: " + ", ".join(keys))
        out.setdefault(key.lower(), []).append(value)
    return out


def keep(rows: list[dict], filters: dict[str, list[str]], holds: Callable[[dict, str, str], bool]) -> list[dict]:
    """The rows for which every key holds for one of its values (``label``: for all)."""

    def ok(row: dict) -> bool:
        for key, values in filters.items():
            test = all if key == "label" else any
            if not test(holds(row, key, v) for v in values):
                return False
        return True

    return [r for r in rows if ok(r)]


def searched(pattern: str, text: str) -> bool:
    """docker's ``Match``: the value equals the text, or is a regexp found in it."""
    if pattern == text:
        return True
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def has_label(labels: dict[str, str] | None, want: str) -> bool:
    key, eq, value = want.partition("=")
    labels = labels or {}
    return key in labels and (not eq or labels[key] == value)


def boolean(key: str, value: str) -> bool:
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise MinidockerError(f"invalid filter '{key}={value}'", hint=f"{key}=true or {key}=false")


# -- ps -------------------------------------------------------------------------------------
PS_FILTERS = ("status", "name", "label", "ancestor", "id", "exited", "network", "volume", "before", "since")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def filter_containers(rows: list[dict], filters: dict[str, list[str]], image_chain: Callable) -> list[dict]:
    """``ps --filter``; ``image_chain(ref)`` is an image's layer chain (``ancestor``)."""
    for s in filters.get("status", []):
        if s not in STATUSES:
            raise MinidockerError(f"invalid filter 'status={s}'", hint="status: " + ", ".join(STATUSES))
    for e in filters.get("exited", []):
        if not e.lstrip("-").isdigit():
            raise MinidockerError(f"invalid filter 'exited={e}'", hint="exited=an exit code")
    bounds = {key: [_created_of(rows, v) for v in filters.get(key, [])] for key in ("before", "since")}
    ancestors = {v: image_chain(v) for v in filters.get("ancestor", [])}

    def holds(r: dict, key: str, value: str) -> bool:
        if key == "status":
            return r["Status"] == value
        if key == "exited":
            return r["Status"] == "exited" and r["ExitCode"] == int(value)
        if key == "name":
            return searched(value, "/" + r["Names"]) or searched(value, r["Names"])
        if key == "id":
            return searched(value, r["ID"])
        if key == "label":
            return has_label(r.get("Labels"), value)
        if key == "ancestor":
            image_id, top = ancestors[value]
            return r["ImageID"] == image_id or r["Image"] == value or (top is not None and top in r["ImageChain"])
        if key == "network":
            return value in r["Networks"]
        if key == "volume":
            return any(value in (m["Source"], m["Destination"]) for m in r["Mounts"] if m["Type"] != "tmpfs")
        created = bounds[key][0] if len(bounds[key]) == 1 else max(bounds[key])
        return r["Created"] < created if key == "before" else r["Created"] > created

    return keep(rows, filters, holds)


def _created_of(rows: list[dict], name: str) -> str:
    for r in rows:
        if name in (r["Names"], r["ID"]) or (len(name) >= 3 and r["ID"].startswith(name)):
            return r["Created"]
    from minidocker.errors import NoSuchContainer

    raise NoSuchContainer(f"No such container: {name}")


PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Label()": "LABEL",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
}


def container_context(r: dict, trunc: bool = True) -> dict[str, Any]:
    """One ``ps`` row as docker's ``ContainerContext`` shows it."""
    labels = r.get("Labels") or {}
    command = r["Command"]
    if trunc and len(command) > 20:
        command = command[:19] + "…"
    mounts = [m["Source"] for m in r.get("Mounts", []) if m["Type"] != "tmpfs"]
    fields = {
        "Command": '"' + command + '"',
        "CreatedAt": go_time(r["Created"]),
        "ID": r["ID"][:12] if trunc else r["ID"],
        "Image": r["Image"],
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "LocalVolumes": str(sum(m["Type"] == "volume" for m in r.get("Mounts", []))),
        "Mounts": ",".join(_trunc(m, 15) if trunc else m for m in mounts),
        "Names": r["Names"],
        "Networks": ",".join(r.get("Networks", [])),
        "Ports": render.ports_text(r["Ports"]),
        "RunningFor": render.human_ago(r["Created"]),
        "Size": _size_text(r),
        "State": r["Status"],
        "Status": container_status(r),
    }
    return fields


def ps_struct(r: dict, trunc: bool = True):
    labels = r.get("Labels") or {}
    return struct("*formatter.ContainerContext", {**container_context(r, trunc), "Label": lambda k: labels.get(k, "")})


def _trunc(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _size_text(r: dict) -> str:
    if "SizeRw" not in r:
        return "0B"
    return f"{render.human_size(r['SizeRw'])} (virtual {render.human_size(r['SizeRootFs'])})"


def container_status(r: dict) -> str:
    """``Up 3 minutes``, ``Exited (0) 2 seconds ago``, ``Created``: docker's STATUS column."""
    if r["Status"] in ("running", "paused"):
        return "Up " + render.human_duration_since(r["StartedAt"]) + (" (Paused)" if r["Status"] == "paused" else "")
    if r["Status"] == "exited":
        return f"Exited ({r['ExitCode']}) {render.human_ago(r['FinishedAt'])}"
    return r["Status"].capitalize()


def go_time(iso: str) -> str:
    """docker's ``CreatedAt``: Go's ``time.Time.String()`` in UTC, ``2024-01-02 15:04:05 +0000 UTC``."""
    if not iso:
        return ""
    try:
        t = datetime.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return iso
    return t.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


# -- images ---------------------------------------------------------------------------------
IMAGE_FILTERS = ("dangling", "label", "reference", "before", "since")
IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "VirtualSize": "VIRTUAL SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}


def filter_images(rows: list[dict], filters: dict[str, list[str]]) -> list[dict]:
    """``images --filter``: dangling=, label=, reference= (a glob), before=/since= an image."""
    for v in filters.get("dangling", []):
        boolean("dangling", v)
    bounds = {key: [_image_created(rows, v) for v in filters.get(key, [])] for key in ("before", "since")}

    def holds(r: dict, key: str, value: str) -> bool:
        if key == "dangling":
            return (r["Tag"] == "<none>") == boolean(key, value)
        if key == "label":
            return has_label(r.get("Labels"), value)
        if key == "reference":
            name = r["Repository"]
            return fnmatch.fnmatchcase(name, value) or fnmatch.fnmatchcase(f"{name}:{r['Tag']}", value)
        created = min(bounds[key]) if key == "before" else max(bounds[key])
        return r["Created"] < created if key == "before" else r["Created"] > created

    return keep(rows, filters, holds)


def _image_created(rows: list[dict], name: str) -> str:
    repo, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "latest")
    for r in rows:
        if (r["Repository"], r["Tag"]) == (repo, tag) or r["ID"].removeprefix("sha256:").startswith(
            name.removeprefix("sha256:")
        ):
            return r["Created"]
    from minidocker.errors import ImageNotFound

    raise ImageNotFound(f"No such image: {name}")


def image_struct(r: dict, trunc: bool = True):
    image_id = r["ID"].removeprefix("sha256:")[:12] if trunc else r["ID"]
    size = render.human_size(r["Size"])
    return struct(
        "formatter.imageContext",
        {
            "Containers": "N/A",
            "CreatedAt": go_time(r["Created"]),
            "CreatedSince": render.human_ago(r["Created"]),
            "Digest": r["Digest"],
            "ID": image_id,
            "Repository": r["Repository"],
            "SharedSize": "N/A",
            "Size": size,
            "Tag": r["Tag"],
            "UniqueSize": "N/A",
            "VirtualSize": size,
        },
    )


# -- networks, volumes, history, stats ------------------------------------------------------
NETWORK_FILTERS = ("name", "id", "label", "driver", "type", "scope")
NETWORK_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "Label()": "LABEL",
    "CreatedAt": "CREATED AT",
}
BUILTIN_NETWORKS = ("bridge", "host", "none")


def filter_networks(rows: list[dict], filters: dict[str, list[str]]) -> list[dict]:
    for t in filters.get("type", []):
        if t not in ("custom", "builtin"):
            raise MinidockerError(f"invalid filter 'type={t}'", hint="type=custom or type=builtin")

    def holds(n: dict, key: str, value: str) -> bool:
        if key == "name":
            return searched(value, n["Name"])
        if key == "id":
            return searched(value, n["Id"])
        if key == "label":
            return has_label(n.get("Labels"), value)
        if key == "driver":
            return n["Driver"] == value
        if key == "scope":
            return value == "local"
        return (n["Name"] in BUILTIN_NETWORKS) == (value == "builtin")

    return keep(rows, filters, holds)


def network_struct(n: dict, trunc: bool = True):
    labels = n.get("Labels") or {}
    return struct(
        "formatter.networkContext",
        {
            "CreatedAt": go_time(n.get("Created", "")),
            "Driver": n["Driver"],
            "ID": n["Id"][:12] if trunc else n["Id"],
            "IPv6": "false",
            "Internal": "true" if n.get("Internal") else "false",
            "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
            "Name": n["Name"],
            "Scope": "local",
            "Label": lambda k: labels.get(k, ""),
        },
    )


VOLUME_FILTERS = ("dangling", "name", "label", "driver")
VOLUME_HEADERS = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Label()": "LABEL",
    "Links": "LINKS",
    "Size": "SIZE",
}


def filter_volumes(rows: list[dict], filters: dict[str, list[str]], dangling: Callable[[], set[str]]) -> list[dict]:
    """``volume ls --filter``; ``dangling()`` names the volumes no container uses."""
    for v in filters.get("dangling", []):
        boolean("dangling", v)
    unused = dangling() if "dangling" in filters else set()

    def holds(v: dict, key: str, value: str) -> bool:
        if key == "dangling":
            return (v["Name"] in unused) == boolean(key, value)
        if key == "name":
            return searched(value, v["Name"])
        if key == "driver":
            return v["Driver"] == value
        return has_label(v.get("Labels"), value)

    return keep(rows, filters, holds)


def volume_struct(v: dict):
    labels = v.get("Labels") or {}
    return struct(
        "formatter.volumeContext",
        {
            "Driver": v["Driver"],
            "Labels": ",".join(f"{k}={val}" for k, val in labels.items()),
            "Links": "N/A",
            "Mountpoint": v.get("Mountpoint", ""),
            "Name": v["Name"],
            "Scope": v.get("Scope", "local"),
            "Size": "N/A",
            "Label": lambda k: labels.get(k, ""),
        },
    )


HISTORY_HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}


def history_struct(r: dict, trunc: bool = True, human: bool = True):
    image_id = r["ID"] if not trunc or r["ID"] == "<missing>" else r["ID"].removeprefix("sha256:")[:12]
    created_by = r["CreatedBy"].replace("\t", " ")
    if trunc and len(created_by) > 45:
        created_by = created_by[:44] + "…"
    return struct(
        "formatter.historyContext",
        {
            "ID": image_id,
            "CreatedSince": render.human_ago(r["Created"]) if human else r["Created"],
            "CreatedAt": r["Created"] if not human else go_time(r["Created"]),
            "CreatedBy": created_by,
            "Size": render.human_size(r["Size"]) if human else str(r["Size"]),
            "Comment": r["Comment"],
        },
    )


def show_history(rows: list[dict], fmt: str, trunc: bool, human: bool) -> None:
    """``history --format``: the rows as docker's ``historyContext`` shows them."""
    from minidocker.cli import formatter

    contexts = [history_struct(r, trunc, human) for r in rows]
    formatter.print_text(formatter.format_rows(fmt, contexts, HISTORY_HEADERS))


STATS_HEADERS = {
    "Container": "CONTAINER",
    "ID": "CONTAINER ID",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}


def stats_struct(r: dict):
    limit = r["MemLimit"]
    return struct(
        "formatter.statsContext",
        {
            "BlockIO": "--",
            "CPUPerc": f"{r['CPUPerc']:.2f}%",
            "Container": r["ID"][:12],
            "ID": r["ID"][:12],
            "MemPerc": f"{r['MemUsage'] / limit * 100:.2f}%" if limit else "--",
            "MemUsage": f"{render.human_size(r['MemUsage'])} / {render.human_size(limit) if limit else 'unlimited'}",
            "Name": r["Name"],
            "NetIO": "--",
            "PIDs": str(r["PIDs"]),
        },
    )


DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"


def df_structs(usage: dict[str, Any]) -> list:
    """``system df``'s four rows: images, containers, local volumes, build cache."""
    out = []
    for kind, key in (
        ("Images", "Images"),
        ("Containers", "Containers"),
        ("Local Volumes", "Volumes"),
        ("Build Cache", "BuildCache"),
    ):
        u = usage[key]
        share = f" ({u['Reclaimable'] * 100 // u['Size']}%)" if u["Size"] and key != "BuildCache" else ""
        out.append(
            struct(
                "*formatter.diskUsageContext",
                {
                    "Type": kind,
                    "TotalCount": str(u["TotalCount"]),
                    "Active": str(u["Active"]),
                    "Size": render.human_size(u["Size"]),
                    "Reclaimable": render.human_size(u["Reclaimable"]) + share,
                },
            )
        )
    return out
