#!/usr/bin/env python3
"""Build minidocker's test images offline, as OCI image layouts, and cache them.

    python images/build.py NAME [--force]     # prints the layout's path
    python images/build.py --list

    from images.build import build_image
    build_image("busybox")                    # -> Path of the layout

Every layer, config and manifest is written here with tarfile, gzip (or zstd) and hashlib,
so a reader sees what an image *is*: a tar per layer, a JSON config naming the layers'
uncompressed digests (diff_ids), a manifest naming the compressed blobs, and an index that
tags the manifest. The output is deterministic (fixed mtimes, sorted entries, gzip mtime 0,
no user or group names), so rebuilding a recipe gives the same digests; only ``debian``,
which runs debootstrap, differs from build to build.

Layouts are cached in ``${MINIDOCKER_IMAGE_CACHE:-/var/cache/minidocker/images}/NAME/``.
Each holds a stamp (``.minidocker-recipe.json``) with a fingerprint of its recipe: the
recipe's version, the source code of the functions that build it, and its inputs (the
busybox binary, the Debian mirror). A layout is rebuilt when the fingerprint changes, or
with ``--force``. A build happens in a temporary directory next to the cache entry and is
renamed into place, under a lock, so a crash never leaves half an image behind.

Standard library only: this runs before the project's own dependencies are needed.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import inspect
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

# -- constants --------------------------------------------------------------------------------

EPOCH = 1704067200  # 2024-01-01T00:00:00Z: the mtime of every entry we make
CREATED = "2024-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FORMAT_VERSION = 1  # bump to rebuild every cached layout

OCI_LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"

STAMP = ".minidocker-recipe.json"


class BuildError(RuntimeError):
    """A recipe cannot be built here; the message says what to install or fix."""


def cache_root() -> Path:
    return Path(os.environ.get("MINIDOCKER_IMAGE_CACHE") or "/var/cache/minidocker/images")


def need_tool(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        raise BuildError(f"{name} not found: install the Debian package {package} (apt-get install {package})")
    return path


# -- tar entries ------------------------------------------------------------------------------


@dataclass
class Entry:
    """One tar member, declared: what the layers of our hand-made images are made of.

    kind is file, dir, symlink, hardlink (target = the earlier member's path), fifo, char or
    block (rdev = (major, minor)). xattrs become PAX ``SCHILY.xattr.NAME`` records.
    """

    path: str
    kind: str = "file"
    data: bytes = b""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    target: str = ""
    rdev: tuple[int, int] = (0, 0)
    mtime: int = EPOCH
    xattrs: dict[str, str] = field(default_factory=dict)


_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
}
_DEFAULT_MODES = {"dir": 0o755, "symlink": 0o777, "char": 0o666, "block": 0o660}


def tar_bytes(entries: Iterable[Entry]) -> bytes:
    """A deterministic PAX tar of ``entries``, sorted by path (parents before children).
    Names carry no leading ``/`` or ``./``, owners are numeric only, as in Docker's layers."""
    entries = sorted(entries, key=lambda e: e.path)
    seen: set[str] = set()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            if e.kind == "hardlink" and e.target not in seen:
                raise ValueError(f"hard link {e.path} must come after its target {e.target}")
            seen.add(e.path)
            info = tarfile.TarInfo(e.path)
            info.type = _TAR_TYPES[e.kind]
            info.mode = e.mode if e.mode is not None else _DEFAULT_MODES.get(e.kind, 0o644)
            info.uid, info.gid, info.uname, info.gname = e.uid, e.gid, "", ""
            info.mtime = e.mtime
            if e.kind in ("symlink", "hardlink"):
                info.linkname = e.target
            if e.kind in ("char", "block"):
                info.devmajor, info.devminor = e.rdev
            if e.xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs.items()}
            if e.kind == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def tar_tree(root: Path, out: BinaryIO) -> None:
    """Tar the directory ``root`` (not itself) into ``out``: sorted, owners and modes and
    mtimes kept, hard links as links to the first name seen, device nodes and fifos kept,
    sockets dropped, nothing from other filesystems (a mount point is kept as an empty dir)."""
    root_dev = root.lstat().st_dev
    first_name: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def walk(directory: str, prefix: str) -> None:
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda d: d.name)
            for child in children:
                st = child.stat(follow_symlinks=False)
                info = tarfile.TarInfo(prefix + child.name)
                info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
                info.uname = info.gname = ""
                info.mtime = int(st.st_mtime)
                body = None
                if stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                elif stat.S_ISLNK(st.st_mode):
                    info.type, info.linkname = tarfile.SYMTYPE, os.readlink(child.path)
                elif stat.S_ISREG(st.st_mode):
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in first_name:
                        info.type, info.linkname = tarfile.LNKTYPE, first_name[key]
                    else:
                        first_name.setdefault(key, info.name)
                        info.type, info.size, body = tarfile.REGTYPE, st.st_size, child.path
                elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                    info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                    info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                elif stat.S_ISFIFO(st.st_mode):
                    info.type = tarfile.FIFOTYPE
                else:
                    continue  # sockets have no tar form
                if body is not None:
                    with open(body, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
                if info.type == tarfile.DIRTYPE and st.st_dev == root_dev:
                    walk(child.path, info.name + "/")

        walk(str(root), "")


# -- the OCI image layout ---------------------------------------------------------------------


class _HashingWriter:
    def __init__(self, f: BinaryIO):
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def _compress(data: bytes, compression: str | None) -> bytes:
    if compression is None:
        return data
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        import zstandard  # minidocker's own dependency

        return zstandard.ZstdCompressor(level=3).compress(data)
    raise ValueError(compression)


def zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


class Layout:
    """An OCI image layout being written: ``oci-layout``, ``blobs/sha256/``, ``index.json``."""

    def __init__(self, root: Path):
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps(OCI_LAYOUT_VERSION))

    def blob(self, data: bytes, media_type: str) -> dict:
        hexdigest = hashlib.sha256(data).hexdigest()
        path = self.root / "blobs" / "sha256" / hexdigest
        if not path.exists():
            path.write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{hexdigest}", "size": len(data)}

    def json_blob(self, doc: dict, media_type: str) -> dict:
        return self.blob(json.dumps(doc, indent=2).encode() + b"\n", media_type)

    def layer(self, tar: bytes, compression: str | None = "gzip", media_type: str | None = None) -> tuple[dict, str]:
        """Store one layer; returns (its descriptor, its diff_id = sha256 of the plain tar)."""
        media_type = media_type or {None: OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}[compression]
        return (self.blob(_compress(tar, compression), media_type), "sha256:" + hashlib.sha256(tar).hexdigest())

    def layer_from_file(self, tar_path: Path, media_type: str = OCI_LAYER_GZIP) -> tuple[dict, str]:
        """Gzip a big tar file into a blob, streaming: hash the tar (diff_id) and the gzip
        stream (digest) as they pass; rename the blob into place once its digest is known."""
        plain = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.root / "blobs", prefix=".ingest-")
        with os.fdopen(fd, "wb") as raw, open(tar_path, "rb") as src:
            out = _HashingWriter(raw)
            with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
                while chunk := src.read(1 << 20):
                    plain.update(chunk)
                    gz.write(chunk)
        os.chmod(tmp, 0o644)  # mkstemp made it 0600
        os.rename(tmp, self.root / "blobs" / "sha256" / out.sha.hexdigest())
        return (
            {"mediaType": media_type, "digest": f"sha256:{out.sha.hexdigest()}", "size": out.size},
            f"sha256:{plain.hexdigest()}",
        )

    def image(
        self,
        layers: list[tuple[dict, str, str]],
        run_config: dict,
        *,
        architecture: str = "amd64",
        os_name: str = "linux",
        variant: str | None = None,
        docker: bool = False,
    ) -> dict:
        """Write an image's config and manifest; ``layers`` is [(descriptor, diff_id,
        created_by)]. Returns the manifest's descriptor with its platform."""
        config = {"created": CREATED, "architecture": architecture, "os": os_name}
        if variant:
            config["variant"] = variant
        config["config"] = run_config
        config["rootfs"] = {"type": "layers", "diff_ids": [diff_id for _, diff_id, _ in layers]}
        config["history"] = [
            {"created": CREATED, "created_by": created_by, "comment": "minidocker images/build.py"}
            for _, _, created_by in layers
        ]
        config_desc = self.json_blob(config, DOCKER_CONFIG if docker else OCI_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": config_desc,
            "layers": [desc for desc, _, _ in layers],
        }
        desc = self.json_blob(manifest, manifest["mediaType"])
        platform = {"architecture": architecture, "os": os_name}
        if variant:
            platform["variant"] = variant
        return {**desc, "platform": platform}

    def image_index(self, manifests: list[dict], docker: bool = False) -> dict:
        media_type = DOCKER_LIST if docker else OCI_INDEX
        return self.json_blob({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}, media_type)

    def tag(self, desc: dict, tag: str = "latest") -> None:
        """index.json: the layout's one entry point, the descriptor named ``tag``."""
        entry = {k: v for k, v in desc.items() if k != "platform"}
        entry["annotations"] = {REF_NAME: tag}
        (self.root / "index.json").write_text(
            json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}, indent=2) + "\n"
        )


# -- busybox ----------------------------------------------------------------------------------

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
"""
GROUP = """\
root:x:0:
staff:x:50:app
app:x:1000:
nogroup:x:65534:
"""


def _is_static_elf(path: Path) -> bool:
    """True if the ELF file at ``path`` has no PT_INTERP program header (no dynamic loader)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only, as on amd64
        return False
    (e_phoff,) = struct.unpack_from("<Q", data, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, e_phoff + i * e_phentsize)[0] != 3 for i in range(e_phnum))


def busybox_binary() -> tuple[Path, bytes]:
    """The host's static busybox (Debian's busybox-static) and its bytes."""
    path = Path(need_tool("busybox", "busybox-static")).resolve()
    if not _is_static_elf(path):
        raise BuildError(
            f"{path} is not a static binary: install the Debian package busybox-static (apt-get install busybox-static)"
        )
    return path, path.read_bytes()


def busybox_applets(path: Path, full: bool) -> list[str]:
    out = subprocess.run(
        [str(path), "--list-full" if full else "--list"], check=True, capture_output=True, text=True
    ).stdout
    return sorted({line.strip() for line in out.splitlines() if line.strip()})


def busybox_entries() -> list[Entry]:
    """The busybox image's one layer: the binary, an applet symlink in its usual directory
    for each applet, users and groups, and the directories a runtime expects."""
    path, binary = busybox_binary()
    entries = [
        Entry(d, "dir")
        for d in ("bin", "dev", "etc", "home", "proc", "sbin", "sys", "usr", "usr/bin", "usr/sbin", "var")
    ]
    entries += [
        Entry("root", "dir", mode=0o700),
        Entry("tmp", "dir", mode=0o1777),
        Entry("home/app", "dir", uid=1000, gid=1000),
        Entry("bin/busybox", data=binary, mode=0o755),
        Entry("etc/passwd", data=PASSWD.encode()),
        Entry("etc/group", data=GROUP.encode()),
    ]
    for applet in busybox_applets(path, full=True):
        if applet == "bin/busybox":
            continue
        depth = applet.count("/")  # sbin/x -> ../bin/busybox
        target = "busybox" if applet.startswith("bin/") else "../" * depth + "bin/busybox"
        entries.append(Entry(applet, "symlink", target=target))
    return entries


def busybox_inputs() -> str:
    return hashlib.sha256(busybox_binary()[1]).hexdigest()


# -- the recipes ------------------------------------------------------------------------------


@dataclass
class Recipe:
    name: str
    version: int
    build: Callable[[Path], None]
    summary: str
    uses: tuple = ()  # helpers whose source is part of the fingerprint
    inputs: Callable[[], str] = lambda: ""  # what else the output depends on

    def fingerprint(self) -> str:
        sources = [
            inspect.getsource(obj) if callable(obj) else repr(obj)
            for obj in (self.build, Entry, tar_bytes, _compress, Layout, *self.uses)
        ]
        doc = {
            "format": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "sources": sources,
            "inputs": self.inputs(),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


RECIPES: dict[str, Recipe] = {}


def recipe(name: str, version: int, summary: str, uses: tuple = (), inputs: Callable[[], str] = lambda: ""):
    def register(fn: Callable[[Path], None]):
        RECIPES[name] = Recipe(name, version, fn, summary, uses, inputs)
        return fn

    return register


@recipe(
    "busybox",
    1,
    "busybox-static with its applets, users root/nobody/app, group staff",
    uses=(busybox_entries, busybox_applets, busybox_binary, PASSWD, GROUP),
    inputs=busybox_inputs,
)
def build_busybox(out: Path) -> None:
    layout = Layout(out)
    desc, diff_id = layout.layer(tar_bytes(busybox_entries()), "gzip")
    manifest = layout.image([(desc, diff_id, "ADD busybox-static rootfs /")], {"Env": [PATH_ENV], "Cmd": ["sh"]})
    layout.tag(manifest)


# -- debian -----------------------------------------------------------------------------------


def _deb822_paragraphs(text: str) -> list[dict[str, str]]:
    paragraphs, current, key = [], {}, None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key:
            current[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            current[key] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[tuple[str, list[str], list[str]]]:
    """The host's enabled ``deb`` sources as (uri, suites, components), one-line and deb822."""
    found = []
    one_line = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) < 3 or words[0] != "deb":
                continue
            if words[1].startswith("["):  # [ options ]
                while words and not words[1].endswith("]"):
                    del words[1]
                del words[1]
            if len(words) >= 3:
                found.append((words[1], [words[2]], words[3:]))
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for p in _deb822_paragraphs(path.read_text()):
            if "deb" not in p.get("types", "").split() or p.get("enabled", "yes").lower() == "no":
                continue
            for uri in p.get("uris", "").split():
                found.append((uri, p.get("suites", "").split(), p.get("components", "").split()))
    return found


def debian_mirror(suite: str = "bookworm") -> str:
    """The mirror to debootstrap from: $MINIDOCKER_DEBIAN_MIRROR, else the host's apt
    source that carries ``suite`` main (the only Debian mirror this machine can reach)."""
    if os.environ.get("MINIDOCKER_DEBIAN_MIRROR"):
        return os.environ["MINIDOCKER_DEBIAN_MIRROR"]
    for uri, suites, components in apt_sources():
        if suite in suites and "main" in components:
            return uri
    raise BuildError(
        f"no apt source for {suite} main in /etc/apt/sources.list{{,.d/}}: "
        "set MINIDOCKER_DEBIAN_MIRROR=http://MIRROR/debian"
    )


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")  # octal escapes (\040)
            if point.startswith(prefix) or point == str(path):
                mounts.append(point)
    return mounts


def _remove_tree(path: Path) -> None:
    """rm -rf a build tree, first unmounting what debootstrap may have left mounted in it
    (proc, sys) if it was interrupted, so that nothing of the host is ever deleted."""
    for point in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def debian_inputs() -> str:
    return debian_mirror()


def debootstrap_image(out: Path, include: tuple[str, ...]) -> None:
    """A one-layer image of ``debootstrap --variant=minbase bookworm`` (plus ``include``)."""
    if os.geteuid() != 0:
        raise BuildError("the debian images need root (debootstrap): run as root")
    debootstrap = need_tool("debootstrap", "debootstrap")
    mirror = debian_mirror()
    rootfs, log = out / "rootfs", out / "debootstrap.log"
    debs = cache_root() / ".debootstrap-debs"  # downloaded .debs, kept for rebuilds
    debs.mkdir(parents=True, exist_ok=True)
    extra = [f"--include={','.join(include)}"] if include else []
    try:
        with open(log, "wb") as logf:
            r = subprocess.run(
                [debootstrap, "--variant=minbase", *extra, f"--cache-dir={debs}", "bookworm", str(rootfs), mirror],
                stdout=logf,
                stderr=subprocess.STDOUT,
                env={**os.environ, "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"},
            )
        if r.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise BuildError(f"debootstrap from {mirror} failed ({r.returncode}):\n" + "\n".join(tail))
        if _mounts_under(rootfs):
            raise BuildError(f"debootstrap left mounts under {rootfs}: {_mounts_under(rootfs)}")
        # What a container image does not carry: the host's name and resolver (the runtime
        # provides both), apt's caches and package lists (apt-get update fetches them).
        (rootfs / "etc/hostname").unlink(missing_ok=True)  # a copy of the host's
        (rootfs / "etc/hostname").write_text("localhost\n")
        (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
        for pattern in (
            "var/cache/apt/*.bin",
            "var/cache/apt/archives/*.deb",
            "var/lib/apt/lists/*_*",
            "var/log/bootstrap.log",
        ):
            for p in rootfs.glob(pattern):
                p.unlink()
        tar_path = out / "rootfs.tar"
        with open(tar_path, "wb") as f:
            tar_tree(rootfs, f)
        _remove_tree(rootfs)
        layout = Layout(out)
        desc, diff_id = layout.layer_from_file(tar_path)
        tar_path.unlink()
        log.unlink()
        how = f"debootstrap --variant=minbase{' --include=' + ','.join(include) if include else ''} bookworm / {mirror}"
        manifest = layout.image([(desc, diff_id, how)], {"Env": [PATH_ENV], "Cmd": ["bash"]})
        layout.tag(manifest)
    finally:
        _remove_tree(rootfs)


@recipe(
    "debian",
    1,
    "debootstrap --variant=minbase bookworm from the host's apt mirror",
    uses=(debootstrap_image, tar_tree, debian_mirror, apt_sources, _deb822_paragraphs, _remove_tree),
    inputs=debian_inputs,
)
def build_debian(out: Path) -> None:
    debootstrap_image(out, ())


DEBIAN_LARGE_PACKAGES = ("python3", "gcc", "g++", "libc6-dev", "make")


@recipe(
    "debian-large",
    1,
    "debian with python3, gcc, g++, make (more than 300 MB unpacked): issue #16's lazy pull",
    uses=(debootstrap_image, tar_tree, debian_mirror, apt_sources, _deb822_paragraphs, _remove_tree),
    inputs=lambda: debian_inputs() + " " + ",".join(DEBIAN_LARGE_PACKAGES),
)
def build_debian_large(out: Path) -> None:
    debootstrap_image(out, DEBIAN_LARGE_PACKAGES)


# -- layers: every kind of tar entry, and the whiteouts between layers -------------------------

LAYERS_MTIME = 1000000000  # 2001-09-09T01:46:40Z, on data/mtime-file


def layers_layer_entries() -> list[tuple[str | None, list[Entry], str]]:
    """The layers image, bottom to top: [(compression, entries, created_by)]. What a runtime
    must make of them is written down, independently, in images/layers_expect.py."""
    path, binary = busybox_binary()
    zstd = "zstd" if zstd_available() else "gzip"
    d = lambda p, **kw: Entry(p, "dir", **kw)  # noqa: E731
    f = lambda p, text, **kw: Entry(p, "file", data=text.encode(), **kw)  # noqa: E731
    wh = lambda p: Entry(p, "file", mode=0o644)  # noqa: E731  a whiteout

    base = [
        d("bin"),
        d("dev"),
        d("etc"),
        d("home"),
        d("proc"),
        d("sys"),
        d("data"),
        d("root", mode=0o700),
        d("tmp", mode=0o1777),
        d("home/app", uid=1000, gid=1000),
        Entry("bin/busybox", data=binary, mode=0o755),
        f("etc/passwd", PASSWD),
        f("etc/group", GROUP),
        f("home/app/notes.txt", "private notes\n", mode=0o600, uid=1000, gid=1000),
        f("data/kept.txt", "kept from layer 1\n"),
        f("data/replaced.txt", "layer 1 wrote this\n"),
        f("data/nobody", "owned by nobody\n", mode=0o640, uid=65534, gid=65534),
        f("data/deleted-file", "deleted by layer 2\n"),
        d("data/deleted-dir"),
        f("data/deleted-dir/inner.txt", "deleted with its dir\n"),
        d("data/deleted-dir/sub"),
        f("data/deleted-dir/sub/deep.txt", "deleted too\n"),
        d("data/opaque"),
        f("data/opaque/lower-a.txt", "hidden by the opaque dir\n"),
        d("data/opaque/lower-sub"),
        f("data/opaque/lower-sub/x.txt", "hidden too\n"),
        d("data/recreated-dir"),
        f("data/recreated-dir/old.txt", "deleted by layer 2\n"),
        f("data/file-then-dir", "a file, a dir in layer 4\n"),
        d("data/dir-then-link"),
        f("data/dir-then-link/a.txt", "a dir, a symlink in layer 4\n"),
    ]
    base += [
        Entry(f"bin/{a}", "symlink", target="busybox") for a in busybox_applets(path, full=False) if a != "busybox"
    ]

    deletions = [
        d("data"),
        wh("data/.wh.deleted-file"),
        wh("data/.wh.deleted-dir"),
        wh("data/.wh.recreated-dir"),
        d("data/opaque"),
        wh("data/opaque/.wh..wh..opq"),
        f("data/opaque/upper-b.txt", "from layer 2\n"),
        Entry("data/fifo", "fifo", mode=0o644),
        Entry("data/null", "char", mode=0o666, rdev=(1, 3)),
        f("data/hardlink-a", "one inode, two names\n"),
        Entry("data/hardlink-b", "hardlink", target="data/hardlink-a"),
    ]

    modes = [
        d("data"),
        d("home"),
        d("home/app", uid=1000, gid=1000),
        f("data/replaced.txt", "layer 3 wrote this\n"),
        d("data/recreated-dir"),
        f("data/recreated-dir/new.txt", "recreated in layer 3\n"),
        f("data/setuid", "#!/bin/sh\necho setuid\n", mode=0o4755),
        f("data/script.sh", "#!/bin/sh\necho deleted by layer 5\n", mode=0o755),
        d("data/sticky", mode=0o1777),
        f("data/xattr-file", "has user.test=hello\n", xattrs={"user.test": "hello"}),
        f("data/mtime-file", "mtime 2001-09-09T01:46:40Z\n", mtime=LAYERS_MTIME),
        f("data/to-delete-later", "deleted by layer 4\n"),
        Entry("data/link-rel", "symlink", target="kept.txt"),
        Entry("data/link-abs", "symlink", target="/data/kept.txt"),
        Entry("data/link-dir", "symlink", target="../bin"),
        Entry("home/app/link-to-notes", "symlink", target="notes.txt", uid=1000, gid=1000),
    ]

    replacements = [
        d("data"),
        d("home"),
        d("home/app", uid=1000, gid=1000),
        wh("data/.wh.to-delete-later"),
        d("data/file-then-dir"),
        f("data/file-then-dir/child.txt", "was a file\n"),
        Entry("data/dir-then-link", "symlink", target="kept.txt"),
        f("data/shared-file", "shared across directories\n", mode=0o640, uid=1000, gid=1000),
        Entry("home/app/shared-link", "hardlink", target="data/shared-file", mode=0o640, uid=1000, gid=1000),
    ]

    last = [d("data"), wh("data/.wh.script.sh"), d("etc"), f("etc/layers-release", "5\n")]

    return [
        ("gzip", base, "ADD base: busybox, users, files to delete and to replace /"),
        (None, deletions, "whiteouts (file, dir, opaque dir), fifo, char device, hard links"),
        (zstd, modes, "modes 4755/1777, xattr, mtime, symlinks, a recreated dir"),
        ("gzip", replacements, "whiteout of a zstd layer's file, file->dir, dir->symlink, hard link"),
        ("gzip", last, "whiteout of a file from layer 3, etc/layers-release"),
    ]


@recipe(
    "layers",
    1,
    "5 layers (gzip, tar, zstd, gzip, gzip): whiteouts, opaque dirs, links, devices, modes, owners, xattrs",
    uses=(layers_layer_entries, busybox_applets, busybox_binary, PASSWD, GROUP, LAYERS_MTIME),
    inputs=lambda: busybox_inputs() + (" zstd" if zstd_available() else " no-zstd"),
)
def build_layers(out: Path) -> None:
    layout = Layout(out)
    layers = []
    for compression, entries, created_by in layers_layer_entries():
        desc, diff_id = layout.layer(tar_bytes(entries), compression)
        layers.append((desc, diff_id, created_by))
    manifest = layout.image(layers, {"Env": [PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/data"})
    layout.tag(manifest)


# -- multiarch ------------------------------------------------------------------------------


def _multiarch(out: Path, docker: bool) -> None:
    """An index of linux/amd64 (busybox + /arch "amd64", runnable) and linux/arm64/v8 (only
    /arch "arm64"). With ``docker``, Docker's manifest list and schema 2 media types."""
    layout = Layout(out)
    layer_type = DOCKER_LAYER_GZIP if docker else None

    def arch_layer(arch: str):
        tar = tar_bytes([Entry("arch", data=f"{arch}\n".encode())])
        return (*layout.layer(tar, "gzip", layer_type), f"ADD arch /arch ({arch})")

    busybox = (*layout.layer(tar_bytes(busybox_entries()), "gzip", layer_type), "ADD busybox-static rootfs /")
    amd64 = layout.image([busybox, arch_layer("amd64")], {"Env": [PATH_ENV], "Cmd": ["sh"]}, docker=docker)
    arm64 = layout.image(
        [arch_layer("arm64")],
        {"Env": [PATH_ENV], "Cmd": ["/bin/sh"]},
        architecture="arm64",
        variant="v8",
        docker=docker,
    )
    layout.tag({**layout.image_index([amd64, arm64], docker=docker)})


@recipe(
    "multiarch",
    1,
    "OCI image index: linux/amd64 (busybox + /arch) and linux/arm64/v8 (/arch)",
    uses=(_multiarch, busybox_entries, busybox_applets, busybox_binary, PASSWD, GROUP),
    inputs=busybox_inputs,
)
def build_multiarch(out: Path) -> None:
    _multiarch(out, docker=False)


@recipe(
    "multiarch-docker",
    1,
    "the multiarch image with Docker manifest list / schema 2 media types",
    uses=(_multiarch, busybox_entries, busybox_applets, busybox_binary, PASSWD, GROUP),
    inputs=busybox_inputs,
)
def build_multiarch_docker(out: Path) -> None:
    _multiarch(out, docker=True)


# -- the cache --------------------------------------------------------------------------------


def _read_stamp(layout: Path) -> str | None:
    try:
        return json.loads((layout / STAMP).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError):
        return None


def build_image(name: str, force: bool = False) -> Path:
    """The cached OCI layout of recipe ``name``, built first if missing or stale."""
    if name not in RECIPES:
        raise BuildError(f"no recipe {name!r}; recipes: {', '.join(RECIPES)}")
    r = RECIPES[name]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    dest = root / name
    fingerprint = r.fingerprint()
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per recipe at a time
        if not force and _read_stamp(dest) == fingerprint and (dest / "index.json").is_file():
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.build-", dir=root))
        try:
            r.build(tmp)
            (tmp / STAMP).write_text(
                json.dumps({"recipe": name, "version": r.version, "fingerprint": fingerprint}, indent=2) + "\n"
            )
            os.chmod(tmp, 0o755)
            old = root / f".{name}.old-{os.getpid()}"
            if dest.exists():
                os.rename(dest, old)
            os.rename(tmp, dest)
            _remove_tree(old)
        except BaseException:
            _remove_tree(tmp)
            raise
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a test image as a cached OCI layout.")
    parser.add_argument("name", nargs="*", help=f"one of: {', '.join(RECIPES)}, or all")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("--list", action="store_true", help="list the recipes")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for r in RECIPES.values():
            print(f"{r.name:18} {r.summary}")
        return 0
    names = list(RECIPES) if args.name == ["all"] else args.name
    try:
        for name in names:
            print(build_image(name, force=args.force))
    except BuildError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
