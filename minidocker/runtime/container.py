"""Container records: ``containers/<id>/config.json`` (the spec) and ``state.json``.

State is written atomically under the containers lock. A record may claim "running" while
its process is long gone (the monitor was killed, the host rebooted): ``refresh`` checks the
PID *and its start time* (PIDs are reused: pid_max is small) and corrects the record, so
``ps`` never shows a dead container as Up.

    containers/<id>/config.json    the ContainerSpec
    containers/<id>/state.json     Status, Pid, ExitCode, StartedAt, FinishedAt, ...
    containers/<id>/upper, work    the overlay's writable layer and its scratch dir
    containers/<id>/merged         the mount point of the root (mounted only inside the container)
    containers/<id>/hostname, hosts, resolv.conf
    containers/<id>/container.log  -d output, one JSON object a line (docker's json-file format)
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minidocker.errors import Conflict, MinidockerError
from minidocker.fsutil import locked, make_private_dir, read_json, remove_tree, write_json
from minidocker.paths import prepare_store
from minidocker.runtime.spec import ContainerSpec

ADJECTIVES = ["admiring", "bold", "brave", "clever", "dreamy", "eager", "elegant", "festive", "gallant",
              "happy", "jolly", "keen", "lucid", "modest", "nifty", "optimistic", "quirky", "relaxed",
              "serene", "sharp", "stoic", "tender", "vibrant", "wizardly", "zealous"]
SCIENTISTS = ["babbage", "curie", "darwin", "dijkstra", "einstein", "feynman", "goodall", "hopper",
              "hypatia", "kepler", "lamport", "lovelace", "meitner", "noether", "pasteur", "ritchie",
              "shannon", "thompson", "torvalds", "turing", "wozniak", "yalow"]


class NoSuchContainer(MinidockerError):
    pass


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    rest = data[data.rindex(b")") + 2:].split()
    if rest[0] == b"Z":
        return None  # a zombie has finished
    return int(rest[19])


def boot_id() -> str:
    """A new random ID at every boot: a record from before a reboot describes no process."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def alive(pid: int | None, start_time: int | None, boot: str | None = None) -> bool:
    if boot is not None and boot != boot_id():
        return False
    return bool(pid) and start_time is not None and proc_start_time(pid) == start_time


@dataclass
class Container:
    dir: Path
    spec: ContainerSpec
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self.state.get("Status") in ("running", "paused")

    def path(self, name: str) -> Path:
        return self.dir / name


def make_container_dir(d: Path, idmap: dict[str, int] | None) -> None:
    """``containers/<id>/`` and its overlay dirs, closed to every other host user.

    A ``--userns=auto`` container's root (host uid/gid of its block, no capability over
    root's files) must still pass through its directory once, from its overlay to its own
    /etc files (``../hosts``, see rootfs.prepare_rootfs): the directory is 0710 and belongs
    to the block's first gid, search permission for that group and no one else. ``upper``
    is 0755 exactly: overlayfs shows the upper dir's owner and mode as the container's /."""
    if idmap:
        make_private_dir(d, 0o710, group=idmap["gid"])
    else:
        make_private_dir(d)
    make_private_dir(d / "upper", 0o755)
    make_private_dir(d / "work")
    make_private_dir(d / "merged")


class ContainerStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.dir = self.root / "containers"
        self.lock_path = self.dir / ".lock"

    def locked(self):
        return locked(self.lock_path)

    def ids(self) -> list[str]:
        if not self.dir.exists():
            return []
        return [p.name for p in self.dir.iterdir() if not p.name.startswith(".") and (p / "config.json").exists()]

    def load(self, cid: str) -> Container:
        d = self.dir / cid
        cfg = read_json(d / "config.json")
        if cfg is None:
            raise NoSuchContainer(f"No such container: {cid}")
        return Container(d, ContainerSpec.from_json(cfg), read_json(d / "state.json", {}) or {})

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
            if c.name == text.lstrip("/"):
                return self.refresh(c)
        matches = [cid for cid in ids if cid.startswith(text)] if text else []
        if len(matches) == 1:
            return self.refresh(self.load(matches[0]))
        if len(matches) > 1:
            raise Conflict(f"multiple containers match {text!r}; give more of the ID")
        raise NoSuchContainer(f"No such container: {text}")

    def random_name(self, taken: set[str]) -> str:
        for _ in range(100):
            name = f"{random.choice(ADJECTIVES)}_{random.choice(SCIENTISTS)}"
            if name not in taken:
                return name
        return f"{random.choice(ADJECTIVES)}_{random.choice(SCIENTISTS)}{random.randint(1, 99)}"

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
                raise Conflict(f'Conflict. The container name "/{spec.name}" is already in use by container '
                               f'"{existing.id}". You have to remove (or rename) that container to be able to '
                               "reuse that name.")
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
            d = self.dir / cid
            make_container_dir(d, spec.idmap)
            write_json(d / "config.json", spec.to_json())
            state = {"Status": "created", "Created": now_iso(), "Pid": 0, "ExitCode": 0,
                     "StartedAt": "", "FinishedAt": "", "OOMKilled": False, "Error": ""}
            write_json(d / "state.json", state)
        return Container(d, spec, state)

    def rename(self, c: Container, new_name: str) -> None:
        """``rename``: a new name, unique like the first (under the lock)."""
        with self.locked():
            for cid in self.ids():
                try:
                    other = self.load(cid)
                except NoSuchContainer:
                    continue
                if other.name == new_name and other.id != c.id:
                    raise Conflict(f'Conflict. The container name "/{new_name}" is already in use by container '
                                   f'"{other.id}". You have to remove (or rename) that container to be able to '
                                   "reuse that name.")
            c.spec.name = new_name
            write_json(c.path("config.json"), c.spec.to_json())

    def update(self, c: Container, **changes: Any) -> Container:
        with self.locked():
            state = read_json(c.path("state.json"), {}) or {}
            state.update(changes)
            if c.dir.exists():
                write_json(c.path("state.json"), state)
            c.state = state
        return c

    def update_if(self, c: Container, status: str, **changes: Any) -> bool:
        """``update`` only while the record's Status is still ``status`` (compare and set)."""
        with self.locked():
            state = read_json(c.path("state.json"), {}) or {}
            if state.get("Status") != status:
                c.state = state
                return False
            state.update(changes)
            write_json(c.path("state.json"), state)
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
                c.state = read_json(c.path("state.json"), {}) or c.state
                if not c.running:
                    return c
                monitor_alive = alive(c.state.get("MonitorPid"), c.state.get("MonitorStartTime"))
            if c.running:
                self.update(c, Status="exited", ExitCode=c.state.get("ExitCode") or 137, Pid=0,
                            FinishedAt=c.state.get("FinishedAt") or now_iso(),
                            Error="the container's monitor died; exit code unknown (137 assumed)")
        return c

    def remove_files(self, c: Container) -> None:
        with self.locked():
            remove_tree(c.dir)
