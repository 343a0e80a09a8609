"""A client for the OCI distribution API (what ``docker pull`` speaks to a registry).

The whole protocol for pulling is three kinds of GET::

    GET /v2/                                   ping: 200, or 401 with an auth challenge
    GET /v2/<name>/manifests/<tag-or-digest>   a manifest or an index (Accept: says which kinds)
    GET /v2/<name>/blobs/<digest>              a config or a layer; may redirect to a CDN

Authentication follows the challenge in ``WWW-Authenticate``:

* ``Basic realm=...``: send ``Authorization: Basic base64(user:pass)``.
* ``Bearer realm=URL,service=S,scope=repository:NAME:pull``: GET ``URL?service=S&scope=...``
  (with Basic credentials if we have them, anonymously otherwise) returns a JSON token,
  then send ``Authorization: Bearer TOKEN``. This is Docker Hub's flow.

A blob redirect to another host (Docker Hub's CDN) is followed *without* the Authorization
header: the token is for the registry, not for whoever it sends us to.

Pushing (``minidocker push``) adds the write half of the protocol, per blob::

    HEAD /v2/<name>/blobs/<digest>                      200: already there, nothing to send
    POST /v2/<name>/blobs/uploads/?mount=<d>&from=<r>   201: mounted from another repository
    POST /v2/<name>/blobs/uploads/                      202 + Location: an upload session
    PATCH <Location>  Content-Range: 0-1048575          202 + the next Location (chunked)
    PUT   <Location>?digest=<digest>                    201: verified and published

and then ``PUT /v2/<name>/manifests/<tag>``. Every ``Location`` may be relative or absolute
and must be used as given. A push needs the token scope ``repository:NAME:push,pull`` (and
``repository:FROM:pull`` to mount): a scope string below may hold several, space-separated,
and each becomes one ``scope=`` parameter of the token request, as docker sends them.

**Nothing is read without a bound.** A registry chooses how many bytes it sends, so every
body is counted as it arrives: a blob stops at the size its descriptor gives (one chunk
more at most, whether or not ``Content-Length`` was sent, and a ``Content-Length`` beyond it
is refused before the first byte is read), a manifest at 4 MiB (containerd's limit), a
config at 16 MiB, an error message at 64 KiB. And we ask for the bytes as they are stored
(``Accept-Encoding: identity``): a digest is of those bytes, not of a gzip made on the way.

Try it: ``curl -si http://127.0.0.1:5000/v2/`` and
``curl -s -H 'Accept: application/vnd.oci.image.index.v1+json' http://127.0.0.1:5000/v2/busybox/manifests/latest``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode, urljoin, urlsplit

from minidocker.errors import AuthenticationError, DigestMismatch, ImageNotFound, RegistryError
from minidocker.image import manifest as mf
from minidocker.image.auth import Credentials, load_credentials
from minidocker.image.reference import DEFAULT_DOMAIN, Reference

DOCKER_HUB_API = "registry-1.docker.io"
CHUNK = 1 << 20
MAX_MANIFEST_SIZE = 4 << 20  # containerd's limit for a manifest or an index
MAX_CONFIG_SIZE = 16 << 20  # a config is read into memory whole
MAX_ERROR_BODY = 64 << 10  # enough for any distribution error document
MAX_REDIRECTS = 5
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def is_insecure(domain: str) -> bool:
    """Plain HTTP only for loopback and the hosts in ``$MINIDOCKER_INSECURE_REGISTRIES``."""
    host = urlsplit("//" + domain).hostname or domain
    if host == "localhost":
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    listed = {h.strip() for h in os.environ.get("MINIDOCKER_INSECURE_REGISTRIES", "").split(",") if h.strip()}
    return domain in listed or host in listed


DAEMON_CONFIG = "/etc/minidocker/daemon.json"


def daemon_config() -> tuple[str, dict]:
    """The machine's settings file and what it holds: ``$MINIDOCKER_DAEMON_CONFIG``, else
    /etc/minidocker/daemon.json, in the format of docker's own /etc/docker/daemon.json (only
    ``registry-mirrors`` is read). A missing file is no settings; a damaged one is an error,
    not a silent fallback to Docker Hub. Try it: ``cat /etc/minidocker/daemon.json``."""
    path = os.environ.get("MINIDOCKER_DAEMON_CONFIG") or DAEMON_CONFIG
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except FileNotFoundError:
        return path, {}
    except (OSError, ValueError) as e:
        raise RegistryError(
            f"cannot read {path}: {e}", hint='it should look like {"registry-mirrors": ["http://127.0.0.1:5000"]}'
        ) from None
    mirrors = doc.get("registry-mirrors", []) if isinstance(doc, dict) else None
    if not isinstance(mirrors, list) or not all(isinstance(m, str) for m in mirrors):
        raise RegistryError(
            f'{path}: "registry-mirrors" must be a list of URLs', hint='{"registry-mirrors": ["http://127.0.0.1:5000"]}'
        )
    return path, doc


def registry_mirror() -> tuple[str, str] | None:
    """Where Docker Hub's names go instead, and who said so: ``$MINIDOCKER_REGISTRY_MIRROR``
    first (a shell's choice wins over the machine's), then the first of the settings file's
    ``registry-mirrors``. docker tries each mirror in turn; one is enough for a classroom VM."""
    env = os.environ.get("MINIDOCKER_REGISTRY_MIRROR", "").strip()
    if env:
        return env, "MINIDOCKER_REGISTRY_MIRROR"
    path, doc = daemon_config()
    mirrors = [m.strip() for m in doc.get("registry-mirrors", []) if m.strip()]
    return (mirrors[0], path) if mirrors else None


def endpoint_for(domain: str) -> str:
    """The base URL for a registry domain; Docker Hub goes through the mirror when one is set."""
    if domain == DEFAULT_DOMAIN:
        found = registry_mirror()
        if found:
            mirror, source = found[0].rstrip("/"), found[1]
            if not re.match(r"^https?://[^/]+", mirror):
                raise RegistryError(f"registry mirror {mirror!r} (from {source}) is not an http(s) URL")
            return mirror
        return f"https://{DOCKER_HUB_API}"
    return f"{'http' if is_insecure(domain) else 'https'}://{domain}"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="x",service="y"`` -> ``("bearer", {"realm": "x", "service": "y"})``."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in _CHALLENGE_PARAM.findall(rest)}


def read_capped(resp, limit: int, what: str) -> bytes:
    """The body of a streamed response, at most ``limit`` bytes: a ``Content-Length`` beyond
    it is refused before reading; without one, reading stops one network read past it."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RegistryError(f"{what} is {int(declared)} bytes, more than the {limit} bytes minidocker accepts")
    data = bytearray()
    # decoded chunks: a server that gzips despite Accept-Encoding: identity gets one network
    # read (64 KiB) expanded at most 1032 times in memory before the check below stops it
    for chunk in resp.iter_bytes():
        data += chunk
        if len(data) > limit:
            raise RegistryError(f"{what} is larger than the {limit} bytes minidocker accepts")
    return bytes(data)


def _error_text(resp) -> str:
    """The first error of a distribution error body, else the HTTP reason."""
    try:
        body = resp.content if resp.is_stream_consumed else read_capped(resp, MAX_ERROR_BODY, "an error body")
        errors = json.loads(body).get("errors") or []
        if errors:
            e = errors[0]
            return f"{e.get('code', '').lower()}: {e.get('message', '')}".strip(": ")
    except Exception:
        pass
    return f"HTTP {resp.status_code} {resp.reason_phrase}"


class RegistryClient:
    """One registry, one HTTP connection pool, tokens cached per scope. Thread-safe."""

    def __init__(self, domain: str, credentials: Credentials | None = None, *, timeout: float = 60.0):
        import httpx  # heavy: imported only by commands that talk to a registry

        self._httpx = httpx
        self.domain = domain
        self.base = endpoint_for(domain)
        self.credentials = credentials if credentials is not None else load_credentials(domain)
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._lock = threading.Lock()
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=False,
            headers={"User-Agent": "minidocker/0.1", "Accept-Encoding": "identity"},
            trust_env=False,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------
    def _auth_header(self, scope: str | None) -> dict[str, str]:
        if (scope or "") in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[scope or '']}"}
        if self._basic and self.credentials:
            return {"Authorization": self.credentials.basic()}
        return {}

    def _send(self, method: str, url: str, headers: dict[str, str], stream: bool, content=None):
        req = self.http.build_request(method, url, headers=headers, content=content)
        try:
            return self.http.send(req, stream=stream)
        except self._httpx.TimeoutException:
            raise RegistryError(f"registry {self.domain} timed out ({urlsplit(url).netloc})") from None
        except self._httpx.TransportError as e:
            reason = str(e) or type(e).__name__
            raise RegistryError(
                f"registry {self.domain} is unreachable at {urlsplit(url).netloc}: {reason}",
                hint="is the registry running? (plain HTTP is used only for loopback and "
                "$MINIDOCKER_INSECURE_REGISTRIES)",
            ) from None

    def request(
        self,
        method: str,
        path: str,
        scope: str | None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        content=None,
    ):
        """Send a request to the registry, answering one auth challenge if it asks.

        ``path`` is a path on the registry, or an absolute URL (an upload ``Location``): the
        credentials go only to the registry's own host. ``content`` is bytes, or a function
        returning a fresh body iterator (a streamed body cannot be replayed after a 401)."""
        url = urljoin(self.base + "/", path) if path.startswith(("http://", "https://")) else self.base + path
        ours = urlsplit(url).netloc == urlsplit(self.base).netloc
        hdrs = dict(headers or {})

        def send():
            body = content() if callable(content) else content
            return self._send(method, url, {**hdrs, **(self._auth_header(scope) if ours else {})}, stream, body)

        resp = send()
        if resp.status_code == 401 and ours:
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.close()
            self.authenticate(challenge, scope)
            resp = send()
        if resp.status_code in (401, 403):
            text = _error_text(resp)
            resp.close()
            who = f"as {self.credentials.username}" if self.credentials else "anonymously"
            raise AuthenticationError(
                f"access to {self.domain} denied {who} ({text})",
                hint=f"run: minidocker login {self.domain}"
                if not self.credentials
                else "check the credentials saved by minidocker login",
            )
        return resp

    def authenticate(self, challenge: str, scope: str | None) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials:
                raise AuthenticationError(
                    f"{self.domain} requires a login (basic auth)", hint=f"run: minidocker login {self.domain}"
                )
            self._basic = True
        elif scheme == "bearer":
            self._tokens[scope or ""] = self.fetch_token(params, scope)
        else:
            raise AuthenticationError(f"{self.domain} asked for an unsupported auth scheme {scheme!r}")

    def fetch_token(self, params: dict[str, str], scope: str | None) -> str:
        """Docker Hub's token flow: GET realm?service=..&scope=.. (Basic creds if we have them)."""
        realm = params.get("realm")
        if not realm or not realm.startswith(("http://", "https://")):
            raise AuthenticationError(f"{self.domain} sent a Bearer challenge without a usable realm")
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", s) for s in (scope or "").split()]
        headers = {"Authorization": self.credentials.basic()} if self.credentials else {}
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        resp = self._send("GET", url, headers, stream=False)
        if resp.status_code in (401, 403):
            raise AuthenticationError(
                f"the token server of {self.domain} refused the credentials ({_error_text(resp)})",
                hint=f"run: minidocker login {self.domain}",
            )
        if resp.status_code != 200:
            raise AuthenticationError(f"the token server of {self.domain} answered {_error_text(resp)}")
        try:
            body = resp.json()
            return body.get("token") or body["access_token"]
        except (ValueError, KeyError):
            raise AuthenticationError(f"the token server of {self.domain} sent no token") from None

    # -- API ----------------------------------------------------------------------------
    def ping(self) -> None:
        """``GET /v2/`` with authentication: proves the registry and the credentials."""
        resp = self.request("GET", "/v2/", scope=None)
        resp.close()
        if resp.status_code != 200:
            raise RegistryError(f"{self.domain} does not speak the registry API v2 (HTTP {resp.status_code})")

    def get_manifest(self, ref: Reference, reference: str | None = None) -> tuple[bytes, str, str]:
        """Fetch a manifest or index (at most 4 MiB); return ``(raw, media_type, digest)``,
        digest verified."""
        reference = reference or ref.reference
        resp = self.request(
            "GET",
            f"/v2/{ref.path}/manifests/{reference}",
            scope=f"repository:{ref.path}:pull",
            headers={"Accept": mf.ACCEPT},
            stream=True,
        )
        try:
            if resp.status_code == 404:
                raise ImageNotFound(
                    f"manifest for {ref.familiar_name}:{reference} not found: {_error_text(resp)}"
                    if not reference.startswith("sha256:")
                    else f"manifest {reference} of {ref.familiar_name} not found: {_error_text(resp)}"
                )
            if resp.status_code != 200:
                raise RegistryError(f"{self.domain} answered {_error_text(resp)} for the manifest of {ref.familiar()}")
            raw = read_capped(resp, MAX_MANIFEST_SIZE, f"the manifest of {ref.familiar()}")
        except self._httpx.TransportError as e:
            raise RegistryError(
                f"download of the manifest of {ref.familiar()} broke off: {e or type(e).__name__}"
            ) from None
        finally:
            resp.close()
        digest = mf.sha256_digest(raw)
        if reference.startswith("sha256:") and digest != reference:
            raise_mismatch(f"manifest {reference[:19]}", digest)
        header = resp.headers.get("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != digest:
            raise_mismatch(f"manifest of {ref.familiar()} (Docker-Content-Digest {header[:19]})", digest)
        return raw, mf.detect_media_type(raw, resp.headers.get("Content-Type")), digest

    @contextmanager
    def open_blob(self, ref: Reference, digest: str, size: int) -> Iterator[Iterator[bytes]]:
        """Stream a blob's raw bytes, following CDN redirects. The stream stops with
        ``DigestMismatch`` as soon as more than ``size`` bytes (the descriptor's) arrive; the
        caller checks the digest, and that no fewer came."""
        scope = f"repository:{ref.path}:pull"
        resp = self.request("GET", f"/v2/{ref.path}/blobs/{digest}", scope=scope, stream=True)
        url = str(resp.request.url)
        try:
            for _ in range(MAX_REDIRECTS):
                if resp.status_code not in (301, 302, 303, 307, 308):
                    break
                location = urljoin(url, resp.headers.get("Location", ""))
                resp.close()
                same_host = urlsplit(location).netloc == urlsplit(url).netloc
                # Never hand our registry token to another host (a CDN): drop Authorization.
                headers = self._auth_header(scope) if same_host else {}
                url = location
                resp = self._send("GET", url, headers, stream=True)
            if resp.status_code == 404:
                raise ImageNotFound(f"blob {digest[:19]} of {ref.familiar_name} not found: {_error_text(resp)}")
            if resp.status_code != 200:
                raise RegistryError(f"{urlsplit(url).netloc} answered {_error_text(resp)} for blob {digest[:19]}")
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > size:
                raise_too_long(digest, size, f"its Content-Length says {declared}")
            yield self._iter_body(resp, digest, size)
        finally:
            resp.close()

    def _iter_body(self, resp, digest: str, size: int) -> Iterator[bytes]:
        received = 0
        try:
            for chunk in resp.iter_raw(CHUNK):
                received += len(chunk)
                if received > size:  # the chunk that goes past the size is never handed on
                    raise_too_long(digest, size, f"{received} bytes have come so far")
                yield chunk
        except self._httpx.TransportError as e:
            raise RegistryError(f"download of blob {digest[:19]} broke off: {e or type(e).__name__}") from None

    def get_blob(self, ref: Reference, digest: str, size: int, limit: int = MAX_CONFIG_SIZE) -> bytes:
        """A small blob (a config) of ``size`` bytes, at most ``limit``, in memory, verified."""
        if size > limit:
            raise RegistryError(
                f"blob {digest[:19]} is {size} bytes, more than the {limit} minidocker reads into memory"
            )
        data = bytearray()
        with self.open_blob(ref, digest, size) as chunks:
            for chunk in chunks:
                data += chunk
        if len(data) != size:
            raise DigestMismatch(f"blob {digest[:19]} has {len(data)} bytes, its descriptor says {size}")
        actual = mf.sha256_digest(bytes(data))
        if actual != digest:
            raise_mismatch(f"blob {digest[:19]}", actual)
        return bytes(data)

    # -- push: the write half of the API ------------------------------------------------------
    def blob_exists(self, ref: Reference, digest: str, scope: str) -> bool:
        """``HEAD /v2/<name>/blobs/<digest>``: is the blob already in this repository?"""
        resp = self.request("HEAD", f"/v2/{ref.path}/blobs/{digest}", scope=scope)
        resp.close()
        if resp.status_code in (200, 307):  # a redirect to the storage backend: it is there
            return True
        if resp.status_code == 404:
            return False
        raise RegistryError(f"{self.domain} answered HTTP {resp.status_code} to HEAD of blob {digest[:19]}")

    def start_upload(
        self, ref: Reference, scope: str, mount: str | None = None, source: str | None = None
    ) -> str | None:
        """``POST /v2/<name>/blobs/uploads/``: open an upload session and return its Location.

        With ``mount`` (a digest) and ``source`` (a repository path on this registry) ask for
        a cross-repository mount first: 201 means the registry linked the blob it already has
        in ``source`` into ``ref``'s repository, and None is returned (nothing to upload);
        202 means it could not (or will not) and opened an ordinary upload instead."""
        path = f"/v2/{ref.path}/blobs/uploads/"
        if mount and source:
            path += "?" + urlencode({"mount": mount, "from": source})
        return self._upload_step(
            "POST",
            path,
            scope,
            f"refused to start an upload to {ref.familiar_name}",
            mounted=bool(mount),
            headers={"Content-Length": "0"},
            content=b"",
        )

    def _upload_step(
        self,
        method: str,
        url: str,
        scope: str,
        refusal: str,
        mounted: bool = False,
        accepted: tuple[int, ...] = (202,),
        **kw,
    ) -> str | None:
        """One request of an upload session: 202 Accepted (or another of ``accepted``), and the
        ``Location`` of the next request, made absolute against this one's URL (201 Created
        for a mount: None)."""
        resp = self.request(method, url, scope=scope, **kw)
        try:
            if resp.status_code == 201 and mounted:
                return None
            if resp.status_code not in accepted:
                raise RegistryError(f"{self.domain} {refusal}: {_error_text(resp)}")
            location = resp.headers.get("Location")
            if not location:
                raise RegistryError(f"{self.domain} answered an upload request without a Location header")
            return urljoin(str(resp.request.url), location)
        finally:
            resp.close()

    def upload_chunk(self, location: str, scope: str, offset: int, data: bytes) -> str:
        """``PATCH <location>`` with ``Content-Range: START-END`` (inclusive, no "bytes=",
        as the distribution spec writes it); returns the Location for the next request. The
        spec's answer is 202; go-containerregistry's registry answers 204 No Content, which
        is taken too (Docker's client takes any 2xx or 3xx there)."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(data)),
            "Content-Range": f"{offset}-{offset + len(data) - 1}",
        }
        next_location = self._upload_step(
            "PATCH",
            location,
            scope,
            f"refused a chunk of an upload (bytes {offset}-{offset + len(data) - 1})",
            accepted=(202, 204),
            headers=headers,
            content=data,
        )
        assert next_location is not None, "only a mount answers without a Location"
        return next_location

    def finish_upload(self, location: str, scope: str, digest: str, body=None, size: int = 0) -> None:
        """``PUT <location>?digest=...``: close the upload; ``body`` (a function returning a
        chunk iterator, for a monolithic upload) carries ``size`` bytes, else nothing. The
        registry hashes what it received and refuses a digest that does not match."""
        sep = "&" if urlsplit(location).query else "?"
        url = location + sep + urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size if body else 0)}
        resp = self.request("PUT", url, scope=scope, headers=headers, content=body if body else b"")
        try:
            if resp.status_code not in (201, 204):
                raise RegistryError(f"{self.domain} refused blob {digest[:19]}: {_error_text(resp)}")
        finally:
            resp.close()

    def put_manifest(self, ref: Reference, reference: str, raw: bytes, media_type: str, scope: str) -> str:
        """``PUT /v2/<name>/manifests/<tag>``; returns the digest the registry names it by."""
        resp = self.request(
            "PUT",
            f"/v2/{ref.path}/manifests/{reference}",
            scope=scope,
            headers={"Content-Type": media_type},
            content=raw,
        )
        try:
            if resp.status_code not in (200, 201, 202):
                raise RegistryError(f"{self.domain} refused the manifest of {ref.familiar()}: {_error_text(resp)}")
            digest = mf.sha256_digest(raw)
            header = resp.headers.get("Docker-Content-Digest")
            if header and header != digest:
                raise_mismatch(f"pushed manifest (the registry says {header[:19]})", digest)
            return digest
        finally:
            resp.close()


MISMATCH_HINT = "the registry sent content that is not what it named; nothing was stored"


def raise_too_long(digest: str, size: int, evidence: str) -> None:
    raise DigestMismatch(
        f"blob {digest[:19]} is longer than the {size} bytes its descriptor gives ({evidence})", hint=MISMATCH_HINT
    )


def raise_mismatch(what: str, actual: str) -> None:
    raise DigestMismatch(f"digest mismatch for {what}: the content hashes to {actual[:19]}", hint=MISMATCH_HINT)
