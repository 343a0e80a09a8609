"""Where minidocker keeps its state.

The root is ``--root``, else ``$MINIDOCKER_ROOT``, else ``/var/lib/minidocker``. Everything a
student may want to look at lives below it::

    blobs/sha256/<hex>            manifests, configs, compressed layers (content-addressed)
    ingest/                       downloads in progress; renamed into blobs/ once verified
    layers/<chain-id>/diff/       an unpacked layer: an overlay lowerdir
    layers/<chain-id>/meta.json   diff_id, parent, size
    images/index.json             names and tags -> manifest digest
    containers/<id>/              config.json, state.json, log, upper/, work/, merged/
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT = "/var/lib/minidocker"


def default_root() -> Path:
    return Path(os.environ.get("MINIDOCKER_ROOT") or DEFAULT_ROOT)


def config_dir() -> Path:
    """Per-user configuration (credentials saved by ``minidocker login``)."""
    if os.environ.get("MINIDOCKER_CONFIG"):
        return Path(os.environ["MINIDOCKER_CONFIG"])
    return Path(os.path.expanduser("~")) / ".config" / "minidocker"
