"""Fuzzing apply_layer: random tar streams never raise a stray exception, never write outside.

Hypothesis builds tar streams member by member, from paths over a small alphabet so that
members meet (a symlink ``s`` out of the layer, then ``s/new``; a hard link to ``s/canary``;
a whiteout of an earlier name), with ``..``, absolute paths and the path of the file
outside, every member type (devices and fifos too, hence root), huge sparse files and
hostile xattrs; a third of the streams are damaged: a member claiming more data than it
has, flipped bytes, a cut, or random bytes instead of a tar.

Each stream is applied into a fresh empty ``dest`` in a temp dir that also holds
``outside/`` with a canary file, under a small budget (8 MiB of expansion). Whatever
happens, only the errors a caller is prepared for may come out (``HostileLayer``,
``StoreError``, ``tarfile.TarError``, as apply_layer documents; through pull's decoders
also the decode errors pull catches), and nothing but ``dest`` may change in the temp dir.
Bounded: a fixed number of examples, derandomized (the same ones on every run), no deadline.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minidocker.errors import HostileLayer, StoreError
from minidocker.fsutil import remove_tree
from minidocker.image.layer import apply_layer
from minidocker.image.limits import LayerBudget, UnpackLimits
from minidocker.image.pull import HashingReader, _decode_errors, open_decompressed

MiB = 1 << 20
LIMITS = UnpackLimits(ratio=0, floor=8 * MiB, reserve_percent=100, reserve_cap=64 << 10)
FUZZ = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
OUT = "{outside}"  # replaced by the absolute path of this example's outside/ directory

# Names are paths over a small alphabet, so that members meet: a symlink "s" and a later
# "s/canary", a file "a" and a later "a/b", a hard link to an earlier name, a whiteout of one.
PARTS = ["a", "s", "s", "new", "canary", "..", ".", ".wh.a", ".wh.s", ".wh..wh..opq", ".wh..wh.plnk", ".wh..", "ünï"]
PREFIXES = [""] * 4 + ["s/"] * 3 + ["./", "/", f"{OUT}/", "../outside/"]
TARGETS = [OUT, f"{OUT}/canary", "../outside", "../outside/canary", "/", "../../../..", "", "s", "s/canary", "s/canary"]
XATTRS = [
    "user.a",
    "trusted.overlay.opaque",
    "trusted.overlay.redirect",
    "security.capability",
    "security.selinux",
    "trusted.x",
    "system.posix_acl_access",
    "bogus",
    "user.",
]
TYPES = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE] * 3 + [
    tarfile.AREGTYPE,
    tarfile.CHRTYPE,
    tarfile.BLKTYPE,
    tarfile.FIFOTYPE,
    tarfile.CONTTYPE,
    b"Z",
]


@st.composite
def paths(draw) -> str:
    parts = draw(st.lists(st.sampled_from(PARTS), min_size=1, max_size=3))
    return draw(st.sampled_from(PREFIXES)) + "/".join(parts) + draw(st.sampled_from(["", "", "", "/"]))


def member(
    name: str,
    type_: bytes = tarfile.REGTYPE,
    linkname: str = "",
    data: bytes = b"x",
    sparse_size=None,
    mode: int = 0o644,
    owner: int = 0,
    mtime: int = 0,
    dev=(0, 0),
    xattrs=None,
) -> dict:
    return {
        "name": name,
        "type": type_,
        "data": data,
        "sparse_size": sparse_size,
        "linkname": linkname,
        "mode": mode,
        "owner": owner,
        "mtime": mtime,
        "dev": dev,
        "xattrs": xattrs or {},
    }


# What a stream may start with, so that the random members after it probe them: "s" is a
# way out (the members "s/new", "s/canary" and hard links through "s" must be refused).
GADGETS = [
    member("s", tarfile.SYMTYPE, OUT),
    member("s", tarfile.SYMTYPE, "../outside"),
    member("s", tarfile.SYMTYPE, "/"),
    member("s", tarfile.SYMTYPE, f"{OUT}/canary"),
    member("a", tarfile.DIRTYPE),
    member("a/new", data=b"in the layer"),
]


@st.composite
def members(draw) -> dict:
    return member(
        draw(st.one_of(paths(), paths(), paths(), st.text(max_size=12))),
        type_=draw(st.sampled_from(TYPES)),
        linkname=draw(st.one_of(paths(), st.sampled_from(TARGETS), st.sampled_from(TARGETS), st.text(max_size=8))),
        data=draw(st.binary(max_size=2000)),
        sparse_size=draw(st.sampled_from([None] * 6 + [10, MiB, 1 << 40])),
        mode=draw(st.sampled_from([0o644, 0o755, 0o7777, 0, 0o4755])),
        owner=draw(st.sampled_from([0, 1000, 65534, 2**21 - 1])),
        mtime=draw(st.sampled_from([0, 1_600_000_000, 2**33 - 1])),
        dev=draw(st.sampled_from([(0, 0), (1, 3), (4095, 255)])),
        xattrs=draw(st.dictionaries(st.sampled_from(XATTRS), st.binary(max_size=24), max_size=1) | st.just({})),
    )


def member_bytes(m: dict, outside: str, size_lie: int = 0) -> bytes:
    """One member as tarfile writes it (PAX); ``size_lie``: bytes claimed beyond its data."""
    info = tarfile.TarInfo(m["name"].replace(OUT, outside))
    info.type, info.mode, info.mtime = m["type"], m["mode"], m["mtime"]
    info.uid = info.gid = m["owner"]
    info.linkname = m["linkname"].replace(OUT, outside)
    info.devmajor, info.devminor = m["dev"]
    data = m["data"] if m["type"] in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE) else b""
    info.size = len(data) + size_lie
    pax = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in m["xattrs"].items()}
    if m["sparse_size"] is not None and data:
        half = len(data) // 2  # two segments: the first half at 0, the rest at the very end
        pax.update(
            {
                "GNU.sparse.size": str(m["sparse_size"]),
                "GNU.sparse.numblocks": "2",
                "GNU.sparse.map": f"0,{half},{max(half, m['sparse_size'] - (len(data) - half))},{len(data) - half}",
            }
        )
    info.pax_headers = pax
    try:
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    except ValueError:  # tarfile itself will not write it (a name too long for a link...)
        return b""
    return header + data + bytes(-len(data) % 512)


@st.composite
def tar_streams(draw) -> tuple:
    """``(members, damage)``; the bytes are made per example (they name its outside dir).
    Two in three streams are whole; the others have one kind of damage: a member claiming more
    data than it has, flipped bytes, a cut, or random bytes instead of a tar."""
    ms = draw(st.lists(st.sampled_from(GADGETS), max_size=2)) + draw(st.lists(members(), max_size=12))
    kind = draw(st.sampled_from(["none"] * 8 + ["lie", "flip", "cut", "bytes"]))
    detail = {
        "none": st.none(),
        "lie": st.tuples(st.integers(0, 13), st.sampled_from([1, 4096, 1 << 33])),
        "flip": st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=3),
        "cut": st.integers(0, 1 << 16),
        "bytes": st.binary(max_size=4000),
    }[kind]
    return ms, (kind, draw(detail))


def build_stream(spec: tuple, outside: str) -> bytes:
    ms, (kind, detail) = spec
    if kind == "bytes":
        return detail
    lie_at, lie = detail if kind == "lie" else (None, 0)  # the index may name no member: no lie
    data = bytearray(
        b"".join(member_bytes(m, outside, lie if i == lie_at else 0) for i, m in enumerate(ms)) + bytes(1024)
    )
    for pos, value in detail if kind == "flip" else ():
        data[pos % len(data)] = value
    return bytes(data[:detail] if kind == "cut" else data)


# -- the sandbox: dest and outside/, and a snapshot of everything but dest ----------------------
def make_sandbox(base: Path) -> tuple[Path, Path]:
    box = Path(tempfile.mkdtemp(dir=base))
    (box / "dest").mkdir()
    outside = box / "outside"
    (outside / "dir").mkdir(parents=True)
    canary = outside / "canary"
    canary.write_bytes(b"canary\n")
    for p in (canary, outside / "dir", outside):
        os.utime(p, (1_500_000_000, 1_500_000_000))
    return box, outside


def snapshot(box: Path) -> dict:
    """Everything under ``box`` but ``dest`` (which the layer may change, its own owner,
    mode and times included: it must only stay a directory): kind, owner, mode, links,
    times, xattrs and content."""
    out = {}
    for root, dirs, files in os.walk(box):
        if root == str(box / "dest"):
            dirs[:] = []
            files = []
        for name in dirs + files:
            p = os.path.join(root, name)
            st_ = os.lstat(p)
            if p == str(box / "dest"):
                out["dest"] = stat.S_ISDIR(st_.st_mode)
                continue
            content = (
                hashlib.sha256(Path(p).read_bytes()).hexdigest()
                if os.path.isfile(p) and not os.path.islink(p)
                else None
            )
            out[os.path.relpath(p, box)] = (
                st_.st_mode,
                st_.st_uid,
                st_.st_gid,
                st_.st_nlink,
                st_.st_size,
                st_.st_mtime_ns,
                st_.st_ino,
                sorted(os.listxattr(p, follow_symlinks=False)),
                content,
            )
    return out


APPLY_ERRORS = (HostileLayer, StoreError, tarfile.TarError)  # what apply_layer documents
PULL_ERRORS = (HostileLayer, StoreError, *_decode_errors())  # what pull is prepared for


def applies_safely(base: Path, apply, allowed: tuple[type[BaseException], ...]) -> None:
    """Run ``apply(dest, outside)`` in a fresh sandbox: only ``allowed`` errors, nothing
    outside ``dest`` changed; then remove the sandbox."""
    box, outside = make_sandbox(base)
    try:
        before = snapshot(box)
        try:
            apply(box / "dest", str(outside))
        except allowed:
            pass
        assert snapshot(box) == before
    finally:
        remove_tree(box)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-layer")


@FUZZ
@given(spec=tar_streams())
def test_random_tar_streams(base, spec):
    def apply(dest: Path, outside: str) -> None:
        stream = io.BufferedReader(io.BytesIO(build_stream(spec, outside)), 1 << 16)
        apply_layer(stream, dest, LayerBudget(LIMITS, dest, "a fuzzed layer", 1000))

    applies_safely(base, apply, APPLY_ERRORS)


@settings(FUZZ, max_examples=150)
@given(
    spec=tar_streams(),
    compression=st.sampled_from(["gzip", "zstd", "none"]),
    garbage=st.none() | st.binary(max_size=4000),
)
def test_random_compressed_streams_through_the_pull_decoders(base, spec, compression, garbage):
    """Pull's chain: decoder -> HashingReader (the budget) -> apply_layer -> drain; the
    compressed bytes are a real compression of a fuzzed tar, or garbage."""
    import gzip

    import zstandard

    def apply(dest: Path, outside: str) -> None:
        plain = build_stream(spec, outside)
        packed = (
            garbage
            if garbage is not None
            else {"gzip": gzip.compress, "zstd": zstandard.compress, "none": bytes}[compression](plain)
        )
        budget = LayerBudget(LIMITS, dest, "a fuzzed layer", len(packed))
        with open_decompressed(io.BytesIO(packed), compression) as decompressed:
            tar = HashingReader(decompressed, budget)
            apply_layer(io.BufferedReader(tar, 1 << 20), dest, budget)
            tar.drain()

    applies_safely(base, apply, PULL_ERRORS)
