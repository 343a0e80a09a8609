"""The image store: tags, images and unpacked layers, on disk under the root.

Its vocabulary is Docker's storage driver's, the one every lecture on Docker images uses:

* ``create(chain_id, parent)``: a new layer on a parent, written in a locked temp dir
  (a ``LayerWriter``); ``apply_diff`` unpacks a layer tar into it (pull, load, import;
  commit too, with the tar it writes), and ``commit`` gives it its name;
* ``get(id)``: an image or a layer with all its ancestors, as the overlay ``lowerdir``
  list that mounts it. image/ makes no syscalls, so the mount itself is the runtime's
  (``runtime/rootfs.mount_overlay`` in a container, ``runtime/export.mounted`` for
  ``export``), and ``put(id)``, docker's unmount, has nothing to do here: those mounts
  live in private mount namespaces, which the kernel takes down with their last process;
* ``diff(chain_id)``: a layer as a compressed tar, the blob it was pulled or committed as.

On disk (``ls`` your way down from ``minidocker images``; every path is named in paths.py's
``Layout``): ``images/index.json`` holds ``{"tags": {name:tag -> image id}, "images": {id
-> record}}``; ``blobs/sha256/`` the manifest, config and compressed layers of every image;
``layers/<chain-id hex>/`` each unpacked layer (``diff/`` and ``meta.json``), and
``layers/.tmp-*/`` a layer being unpacked (or deleted), locked by its writer.

An image ID is the digest of its config, as docker shows it. A layer is unpacked once and
shared by every image whose layer chain contains it. ``rmi`` removes what no image needs.

A SIGKILL at any moment leaves either the old state or the new: a layer gets its name by one
rename, only once it is whole; an image exists once ``images/index.json`` names it, its last
write; and the garbage collector takes a layer out of the layers' names before it deletes
its files. What a killed command leaves behind (a ``.tmp-*`` whose lock is free, a blob or a
layer no image names) is garbage for the next writer or the next ``rmi``/``prune``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from minidocker.crashpoint import crashpoint
from minidocker.errors import Conflict, DigestMismatch, ImageNotFound, InvalidReference, StoreError
from minidocker.fsutil import fsync_dir, locked, mkdir_apart, read_json, remove_tree, storage_error, write_json
from minidocker.image import manifest as mf
from minidocker.image.content import ContentStore, create_owned, reclaim_orphans
from minidocker.image.reference import parse
from minidocker.paths import TEMP_LAYER_PREFIX, LayerLayout, hex_of, prepare_store
from minidocker.record import field, record

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:  # (and the unpacker, tarfile and all, is imported only by a pull, not by every `run`)
    from typing import Any, BinaryIO, Protocol

    from minidocker.image.layer import LayerStats
    from minidocker.image.limits import LayerBudget

    class LazyDriver(Protocol):
        """What mounts the lazy layers (a lazy pull's, still in the registry) for ``get``:
        lazy/mounts.py's ``LazyMounts``, handed in by api.py (image/ makes no system calls)."""

        def has(self, chain_id: str) -> bool: ...
        def meta(self, chain_id: str) -> dict[str, Any]: ...
        def mount(self, chain_id: str, prefetch: list[str] | tuple[str, ...] = ()) -> Path: ...
        def remove(self, chain_id: str) -> None: ...
        def completed(self, chain_id: str) -> bool: ...


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


@record
class ImageInfo:
    id: str
    tags: list[str]
    repo_digests: list[str]
    created: str
    size: int
    config: dict[str, Any] = field(repr=False, default_factory=dict)


class LayerWriter:
    """A layer being written in ``layers/.tmp-*/``, the one way a layer enters the store;
    ``commit`` renames it to ``layers/<chain-id>/``. The temp dir is locked while it is ours
    (content.py's rule for temp files), so what a killed writer left is told apart from a
    live one's, and reclaimed.

    Like ``content.Ingest``, it may be told the name it must get (``expected``: a pull
    knows each layer's chain ID from the image config; its caller holds that chain's
    ``layer_lock``), or learn it at the end from its content (a commit: the chain ID of the
    tar it wrote on ``parent``; ``commit`` then takes the lock)."""

    def __init__(self, store: ImageStore, parent: str | None, expected: str | None = None):
        self.store, self.parent, self.expected = store, parent, expected
        self.chain_id = expected  # known for sure once committed
        store.reclaim_layers()
        self.tmp = store.layout.temp_layer(hex_of(expected) if expected else f"new-{os.urandom(8).hex()}")
        self.lock_fd = create_owned(self.tmp, directory=True)  # a killed writer's dir: started over
        self.files = LayerLayout(self.tmp)
        self.diff = self.files.diff
        # layers/<chain-id>/ is 0700 (create_owned): no way in to the image's files
        # its mode is the image's "./" (set by apply_layer); apart: in a group where no
        # freshly deleted tree slows the creation of every file (fsutil.mkdir_apart)
        mkdir_apart(self.diff)

    def apply_diff(self, tar: BinaryIO, budget: LayerBudget | None = None) -> LayerStats:
        """``apply_diff``: unpack the uncompressed layer tar ``tar`` into this layer's
        ``diff/`` (image/layer.py: whiteouts in overlayfs form, hostile members refused)."""
        from minidocker.image.layer import apply_layer

        return apply_layer(tar, self.diff, budget)

    def commit(self, meta: dict[str, Any], expected: str | None = None) -> bool:
        """Name the layer by its chain ID (``parent`` + ``meta["diff_id"]``), checked against
        the one expected (given here, or to ``create``): meta.json written, then one rename.
        False if that layer exists already (the same content, committed before): the temp
        dir is then thrown away by ``create``'s context manager."""
        diff_id = meta["diff_id"]
        chain_id = chain_id_of(self.parent, diff_id)
        expected = expected or self.expected
        if expected and chain_id != expected:
            raise DigestMismatch(
                f"layer {short_id(expected)} is not what was written: diff_id {diff_id[:19]} "
                f"on its parent makes layer {short_id(chain_id)}"
            )
        with contextlib.nullcontext() if self.expected else self.store.layer_lock(chain_id):
            self.chain_id = chain_id
            if self.store.has_layer(chain_id):
                return False
            final = self.store.layout.layer(chain_id).dir
            if final.exists():  # a half-made dir without meta.json: ours to replace
                remove_tree(final)
            try:
                make_durable(self.tmp)
                write_json(self.files.meta, {"chain_id": chain_id, "parent": self.parent, "created": now_iso(), **meta})
                os.rename(self.tmp, final)
                fsync_dir(final.parent)  # the new name is on disk before an index names it
            except OSError as e:
                raise storage_error(e, f"storing layer {short_id(chain_id)}") from None
        return True

    def close(self) -> None:
        """Remove the temp dir unless it was renamed into place, then let go of its lock."""
        if self.tmp.exists():
            remove_tree(self.tmp)
        os.close(self.lock_fd)


def chain_id_of(parent: str | None, diff_id: str) -> str:
    """The chain ID of layer ``diff_id`` on the layer ``parent`` (None: a base layer)."""
    return mf.chain_ids([parent, diff_id])[1] if parent else diff_id


def make_durable(tree: Path) -> None:
    """Flush every file of an unpacked layer to the disk before it is renamed into place:
    a power cut must not leave a layer that has its name but not its data. One sync(2) for
    the whole tree costs far less than an fsync per file (about 0.1 s after a Debian layer
    here); file data the kernel already wrote back costs nothing."""
    os.sync()


class ImageStore:
    def __init__(self, root: Path, lazy: LazyDriver | None = None):
        self.root = Path(root)
        self.content = ContentStore(self.root)
        self.layout = self.content.layout
        self.lazy = lazy

    def ensure(self) -> None:
        try:
            prepare_store(self.root)  # layers/, images/ and the rest: 0700 (see paths.py)
            self.content.ensure()
        except OSError as e:
            raise storage_error(e, f"creating the store at {self.root}") from None

    # -- locking ------------------------------------------------------------------------
    def locked(self):
        """The store lock: held around every read-modify-write of index.json."""
        return locked(self.layout.store_lock)

    def gc_guard(self):
        """Held (shared) by a pull from its first layer to its index entry, so that a
        concurrent ``rmi`` cannot collect a layer that is unpacked but not yet referenced."""
        return locked(self.layout.gc_lock, shared=True)

    # -- index --------------------------------------------------------------------------
    def read_index(self) -> dict[str, Any]:
        doc = read_json(self.layout.index, None) or {}
        doc.setdefault("tags", {})
        doc.setdefault("images", {})
        return doc

    def _write_index(self, doc: dict[str, Any]) -> None:
        crashpoint("index:before-write")
        try:
            write_json(self.layout.index, doc)
        except OSError as e:
            raise storage_error(e, "writing images/index.json") from None

    def record_image(
        self,
        image_id: str,
        manifest_digest: str,
        tag: str | None,
        repo_digest: str | None = None,
        index_digest: str | None = None,
        *,
        parent: str | None = None,
        intermediate: bool | None = None,
    ) -> None:
        """Add or update an image's record (and point ``tag`` at it), under the store lock.
        Pulls give the repo digest (and the index they chose from); images made here (commit,
        build) give their parent image, as docker keeps it, so ``history`` can name the images
        its entries came from; ``intermediate`` marks a build step's image, hidden from
        ``images`` while it has no tag (the build cache), False clears the mark."""
        with self.locked():
            doc = self.read_index()
            rec = doc["images"].setdefault(
                image_id, {"manifest": manifest_digest, "repo_digests": [], "added": now_iso()}
            )
            rec["manifest"] = manifest_digest
            if index_digest:
                rec["index"] = index_digest
            if parent:
                rec["parent"] = parent
            if intermediate:
                rec.setdefault("intermediate", True)
            elif intermediate is False:
                rec.pop("intermediate", None)
            if repo_digest and repo_digest not in rec["repo_digests"]:
                # one digest per repository, like docker: a newer pull replaces the older one
                name = repo_digest.split("@")[0]
                rec["repo_digests"] = [d for d in rec["repo_digests"] if d.split("@")[0] != name]
                rec["repo_digests"].append(repo_digest)
            if tag:
                doc["tags"][tag] = image_id
            self._write_index(doc)
        # A tag that moved may have left its old image without a name: docker keeps such
        # "dangling" images (<none>:<none>); so do we, until rmi or prune.

    # -- lookups ------------------------------------------------------------------------
    def resolve(self, text: str, doc: dict[str, Any] | None = None) -> str:
        """An image ID from a name[:tag], name@digest, full ID or unique ID prefix."""
        doc = doc or self.read_index()
        try:
            ref = parse(text)
        except InvalidReference:
            ref = None
        if ref is not None:
            if ref.digest:
                for image_id, rec in doc["images"].items():
                    if f"{ref.name}@{ref.digest}" in rec["repo_digests"]:
                        return image_id
            elif str(ref) in doc["tags"]:
                return doc["tags"][str(ref)]
        hexpart = text.removeprefix("sha256:")
        if hexpart and all(c in "0123456789abcdef" for c in hexpart):
            found = [i for i in doc["images"] if hex_of(i).startswith(hexpart)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise Conflict(f"image ID prefix {text!r} is ambiguous ({len(found)} images match)")
        if ref is None:
            parse(text)  # re-raise the reference error: it says what is wrong
        raise ImageNotFound(f"No such image: {text}")

    def config(self, image_id: str) -> dict[str, Any]:
        return json.loads(self.content.read(image_id))

    def manifest(self, image_id: str, doc: dict[str, Any] | None = None) -> mf.Manifest:
        doc = doc or self.read_index()
        return mf.parse_manifest(self.content.read(doc["images"][image_id]["manifest"]))

    def chain_ids(self, image_id: str) -> list[str]:
        return mf.chain_ids(self.config(image_id)["rootfs"]["diff_ids"])

    def tags_of(self, image_id: str, doc: dict[str, Any]) -> list[str]:
        return sorted(t for t, i in doc["tags"].items() if i == image_id)

    def images(self, all: bool = False) -> list[ImageInfo]:
        """The images, newest first; ``all``: a build's intermediate images too (``images -a``)."""
        doc = self.read_index()
        out = []
        for image_id, rec in doc["images"].items():
            if rec.get("intermediate") and not self.tags_of(image_id, doc) and not all:
                continue  # a build step's image: docker lists those only with images -a
            cfg = self.config(image_id)
            size = sum(self.layer_meta(c).get("size", 0) for c in mf.chain_ids(cfg["rootfs"]["diff_ids"]))
            out.append(
                ImageInfo(
                    image_id, self.tags_of(image_id, doc), list(rec["repo_digests"]), cfg.get("created", ""), size, cfg
                )
            )
        out.sort(key=lambda i: i.created, reverse=True)
        return out

    # -- layers (the storage driver) ----------------------------------------------------
    def has_layer(self, chain_id: str) -> bool:
        return self.layout.layer(chain_id).meta.exists()

    def layer_meta(self, chain_id: str) -> dict[str, Any]:
        meta = read_json(self.layout.layer(chain_id).meta, {}) or {}
        if not meta and self.layout.lazy_layer(chain_id).meta.exists():  # a lazy pull's
            meta = read_json(self.layout.lazy_layer(chain_id).meta, {}) or {}
        return meta

    def has_lazy_layer(self, chain_id: str) -> bool:
        """Is the layer in the store lazily (pull --lazy): its TOC here, its files in the registry?"""
        return self.layout.lazy_layer(chain_id).meta.exists()

    def layer_lock(self, chain_id: str):
        return locked(self.layout.layer_lock(chain_id))

    @contextlib.contextmanager
    def create(self, chain_id: str | None, parent: str | None) -> Iterator[LayerWriter]:
        """``create``: a new layer on ``parent`` (a chain ID; None: a base layer) for the
        ``with`` block to fill (``apply_diff``) and ``commit``; removed unless committed.
        ``chain_id``: the name it must get, when that is known before its content (pull,
        load, import: the caller holds ``layer_lock(chain_id)``); None when only its
        content will tell (commit)."""
        what = f"layer {short_id(chain_id)}" if chain_id else "a new layer"
        try:
            writer = LayerWriter(self, parent, chain_id)
        except OSError as e:
            raise storage_error(e, f"creating {what}") from None
        try:
            yield writer
        except OSError as e:
            raise storage_error(e, f"unpacking {what}") from None
        finally:
            writer.close()

    def reclaim_layers(self) -> list[str]:
        """Remove the temp dirs ``layers/.tmp-*`` whose writers are gone (content.py's rule)."""
        return reclaim_orphans(self.layout.layers_dir, TEMP_LAYER_PREFIX)

    def get(self, image_or_chain_id: str, mount: bool = True) -> list[Path]:
        """``get``: the view of an image (by ID) or of a layer (by chain ID) with all the
        layers below it, as the overlay ``lowerdir`` list that mounts it: top layer first,
        as mount(8) wants. What to mount, not a mount: see the module docstring. The one
        exception is a layer pulled lazily and not yet fetched whole: its lowerdir is its
        FUSE mount (lazy/mounts.py), made here unless ``mount`` is False (inspect)."""
        by_chain = self.has_layer(image_or_chain_id)
        chains = self.ancestry(image_or_chain_id) if by_chain else self.chain_ids(image_or_chain_id)
        first: list[str] | None = None
        out = []
        for c in reversed(chains):
            if mount and first is None and not by_chain and self.is_lazy(c):
                first = self.accesses(image_or_chain_id)  # (read once, if a layer is lazy)
            out.append(self.lowerdir(c, mount, first or ()))
        return out

    def is_lazy(self, chain_id: str) -> bool:
        """Is the layer here only lazily (no unpacked layer of that chain ID)?"""
        return self.has_lazy_layer(chain_id) and not self.has_layer(chain_id)

    def lowerdir(self, chain_id: str, mount: bool = True, prefetch: list[str] | tuple[str, ...] = ()) -> Path:
        """One layer's lowerdir: its unpacked ``diff/``, or a lazy layer's mount point
        (mounted first, its ``prefetch`` files fetched before: lazy/prefetch.py)."""
        if not self.is_lazy(chain_id):
            return self.layout.layer(chain_id).diff
        if not mount:
            return self.layout.lazy_layer(chain_id).mnt
        if self.lazy is None:
            raise StoreError(f"layer {short_id(chain_id)} was pulled lazily and nothing here can mount it")
        return self.lazy.mount(chain_id, prefetch)

    # -- recorded accesses (run --record-access) -------------------------------------------------
    def accesses(self, image_id: str) -> list[str]:
        """The files a container of this image opened first, as ``run --record-access``
        recorded them (paths, first opened first); [] if none was recorded."""
        digest = self.read_index()["images"].get(image_id, {}).get("access")
        if not digest or not self.content.has(digest):
            return []
        doc = json.loads(self.content.read(digest))
        return [f for f in doc.get("files", []) if isinstance(f, str)]

    def record_accesses(self, image_id: str, doc: dict[str, Any]) -> str:
        """Keep ``doc`` ({"files": [...], ...}) as the image's recorded accesses: a blob of
        the content store, named in the image's record (so ``rmi`` collects it with it)."""
        raw = json.dumps(doc, indent=1).encode()
        digest = self.content.put(raw)
        with self.locked():
            index = self.read_index()
            if image_id not in index["images"]:
                raise ImageNotFound(f"No such image: {image_id}")
            index["images"][image_id]["access"] = digest
            self._write_index(index)
        return digest

    def put(self, image_or_chain_id: str) -> None:
        """``put``: docker unmounts what ``get`` mounted. Our views are mounted by the
        runtime in private mount namespaces, which the kernel unmounts when their last
        process exits: there is nothing left here to release."""

    def ancestry(self, chain_id: str) -> list[str]:
        """The chain IDs from the base layer up to ``chain_id``, by each meta.json's parent."""
        chains = [chain_id]
        while (parent := self.layer_meta(chains[-1]).get("parent")) and parent not in chains:
            chains.append(parent)
        return chains[::-1]

    def diff(self, chain_id: str) -> BinaryIO:
        """``diff``: the layer as a compressed tar: the blob it was pulled, loaded or
        committed as (meta.json's ``digest``), opened for reading."""
        digest = self.layer_meta(chain_id).get("digest")
        if not digest or not self.content.has(digest):
            raise StoreError(
                f"layer {short_id(chain_id)} has no compressed tar in the store",
                hint="pull an image that has this layer again",
            )
        return self.content.open(digest)

    # -- tag, rmi, gc -------------------------------------------------------------------
    def tag(self, source: str, target: str) -> str:
        ref = parse(target)
        if ref.digest:
            raise InvalidReference(f"refusing to create a tag with a digest reference: {target}")
        with self.locked():
            doc = self.read_index()
            image_id = self.resolve(source, doc)
            doc["tags"][str(ref)] = image_id
            self._write_index(doc)
        return image_id

    def remove(self, text: str, force: bool = False, in_use: set[str] | None = None) -> list[str]:
        """``rmi``: untag, and delete the image when its last name goes. Returns the lines
        docker prints (``Untagged: ...``, ``Deleted: sha256:...``)."""
        lines: list[str] = []
        with self.locked():
            doc = self.read_index()
            image_id = self.resolve(text, doc)
            tags = self.tags_of(image_id, doc)
            ref = None
            with contextlib.suppress(InvalidReference):
                ref = parse(text)
            by_name = ref is not None and (str(ref) in doc["tags"] or ref.digest)
            if by_name and ref is not None and not ref.digest and len(tags) > 1:
                del doc["tags"][str(ref)]
                self._write_index(doc)
                return [f"Untagged: {ref.familiar()}"]
            digests = doc["images"][image_id]["repo_digests"]
            if by_name and ref is not None and ref.digest and str(ref) in digests and len(tags) + len(digests) > 1:
                digests.remove(str(ref))  # one name of several: only it goes, as docker
                self._write_index(doc)
                return [f"Untagged: {ref.familiar()}"]
            if not by_name and len({t.rsplit(":", 1)[0] for t in tags}) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {short_id(image_id)} (must be forced) - "
                    "image is referenced in multiple repositories"
                )
            if in_use and image_id in in_use and not force:
                raise Conflict(
                    f"conflict: unable to delete {short_id(image_id)} - image is being used by a container",
                    hint="remove the container first, or use rmi -f",
                )
            for t in tags:
                del doc["tags"][t]
                lines.append(f"Untagged: {parse(t).familiar()}")
            for rd in doc["images"][image_id]["repo_digests"]:
                lines.append(f"Untagged: {parse(rd).familiar()}")
            del doc["images"][image_id]
            self._write_index(doc)
            lines.append(f"Deleted: {image_id}")
        lines += self.collect_garbage()
        return lines

    def prune(self, all_unused: bool = False, in_use: Iterable[str] = ()) -> list[str]:
        """``image prune``: delete the dangling images (no tag, no repo digest), or with
        ``all_unused`` every image, that no container uses and that is not the parent of an
        image that stays (build steps under a tagged image are its cache, as in docker).
        Returns the deleted image IDs; their layers and blobs go to the garbage collector."""
        with self.locked():
            doc = self.read_index()
            tagged = set(doc["tags"].values())
            keep = set(in_use)
            if not all_unused:
                keep |= tagged | {i for i, rec in doc["images"].items() if rec.get("repo_digests")}
            doomed = set(doc["images"]) - keep
            while True:  # a parent of a kept image is kept, and so on up
                parents = {doc["images"][i].get("parent") for i in set(doc["images"]) - doomed}
                spared = doomed & parents
                if not spared:
                    break
                doomed -= spared
            for image_id in doomed:
                del doc["images"][image_id]
            doc["tags"] = {t: i for t, i in doc["tags"].items() if i not in doomed}
            if doomed:
                self._write_index(doc)
        self.collect_garbage()  # also what killed commands left behind, doomed or not
        return sorted(doomed)

    def collect_garbage(self) -> list[str]:
        """Delete the layers and blobs that no image references any more, and the temp files
        and dirs whose writers were killed (their flocks are free: content.py). Returns the
        ``Deleted: sha256:<layer>`` lines."""
        with locked(self.layout.gc_lock), self.locked():
            keep_chains, keep_blobs = self.referenced(self.read_index())
            self.reclaim_layers()
            self.content.reclaim_ingest()
            lines = []
            keep_hex = {hex_of(c) for c in keep_chains}
            layers_dir, blobs_dir = self.layout.layers_dir, self.layout.blobs_dir
            for d in sorted(layers_dir.iterdir()) if layers_dir.exists() else []:
                if not d.name.startswith(TEMP_LAYER_PREFIX) and d.name not in keep_hex:
                    self.remove_layer_dir(d)
                    lines.append(f"Deleted: sha256:{d.name}")
            lines += self.collect_lazy_layers(keep_hex)
            crashpoint("gc:before-blobs")
            keep_blob_hex = {hex_of(b) for b in keep_blobs}
            for b in blobs_dir.iterdir() if blobs_dir.exists() else []:
                if b.name not in keep_blob_hex:
                    with contextlib.suppress(FileNotFoundError):
                        b.unlink()
            return lines

    def referenced(self, doc: dict[str, Any]) -> tuple[set[str], set[str]]:
        """The chain IDs and blob digests that the images of ``doc`` need."""
        chains: set[str] = set()
        blobs: set[str] = set()
        for image_id, rec in doc["images"].items():
            blobs.update({image_id, rec["manifest"], rec.get("index") or image_id, rec.get("access") or image_id})
            with contextlib.suppress(StoreError, KeyError, ValueError):
                blobs.update(d.digest for d in self.manifest(image_id, doc).layers)
            with contextlib.suppress(StoreError, KeyError, ValueError):
                chains.update(self.chain_ids(image_id))
        from minidocker.image import zran_store  # (an index lives while its layer's blob does; here: a cycle)

        blobs.update(zran_store.kept_indexes(self, blobs))
        return chains, blobs

    def collect_lazy_layers(self, keep_hex: set[str]) -> list[str]:
        """The lazy layers no image needs (unmounted first), and those a background fetch
        made ordinary that nothing has mounted."""
        lazy_dir, lines = self.layout.lazy_dir, list[str]()
        if self.lazy is None or not lazy_dir.is_dir():
            return lines
        for name in sorted(os.listdir(lazy_dir)):
            if name.startswith(TEMP_LAYER_PREFIX):
                continue
            chain_id = f"sha256:{name}"
            if name not in keep_hex:
                self.lazy.remove(chain_id)
                lines.append(f"Deleted: {chain_id}")
            elif self.has_layer(chain_id):
                self.lazy.completed(chain_id)
        return lines

    def remove_layer_dir(self, d: Path) -> None:
        """Delete an unpacked layer: first out of the layers' names (one rename to a temp
        name, locked while we delete it), then file by file. A kill halfway leaves an orphan
        ``.tmp-gc-*`` for the next collector, never a layer that has its name but not all
        its files (``has_layer`` would believe it)."""
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            trash = self.layout.temp_layer(f"gc-{os.urandom(8).hex()}")
            os.rename(d, trash)
            crashpoint("gc:layer-renamed")
            remove_tree(trash)
        finally:
            os.close(fd)

    def prune_build_cache(self) -> list[str]:
        """Forget the build cache's entries (``build-cache.json``: step key -> image ID) whose
        image is gone; returns their keys. The images themselves are the cache's content:
        ``prune`` removes them with the other unused images."""
        path = self.layout.build_cache
        with self.locked():
            cache = read_json(path, {}) or {}
            images = self.read_index()["images"]
            stale = sorted(k for k, image_id in cache.items() if image_id not in images)
            if stale:
                write_json(path, {k: v for k, v in cache.items() if k not in stale})
        return stale


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"
