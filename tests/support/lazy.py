"""What a test of lazy layers looks at and cleans up: the FUSE mounts under a store, the
servers and background fetches the store recorded (each by PID and start time)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


@dataclass
class Recorded:
    pid: int
    started: int | None

    def alive(self) -> bool:
        return self.started is not None and _start_time(self.pid) == self.started


def fuse_mounts_under(root: Path) -> list[str]:
    """The FUSE mount points below ``root`` in our mount namespace."""
    top = os.path.realpath(root)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ")
            fstype = fields[fields.index("-") + 1]
            point = fields[4].replace("\\040", " ")
            if fstype.startswith("fuse") and (point + "/").startswith(top + "/"):
                out.append(point)
    return out


def _recorded(root: Path, name: str) -> list[Recorded]:
    out = []
    for f in sorted((Path(root) / "lazy").glob(f"*/{name}")):
        with contextlib.suppress(OSError, ValueError):
            doc = json.loads(f.read_text())
            out.append(Recorded(int(doc["pid"]), doc.get("started")))
    return out


def lazy_servers(root: Path) -> list[Recorded]:
    return _recorded(root, "server.json")


def background_fetches(root: Path) -> list[Recorded]:
    return _recorded(root, "fetch.json")


def indexers(root: Path) -> list[Recorded]:
    """The background indexers (lazy/background.py ``--index``) working on this store: by
    their command line, which names the store's root."""
    out = []
    want = ["-m", "minidocker.lazy.background", "--index", str(root)]
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (d / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if argv[1:5] == want:
                out.append(Recorded(int(d.name), _start_time(int(d.name))))
    return out


def wait_until(check, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"waited {timeout:g} s for: {what}")


def release_store(root: Path) -> None:
    """A test's cleanup: end the store's background fetches and FUSE servers (those it
    recorded, still the same processes), and unmount every FUSE mount below ``root``."""
    for rec in background_fetches(root) + lazy_servers(root) + indexers(root):
        if rec.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, signal.SIGKILL)
    for point in fuse_mounts_under(root):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def layer_files(layout: Path, want) -> dict[str, bytes]:
    """The bytes of the regular files of an OCI layout's (first) layer for which
    ``want(name, index among the regular files)`` is true, read from its gzip tar."""
    import gzip
    import tarfile

    from tests.support.oci import layout_manifest

    manifest, _ = layout_manifest(layout)
    blob = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].removeprefix("sha256:")
    out: dict[str, bytes] = {}
    n = 0
    with gzip.open(blob) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for member in tar:
            if not member.isreg():
                continue
            name = member.name.removeprefix("./")
            if want(name, n):
                out[name] = tar.extractfile(member).read()
            n += 1
    return out
