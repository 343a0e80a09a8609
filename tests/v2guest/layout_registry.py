"""A read-only registry for the guest: serves OCI image layouts over the distribution API.

    python tests/v2guest/layout_registry.py LAYOUTS_DIR PORT

``LAYOUTS_DIR/<name>/`` is an OCI image layout (images/build.py); ``<name>:<tag>`` is the
index entry annotated ``org.opencontainers.image.ref.name: <tag>``. Just enough of the API for
``minidocker pull``/``run`` (GET and HEAD of /v2/, manifests, blobs); listens on 127.0.0.1 only.
The guest has no docker-registry package, and a host registry would need a port the guest
can reach; this keeps everything inside the guest.
"""

from __future__ import annotations

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/root/layouts")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, code: int, body: bytes = b"", ctype: str = "application/json", digest: str | None = None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _blob(self, layout: Path, digest: str) -> bytes | None:
        algo, _, hexpart = digest.partition(":")
        p = layout / "blobs" / algo / hexpart
        return p.read_bytes() if re.fullmatch(r"[a-z0-9]+:[a-f0-9]{32,}", digest) and p.is_file() else None

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in ("/v2", "/v2/"):
            return self._send(200, b"{}")
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", path)
        if not m:
            return self._send(404, b'{"errors":[{"code":"NOT_FOUND"}]}')
        name, kind, ref = m.groups()
        layout = ROOT / name
        if not (layout / "index.json").is_file():
            return self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')
        if kind == "manifests" and ":" not in ref:
            index = json.loads((layout / "index.json").read_text())
            hits = [
                d
                for d in index["manifests"]
                if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref
            ]
            if not hits:
                return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            ref = hits[0]["digest"]
        body = self._blob(layout, ref)
        if body is None:
            code = "MANIFEST_UNKNOWN" if kind == "manifests" else "BLOB_UNKNOWN"
            return self._send(404, json.dumps({"errors": [{"code": code}]}).encode())
        if kind == "manifests":
            ctype = json.loads(body).get("mediaType", "application/vnd.oci.image.manifest.v1+json")
        else:
            ctype = "application/octet-stream"
        return self._send(200, body, ctype, digest=ref)

    do_HEAD = do_GET


if __name__ == "__main__":
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"serving {ROOT} on 127.0.0.1:{port}", flush=True)
    server.serve_forever()
