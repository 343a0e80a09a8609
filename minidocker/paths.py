"""Where minidocker keeps its state, and who may enter it: every path, named once.

The root is ``--root``, else ``$MINIDOCKER_ROOT``, else ``/var/lib/minidocker``. ``Layout``
names every file and directory below it (``ContainerLayout`` those of one container), and
nothing else in minidocker joins a store path from strings. What a student finds there::

    /var/lib/minidocker/
      lock                          the store lock: held around every change of images/index.json
      blobs/sha256/<hex>            manifests, configs, compressed layers (content-addressed)
      ingest/<hex>                  a download in progress; renamed into blobs/ once verified
      ingest/new-*                  a blob being made (commit); named by its digest at the end
      layers/<chain-id>/            an unpacked layer, named by its chain ID:
        diff/                         its files: an overlay lowerdir
        meta.json                     diff_id, parent, compressed digest, size
      layers/.tmp-*/                a layer being written (diff/, meta.json) or deleted, locked
      lazy/<chain-id>/              a layer pulled lazily (pull --lazy): in the registry still
        meta.json                     diff_id, parent, digest, its registry, format (estargz, zran)
        toc                           its table of contents (eStargz: the blob's tail; zran: the index)
        cache/chunks                  the chunks of its files read so far: one sparse file, a place per chunk
        mnt/                          where its FUSE file system is mounted: an overlay lowerdir
        server.json server.log        that file system's server (PID, start time) and its log
        access.log                    the first open of each of its files (run --record-access)
        fetch.json                    the background fetch that makes it an ordinary layer
      lazy/.tmp-*/                  a lazy layer being recorded (or deleted)
      zran/<hex>                    which blob is the zran index of that layer blob (convert --index)
      images/index.json             tags -> image ID (the config digest), image records
      locks/<hex>.lock              flock files: a blob being written,
      locks/layer-<chain-id>.lock   a layer being written,
      locks/lazy-<chain-id>.lock    a lazy layer being mounted or removed,
      locks/gc.lock                 the garbage collector (writers hold it shared),
      locks/networks.lock           the network records
      locks/volumes.lock            the volume records
      locks/events.lock             the event log's rotation
      networks/<name>.json          bridge, subnet, gateway, container -> address
      networks/<name>.dns.pid       the network's resolver (user networks, while it has containers)
      volumes/.new-*/               a volume being made (renamed to <name>/ once whole) or removed
      volumes/<name>/               one volume (the local driver):
        _data/                        its files: bound onto the container's path
        volume.json                   driver, labels, options, creation time
      build-cache.json              build steps (parent, instruction, content) -> image
      events.jsonl events.jsonl.1   the event log (`minidocker events`), one JSON event a line; the rotated older part
      containers/.lock              held while a container record is made, changed or removed
      containers/.new-<id>/         a record being made; renamed to <id>/ once whole
      containers/.rm-<id>/          a record being removed
      containers/<id>/              one container:
        config.json                   its spec (image, command, limits, ...)
        state.json                    Status, Pid, ExitCode, StartedAt, FinishedAt, ...
        upper/ work/ merged/          the overlay's writable layer, its scratch dir, the mount point
        empty/                        the one lowerdir of an image that has no layers
        hostname hosts resolv.conf    bound onto the container's /etc files
        container.log                 its output, one JSON object a line (docker's json-file)
        console.sock                  its monitor's socket, for attach (while it runs)
        shm/                          --ipc shareable: its /dev/shm, a tmpfs others may join
        layers/<n>/                   --userns=auto: the layers' idmapped views (or shifted copies)
      cache/seccomp/                compiled seccomp programs, <key>.bpf (profile + capabilities)

README.md shows the same tree, and tests/unit/test_layout.py holds the two to the Layout.

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

from minidocker.errors import DigestMismatch
from minidocker.fsutil import make_private_dir

DEFAULT_ROOT = "/var/lib/minidocker"
TEMP_LAYER_PREFIX = ".tmp-"  # layers/.tmp-*: a layer being written or deleted (never a chain ID)
NEW_CONTAINER_PREFIX, REMOVED_CONTAINER_PREFIX = ".new-", ".rm-"
NEW_VOLUME_PREFIX = ".new-"  # volumes/.new-*: a volume being made (a volume's name starts with a letter or digit)


def hex_of(digest: str) -> str:
    """The hex part of a ``sha256:<64 hex>`` digest, the only form that may become a file
    name: anything else (``sha256:../../etc``) is refused before it is joined to a path."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise DigestMismatch(f"unsupported or malformed digest {digest!r}")
    return hexpart


def below(*parts: str, base: str = "dir") -> property:
    """A layout's attribute that names the path ``parts`` below its ``base`` attribute."""
    return property(lambda layout: getattr(layout, base).joinpath(*parts), doc="/".join(parts))


class LayerLayout:
    """``layers/<chain-id>/`` (or a temp dir being made into one)."""

    # Plain classes, not dataclasses: these are made on every container start, and a
    # dataclass costs a millisecond to *define* (it compiles its methods at import).
    __slots__ = ("dir",)

    def __init__(self, dir: Path):
        self.dir = dir

    diff = below("diff")  # the layer's files: one overlay lowerdir
    meta = below("meta.json")


class LazyLayout:
    """``lazy/<chain-id>/``: a layer whose files are still in the registry (minidocker/lazy/)."""

    __slots__ = ("dir",)

    def __init__(self, dir: Path):
        self.dir = dir

    meta = below("meta.json")
    toc = below("toc")
    cache = below("cache")
    chunks = below("cache", "chunks")  # the chunk cache's one file (lazy/cache.py: ChunkCache(cache).file)
    mnt = below("mnt")  # the FUSE mount: one overlay lowerdir
    server = below("server.json")
    log = below("server.log")
    access = below("access.log")  # the first open of each file, for run --record-access
    fetch = below("fetch.json")


class VolumeLayout:
    """``volumes/<name>/`` (or a temp dir being made into one): a volume of the local driver."""

    __slots__ = ("dir",)

    def __init__(self, dir: Path):
        self.dir = dir

    data = below("_data")  # the files a container sees at the volume's mount point
    record = below("volume.json")


class ContainerLayout:
    """``containers/<id>/``: one container's record and the directories of its overlay.
    ``store`` is the Layout of the store the container lives in."""

    __slots__ = ("dir", "store")

    def __init__(self, dir: Path, store: Layout):
        self.dir, self.store = dir, store

    config = below("config.json")
    state = below("state.json")
    upper = below("upper")
    work = below("work")
    merged = below("merged")
    empty = below("empty")
    hostname = below("hostname")
    hosts = below("hosts")
    resolv_conf = below("resolv.conf")
    log = below("container.log")
    console = below("console.sock")  # the monitor's, for attach (runtime/console.py)
    layer_views = below("layers")
    shm = below("shm")  # --ipc shareable: its /dev/shm, a tmpfs on the host's side (container:X binds it too)

    def layer_view(self, n: int) -> Path:
        """Where layer ``n`` (top first) is shown idmapped to a --userns=auto container."""
        return self.layer_views / str(n)


class Layout:
    """Every path of the store at ``root``."""

    __slots__ = ("root",)

    def __init__(self, root: Path | str):
        self.root = Path(root)

    store_lock = below("lock", base="root")  # held around every change of images/index.json
    blobs_dir = below("blobs", "sha256", base="root")
    ingest_dir = below("ingest", base="root")
    locks_dir = below("locks", base="root")
    gc_lock = below("gc.lock", base="locks_dir")
    networks_lock = below("networks.lock", base="locks_dir")
    volumes_lock = below("volumes.lock", base="locks_dir")
    events_lock = below("events.lock", base="locks_dir")  # (eventlog.py)
    event_log = below("events.jsonl", base="root")
    rotated_event_log = below("events.jsonl.1", base="root")
    layers_dir = below("layers", base="root")
    lazy_dir = below("lazy", base="root")
    zran_dir = below("zran", base="root")
    index = below("images", "index.json", base="root")  # tags -> image ID, and the image records
    build_cache = below("build-cache.json", base="root")
    networks_dir = below("networks", base="root")
    volumes_dir = below("volumes", base="root")
    seccomp_cache = below("cache", "seccomp", base="root")
    containers_dir = below("containers", base="root")
    containers_lock = below(".lock", base="containers_dir")

    @property
    def store_dirs(self) -> tuple[Path, ...]:
        """The top-level directories, each made 0700 by ``prepare_store``."""
        return (
            self.blobs_dir.parent,
            self.ingest_dir,
            self.layers_dir,
            self.lazy_dir,
            self.zran_dir,
            self.index.parent,
            self.containers_dir,
            self.locks_dir,
            self.networks_dir,
            self.volumes_dir,
            self.seccomp_cache.parent,
        )

    def blob(self, digest: str) -> Path:
        return self.blobs_dir / hex_of(digest)

    def ingest_file(self, digest: str) -> Path:
        """The temp file of a blob whose digest is known before its bytes (a download)."""
        return self.ingest_dir / hex_of(digest)

    def new_ingest_file(self, suffix: str) -> Path:
        """The temp file of a blob whose digest is known only at its end (a commit)."""
        return self.ingest_dir / f"new-{suffix}"

    def blob_lock(self, digest: str) -> Path:
        return self.locks_dir / f"{hex_of(digest)}.lock"

    def layer_lock(self, chain_id: str) -> Path:
        return self.locks_dir / f"layer-{hex_of(chain_id)}.lock"

    def layer(self, chain_id: str) -> LayerLayout:
        return LayerLayout(self.layers_dir / hex_of(chain_id))

    def temp_layer(self, suffix: str) -> Path:
        """``layers/.tmp-<suffix>``: a layer being written (or deleted), locked by its writer."""
        return self.layers_dir / f"{TEMP_LAYER_PREFIX}{suffix}"

    def lazy_layer(self, chain_id: str) -> LazyLayout:
        return LazyLayout(self.lazy_dir / hex_of(chain_id))

    def temp_lazy_layer(self, suffix: str) -> Path:
        return self.lazy_dir / f"{TEMP_LAYER_PREFIX}{suffix}"

    def zran_record(self, digest: str) -> Path:
        """``zran/<hex>``: which blob is the zran index of the layer blob ``digest`` (image/zran_store.py)."""
        return self.zran_dir / hex_of(digest)

    def lazy_lock(self, chain_id: str) -> Path:
        """Held while a lazy layer is mounted, unmounted or removed (not ``layer_lock``: a
        background fetch holds that one for as long as its download takes)."""
        return self.locks_dir / f"lazy-{hex_of(chain_id)}.lock"

    def network(self, name: str) -> Path:
        return self.networks_dir / f"{name}.json"

    def network_resolver_pid(self, name: str) -> Path:
        """The PID (and start time) of the network's resolver process (runtime/dns.py)."""
        return self.networks_dir / f"{name}.dns.pid"

    def volume(self, name: str) -> VolumeLayout:
        """``volumes/<name>/``; ``name`` is checked first (runtime/volumes.py: never a path)."""
        return VolumeLayout(self.volumes_dir / name)

    def new_volume(self, suffix: str) -> Path:
        """Where a volume is made whole (its ``_data`` and record) before it is renamed to ``<name>/``."""
        return self.volumes_dir / f"{NEW_VOLUME_PREFIX}{suffix}"

    def container(self, cid: str) -> ContainerLayout:
        return ContainerLayout(self.containers_dir / cid, self)

    def new_container(self, cid: str) -> Path:
        """Where a container's record is made whole before it is renamed to ``<id>/``."""
        return self.containers_dir / f"{NEW_CONTAINER_PREFIX}{cid}"

    def removed_container(self, cid: str) -> Path:
        """Where a container's record goes, out of sight, while its files are deleted."""
        return self.containers_dir / f"{REMOVED_CONTAINER_PREFIX}{cid}"


# Every top-level directory of the store. A new one belongs in Layout.store_dirs, so that it
# is made 0700 like the rest.
STORE_DIRS = tuple(p.name for p in Layout(Path(DEFAULT_ROOT)).store_dirs)


def default_root() -> Path:
    return Path(os.environ.get("MINIDOCKER_ROOT") or DEFAULT_ROOT)


def prepare_store(root: Path) -> None:
    """Make the store root and its top-level directories, each 0700 (or tighten them to
    0700 where they exist): a handful of mkdir and stat calls, no walk of the tree. Called
    by every writer as it opens the store (pull, load, import, commit, create, network)."""
    make_private_dir(root)
    for d in Layout(root).store_dirs:
        make_private_dir(d)


def config_dir() -> Path:
    """Per-user configuration (credentials saved by ``minidocker login``)."""
    if os.environ.get("MINIDOCKER_CONFIG"):
        return Path(os.environ["MINIDOCKER_CONFIG"])
    return Path(os.path.expanduser("~")) / ".config" / "minidocker"
