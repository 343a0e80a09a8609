"""Lazy layers mounted: the store's FUSE servers, started, found again, and ended.

A lazy layer (lazy/layers.py) becomes an overlay lowerdir by mounting its FUSE file system
(lazy/fs.py) on its ``mnt/``. The mount lives in the host's mount namespace, where the store
is, so that every container made afterwards sees it when its own mount namespace is copied
from ours, and it outlives the command that made it. The store owns the server: its PID and
start time go to ``server.json`` (a PID alone could be another process's by the time it is
read), so any later minidocker command can tell a live server from a dead one:

    mount     (``ImageStore.get`` asks, for ``run``, ``start``, ``cp``, ``export``, ``commit``,
              ``build``) under the layer's lock: a live server on ``mnt/`` is used as it is;
              a dead one's mount (every access fails: ENOTCONN) is taken down; then the
              recorded TOC is read, checked and mounted, and the server recorded
    release   (``rm``, a ``--rm`` container's end, ``rmi``) every mounted lazy layer that no
              running container's image needs is unmounted: umount2, and the server, whose
              connection the kernel ends, exits (linux/fuse.py). A container that still
              runs keeps its layers: its overlay holds the FUSE file system, not our mount
    remove    (the garbage collector) release, stop a background fetch, delete the files

A running container does not need our mount to stay: overlayfs keeps its own reference to
each lowerdir. So unmounting here only stops *new* containers from finding the layer there.

See it: ``grep minidocker-lazy /proc/self/mountinfo`` and ``cat /var/lib/minidocker/lazy/*/server.json``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from minidocker.crashpoint import crashpoint
from minidocker.errors import LazyLayerError, MinidockerError
from minidocker.fsutil import read_json, write_json
from minidocker.lazy.layers import LazyLayers, env_seconds, short
from minidocker.linux import fuse
from minidocker.linux.procfs import start_time
from minidocker.paths import Layout

log = logging.getLogger("minidocker.lazy")
FETCH_TIMEOUT = 30.0  # seconds a reader waits for a chunk before it gets EIO


def fetch_timeout() -> float:
    return env_seconds("MINIDOCKER_LAZY_TIMEOUT", FETCH_TIMEOUT)


class LazyMounts:
    """The FUSE side of the lazy layers of the store at ``layout``: what ``ImageStore`` is
    handed to turn a lazy layer into a lowerdir (image/ makes no system calls itself)."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.layers = LazyLayers(layout)

    # -- what ImageStore calls ----------------------------------------------------------------
    def has(self, chain_id: str) -> bool:
        return self.layers.has(chain_id)

    def meta(self, chain_id: str) -> dict[str, Any]:
        return self.layers.meta(chain_id)

    def mount(self, chain_id: str, prefetch: list[str] | tuple[str, ...] = ()) -> Path:
        """The layer's mount point, its FUSE server started first unless one is serving it.
        A server started here first fetches the files of ``prefetch`` (the image's recorded
        accesses) and the layer's own prefetch group (lazy/prefetch.py)."""
        at = self.layers.at(chain_id)
        with self.layers.lock(chain_id):
            if not self.layers.has(chain_id):
                raise LazyLayerError(f"lazy layer {short(chain_id)} is not in the store")
            running = self.server(chain_id)
            if running is not None and fuse.fuse_mounted(str(at.mnt)):
                if fuse.server_alive(running):
                    return at.mnt
                log.warning("lazy layer %s: its FUSE server %d is gone; mounting it anew", short(chain_id), running.pid)
            self._take_down(chain_id)
            from minidocker.lazy.cache import ChunkCache, Places
            from minidocker.lazy.fs import mount_layer
            from minidocker.lazy.prefetch import prefetch as fetch_first
            from minidocker.lazy.remote import open_recorded

            unpacked = self.layout.layer(chain_id)  # where the background fetch commits it whole
            tree, source, group = open_recorded(self.layers.meta(chain_id), self.layers.toc(chain_id))
            first = list(dict.fromkeys([*group, *prefetch]))
            cache = ChunkCache(at.cache, Places.of_tree(tree))  # one for the prefetch and the server
            try:
                if first:
                    fetch_first(tree, source, cache, first, short(chain_id))
                mount = mount_layer(
                    tree, source, cache, at.mnt, name=short(chain_id), fetch_timeout=fetch_timeout(), log_path=at.log,
                    access_log=at.access, whole=(str(unpacked.diff.absolute()), str(unpacked.meta.absolute())),
                )  # fmt: skip
            finally:
                cache.close()  # (ours: the server opens the file anew)
            crashpoint("lazy:mounted")  # (a kill here leaves a mount no record names: the next mount takes it down)
            write_json(at.server, {"pid": mount.pid, "started": mount.started, "mountpoint": mount.mountpoint})
            return at.mnt

    def mounted(self) -> list[str]:
        """The chain IDs whose FUSE file system is mounted (or was: a server is recorded)."""
        return [c for c in self.layers.chains() if self.layers.at(c).server.exists()]

    def release(self, keep: set[str]) -> list[str]:
        """Unmount every lazy layer not in ``keep`` (the chains running containers use);
        returns the chains unmounted."""
        done = []
        for chain_id in self.mounted():
            if chain_id in keep:
                continue
            with self.layers.lock(chain_id):
                self._take_down(chain_id)
            done.append(chain_id)
        return done

    def remove(self, chain_id: str) -> None:
        """The garbage collector's: a lazy layer no image needs (or one a background fetch
        completed, when nothing serves it) unmounted, its fetch stopped, its files gone."""
        with self.layers.lock(chain_id):
            self.stop_fetch(chain_id)
            self._take_down(chain_id)
            self.layers.remove_dir(chain_id)

    def completed(self, chain_id: str) -> bool:
        """Remove a lazy layer that is now an ordinary one, if nothing has it mounted."""
        with self.layers.lock(chain_id):
            if self.layers.at(chain_id).server.exists():
                return False  # mounted: the next release (rm) unmounts it, the next gc removes it
            self.layers.remove_dir(chain_id)
        return True

    # -- the server -----------------------------------------------------------------------------
    def server(self, chain_id: str) -> fuse.FuseMount | None:
        at = self.layers.at(chain_id)
        doc = read_json(at.server, None)
        if not isinstance(doc, dict) or not isinstance(doc.get("pid"), int):
            return None
        return fuse.FuseMount(fuse.canonical(str(at.mnt)), doc["pid"], doc.get("started"))

    def _take_down(self, chain_id: str) -> None:
        """Unmount the layer and end its server (or take down a dead server's mount); forget it."""
        at = self.layers.at(chain_id)
        running = self.server(chain_id)
        try:
            if running is not None:
                fuse.unmount_fuse(running)
            elif fuse.fuse_mounted(str(at.mnt)):
                fuse.detach(str(at.mnt))
        except OSError as e:
            raise LazyLayerError(f"cannot unmount lazy layer {short(chain_id)}: {e.strerror or e}") from None
        with contextlib.suppress(FileNotFoundError):
            at.server.unlink()

    # -- the background fetch -------------------------------------------------------------------
    def stop_fetch(self, chain_id: str) -> None:
        """End the background fetch of this layer, if one runs (by PID and start time)."""
        doc = read_json(self.layers.at(chain_id).fetch, None)
        if not isinstance(doc, dict) or not isinstance(doc.get("pid"), int):
            return
        if doc.get("started") is not None and start_time(doc["pid"]) == doc["started"]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(doc["pid"], signal.SIGTERM)


def release_unused(root: Path, running_images: set[str]) -> list[str]:
    """``release`` for the store at ``root``, keeping the layers of the images running
    containers were made from (``running_images``: image IDs)."""
    from minidocker.image.store import ImageStore

    store = ImageStore(root)
    keep: set[str] = set()
    for image_id in running_images:
        with contextlib.suppress(MinidockerError, OSError, KeyError, ValueError):
            keep.update(store.chain_ids(image_id))
    return LazyMounts(Layout(root)).release(keep)
