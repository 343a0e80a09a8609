"""``--change`` / ``-c``: Dockerfile instructions applied to an image config (import).

``minidocker import -c 'CMD ["/bin/sh"]' -c 'ENV A=1' rootfs.tar`` sets the run settings a
plain rootfs tar does not carry. The instructions are the ones docker accepts there, each a
field of the config's ``config`` object::

    CMD ["a", "b"] | CMD a b        Cmd         (shell form -> ["/bin/sh", "-c", "a b"])
    ENTRYPOINT ...                  Entrypoint  (same two forms)
    ENV K=V [K2=V2...] | ENV K V    Env
    EXPOSE 80[/tcp] ...             ExposedPorts
    LABEL K=V ...                   Labels
    USER u[:g]                      User
    VOLUME ["/d"] | VOLUME /d ...   Volumes
    WORKDIR /path                   WorkingDir
    STOPSIGNAL SIGTERM              StopSignal
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from minidocker.errors import MinidockerError

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL")


class InvalidChange(MinidockerError):
    """A ``--change`` that is not a supported Dockerfile instruction."""


def _json_or_shell(rest: str) -> list[str]:
    """The exec form (a JSON array of strings) or the shell form (run by /bin/sh -c)."""
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", rest]


def _pairs(rest: str, what: str) -> list[tuple[str, str]]:
    """``K=V K2="a b"``, or the old one-pair form ``K V with spaces``."""
    words = shlex.split(rest)
    if words and "=" not in words[0]:
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise InvalidChange(f"{what} needs a value: {what} {rest}")
        return [(key, value.strip())]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise InvalidChange(f"{what} wants KEY=VALUE, got {w!r}")
        out.append((key, value))
    return out


def apply_change(config: dict[str, Any], change: str) -> None:
    """Apply one instruction to ``config`` (the image config's ``config`` object) in place."""
    instruction, _, rest = change.strip().partition(" ")
    name, rest = instruction.upper(), rest.strip()
    if name not in SUPPORTED:
        raise InvalidChange(f"{instruction} is not a valid change command",
                            hint=f"use one of {', '.join(SUPPORTED)}")
    if not rest:
        raise InvalidChange(f"{name} needs an argument")
    if name == "CMD":
        config["Cmd"] = _json_or_shell(rest)
    elif name == "ENTRYPOINT":
        config["Entrypoint"] = _json_or_shell(rest)
    elif name == "ENV":
        env = [e for e in config.get("Env") or []]
        for key, value in _pairs(rest, "ENV"):
            env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
        config["Env"] = env
    elif name == "LABEL":
        labels = dict(config.get("Labels") or {})
        labels.update(_pairs(rest, "LABEL"))
        config["Labels"] = labels
    elif name == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        for p in rest.split():
            port, _, proto = p.partition("/")
            if not port.isdigit():
                raise InvalidChange(f"invalid port in EXPOSE: {p!r}")
            ports[f"{port}/{proto or 'tcp'}"] = {}
        config["ExposedPorts"] = ports
    elif name == "VOLUME":
        volumes = dict(config.get("Volumes") or {})
        paths = _json_or_shell(rest)
        for v in (rest.split() if paths[:2] == ["/bin/sh", "-c"] else paths):
            volumes[v] = {}
        config["Volumes"] = volumes
    elif name == "USER":
        config["User"] = rest
    elif name == "WORKDIR":
        config["WorkingDir"] = rest
    elif name == "STOPSIGNAL":
        config["StopSignal"] = rest


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    for change in changes:
        apply_change(config, change)
    return config
