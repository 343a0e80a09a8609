"""``save`` and ``load``: images to and from one tar file, with no registry in between.

Two formats live side by side in the tar ``docker save`` writes since Docker 25, and ``save``
writes both, sharing the same blobs::

    blobs/sha256/<config hex>     the image config (its digest is the image ID)
    blobs/sha256/<diff_id hex>    each layer as an *uncompressed* tar (so its digest is its diff_id)
    blobs/sha256/<manifest hex>   an OCI manifest naming the config and those layers
    index.json                    OCI: one entry per name, annotated with the name:
                                    io.containerd.image.name         docker.io/library/busybox:latest
                                    org.opencontainers.image.ref.name latest
    oci-layout                    OCI: {"imageLayoutVersion": "1.0.0"}
    manifest.json                 docker-archive: [{"Config": path, "RepoTags": [..], "Layers": [paths]}]
    repositories                  docker-archive (legacy): {"busybox": {"latest": top layer}}

``load`` reads a docker-archive (``manifest.json``; its layers may be plain tars or gzip, and
are named ``<id>/layer.tar``, ``<hex>.tar`` or ``blobs/sha256/<hex>`` depending on who wrote
them), or an OCI layout (``index.json``), as a tar or as a directory.

**An archive is as hostile as a registry.** Every name in it is checked (no absolute paths,
no ``..``; links only to other members), every blob that a name or a descriptor gives a
digest for is hashed and compared, every layer's tar is hashed and compared with the
config's diff_id, and layers are unpacked by the same ``apply_layer`` as pull. All of that
happens in two passes: the first reads and hashes everything without writing, the second
unpacks into temp directories that are renamed into place only when their digests check
out. If anything fails on the way, what this load added and no image uses is collected
again: the store is as it was. A gzipped archive and every layer are unpacked under the
expansion limit and the free-space reserve of ``limits.py``, as a pull's layers are.

Try it: ``minidocker save busybox | tar -tv`` and ``skopeo inspect docker-archive:FILE``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from minidocker.errors import (
    ArchiveError,
    DigestMismatch,
    HostileLayer,
    ImageNotFound,
    InvalidReference,
    MinidockerError,
)
from minidocker.image import manifest as mf
from minidocker.image.layer import split_member_name
from minidocker.image.limits import LayerBudget, UnpackLimits, copy_counted
from minidocker.image.pull import ChunkReader, HashingReader, PullEvent, _decode_errors, _noop, open_decompressed
from minidocker.image.reference import parse
from minidocker.image.store import ImageStore
from minidocker.paths import hex_of

READ_SIZE = 1 << 20
MAX_LINK_HOPS = 8
ANNOTATION_NAME = "io.containerd.image.name"
ANNOTATION_REF = "org.opencontainers.image.ref.name"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Progress = Callable[[PullEvent], None]


# -- the OCI manifest of an image whose layers are uncompressed tars -------------------------
def uncompressed_manifest(config: bytes, layers: list[tuple[str, int]]) -> bytes:
    """The OCI manifest ``save`` writes: config + one plain-tar layer per (diff_id, size).

    Compact JSON with a fixed key order, so the same image always gives the same bytes (and
    so the same manifest digest) whoever saves it, and ``load`` of a docker-archive that has
    no manifest can make the very same one."""
    doc = {
        "schemaVersion": 2,
        "mediaType": mf.OCI_MANIFEST,
        "config": {"mediaType": mf.OCI_CONFIG, "digest": mf.sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": mf.OCI_LAYER, "digest": d, "size": s} for d, s in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


# ============================================================================================
# save
# ============================================================================================
@dataclass
class _SavedImage:
    image_id: str
    config: bytes
    tags: list[str] = field(default_factory=list)  # fully qualified, as the store keys them
    layers: list[tuple[str, int]] = field(default_factory=list)  # (diff_id, tar size)
    manifest: bytes = b""


def _tarinfo(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.gid = size, 0, 0, 0  # the same bytes on every save
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    return info


@contextlib.contextmanager
def _layer_tar(store: ImageStore, desc: mf.Descriptor, diff_id: str) -> Iterator[tuple[BinaryIO, int]]:
    """A layer's uncompressed tar as (file, size): the blob itself when it is a plain tar,
    else decompressed into an unnamed temp file (a tar member needs its size up front),
    its sha256 checked against the diff_id on the way."""
    compression = mf.compression_of(desc.media_type)
    if not store.content.has(desc.digest):
        raise ImageNotFound(
            f"layer blob {desc.digest[:19]} is not in the store",
            hint="pull the image again: its compressed layer was not kept",
        )
    if compression == "none":
        with store.content.open(desc.digest) as f:
            yield f, os.fstat(f.fileno()).st_size
        return
    with (
        store.content.open(desc.digest) as raw,
        open_decompressed(raw, compression) as plain,
        tempfile.TemporaryFile(dir=store.layout.ingest_dir) as spool,
    ):
        tar = HashingReader(plain)
        while data := tar.read(READ_SIZE):
            spool.write(data)
        if tar.digest != diff_id:
            raise DigestMismatch(
                f"layer {desc.digest[7:19]} decompresses to {tar.digest[:19]}, not to its diff_id {diff_id[:19]}",
                hint="the store is damaged: pull the image again",
            )
        size = spool.tell()
        spool.seek(0)
        yield spool, size


def save_images(store: ImageStore, names: list[str], out: BinaryIO) -> None:
    """Write the images ``names`` (tags or IDs) to ``out`` as one docker-archive + OCI tar."""
    doc = store.read_index()
    images = collect_saved_images(store, names, doc)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs/", "blobs/sha256/"):
            tar.addfile(_tarinfo(d, directory=True))
        write_image_blobs(store, doc, images, tar)
        index, manifest_json, repositories = describe_saved_images(images)
        for name, obj in (
            ("index.json", {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": index}),
            ("manifest.json", manifest_json),
            ("oci-layout", {"imageLayoutVersion": "1.0.0"}),
            ("repositories", repositories),
        ):
            data = json.dumps(obj, separators=(",", ":")).encode()
            tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))


def collect_saved_images(store: ImageStore, names: list[str], doc: dict) -> dict[str, _SavedImage]:
    """The images ``names`` resolve to, once each, with the tags among ``names`` they carry."""
    images: dict[str, _SavedImage] = {}
    for name in names:
        image_id = store.resolve(name, doc)
        img = images.setdefault(image_id, _SavedImage(image_id, store.content.read(image_id)))
        with contextlib.suppress(InvalidReference):
            ref = parse(name)
            if not ref.digest and str(ref) in doc["tags"] and str(ref) not in img.tags:
                img.tags.append(str(ref))
    return images


def write_image_blobs(store: ImageStore, doc: dict, images: dict[str, _SavedImage], tar: tarfile.TarFile) -> None:
    """Each image's layer tars, config and uncompressed manifest as ``blobs/``, once per digest."""
    written: set[str] = set()

    def add_blob(data: bytes) -> str:
        digest = mf.sha256_digest(data)
        if digest not in written:
            written.add(digest)
            tar.addfile(_tarinfo(f"blobs/sha256/{hex_of(digest)}", len(data)), io.BytesIO(data))
        return digest

    for img in images.values():
        manifest = store.manifest(img.image_id, doc)
        diff_ids = json.loads(img.config)["rootfs"]["diff_ids"]
        for desc, diff_id in zip(manifest.layers, diff_ids):
            with _layer_tar(store, desc, diff_id) as (f, size):
                if diff_id not in written:
                    written.add(diff_id)
                    tar.addfile(_tarinfo(f"blobs/sha256/{hex_of(diff_id)}", size), f)
            img.layers.append((diff_id, size))
        add_blob(img.config)
        img.manifest = uncompressed_manifest(img.config, img.layers)
        add_blob(img.manifest)


def describe_saved_images(
    images: dict[str, _SavedImage],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, str]]]:
    """The OCI ``index.json`` entries, docker's ``manifest.json`` and ``repositories``."""
    index: list[dict[str, Any]] = []
    manifest_json: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for img in images.values():
        desc = {"mediaType": mf.OCI_MANIFEST, "digest": mf.sha256_digest(img.manifest), "size": len(img.manifest)}
        tags: list[str | None] = [*img.tags] or [None]
        for t in tags:
            entry: dict[str, Any] = dict(desc)
            if t:
                ref = parse(t)
                assert ref.tag is not None, "img.tags holds only names with a tag"
                entry["annotations"] = {ANNOTATION_NAME: str(ref), ANNOTATION_REF: ref.tag}
                repositories.setdefault(ref.familiar_name, {})[ref.tag] = (
                    hex_of(img.layers[-1][0]) if img.layers else hex_of(img.image_id)
                )
            index.append(entry)
        manifest_json.append(
            {
                "Config": f"blobs/sha256/{hex_of(img.image_id)}",
                "RepoTags": [parse(t).familiar() for t in img.tags],
                "Layers": [f"blobs/sha256/{hex_of(d)}" for d, _ in img.layers],
            }
        )
    return index, manifest_json, repositories


def save_to_file(store: ImageStore, names: list[str], path: Path) -> None:
    """``save -o FILE``: written next to FILE under a temp name, fsynced, then renamed, so
    FILE is either the old file or the whole new archive, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            save_images(store, names, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# ============================================================================================
# load: where the files come from (a tar, or a directory)
# ============================================================================================
class TarSource:
    """Members of a tar, by name, with random access (a file on disk, not a pipe).

    Every name is checked when the archive is opened; a symlink or hard link member is
    followed only to another member of the archive, never to a file of this host."""

    def __init__(self, f: BinaryIO):
        try:
            self.tar = tarfile.open(fileobj=f, mode="r:")
            members = self.tar.getmembers()
        except (tarfile.TarError, EOFError, OSError) as e:
            raise ArchiveError(f"the archive is not a tar, or it is truncated: {e}") from None
        self.members: dict[str, tarfile.TarInfo] = {}
        for m in members:
            try:
                parts = split_member_name(m.name)
            except HostileLayer as e:
                raise ArchiveError(f"archive refused: {e.message.removeprefix('layer refused: ')}") from None
            if parts:
                self.members["/".join(parts)] = m

    def _resolve(self, name: str) -> tarfile.TarInfo | None:
        m = self.members.get(name)
        for _ in range(MAX_LINK_HOPS):
            if m is None or not (m.issym() or m.islnk()):
                return m
            base = os.path.dirname(name) if m.issym() else ""
            target = os.path.normpath(os.path.join(base, m.linkname))
            if target.startswith(("../", "/")) or target == "..":
                raise ArchiveError(f"archive refused: link {m.name!r} -> {m.linkname!r} leaves the archive")
            name, m = target, self.members.get(target)
        raise ArchiveError(f"archive refused: too many links from {name!r}")

    def exists(self, name: str) -> bool:
        m = self._resolve(_norm(name))
        return m is not None and m.isreg()

    def size(self, name: str) -> int:
        m = self._resolve(_norm(name))
        if m is None or not m.isreg():
            raise ArchiveError(f"the archive has no file {name!r}")
        return m.size

    def open(self, name: str) -> IO[bytes]:
        m = self._resolve(_norm(name))
        if m is None or not m.isreg():
            raise ArchiveError(f"the archive has no file {name!r}")
        f = self.tar.extractfile(m)
        assert f is not None, "a regular member always has data to extract"
        return f


class DirSource:
    """The files of an OCI layout directory; a symlink may not lead out of it."""

    def __init__(self, root: Path):
        self.root = Path(os.path.realpath(root))

    def _path(self, name: str) -> Path:
        p = os.path.realpath(self.root / _norm(name))
        if not p.startswith(str(self.root) + "/"):
            raise ArchiveError(f"layout refused: {name!r} leads out of {self.root}")
        return Path(p)

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def open(self, name: str) -> BinaryIO:
        p = self._path(name)
        if not p.is_file():
            raise ArchiveError(f"the layout has no file {name!r}")
        return open(p, "rb")


def _norm(name: str) -> str:
    try:
        return "/".join(split_member_name(name))
    except HostileLayer as e:
        raise ArchiveError(f"archive refused: {e.message.removeprefix('layer refused: ')}") from None


def _read(src, name: str, limit: int = 64 << 20) -> bytes:
    if src.size(name) > limit:
        raise ArchiveError(f"{name!r} in the archive is larger than {limit} bytes")
    with src.open(name) as f:
        data = f.read()
    if len(data) != src.size(name):
        raise ArchiveError(f"the archive is truncated: {name!r} is cut short")
    return data


def _hash(src, name: str) -> str:
    h = hashlib.sha256()
    n = 0
    with src.open(name) as f:
        while data := f.read(READ_SIZE):
            h.update(data)
            n += len(data)
    if n != src.size(name):
        raise ArchiveError(f"the archive is truncated: {name!r} is cut short")
    return "sha256:" + h.hexdigest()


def _digest_in_name(name: str) -> str | None:
    """The digest a member's name claims: ``blobs/sha256/<hex>``, ``<hex>.json``, ``<hex>.tar``."""
    base = name.rsplit("/", 1)[-1].removesuffix(".json").removesuffix(".tar")
    if len(base) == 64 and all(c in "0123456789abcdef" for c in base):
        return "sha256:" + base
    return None


# ============================================================================================
# load: read and check everything (pass 1), then unpack and record (pass 2)
# ============================================================================================
@dataclass
class _Layer:
    name: str  # member holding the blob
    digest: str  # of the blob as stored (compressed or not)
    size: int
    media_type: str
    diff_id: str


@dataclass
class _Image:
    config: bytes
    layers: list[_Layer]
    manifest: bytes
    tags: list[str]  # fully qualified

    @property
    def image_id(self) -> str:
        return mf.sha256_digest(self.config)


def _check_config(config: bytes, n_layers: int, where: str) -> list[str]:
    try:
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        assert isinstance(diff_ids, list) and all(isinstance(d, str) for d in diff_ids)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise ArchiveError(f"the image config {where} is not a valid image config") from None
    if len(diff_ids) != n_layers:
        raise ArchiveError(f"the image config {where} names {len(diff_ids)} layers, the manifest {n_layers}")
    for d in diff_ids:
        hex_of(d)
    return diff_ids


def _compression(src, name: str) -> str:
    with src.open(name) as f:
        head = f.read(4)
    return "gzip" if head[:2] == GZIP_MAGIC else "zstd" if head == ZSTD_MAGIC else "none"


def read_docker_archive(src) -> list[_Image]:
    try:
        entries = json.loads(_read(src, "manifest.json"))
        assert isinstance(entries, list)
    except (ValueError, AssertionError):
        raise ArchiveError("manifest.json of the archive is not a JSON list") from None
    out = []
    for e in entries:
        try:
            config_name, layer_names = e["Config"], list(e["Layers"])
            repo_tags = list(e.get("RepoTags") or [])
        except (KeyError, TypeError):
            raise ArchiveError("manifest.json of the archive lacks Config or Layers") from None
        config = _read(src, config_name)
        claimed = _digest_in_name(config_name)
        if claimed and claimed != mf.sha256_digest(config):
            raise DigestMismatch(
                f"the config {config_name!r} hashes to {mf.sha256_digest(config)[:19]}, "
                "not to the digest its name gives",
                hint="the archive was changed; nothing was loaded",
            )
        diff_ids = _check_config(config, len(layer_names), config_name)
        layers = []
        for name, diff_id in zip(layer_names, diff_ids):
            digest = _hash(src, name)
            claimed = _digest_in_name(name)
            if claimed and claimed != digest:
                raise DigestMismatch(
                    f"layer {name!r} hashes to {digest[:19]}, not to the digest its name gives",
                    hint="the archive was changed; nothing was loaded",
                )
            media_type = {"gzip": mf.OCI_LAYER_GZIP, "zstd": mf.OCI_LAYER_ZSTD}.get(
                _compression(src, name), mf.OCI_LAYER
            )
            if media_type == mf.OCI_LAYER and digest != diff_id:
                raise DigestMismatch(
                    f"layer {name!r} hashes to {digest[:19]}, but the config names diff_id {diff_id[:19]}",
                    hint="the archive was changed; nothing was loaded",
                )
            layers.append(_Layer(name, digest, src.size(name), media_type, diff_id))
        if all(la.media_type == mf.OCI_LAYER for la in layers):
            manifest = uncompressed_manifest(config, [(la.diff_id, la.size) for la in layers])
        else:
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": mf.OCI_MANIFEST,
                    "config": {"mediaType": mf.OCI_CONFIG, "digest": mf.sha256_digest(config), "size": len(config)},
                    "layers": [{"mediaType": la.media_type, "digest": la.digest, "size": la.size} for la in layers],
                },
                separators=(",", ":"),
            ).encode()
        tags = []
        for t in repo_tags:
            try:
                tags.append(str(parse(t)))
            except InvalidReference as err:
                raise ArchiveError(f"manifest.json names an invalid tag {t!r}: {err.message}") from None
        out.append(_Image(config, layers, manifest, tags))
    return out


def _blob(src, digest: str, size: int | None = None, limit: int = 64 << 20) -> bytes:
    name = f"blobs/sha256/{hex_of(digest)}"
    if not src.exists(name):
        raise ArchiveError(f"the layout has no blob {digest[:19]}")
    data = _read(src, name, limit)
    if mf.sha256_digest(data) != digest or (size is not None and len(data) != size):
        raise DigestMismatch(
            f"blob {digest[:19]} of the layout does not match its digest",
            hint="the archive was changed; nothing was loaded",
        )
    return data


def read_oci_layout(src, platform: mf.Platform | None = None) -> list[_Image]:
    platform = platform or mf.Platform.host()
    try:
        index = json.loads(_read(src, "index.json"))
        entries = [(mf.Descriptor.from_json(d), d.get("annotations") or {}) for d in index["manifests"]]
    except (ValueError, KeyError, TypeError, MinidockerError):
        raise ArchiveError("index.json of the layout is not an OCI index") from None
    by_manifest: dict[str, _Image] = {}
    for desc, notes in entries:
        raw, media_type = _blob(src, desc.digest, desc.size), desc.media_type
        if media_type in mf.INDEX_TYPES:
            desc = mf.select_platform(raw, platform)
            raw, media_type = _blob(src, desc.digest, desc.size), desc.media_type
        if media_type not in mf.MANIFEST_TYPES:
            continue  # an artifact, a signature...: not an image
        manifest = mf.parse_manifest(raw)
        if desc.digest not in by_manifest:
            config = _blob(src, manifest.config.digest, manifest.config.size)
            diff_ids = _check_config(config, len(manifest.layers), manifest.config.digest[:19])
            layers = []
            for la, diff_id in zip(manifest.layers, diff_ids):
                name = f"blobs/sha256/{hex_of(la.digest)}"
                if not src.exists(name):
                    raise ArchiveError(f"the layout has no blob for layer {la.digest[:19]}")
                if _hash(src, name) != la.digest or src.size(name) != la.size:
                    raise DigestMismatch(
                        f"layer {la.digest[:19]} of the layout does not match its digest",
                        hint="the archive was changed; nothing was loaded",
                    )
                mf.compression_of(la.media_type)  # refuse what we cannot unpack, before writing
                layers.append(_Layer(name, la.digest, la.size, la.media_type, diff_id))
            by_manifest[desc.digest] = _Image(config, layers, raw, [])
        name = notes.get(ANNOTATION_NAME) or notes.get(ANNOTATION_REF) or ""
        with contextlib.suppress(InvalidReference):
            if name and ("/" in name or ":" in name):  # a bare "latest" names no repository
                ref = parse(name)
                if ref.tag and not ref.digest:
                    by_manifest[desc.digest].tags.append(str(ref))
    return list(by_manifest.values())


def load_layer(
    store: ImageStore, src, la: _Layer, chain_id: str, parent: str | None, progress: Progress, limits: UnpackLimits
) -> None:
    """Unpack one checked layer through the store's ``apply_diff``, storing its blob as it
    streams by."""
    sid = la.digest[7:19]
    budget = LayerBudget(limits, store.layout.layers_dir, f"layer {sid} of the archive", la.size)
    with store.layer_lock(chain_id), store.content.lock(la.digest):
        have_layer, have_blob = store.has_layer(chain_id), store.content.has(la.digest)
        if have_layer and have_blob:
            progress(PullEvent(sid, "Already exists", la.size, la.size))
            return
        with contextlib.ExitStack() as stack:
            if not have_blob:
                budget.check_free_space(la.size)  # room for the blob, above the reserve
            sink = None if have_blob else stack.enter_context(store.content.ingest(la.digest, la.size))
            raw = stack.enter_context(src.open(la.name))
            done = [0]

            def chunks() -> Iterator[bytes]:
                while data := raw.read(READ_SIZE):
                    if sink:
                        sink.write(data)
                    done[0] += len(data)
                    progress(PullEvent(sid, "Loading layer", done[0], la.size))
                    yield data

            reader = ChunkReader(chunks(), None, lambda n: None, threading.Event())
            tar = HashingReader(
                stack.enter_context(open_decompressed(reader, mf.compression_of(la.media_type))), budget
            )
            try:
                if have_layer:
                    tar.drain()
                else:
                    layer = stack.enter_context(store.create(chain_id, parent))
                    stats = layer.apply_diff(io.BufferedReader(tar, READ_SIZE), budget)
                    tar.drain()
                reader.drain()
            except _decode_errors() as e:
                raise ArchiveError(f"layer {sid} of the archive is not a valid tar: {e}") from None
            if tar.digest != la.diff_id:
                raise DigestMismatch(
                    f"layer {sid} unpacks to {tar.digest[:19]}, but the image config names diff_id {la.diff_id[:19]}",
                    hint="the archive was changed; nothing was loaded",
                )
            if not have_layer:
                layer.commit(
                    {
                        "diff_id": la.diff_id,
                        "digest": la.digest,
                        "media_type": la.media_type,
                        "size": stats.size,
                        "entries": stats.entries,
                    }
                )
    progress(PullEvent(sid, "Loaded", la.size, la.size))


@contextlib.contextmanager
def open_source(
    store: ImageStore, path: Path | None, stdin: BinaryIO | None, limits: UnpackLimits
) -> Iterator[TarSource | DirSource]:
    """A directory, or a tar (plain or gzip, a file or stdin) made seekable on disk: the
    copies in ``ingest/`` are counted against ``limits`` (a gzipped archive can be a bomb
    as well as a layer)."""
    if path is not None and Path(path).is_dir():
        yield DirSource(Path(path))
        return
    store.ensure()
    with contextlib.ExitStack() as stack:
        f: BinaryIO
        if path is not None:
            try:
                f = stack.enter_context(open(path, "rb"))
            except OSError as e:
                raise ArchiveError(f"cannot open {path}: {e.strerror}") from None
        else:
            f = stack.enter_context(tempfile.TemporaryFile(dir=store.layout.ingest_dir))
            assert stdin is not None, "without a path the archive comes on stdin"
            copy_counted(stdin, f, LayerBudget(limits, store.layout.ingest_dir, "the archive on stdin", None))
            if f.tell() == 0:
                raise ArchiveError("requested load from stdin, but stdin is empty")
            f.seek(0)
        head = f.read(2)
        f.seek(0)
        if head == GZIP_MAGIC:  # a gzipped archive: unpack it once, then seek freely
            spool = stack.enter_context(tempfile.TemporaryFile(dir=store.layout.ingest_dir))
            budget = LayerBudget(limits, store.layout.ingest_dir, "the gzipped archive", os.fstat(f.fileno()).st_size)
            try:
                with gzip.GzipFile(fileobj=f) as gz:
                    copy_counted(gz, spool, budget, READ_SIZE)
            except (OSError, EOFError) as e:
                raise ArchiveError(f"the gzipped archive is damaged or truncated: {e}") from None
            spool.seek(0)
            f = spool
        yield TarSource(f)


def load_images(
    store: ImageStore, path: Path | None, stdin: BinaryIO | None = None, progress: Progress | None = None
) -> list[str]:
    """``docker load``; returns the lines it prints (``Loaded image: NAME:TAG`` ...)."""
    progress = progress or _noop
    limits = UnpackLimits.from_env()
    store.ensure()
    lines: list[str] = []
    ok = False
    try:
        with open_source(store, path, stdin, limits) as src:
            if src.exists("manifest.json"):
                images = read_docker_archive(src)
            elif src.exists("index.json"):
                images = read_oci_layout(src)
            else:
                raise ArchiveError("this is neither a docker-archive (manifest.json) nor an OCI layout (index.json)")
            if not images:
                raise ArchiveError("the archive holds no image")
            with store.gc_guard():
                for img in images:
                    chains = mf.chain_ids([la.diff_id for la in img.layers])
                    for i, la in enumerate(img.layers):
                        load_layer(store, src, la, chains[i], chains[i - 1] if i else None, progress, limits)
                    store.content.put(img.config, img.image_id)
                    manifest_digest = store.content.put(img.manifest)
                    tags: list[str | None] = [*img.tags] or [None]
                    for t in tags:
                        store.record_image(img.image_id, manifest_digest, t, None)
                    lines += [f"Loaded image: {parse(t).familiar()}" for t in img.tags] or [
                        f"Loaded image ID: {img.image_id}"
                    ]
        ok = True
    except (tarfile.TarError, EOFError) as e:
        raise ArchiveError(f"the archive is damaged or truncated: {e}") from None
    finally:
        if not ok:
            # Give back what this load unpacked or stored and no image uses (the locks
            # make sure a concurrent pull's layers are recorded, or kept, first).
            with contextlib.suppress(MinidockerError, OSError):
                store.collect_garbage()
    return lines
