"""Real registry processes for tests, all on 127.0.0.0/8.

* ``start_registry(workdir, auth=None | "basic" | "token") -> Registry``: Debian's
  ``docker-registry`` (distribution 2.8) as a child process, filesystem storage in
  ``workdir``. With ``auth="basic"`` it checks an htpasswd file (bcrypt); with
  ``auth="token"`` it sends clients to a token server running in this process (a thread),
  which speaks Docker Hub's flow and signs JWTs the registry really verifies.
* ``start_referrers_registry(workdir) -> ReferrersRegistry``: a registry that has the OCI
  referrers API (``GET /v2/<name>/referrers/<digest>``), which distribution 2.8 has not:
  go-containerregistry's ``pkg/registry`` (in memory) behind our tests/referrers-registry
  main, built once with Debian's Go, offline, from the source vagrant/provision.sh unpacks
  into /var/cache/minidocker (``ToolMissing`` until it has). Its ``requests`` are parsed from
  the request lines main.go writes (method, path, query, status, bytes).
* ``start_redirect_front(registry) -> Front``: an HTTP proxy in front of a registry that
  answers blob GETs with ``307`` to a "CDN" on another host (127.0.0.2), as Docker Hub does.

Every object has ``stop()`` (idempotent) and is a context manager. Only processes and
threads started here are ever stopped.

How distribution 2.8 checks a token (registry/auth/token/token.go at v2.8.2): the JWT's
``iss`` must equal the configured ``issuer``, ``aud`` must *be a string* equal to the
configured ``service`` (a JSON array, which RFC 7519 allows, makes the token "malformed"),
``exp``/``nbf`` get 60 s of leeway, and the signing key is found from the JOSE header, in this
order: ``x5c`` (a certificate chain that must verify up to a certificate of
``rootcertbundle``), ``jwk`` (a key that is itself a root's key, or carries an x5c), or
``kid`` (libtrust's fingerprint of a root certificate's key). We send ``x5c`` with our
self-signed certificate, which is also the whole ``rootcertbundle``. The ``access`` claim
lists {type, name, actions}; every access the request needs must be in it, else 401 with
``error="insufficient_scope"`` (never 403).
"""

from __future__ import annotations

import base64
import ctypes
import datetime as dt
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

USERNAME = "tester"
PASSWORD = "s3cret"
SERVICE = "minidocker-test"
ISSUER = "minidocker-test-token-issuer"
TOKEN_TTL = 300
CDN_HOST = "127.0.0.2"

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "trailer",
    "proxy-authenticate",
    "proxy-authorization",
}


class QuietHandler(BaseHTTPRequestHandler):
    """An HTTP/1.1 request handler of the test servers, which logs nothing to stderr."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass


class ToolMissing(RuntimeError):
    """A program or module the fixtures need is not installed; the message says which
    Debian package (or pip extra) provides it."""


def need_tool(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        raise ToolMissing(f"{name} not found: install the Debian package {package} (apt-get install {package})")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the thread that started us dies, so a
    killed pytest does not leave registries behind (prctl(PR_SET_PDEATHSIG)). The signal
    follows the *thread* that forked, so it is only set when the main thread starts us."""
    _libc.prctl(1, signal.SIGTERM, 0, 0, 0)


_libc = ctypes.CDLL(None, use_errno=True)


# -- the registry's access log --------------------------------------------------------------

_ACCESS = re.compile(
    r"^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    r'"(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d+) (?P<size>\S+) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)"'
)


class AccessLog:
    """The registry's requests, parsed from its access log (Apache combined format):
    a list of {"method", "path", "status", "size", "agent"} dicts, oldest first.
    ``clear()`` forgets what was logged so far. The registry writes a line after it has
    answered, so a client may finish a hair before its last line is there."""

    def __init__(self, path: Path):
        self.path, self._offset = path, 0

    def _read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return []
        return [r for r in map(self._parse, text.splitlines()) if r is not None]

    @staticmethod
    def _parse(line: str) -> dict | None:
        m = _ACCESS.match(line)
        if not m:
            return None
        return {
            "method": m["method"],
            "path": m["path"],
            "status": int(m["status"]),
            "size": m["size"],
            "agent": m["agent"],
        }

    def clear(self) -> None:
        try:
            self._offset = self.path.stat().st_size
        except FileNotFoundError:
            self._offset = 0

    def __iter__(self):
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __getitem__(self, i):
        return self._read()[i]

    def __repr__(self) -> str:
        return f"AccessLog({self._read()!r})"


# -- the token server -----------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """'repository:private/busybox:pull,push' -> ('repository', 'private/busybox', [...])."""
    try:
        kind, rest = scope.split(":", 1)
        name, actions = rest.rsplit(":", 1)
    except ValueError:
        return None
    return kind, name, [a for a in actions.split(",") if a]


class SigningKey:
    """An EC P-256 key and a self-signed certificate for it (the registry's rootcertbundle)."""

    def __init__(self, common_name: str = "minidocker test token issuer"):
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.x509.oid import NameOID
        except ImportError as e:
            raise ToolMissing(
                "the token registry needs the Python package cryptography: "
                "pip install -e '.[test]' (or .venv/bin/pip install cryptography)"
            ) from e
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.cert_der = self.cert.public_bytes(serialization.Encoding.DER)

    def jwt(self, claims: dict) -> str:
        """A compact JWS (ES256) with the certificate in the ``x5c`` header."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)  # JOSE wants r || s, 32 bytes each
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class TokenServer:
    """Docker Hub's token endpoint, in a thread on 127.0.0.1.

    ``GET /token?service=S&scope=repository:NAME:pull,push[&scope=...]``, optionally with
    HTTP Basic credentials, answers ``{"token", "access_token", "expires_in", "issued_at"}``.
    ``POST /token`` (OAuth2 form: grant_type=password|refresh_token) is answered too.
    Anonymous callers get ``pull`` on every repository not under ``private/``; ``tester``
    gets every action it asks for; wrong credentials get 401.
    Every request is appended to ``requests`` as {"method", "path", "query", "service",
    "scopes", "authorization" (bool), "username", "status"}.
    """

    def __init__(
        self, workdir: Path, users: dict[str, str] | None = None, service: str = SERVICE, issuer: str = ISSUER
    ):
        self.users = users if users is not None else {USERNAME: PASSWORD}
        self.service, self.issuer = service, issuer
        self.signing = SigningKey()
        self.rootcertbundle = Path(workdir) / "token-root.pem"
        self.rootcertbundle.write_bytes(self.signing.cert_pem)
        self.requests: list[dict] = []
        self._refresh: dict[str, str] = {}
        server = self

        class Handler(QuietHandler):
            def do_GET(self):
                server._handle(self, "GET")

            def do_POST(self):
                server._handle(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="token-server", daemon=True)
        self._thread.start()

    # what a user may do
    def grant(self, username: str | None, kind: str, name: str, actions: list[str]) -> list[str]:
        if username is not None:
            return list(actions)
        if kind == "repository" and not name.startswith("private/"):
            return [a for a in actions if a == "pull"]
        return []

    def issue(self, username: str | None, scopes: list[str], service: str | None = None, ttl: int = TOKEN_TTL) -> str:
        access = []
        for scope in scopes:
            parsed = _parse_scope(scope)
            if parsed:
                kind, name, actions = parsed
                access.append({"type": kind, "name": name, "actions": self.grant(username, kind, name, actions)})
        now = int(time.time())
        return self.signing.jwt(
            {
                "iss": self.issuer,
                "sub": username or "",
                "aud": service or self.service,
                "exp": now + ttl,
                "nbf": now - 1,
                "iat": now,
                "jti": secrets.token_hex(8),
                "access": access,
            }
        )

    def _check_basic(self, header: str | None) -> tuple[bool, str | None]:
        """(credentials acceptable, username) for an Authorization header."""
        if not header or not header.lower().startswith("basic "):
            return True, None
        try:
            user, _, password = base64.b64decode(header.split(None, 1)[1]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False, None
        return self.users.get(user) == password and user in self.users, user

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        auth = h.headers.get("Authorization")
        record = {
            "method": method,
            "path": url.path,
            "query": query,
            "service": None,
            "scopes": [],
            "authorization": auth is not None,
            "username": None,
            "status": None,
        }
        self.requests.append(record)
        if url.path != "/token":
            return self._reply(h, record, 404, {"errors": [{"code": "NOT_FOUND"}]})
        if method == "GET":
            ok, user = self._check_basic(auth)
            record["username"] = user
            service = query.get("service", [None])[0]
            scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
            record.update(service=service, scopes=scopes)
            if not ok:
                return self._reply(
                    h,
                    record,
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "incorrect username or password"}]},
                    {"WWW-Authenticate": 'Basic realm="minidocker-test-token"'},
                )
            token = self.issue(user, scopes, service)
            return self._reply(
                h,
                record,
                200,
                {"token": token, "access_token": token, "expires_in": TOKEN_TTL, "issued_at": _now_iso()},
            )
        length = int(h.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(h.rfile.read(length).decode(), keep_blank_values=True)
        get = lambda k: form.get(k, [None])[0]  # noqa: E731
        service, scopes = get("service"), (get("scope") or "").split()
        record.update(service=service, scopes=scopes, form={k: v for k, v in form.items() if k != "password"})
        grant_type = get("grant_type")
        if grant_type == "password":
            user = get("username")
            record["username"] = user
            if user not in self.users or self.users[user] != get("password"):
                return self._reply(h, record, 401, {"error": "invalid_grant"})
        elif grant_type == "refresh_token":
            user = self._refresh.get(get("refresh_token") or "")
            record["username"] = user
            if user is None:
                return self._reply(h, record, 401, {"error": "invalid_grant"})
        else:
            return self._reply(h, record, 400, {"error": "unsupported_grant_type"})
        token = self.issue(user, scopes, service)
        body = {"access_token": token, "scope": " ".join(scopes), "expires_in": TOKEN_TTL, "issued_at": _now_iso()}
        if get("access_type") == "offline":
            refresh = secrets.token_urlsafe(16)
            self._refresh[refresh] = user
            body["refresh_token"] = refresh
        return self._reply(h, record, 200, body)

    @staticmethod
    def _reply(h, record: dict, status: int, body: dict, headers: dict | None = None) -> None:
        record["status"] = status
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the registry ---------------------------------------------------------------------------


@dataclass
class Registry:
    """A running ``docker-registry serve`` (see the module docstring)."""

    workdir: Path
    host: str  # "127.0.0.1:PORT"
    url: str  # "http://127.0.0.1:PORT"
    storage: Path  # the filesystem driver's rootdirectory
    config: Path
    log: Path  # the registry's own log (level warn)
    requests: AccessLog  # every request it answered
    auth: str | None = None
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None
    token_requests: list = field(default_factory=list)  # the token server's, when auth="token"
    process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def blob_path(self, digest: str) -> Path:
        """The file that holds blob ``digest`` in the storage (tamper with it at will):
        docker/registry/v2/blobs/sha256/<first 2 hex>/<hex>/data."""
        algorithm, hexdigest = digest.split(":", 1)
        return self.storage / "docker/registry/v2/blobs" / algorithm / hexdigest[:2] / hexdigest / "data"

    def seed(self, layout: Path, repo: str, tag: str = "latest", all_platforms: bool = False) -> None:
        """Push the image tagged ``latest`` in the OCI layout to REPO:TAG with skopeo, keeping
        its digests (``--preserve-digests``: skopeo would otherwise gzip uncompressed layers
        and rewrite the manifest). ``all_platforms`` copies a whole index (``--all``)."""
        top = json.loads((Path(layout) / "index.json").read_text())["manifests"][0]
        if top.get("mediaType", "").startswith("application/vnd.docker."):
            # skopeo 1.9's oci: transport only finds OCI media types in index.json
            # ("no descriptor found for reference"): push Docker-typed layouts ourselves.
            push_layout(Path(layout), self.url, repo, tag, self.username, self.password)
            return
        skopeo = need_tool("skopeo", "skopeo")
        argv = [skopeo, "copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests"]
        if all_platforms:
            argv.append("--all")
        if self.username:
            argv += ["--dest-creds", f"{self.username}:{self.password}"]
        argv += [f"oci:{layout}:latest", f"docker://{self.host}/{repo}:{tag}"]
        env = {**os.environ, "REGISTRY_AUTH_FILE": str(self.workdir / "skopeo-auth.json")}
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"seeding {repo}:{tag} from {layout} failed: {' '.join(argv)}\n{r.stderr}")

    def stop(self) -> None:
        """Stop exactly the processes and threads this object started."""
        if self.process is not None:
            stop_child(self.process)
        if self.token_server is not None:
            self.token_server.stop()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_child(process: subprocess.Popen) -> None:
    """End a process started here, if it still runs: SIGTERM, then SIGKILL after 5 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _q(value: str) -> str:
    return json.dumps(str(value))  # a JSON string is a YAML double-quoted scalar


def _config_yaml(port: int, storage: Path, auth_block: str) -> str:
    return f"""\
# written by tests/support/registry.py for distribution 2.8 (docker-registry serve)
version: 0.1
log:
  level: warn
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {_q(storage)}
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {_q(f"127.0.0.1:{port}")}
  secret: {_q(secrets.token_hex(16))}
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
{auth_block}"""


def _wait_until_up(reg: Registry | ReferrersRegistry, timeout: float = 15.0, name: str = "docker-registry") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if reg.process.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {reg.process.returncode}:\n{reg.log.read_text(errors='replace')[-3000:]}"
            )
        try:
            with urllib.request.urlopen(reg.url + "/v2/", timeout=1):
                return
        except urllib.error.HTTPError:
            return  # 401 from an auth registry: it is up
        except (TimeoutError, urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                reg.stop()
                raise RuntimeError(
                    f"{name} did not answer on {reg.url} in {timeout}s:\n{reg.log.read_text(errors='replace')[-3000:]}"
                ) from None
            time.sleep(0.02)


def start_registry(workdir: Path, auth: str | None = None) -> Registry:
    """Start ``docker-registry serve`` on a free port of 127.0.0.1, storing in ``workdir``,
    and return when ``/v2/`` answers. ``auth``: None, "basic" (htpasswd, tester/s3cret) or
    "token" (a TokenServer thread; the registry verifies its JWTs)."""
    if auth not in (None, "basic", "token"):
        raise ValueError(f"auth must be None, 'basic' or 'token', not {auth!r}")
    binary = need_tool("docker-registry", "docker-registry")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    username = password = token_server = None
    auth_block = ""
    if auth == "basic":
        htpasswd = need_tool("htpasswd", "apache2-utils")
        line = subprocess.run(
            [htpasswd, "-Bbn", USERNAME, PASSWORD], check=True, capture_output=True, text=True
        ).stdout.strip()
        (workdir / "htpasswd").write_text(line + "\n")
        auth_block = f"auth:\n  htpasswd:\n    realm: {_q('minidocker-test')}\n    path: {_q(workdir / 'htpasswd')}\n"
        username, password = USERNAME, PASSWORD
    elif auth == "token":
        token_server = TokenServer(workdir)
        auth_block = (
            f"auth:\n  token:\n    realm: {_q(token_server.realm)}\n"
            f"    service: {_q(SERVICE)}\n    issuer: {_q(ISSUER)}\n"
            f"    rootcertbundle: {_q(token_server.rootcertbundle)}\n"
        )
        username, password = USERNAME, PASSWORD
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    last_error = None
    for _ in range(5):  # a port taken between probe and bind
        port = free_port()
        config = workdir / "config.yml"
        config.write_text(_config_yaml(port, storage, auth_block))
        log, access = workdir / "registry.log", workdir / "access.log"
        reg = Registry(
            workdir=workdir,
            host=f"127.0.0.1:{port}",
            url=f"http://127.0.0.1:{port}",
            storage=storage,
            config=config,
            log=log,
            requests=AccessLog(access),
            auth=auth,
            username=username,
            password=password,
            token_server=token_server,
            token_requests=token_server.requests if token_server else [],
        )
        with open(log, "ab") as logf, open(access, "ab") as accessf:
            reg.process = subprocess.Popen(
                [binary, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=accessf,
                stderr=logf,
                env=env,
                cwd=workdir,
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        try:
            _wait_until_up(reg)
            return reg
        except RuntimeError as e:
            last_error = e
            if "address already in use" not in str(e):
                break
    if token_server:
        token_server.stop()
    raise last_error


# -- a registry with the referrers API: go-containerregistry's pkg/registry -------------------

CACHE = Path("/var/cache/minidocker")
GGCR_SOURCE = CACHE / "go-containerregistry-0.20.1"  # vagrant/provision.sh unpacks Debian's .deb here
REFERRERS_MAIN = Path(__file__).resolve().parents[1] / "referrers-registry"  # tests/referrers-registry/main.go

_REQUEST = re.compile(r"^request (?P<method>[A-Z]+) (?P<uri>\S+) (?P<status>\d{3}) (?P<size>\d+)$")
_LISTENING = re.compile(r"^listening on (?P<host>127\.0\.0\.1:\d+)$", re.M)


class RequestLog(AccessLog):
    """The requests of a referrers registry, from the ``request METHOD URI STATUS BYTES``
    lines of its stderr (tests/referrers-registry/main.go): a list of {"method", "path"
    (without the query), "query" (after the ``?``, or ""), "status", "size"} dicts, oldest
    first; ``clear()`` as AccessLog's. A small reply (a manifest, a listing, an error) is
    sent after its line is written, so it is in the list once the client has read it; a
    blob's line may come a hair after its last byte (as docker-registry's). The referrers GETs:
    ``[r for r in reg.requests if r["method"] == "GET" and "/referrers/" in r["path"]]``."""

    @staticmethod
    def _parse(line: str) -> dict | None:
        m = _REQUEST.match(line)
        if not m:
            return None
        path, _, query = m["uri"].partition("?")
        return {"method": m["method"], "path": path, "query": query, "status": int(m["status"]), "size": int(m["size"])}


def go_binary(source: Path, gopath: Path, key: bytes = b"") -> Path:
    """One of the tests' Go programs (the main package in ``source``: tests/estargz-verify,
    tests/referrers-registry), built with Debian's Go in GOPATH mode against the sources in
    ``gopath`` (offline: no module proxy, no network), once: cached under
    /var/cache/minidocker/<name>/ by the hash of its main.go, the Go version and ``key``
    (what else it is built from); built to a temp name, then renamed."""
    go = shutil.which("go")
    if go is None:
        raise ToolMissing("go not found: install the Debian package golang-go (vagrant/provision.sh does)")
    go_version = subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256((source / "main.go").read_bytes() + go_version.encode() + key).hexdigest()[:16]
    binary = CACHE / source.name / f"{source.name}-{digest}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f".{binary.name}.{os.getpid()}")
    env = dict(os.environ, GO111MODULE="off", GOPATH=str(gopath), GOPROXY="off", GOFLAGS="")
    env.update(GOCACHE=str(CACHE / "go-build"), CGO_ENABLED="0")
    try:
        r = subprocess.run(
            [go, "build", "-o", str(partial), "."], cwd=source, env=env, capture_output=True, text=True, timeout=300
        )
        if r.returncode != 0:
            raise RuntimeError(f"building {source} offline failed:\n{r.stderr}")
        os.rename(partial, binary)  # whole or absent
    finally:
        partial.unlink(missing_ok=True)
    return binary


def referrers_registry_binary() -> Path:
    """tests/referrers-registry, built against the go-containerregistry source provision.sh
    unpacked (``go_binary``; the source package's version is part of the key)."""
    version_file = GGCR_SOURCE / "version"
    if not version_file.is_file():
        raise ToolMissing(
            f"go-containerregistry's source is not in {GGCR_SOURCE}: run vagrant/provision.sh (it downloads it)"
        )
    return go_binary(REFERRERS_MAIN, GGCR_SOURCE / "usr/share/gocode", version_file.read_bytes())


@dataclass
class ReferrersRegistry:
    """A running referrers registry (see the module docstring); it keeps everything in
    memory, so what was pushed is gone when it stops."""

    workdir: Path
    host: str  # "127.0.0.1:PORT"
    url: str  # "http://127.0.0.1:PORT"
    log: Path  # its stderr: the request lines, and pkg/registry's own ("ggcr: ...")
    requests: RequestLog  # every request it answered
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """Stop the process this object started (idempotent)."""
        stop_child(self.process)

    def __enter__(self) -> ReferrersRegistry:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_referrers_registry(workdir: Path, timeout: float = 15.0) -> ReferrersRegistry:
    """Build (once) and start tests/referrers-registry on a port of 127.0.0.1 the kernel
    picks (it prints which: no race for a free port), and return when ``/v2/`` answers.
    ``ToolMissing`` if Go or go-containerregistry's source is not installed."""
    binary = referrers_registry_binary()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "referrers-registry.log"
    requests = RequestLog(log)
    requests.clear()  # (a log of an earlier start in this workdir is not ours)
    start = requests._offset
    with open(log, "ab") as logf:
        process = subprocess.Popen(
            [binary, "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            cwd=workdir,
            preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
        )
    reg = ReferrersRegistry(workdir=workdir, host="", url="", log=log, requests=requests, process=process)
    try:
        deadline = time.monotonic() + timeout
        while not reg.host:
            with open(log, "rb") as f:
                f.seek(start)
                m = _LISTENING.search(f.read().decode(errors="replace"))
            if m:
                reg.host, reg.url = m["host"], f"http://{m['host']}"
            elif process.poll() is not None or time.monotonic() > deadline:
                why = (
                    f"exited with {process.returncode}" if process.poll() is not None else f"said nothing in {timeout}s"
                )
                raise RuntimeError(f"referrers-registry {why}:\n{log.read_text(errors='replace')[-3000:]}")
            else:
                time.sleep(0.02)
        _wait_until_up(reg, timeout, name="referrers-registry")
        reg.requests.clear()  # (not the GETs of /v2/ that waited for it)
    except BaseException:
        reg.stop()
        raise
    return reg


# -- the redirecting front and its CDN --------------------------------------------------------

_BLOB_PATH = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")


class ThreadedServer:
    """A ThreadingHTTPServer on ``host`` (a free port), served from a daemon thread."""

    def __init__(self, host: str, handler):
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name=f"http-{host}:{self.port}")
        self.thread.start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def _read_body(h: BaseHTTPRequestHandler) -> bytes:
    if h.headers.get("Content-Length"):
        return h.rfile.read(int(h.headers["Content-Length"]))
    if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(h.rfile.read(size))
            h.rfile.readline()
    return b""


@dataclass
class Front:
    """A proxy in front of ``registry`` that sends blob downloads to a CDN host."""

    registry: Registry
    host: str  # "127.0.0.1:PORT", use it as the registry
    url: str
    cdn_host: str  # "127.0.0.2:PORT"
    cdn_url: str
    requests: list = field(default_factory=list)  # {"method", "path", "status", "authorization"}
    cdn_requests: list = field(default_factory=list)  # {"method", "path", "headers", "status"}
    _servers: list = field(default_factory=list, repr=False)

    def stop(self) -> None:
        for s in self._servers:
            s.stop()

    def __enter__(self) -> Front:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_redirect_front(registry: Registry, honour_ranges: bool = True) -> Front:
    """A threaded proxy on 127.0.0.1 that forwards every request to ``registry`` unchanged
    (Host, Authorization, status codes, WWW-Authenticate), except that a blob GET which the
    registry would answer with 200 is answered ``307 Location:
    http://127.0.0.2:CDNPORT/cdn/<digest>?sig=x``. The CDN serves the blob's bytes from the
    registry's storage (honouring Range, unless ``honour_ranges`` is False: then it sends
    the whole blob with 200, as some servers do) and records each request's headers in
    ``cdn_requests``: a client must not send its registry credentials there."""
    reg_port = int(registry.host.rsplit(":", 1)[1])
    front_box: list[Front] = []

    def forward(h: BaseHTTPRequestHandler, method: str, body: bytes) -> tuple[int, str, list, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", reg_port, timeout=120)
        try:
            conn.putrequest(method, h.path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.headers.items():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    conn.putheader(k, v)
            if body or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()

    class ProxyHandler(QuietHandler):
        def _proxy(self, method: str) -> None:
            front = front_box[0]
            body = _read_body(self)
            record = {
                "method": method,
                "path": self.path,
                "status": None,
                "authorization": "Authorization" in self.headers,
            }
            front.requests.append(record)
            m = _BLOB_PATH.match(urllib.parse.urlsplit(self.path).path)
            if method == "GET" and m:
                status, _, headers, _ = forward(self, "HEAD", b"")  # auth and existence
                if status in (200, 206):  # (206: a HEAD with the GET's Range header)
                    record["status"] = 307
                    location = f"{front.cdn_url}/cdn/{m['digest']}?sig=x"
                    self.send_response_only(307, "Temporary Redirect")
                    self.send_header("Location", location)
                    self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            status, reason, headers, data = forward(self, method, body)
            record["status"] = status
            self.send_response_only(status, reason)
            for k, v in headers:
                if k.lower() not in HOP_BY_HOP and (k.lower() != "content-length" or method == "HEAD"):
                    self.send_header(k, v)
            if method != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        def do_GET(self):
            self._proxy("GET")  # noqa: E704

        def do_HEAD(self):
            self._proxy("HEAD")  # noqa: E704

        def do_POST(self):
            self._proxy("POST")  # noqa: E704

        def do_PUT(self):
            self._proxy("PUT")  # noqa: E704

        def do_PATCH(self):
            self._proxy("PATCH")  # noqa: E704

        def do_DELETE(self):
            self._proxy("DELETE")  # noqa: E704

    class CDNHandler(QuietHandler):
        def _serve(self, method: str) -> None:
            front = front_box[0]
            url = urllib.parse.urlsplit(self.path)
            record = {"method": method, "path": self.path, "headers": dict(self.headers.items()), "status": None}
            front.cdn_requests.append(record)
            m = re.fullmatch(r"/cdn/(sha256:[0-9a-f]{64})", url.path)
            status, data, extra = 200, b"", {}
            if not m:
                status = 404
            elif "sig" not in urllib.parse.parse_qs(url.query):
                status = 403
            else:
                try:
                    data = registry.blob_path(m[1]).read_bytes()
                except FileNotFoundError:
                    status = 404
            rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "").strip())
            if status == 200 and rng and honour_ranges:
                start = int(rng[1])
                end = int(rng[2]) if rng[2] else len(data) - 1
                if start >= len(data):
                    status, extra, data = 416, {"Content-Range": f"bytes */{len(data)}"}, b""
                else:
                    end = min(end, len(data) - 1)
                    extra = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
                    status, data = 206, data[start : end + 1]
            record["status"] = status
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method == "GET":
                self.wfile.write(data)

        def do_GET(self):
            self._serve("GET")  # noqa: E704

        def do_HEAD(self):
            self._serve("HEAD")  # noqa: E704

    proxy = ThreadedServer("127.0.0.1", ProxyHandler)
    try:
        cdn = ThreadedServer(CDN_HOST, CDNHandler)
    except OSError:
        proxy.stop()
        raise
    front = Front(
        registry=registry,
        host=f"127.0.0.1:{proxy.port}",
        url=f"http://127.0.0.1:{proxy.port}",
        cdn_host=f"{CDN_HOST}:{cdn.port}",
        cdn_url=f"http://{CDN_HOST}:{cdn.port}",
        _servers=[proxy, cdn],
    )
    front_box.append(front)
    return front


# -- pushing a layout over HTTP (Docker media types, which skopeo's oci: cannot read) ------


class _AuthClient:
    """urllib with the registry's auth challenges answered: Basic, or Bearer through the
    realm (with Basic credentials when we have them)."""

    def __init__(self, username: str | None, password: str | None):
        self.username, self.password, self.auth_header = username, password, None

    def request(
        self, method: str, url: str, headers: dict | None = None, data: bytes | None = None
    ) -> tuple[int, dict, bytes]:
        for _ in range(2):
            h = dict(headers or {})
            if self.auth_header:
                h["Authorization"] = self.auth_header
            status, rh, body = http_request(url, method, h, data)
            if status != 401 or "www-authenticate" not in rh:
                return status, rh, body
            scheme, params = parse_challenge(rh["www-authenticate"])
            if scheme == "basic" and self.username:
                self.auth_header = basic_auth(self.username, self.password)
            elif scheme == "bearer":
                q = {"service": params.get("service", "")}
                if params.get("scope"):
                    q["scope"] = params["scope"]
                th = {"Authorization": basic_auth(self.username, self.password)} if self.username else {}
                ts, _, tb = http_request(params["realm"] + "?" + urllib.parse.urlencode(q), "GET", th)
                if ts != 200:
                    return status, rh, body
                self.auth_header = "Bearer " + json.loads(tb)["token"]
            else:
                return status, rh, body
        return status, rh, body


def push_layout(
    layout: Path,
    base_url: str,
    repo: str,
    tag: str = "latest",
    username: str | None = None,
    password: str | None = None,
) -> None:
    """Push the image (or whole index) that ``layout``'s index.json names to REPO:TAG, byte
    for byte: blobs by POST + PUT, child manifests by digest, the top one by tag."""
    client = _AuthClient(username, password)

    def check(what: str, status: int, want: tuple, body: bytes) -> None:
        if status not in want:
            raise RuntimeError(f"pushing {what} to {base_url}/{repo}: HTTP {status}: {body[:300]!r}")

    def blob_bytes(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    def push_blob(digest: str) -> None:
        status, _, _ = client.request("HEAD", f"{base_url}/v2/{repo}/blobs/{digest}")
        if status == 200:
            return
        status, h, body = client.request("POST", f"{base_url}/v2/{repo}/blobs/uploads/", data=b"")
        check(digest, status, (202,), body)
        location = urllib.parse.urljoin(base_url, h["location"])
        location += ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
        status, _, body = client.request(
            "PUT", location, {"Content-Type": "application/octet-stream"}, blob_bytes(digest)
        )
        check(digest, status, (201,), body)

    def push_manifest(desc: dict, reference: str) -> None:
        doc = json.loads(blob_bytes(desc["digest"]))
        for child in doc.get("manifests", []):
            push_manifest(child, child["digest"])
        for d in ([doc["config"]] if "config" in doc else []) + doc.get("layers", []):
            push_blob(d["digest"])
        status, _, body = client.request(
            "PUT",
            f"{base_url}/v2/{repo}/manifests/{reference}",
            {"Content-Type": desc["mediaType"]},
            blob_bytes(desc["digest"]),
        )
        check(reference, status, (201,), body)

    top = json.loads((layout / "index.json").read_text())["manifests"][0]
    push_manifest(top, tag)


# -- small HTTP helpers for tests -------------------------------------------------------------


def http_request(
    url: str, method: str = "GET", headers: dict | None = None, data: bytes | None = None, follow_redirects: bool = True
) -> tuple[int, dict, bytes]:
    """(status, headers with lower-case names, body) without raising on 4xx/5xx."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    handlers = [] if follow_redirects else [NoRedirect()]
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """'Bearer realm="...",service="...",scope="..."' -> ("bearer", {...})."""
    scheme, _, rest = value.partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
