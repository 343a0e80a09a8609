"""The library surface: what every CLI command calls. One function per command.

Each function takes plain values and returns plain data (no printing, no rich); errors are
``MinidockerError`` subclasses. ``root`` is the store directory (``--root``).
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any, Callable

from minidocker.errors import AuthenticationError, MinidockerError
from minidocker.paths import default_root


def _store(root: Path | None):
    from minidocker.image.store import ImageStore

    return ImageStore(root or default_root())


# -- images ---------------------------------------------------------------------------------
def pull(ref: str, root: Path | None = None, platform: str | None = None,
         progress: Callable | None = None):
    """Pull ``ref`` into the store; returns a ``PullResult``."""
    from minidocker.image.manifest import Platform
    from minidocker.image.reference import parse

    reference = parse(ref)
    plat = Platform.parse(platform) if platform else None
    from minidocker.image.pull import pull_image

    return pull_image(_store(root), reference, plat, progress, explicit_platform=platform is not None)


def images(root: Path | None = None) -> list[dict[str, Any]]:
    """One row per (image, tag), as ``docker images`` lists them; dangling images once."""
    from minidocker.image.reference import parse

    rows = []
    store = _store(root)
    for info in store.images():
        digests = {parse(d).familiar_name: d.split("@", 1)[1] for d in info.repo_digests}
        base = {"ID": info.id, "Created": info.created, "Size": info.size}
        if not info.tags:
            name = next(iter(digests), None)
            rows.append({**base, "Repository": name or "<none>", "Tag": "<none>",
                         "Digest": digests.get(name, "<none>") if name else "<none>"})
        for tag in info.tags:
            ref = parse(tag)
            rows.append({**base, "Repository": ref.familiar_name, "Tag": ref.tag,
                         "Digest": digests.get(ref.familiar_name, "<none>")})
    return rows


def inspect_image(name: str, root: Path | None = None) -> dict[str, Any]:
    """``docker image inspect``'s fields for one image."""
    from minidocker.image.reference import parse

    store = _store(root)
    doc = store.read_index()
    image_id = store.resolve(name, doc)
    cfg = store.config(image_id)
    rec = doc["images"][image_id]
    chains = store.chain_ids(image_id)
    size = sum(store.layer_meta(c).get("size", 0) for c in chains)
    return {
        "Id": image_id,
        "RepoTags": [parse(t).familiar() for t in store.tags_of(image_id, doc)],
        "RepoDigests": [parse(d).familiar() for d in rec["repo_digests"]],
        "Parent": "",
        "Comment": next((h.get("comment", "") for h in reversed(cfg.get("history") or []) if h.get("comment")), ""),
        "Created": cfg.get("created", ""),
        "Author": cfg.get("author", ""),
        "Config": cfg.get("config") or {},
        "Architecture": cfg.get("architecture", ""),
        "Variant": cfg.get("variant"),
        "Os": cfg.get("os", ""),
        "Size": size,
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(str(p) for p in store.lowerdirs(image_id))}},
        "RootFS": {"Type": "layers", "Layers": list(cfg["rootfs"]["diff_ids"])},
        "Metadata": {"LastTagTime": rec.get("added", "")},
        "Descriptor": {"digest": rec["manifest"]},
    }


def tag(source: str, target: str, root: Path | None = None) -> str:
    return _store(root).tag(source, target)


def rmi(names: list[str], force: bool = False, root: Path | None = None) -> tuple[list[str], list[MinidockerError]]:
    """Remove images; returns the lines to print and the errors (docker goes on after one)."""
    store = _store(root)
    lines: list[str] = []
    errors: list[MinidockerError] = []
    for name in names:
        try:
            lines += store.remove(name, force=force)
        except MinidockerError as e:
            errors.append(e)
    return lines, errors


# -- registries -----------------------------------------------------------------------------
def login(server: str, username: str | None, password: str | None) -> str:
    """Check the credentials against the registry, then save them (0600)."""
    from minidocker.image.auth import Credentials, save_credentials
    from minidocker.image.reference import DEFAULT_DOMAIN
    from minidocker.image.registry import RegistryClient

    domain = normalize_server(server) if server else DEFAULT_DOMAIN
    if not username:
        username = input("Username: ")
    if password is None:
        password = getpass.getpass("Password: ")
    if not username or not password:
        raise AuthenticationError("login needs a username and a password")
    creds = Credentials(username, password)
    with RegistryClient(domain, creds) as reg:
        reg.ping()
    save_credentials(domain, creds)
    return "Login Succeeded"


def logout(server: str | None) -> str:
    from minidocker.image.auth import remove_credentials
    from minidocker.image.reference import DEFAULT_DOMAIN

    domain = normalize_server(server) if server else DEFAULT_DOMAIN
    if remove_credentials(domain):
        return f"Removing login credentials for {domain}"
    return f"Not logged in to {domain}"


def normalize_server(server: str) -> str:
    from minidocker.image.reference import DEFAULT_DOMAIN, LEGACY_DOMAINS

    s = server.strip()
    for prefix in ("https://", "http://"):
        s = s.removeprefix(prefix)
    s = s.split("/", 1)[0]
    return DEFAULT_DOMAIN if s in LEGACY_DOMAINS or s == DEFAULT_DOMAIN else s


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=4)
