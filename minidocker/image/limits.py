"""Unpacking limits: how far a layer may expand, and how much free disk it must leave.

Compression can say very little and mean a lot: deflate writes a long run of zeros at about
1032 to 1, so a 10 MB gzip layer can unpack to 10 GB (a *decompression bomb*). The digests
do not help: the image config's diff_id is simply the digest of the bomb's own tar. So
``pull``, ``load`` and ``import`` unpack every layer under a ``LayerBudget``, which applies
two rules while the bytes stream by and stops with a ``StoreError`` (one line, and a hint
saying how to change the rule) the moment one is broken. The caller's context managers then
throw away the half-made ``layers/.tmp-*`` directory and the ``ingest/`` file, and nothing
is registered.

1. **The expansion limit.** A layer's uncompressed tar (and the holes of its sparse files,
   which are written out as zeros) may be at most 100 times its compressed size, and 1 GiB
   is always allowed. Ordinary layers of binaries and text expand 2 to 4 times, so 100x
   leaves room for odd ones (zero-filled images) and still stops a 10 MB bomb at 1 GiB.
   ``$MINIDOCKER_MAX_LAYER_EXPANSION`` changes it: ``250x`` (another ratio, still at least
   1 GiB), ``20g`` (one fixed limit; k, m, g, t), ``0`` (no limit).
2. **The free-space reserve.** Unpacking stops while the store's file system still has 5%
   of its size free, but it never keeps more than 1 GiB back: a fixed 1 GiB would forbid
   every pull on a small disk or tmpfs, a plain 5% would hold 100 GB idle on a 2 TB disk.
   ``$MINIDOCKER_MIN_FREE_SPACE`` changes it: ``2g``, ``10%``, ``0`` (none: write until the
   kernel says ENOSPC, still a clean error, but the whole system sees a full disk meanwhile).
   "Free" is what ``df`` calls *Avail*: ``statvfs(2)``'s ``f_bavail * f_frsize``, the blocks
   an unprivileged process may still use (ext4 holds 5% more back for root; we leave those).

**Cheap enough for the hot path.** Counting is an addition per chunk and per member; the
kernel is asked (one ``statvfs``) only after an eighth of the room above the reserve has
been written, at most every 256 MiB and at least every 64 KiB. So on a roomy disk a 1 GiB
layer costs about five ``statvfs`` calls, and near the reserve the looks come closer
together, as one reads the fuel gauge more often when it nears empty. An eighth, not a
half: up to three layers unpack at once and each counted byte may be written twice (the
blob in ``ingest/``, the file in the layer), so together they cannot use up the room
between two looks.

Try it: ``stat -f /var/lib/minidocker`` (block size, Blocks: Total and Available) and
``MINIDOCKER_MAX_LAYER_EXPANSION=10m minidocker pull debian``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from minidocker.errors import StoreError
from minidocker.fsutil import storage_error

EXPANSION_VAR = "MINIDOCKER_MAX_LAYER_EXPANSION"
RESERVE_VAR = "MINIDOCKER_MIN_FREE_SPACE"
GiB = 1 << 30
MIN_STEP, MAX_STEP = 64 << 10, 256 << 20  # bytes written between two statvfs calls
MEMBER_COST = 512  # what a tar member costs on disk at least: its header's worth (inode, name)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SETTING = re.compile(r"(\d+(?:\.\d+)?)\s*(x|%|[kmgt]?)(?:i?b)?")


def human(n: float) -> str:
    """``3355443`` -> ``3.2 MiB``: sizes in the binary units the settings are written in."""
    exp = min(4, max(0, (int(n).bit_length() - 1) // 10))
    return f"{n / (1 << 10 * exp):.1f} {('KiB', 'MiB', 'GiB', 'TiB')[exp - 1]}" if exp else f"{int(n)} B"


def parse_setting(name: str, text: str, kinds: str) -> tuple[float, str]:
    """``250x`` -> ``(250, "x")``, ``10%`` -> ``(10, "%")``, ``2g`` -> ``(2147483648, "")``;
    ``kinds`` holds the suffixes besides sizes (``x``, ``%``) that setting ``name`` takes."""
    m = _SETTING.fullmatch(text.strip().lower())
    if not m or (m[2] in ("x", "%") and m[2] not in kinds):
        forms = [{"x": "a ratio (250x)", "%": "a share of the disk (10%)"}[k] for k in kinds] + ["a size (20g)"]
        raise StoreError(f"{name}={text!r} is not {', '.join(forms)} or 0")
    if m[2] in ("x", "%"):
        return float(m[1]), m[2]
    return float(m[1]) * _SIZE_UNITS[m[2]], ""


@dataclass(frozen=True)
class UnpackLimits:
    """The two rules as numbers: a layer may expand to ``max(floor, ratio x compressed)``
    bytes; unpacking leaves ``min(reserve_percent of the file system, reserve_cap)`` free."""

    ratio: float = 100
    floor: float = GiB
    reserve_percent: float = 5
    reserve_cap: float = GiB

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> UnpackLimits:
        """The defaults, changed by ``$MINIDOCKER_MAX_LAYER_EXPANSION`` and
        ``$MINIDOCKER_MIN_FREE_SPACE``; a bad value fails before anything is read."""
        ratio, floor, percent, cap = cls.ratio, cls.floor, cls.reserve_percent, cls.reserve_cap
        if text := env.get(EXPANSION_VAR, "").strip():
            value, kind = parse_setting(EXPANSION_VAR, text, "x")
            if value == 0:
                ratio, floor = 0, math.inf  # no limit
            elif kind == "x":
                ratio = value
            else:
                ratio, floor = 0, value  # one fixed size, whatever the compressed size
        if text := env.get(RESERVE_VAR, "").strip():
            value, kind = parse_setting(RESERVE_VAR, text, "%")
            percent, cap = (value, math.inf) if kind == "%" else (100, value)
        return cls(ratio, floor, percent, cap)

    def expansion_limit(self, compressed: int | None) -> float:
        """How many bytes a layer of ``compressed`` bytes may expand to (None: it is not
        decompressed at all, so no limit)."""
        return math.inf if compressed is None else max(self.floor, self.ratio * compressed)

    def reserve(self, fs_size: int) -> float:
        """The bytes to keep free on a file system of ``fs_size`` bytes."""
        return min(fs_size * self.reserve_percent / 100, self.reserve_cap)


NO_LIMITS = UnpackLimits(ratio=0, floor=math.inf, reserve_percent=0, reserve_cap=0)


class LayerBudget:
    """One layer's counters under ``limits``; ``what`` names the layer in errors.

    ``count_expanded(n)``: n more bytes of the uncompressed layer (from the reader of the
    decompressed stream, and from ``apply_layer`` for the holes of a sparse file).
    ``count_written(n)``: n more bytes are about to be written to the file system that holds
    ``store_dir`` (``apply_layer``'s copy loop, a spool file); ``statvfs`` is asked now and
    then (see the module docstring)."""

    def __init__(self, limits: UnpackLimits, store_dir: os.PathLike | str, what: str, compressed_size: int | None = 0):
        self.limits, self.store_dir, self.what = limits, store_dir, what
        self.compressed = compressed_size
        self.limit = limits.expansion_limit(compressed_size)
        self.expanded = self.written = 0
        self.watching = limits.reserve_percent > 0 and limits.reserve_cap > 0
        self.next_check = 0 if self.watching else math.inf

    @classmethod
    def unlimited(cls) -> LayerBudget:
        return cls(NO_LIMITS, ".", "a layer")

    def saw_compressed(self, total: int) -> None:
        """A stream whose compressed size is known only as it is read (``import -``): the
        limit grows with what has come in so far."""
        self.compressed = total
        self.limit = self.limits.expansion_limit(total)

    def count_expanded(self, n: int) -> None:
        self.expanded += n
        if self.expanded > self.limit:
            raise self.expansion_error()

    def count_written(self, n: int) -> None:
        self.written += n
        if self.written >= self.next_check:
            self.check_free_space(n)

    def check_free_space(self, more: int = 0) -> None:
        """Raise unless ``more`` bytes can still be written above the reserve; plan the next look."""
        if not self.watching:
            return
        try:
            st = os.statvfs(self.store_dir)
        except OSError as e:
            raise storage_error(e, f"checking the free space for {self.what}") from None
        free, reserve = st.f_bavail * st.f_frsize, self.limits.reserve(st.f_blocks * st.f_frsize)
        room = free - reserve - more
        if room < 0:
            raise StoreError(
                f"no space left on device for {self.what}: the store's file system has {human(free)} "
                f"free and keeps a reserve of {human(reserve)}",
                hint="free some disk space (minidocker rmi, minidocker image prune, minidocker container "
                f"prune), or change the reserve: {RESERVE_VAR}=500m (or 2%, or 0 for none)",
            )
        self.next_check = self.written + min(MAX_STEP, max(MIN_STEP, room // 8))

    def expansion_error(self) -> StoreError:
        limits = self.limits
        if limits.ratio and self.limit > limits.floor:
            rule = f"{limits.ratio:g} times its {human(self.compressed or 0)} compressed size"
        elif limits.ratio:
            rule = (
                f"{human(limits.floor)} is allowed to every layer, more than {limits.ratio:g} times its "
                f"{human(self.compressed or 0)} compressed size"
            )
        else:
            rule = f"the limit {EXPANSION_VAR} sets"
        return StoreError(
            f"{self.what} expands to more than {human(self.limit)} ({rule}): refused as a decompression bomb",
            hint=f"if you trust it, raise the limit: {EXPANSION_VAR}=1000x (times the compressed "
            "size), or a size such as 20g, or 0 for no limit",
        )


class ByteStream(Protocol):
    """What a layer reader needs of the stream under it: a file, a decoder or a ChunkReader."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any, /) -> Any: ...


def copy_counted(src: ByteStream, dst: BinaryIO, budget: LayerBudget, chunk: int = 1 << 20) -> int:
    """``shutil.copyfileobj`` under a budget: every chunk is counted as expanded and as
    written before it is written. Returns the number of bytes copied."""
    total = 0
    while data := src.read(chunk):
        budget.count_expanded(len(data))
        budget.count_written(len(data))
        dst.write(data)
        total += len(data)
    return total
