"""The image store: tags, images and unpacked layers, on disk under the root.

Its vocabulary is Docker's storage driver's, the one every lecture on Docker images uses:

* ``create``/``apply_diff``: a new layer directory filled from a tar (``new_layer`` below);
* ``get``: the layer with all its ancestors, as overlay lowerdirs (``lowerdirs``);
* ``diff``: a layer back to a tar (commit, push: later).

On disk (``ls`` your way down from ``minidocker images``)::

    images/index.json               {"tags": {name:tag -> image id}, "images": {id -> record}}
    blobs/sha256/<hex>              manifest, config and compressed layer of every image
    layers/<chain-id hex>/diff/     an unpacked layer: one overlay lowerdir
    layers/<chain-id hex>/meta.json diff_id, parent chain, compressed digest, size
    layers/.tmp-*/                  a layer being unpacked (or deleted), locked by its writer

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from minidocker.errors import Conflict, ImageNotFound, InvalidReference, StoreError
from minidocker.crashpoint import crashpoint
from minidocker.fsutil import fsync_dir, locked, read_json, remove_tree, storage_error, write_json
from minidocker.image import manifest as mf
from minidocker.image.content import ContentStore, create_owned, hex_of, reclaim_orphans
from minidocker.image.reference import Reference, parse
from minidocker.paths import prepare_store


BUILD_CACHE = "build-cache.json"  # build.py's cache: step key -> the image that step made


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


@dataclass
class ImageInfo:
    id: str
    tags: list[str]
    repo_digests: list[str]
    created: str
    size: int
    config: dict[str, Any] = field(repr=False, default_factory=dict)


class LayerWriter:
    """A layer being unpacked in ``layers/.tmp-<hex>/``; ``commit`` renames it into place.
    The temp dir is locked while it is ours (content.py's rule for temp files), so what a
    killed pull left is told apart from a live one's, and reclaimed."""

    def __init__(self, store: "ImageStore", chain_id: str, parent: str | None):
        self.store, self.chain_id, self.parent = store, chain_id, parent
        self.final = store.layer_dir(chain_id)
        self.tmp = store.layers_dir / f".tmp-{hex_of(chain_id)}"
        store.reclaim_layers()
        self.lock_fd = create_owned(self.tmp, directory=True)  # a killed pull's dir: started over
        self.diff = self.tmp / "diff"
        # layers/<chain-id>/ is 0700 (create_owned): no way in to the image's files
        self.diff.mkdir()  # its mode is the image's "./" (set by apply_layer): keep it

    def commit(self, meta: dict[str, Any]) -> None:
        meta = {"chain_id": self.chain_id, "parent": self.parent, "created": now_iso(), **meta}
        make_durable(self.tmp)
        write_json(self.tmp / "meta.json", meta)
        os.rename(self.tmp, self.final)
        fsync_dir(self.final.parent)

    def close(self) -> None:
        os.close(self.lock_fd)


def make_durable(tree: Path) -> None:
    """Flush every file of an unpacked layer to the disk before it is renamed into place:
    a power cut must not leave a layer that has its name but not its data. One sync(2) for
    the whole tree costs far less than an fsync per file (about 0.1 s after a Debian layer
    here); file data the kernel already wrote back costs nothing."""
    os.sync()


class ImageStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.content = ContentStore(self.root)
        self.layers_dir = self.root / "layers"
        self.index_path = self.root / "images" / "index.json"
        self.lock_path = self.root / "lock"
        self.gc_lock_path = self.root / "locks" / "gc.lock"

    def ensure(self) -> None:
        try:
            prepare_store(self.root)  # layers/, images/ and the rest: 0700 (see paths.py)
            self.content.ensure()
        except OSError as e:
            raise storage_error(e, f"creating the store at {self.root}") from None

    # -- locking ------------------------------------------------------------------------
    def locked(self):
        """The store lock: held around every read-modify-write of index.json."""
        return locked(self.lock_path)

    def gc_guard(self):
        """Held (shared) by a pull from its first layer to its index entry, so that a
        concurrent ``rmi`` cannot collect a layer that is unpacked but not yet referenced."""
        return locked(self.gc_lock_path, shared=True)

    # -- index --------------------------------------------------------------------------
    def read_index(self) -> dict[str, Any]:
        doc = read_json(self.index_path, None) or {}
        doc.setdefault("tags", {})
        doc.setdefault("images", {})
        return doc

    def _write_index(self, doc: dict[str, Any]) -> None:
        crashpoint("index:before-write")
        try:
            write_json(self.index_path, doc)
        except OSError as e:
            raise storage_error(e, "writing images/index.json") from None

    def record_image(self, image_id: str, manifest_digest: str, tag: str | None,
                     repo_digest: str | None = None, index_digest: str | None = None, *,
                     parent: str | None = None, intermediate: bool | None = None) -> None:
        """Add or update an image's record (and point ``tag`` at it), under the store lock.
        Pulls give the repo digest (and the index they chose from); images made here (commit,
        build) give their parent image, as docker keeps it, so ``history`` can name the images
        its entries came from; ``intermediate`` marks a build step's image, hidden from
        ``images`` while it has no tag (the build cache), False clears the mark."""
        with self.locked():
            doc = self.read_index()
            rec = doc["images"].setdefault(image_id, {"manifest": manifest_digest, "repo_digests": [],
                                                      "added": now_iso()})
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

    def images(self) -> list[ImageInfo]:
        doc = self.read_index()
        out = []
        for image_id, rec in doc["images"].items():
            if rec.get("intermediate") and not self.tags_of(image_id, doc):
                continue  # a build step's image: docker lists those only with images -a
            cfg = self.config(image_id)
            size = sum(self.layer_meta(c).get("size", 0) for c in mf.chain_ids(cfg["rootfs"]["diff_ids"]))
            out.append(ImageInfo(image_id, self.tags_of(image_id, doc), list(rec["repo_digests"]),
                                 cfg.get("created", ""), size, cfg))
        out.sort(key=lambda i: i.created, reverse=True)
        return out

    # -- layers (the storage driver) ----------------------------------------------------
    def layer_dir(self, chain_id: str) -> Path:
        return self.layers_dir / hex_of(chain_id)

    def has_layer(self, chain_id: str) -> bool:
        return (self.layer_dir(chain_id) / "meta.json").exists()

    def layer_meta(self, chain_id: str) -> dict[str, Any]:
        return read_json(self.layer_dir(chain_id) / "meta.json", {}) or {}

    def layer_lock(self, chain_id: str):
        return locked(self.content.locks_dir / f"layer-{hex_of(chain_id)}.lock")

    @contextlib.contextmanager
    def new_layer(self, chain_id: str, parent: str | None) -> Iterator[LayerWriter]:
        """``apply_diff``'s first half: a temp dir to unpack into; removed unless committed."""
        try:
            writer = LayerWriter(self, chain_id, parent)
        except OSError as e:
            raise storage_error(e, f"creating layer {short_id(chain_id)}") from None
        try:
            yield writer
        except OSError as e:
            remove_tree(writer.tmp)
            raise storage_error(e, f"unpacking layer {short_id(chain_id)}") from None
        except BaseException:
            remove_tree(writer.tmp)
            raise
        finally:
            writer.close()

    def reclaim_layers(self) -> list[str]:
        """Remove the temp dirs ``layers/.tmp-*`` whose writers are gone (content.py's rule)."""
        return reclaim_orphans(self.layers_dir, ".tmp-")

    def lowerdirs(self, image_id: str) -> list[Path]:
        """The overlay ``lowerdir`` list of an image: top layer first, as mount(8) wants."""
        return [self.layer_dir(c) / "diff" for c in reversed(self.chain_ids(image_id))]

    @contextlib.contextmanager
    def new_layer_unnamed(self) -> Iterator[Path]:
        """A temp dir ``layers/.tmp-new-<random>/`` for a layer whose chain ID is known only
        once it is written (commit); ``adopt_layer`` gives it its name. Removed on error.
        Locked while it exists, like every temp dir of ``layers/``."""
        self.reclaim_layers()
        tmp = self.layers_dir / f".tmp-new-{os.urandom(8).hex()}"
        try:
            lock_fd = create_owned(tmp, directory=True)  # 0700, like every layer dir
            (tmp / "diff").mkdir()
        except OSError as e:
            raise storage_error(e, "creating a new layer") from None
        try:
            yield tmp
        finally:
            if tmp.exists():  # adopted layers were renamed away
                remove_tree(tmp)
            os.close(lock_fd)

    def adopt_layer(self, tmp: Path, chain_id: str, parent: str | None, meta: dict[str, Any]) -> bool:
        """``new_layer_unnamed``'s dir becomes ``layers/<chain-id>/`` (meta.json written first,
        then one rename). False if that layer already exists: the same content was committed
        before, and the temp dir is thrown away by its context manager."""
        with self.layer_lock(chain_id):
            if self.has_layer(chain_id):
                return False
            final = self.layer_dir(chain_id)
            if final.exists():  # a half-made dir without meta.json: ours to replace
                remove_tree(final)
            try:
                make_durable(tmp)
                write_json(tmp / "meta.json", {"chain_id": chain_id, "parent": parent, "created": now_iso(), **meta})
                os.rename(tmp, final)
                fsync_dir(self.layers_dir)  # the new name is on disk before an index names it
            except OSError as e:
                raise storage_error(e, f"storing layer {short_id(chain_id)}") from None
            return True

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
            if not by_name and len({t.rsplit(':', 1)[0] for t in tags}) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {short_id(image_id)} (must be forced) - "
                               "image is referenced in multiple repositories")
            if in_use and image_id in in_use and not force:
                raise Conflict(f"conflict: unable to delete {short_id(image_id)} - image is being used "
                               "by a container", hint="remove the container first, or use rmi -f")
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

    def prune(self, all_unused: bool = False, in_use: set[str] = frozenset()) -> list[str]:
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
        with locked(self.gc_lock_path), self.locked():
            keep_chains, keep_blobs = self.referenced(self.read_index())
            self.reclaim_layers()
            self.content.reclaim_ingest()
            lines = []
            keep_hex = {hex_of(c) for c in keep_chains}
            for d in sorted(self.layers_dir.iterdir()) if self.layers_dir.exists() else []:
                if not d.name.startswith(".tmp-") and d.name not in keep_hex:
                    self.remove_layer_dir(d)
                    lines.append(f"Deleted: sha256:{d.name}")
            crashpoint("gc:before-blobs")
            keep_blob_hex = {hex_of(b) for b in keep_blobs}
            for b in self.content.blobs_dir.iterdir() if self.content.blobs_dir.exists() else []:
                if b.name not in keep_blob_hex:
                    with contextlib.suppress(FileNotFoundError):
                        b.unlink()
            return lines

    def referenced(self, doc: dict[str, Any]) -> tuple[set[str], set[str]]:
        """The chain IDs and blob digests that the images of ``doc`` need."""
        chains: set[str] = set()
        blobs: set[str] = set()
        for image_id, rec in doc["images"].items():
            blobs.update({image_id, rec["manifest"], rec.get("index") or image_id})
            with contextlib.suppress(StoreError, KeyError, ValueError):
                blobs.update(d.digest for d in self.manifest(image_id, doc).layers)
            with contextlib.suppress(StoreError, KeyError, ValueError):
                chains.update(self.chain_ids(image_id))
        return chains, blobs

    def remove_layer_dir(self, d: Path) -> None:
        """Delete an unpacked layer: first out of the layers' names (one rename to a temp
        name, locked while we delete it), then file by file. A kill halfway leaves an orphan
        ``.tmp-gc-*`` for the next collector, never a layer that has its name but not all
        its files (``has_layer`` would believe it)."""
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            trash = self.layers_dir / f".tmp-gc-{os.urandom(8).hex()}"
            os.rename(d, trash)
            crashpoint("gc:layer-renamed")
            remove_tree(trash)
        finally:
            os.close(fd)

    def prune_build_cache(self) -> list[str]:
        """Forget the build cache's entries (``build-cache.json``: step key -> image ID) whose
        image is gone; returns their keys. The images themselves are the cache's content:
        ``prune`` removes them with the other unused images."""
        path = self.root / BUILD_CACHE
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
