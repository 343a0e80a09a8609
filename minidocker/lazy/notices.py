"""What a container hears of its lazy layers' trouble: the FUSE servers' warnings, relayed.

When a chunk of a lazy layer cannot be had (the registry is gone, the bytes do not match the
TOC), the reading process gets EIO: ``cat: /usr/bin/x: Input/output error`` is all it can say.
Why is in the layer's server log (lazy/fs.py writes one line: which file, which bytes, what
went wrong). A container's output relay (runtime/logfile.py ``copy_streams``, in a foreground
``run`` and in a detached container's watcher) polls ``LazyNotices`` for the new lines of the
logs of the lazy layers among its lowerdirs, and writes each to the container's log and the
user's stderr, as ``minidocker: lazy layer ...``.

See it: stop the registry while a lazily started container reads, then ``minidocker logs C``.
"""

from __future__ import annotations

import os
import re

from minidocker.linux.events import emit

FETCHED = re.compile(
    r"lazy layer (?P<layer>\S+): fetched (?P<file>.*) bytes \d+-\d+: blob bytes (?P<start>\d+)-(?P<end>\d+) "
    r"\((?P<length>\d+)\) in (?P<ms>[\d.]+) ms$"
)
MARK = b" minidocker.lazy["  # (the logger's name in fs.py's lines: ``TIME minidocker.lazy[PID]: ...``)


class LazyNotices:
    """The lines the lazy layers of ``lowerdirs`` log from now on, as they come."""

    def __init__(self, logs: list[str], offsets: dict[str, int] | None = None):
        self.files: dict[str, int] = {}
        for path in logs:
            try:
                self.files[path] = os.stat(path).st_size if offsets is None else offsets.get(path, 0)
            except OSError:
                self.files[path] = 0
        self.partial: dict[str, bytes] = {}
        self.totals: dict[str, tuple[int, int]] = {}  # layer -> (chunks, blob bytes) fetched since

    @classmethod
    def of(cls, lowerdirs: list[str], offsets: dict[str, int] | None = None) -> LazyNotices | None:
        """For the lowerdirs of a container, or None if none is a lazy layer's mount. Made
        before the container starts (its first reads come at once); ``offsets``: where an
        earlier LazyNotices was (``files``), for the detached container's watcher."""
        logs = [os.path.join(os.path.dirname(d), "server.log") for d in lowerdirs if is_lazy_mount(d)]
        return cls(logs, offsets) if logs else None

    def poll(self) -> list[bytes]:
        """The new warning lines (each ending in a newline), prefixed ``minidocker: ``."""
        out = []
        for path, offset in self.files.items():
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    data = f.read(1 << 16)
            except OSError:
                continue
            self.files[path] = offset + len(data)
            *lines, rest = (self.partial.get(path, b"") + data).split(b"\n")
            self.partial[path] = rest
            for line in lines:
                if MARK not in line:
                    continue
                text = line.split(b"]: ", 1)[-1]
                fetched = FETCHED.match(text.decode(errors="replace"))
                if fetched:
                    self.fetched(fetched)
                else:
                    out.append(b"minidocker: " + text + b"\n")
        return out

    def fetched(self, m: re.Match[str]) -> None:
        """A chunk fetched by a range request: counted, and told to --explain."""
        layer, blob_bytes = m["layer"], int(m["length"])
        chunks, total = self.totals.get(layer, (0, 0))
        self.totals[layer] = (chunks + 1, total + blob_bytes)
        emit("lazy_fetch", layer=layer, file=m["file"], range=f"{m['start']}-{m['end']}", bytes=blob_bytes, ms=m["ms"])

    def summary(self) -> None:
        """--explain's last word on the lazy layers: what this container's run fetched."""
        for layer, (chunks, total) in sorted(self.totals.items()):
            emit("lazy_read", layer=layer, chunks=chunks, bytes=total)


def is_lazy_mount(lowerdir: str) -> bool:
    """``<root>/lazy/<chain hex>/mnt``: the mount point of a lazy layer."""
    parts = lowerdir.rstrip("/").split("/")
    return len(parts) >= 3 and parts[-1] == "mnt" and parts[-3] == "lazy" and len(parts[-2]) == 64
