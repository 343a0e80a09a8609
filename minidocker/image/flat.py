"""Flat filesystems: a directory tree to one tar (``export``), one tar to an image (``import``).

``export`` hands over what a container sees as ``/``: every layer and the container's own
changes, *flattened* into one tar with nothing deleted left in it. The runtime mounts the
view (``runtime/export.py``); this module only walks it and writes the tar:
``write_tree_tar``. Overlayfs's merged view never lists a whiteout, so the tar has none;
should a 0/0 character device show up anyway it is skipped, never exported as a device.

``import`` is the opposite: a rootfs tar (plain, gzip or zstd) becomes an image of one
layer, with a config that says only what docker's import says (the host's os and
architecture, the time, ``Imported from ...``) plus the ``--change`` instructions::

    input -> (gunzip) -> spool file, sha256 = the diff_id
                      -> gzip (mtime 0) -> temp file, sha256 = the blob digest
    spool -> apply_diff -> layers/<diff_id>/       (the image's one layer)
    blob -> blobs/sha256/<digest>; config, manifest -> blobs/; tag -> images/index.json

The input is counted while it is read: its uncompressed bytes against the expansion limit
of ``limits.py`` (100 times the compressed bytes read so far, at least 1 GiB: the size of
stdin is known only at its end), and what is written to the spool and the layer against the
free-space reserve.

Try it: ``minidocker export c1 | tar -tv | head`` and
``minidocker export c1 | minidocker import - flat:1 && minidocker run --rm flat:1 ls /``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
import threading
from collections.abc import Sequence
from typing import BinaryIO, cast

from minidocker.errors import NotATar
from minidocker.image import manifest as mf
from minidocker.image.dockerfile import apply_changes
from minidocker.image.limits import LayerBudget, UnpackLimits
from minidocker.image.pull import ChunkReader, _decode_errors, open_decompressed
from minidocker.image.reference import parse
from minidocker.image.store import ImageStore, now_iso

READ_SIZE = 1 << 20
SKIPPED_XATTR_PREFIXES = ("trusted.",)  # overlayfs's own bookkeeping, and root-only names


# -- export: a directory tree -> tar ---------------------------------------------------------
def write_tree_tar(root: str, out: BinaryIO, idmap: dict[str, int] | None = None) -> int:
    """Write everything under ``root`` (not ``root`` itself) to ``out`` as a tar stream.

    Names are relative (``bin/sh``), owners numeric (a host's user names mean nothing in a
    container), hard links kept as links, xattrs (file capabilities above all) kept as PAX
    records. Sorted, so the same tree gives the same tar. Returns the number of members.
    ``idmap``: a ``--userns=auto`` container's block: its host owners become the ones it saw."""
    from minidocker.image.diff import container_id

    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as it:
                entries = sorted(it, key=lambda e: e.name)
            subdirs = []
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    continue  # an overlay whiteout: a deletion, never a file of the export
                info = tar.gettarinfo(entry.path, arcname=rel)
                if info is None:
                    continue  # a socket: tar has no type for it (docker skips them too)
                info.uname = info.gname = ""
                if idmap:
                    info.uid = container_id(info.uid, idmap["uid"], idmap["size"])
                    info.gid = container_id(info.gid, idmap["gid"], idmap["size"])
                info.mtime = int(info.mtime)  # whole seconds: no PAX record per member for a fraction
                xattrs = _xattrs(entry.path)
                if xattrs:
                    info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
                if info.isreg():
                    with open(entry.path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                count += 1
                if stat.S_ISDIR(st.st_mode):
                    subdirs.append(rel)
            stack.extend(reversed(subdirs))  # depth first, in name order
    return count


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in names:
        if name.startswith(SKIPPED_XATTR_PREFIXES):
            continue
        with contextlib.suppress(OSError):
            out[name] = os.getxattr(path, name, follow_symlinks=False).decode("utf-8", "surrogateescape")
    return out


# -- import: a tar -> a one-layer image --------------------------------------------------------
def _sniff(stream: BinaryIO) -> tuple[BinaryIO, str]:
    """Peek at the first bytes (stdin cannot seek back) to tell gzip and zstd from a tar."""
    if hasattr(stream, "peek"):
        buffered = stream
    else:  # BufferedReader reads with readinto, which BinaryIO's type leaves out (files have it)
        buffered = io.BufferedReader(cast(io.RawIOBase, stream), READ_SIZE)
    head = buffered.peek(4)[:4]
    if head[:2] == b"\x1f\x8b":
        return buffered, "gzip"
    if head == b"\x28\xb5\x2f\xfd":
        return buffered, "zstd"
    return buffered, "none"


def default_config(changes: list[str], comment: str) -> dict:
    """The config docker's ``import`` writes: the host platform, no run settings but the
    ``--change`` ones, one history entry."""
    created = now_iso()
    platform = mf.Platform.host()
    doc = {
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "config": apply_changes({}, changes),
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [{"created": created, "comment": comment}],
    }
    return doc


def spool_input(stream: BinaryIO, spool: BinaryIO, packed: BinaryIO, budget: LayerBudget) -> tuple[str, str]:
    """Read the input of ``import`` once: its tar into ``spool``, and gzipped (mtime 0) into
    ``packed``, every byte counted by ``budget``. Returns ``(diff_id, blob digest)``."""
    from isal import igzip

    buffered, compression = _sniff(stream)
    source = ChunkReader(iter(lambda: buffered.read(READ_SIZE), b""), None, budget.saw_compressed, threading.Event())
    tar_hash, blob_hash = hashlib.sha256(), hashlib.sha256()

    class Tee(io.RawIOBase):  # counts the compressed bytes into the blob's digest
        def writable(self):
            return True

        def write(self, b):
            blob_hash.update(b)
            return packed.write(b)

    gz = igzip.IGzipFile(fileobj=Tee(), mode="wb", mtime=0)
    try:
        with open_decompressed(source, compression) as plain:
            while data := plain.read(READ_SIZE):
                budget.count_expanded(len(data))
                budget.count_written(len(data))
                tar_hash.update(data)
                spool.write(data)
                gz.write(data)
    except _decode_errors() as e:
        raise NotATar(f"the input of import is not a valid {compression} stream: {e}") from None
    gz.close()
    if spool.tell() == 0:
        raise NotATar("the input of import is empty", hint="give a tar file, or pipe one into: import -")
    return "sha256:" + tar_hash.hexdigest(), "sha256:" + blob_hash.hexdigest()


def import_tarball(
    store: ImageStore,
    stream: BinaryIO,
    source_name: str,
    ref: str | None = None,
    changes: Sequence[str] = (),
    message: str | None = None,
) -> str:
    """``docker import``: returns the new image's ID."""
    tag = str(parse(ref)) if ref else None  # a bad name fails before anything is read
    config = default_config(list(changes), message or f"Imported from {source_name}")
    budget = LayerBudget(UnpackLimits.from_env(), store.layout.layers_dir, "the input of import")
    store.ensure()
    with contextlib.ExitStack() as stack:
        spool = stack.enter_context(tempfile.TemporaryFile(dir=store.layout.ingest_dir))
        packed = stack.enter_context(tempfile.TemporaryFile(dir=store.layout.ingest_dir))
        diff_id, digest = spool_input(stream, spool, packed, budget)
        size = packed.tell()
        spool.seek(0)
        packed.seek(0)
        with store.gc_guard():
            with store.layer_lock(diff_id):
                if not store.has_layer(diff_id):
                    with store.create(diff_id, None) as layer:
                        try:
                            stats = layer.apply_diff(io.BufferedReader(spool, READ_SIZE), budget)
                        except (tarfile.TarError, EOFError, ValueError) as e:
                            raise NotATar(f"the input of import is not a tar: {e}") from None
                        layer.commit(
                            {
                                "diff_id": diff_id,
                                "digest": digest,
                                "media_type": mf.OCI_LAYER_GZIP,
                                "size": stats.size,
                                "entries": stats.entries,
                            }
                        )
            with store.content.lock(digest):
                if not store.content.has(digest):
                    with store.content.ingest(digest, size) as ing:
                        while data := packed.read(READ_SIZE):
                            ing.write(data)
            config["rootfs"]["diff_ids"] = [diff_id]
            config_raw = json.dumps(config, separators=(",", ":")).encode()
            image_id = store.content.put(config_raw)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": mf.OCI_MANIFEST,
                    "config": {"mediaType": mf.OCI_CONFIG, "digest": image_id, "size": len(config_raw)},
                    "layers": [{"mediaType": mf.OCI_LAYER_GZIP, "digest": digest, "size": size}],
                },
                separators=(",", ":"),
            ).encode()
            manifest_digest = store.content.put(manifest)
            store.record_image(image_id, manifest_digest, tag, None)
    return image_id
