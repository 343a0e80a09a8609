"""Comparing file trees, and small HTTP servers that misbehave, for the transfer tests
(push, save/load, export/import)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from tests.support.registry import QuietHandler, ThreadedServer


def tree(root: Path, skip_dirs_meta: bool = False) -> dict[str, tuple]:
    """relative path -> (kind, mode, uid, gid, content sha256 | link target | rdev | "").

    Times are left out (tools differ in what they keep for directories); the content,
    permissions and owners are what "the same files" means."""
    root = Path(root)
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", None if skip_dirs_meta else mode, st.st_uid, st.st_gid, "")
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", None, st.st_uid, st.st_gid, os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    out[rel] = ("file", mode, st.st_uid, st.st_gid, hashlib.sha256(f.read()).hexdigest())
            else:
                out[rel] = ("other", mode, st.st_uid, st.st_gid, st.st_rdev)
    return out


class FaultyRegistry:
    """An HTTP server on 127.0.0.1 that answers /v2/ with 200 and everything else with
    ``status`` and a distribution-style error body: a registry that refuses a push."""

    def __init__(self, status: int, code: str = "DENIED", message: str = "requested access to the resource is denied"):
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(QuietHandler):
            def _answer(self):
                server.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if self.path == "/v2/":
                    body, code_ = b"{}", 200
                elif self.command == "HEAD":
                    body, code_ = b"", 404
                else:
                    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
                    code_ = status
                self.send_response(code_)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _answer

        self.server = ThreadedServer("127.0.0.1", Handler)
        self.host = f"127.0.0.1:{self.server.port}"

    def stop(self) -> None:
        self.server.stop()
