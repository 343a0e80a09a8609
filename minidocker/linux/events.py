"""Structured events from the kernel-facing layer, for ``run --explain``.

Every wrapper in ``linux/`` calls ``emit(step, **details)`` once it has made its call. With no
listener installed (the default) ``emit`` returns at once: explaining costs nothing when off.
"""

from __future__ import annotations

import time
from collections.abc import Callable

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import Any

    Listener = Callable[[dict[str, Any]], None]

_listener: Listener | None = None


def listen(fn: Listener | None) -> None:
    """Install (or with None, remove) the one listener, e.g. the CLI's narrator."""
    global _listener
    _listener = fn


def enabled() -> bool:
    return _listener is not None


def emit(step: str, **details: Any) -> None:
    if _listener is not None:
        _listener({"t": time.monotonic(), "step": step, **details})
