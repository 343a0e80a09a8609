"""``run --record-access``: which files a container opens in its first seconds, kept with its image.

Every lazy layer's FUSE server sees the first read of each of its files (the kernel sends
READ for an execve, for ld.so mapping a library, for a program reading its data) and notes
it in ``access.log`` (``TIME PATH``, lazy/fs.py). A recorded run
makes sure the servers of its image's lazy layers start with it (a server that served an
earlier container would not note again what that one opened), notes the time it starts,
and when the container exits reads the lines of its first ``SECONDS`` seconds
(``$MINIDOCKER_RECORD_SECONDS``, 10 by default): the files, in the order they were first
opened. The list is stored with the image (``ImageStore.record_accesses``) and used twice:

* a later lazy run of the image fetches those files first, together (lazy/prefetch.py);
* ``convert --estargz`` of the image puts them first in each layer, before the prefetch
  landmark: any lazy pull of the converted image, anywhere, fetches them in one request.

See it: ``minidocker run --rm --record-access --pull=lazy IMAGE CMD``, then
``minidocker convert --estargz IMAGE NEW`` says how many files it puts first.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from minidocker.errors import MinidockerError
from minidocker.image.store import ImageStore
from minidocker.lazy.layers import env_seconds, short
from minidocker.lazy.mounts import LazyMounts

SECONDS = 10.0


def window() -> float:
    return env_seconds("MINIDOCKER_RECORD_SECONDS", SECONDS)


class Recording:
    """A recorded run of a container of ``image_id``: begun before its layers are mounted."""

    def __init__(self, store: ImageStore, image_id: str, running_images: set[str]):
        self.store, self.image_id = store, image_id
        self.seconds = window()
        self.chains = [c for c in store.chain_ids(image_id) if store.is_lazy(c)]
        if not self.chains:
            raise MinidockerError(
                "--record-access needs an image pulled lazily: its layers' file systems see the opens",
                hint="run it with --pull=lazy (or pull --lazy it first)",
            )
        mounts = LazyMounts(store.layout)
        in_use: set[str] = set()
        for other in running_images:
            in_use.update(store.chain_ids(other))
        busy = [short(c) for c in self.chains if c in in_use]
        if busy:
            raise MinidockerError(
                f"--record-access needs the image's lazy layers to itself; a running container uses {busy[0]}",
                hint="stop the containers of this image first",
            )
        mounts.release({c for c in mounts.mounted() if c not in self.chains})  # fresh servers for ours
        self.started = time.time()

    def finish(self) -> list[str]:
        """Read what the servers noted in the window, store it with the image; the files."""
        until = self.started + self.seconds
        seen: list[tuple[float, str]] = []
        for chain in self.chains:
            seen += read_log(self.store.layout.lazy_layer(chain).access, self.started, until)
        files = list(dict.fromkeys(name for _, name in sorted(seen)))
        self.store.record_accesses(
            self.image_id,
            {"files": files, "seconds": self.seconds, "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        )
        print(f"Recorded the {len(files)} files the container opened in its first {self.seconds:g} s", file=sys.stderr)
        return files


def read_log(path: Path, since: float, until: float) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        stamp, _, name = line.partition(" ")
        try:
            t = float(stamp)
        except ValueError:
            continue
        if since <= t <= until and name:
            out.append((t, name))
    return out
