"""What must hold in a minidocker store after a SIGKILL at any point: a checker for tests.

It reads the store's files directly, with its own few lines of the OCI rules (chain IDs,
digests), so that it does not trust the code it checks:

* ``problems(root)``: every way the store is inconsistent, as sentences (empty: consistent).
  Every tag names an image of the index; every image's manifest and config blobs exist and
  hash to their digests; the manifest names the config and one layer blob per diff_id; every
  layer blob exists (and hashes right, when it is small); every chain ID of the config has
  ``layers/<chain>/meta.json`` naming that chain and diff_id, and a ``diff/`` directory;
  every container's state.json is whole JSON.
* ``orphans(root)``: what nothing needs: files of ``ingest/``, ``layers/.tmp-*`` dirs, blobs
  and layers that no image of the index references.
* ``frozen(root)`` / ``wait_thawed(root)``: the containers whose cgroup freezer says frozen
  (v1 ``freezer.state``, v2 ``cgroup.freeze``).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

SMALL = 4 << 20  # layer blobs up to this size are hashed too (manifests and configs always are)
CGROUP = Path("/sys/fs/cgroup")


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI image spec's ChainID: chain[0] = diff_id[0], chain[n] = sha256(chain[n-1] + " " + diff_id[n])."""
    chains: list[str] = []
    for d in diff_ids:
        chains.append(d if not chains else "sha256:" + hashlib.sha256(f"{chains[-1]} {d}".encode()).hexdigest())
    return chains


def _blob(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _hashes_to(path: Path, digest: str) -> bool:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest() == digest


def _index(root: Path) -> dict:
    path = root / "images" / "index.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    return {"tags": doc.get("tags", {}), "images": doc.get("images", {})}


def _json_blob(root: Path, digest: str, what: str, found: list[str]) -> dict | None:
    path = _blob(root, digest)
    if not path.is_file():
        found.append(f"{what} blob {digest[:19]} is missing")
        return None
    if not _hashes_to(path, digest):
        found.append(f"{what} blob {digest[:19]} does not hash to its name")
        return None
    return json.loads(path.read_bytes())


def _image_problems(root: Path, image_id: str, rec: dict) -> list[str]:
    found: list[str] = []
    where = f"image {image_id[7:19]}"
    manifest = _json_blob(root, rec.get("manifest", ""), f"{where}: manifest", found)
    config = _json_blob(root, image_id, f"{where}: config", found)
    if manifest is None or config is None:
        return found
    diff_ids = config["rootfs"]["diff_ids"]
    if manifest["config"]["digest"] != image_id:
        found.append(f"{where}: its manifest names config {manifest['config']['digest'][:19]}")
    if len(manifest["layers"]) != len(diff_ids):
        found.append(f"{where}: {len(manifest['layers'])} layer blobs for {len(diff_ids)} diff_ids")
    for desc in manifest["layers"]:
        path = _blob(root, desc["digest"])
        if not path.is_file():
            found.append(f"{where}: layer blob {desc['digest'][:19]} is missing")
        elif path.stat().st_size != desc["size"]:
            found.append(f"{where}: layer blob {desc['digest'][:19]} has the wrong size")
        elif desc["size"] <= SMALL and not _hashes_to(path, desc["digest"]):
            found.append(f"{where}: layer blob {desc['digest'][:19]} does not hash to its name")
    for chain, diff_id in zip(chain_ids(diff_ids), diff_ids):
        layer = root / "layers" / chain.removeprefix("sha256:")
        try:
            meta = json.loads((layer / "meta.json").read_text())
        except (OSError, ValueError):
            found.append(f"{where}: layer {chain[7:19]} has no whole meta.json")
            continue
        if meta.get("chain_id") != chain or meta.get("diff_id") != diff_id or not (layer / "diff").is_dir():
            found.append(f"{where}: layer {chain[7:19]} is not the layer its name says")
    return found


def problems(root: Path) -> list[str]:
    """Every inconsistency of the store at ``root`` (see the module docstring)."""
    root = Path(root)
    found: list[str] = []
    try:
        index = _index(root)
    except ValueError as e:
        return [f"images/index.json is not whole JSON: {e}"]
    for tag, image_id in index["tags"].items():
        if image_id not in index["images"]:
            found.append(f"tag {tag} names {image_id[:19]}, which is not an image of the index")
    for image_id, rec in index["images"].items():
        found += _image_problems(root, image_id, rec)
    for state in sorted((root / "containers").glob("*/state.json")):
        try:
            json.loads(state.read_text())
        except ValueError:
            found.append(f"{state.relative_to(root)} is not whole JSON")
    return found


def referenced(root: Path) -> tuple[set[str], set[str]]:
    """The blob hexes and layer (chain) hexes the images of the index need."""
    blobs: set[str] = set()
    layers: set[str] = set()
    for image_id, rec in _index(root)["images"].items():
        blobs.update(d.removeprefix("sha256:") for d in (image_id, rec["manifest"], rec.get("index")) if d)
        manifest = json.loads(_blob(root, rec["manifest"]).read_bytes())
        blobs.update(d["digest"].removeprefix("sha256:") for d in manifest["layers"])
        config = json.loads(_blob(root, image_id).read_bytes())
        layers.update(c.removeprefix("sha256:") for c in chain_ids(config["rootfs"]["diff_ids"]))
    return blobs, layers


def orphans(root: Path) -> list[str]:
    """What no image needs and no live writer owns (after a prune: nothing)."""
    root = Path(root)
    blobs, layers = referenced(root)

    def names(sub: str) -> list[str]:
        folder = root / sub
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    return (
        [f"ingest/{n}" for n in names("ingest")]
        + [f"layers/{n}" for n in names("layers") if n.startswith(".tmp-") or n not in layers]
        + [f"blobs/sha256/{n}" for n in names("blobs/sha256") if n not in blobs]
    )


def freezer_state(cid: str) -> str | None:
    """FROZEN, FREEZING or THAWED (v1's words, for v2 too); None: the container has no cgroup."""
    v1 = CGROUP / "freezer" / "minidocker" / cid / "freezer.state"
    if v1.exists():
        return v1.read_text().strip()
    v2 = CGROUP / "minidocker" / cid / "cgroup.freeze"
    if v2.exists():
        return "FROZEN" if v2.read_text().strip() == "1" else "THAWED"
    return None


def frozen(root: Path) -> list[str]:
    """The IDs of the store's containers whose cgroup is frozen (or freezing)."""
    folder = Path(root) / "containers"
    ids = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
    return [cid for cid in ids if freezer_state(cid) not in (None, "THAWED")]


def wait_thawed(root: Path, paused: set[str] = frozenset(), timeout: float = 10.0) -> list[str]:
    """Wait until no container but those in ``paused`` is frozen; returns the ones still frozen.
    (A killed commit's freeze helper thaws at once, but in a process of its own.)"""
    deadline = time.monotonic() + timeout
    while True:
        left = [cid for cid in frozen(root) if cid not in paused]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.02)
