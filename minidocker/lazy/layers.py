"""Lazy layers in the store: what a lazy pull records, and the settings that decide it.

A lazy pull (``pull --lazy``, ``run --pull=lazy``) does not download a big layer: it reads its
table of contents (TOC) and records the layer under ``lazy/<chain-id>/`` instead of
``layers/<chain-id>/``::

    meta.json   what the layer is (chain ID, parent, diff_id, blob digest and size, media type),
                where its bytes are (the registry and repository), and its format: "estargz"
                (the TOC is in the blob: ``toc`` holds the blob's tail from the TOC's offset)
                or "zran" (an ordinary gzip blob: ``toc`` holds its index, image/zran.py)
    toc         the TOC's bytes, checked when the layer is mounted (against the descriptor's
                toc.digest for eStargz, the index's own digest for zran)
    cache/ mnt/ the fetched chunks, and the mount point of the layer's FUSE file system

A lazy layer is recorded the way every layer is: made whole in ``lazy/.tmp-*``, locked by its
writer, then renamed to its name (so a SIGKILL leaves the old state or the new one), and the
garbage collector takes it out of its name before it deletes it. It is an ordinary layer to
everything above the store: ``ImageStore.get`` gives its mount point as the lowerdir, mounting
it first (lazy/mounts.py; image/ makes no system calls, so that part is handed in).

Which layers a lazy pull leaves in the registry is the settings' choice (``settings()``):
layers smaller than ``lazy-threshold`` bytes (compressed) are pulled whole, as are layers
that are neither eStargz nor indexed. The settings live with docker's other daemon settings
in /etc/minidocker/daemon.json (``$MINIDOCKER_DAEMON_CONFIG``), environment first::

    {"lazy-pull": true,             every pull is lazy unless told    MINIDOCKER_LAZY_PULL=1
     "lazy-threshold": 8388608,     smaller layers are pulled whole   MINIDOCKER_LAZY_THRESHOLD
     "lazy-background-fetch": 10}   seconds after a lazy pull, fetch  MINIDOCKER_LAZY_BACKGROUND
                                    the layers whole in the background
                                    (false / "off": never)

See it: ``minidocker pull --lazy IMAGE`` then ``ls /var/lib/minidocker/lazy/*/`` and
``jq . /var/lib/minidocker/lazy/*/meta.json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minidocker.crashpoint import crashpoint
from minidocker.errors import MinidockerError, StoreError
from minidocker.fsutil import fsync_dir, locked, read_json, remove_tree, storage_error, write_json
from minidocker.image.content import create_owned, reclaim_orphans
from minidocker.paths import TEMP_LAYER_PREFIX, Layout, LazyLayout, hex_of

THRESHOLD = 8 << 20  # bytes of compressed layer below which a lazy pull fetches it whole
BACKGROUND_DELAY = 10.0  # seconds: the container's own first reads go first


@dataclass(frozen=True)
class LazySettings:
    default: bool  # pull lazily when no flag says
    threshold: int  # layers smaller than this (compressed bytes) are pulled whole
    background: float | None  # seconds after the pull to start fetching whole; None: never


def settings() -> LazySettings:
    """The lazy settings: the environment's, else daemon.json's, else the defaults."""
    from minidocker.image.registry import daemon_config

    path, doc = daemon_config()

    def pick(env: str, key: str, default: Any) -> tuple[Any, str]:
        if os.environ.get(env, "").strip():
            return os.environ[env].strip(), env
        if key in doc:
            return doc[key], f"{path}: {key}"
        return default, ""

    raw, where = pick("MINIDOCKER_LAZY_PULL", "lazy-pull", False)
    default = as_bool(raw, where)
    raw, where = pick("MINIDOCKER_LAZY_THRESHOLD", "lazy-threshold", THRESHOLD)
    try:
        threshold = int(raw)
        if threshold < 0 or isinstance(raw, bool):
            raise ValueError
    except (TypeError, ValueError):
        raise MinidockerError(f"{where} must be a number of bytes, not {raw!r}") from None
    raw, where = pick("MINIDOCKER_LAZY_BACKGROUND", "lazy-background-fetch", BACKGROUND_DELAY)
    background: float | None
    if raw is False or str(raw).lower() in ("off", "false", "no", "never"):
        background = None
    else:
        try:
            background = float(raw)
            if background < 0 or isinstance(raw, bool):
                raise ValueError
        except (TypeError, ValueError):
            raise MinidockerError(
                f"{where} must be seconds to wait, or false, not {raw!r}", hint="e.g. 10, or off"
            ) from None
    return LazySettings(default, threshold, background)


def env_seconds(name: str, default: float) -> float:
    """A number of seconds from the environment variable ``name`` (unset: ``default``)."""
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise MinidockerError(f"{name} must be seconds, not {raw!r}") from None


def as_bool(raw: Any, where: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise MinidockerError(f"{where} must be true or false, not {raw!r}")


class LazyLayers:
    """The lazy layers of the store at ``layout``: recorded, read, listed, removed."""

    def __init__(self, layout: Layout):
        self.layout = layout

    def at(self, chain_id: str) -> LazyLayout:
        return self.layout.lazy_layer(chain_id)

    def has(self, chain_id: str) -> bool:
        return self.at(chain_id).meta.exists()

    def meta(self, chain_id: str) -> dict[str, Any]:
        return read_json(self.at(chain_id).meta, {}) or {}

    def toc(self, chain_id: str) -> bytes:
        try:
            return self.at(chain_id).toc.read_bytes()
        except OSError as e:
            raise storage_error(e, f"reading the TOC of lazy layer {hex_of(chain_id)[:12]}") from None

    def chains(self) -> list[str]:
        """The chain IDs of every lazy layer recorded (``sha256:HEX``)."""
        d = self.layout.lazy_dir
        if not d.is_dir():
            return []
        return sorted(f"sha256:{n}" for n in os.listdir(d) if not n.startswith(TEMP_LAYER_PREFIX))

    def any_mounted(self) -> bool:
        """Has any lazy layer a FUSE server recorded? (a listdir, and a stat per lazy layer)"""
        return any(self.at(c).server.exists() for c in self.chains())

    def lock(self, chain_id: str):
        return locked(self.layout.lazy_lock(chain_id))

    def record(self, chain_id: str, meta: dict[str, Any], toc: bytes) -> bool:
        """Record a lazy layer: its TOC and meta.json in a locked temp dir, renamed to
        ``lazy/<chain-id>/`` once whole. False if it is there already (the same layer)."""
        self.reclaim()
        tmp = self.layout.temp_lazy_layer(f"{hex_of(chain_id)}-{os.urandom(4).hex()}")
        try:
            lock_fd = create_owned(tmp, directory=True)
        except OSError as e:
            raise storage_error(e, "recording a lazy layer") from None
        try:
            files = LazyLayout(tmp)
            files.toc.write_bytes(toc)
            files.cache.mkdir(mode=0o700)
            files.mnt.mkdir(mode=0o755)
            write_json(files.meta, {"chain_id": chain_id, **meta}, mode=0o600)
            crashpoint("lazy:before-rename")
            with self.lock(chain_id):
                if self.has(chain_id):
                    return False
                final = self.at(chain_id).dir
                if final.exists():  # a half-removed one (a kill in remove): ours to replace
                    remove_tree(final)
                os.rename(tmp, final)
                fsync_dir(final.parent)
            return True
        except OSError as e:
            raise storage_error(e, f"recording lazy layer {hex_of(chain_id)[:12]}") from None
        finally:
            if tmp.exists():
                remove_tree(tmp)
            os.close(lock_fd)

    def remove_dir(self, chain_id: str) -> None:
        """Delete a lazy layer's files (its caller made sure nothing is mounted on ``mnt/``):
        out of its name first (one rename), then file by file."""
        d = self.at(chain_id).dir
        if not d.exists():
            return
        trash = self.layout.temp_lazy_layer(f"gc-{os.urandom(8).hex()}")
        try:
            os.rename(d, trash)  # (a kill from here on leaves an orphan temp dir: reclaim's)
            crashpoint("lazy:removed-renamed")
            remove_tree(trash)
        except OSError as e:
            raise StoreError(f"removing lazy layer {hex_of(chain_id)[:12]}: {e.strerror or e}") from None

    def reclaim(self) -> list[str]:
        """The temp dirs of killed writers, removed (their locks are free)."""
        if not self.layout.lazy_dir.is_dir():
            return []
        return reclaim_orphans(self.layout.lazy_dir, TEMP_LAYER_PREFIX)


def short(chain_id: str) -> str:
    return hex_of(chain_id)[:12]


def mount_point(layout: Layout, chain_id: str) -> Path:
    return layout.lazy_layer(chain_id).mnt
