"""The background fetch: a lazy layer made an ordinary one while its containers run.

A lazy pull leaves big layers in the registry, so the first container starts at once. Then,
``lazy-background-fetch`` seconds later (lazy/layers.py; the container's own first reads go
first), a process of its own pulls each of those layers whole, the ordinary way
(image/pull.py ``fetch_layer``: the blob verified against its digest, unpacked, its diff_id
checked: the lazy layer's bytes were checked only chunk by chunk against its TOC), and
commits it to ``layers/<chain-id>/``. From then on ``ImageStore.get`` gives the unpacked
layer: the next container reads from the disk, with no FUSE server in between. The lazy
layer goes once nothing has it mounted (now, or at the next ``rm``/``rmi``).

The process is recorded in each of its layers' ``fetch.json`` (PID and start time), so that
``rmi`` can end it when its image goes; it starts a session of its own (a terminal's ^C does
not reach it) and writes what it does to the first layer's ``server.log``.

See it: ``minidocker pull --lazy IMAGE``, then ``cat /var/lib/minidocker/lazy/*/fetch.json``
and, some seconds later, ``ls /var/lib/minidocker/layers/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from minidocker.fsutil import write_json
from minidocker.lazy.layers import LazyLayers, short
from minidocker.paths import Layout

IDLE = 3.0  # seconds without a chunk fetched by the layer's server before the whole download starts
_children: list[subprocess.Popen] = []  # (kept so that they are reaped when they end)


def start(root: Path, chains: list[str], delay: float) -> int | None:
    """Start the background fetch of ``chains`` (bottom layer first) after ``delay`` s."""
    layers = LazyLayers(Layout(root))
    chains = [c for c in chains if layers.has(c)]
    if not chains:
        return None
    from minidocker.linux.procfs import start_time

    log = os.open(layers.at(chains[0]).log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "minidocker.lazy.background", str(root), str(delay), *chains],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log)
    _children.append(child)
    record = {"pid": child.pid, "started": start_time(child.pid), "chains": chains}
    for c in chains:
        write_json(layers.at(c).fetch, record, mode=0o600)
    return child.pid


def index_later(root: Path, image_id: str, lazily: list[int], threshold: int) -> int | None:
    """A lazy pull that had to pull big gzip layers whole (the registry had no zran index of
    them): index them in a process of its own, once (``convert --index``'s work), so that
    the next ``push`` carries the index and the next lazy pull of the image is lazy."""
    from minidocker.image import manifest as mf
    from minidocker.image import zran_store
    from minidocker.image.store import ImageStore

    store = ImageStore(root)
    layers = store.manifest(image_id).layers
    todo = [
        d
        for i, d in enumerate(layers)
        if i not in lazily and d.size >= threshold and mf.compression_of(d.media_type) == "gzip"
        and not (d.annotations or {}).get("containerd.io/snapshot/stargz/toc.digest")  # (eStargz: no need)
        and zran_store.index_for(store, d.digest) is None
    ]  # fmt: skip
    if not todo:
        return None
    child = subprocess.Popen(
        [sys.executable, "-m", "minidocker.lazy.background", "--index", str(root), image_id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    _children.append(child)
    return child.pid


def index_main(root: Path, image_id: str) -> int:
    from minidocker.errors import MinidockerError
    from minidocker.image import zran_store
    from minidocker.image.store import ImageStore

    try:
        zran_store.index_image(ImageStore(root), image_id)
    except MinidockerError:  # (the image went meanwhile: nothing to index)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if argv[0] == "--index":
        return index_main(Path(argv[1]), argv[2])
    root, delay, chains = Path(argv[0]), float(argv[1]), argv[2:]
    time.sleep(delay)
    from minidocker.errors import MinidockerError
    from minidocker.image import manifest as mf
    from minidocker.image.limits import UnpackLimits
    from minidocker.image.pull import _noop, fetch_layer
    from minidocker.image.reference import parse
    from minidocker.image.registry import RegistryClient
    from minidocker.image.store import ImageStore
    from minidocker.lazy.mounts import LazyMounts

    mounts = LazyMounts(Layout(root))
    store = ImageStore(root, lazy=mounts)
    failed = 0
    for chain in chains:
        meta = mounts.layers.meta(chain)
        if not meta or store.has_layer(chain):
            continue
        wait_while_reading(mounts.layers.at(chain).log)
        ref = parse(meta["reference"])
        desc = mf.Descriptor(meta["media_type"], meta["digest"], int(meta["size_compressed"]))
        t0 = time.monotonic()
        try:
            with RegistryClient(ref.domain) as reg:
                fetch_layer(
                    reg, store, ref, desc, meta["diff_id"], chain, meta.get("parent"), _noop,
                    threading.Event(), UnpackLimits.from_env(),
                )  # fmt: skip
            gone = mounts.completed(chain)
            say(f"layer {short(chain)} fetched whole in {time.monotonic() - t0:.1f} s"
                + ("; the lazy layer removed" if gone else "; the lazy layer stays until unmounted"))  # fmt: skip
        except MinidockerError as e:
            failed += 1
            say(f"layer {short(chain)}: background fetch failed: {e}")
    return 1 if failed else 0


def wait_while_reading(server_log: Path, quiet: float = IDLE, longest: float = 600.0) -> None:
    """Wait until the layer's FUSE server has fetched nothing for ``quiet`` seconds (its log
    has not grown), for at most ``longest``: a container that reads the layer through (its
    readahead streams the blob) is not made to share the link with a second download of it."""
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        try:
            idle = time.time() - os.stat(server_log).st_mtime
        except FileNotFoundError:
            return
        if idle >= quiet:
            return
        time.sleep(min(1.0, quiet - idle + 0.05))


def say(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} background fetch: {line}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
