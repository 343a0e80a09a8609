"""ContainerSpec: what to run and how, from the image's config and the ``run`` flags (a
``RunOptions``, ``minidocker/options.py``).

The rules are docker's:

* argv = Entrypoint + Cmd. ``run IMAGE ARGS`` replaces Cmd; ``--entrypoint X`` replaces the
  Entrypoint *and* drops the image's Cmd.
* Env: the image's, then ``--env-file`` lines, then ``-e`` (``-e NAME`` copies the caller's
  value); PATH gets a default; HOSTNAME is set; TERM=xterm with ``-t``; HOME from the user.
* WorkingDir: ``-w``, else the image's, else ``/``. User: ``-u``, else the image's, else root.

The flags that need no image are checked by ``check_run_flags`` before anything is pulled or
written, with docker's words: a container name is ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``, a hostname
is RFC 1123 labels that fit the kernel's HOST_NAME_MAX, ``-w`` is absolute, ``-p`` names a
real IP address and ports 1-65535; ``check_cpus`` and ``parse_cpu_list`` check ``--cpus``
and ``--cpuset-cpus`` against the CPUs there are.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from minidocker.errors import MinidockerError, printable
from minidocker.options import RunOptions
from minidocker.record import asdict, field, fields, record
from minidocker.runtime.mounts import MountSpec

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import Any

VolumeSpec = MountSpec  # a container's mounts: binds, volumes, tmpfs (runtime/mounts.py)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@record
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
    network: str = "bridge"  # bridge, none, host, a network's name, or container:<id>
    volumes: list[MountSpec] = field(default_factory=list)  # -v, --mount, --volumes-from, VOLUME
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
    aliases: list[str] = field(default_factory=list)  # --network-alias (the first network's)
    ip: str = ""  # --ip (on the first network)
    dns: list[str] = field(default_factory=list)  # --dns, --dns-search, --dns-option: /etc/resolv.conf
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)  # --add-host HOST:IP (IP may be host-gateway)
    publish_all: bool = False  # -P (its ports are in ``ports``)
    stop_signal: str = ""  # --stop-signal, else the image's StopSignal ("": SIGTERM)
    stop_timeout: int | None = None  # --stop-timeout (None: stop's own, 10 s)
    ulimits: list[dict[str, Any]] = field(default_factory=list)  # --ulimit: {"Name", "Soft", "Hard"}
    shm_size: int | None = None  # --shm-size, bytes (None: docker's 64 MB)
    sysctls: dict[str, str] = field(default_factory=dict)  # --sysctl KEY=VALUE (namespaced ones only)
    pid_mode: str = ""  # --pid: "" (its own), "host", or container:<id>
    ipc_mode: str = "private"  # --ipc: private, shareable, host, none, or container:<id>
    devices: list[dict[str, str]] = field(default_factory=list)  # --device: {"PathOnHost", "PathInContainer", ...}
    device_cgroup_rules: list[str] = field(default_factory=list)  # --device-cgroup-rule: "c 42:* rmw"
    log_driver: str = "json-file"  # --log-driver: json-file, local or none
    log_opts: dict[str, str] = field(default_factory=dict)  # --log-opt max-size=, max-file=
    cgroupns: bool = True  # a cgroup namespace of its own (an OCI bundle may keep the host's)
    additional_gids: list[int] = field(default_factory=list)  # supplementary groups besides the user's own
    capability_sets: dict[str, list[str]] | None = None  # an OCI bundle's five sets (None: ``capabilities`` for all)
    preserve_fds: int = 0  # minidocker-runc's --preserve-fds N: fds 3 .. 3+N-1 reach the process

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ContainerSpec:
        d = dict(d)
        d["volumes"] = [MountSpec(**v) for v in d.get("volumes", [])]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def parse_env_file(path: str) -> list[str]:
    """``--env-file``: one ``NAME=VALUE`` (or ``NAME``) a line; ``#`` comments and empty
    lines skipped. The file must be UTF-8 text, as docker requires."""
    try:
        text = Path(path).read_bytes().decode()
    except OSError as e:
        raise MinidockerError(f"open {shown(path)}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise MinidockerError(f"env file {shown(path)} is not UTF-8 text (byte {e.start})") from None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """docker's rule (ReplaceOrAppendEnvValues): a later entry replaces an earlier one of
    the same name where it stands, a new name is appended; ``NAME`` alone takes the
    caller's value, or, when the caller has none, removes NAME (the image's too)."""
    env: dict[str, str] = {}
    for item in base + overrides:
        name, eq, value = item.partition("=")
        if not name:
            raise MinidockerError(f"invalid environment variable: {item!r}")
        if not eq:
            if name in os.environ:
                env[name] = os.environ[name]
            else:
                env.pop(name, None)
            continue
        env[name] = value  # (a dict keeps an existing key where it was)
    return [f"{k}={v}" for k, v in env.items()]


def container_labels(opts: RunOptions) -> dict[str, str]:
    """``--label-file`` lines, then ``--label``: ``K=V``, or ``K`` for an empty value."""
    labels: dict[str, str] = {}
    for item in [line for f in opts.label_file for line in parse_env_file(f)] + list(opts.label):
        key, _, value = item.partition("=")
        if not key:
            raise MinidockerError(f"invalid label: {shown(item)!r}")
        labels[key] = value
    return labels


def parse_restart(text: str) -> dict[str, Any]:
    """``--restart no|always|unless-stopped|on-failure[:MAX]`` (docker's policies)."""
    name, _, count = (text or "no").partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure") or (count and name != "on-failure"):
        raise MinidockerError(
            f"invalid restart policy {text!r}", hint="use no, always, unless-stopped or on-failure[:MAX-RETRIES]"
        )
    if count and not count.isdigit():
        raise MinidockerError(f"invalid restart policy {text!r}: the retry count must be a number")
    return {"name": name, "max": int(count or 0)}


def check_publish(text: str) -> tuple[str, str, int, str]:
    """``-p [IP:][HOSTPORT:]PORT[/tcp|/udp]`` (docker's syntax; an IPv6 address in brackets)
    -> (host IP or "", host port or "", port, protocol); nothing bound yet."""
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    if spec.startswith("["):  # [IPv6]:HOSTPORT:PORT
        ip, bracket, rest = spec[1:].partition("]")
        parts = [ip, *rest[1:].split(":")] if bracket and rest.startswith(":") else []
    else:
        parts = spec.split(":")
    if proto not in ("tcp", "udp") or not 1 <= len(parts) <= 3 or (spec.startswith("[") and len(parts) != 3):
        raise MinidockerError(f"invalid publish spec '{shown(text)}'", hint="use -p HOSTPORT:PORT, e.g. -p 8080:80")
    host_ip = parts[0] if len(parts) == 3 else ""
    host_port = parts[-2] if len(parts) >= 2 else ""
    port = parts[-1]
    for value in (port, host_port):
        if value and not (value.isascii() and value.isdigit() and 0 < int(value) < 65536):
            raise MinidockerError(f"invalid port '{shown(value)}' in '{shown(text)}': a number from 1 to 65535")
    if not port:
        raise MinidockerError(f"invalid publish spec '{shown(text)}': no container port")
    return check_host_ip(host_ip, text) if host_ip else "", host_port, int(port), proto


def check_host_ip(text: str, spec: str) -> str:
    """The IP part of ``-p``: an IPv4 address (the port rules are iptables rules, and
    iptables is IPv4's; an IPv6 address is refused here rather than inside ip6tables)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise MinidockerError(
            f"invalid IP address '{shown(text)}' in -p '{shown(spec)}'",
            hint="use -p IP:HOSTPORT:PORT with an IPv4 address, e.g. -p 127.0.0.1:8080:80",
        ) from None
    if ip.version != 4:
        raise MinidockerError(
            f"-p '{shown(spec)}': publishing on an IPv6 address is not supported by minidocker",
            hint="use an IPv4 address, e.g. -p 127.0.0.1:8080:80",
        )
    return str(ip)


def parse_publish(text: str) -> dict[str, Any]:
    """``-p`` checked, and without HOSTPORT a free port picked (as docker's ``-p PORT``)."""
    host_ip, host_port, port, proto = check_publish(text)
    if not host_port:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM) as s:
            s.bind(("", 0))  # the kernel picks a free port, as docker's -p PORT does
            host_port = str(s.getsockname()[1])
    return {"host_ip": host_ip, "host_port": int(host_port), "port": port, "proto": proto}


# -- the flags that need no image, checked before anything is pulled or written ------------------
CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # docker's RestrictedNamePattern
NAME_MAX = 255  # the longest file name: a name ends up in paths and /etc/hosts lines
HOSTNAME_LABEL = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")  # RFC 1123: 1-63 characters
HOST_NAME_MAX = 64  # sethostname(2) refuses longer names with EINVAL


def shown(text: str, limit: int = 80) -> str:
    """A value as an error message quotes it: printable, on one line, cut after ``limit``."""
    text = printable(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def check_name(name: str) -> str:
    """A container name by docker's rule (a leading ``/``, as docker shows names, is dropped)."""
    bare = name.removeprefix("/")
    if len(bare) > NAME_MAX or not CONTAINER_NAME.fullmatch(bare):
        raise MinidockerError(
            f"Invalid container name ({shown(name)}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
            hint=f"a letter or digit, then at least one more of those or _ . - (at most {NAME_MAX} characters)",
        )
    return bare


def check_hostname(hostname: str) -> None:
    """``-h``: RFC 1123 (dot-separated labels of letters, digits and inner hyphens, each at
    most 63 characters), and at most HOST_NAME_MAX characters in all, the kernel's limit."""
    labels = hostname.split(".")
    if len(hostname) > HOST_NAME_MAX or not all(HOSTNAME_LABEL.fullmatch(label) for label in labels):
        raise MinidockerError(
            f"invalid hostname format for --hostname: {shown(hostname)}",
            hint=f"RFC 1123: letters, digits and '-' in labels separated by dots, at most {HOST_NAME_MAX} characters",
        )


def check_run_flags(opts: RunOptions) -> str | None:
    """The checks of ``run``'s flags that need no image, so a bad flag fails before a pull
    (as docker's do). Returns the name to use (None: a random one)."""
    if opts.hostname:
        check_hostname(opts.hostname)
    if opts.workdir and not opts.workdir.startswith("/"):
        raise MinidockerError(
            f"the working directory '{shown(opts.workdir)}' is invalid, it needs to be an absolute path"
        )
    from minidocker.runtime.mounts import check_mount_flags

    check_mount_flags(opts.volume, opts.mount, opts.volumes_from, opts.tmpfs)
    for p in opts.publish:
        check_publish(p)
    check_network_flags(opts)
    for t in opts.tmpfs:
        if not t.startswith("/"):
            raise MinidockerError(f"invalid --tmpfs '{shown(t)}': the path must be absolute")
    parse_restart(opts.restart)
    check_attach(opts)
    if opts.pull not in PULL_POLICIES:
        raise MinidockerError(
            f'invalid pull option: \'{shown(opts.pull)}\': must be one of "always", "missing", "never" or "lazy"'
        )
    if opts.stop_signal:
        parse_signal(opts.stop_signal)
    for u in opts.ulimit:
        parse_ulimit(u)
    parse_log_opts(opts.log_driver, opts.log_opt)
    if opts.shm_size:
        parse_shm_size(opts.shm_size)
    parse_sysctls(opts.sysctl, opts.network)
    if opts.pid and opts.pid != "host" and not (opts.pid.startswith("container:") and len(opts.pid) > 10):
        raise MinidockerError(f"invalid PID mode: {shown(opts.pid)}")
    if opts.pid and opts.userns == "auto":
        raise MinidockerError("--pid is not supported with --userns=auto")
    if opts.ipc is not None:
        check_ipc_mode(opts)
    if opts.device or opts.device_cgroup_rule:
        device_fields(opts, gather=False)
    if opts.ulimit and opts.userns == "auto":
        raise MinidockerError("--ulimit is not supported with --userns=auto")
    if opts.cidfile and os.path.lexists(opts.cidfile):
        raise MinidockerError(
            f"Container ID file found, make sure the other container isn't running or delete {shown(opts.cidfile)}"
        )
    return check_name(opts.name) if opts.name else None


STREAMS = ("stdin", "stdout", "stderr")
PULL_POLICIES = ("always", "missing", "never", "lazy")


def check_attach(opts: RunOptions) -> None:
    """``-a STREAM``: one of docker's three streams (any case), never with ``-d``."""
    for stream in opts.attach:
        if stream.lower() not in STREAMS:
            raise MinidockerError(
                f'invalid argument "{shown(stream)}" for "-a, --attach" flag: '
                "valid streams are STDIN, STDOUT and STDERR"
            )
    if opts.attach and opts.detach:
        raise MinidockerError("Conflicting options: -a and -d")


# -- CPUs -----------------------------------------------------------------------------------------
def available_cpus() -> set[int]:
    """The CPUs the kernel lets us run on (sched_getaffinity(2)): the host's online CPUs,
    unless minidocker itself was started under ``taskset``."""
    return set(os.sched_getaffinity(0))


def format_cpu_list(cpus: set[int]) -> str:
    """{0, 1, 2, 5} -> "0-2,5", the list format of cpuset(7) and /sys/devices/system/cpu/online."""
    ranges: list[list[int]] = []
    for c in sorted(cpus):
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return join_cpu_ranges(ranges)


def join_cpu_ranges(ranges) -> str:
    """[(0, 2), (5, 5)] -> "0-2,5"."""
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def parse_cpu_list(text: str) -> str:
    """``--cpuset-cpus 0-1,3``: cpuset(7)'s list format, every CPU one that is available
    (docker's words when one is not). Returns the text for cpuset.cpus."""
    ranges = []
    for part in text.split(","):
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part.strip())
        if not m or int(m[2] or m[1]) < int(m[1]):
            raise MinidockerError(f"Invalid value {shown(text)} for cpuset cpus", hint="use a list such as 0-1 or 0,2")
        ranges.append((int(m[1]), int(m[2] or m[1])))
    have = available_cpus()
    if any(b > max(have) or not have.issuperset(range(a, b + 1)) for a, b in ranges):
        raise MinidockerError(
            f"Requested CPUs are not available - requested {shown(text)}, available: {format_cpu_list(have)}"
        )
    return join_cpu_ranges(ranges)


def check_cpus(cpus: float) -> float:
    """``--cpus``: a finite number of CPUs, more than 0 and at most the CPUs there are."""
    n = len(available_cpus())
    if not (math.isfinite(cpus) and 0 < cpus <= n):
        raise MinidockerError(
            f"Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available",
            hint=f"--cpus {cpus} is not in that range",
        )
    return cpus


def build_spec(
    *,
    cid: str,
    name: str,
    image: str,
    image_id: str,
    image_config: dict[str, Any],
    args: list[str],
    opts: RunOptions,
    limits: dict[str, Any] | None = None,
    inherited: list[MountSpec] | None = None,
    joined_hostname: str | None = None,
) -> ContainerSpec:
    """The container to make: the image's config with ``run``'s flags laid over it, every
    flag checked (``limits``: the resource flags already in kernel units; ``inherited``:
    the mounts ``--volumes-from`` takes from other containers; ``joined_hostname``:
    --network container:X, X's host name, which this one shares)."""
    from minidocker.runtime.mounts import container_mounts

    cfg = image_config.get("config") or {}
    entrypoint, cmd = container_command(cfg, args, opts.entrypoint)
    hostname = joined_hostname or opts.hostname or cid[:12]
    env = container_env(cfg, opts, hostname)
    restart_policy = parse_restart(opts.restart)
    if restart_policy["name"] != "no" and opts.rm:
        raise MinidockerError("Conflicting options: --restart and --rm")
    network, ports = container_network(opts, list(cfg.get("ExposedPorts") or {}))
    check_userns(opts.userns, opts.privileged, network)
    return ContainerSpec(
        limits=dict(limits or {}),
        **security_fields(opts),
        tmpfs=list(opts.tmpfs),
        id=cid,
        name=name,
        image=image,
        image_id=image_id,
        argv=entrypoint + cmd,
        env=env,
        cwd=opts.workdir or cfg.get("WorkingDir") or "/",
        user=opts.user if opts.user is not None else (cfg.get("User") or ""),
        hostname=hostname,
        tty=opts.tty,
        stdin_open=opts.interactive,
        detach=opts.detach,
        auto_remove=opts.rm,
        init=opts.init,
        network=network,
        **network_fields(opts),
        volumes=container_mounts(opts.volume, opts.mount, opts.tmpfs, inherited or [], cfg.get("Volumes")),
        entrypoint=entrypoint,
        cmd=cmd,
        readonly_rootfs=opts.read_only,
        **lifetime_fields(opts, cfg),
        userns=opts.userns or "host",
        ports=ports,
        restart=restart_policy,
    )


def lifetime_fields(opts: RunOptions, cfg: dict[str, Any]) -> dict[str, Any]:
    """The ContainerSpec fields of how the container lives and ends: its labels (the image's,
    then --label-file and --label), stop signal and timeout, ulimits, /dev/shm, sysctls,
    PID namespace, and log driver."""
    return {
        "labels": {**(cfg.get("Labels") or {}), **container_labels(opts)},
        "stop_signal": opts.stop_signal or cfg.get("StopSignal") or "",
        "stop_timeout": opts.stop_timeout,
        "ulimits": [parse_ulimit(u) for u in opts.ulimit],
        "shm_size": parse_shm_size(opts.shm_size) if opts.shm_size else None,
        "sysctls": parse_sysctls(opts.sysctl, opts.network),
        "pid_mode": opts.pid or "",
        "ipc_mode": opts.ipc or "private",
        **(device_fields(opts) if opts.device or opts.device_cgroup_rule else {}),
        "log_driver": opts.log_driver,
        "log_opts": parse_log_opts(opts.log_driver, opts.log_opt),
    }


IPC_MODES = ("private", "shareable", "host", "none")


def check_ipc_mode(opts: RunOptions) -> None:
    """``--ipc``: one of docker's modes, or container:NAME (empty: the default, private);
    docker's words if not."""
    mode = opts.ipc or "private"
    if mode not in IPC_MODES and not (mode.startswith("container:") and len(mode) > 10):
        raise MinidockerError("--ipc: invalid IPC mode")
    if mode != "private" and opts.userns == "auto":
        raise MinidockerError("--ipc is not supported with --userns=auto")


def device_fields(opts: RunOptions, gather: bool = True) -> dict[str, Any]:
    """``--device`` and ``--device-cgroup-rule`` as ContainerSpec fields, each checked with
    docker's words (runtime/devices.py); with ``gather`` a host path that is no device node
    too (docker's daemon checks that when it creates the container, after a pull)."""
    from minidocker.runtime import devices

    parsed = [devices.parse_device(d) for d in opts.device]
    for device in parsed if gather else []:
        devices.device_nodes(device)
    return {"devices": parsed, "device_cgroup_rules": [devices.check_cgroup_rule(r) for r in opts.device_cgroup_rule]}


def security_fields(opts: RunOptions) -> dict[str, Any]:
    """--privileged, --cap-add/--cap-drop and --security-opt as ContainerSpec's fields."""
    from minidocker.linux import capabilities

    seccomp, nnp = parse_security_opts(opts.security_opt)
    return {
        "privileged": opts.privileged,
        "capabilities": capabilities.resolve(list(opts.cap_add), list(opts.cap_drop), opts.privileged),
        "seccomp": "unconfined" if opts.privileged else seccomp,
        "no_new_privileges": nnp and not opts.privileged,
    }


def container_command(cfg: dict[str, Any], args: list[str], entrypoint: str | None) -> tuple[list[str], list[str]]:
    """(Entrypoint, Cmd) by docker's rule: ``run IMAGE ARGS`` replaces the image's Cmd, and
    ``--entrypoint X`` replaces its Entrypoint and drops its Cmd."""
    if entrypoint is not None:
        ep, cmd = ([entrypoint] if entrypoint else []), list(args)
    else:
        ep = list(cfg.get("Entrypoint") or [])
        cmd = list(args) if args else list(cfg.get("Cmd") or [])
    if not ep + cmd:
        raise MinidockerError("no command specified", hint="give a command after the image name")
    return ep, cmd


def container_env(cfg: dict[str, Any], opts: RunOptions, hostname: str) -> list[str]:
    """The image's Env, then the ``--env-file`` lines, then ``-e``; PATH and HOSTNAME when
    neither set them, and TERM=xterm with ``-t``."""
    file_env = [line for f in opts.env_file for line in parse_env_file(f)]
    merged = merge_env(list(cfg.get("Env") or []), file_env + list(opts.env))
    names = {e.split("=", 1)[0] for e in merged}
    if "PATH" not in names:
        merged.insert(0, f"PATH={DEFAULT_PATH}")
    if "HOSTNAME" not in names:
        merged.insert(0 if "PATH" not in names else 1, f"HOSTNAME={hostname}")
    if opts.tty and "TERM" not in names:
        merged.append("TERM=xterm")
    return merged


def container_network(opts: RunOptions, exposed: list[str] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(network, published ports): the default is the bridge, as docker's; ``-P`` adds each
    EXPOSEd port (``exposed``: "80/tcp" keys) on a free host port; ``--network host``
    publishes nothing (the ports are the host's already)."""
    network = check_network_flags(opts)
    ports = [parse_publish(p) for p in opts.publish]
    if opts.publish_all and network not in ("none", "host"):
        taken = {(p["port"], p["proto"]) for p in ports}
        for key in exposed or []:
            port, _, proto = key.partition("/")
            if port.isdigit() and (int(port), proto or "tcp") not in taken:
                ports.append(parse_publish(f"{port}/{proto or 'tcp'}"))
    if network == "host":
        ports = []
    return network, ports


def network_fields(opts: RunOptions) -> dict[str, Any]:
    """The ContainerSpec fields of the network flags, as given (checked by check_network_flags)."""
    return {
        "aliases": list(opts.network_alias),
        "ip": opts.ip or "",
        "dns": list(opts.dns),
        "dns_search": list(opts.dns_search),
        "dns_options": list(opts.dns_option),
        "extra_hosts": list(opts.add_host),
        "publish_all": opts.publish_all,
    }


CONTAINER_MODE_CONFLICTS = (  # (RunOptions field, docker's words) refused with --network container:X
    ("publish", "port publishing and the container type network mode"),
    ("publish_all", "port publishing and the container type network mode"),
    ("hostname", "hostname and the network mode"),
    ("dns", "dns and the network mode"),
    ("dns_search", "dns and the network mode"),
    ("dns_option", "dns and the network mode"),
    ("add_host", "custom host-to-IP mapping and the network mode"),
    ("ip", "--ip and the network mode"),
    ("network_alias", "--network-alias and the network mode"),
)


def check_network_flags(opts: RunOptions) -> str:
    """The network flags that need no image, checked with docker's words; returns the
    network (``default`` is the bridge)."""
    network = opts.network or "default"
    network = "bridge" if network == "default" else network
    if network.startswith("container:"):
        if not network.removeprefix("container:"):
            raise MinidockerError("--network container: needs a container's name or ID")
        for name, words in CONTAINER_MODE_CONFLICTS:
            if getattr(opts, name):
                raise MinidockerError(f"conflicting options: {words}")
    if network == "none" and opts.publish:
        raise MinidockerError(
            "port publishing needs a bridge network, not --network none",
            hint="drop --network none (or use --network bridge)",
        )
    if network in ("bridge", "none", "host"):
        if opts.ip:
            raise MinidockerError("user specified IP address is supported on user defined networks only")
        if opts.network_alias:
            raise MinidockerError("network-scoped alias is supported only for containers in user defined networks")
    if opts.ip:
        check_ipv4(opts.ip, "--ip")
    for server in opts.dns:
        check_ip(server, "--dns")
    for entry in opts.add_host:
        host, sep, ip = entry.partition(":")
        if not sep or not host or (ip != "host-gateway" and not _is_ip(ip)):
            raise MinidockerError(f"invalid argument '{shown(entry)}' for --add-host: use HOST:IP or HOST:host-gateway")
    return network


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_ip(text: str, flag: str) -> None:
    if not _is_ip(text):
        raise MinidockerError(f"{shown(text)} is not an ip address (in {flag})")


def check_ipv4(text: str, flag: str) -> None:
    if not _is_ip(text) or ":" in text:
        raise MinidockerError(f"invalid IPv4 address: {shown(text)} (in {flag})")


def parse_security_opts(security_opt: list[str]) -> tuple[str, bool]:
    """``--security-opt``: (the seccomp profile: "default", "unconfined" or a file's absolute
    path; whether no_new_privs is set, which it is unless ``no-new-privileges=false``)."""
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
            raise MinidockerError(
                f"invalid --security-opt: {opt!r}",
                hint="supported: seccomp=unconfined, seccomp=FILE.json, no-new-privileges[=false]",
            )
    return seccomp, nnp


def check_userns(userns: str, privileged: bool, network: str) -> None:
    """``--userns``: host or auto, and auto neither with --privileged nor on the host's network."""
    if userns not in ("host", "auto", ""):
        raise MinidockerError(f"invalid --userns {userns!r}", hint="use --userns=host or --userns=auto")
    if userns == "auto" and privileged:
        raise MinidockerError(
            "privileged mode is incompatible with user namespaces", hint="drop --privileged, or use --userns=host"
        )
    if userns == "auto" and network.startswith("container:"):
        raise MinidockerError(
            "--userns=auto cannot join another container's network namespace",
            hint="drop --network container:..., or use --userns=host",
        )
    if userns == "auto" and network == "host":
        raise MinidockerError(
            "--userns=auto cannot share the host's network namespace", hint="drop --network host, or use --userns=host"
        )


# docker's --ulimit names, each RLIMIT_<NAME> of getrlimit(2), with the kernel's number for it
# (asm-generic/resource.h; Python's resource module lacks some, such as RLIMIT_LOCKS)
ULIMITS = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7,
    "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15,
}  # fmt: skip


def parse_ulimit(text: str) -> dict[str, Any]:
    """``--ulimit NAME=SOFT[:HARD]`` (HARD defaults to SOFT; -1 is unlimited) as docker's
    HostConfig.Ulimits entry ``{"Name", "Soft", "Hard"}``, checked with docker's words."""
    name, eq, values = text.partition("=")
    if not eq:
        raise MinidockerError(f"invalid ulimit argument: {shown(text)}")
    if name not in ULIMITS:
        raise MinidockerError(f"invalid ulimit type: {shown(name)}")
    soft_text, _, hard_text = values.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise MinidockerError(f"invalid ulimit argument: {shown(text)}") from None
    if soft != -1 and hard != -1 and soft > hard or soft == -1 and hard != -1:
        raise MinidockerError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Soft": soft, "Hard": hard}


# The kernel parameters a container has a copy of (its IPC and network namespaces), as runc
# allows them; any other would change the host's.
NAMESPACED_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                      "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")  # fmt: skip


def parse_sysctls(items: list[str], network: str) -> dict[str, str]:
    """``--sysctl KEY=VALUE``: only a parameter of the container's own namespaces (runc's
    words otherwise), and no net.* one when the network namespace is not its own."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_-]+)+", key):
            raise MinidockerError(f"invalid sysctl value: {shown(item)!r}")
        if key.startswith("net."):
            if network == "host" or network.startswith("container:"):
                raise MinidockerError(f'sysctl "{key}" not allowed in {network.split(":")[0]} network namespace')
        elif key not in NAMESPACED_SYSCTLS and not key.startswith("fs.mqueue."):
            raise MinidockerError(f'sysctl "{key}" is not in a separate kernel namespace')
        out[key] = value
    return out


def parse_shm_size(text: str) -> int:
    """``--shm-size``: a size (``128m``) greater than 0, as docker requires."""
    from minidocker.linux.cgroups import parse_size

    size = parse_size(text)
    if size <= 0:
        raise MinidockerError("SHM size must be greater than 0")
    return size


LOG_DRIVERS = ("json-file", "local", "none")


def parse_log_opts(driver: str, opts: list[str]) -> dict[str, str]:
    """``--log-driver`` and its ``--log-opt K=V`` options, checked with docker's words:
    json-file and local take max-size (a size: 10m) and max-file (a count, at least 1)."""
    if driver not in LOG_DRIVERS:
        raise MinidockerError(f"logger: no log driver named '{shown(driver)}' is registered")
    out: dict[str, str] = {}
    for item in opts:
        key, eq, value = item.partition("=")
        if not eq or driver == "none" or key not in ("max-size", "max-file"):
            raise MinidockerError(f"unknown log opt '{shown(key)}' for {driver} log driver")
        out[key] = value
    if "max-size" in out:
        from minidocker.linux.cgroups import parse_size

        if parse_size(out["max-size"]) <= 0:
            raise MinidockerError(f"invalid max-size: {shown(out['max-size'])}")
    if "max-file" in out and not (out["max-file"].isdigit() and int(out["max-file"]) >= 1):
        raise MinidockerError("max-file cannot be less than 1")
    return out


def parse_signal(text: str) -> int:
    """``kill -s``/``stop``'s signal: a number, or a name with or without ``SIG`` (``TERM``,
    ``sigkill``), as signal(7) names them."""
    import signal

    t = text.upper().removeprefix("SIG")
    if t.isdigit():
        return int(t)
    try:
        return int(getattr(signal, "SIG" + t))
    except AttributeError:
        raise MinidockerError(f"Invalid signal: {shown(text)}") from None


def updated_limits(limits: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """``update``'s flags over a container's limits (cgroups.Limits fields), checked as
    ``run`` checks them. A new memory limit without ``--memory-swap`` drops the old swap
    limit (the kernel's default, twice the memory, applies), so one never undercuts the other."""
    given = {k: v for k, v in flags.items() if v is not None and k != "restart"}
    if given.get("memory_swap") and not given.get("memory") and limits.get("memory"):
        given["memory"] = str(limits["memory"])  # (--memory-swap alone: against the memory set)
    new = resource_limits(RunOptions(**given))
    merged = {**limits, **new}
    if "memory" in new and "memory_swap" not in new:
        merged.pop("memory_swap", None)
    return merged


def resource_limits(opts: RunOptions) -> dict[str, Any]:
    """docker run's resource flags, checked and in kernel units (cgroups.Limits fields)."""
    from minidocker.linux.cgroups import parse_size

    mem = parse_size(opts.memory) if opts.memory else None
    mem = mem or None  # -m 0: no limit, as docker reads it
    if mem is not None and mem < 6 * 1024 * 1024:
        raise MinidockerError("Minimum memory limit allowed is 6MB")
    swap = None
    if opts.memory_swap:
        swap = -1 if opts.memory_swap.strip() == "-1" else parse_size(opts.memory_swap)
        if mem is None:
            raise MinidockerError("You should always set the Memory limit when using Memoryswap limit")
        if swap != -1 and swap < mem:
            raise MinidockerError("Minimum memoryswap limit should be larger than memory limit")
    cpus, cpuset = opts.cpus, opts.cpuset_cpus
    limits = {
        "memory": mem,
        "memory_swap": swap,
        "cpus": None if cpus is None else check_cpus(cpus),
        "cpu_shares": opts.cpu_shares,
        "cpuset_cpus": None if cpuset is None else parse_cpu_list(cpuset),
        "pids": opts.pids_limit,
    }
    return {k: v for k, v in limits.items() if v is not None}
