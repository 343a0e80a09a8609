"""ContainerSpec: what to run and how, from the image's config and the ``run`` flags.

The rules are docker's:

* argv = Entrypoint + Cmd. ``run IMAGE ARGS`` replaces Cmd; ``--entrypoint X`` replaces the
  Entrypoint *and* drops the image's Cmd.
* Env: the image's, then ``--env-file`` lines, then ``-e`` (``-e NAME`` copies the caller's
  value); PATH gets a default; HOSTNAME is set; TERM=xterm with ``-t``; HOME from the user.
* WorkingDir: ``-w``, else the image's, else ``/``. User: ``-u``, else the image's, else root.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from minidocker.errors import MinidockerError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class VolumeSpec:
    source: str
    target: str
    readonly: bool = False


@dataclass
class ContainerSpec:
    id: str
    name: str
    image: str  # what the user typed
    image_id: str
    argv: list[str]
    env: list[str]
    cwd: str = "/"
    user: str = ""
    hostname: str = ""
    tty: bool = False
    stdin_open: bool = False
    detach: bool = False
    auto_remove: bool = False
    init: bool = False
    network: str = "none"
    volumes: list[VolumeSpec] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    readonly_rootfs: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)  # cgroups.Limits fields
    capabilities: list[str] = field(default_factory=list)  # what the container keeps
    privileged: bool = False
    seccomp: str = "default"  # "default", "unconfined", or a profile file's path
    no_new_privileges: bool = True
    tmpfs: list[str] = field(default_factory=list)  # PATH[:options]
    ports: list[dict[str, Any]] = field(default_factory=list)  # -p: {"host_ip", "host_port", "port", "proto"}
    restart: dict[str, Any] = field(default_factory=lambda: {"name": "no", "max": 0})  # --restart
    userns: str = "host"  # "host", or "auto": a user namespace with a block of IDs of its own
    idmap: dict[str, int] | None = None  # with userns=auto: {"uid": host uid of root, "gid": ..., "size": n}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ContainerSpec":
        d = dict(d)
        d["volumes"] = [VolumeSpec(**v) for v in d.get("volumes", [])]
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


def parse_env_file(path: str) -> list[str]:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise MinidockerError(f"open {path}: {e.strerror}") from None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """Later entries win; ``NAME`` alone takes the caller's value (or is dropped)."""
    env: dict[str, str] = {}
    for item in base + overrides:
        name, eq, value = item.partition("=")
        if not name:
            raise MinidockerError(f"invalid environment variable: {item!r}")
        if not eq:
            if name in os.environ:
                env[name] = os.environ[name]
            continue
        env.pop(name, None)
        env[name] = value
    return [f"{k}={v}" for k, v in env.items()]


def parse_volume(text: str) -> VolumeSpec:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise MinidockerError(f"invalid volume specification: {text!r}", hint="use -v /host/path:/container/path[:ro]")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise MinidockerError(f"invalid mode {mode!r} in volume {text!r}: use ro or rw")
    if not source.startswith("/"):
        raise MinidockerError(f"invalid volume {text!r}: named volumes are not supported; give an absolute host path")
    if not target.startswith("/"):
        raise MinidockerError(f"invalid volume {text!r}: the container path must be absolute")
    if not os.path.exists(source):
        os.makedirs(source, exist_ok=True)  # docker creates a missing host directory
    return VolumeSpec(os.path.realpath(source), os.path.normpath(target), mode == "ro")


def parse_restart(text: str) -> dict[str, Any]:
    """``--restart no|always|unless-stopped|on-failure[:MAX]`` (docker's policies)."""
    name, _, count = (text or "no").partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure") or (count and name != "on-failure"):
        raise MinidockerError(f"invalid restart policy {text!r}",
                              hint="use no, always, unless-stopped or on-failure[:MAX-RETRIES]")
    if count and not count.isdigit():
        raise MinidockerError(f"invalid restart policy {text!r}: the retry count must be a number")
    return {"name": name, "max": int(count or 0)}


def parse_publish(text: str) -> dict[str, Any]:
    """``-p [IP:][HOSTPORT:]PORT[/tcp|/udp]`` (docker's syntax; no HOSTPORT: a free one)."""
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    parts = spec.split(":")
    if proto not in ("tcp", "udp") or not 1 <= len(parts) <= 3:
        raise MinidockerError(f"invalid publish spec {text!r}", hint="use -p HOSTPORT:PORT, e.g. -p 8080:80")
    host_ip = parts[0] if len(parts) == 3 else ""
    host_port = parts[-2] if len(parts) >= 2 else ""
    port = parts[-1]
    for value in (port, host_port):
        if value and not (value.isdigit() and 0 < int(value) < 65536):
            raise MinidockerError(f"invalid port {value!r} in {text!r}: a number from 1 to 65535")
    if not port:
        raise MinidockerError(f"invalid publish spec {text!r}: no container port")
    if not host_port:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM) as s:
            s.bind(("", 0))  # the kernel picks a free port, as docker's -p PORT does
            host_port = str(s.getsockname()[1])
    return {"host_ip": host_ip, "host_port": int(host_port), "port": int(port), "proto": proto}


def build_spec(*, cid: str, name: str, image: str, image_id: str, image_config: dict[str, Any],
               args: list[str], entrypoint: str | None, env: list[str], env_files: list[str],
               workdir: str | None, user: str | None, hostname: str | None, tty: bool, stdin_open: bool,
               detach: bool, auto_remove: bool, init: bool, network: str, volumes: list[str],
               readonly_rootfs: bool = False, limits: dict[str, Any] | None = None,
               cap_add: list[str] = (), cap_drop: list[str] = (), privileged: bool = False,
               security_opt: list[str] = (), tmpfs: list[str] = (), userns: str = "host",
               publish: list[str] = (), restart: str = "no") -> ContainerSpec:
    cfg = image_config.get("config") or {}
    if entrypoint is not None:
        ep = [entrypoint] if entrypoint else []
        cmd = list(args)
    else:
        ep = list(cfg.get("Entrypoint") or [])
        cmd = list(args) if args else list(cfg.get("Cmd") or [])
    argv = ep + cmd
    if not argv:
        raise MinidockerError("no command specified", hint="give a command after the image name")
    hostname = hostname or cid[:12]
    file_env: list[str] = []
    for f in env_files:
        file_env += parse_env_file(f)
    merged = merge_env(list(cfg.get("Env") or []), file_env + list(env))
    names = {e.split("=", 1)[0] for e in merged}
    if "PATH" not in names:
        merged.insert(0, f"PATH={DEFAULT_PATH}")
    merged.insert(0 if "PATH" not in names else 1, f"HOSTNAME={hostname}") if "HOSTNAME" not in names else None
    if tty and "TERM" not in names:
        merged.append("TERM=xterm")
    restart_policy = parse_restart(restart)
    if restart_policy["name"] != "no" and auto_remove:
        raise MinidockerError("Conflicting options: --restart and --rm")
    ports = [parse_publish(p) for p in publish]
    if ports and network == "default":
        network = "bridge"  # docker's default network is a bridge: -p implies one here
    if ports and network == "none":
        raise MinidockerError("port publishing needs a bridge network, not --network none",
                              hint="drop --network none (or use --network bridge)")
    if network == "host":
        ports = []  # as docker: published ports mean nothing on the host's own network
    if not network or network.startswith("container:"):
        raise MinidockerError(f"network {network!r} not found", hint="use --network none, host, bridge or a name")
    from minidocker.linux import capabilities

    seccomp, nnp = "default", True
    for opt in security_opt:
        key, _, value = opt.partition("=" if "=" in opt else ":")
        if key == "seccomp" and value:
            if value != "unconfined" and not os.path.isfile(value):
                raise MinidockerError(f"opening seccomp profile ({value}) failed: no such file")
            seccomp = value if value == "unconfined" else os.path.abspath(value)
        elif key in ("no-new-privileges", "no_new_privs"):
            nnp = value.lower() not in ("false", "0")
        else:
            raise MinidockerError(f"invalid --security-opt: {opt!r}",
                                  hint="supported: seccomp=unconfined, seccomp=FILE.json, no-new-privileges[=false]")
    if userns not in ("host", "auto", ""):
        raise MinidockerError(f"invalid --userns {userns!r}", hint="use --userns=host or --userns=auto")
    if userns == "auto" and privileged:
        raise MinidockerError("privileged mode is incompatible with user namespaces",
                              hint="drop --privileged, or use --userns=host")
    if userns == "auto" and network == "host":
        raise MinidockerError("--userns=auto cannot share the host's network namespace",
                              hint="drop --network host, or use --userns=host")
    for t in tmpfs:
        if not t.startswith("/"):
            raise MinidockerError(f"invalid --tmpfs {t!r}: the path must be absolute")
    return ContainerSpec(
        limits=dict(limits or {}), capabilities=capabilities.resolve(list(cap_add), list(cap_drop), privileged),
        privileged=privileged, seccomp="unconfined" if privileged else seccomp,
        no_new_privileges=nnp and not privileged, tmpfs=list(tmpfs),
        id=cid, name=name, image=image, image_id=image_id, argv=argv, env=merged,
        cwd=workdir or cfg.get("WorkingDir") or "/", user=user if user is not None else (cfg.get("User") or ""),
        hostname=hostname, tty=tty, stdin_open=stdin_open, detach=detach, auto_remove=auto_remove, init=init,
        network="none" if network == "default" else network,
        volumes=[parse_volume(v) for v in volumes], entrypoint=ep, cmd=cmd, readonly_rootfs=readonly_rootfs,
        labels=dict(cfg.get("Labels") or {}), userns=userns or "host", ports=ports, restart=restart_policy,
    )
