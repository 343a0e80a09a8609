"""Where minidocker keeps its state, and who may enter it.

The root is ``--root``, else ``$MINIDOCKER_ROOT``, else ``/var/lib/minidocker``. Everything a
student may want to look at lives below it::

    blobs/sha256/<hex>            manifests, configs, compressed layers (content-addressed)
    ingest/                       downloads in progress; renamed into blobs/ once verified
    layers/<chain-id>/diff/       an unpacked layer: an overlay lowerdir
    layers/<chain-id>/meta.json   diff_id, parent, size
    images/index.json             names and tags -> manifest digest
    containers/<id>/              config.json, state.json, log, upper/, work/, merged/

**The store is root's alone** (``sudo ls`` your way down). An unpacked layer holds the
image's files with the image's owners and modes: a setuid-root binary, a 0666 device node.
Were ``layers/`` open to everyone, any local user could run that binary as root, or write
to that device, without a container in sight. The kernel checks search (x) permission on
every directory of a path, so a root directory of mode 0700 closes everything below it,
whatever the modes further down; as docker does with /var/lib/docker, the directories
below are made 0700 too, as a second wall. ``prepare_store`` makes the root and its
top-level directories so, and tightens them in a store an older minidocker left at 0755.

See it: ``stat -c '%a %U %n' /var/lib/minidocker /var/lib/minidocker/*``, and
``setpriv --reuid=65534 --regid=65534 --clear-groups ls /var/lib/minidocker`` (denied).
"""

from __future__ import annotations

import os
from pathlib import Path

from minidocker.fsutil import make_private_dir

DEFAULT_ROOT = "/var/lib/minidocker"

# Every top-level directory of the store. A new one (named volumes, when they come) belongs
# here, so that it is made 0700 like the rest.
STORE_DIRS = ("blobs", "ingest", "layers", "images", "containers", "locks", "networks", "cache")


def default_root() -> Path:
    return Path(os.environ.get("MINIDOCKER_ROOT") or DEFAULT_ROOT)


def prepare_store(root: Path) -> None:
    """Make the store root and its top-level directories, each 0700 (or tighten them to
    0700 where they exist): a handful of mkdir and stat calls, no walk of the tree. Called
    by every writer as it opens the store (pull, load, import, commit, create, network)."""
    make_private_dir(root)
    for name in STORE_DIRS:
        make_private_dir(Path(root) / name)


def config_dir() -> Path:
    """Per-user configuration (credentials saved by ``minidocker login``)."""
    if os.environ.get("MINIDOCKER_CONFIG"):
        return Path(os.environ["MINIDOCKER_CONFIG"])
    return Path(os.path.expanduser("~")) / ".config" / "minidocker"
