"""Registry credentials, saved by ``minidocker login`` in a 0600 JSON file.

The file is ``~/.config/minidocker/auth.json`` (``$MINIDOCKER_CONFIG/auth.json`` if set), in
docker's ``config.json`` shape: ``{"auths": {"HOST": {"auth": base64("user:password")}}}``.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from minidocker.fsutil import locked, read_json, write_json
from minidocker.paths import config_dir


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def auth_file() -> Path:
    return config_dir() / "auth.json"


def load_credentials(domain: str) -> Credentials | None:
    entry = (read_json(auth_file(), {}) or {}).get("auths", {}).get(domain)
    if not entry or "auth" not in entry:
        return None
    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    return Credentials(user, password)


def save_credentials(domain: str, creds: Credentials) -> Path:
    path = auth_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with locked(path.with_suffix(".lock")):
        doc = read_json(path, {}) or {}
        token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        doc.setdefault("auths", {})[domain] = {"auth": token}
        write_json(path, doc, mode=0o600)
    return path


def remove_credentials(domain: str) -> bool:
    path = auth_file()
    if not path.exists():
        return False
    with locked(path.with_suffix(".lock")):
        doc = read_json(path, {}) or {}
        found = doc.get("auths", {}).pop(domain, None) is not None
        if found:
            write_json(path, doc, mode=0o600)
    os.chmod(path, 0o600)
    return found
