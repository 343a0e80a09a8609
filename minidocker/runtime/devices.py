"""Devices: which device nodes a container sees, and which it may open.

Two walls decide it, and ``--device`` moves both:

* the node: a container's /dev is a fresh tmpfs holding a few nodes (rootfs.mount_dev);
  ``--device /dev/sdb:/dev/xvdb`` adds one more, made with mknod(2) with the host node's
  type, major and minor numbers, mode and owner;
* the device cgroup: even a node the container makes itself (with CAP_MKNOD) opens only if
  the cgroup allows its type and numbers (v1: ``devices.allow``; v2: the BPF program of
  linux/bpf.py). ``--device`` allows its node with its permissions (r, w, m: read, write,
  mknod); ``--device-cgroup-rule 'c 42:* rmw'`` allows numbers without making a node.

Both flags are read here, and this module is imported only when one of them is given.

See it: ``minidocker run --rm --device /dev/null:/dev/mynull:r busybox sh -c 'ls -l /dev/mynull;
echo x > /dev/mynull'`` (the write is refused: the rule says ``r``).
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from minidocker.errors import MinidockerError

RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")  # docker's own pattern


def valid_permissions(text: str) -> bool:
    """Docker's test of a device's permissions: some of r, w, m, each at most once."""
    return bool(text) and set(text) <= set("rwm") and len(set(text)) == len(text)


def parse_device(text: str) -> dict[str, str]:
    """``--device HOST[:CONTAINER][:PERMS]`` as docker's HostConfig.Devices entry. Two parts
    are HOST:PERMS when the second reads as permissions, else HOST:CONTAINER; the
    container's path must be absolute. The errors are docker's."""
    bad = f'invalid argument "{text}" for "--device" flag: '
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise MinidockerError(bad + f"bad format for path: {text}")
    host, container, perms = parts[0], parts[0], "rwm"
    if len(parts) == 2:
        if valid_permissions(parts[1]):
            perms = parts[1]
        else:
            container = parts[1]
    elif len(parts) == 3:
        container, perms = parts[1], parts[2]
        if not valid_permissions(perms):
            raise MinidockerError(bad + f"bad mode specified: {perms}")
    if not container.startswith("/"):
        raise MinidockerError(bad + f"{container} is not an absolute path")
    return {"PathOnHost": host, "PathInContainer": os.path.normpath(container), "CgroupPermissions": perms}


def check_cgroup_rule(text: str) -> str:
    """``--device-cgroup-rule 'c 42:* rmw'``: TYPE MAJOR:MINOR ACCESS, checked as docker does."""
    if not RULE.match(text):
        raise MinidockerError(
            f'invalid argument "{text}" for "--device-cgroup-rule" flag: invalid device cgroup format \'{text}\''
        )
    return text


def device_nodes(device: dict[str, str]) -> list[dict[str, Any]]:
    """The nodes one ``--device`` makes: its host node, or with a directory every device
    node under it (at the same place under the container's path), as docker does. A path
    that is neither: docker's error."""
    host = device["PathOnHost"]
    try:
        st = os.stat(host)
    except OSError as e:
        raise MinidockerError(
            f'error gathering device information while adding custom device "{host}": {(e.strerror or str(e)).lower()}'
        ) from None
    if stat.S_ISDIR(st.st_mode):
        return _nodes_under(host, device["PathInContainer"], device["CgroupPermissions"])
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise MinidockerError(
            f'error gathering device information while adding custom device "{host}": not a device node'
        )
    return [_node(st, host, device["PathInContainer"], device["CgroupPermissions"])]


def _node(st: os.stat_result, host: str, path: str, perms: str) -> dict[str, Any]:
    kind = "b" if stat.S_ISBLK(st.st_mode) else "c"
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return {
        "host": host,
        "path": path,
        "mode": st.st_mode,  # the type bits and the permission bits, as the host's node has them
        "major": major,
        "minor": minor,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "rule": f"{kind} {major}:{minor} {perms}",
    }


def _nodes_under(host_dir: str, container_dir: str, perms: str) -> list[dict[str, Any]]:
    nodes = []
    for top, _dirs, files in os.walk(host_dir):
        for name in sorted(files):
            host = os.path.join(top, name)
            try:
                st = os.lstat(host)
            except FileNotFoundError:  # gone while we looked (a pty closed under /dev/pts)
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                inside = os.path.join(container_dir, os.path.relpath(host, host_dir))
                nodes.append(_node(st, host, inside, perms))
    return nodes


def container_devices(spec: Any) -> list[dict[str, Any]]:
    """Every node a container's ``--device`` flags make (read again at each start: the
    host's numbers are the ones that count)."""
    return [node for device in spec.devices for node in device_nodes(device)]


def cgroup_rules(spec: Any) -> tuple[str, ...]:
    """The device cgroup rules a container adds to docker's defaults: one per ``--device``
    node, then its ``--device-cgroup-rule`` lines."""
    return tuple(node["rule"] for node in container_devices(spec)) + tuple(spec.device_cgroup_rules)
