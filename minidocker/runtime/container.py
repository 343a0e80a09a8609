"""Container records: ``containers/<id>/config.json`` (the spec) and ``state.json``.

State is written atomically under the containers lock. A record may claim "running" while
its process is long gone (the monitor was killed, the host rebooted): ``refresh`` checks the
PID *and its start time* (PIDs are reused: pid_max is small) and corrects the record, so
``ps`` never shows a dead container as Up. A container's files (its overlay's upper, work
and merged dirs, its /etc files, its log) are named by ``paths.ContainerLayout``: ``c.layout``.

A record is made whole in ``containers/.new-<id>/`` and renamed into place, so a directory
named by an ID always had a complete record once. If its files are damaged later (a disk
error, a hand edit, a truncation), the container is shown as ``dead``, as docker shows a
container it cannot load: ``ps -a`` lists it, ``inspect`` shows the reason in
``State.Error``, and ``rm -f`` removes it with whatever it still holds on the host.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from minidocker import eventlog
from minidocker.errors import Conflict, NoSuchContainer, StoreError
from minidocker.fsutil import locked, make_private_dir, read_json, remove_tree, write_json
from minidocker.linux.procfs import boot_id
from minidocker.linux.procfs import start_time as proc_start_time
from minidocker.paths import NEW_CONTAINER_PREFIX, REMOVED_CONTAINER_PREFIX, ContainerLayout, Layout, prepare_store
from minidocker.record import field, record
from minidocker.runtime.logfile import now_iso
from minidocker.runtime.spec import ContainerSpec

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import Any

ADJECTIVES = [
    "admiring",
    "bold",
    "brave",
    "clever",
    "dreamy",
    "eager",
    "elegant",
    "festive",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "vibrant",
    "wizardly",
    "zealous",
]
SCIENTISTS = [
    "babbage",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "feynman",
    "goodall",
    "hopper",
    "hypatia",
    "kepler",
    "lamport",
    "lovelace",
    "meitner",
    "noether",
    "pasteur",
    "ritchie",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yalow",
]


def alive(pid: int | None, start_time: int | None, boot: str | None = None) -> bool:
    if boot is not None and boot != boot_id():
        return False
    return pid is not None and pid != 0 and start_time is not None and proc_start_time(pid) == start_time


def is_container_id(text: str) -> bool:
    return len(text) == 64 and all(ch in "0123456789abcdef" for ch in text)


def pick(words: list[str]) -> str:
    """One of ``words`` at random (os.urandom: the random module is not worth its import on
    every container start, and a name needs no reproducible sequence)."""
    return words[int.from_bytes(os.urandom(4)) % len(words)]


@record
class Container:
    layout: ContainerLayout  # its files; layout.store: the store it is in
    spec: ContainerSpec
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.layout.dir

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self.state.get("Status") in ("running", "paused")

    @property
    def damaged(self) -> bool:
        """True when the record could not be read whole (shown as ``dead``)."""
        return bool(self.state.get("Damaged"))

    def check_usable(self) -> None:
        """Refuse to start a dead record: all it is good for is ``inspect`` and ``rm -f``."""
        if self.damaged:
            raise Conflict(
                f"container {self.id[:12]} is dead: {self.state.get('Error')}",
                hint=f"remove it: minidocker rm -f {self.id[:12]}",
            )


def make_container_dir(c: ContainerLayout, idmap: dict[str, int] | None) -> None:
    """``containers/<id>/`` and its overlay dirs, closed to every other host user.

    A ``--userns=auto`` container's root (host uid/gid of its block, no capability over
    root's files) must still pass through its directory once, from its overlay to its own
    /etc files (``../hosts``, see rootfs.prepare_rootfs): the directory is 0710 and belongs
    to the block's first gid, search permission for that group and no one else. ``upper``
    is 0755 exactly: overlayfs shows the upper dir's owner and mode as the container's /."""
    if idmap:
        make_private_dir(c.dir, 0o710, group=idmap["gid"])
    else:
        make_private_dir(c.dir)
    make_private_dir(c.upper, 0o755)
    make_private_dir(c.work)
    make_private_dir(c.merged)


class ContainerStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.layout = Layout(self.root)
        self.dir = self.layout.containers_dir

    def locked(self):
        return locked(self.layout.containers_lock)

    def ids(self) -> list[str]:
        """Every record's ID (a directory named by 64 hex digits; unfinished ones start with .)."""
        if not self.dir.exists():
            return []
        return [p.name for p in self.dir.iterdir() if is_container_id(p.name) and p.is_dir()]

    def load(self, cid: str) -> Container:
        d = self.layout.container(cid)
        try:
            cfg = read_json(d.config)
        except StoreError as e:
            return dead_record(d, cid, None, f"config.json is damaged: {e}")
        if cfg is None:
            if not d.dir.is_dir():
                raise NoSuchContainer(f"No such container: {cid}")
            return dead_record(d, cid, None, "config.json is missing")
        try:
            spec = ContainerSpec.from_json(cfg)
        except (TypeError, KeyError, ValueError, AttributeError) as e:
            return dead_record(d, cid, None, f"config.json is not a container record: {e}")
        try:
            state = read_json(d.state, {}) or {}
        except StoreError as e:
            return dead_record(d, cid, spec, f"state.json is damaged: {e}")
        if not isinstance(state, dict):
            return dead_record(d, cid, spec, "state.json is not a container state")
        return Container(d, spec, state)

    def all(self) -> list[Container]:
        out = []
        for cid in self.ids():
            try:
                out.append(self.refresh(self.load(cid)))
            except NoSuchContainer:
                continue  # removed while we looked
        return out

    def find(self, text: str) -> Container:
        """By full ID, name, or unique ID prefix, as docker resolves them."""
        ids = self.ids()
        if text in ids:
            return self.refresh(self.load(text))
        for cid in ids:
            try:
                c = self.load(cid)
            except NoSuchContainer:
                continue
            if c.name and c.name == text.lstrip("/"):
                return self.refresh(c)
        matches = [cid for cid in ids if cid.startswith(text)] if text else []
        if len(matches) == 1:
            return self.refresh(self.load(matches[0]))
        if len(matches) > 1:
            raise Conflict(f"multiple containers match {text!r}; give more of the ID")
        raise NoSuchContainer(f"No such container: {text}")

    def random_name(self, taken: set[str]) -> str:
        for _ in range(100):
            name = f"{pick(ADJECTIVES)}_{pick(SCIENTISTS)}"
            if name not in taken:
                return name
        return f"{pick(ADJECTIVES)}_{pick(SCIENTISTS)}{1 + int.from_bytes(os.urandom(1)) % 99}"

    def create(self, make_spec) -> Container:
        """Reserve an ID and a name and write the record, under the lock (names are unique)."""
        prepare_store(self.root)
        with self.locked():
            names = set()
            for cid in self.ids():
                try:
                    names.add(self.load(cid).name)
                except NoSuchContainer:
                    pass
            cid = os.urandom(32).hex()
            spec: ContainerSpec = make_spec(cid, lambda: self.random_name(names))
            if spec.name in names:
                existing = self.find(spec.name)
                raise Conflict(
                    f'Conflict. The container name "/{spec.name}" is already in use by container '
                    f'"{existing.id}". You have to remove (or rename) that container to be able to '
                    "reuse that name."
                )
            if spec.userns == "auto":  # a block of host IDs no other container has
                from minidocker.runtime.idranges import allocate

                taken = set()
                for other in self.ids():
                    try:
                        idmap = self.load(other).spec.idmap
                    except NoSuchContainer:
                        continue
                    if idmap:
                        taken.add(idmap["uid"])
                spec.idmap = allocate(taken)
            state = {
                "Status": "created",
                "Created": now_iso(),
                "Pid": 0,
                "ExitCode": 0,
                "StartedAt": "",
                "FinishedAt": "",
                "OOMKilled": False,
                "Error": "",
            }
            d = self.layout.container(cid)
            self._reclaim_unfinished()
            tmp = ContainerLayout(self.layout.new_container(cid), self.layout)
            make_container_dir(tmp, spec.idmap)
            write_json(tmp.config, spec.to_json())
            write_json(tmp.state, state)
            os.rename(tmp.dir, d.dir)  # the record appears whole, or not at all
        c = Container(d, spec, state)
        container_event(c, "create")
        return c

    def _reclaim_unfinished(self) -> None:
        """Remove what a killed ``create`` or ``rm`` left (``.new-*``, ``.rm-*``). The caller
        holds the lock, which every create and rm holds, so none of these is in use."""
        for p in self.dir.iterdir():
            if p.name.startswith((NEW_CONTAINER_PREFIX, REMOVED_CONTAINER_PREFIX)):
                remove_tree(p)

    def rename(self, c: Container, new_name: str) -> None:
        """``rename``: a new name, unique like the first (under the lock)."""
        with self.locked():
            for cid in self.ids():
                try:
                    other = self.load(cid)
                except NoSuchContainer:
                    continue
                if other.name == new_name and other.id != c.id:
                    raise Conflict(
                        f'Conflict. The container name "/{new_name}" is already in use by container '
                        f'"{other.id}". You have to remove (or rename) that container to be able to '
                        "reuse that name."
                    )
            old_name, c.spec.name = c.spec.name, new_name
            write_json(c.layout.config, c.spec.to_json())
        container_event(c, "rename", oldName="/" + old_name)

    def save_spec(self, c: Container) -> None:
        """``update``: the container's changed spec (its limits, its restart policy) written
        back to config.json, under the lock."""
        with self.locked():
            write_json(c.layout.config, c.spec.to_json())

    def update(self, c: Container, **changes: Any) -> Container:
        with self.locked():
            state = read_json(c.layout.state, {}) or {}
            state.update(changes)
            if c.dir.exists():
                write_json(c.layout.state, state)
            c.state = state
        return c

    def update_if(self, c: Container, status: str, **changes: Any) -> bool:
        """``update`` only while the record's Status is still ``status`` (compare and set)."""
        with self.locked():
            state = read_json(c.layout.state, {}) or {}
            if state.get("Status") != status:
                c.state = state
                return False
            state.update(changes)
            write_json(c.layout.state, state)
            c.state = state
        return True

    def refresh(self, c: Container) -> Container:
        """Correct a record whose process is gone without anyone recording it."""
        if c.running and not alive(c.state.get("Pid"), c.state.get("PidStartTime"), c.state.get("BootId", "")):
            monitor_alive = alive(c.state.get("MonitorPid"), c.state.get("MonitorStartTime"))
            # Our monitor records the exit itself; give it a moment if it is still there.
            for _ in range(20):
                if not monitor_alive:
                    break
                time.sleep(0.05)
                c.state = read_json(c.layout.state, {}) or c.state
                if not c.running:
                    return c
                monitor_alive = alive(c.state.get("MonitorPid"), c.state.get("MonitorStartTime"))
            if c.running:
                self.update(
                    c,
                    Status="exited",
                    ExitCode=c.state.get("ExitCode") or 137,
                    Pid=0,
                    FinishedAt=c.state.get("FinishedAt") or now_iso(),
                    Error="the container's monitor died; exit code unknown (137 assumed)",
                )
                container_event(c, "die", exitCode=c.state["ExitCode"])  # (no one else saw it die)
        return c

    def remove_files(self, c: Container) -> None:
        """The record goes at once (one rename out of sight), then its files."""
        with self.locked():
            gone = self.layout.removed_container(c.id)
            try:
                os.rename(c.dir, gone)
            except FileNotFoundError:
                return
            remove_tree(gone)
        container_event(c, "destroy")


def container_event(c: Container, action: str, **extra: str | int) -> None:
    """Tell ``minidocker events`` of a container's change (eventlog.py), with docker's
    attributes: the container's labels, its image and name, and ``extra`` (``exitCode``
    for ``die``, ``signal`` for ``kill``)."""
    attributes = {**c.spec.labels, "image": c.spec.image, "name": c.spec.name}
    attributes.update((k, str(v)) for k, v in extra.items())
    eventlog.record(c.layout.store.root, "container", action, c.id, attributes)


def dead_record(d: ContainerLayout, cid: str, spec: ContainerSpec | None, reason: str) -> Container:
    """A record that cannot be read whole: status ``dead`` (docker's word), the reason kept
    for ``inspect``. Without a readable config, the spec is a placeholder that names only
    the ID, and ``Damaged`` tells ``rm`` to look for what the container holds by its ID."""
    spec = spec or ContainerSpec(id=cid, name="", image="", image_id="", argv=[], env=[])
    state = {
        "Status": "dead",
        "Error": f"the container's record is damaged: {reason}",
        "Damaged": True,
        "Pid": 0,
        "ExitCode": -1,
        "Created": "",
        "StartedAt": "",
        "FinishedAt": "",
    }
    return Container(d, spec, state)
