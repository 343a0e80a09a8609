"""The library surface: what every CLI command calls. One function per command.

Each function takes plain values and returns plain data (no printing, no rich); errors are
``MinidockerError`` subclasses. ``root`` is the store directory (``--root``).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from pathlib import Path
from typing import Any, Callable

from minidocker.errors import AuthenticationError, MinidockerError
from minidocker.paths import Layout, default_root


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
            "LowerDir": ":".join(str(p) for p in store.get(image_id))}},
        "RootFS": {"Type": "layers", "Layers": list(cfg["rootfs"]["diff_ids"])},
        "Metadata": {"LastTagTime": rec.get("added", "")},
        "Descriptor": {"digest": rec["manifest"]},
    }


def tag(source: str, target: str, root: Path | None = None) -> str:
    return _store(root).tag(source, target)


def rmi(names: list[str], force: bool = False, root: Path | None = None) -> tuple[list[str], list[MinidockerError]]:
    """Remove images; returns the lines to print and the errors (docker goes on after one)."""
    store = _store(root)
    in_use = {c.spec.image_id for c in _containers(root).all()}
    lines: list[str] = []
    errors: list[MinidockerError] = []
    for name in names:
        try:
            lines += store.remove(name, force=force, in_use=in_use)
        except MinidockerError as e:
            errors.append(e)
    return lines, errors


def image_prune(all_unused: bool = False, root: Path | None = None) -> tuple[list[str], int]:
    """``docker image prune [-a]``: the deleted image IDs, and the bytes the store freed
    (what killed commands left behind included: their temp files, blobs and layers)."""
    store = _store(root)
    before = _store_bytes(store.root)
    deleted = store.prune(all_unused, in_use={c.spec.image_id for c in _containers(root).all()})
    return deleted, max(0, before - _store_bytes(store.root))


def system_prune(all_unused: bool = False, volumes: bool = False, root: Path | None = None) -> dict[str, Any]:
    """``docker system prune [-a] [--volumes]``: stopped containers, then the networks no
    container uses, the dangling images (``all_unused``: every image no container uses), the
    build cache entries of images that went, and whatever killed commands left in the store.
    Returns what went, by kind, and the bytes freed. (Volumes here are bind mounts only, the
    host's own directories: ``volumes`` finds nothing of ours to remove.)"""
    root = Path(root or default_root())
    kinds = ("blobs", "layers", "ingest", "containers")
    before = _store_bytes(root, kinds)
    removed_containers = prune(root=root)
    removed_networks = _prune_networks(root)
    store = _store(root)
    removed_images = store.prune(all_unused, in_use={c.spec.image_id for c in _containers(root).all()})
    return {"Containers": removed_containers, "Networks": removed_networks, "Images": removed_images,
            "BuildCache": store.prune_build_cache(), "Volumes": [],
            "SpaceReclaimed": max(0, before - _store_bytes(root, kinds))}


def _prune_networks(root: Path) -> list[str]:
    """The networks made by ``network create`` that no container is attached to or set to use."""
    from minidocker.runtime.networks import NetworkStore

    if not Layout(root).networks_dir.is_dir():
        return []
    wanted = {c.spec.network for c in _containers(root).all()}
    unused = [n["Name"] for n in NetworkStore(root).all()
              if n["Name"] != "bridge" and not n["Containers"] and n["Name"] not in wanted]
    for name in unused:
        network_rm(name, root)
    return unused


def _store_bytes(root: Path, kinds: tuple[str, ...] = ("blobs", "layers", "ingest")) -> int:
    total = 0
    for sub in kinds:
        for dirpath, _dirs, files in os.walk(root / sub):
            for f in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total


def info(root: Path | None = None) -> dict[str, Any]:
    """``docker info``: what this host gives a container runtime, and what the store holds."""
    from minidocker import __version__
    from minidocker.linux import cgroups
    from minidocker.runtime.idranges import SUBGID, SUBUID, blocks, read_ranges

    root = Path(root or default_root())
    containers = _containers(root).all() if Layout(root).containers_dir.exists() else []
    try:
        images = len(_store(root).read_index()["images"])
    except MinidockerError:
        images = 0
    version = cgroups.version()
    controllers = (Path("/sys/fs/cgroup/cgroup.controllers").read_text().split() if version == 2 else
                   sorted(d.name for d in Path("/sys/fs/cgroup").iterdir()
                          if (d / "tasks").exists() and d.name != "systemd"))
    return {
        "ServerVersion": __version__, "Driver": "overlay", "DockerRootDir": str(root),
        "Containers": len(containers), "ContainersRunning": sum(c.running for c in containers),
        "ContainersStopped": sum(not c.running for c in containers), "Images": images,
        "CgroupVersion": str(version), "CgroupControllers": controllers,
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges",
                            f"name=userns,blocks={min(len(blocks(read_ranges(SUBUID))), len(blocks(read_ranges(SUBGID))))}"],
        "KernelVersion": os.uname().release, "Architecture": os.uname().machine,
        "NCPU": os.cpu_count(), "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
    }


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


# -- containers -----------------------------------------------------------------------------
def _containers(root: Path | None):
    from minidocker.runtime.container import ContainerStore

    return ContainerStore(root or default_root())


def ensure_image(image: str, root: Path | None, progress: Callable | None = None,
                 on_pull: Callable[[str], None] | None = None) -> str:
    """The image's ID, pulling it first when it is not in the store (as ``docker run`` does)."""
    from minidocker.errors import ImageNotFound

    store = _store(root)
    try:
        return store.resolve(image)
    except ImageNotFound:
        pass
    if on_pull:
        on_pull(image)
    return pull(image, root=root, progress=progress).image_id


def run(image: str, args: list[str], *, root: Path | None = None, name: str | None = None,
        entrypoint: str | None = None, env: list[str] = (), env_files: list[str] = (),
        workdir: str | None = None, user: str | None = None, hostname: str | None = None,
        tty: bool = False, interactive: bool = False, detach: bool = False, auto_remove: bool = False,
        init: bool = False, network: str = "default", volumes: list[str] = (), read_only: bool = False,
        memory: str | None = None, memory_swap: str | None = None, cpus: float | None = None,
        cpu_shares: int | None = None, cpuset_cpus: str | None = None, pids_limit: int | None = None,
        cap_add: list[str] = (), cap_drop: list[str] = (), privileged: bool = False,
        security_opt: list[str] = (), tmpfs: list[str] = (), userns: str = "host", publish: list[str] = (),
        restart: str = "no", progress: Callable | None = None, on_pull: Callable[[str], None] | None = None,
        on_created: Callable[[str], None] | None = None) -> int | str:
    """``docker run``: returns the container's exit code, or its ID with ``detach``."""
    from minidocker.runtime import lifecycle
    from minidocker.runtime.spec import build_spec, check_run_flags, parse_env_file, shown

    # every flag checked before anything is pulled or written (docker's order)
    name = check_run_flags(name=name, hostname=hostname, workdir=workdir, volumes=list(volumes),
                           publish=list(publish), tmpfs=list(tmpfs), restart=restart)
    env = [line for f in env_files for line in parse_env_file(f)] + list(env)  # the files' lines, then -e
    limits = resource_limits(memory, memory_swap, cpus, cpu_shares, cpuset_cpus, pids_limit)
    if network not in ("none", "host", "default", "bridge"):
        from minidocker.runtime.networks import NAME, NetworkStore, NoSuchNetwork

        if not NAME.fullmatch(network):  # never a path: "../x" would name a file outside the store
            raise NoSuchNetwork(shown(network))
        NetworkStore(root or default_root()).get(network)  # "network X not found" before anything else
    image_id = ensure_image(image, root, progress, on_pull)
    store = _store(root)
    config = store.config(image_id)
    containers = _containers(root)
    c = containers.create(lambda cid, random_name: build_spec(
        cid=cid, name=name or random_name(), image=image, image_id=image_id, image_config=config,
        args=list(args), entrypoint=entrypoint, env=env, env_files=[], workdir=workdir,
        user=user, hostname=hostname, tty=tty, stdin_open=interactive, detach=detach,
        auto_remove=auto_remove, init=init, network=network, volumes=list(volumes), readonly_rootfs=read_only,
        limits=limits, cap_add=list(cap_add), cap_drop=list(cap_drop), privileged=privileged,
        security_opt=list(security_opt), tmpfs=list(tmpfs), userns=userns, publish=list(publish),
        restart=restart))
    if on_created:
        on_created(c.id)
    lowerdirs = store.get(image_id)
    if detach:
        from minidocker.runtime.monitor import spawn_monitor

        spawn_monitor(containers, c, lowerdirs)
        return c.id
    return lifecycle.run_attached(containers, c, lowerdirs)


def resource_limits(memory: str | None, memory_swap: str | None, cpus: float | None, cpu_shares: int | None,
                    cpuset_cpus: str | None, pids_limit: int | None) -> dict[str, Any]:
    """docker run's resource flags, checked and in kernel units (cgroups.Limits fields)."""
    from minidocker.linux.cgroups import parse_size
    from minidocker.runtime.spec import check_cpus, parse_cpu_list

    mem = parse_size(memory) if memory else None
    if mem is not None and mem < 6 * 1024 * 1024:
        raise MinidockerError("Minimum memory limit allowed is 6MB")
    swap = None
    if memory_swap:
        swap = -1 if memory_swap.strip() == "-1" else parse_size(memory_swap)
        if mem is None:
            raise MinidockerError("You should always set the Memory limit when using Memoryswap limit")
        if swap != -1 and swap < mem:
            raise MinidockerError("Minimum memoryswap limit should be larger than memory limit")
    limits = {"memory": mem, "memory_swap": swap, "cpus": None if cpus is None else check_cpus(cpus),
              "cpu_shares": cpu_shares, "cpuset_cpus": None if cpuset_cpus is None else parse_cpu_list(cpuset_cpus),
              "pids": pids_limit}
    return {k: v for k, v in limits.items() if v is not None}


def ps(all: bool = False, root: Path | None = None) -> list[dict[str, Any]]:
    rows = []
    for c in _containers(root).all():
        if not all and not c.running:
            continue
        rows.append(container_summary(c))
    rows.sort(key=lambda r: r["Created"], reverse=True)
    return rows


def container_summary(c) -> dict[str, Any]:
    return {"ID": c.id, "Image": c.spec.image, "Command": " ".join(c.spec.argv), "Created": c.state.get("Created", ""),
            "Status": c.state.get("Status", ""), "ExitCode": c.state.get("ExitCode", 0),
            "StartedAt": c.state.get("StartedAt", ""), "FinishedAt": c.state.get("FinishedAt", ""),
            "Names": c.name, "Pid": c.state.get("Pid", 0), "Ports": ports_text(c.spec.ports) if c.running else ""}


def inspect_container(name: str, root: Path | None = None) -> dict[str, Any]:
    c = _containers(root).find(name)
    store = _store(root)
    lower = ":".join(str(p) for p in store.get(c.spec.image_id)) if c.spec.image_id in store.read_index()["images"] else ""
    st = c.state
    return {
        "Id": c.id, "Created": st.get("Created", ""), "Path": (c.spec.argv or [""])[0], "Args": c.spec.argv[1:],
        "RestartCount": st.get("RestartCount", 0),
        "State": {"Status": st.get("Status", ""), "Running": c.running, "Paused": st.get("Status") == "paused",
                  "OOMKilled": st.get("OOMKilled", False), "Dead": c.damaged, "Pid": st.get("Pid", 0),
                  "ExitCode": st.get("ExitCode", 0), "Error": st.get("Error", ""),
                  "StartedAt": st.get("StartedAt", ""), "FinishedAt": st.get("FinishedAt", "")},
        "Image": c.spec.image_id, "Name": "/" + c.name, "HostnamePath": str(c.layout.hostname),
        "HostsPath": str(c.layout.hosts), "ResolvConfPath": str(c.layout.resolv_conf),
        "LogPath": str(c.layout.log), "Driver": "overlay",
        "HostConfig": {"NetworkMode": c.spec.network, "AutoRemove": c.spec.auto_remove, "Init": c.spec.init,
                       "ReadonlyRootfs": c.spec.readonly_rootfs, "Privileged": c.spec.privileged,
                       "UsernsMode": "" if c.spec.userns == "host" else c.spec.userns, "IdMap": c.spec.idmap,
                       "RestartPolicy": {"Name": c.spec.restart["name"],
                                         "MaximumRetryCount": c.spec.restart["max"]},
                       "SecurityOpt": None if c.spec.seccomp == "default" else
                       [f"seccomp={c.spec.seccomp}"]},
        "Mounts": [{"Type": "bind", "Source": v.source, "Destination": v.target, "Mode": "ro" if v.readonly else "",
                    "RW": not v.readonly, "Propagation": "rprivate"} for v in c.spec.volumes],
        "Config": {"Hostname": c.spec.hostname, "User": c.spec.user, "Env": c.spec.env, "Cmd": c.spec.cmd,
                   "Entrypoint": c.spec.entrypoint or None, "WorkingDir": c.spec.cwd, "Image": c.spec.image,
                   "Tty": c.spec.tty, "OpenStdin": c.spec.stdin_open, "Labels": c.spec.labels},
        "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": lower, "UpperDir": str(c.layout.upper),
                                                    "WorkDir": str(c.layout.work), "MergedDir": str(c.layout.merged)}},
        "Cgroup": st.get("Cgroup", {}),
        "NetworkSettings": _network_settings(c.spec.network, st.get("Network") if c.running else None,
                                             c.spec.ports),
    }


def _network_settings(name: str, att: dict | None, ports: list[dict] = ()) -> dict[str, Any]:
    published = {f"{p['port']}/{p['proto']}": [{"HostIp": p["host_ip"] or "0.0.0.0", "HostPort": str(p["host_port"])}]
                 for p in ports}
    if name in ("none", "host") or not att:
        return {"IPAddress": "", "Gateway": "", "Ports": published, "Networks": {name: {}}}
    prefix = int(att["subnet"].rsplit("/", 1)[1])
    entry = {"IPAddress": att["address"], "IPPrefixLen": prefix, "Gateway": att["gateway"]}
    return {**entry, "Ports": published, "Networks": {name: entry}}


def ports_text(ports: list[dict]) -> str:
    """``ps``'s PORTS column: ``0.0.0.0:8080->80/tcp, ...``."""
    return ", ".join(f"{p['host_ip'] or '0.0.0.0'}:{p['host_port']}->{p['port']}/{p['proto']}" for p in ports)


# -- networks: ls, create, rm, inspect (bridge networking: runtime/networks.py, linux/network.py) --
def network_ls(root: Path | None = None) -> list[dict[str, Any]]:
    from minidocker.runtime.networks import NetworkStore

    return NetworkStore(root or default_root()).all()


def network_create(name: str, subnet: str | None = None, root: Path | None = None) -> str:
    from minidocker.runtime.networks import NetworkStore

    return NetworkStore(root or default_root()).create(name, subnet)["Id"]


def network_rm(name: str, root: Path | None = None) -> None:
    """Remove the record, then the bridge and its NAT rule from the host."""
    from minidocker.linux import network
    from minidocker.runtime.networks import NetworkStore

    doc = NetworkStore(root or default_root()).remove(name)
    network.remove_masquerade(doc["Subnet"], doc["Bridge"])
    network.remove_isolation(doc["Bridge"])
    network.delete_link(doc["Bridge"])


def network_inspect(name: str, root: Path | None = None) -> dict[str, Any]:
    from minidocker.runtime.networks import NetworkStore

    doc = NetworkStore(root or default_root()).get(name)
    return {"Name": doc["Name"], "Id": doc["Id"], "Driver": doc["Driver"],
            "IPAM": {"Config": [{"Subnet": doc["Subnet"], "Gateway": doc["Gateway"]}]},
            "Options": {"com.docker.network.bridge.name": doc["Bridge"]},
            "Containers": {cid: {"IPv4Address": f"{ip}/{doc['Subnet'].rsplit('/', 1)[1]}"}
                           for cid, ip in doc["Containers"].items()}}


def inspect(name: str, root: Path | None = None) -> dict[str, Any]:
    """``docker inspect``: a container by that name or ID, else an image."""
    from minidocker.runtime.container import NoSuchContainer

    try:
        return inspect_container(name, root)
    except NoSuchContainer:
        pass
    try:
        return inspect_image(name, root)
    except MinidockerError:
        from minidocker.errors import ImageNotFound

        raise ImageNotFound(f"No such object: {name}") from None


def logs(name: str, root: Path | None = None, follow: bool = False, tail: int | None = None):
    """Yield (stream, time, line) from the container's log; with ``follow``, until it exits."""
    import time

    containers = _containers(root)
    c = containers.find(name)
    path = c.layout.log
    if not path.exists():
        return
    with open(path, "rb") as f:
        lines = f.readlines()
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        for line in lines:
            rec = json.loads(line)
            yield rec["stream"], rec["time"], rec["log"]
        if not follow:
            return
        buf = b""
        while True:
            chunk = f.readline()
            if chunk:
                buf += chunk
                if buf.endswith(b"\n"):
                    rec = json.loads(buf)
                    buf = b""
                    yield rec["stream"], rec["time"], rec["log"]
                continue
            c = containers.refresh(containers.load(c.id))
            if not c.running:
                rest = f.read()
                for line in rest.splitlines():
                    rec = json.loads(line)
                    yield rec["stream"], rec["time"], rec["log"]
                return
            time.sleep(0.05)


def stop(names: list[str], timeout: int = 10, root: Path | None = None, signal_name: str = "SIGTERM"):
    from minidocker.runtime import lifecycle

    containers = _containers(root)
    for name in names:
        c = containers.find(name)
        containers.update(c, StopRequested=True)  # no --restart policy brings it back
        if c.running:
            import signal as _s

            try:
                lifecycle.signal_container(c, parse_signal(signal_name))
            except MinidockerError:
                pass
            if not lifecycle.wait_gone(c, timeout):
                try:
                    lifecycle.signal_container(c, _s.SIGKILL)
                except MinidockerError:
                    pass
                lifecycle.wait_gone(c, 10)
            _settle(containers, c)
        yield name


def _settle(containers, c, timeout: float = 5.0) -> None:
    """Wait until the record says exited (the monitor writes it), correcting it if need be."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = containers.refresh(containers.load(c.id))
        if not c.running:
            return
        time.sleep(0.02)


def kill(names: list[str], sig: str = "KILL", root: Path | None = None):
    from minidocker.runtime import lifecycle

    containers = _containers(root)
    for name in names:
        c = containers.find(name)
        if c.running:
            containers.update(c, StopRequested=True)  # as docker: a killed container stays down
        lifecycle.signal_container(c, parse_signal(sig))
        yield name


def pause(names: list[str], root: Path | None = None):
    from minidocker.runtime import lifecycle

    containers = _containers(root)
    for name in names:
        lifecycle.pause(containers, containers.find(name))
        yield name


def unpause(names: list[str], root: Path | None = None):
    from minidocker.runtime import lifecycle

    containers = _containers(root)
    for name in names:
        lifecycle.unpause(containers, containers.find(name))
        yield name


def cp(src: str, dest: str, root: Path | None = None) -> None:
    """``docker cp CONTAINER:SRC DEST`` or ``docker cp SRC CONTAINER:DEST``."""
    from minidocker.runtime import copy

    def split(arg: str) -> tuple[str | None, str]:
        head, sep, tail = arg.partition(":")
        if sep and head and "/" not in head and not arg.startswith((".", "/")):
            return head, tail or "/"
        return None, arg

    (src_c, src_path), (dest_c, dest_path) = split(src), split(dest)
    if (src_c is None) == (dest_c is None):
        raise MinidockerError("copying between containers, or between two host paths, is not supported",
                              hint="give exactly one CONTAINER:PATH: minidocker cp c1:/etc/hosts . ")
    containers = _containers(root)
    c = containers.find(src_c or dest_c)
    lowerdirs = _store(root).get(c.spec.image_id)
    if src_c:
        copy.copy_out(c, lowerdirs, src_path, Path("/dev/stdout" if dest_path == "-" else dest_path))
    else:
        copy.copy_in(c, lowerdirs, Path(src_path), dest_path)


def rename(name: str, new_name: str, root: Path | None = None) -> None:
    from minidocker.runtime.spec import check_name

    new_name = check_name(new_name)
    containers = _containers(root)
    containers.rename(containers.find(name), new_name)


def port(name: str, root: Path | None = None) -> list[str]:
    """``docker port``: ``80/tcp -> 0.0.0.0:8080`` lines (published ports of a running container)."""
    c = _containers(root).find(name)
    return [f"{p['port']}/{p['proto']} -> {p['host_ip'] or '0.0.0.0'}:{p['host_port']}"
            for p in c.spec.ports] if c.running else []


def top(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """``docker top``: the container's processes (those in its cgroup), as the host sees them."""
    import pwd

    from minidocker.errors import Conflict
    from minidocker.linux import cgroups

    c = _containers(root).find(name)
    if not c.running:
        raise Conflict(f"Container {c.id[:12]} is not running")
    rows = []
    for pid in sorted(cgroups.manager(c.id).pids()):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            uid = int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                           if line.startswith("Uid:")))
        except (OSError, StopIteration):
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2:].split()
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        rows.append({"UID": user, "PID": pid, "PPID": int(fields[1]), "CMD": cmdline or stat[stat.index("(") + 1:
                                                                                          stat.rindex(")")]})
    return rows


def rm(names: list[str], force: bool = False, root: Path | None = None):
    import signal as _s

    from minidocker.errors import Conflict
    from minidocker.runtime import lifecycle

    containers = _containers(root)
    for name in names:
        c = containers.find(name)
        if c.running:
            if not force:
                raise Conflict(f"You cannot remove a running container {c.id}. Stop the container before "
                               "attempting removal or force remove")
            containers.update(c, StopRequested=True)
            try:
                lifecycle.signal_container(c, _s.SIGKILL)
            except MinidockerError:
                pass
            lifecycle.wait_gone(c, 10)
            _settle(containers, c)
        lifecycle.cleanup(containers, c)
        yield name


def wait(names: list[str], root: Path | None = None):
    import time

    containers = _containers(root)
    for name in names:
        c = containers.find(name)
        while True:
            c = containers.refresh(containers.load(c.id))
            if not c.running:
                break
            time.sleep(0.05)
        yield c.state.get("ExitCode", 0)


def prune(root: Path | None = None) -> list[str]:
    return list(rm([c.id for c in _containers(root).all() if not c.running], root=root))


def parse_signal(text: str) -> int:
    import signal as _s

    t = text.upper().removeprefix("SIG")
    if t.isdigit():
        return int(t)
    try:
        return int(getattr(_s, "SIG" + t))
    except AttributeError:
        raise MinidockerError(f"invalid signal: {text}") from None


# -- --explain ------------------------------------------------------------------------------
def listen_events(fn: Callable[[dict[str, Any]], None] | None) -> None:
    from minidocker.linux import events

    events.listen(fn)


def _describe_mount(ev: dict[str, Any]) -> str:
    flags = ev.get("flags") or 0
    if ev.get("fstype") == "overlay":
        return f"mount -t overlay overlay {ev['target']}  ({ev.get('data')})"
    if flags & 4096:  # MS_BIND
        return f"mount --bind {ev.get('source')} {ev['target']}" + ("  (remount)" if flags & 32 else "")
    if ev.get("source") is None and ev.get("fstype") is None:
        return f"mount --make-rprivate {ev['target']}  (mount events no longer propagate)"
    return f"mount -t {ev.get('fstype')} {ev.get('source')} {ev['target']}" + \
        (f"  ({ev['data']})" if ev.get("data") else "")


def _describe_capabilities(ev: dict[str, Any]) -> str:
    if ev.get("action") == "drop bounding":
        return f"prctl(PR_CAPBSET_DROP) x{ev['dropped']}  -> the bounding set keeps {len(ev['kept'])} capabilities"
    return f"capset(permitted = effective = {len(ev['kept'])} capabilities), ambient cleared"


# One sentence a student can follow, for each kind of kernel-facing step (see --explain).
_DESCRIBE: dict[str, Callable[[dict[str, Any]], str]] = {
    "unshare": lambda ev: f"unshare({' | '.join('CLONE_NEW' + f.upper().replace('MNT', 'NS') for f in ev['flags'])})"
                          f"  -> new {', '.join(ev['flags'])} namespace(s)",
    "mount": _describe_mount,
    "umount2": lambda ev: f"umount2({ev['target']}, MNT_DETACH)  -> the old root is gone from our view",
    "pivot_root": lambda ev: f"pivot_root({ev['new_root']}, {ev['put_old']})  -> the overlay is now /",
    "sethostname": lambda ev: f"sethostname({ev['hostname']!r})",
    "cgroup": lambda ev: f"cgroup {ev['action']} {ev['path']}" + (f" <- {ev['value']}" if ev.get("value") else ""),
    "setuid": lambda ev: f"setgroups({ev['groups']}), setgid({ev['gid']}), setuid({ev['uid']})",
    "execve": lambda ev: f"execve({ev['argv']})  -> the image's program replaces us, still PID 1",
    "link": lambda ev: f"ip link set {ev['name']} {ev['state']}",
    "pty": lambda ev: f"open /dev/ptmx -> {ev['path']} becomes the controlling terminal",
    "capabilities": _describe_capabilities,
    "no_new_privs": lambda ev: "prctl(PR_SET_NO_NEW_PRIVS, 1)  -> no setuid binary can raise privileges again",
    "seccomp": lambda ev: f"prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)  -> {ev.get('rules')} syscall rules, "
                          f"default {ev.get('default_action')}",
    "addr": lambda ev: f"ip addr add {ev['address']} dev {ev['dev']}",
    "sysctl": lambda ev: f"sysctl {ev['key']}={ev['value']}",
    "iptables": lambda ev: f"iptables {ev['rule']}",
    "bpf_device_filter": lambda ev: f"bpf(BPF_PROG_LOAD, CGROUP_DEVICE) + bpf(BPF_PROG_ATTACH) {ev['path']}"
                                    f"  -> {ev['rules']} device rules, every other device refused",
    "idmap": lambda ev: f"write /proc/{ev['pid']}/{ev['kind']}_map <- '{ev['inside']} {ev['outside']} {ev['count']}'"
                        f"  -> {ev['kind']} {ev['inside']} inside is {ev['outside']} on the host",
    "idmapped_mount": lambda ev: f"open_tree + mount_setattr(MOUNT_ATTR_IDMAP) + move_mount {ev['source']} -> "
                                 f"{ev['target']}  (owners shown through the user namespace)",
    "chown_copy": lambda ev: f"copy {ev['source']} -> {ev['target']}, owners shifted by {ev['shift']} "
                             "(no idmapped mounts here)",
    "prctl": lambda ev: f"prctl({ev['option']}, {ev['value']})  -> until execve, the container cannot open this "
                        "process's /proc/PID/exe (the host's Python)",
    "setns": lambda ev: f"setns({', '.join(ev['nstype'])})  -> {ev.get('why') or 'join the container' + chr(39) + 's namespace'}",
}


def describe_event(ev: dict[str, Any]) -> str:
    """One sentence a student can follow, for each kernel-facing step; a ``why`` the step
    gave is added after an arrow."""
    describe = _DESCRIBE.get(ev["step"])
    if describe is None:
        return f"{ev['step']} {', '.join(f'{k}={v}' for k, v in ev.items() if k not in ('t', 'step'))}"
    text = describe(ev)
    if ev.get("why") and ev["step"] != "setns":
        text += f"  -> {ev['why']}"
    return text


def exec_(name: str, argv: list[str], *, root: Path | None = None, env: list[str] = (), workdir: str | None = None,
          user: str | None = None, tty: bool = False, interactive: bool = False) -> int:
    from minidocker.runtime.exec import exec_in

    c = _containers(root).find(name)
    return exec_in(c, list(argv), list(env), workdir, user, tty, interactive)


def start(names: list[str], root: Path | None = None):
    """Start stopped containers again, each under a monitor (detached)."""
    from minidocker.runtime.monitor import spawn_monitor

    containers = _containers(root)
    store = _store(root)
    for name in names:
        c = containers.find(name)
        c.check_usable()
        if not c.running:
            containers.update(c, StopRequested=False)
            spawn_monitor(containers, c, store.get(c.spec.image_id))
        yield name


def start_attached(name: str, root: Path | None = None) -> int:
    """``start -a [-i]``: run a stopped container in the foreground, like ``run`` without -d;
    stdin is attached when the container was created with -i. Returns its exit code."""
    from minidocker.errors import Conflict
    from minidocker.runtime import lifecycle

    containers = _containers(root)
    c = containers.find(name)
    c.check_usable()
    if c.running:
        raise Conflict(f"container {c.id[:12]} is already running", hint="use minidocker logs -f to follow it")
    return lifecycle.run_attached(containers, c, _store(root).get(c.spec.image_id))


def restart(names: list[str], timeout: int = 10, root: Path | None = None):
    for name in names:
        list(stop([name], timeout=timeout, root=root))
        list(start([name], root=root))
        yield name


def stats(names: list[str] | None = None, root: Path | None = None, interval: float = 0.5) -> list[dict[str, Any]]:
    """One sample of CPU %, memory usage/limit and PIDs per running container, from its
    cgroup (CPU % = cpu time used / wall time over ``interval``, 100% = one full core)."""
    import time

    from minidocker.linux import cgroups

    containers = _containers(root)
    chosen = [containers.find(n) for n in names] if names else [c for c in containers.all() if c.running]
    managers = [(c, cgroups.manager(c.id)) for c in chosen if c.running]
    first = {c.id: m.stats() for c, m in managers}
    t0 = time.monotonic()
    time.sleep(interval)
    elapsed = time.monotonic() - t0
    rows = []
    for c, m in managers:
        s = m.stats()
        cpu = (s.cpu_usage_ns - first[c.id].cpu_usage_ns) / (elapsed * 1e9) * 100
        rows.append({"ID": c.id, "Name": c.name, "CPUPerc": max(0.0, cpu), "MemUsage": s.memory_usage,
                     "MemLimit": s.memory_limit, "PIDs": s.pids})
    return rows


# -- moving images out and in: push, save/load, export/import (issue #5, part 2) -------------
def push(ref: str, root: Path | None = None, progress: Callable | None = None, chunk_size: int | None = None):
    """Push a tagged image of the store to its registry; returns a ``PushResult``."""
    from minidocker.image.push import CHUNK_SIZE, push_image
    from minidocker.image.reference import parse

    return push_image(_store(root), parse(ref), progress, chunk_size or CHUNK_SIZE)


def save(names: list[str], output: Path | None = None, stream=None, root: Path | None = None) -> None:
    """``docker save``: to the file ``output`` (atomically), else to the binary ``stream``."""
    from minidocker.image.archive import save_images, save_to_file

    store = _store(root)
    if output is not None:
        save_to_file(store, names, output)
    else:
        save_images(store, names, stream)


def load(input: Path | None = None, stdin=None, root: Path | None = None,
         progress: Callable | None = None) -> list[str]:
    """``docker load`` from a tar (docker-archive or OCI, plain or gzip), a layout
    directory, or ``stdin``; returns the ``Loaded image: ...`` lines."""
    from minidocker.image.archive import load_images

    return load_images(_store(root), input, stdin, progress)


def export(name: str, output: Path | None = None, fd: int | None = None, root: Path | None = None) -> int:
    """``docker export``: the container's flattened filesystem as a tar, to the file
    ``output`` (written under a temp name, fsynced, renamed) or to the descriptor ``fd``."""
    import tempfile

    from minidocker.runtime.export import export_rootfs

    c = _containers(root).find(name)
    lowerdirs = _store(root).get(c.spec.image_id)
    if output is None:
        return export_rootfs(c.layout.upper, lowerdirs, c.layout.merged, fd if fd is not None else 1, c.spec.idmap)
    output = Path(output)
    tmp_fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    try:
        count = export_rootfs(c.layout.upper, lowerdirs, c.layout.merged, tmp_fd, c.spec.idmap)
        os.fsync(tmp_fd)
        os.fchmod(tmp_fd, 0o644)
        os.close(tmp_fd)
        tmp_fd = -1
        os.rename(tmp, output)
        return count
    except BaseException:
        if tmp_fd >= 0:
            os.close(tmp_fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def import_(source: str, ref: str | None = None, changes: list[str] = (), message: str | None = None,
            stdin=None, root: Path | None = None) -> str:
    """``docker import FILE|- [REF]``: a rootfs tar (plain, gzip, zstd) as a one-layer
    image; returns its ID."""
    from minidocker.errors import MinidockerError as _Err
    from minidocker.image.flat import import_tarball

    store = _store(root)
    if source == "-":
        return import_tarball(store, stdin, "-", ref, list(changes), message)
    try:
        f = open(source, "rb")
    except OSError as e:
        raise _Err(f"cannot open {source}: {e.strerror}") from None
    with f:
        return import_tarball(store, f, source, ref, list(changes), message)


# -- images out of containers: diff, commit, history, build ---------------------------------------
def _mountpoints(spec) -> list[str]:
    """The paths the runtime mounted over in this container (their empty mount points in the
    upper dir are not changes the container made)."""
    from minidocker.image.diff import RUNTIME_MOUNTPOINTS

    return list(RUNTIME_MOUNTPOINTS) + [v.target for v in spec.volumes] + [t.split(":", 1)[0] for t in spec.tmpfs]


def _upper_entries(c, store):
    from minidocker.image import diff as d

    lower = d.LowerView(store.get(c.spec.image_id))
    return d.scan_upper(c.layout.upper, lower, _mountpoints(c.spec), c.spec.idmap), lower


def diff(name: str, root: Path | None = None) -> list[str]:
    """``docker diff``: ``A|C|D /path`` lines, read from the container's upper dir."""
    from minidocker.image import diff as d

    c = _containers(root).find(name)
    entries, lower = _upper_entries(c, _store(root))
    return [str(ch) for ch in d.changes(entries, lower)]


def commit(name: str, ref: str | None = None, *, root: Path | None = None, message: str = "",
           author: str = "", changes: list[str] = (), pause: bool = True) -> str:
    """``docker commit``: the container's upper dir becomes one new layer on its image; the
    container's config (Cmd, Env, WorkingDir, User...) plus ``changes`` becomes the image's.
    A running container is frozen (cgroup freezer) while its upper dir is read, and always
    thawed, even if the commit is killed. Returns the new image ID."""
    from minidocker.crashpoint import crashpoint
    from minidocker.image import commit as cm
    from minidocker.image import diff as d
    from minidocker.image import dockerfile
    from minidocker.image.reference import parse

    containers = _containers(root)
    c = containers.find(name)
    parsed = [dockerfile.parse_change(t) for t in changes]  # refuse a bad change before any work
    if ref:
        parse(ref)
    store = _store(root)
    if c.spec.image_id not in store.read_index()["images"]:
        from minidocker.errors import ImageNotFound

        raise ImageNotFound(f"the image of container {c.id[:12]} ({c.spec.image}) is no longer in the store")
    spec = c.spec

    def set_config(config: dict[str, Any]) -> None:
        # docker commits the container's own config: what it was run with
        config["Env"] = [e for e in spec.env if not e.startswith("HOSTNAME=")]
        config["Cmd"] = list(spec.cmd) or None
        config["Entrypoint"] = list(spec.entrypoint) or None
        config["WorkingDir"] = "" if spec.cwd == "/" and not config.get("WorkingDir") else spec.cwd
        config["User"] = spec.user
        for ins in parsed:
            dockerfile.apply_change(config, ins)

    set_config(json.loads(json.dumps(store.config(spec.image_id).get("config") or {})))  # errors before any write
    with _frozen_for_commit(containers, c, pause):
        crashpoint("commit:after-freeze")
        entries, _ = _upper_entries(c, store)
        image_id, _ = cm.create_image(
            store, spec.image_id, lambda write: d.write_layer_tar(entries, write), empty=not entries,
            changes=set_config, created_by=" ".join(spec.argv), author=author, comment=message,
            tag=str(parse(ref)) if ref else None)
    return image_id


def _frozen_for_commit(containers, c, pause: bool):
    """The container frozen while commit reads its upper dir, if it is running and ``pause``;
    ``ps`` says "Up ... (Paused)" meanwhile. The freeze belongs to a helper process that
    thaws the container when the commit ends, even by SIGKILL (linux/cgroups/freezer.py). A
    container the user paused is left as it is: still paused afterwards, as docker leaves it."""
    if not (pause and c.state.get("Status") == "running"):
        return contextlib.nullcontext()
    from minidocker.linux import cgroups
    from minidocker.linux.cgroups.freezer import hold_frozen

    return hold_frozen(cgroups.manager(c.id), on_frozen=lambda: containers.update_if(c, "running", Status="paused"),
                       on_thawed=lambda: containers.update_if(c, "paused", Status="running"))


def history(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """``docker history``: one row per history entry, newest first."""
    from minidocker.image import commit as cm

    return cm.history(_store(root), name)


def build(context: str, *, tags: list[str] = (), dockerfile: str | None = None, build_args: list[str] = (),
          no_cache: bool = False, root: Path | None = None, say: Callable[[str], None] = lambda s: None,
          quiet: bool = False) -> str:
    """``docker build`` (the classic builder): returns the image ID; ``say`` gets the step lines."""
    from minidocker.build import Builder, BuildError, read_dockerfile
    from minidocker.image import dockerfile as df
    from minidocker.image.reference import parse

    ctx = Path(context)
    if not ctx.is_dir():
        raise BuildError(f"unable to prepare context: path {context!r} not found")
    text, inside = read_dockerfile(ctx, dockerfile)
    refs = [str(parse(t)) for t in tags]  # a bad -t fails before any step
    args = {}
    for a in build_args:
        k, eq, v = a.partition("=")
        if not eq:
            v = os.environ.get(k, "")
        args[k] = v
    instructions = df.parse(text, show_lines=inside)  # a file outside the context: no line of it in errors
    store = _store(root)
    store.ensure()
    b = Builder(root or default_root(), store, ctx.resolve(), say, args, no_cache,
                lambda ref: ensure_image(ref, root))
    image_id = b.build(instructions)
    unused = sorted(set(args) - b.used_args)
    if unused:
        say(f"[Warning] One or more build-args {unused} were not consumed")
    say(f"Successfully built {image_id.removeprefix('sha256:')[:12]}")
    for ref in refs:
        store.tag(image_id, ref)
        say(f"Successfully tagged {parse(ref).familiar()}")
    return image_id
