"""Volumes: a container's data that outlives the container (docker's ``local`` driver).

A volume is a directory the store keeps, ``volumes/<name>/_data``, and its record,
``volumes/<name>/volume.json`` (driver, labels, options, creation time). A container that
uses one gets ``_data`` bind-mounted at its path, inside the container's own mount
namespace (rootfs.mount_volumes): what it writes there lands in ``_data``, not in its
overlay's upper dir, so it stays when the container is removed, and ``commit`` leaves it
out. The first container to mount an empty volume fills it with the image's files at that
path (docker's copy-up, ``cp -a``: owners, modes, symlinks, xattrs), unless ``nocopy``.

``volume create --opt`` gives the local driver's options, which change what is mounted:
``type=tmpfs,device=tmpfs,o=size=1m`` a fresh tmpfs (its files last as long as the
container), ``type=none,o=bind,device=/srv/x`` a host directory, any other type what
mount(8) would mount with ``-t TYPE -o O DEVICE``.

The records change under ``locks/volumes.lock``; a volume is made whole in
``volumes/.new-*`` and renamed into place. Removing one (``volume rm``, ``prune``) holds
the containers' lock first, then the volumes' (always in that order), so no container can
be created with a volume while it goes; a volume any container uses, running or stopped,
is refused (docker's "volume is in use").

See it: ``minidocker run --rm --network none -v data:/data busybox sh -c 'echo hi > /data/f'``,
then ``sudo cat /var/lib/minidocker/volumes/data/_data/f`` and ``minidocker volume inspect data``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from minidocker import eventlog
from minidocker.errors import Conflict, MinidockerError, NoSuchVolume
from minidocker.fsutil import locked, make_private_dir, read_json, remove_tree, write_json
from minidocker.paths import NEW_VOLUME_PREFIX, Layout, VolumeLayout, prepare_store
from minidocker.runtime.mounts import ANONYMOUS_LABEL, VOLUME_NAME, MountSpec, check_options, check_volume_name

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import Any


class VolumeStore:
    """The volumes of the store at ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.layout = Layout(self.root)

    def locked(self):
        return locked(self.layout.volumes_lock)

    def names(self) -> list[str]:
        d = self.layout.volumes_dir
        return sorted(p.name for p in d.iterdir() if VOLUME_NAME.fullmatch(p.name)) if d.is_dir() else []

    def volume(self, name: str) -> VolumeLayout:
        if not VOLUME_NAME.fullmatch(name):  # never a path: "../x" names nothing of ours
            raise NoSuchVolume(name)
        return self.layout.volume(name)

    def get(self, name: str) -> dict[str, Any]:
        """docker's ``volume inspect`` of one volume."""
        v = self.volume(name)
        record = read_json(v.record)
        if not isinstance(record, dict):
            raise NoSuchVolume(name)
        return {**record, "Mountpoint": str(v.data)}

    def all(self) -> list[dict[str, Any]]:
        out = []
        for name in self.names():
            try:
                out.append(self.get(name))
            except NoSuchVolume:
                continue  # removed, or still being made, meanwhile
        return out

    def create(
        self, name: str | None = None, labels: dict[str, str] | None = None, options: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """``volume create``: a new volume (a name of 64 random hex digits if none is
        given), or the one of that name as it is, as docker answers a second create."""
        from minidocker.runtime.mounts import new_volume_name

        name = check_volume_name(name) if name else new_volume_name()
        check_options(options or {})
        prepare_store(self.root)
        with self.locked():
            return self._create_locked(name, labels or {}, options or {})

    def _create_locked(self, name: str, labels: dict[str, str], options: dict[str, str]) -> dict[str, Any]:
        v = self.layout.volume(name)
        if v.record.exists():
            return self.get(name)
        for p in self.layout.volumes_dir.iterdir():
            if p.name.startswith(NEW_VOLUME_PREFIX):  # a killed create's or rm's (we hold the lock)
                remove_tree(p)
        if v.dir.exists():  # a directory without a record: made again
            remove_tree(v.dir)
        tmp = VolumeLayout(self.layout.new_volume(os.urandom(8).hex()))
        make_private_dir(tmp.dir)
        tmp.data.mkdir(mode=0o755)
        os.chmod(tmp.data, 0o755)  # (mkdir obeys the umask): what the container sees at its mount point
        record = {
            "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "Driver": "local",
            "Labels": dict(labels),
            "Name": name,
            "Options": dict(options),
            "Scope": "local",
        }
        write_json(tmp.record, record)
        os.rename(tmp.dir, v.dir)  # the volume appears whole, or not at all
        from minidocker.linux.events import emit

        emit("volume_create", name=name, path=str(v.data))
        eventlog.record(self.root, "volume", "create", name, {"driver": "local"})
        return {**record, "Mountpoint": str(v.data)}

    def ensure(self, m: MountSpec) -> dict[str, Any]:
        """The volume a mount names, made if it is not there (``-v NAME:/path`` on first use,
        an anonymous one with docker's label; ``--mount``'s volume-opt and volume-label)."""
        labels = {ANONYMOUS_LABEL: ""} if m.anonymous else dict(m.volume_labels)
        try:
            return self.get(m.source)
        except NoSuchVolume:
            return self.create(m.source, labels, dict(m.volume_opts))

    def ensure_all(self, mounts: list[MountSpec]) -> None:
        for m in mounts:
            if m.type == "volume":
                self.ensure(m)

    def users(self) -> dict[str, list[str]]:
        """Volume name -> the IDs of the containers (running or stopped) that mount it."""
        from minidocker.runtime.container import ContainerStore

        containers = ContainerStore(self.root)
        out: dict[str, list[str]] = {}
        for cid in containers.ids():
            try:
                spec = containers.load(cid).spec
            except MinidockerError:
                continue
            for m in spec.volumes:
                if m.type == "volume":
                    out.setdefault(m.source, []).append(cid)
        return out

    def remove(self, names: list[str], force: bool = False, keep_used: bool = False) -> list[str]:
        """``volume rm [-f]``: each volume no container uses; one in use is refused (or, with
        ``keep_used``, kept quietly), a missing one too unless ``force``."""
        from minidocker.runtime.container import ContainerStore

        removed = []
        with ContainerStore(self.root).locked(), self.locked():
            users = self.users()
            for name in names:
                if users.get(name):
                    if keep_used:
                        continue
                    raise Conflict(f"remove {name}: volume is in use - [{', '.join(users[name])}]")
                v = self.volume(name)
                if not v.record.exists():
                    if force:
                        continue
                    raise NoSuchVolume(name)
                self._remove_locked(v)
                removed.append(name)
        return removed

    def _remove_locked(self, v: VolumeLayout) -> None:
        """The record goes first (the volume is gone for every reader), then its files."""
        gone = self.layout.new_volume("rm-" + os.urandom(8).hex())
        os.rename(v.dir, gone)
        remove_tree(gone)
        from minidocker.linux.events import emit

        emit("volume_remove", name=v.dir.name)
        eventlog.record(self.root, "volume", "destroy", v.dir.name, {"driver": "local"})

    def prune(self, all_unused: bool = False) -> tuple[list[str], int]:
        """``volume prune [-a]``: the volumes no container uses, only anonymous ones unless
        ``all_unused`` (docker 23+); returns their names and the bytes freed."""
        from minidocker.fsutil import disk_usage

        with_label = [v for v in self.all() if all_unused or ANONYMOUS_LABEL in (v.get("Labels") or {})]
        used = self.users()
        unused = [v["Name"] for v in with_label if not used.get(v["Name"])]
        size = disk_usage(*(self.layout.volume(n).dir for n in unused))
        return self.remove(unused, force=True, keep_used=True), size

    def remove_anonymous(self, mounts: list[MountSpec]) -> list[str]:
        """``rm -v`` and ``--rm``: the anonymous volumes a removed container made (named ones
        stay), unless another container still uses one (``--volumes-from``)."""
        names = [m.source for m in mounts if m.type == "volume" and m.anonymous]
        return self.remove(names, force=True, keep_used=True) if names else []


FILTERS = ("dangling", "name", "label", "driver")


def filter_volumes(volumes: list[dict[str, Any]], filters: list[str], users) -> list[dict[str, Any]]:
    """``volume ls --filter``: each ``KEY=VALUE`` must hold (docker's keys: dangling=true|false,
    name= a part of the name, label=KEY or KEY=VALUE, driver=)."""
    parsed = []
    for f in filters:
        key, eq, value = f.partition("=")
        if key not in FILTERS or not eq or (key == "dangling" and value.lower() not in ("true", "false", "1", "0")):
            raise MinidockerError(f"invalid filter '{f}'", hint="use dangling=true|false, name=, label=, driver=")
        parsed.append((key, value))
    used = users() if any(k == "dangling" for k, _ in parsed) else {}

    def holds(v: dict[str, Any], key: str, value: str) -> bool:
        if key == "dangling":
            return (not used.get(v["Name"])) == (value.lower() in ("true", "1"))
        if key == "name":
            return value in v["Name"]
        if key == "driver":
            return v["Driver"] == value
        k, eq, want = value.partition("=")
        labels = v.get("Labels") or {}
        return k in labels and (not eq or labels[k] == want)

    return [v for v in volumes if all(holds(v, k, val) for k, val in parsed)]


def rootfs_volumes(c, copy: bool = True) -> list:
    """The container's mounts as ``rootfs.Volume`` entries: host paths to bind, volumes
    resolved to their ``_data`` (or to what their options mount), tmpfs mounts; ``copy``:
    copy-up into empty volumes (not for ``cp`` into a stopped container)."""
    from minidocker.runtime import rootfs

    store = VolumeStore(c.layout.store.root)
    owner = (c.spec.idmap["uid"], c.spec.idmap["gid"]) if c.spec.idmap else None
    out = []
    for m in c.spec.volumes:
        if m.type == "bind":
            out.append(rootfs.Volume(m.source, m.target, m.readonly, propagation=m.propagation))
        elif m.type == "tmpfs":
            out.append(rootfs.Volume("tmpfs", m.target, m.readonly, fstype="tmpfs", data=m.data or "mode=1777"))
        else:
            out.append(volume_mount(store, store.ensure(m), m, copy and not m.nocopy, owner))
    return out


def volume_mount(store: VolumeStore, record: dict[str, Any], m: MountSpec, copy: bool, owner) -> Any:
    """What mounting one volume means, by its options: its ``_data`` bound (copy-up and all),
    a host directory bound (``type=none|bind``), or a file system mounted (``type=tmpfs``...)."""
    from minidocker.runtime import rootfs

    opts = record.get("Options") or {}
    kind, o = opts.get("type"), opts.get("o", "")
    readonly = m.readonly or "ro" in o.split(",")
    if not kind:
        return rootfs.Volume(record["Mountpoint"], m.target, readonly, copy_up=copy, owner=owner)
    if kind in ("none", "bind"):
        return rootfs.Volume(opts["device"], m.target, readonly, copy_up=copy)
    return rootfs.Volume(opts["device"], m.target, readonly, fstype=kind, data=o or None)
