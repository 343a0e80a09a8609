"""The library surface: what every CLI command calls. One function per command.

Each function takes plain values and returns plain data (no printing, no rich); errors are
``MinidockerError`` subclasses. ``root`` is the store directory (``--root``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from minidocker.errors import AuthenticationError, MinidockerError
from minidocker.options import RunOptions, kind_of  # noqa: F401 - re-exported: the CLI's parsers read them
from minidocker.paths import Layout, default_root
from minidocker.record import MISSING, Field, fields  # noqa: F401 - re-exported: RunOptions's fields, for the CLI

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO, TypedDict, Unpack

    class Creating(TypedDict, total=False):
        """The keywords of ``run`` and ``create``: the store's root; a pull's progress display,
        and what is told the reference a pull begins with."""

        root: Path | None
        progress: Callable | None
        on_pull: Callable[[str], None] | None


def _store(root: Path | None):
    from minidocker.image.store import ImageStore
    from minidocker.lazy import driver

    root = root or default_root()
    return ImageStore(root, lazy=driver(root))  # (lazy layers: mounted by lazy/mounts.py, imported when one is)


# -- images ---------------------------------------------------------------------------------
def pull(
    ref: str,
    root: Path | None = None,
    platform: str | None = None,
    progress: Callable | None = None,
    lazy: bool | None = None,
):
    """Pull ``ref`` into the store; returns a ``PullResult``. ``lazy`` (None: the settings'
    ``lazy-pull``): big layers stay in the registry, read by range when first read
    (minidocker/lazy/), and are fetched whole in the background later."""
    from minidocker.image.manifest import Platform
    from minidocker.image.pull import pull_image
    from minidocker.image.reference import parse
    from minidocker.lazy.layers import settings

    reference = parse(ref)
    plat = Platform.parse(platform) if platform else None
    lazy_settings = settings()  # (a bad setting fails before anything is fetched)
    lazy = lazy_settings.default if lazy is None else lazy
    store = _store(root)
    result = pull_image(
        store, reference, plat, progress, explicit_platform=platform is not None, lazy=lazy_settings if lazy else None
    )
    if lazy:
        from minidocker.lazy import background

        if result.lazy and lazy_settings.background is not None:
            chains = store.chain_ids(result.image_id)
            background.start(store.root, [chains[i] for i in result.lazy], lazy_settings.background)
        if result.downloaded:  # big gzip layers pulled whole: indexed now, lazy for the next pull
            background.index_later(store.root, result.image_id, result.lazy, lazy_settings.threshold)
    return _told(root, "pull", result, str(result.ref))


def images(root: Path | None = None, all: bool = False) -> list[dict[str, Any]]:
    """One row per (image, tag), as ``docker images`` lists them; dangling images once
    (``all``: a build's intermediate images too)."""
    from minidocker.image.reference import parse

    rows = []
    store = _store(root)
    for info in store.images(all=all):
        digests = {parse(d).familiar_name: d.split("@", 1)[1] for d in info.repo_digests}
        labels = (info.config.get("config") or {}).get("Labels") or {}
        base = {"ID": info.id, "Created": info.created, "Size": info.size, "Labels": labels}
        if not info.tags:
            name = next(iter(digests), None)
            rows.append(
                {
                    **base,
                    "Repository": name or "<none>",
                    "Tag": "<none>",
                    "Digest": digests.get(name, "<none>") if name else "<none>",
                }
            )
        for tag in info.tags:
            ref = parse(tag)
            rows.append(
                {
                    **base,
                    "Repository": ref.familiar_name,
                    "Tag": ref.tag,
                    "Digest": digests.get(ref.familiar_name, "<none>"),
                }
            )
    return rows


def inspect_image(name: str, root: Path | None = None) -> dict[str, Any]:
    """``docker image inspect``'s fields for one image."""
    from minidocker.image.describe import describe_image

    return describe_image(_store(root), name)


def tag(source: str, target: str, root: Path | None = None) -> str:
    image_id = _store(root).tag(source, target)
    return _told(root, "tag", image_id, image_id, target)


def rmi(names: list[str], force: bool = False, root: Path | None = None) -> tuple[list[str], list[MinidockerError]]:
    """Remove images; returns the lines to print and the errors (docker goes on after one)."""
    store = _store(root)
    in_use = {c.spec.image_id for c in _containers(root).all()}
    lines: list[str] = []
    errors: list[MinidockerError] = []
    for name in names:
        try:
            image_id = store.resolve(name)  # (before it goes: the events name the image by its ID)
            lines += _told_lines(root, store.remove(name, force=force, in_use=in_use), image_id)
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
    Returns what went, by kind, and the bytes freed. ``volumes``: the anonymous volumes no
    container uses too (``-a`` with it: every unused volume, as ``volume prune -a``)."""
    root = Path(root or default_root())
    before = _store_bytes(root, containers=True)
    removed_containers = prune(root=root)
    removed_networks = _prune_networks(root)
    store = _store(root)
    removed_images = store.prune(all_unused, in_use={c.spec.image_id for c in _containers(root).all()})
    return {
        "Containers": removed_containers,
        "Networks": removed_networks,
        "Images": removed_images,
        "BuildCache": store.prune_build_cache(),
        "Volumes": _volumes(root).prune(all_unused)[0] if volumes else [],
        "SpaceReclaimed": max(0, before - _store_bytes(root, containers=True, volumes=volumes)),
    }


def _prune_networks(root: Path) -> list[str]:
    """The networks made by ``network create`` that no container is attached to or set to use."""
    from minidocker.runtime.networks import NetworkStore

    if not Layout(root).networks_dir.is_dir():
        return []
    from minidocker.runtime.attach import endpoints

    wanted = {name for c in _containers(root).all() for name in (c.spec.network, *endpoints(c))}
    unused = [
        n["Name"]
        for n in NetworkStore(root).all()
        if n["Name"] != "bridge" and not n["Containers"] and n["Name"] not in wanted
    ]
    for name in unused:
        network_rm(name, root)
    return unused


def _store_bytes(root: Path, containers: bool = False, volumes: bool = False) -> int:
    """The disk the store's images (and ``containers``, ``volumes``) take: what a prune can free."""
    from minidocker.fsutil import disk_usage

    layout = Layout(root)
    trees = [layout.blobs_dir.parent, layout.layers_dir, layout.ingest_dir]
    more = ([layout.containers_dir] if containers else []) + ([layout.volumes_dir] if volumes else [])
    return disk_usage(*trees, *more)


def info(root: Path | None = None) -> dict[str, Any]:
    """``docker info``: what this host gives a container runtime, and what the store holds."""
    from minidocker import __version__
    from minidocker.linux import cgroups, host
    from minidocker.runtime.idranges import SUBGID, SUBUID, blocks, read_ranges

    root = Path(root or default_root())
    containers = _containers(root).all() if Layout(root).containers_dir.exists() else []
    try:
        images = len(_store(root).read_index()["images"])
    except MinidockerError:
        images = 0
    version = cgroups.version()
    userns_blocks = min(len(blocks(read_ranges(SUBUID))), len(blocks(read_ranges(SUBGID))))
    return {
        "ServerVersion": __version__,
        "Driver": "overlay",
        "DockerRootDir": str(root),
        "Containers": len(containers),
        "ContainersRunning": sum(c.running for c in containers),
        "ContainersStopped": sum(not c.running for c in containers),
        "Images": images,
        "CgroupVersion": str(version),
        "CgroupControllers": cgroups.controllers(version),
        "SecurityOptions": [
            "name=seccomp,profile=builtin",
            "name=no-new-privileges",
            f"name=userns,blocks={userns_blocks}",
        ],
        "KernelVersion": host.kernel_release(),
        "Architecture": host.architecture(),
        "NCPU": host.cpu_count(),
        "MemTotal": host.memory_total(),
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
        import getpass  # (termios and all: only for a login that asks)

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


# -- containers -----------------------------------------------------------------------------
def _containers(root: Path | None):
    from minidocker.runtime.container import ContainerStore

    return ContainerStore(root or default_root())


def ensure_image(
    image: str,
    root: Path | None,
    progress: Callable | None = None,
    on_pull: Callable[[str], None] | None = None,
    policy: str = "missing",
    platform: str | None = None,
) -> str:
    """The image's ID, pulled first as ``run --pull`` says: ``missing`` (docker's default)
    when the store has no such image, or none of ``platform``; ``always`` every time;
    ``never``: the store's image or docker's error; ``lazy``: as ``missing``, lazily."""
    from minidocker.errors import ImageNotFound

    store = _store(root)
    if policy != "always":
        try:
            image_id = store.resolve(image)
            if platform is None or _is_platform(store.config(image_id), platform):
                return image_id
        except ImageNotFound:
            pass
        if policy == "never":
            from minidocker.image.reference import parse

            raise ImageNotFound(f"No such image: {parse(image).familiar()}")
    if on_pull:
        on_pull(image)
    return pull(
        image, root=root, progress=progress, platform=platform, lazy=True if policy == "lazy" else None
    ).image_id


def _is_platform(config: dict[str, Any], platform: str) -> bool:
    """Whether an image's config is of ``platform`` (os/arch[/variant])."""
    from minidocker.image.manifest import Platform

    return Platform.parse(platform).matches(config)


def run(
    image: str,
    args: list[str],
    opts: RunOptions,
    *,
    on_created: Callable[[str], None] | None = None,
    **creating: Unpack[Creating],
) -> int | str:
    """``docker run``: returns the container's exit code, or its ID with ``opts.detach``."""
    from minidocker.runtime import lifecycle

    lifecycle.hasten_cgroup_moves()  # the kernel's wait for a cgroup move, while we work here
    containers, store, c = _create(image, args, opts, **creating)
    if on_created:
        on_created(c.id)
    recording = _recording(containers, store, c) if opts.record_access else None
    lowerdirs = store.get(c.spec.image_id)
    if opts.detach:
        from minidocker.runtime.monitor import spawn_monitor

        spawn_monitor(containers, c, lowerdirs)
        return c.id
    code = lifecycle.run_attached(containers, c, lowerdirs, attached=tuple(opts.attach))
    if recording is not None:
        recording.finish()  # (says on stderr how many files it kept)
    return code


def _recording(containers, store, c):
    """``run --record-access`` (lazy/access.py) begun; the container removed if it cannot be."""
    from minidocker.lazy.access import Recording
    from minidocker.runtime import lifecycle

    try:
        return Recording(store, c.spec.image_id, {o.spec.image_id for o in containers.all() if o.running})
    except MinidockerError:
        lifecycle.cleanup(containers, c)
        raise


def create(image: str, args: list[str], opts: RunOptions, **creating: Unpack[Creating]) -> str:
    """``docker create``: the container made as ``run`` makes it, in state "created", with
    nothing started (``start`` starts it); returns its ID."""
    return _create(image, args, opts, **creating)[2].id


def _create(image: str, args: list[str], opts: RunOptions, root=None, progress=None, on_pull=None):
    """``run``'s and ``create``'s common part: check the flags, find (or pull) the image,
    write the record; (the container store, the image store, the new container)."""
    from minidocker.runtime.spec import build_spec, check_run_flags, resource_limits

    name = check_run_flags(opts)  # every flag checked before anything is pulled or written (docker's order)
    opts = _env_files_read(opts)  # each file read once, before the pull
    limits = resource_limits(opts)  # (runtime/spec.py)
    check_network_exists(opts.network, root)
    opts, joined = _joined_container(opts, root)
    containers = _containers(root)
    inherited = _volumes_from(containers, opts.volumes_from)
    image_id = ensure_image(image, root, progress, on_pull, opts.pull, opts.platform)
    store = _store(root)
    config = store.config(image_id)
    c = containers.create(
        lambda cid, random_name: build_spec(
            cid=cid,
            name=name or random_name(),
            image=image,
            image_id=image_id,
            image_config=config,
            args=list(args),
            opts=opts,
            limits=limits,
            inherited=inherited,
            joined_hostname=joined.spec.hostname if joined else None,
        )
    )
    if c.spec.volumes:
        _volumes(root).ensure_all(c.spec.volumes)  # -v NAME made on first use; anonymous ones
    if opts.cidfile:
        try:
            _write_cidfile(opts.cidfile, c.id)
        except MinidockerError:
            containers.remove_files(c)  # nothing left half-made
            raise
    return containers, store, c


def _write_cidfile(path: str, cid: str) -> None:
    """``--cidfile``: the new container's ID in a file that must not exist (O_EXCL: a file
    made meanwhile is refused too, as docker refuses it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise MinidockerError(
            f"Container ID file found, make sure the other container isn't running or delete {path}"
        ) from None
    except OSError as e:
        raise MinidockerError(f"failed to create the container ID file: {e.strerror}: {path}") from None
    with os.fdopen(fd, "w") as f:
        f.write(cid)


def _env_files_read(opts: RunOptions) -> RunOptions:
    """``--env-file``'s lines, then ``-e``'s, as one ``env`` list."""
    from minidocker.record import replace
    from minidocker.runtime.spec import parse_env_file

    env = [line for f in opts.env_file for line in parse_env_file(f)] + opts.env
    return replace(opts, env=env, env_file=[])


def _volumes_from(containers, specs: list[str]) -> list:
    """``--volumes-from C[:ro|rw]``: the mounts of each container named (it must exist)."""
    from minidocker.runtime.mounts import inherit_mounts, parse_volumes_from

    out = []
    for text in specs:
        name, readonly = parse_volumes_from(text)
        out += inherit_mounts(containers.find(name).spec.volumes, readonly)
    return out


def _joined_container(opts: RunOptions, root: Path | None):
    """``--network container:X``: X named by its full ID in the record, X found (its host
    name is shared); (opts, X or None). ``--pid container:Y``, ``--ipc container:Z``: by
    their full IDs too."""
    from minidocker.record import replace

    if opts.pid and opts.pid.startswith("container:"):
        opts = replace(opts, pid="container:" + _containers(root).find(opts.pid.removeprefix("container:")).id)
    if opts.ipc and opts.ipc.startswith("container:"):
        opts = replace(opts, ipc="container:" + _containers(root).find(opts.ipc.removeprefix("container:")).id)
    if not opts.network.startswith("container:"):
        return opts, None
    joined = _containers(root).find(opts.network.removeprefix("container:"))
    return replace(opts, network=f"container:{joined.id}"), joined


def check_network_exists(network: str, root: Path | None) -> None:
    """``--network NAME``: a user-made network must exist before anything is pulled."""
    if network in ("none", "host", "default", "bridge") or network.startswith("container:"):
        return
    from minidocker.errors import NoSuchNetwork
    from minidocker.runtime.networks import NAME, NetworkStore
    from minidocker.runtime.spec import shown

    if not NAME.fullmatch(network):  # never a path: "../x" would name a file outside the store
        raise NoSuchNetwork(shown(network))
    NetworkStore(root or default_root()).get(network)  # "network X not found" before anything else


def ps(all: bool = False, root: Path | None = None, size: bool = False) -> list[dict[str, Any]]:
    """``docker ps [-a] [-s]``: one summary per container, the newest first, with its image's
    layer chain (``ancestor=``) and (``size``) its writable layer's bytes."""
    from minidocker.listing import add_container_facts
    from minidocker.runtime.describe import container_summary

    containers = _containers(root)
    rows = [container_summary(c) for c in containers.all() if all or c.running]
    rows.sort(key=lambda r: r["Created"], reverse=True)
    add_container_facts(rows, containers, _store(root), size)
    return rows


def image_chain(name: str, root: Path | None = None) -> tuple[str, str | None]:
    """An image's ID and the chain ID of its top layer (``ps --filter ancestor=NAME``)."""
    from minidocker.listing import image_chain as chain

    return chain(_store(root), name)


def system_df(root: Path | None = None) -> dict[str, Any]:
    """``docker system df``: images, containers, volumes, build cache: count, size, reclaimable."""
    from minidocker.listing import disk_usage

    return disk_usage(_store(root), _containers(root), _volumes(root))


def inspect_container(name: str, root: Path | None = None) -> dict[str, Any]:
    """``docker container inspect``'s fields for one container."""
    from minidocker.runtime.describe import describe_container

    return describe_container(_containers(root).find(name), _store(root))


# -- networks: ls, create, rm, inspect (bridge networking: runtime/networks.py, linux/network.py) --
def network_ls(root: Path | None = None) -> list[dict[str, Any]]:
    from minidocker.runtime.networks import NetworkStore

    return NetworkStore(root or default_root()).all()


def network_create(name: str, subnet: str | None = None, internal: bool = False, root: Path | None = None) -> str:
    """``docker network create [--internal]``: the record, then its bridge and rules (once)."""
    from minidocker.errors import MinidockerError
    from minidocker.linux import network
    from minidocker.runtime.networks import NetworkStore

    networks = NetworkStore(root or default_root())
    doc = networks.create(name, subnet, internal)
    try:
        network.ensure_bridge(doc["Bridge"], doc["Subnet"], doc["Gateway"], internal)
    except OSError as e:
        network_rm(name, root)
        raise MinidockerError(f"cannot create network {name}: {e.strerror or e}") from None
    return doc["Id"]


def network_prune(root: Path | None = None) -> list[str]:
    """``docker network prune``: the user's networks no container uses."""
    return _prune_networks(Path(root or default_root()))


def network_connect(name: str, container: str, aliases: list[str], ip: str | None, root: Path | None = None) -> None:
    """``docker network connect [--alias A] [--ip IP] NETWORK CONTAINER``."""
    from minidocker.errors import Conflict, MinidockerError
    from minidocker.runtime import attach

    containers = _containers(root)
    c = containers.find(container)
    check_network_exists(name, root)
    if c.spec.network in ("host", "none") or c.spec.network.startswith("container:"):
        raise MinidockerError(
            f"container {c.id[:12]} shares its network namespace (--network {c.spec.network}): "
            "it cannot be connected to another network"
        )
    if name == "bridge" and (aliases or ip):
        raise MinidockerError("network-scoped aliases and --ip are supported only for user defined networks")
    if name in attach.endpoints(c):
        raise Conflict(f"endpoint with name {c.name} already exists in network {name}")
    if ip:
        from minidocker.runtime.spec import check_ipv4

        check_ipv4(ip, "--ip")
    attach.connect_container(containers, c, name, aliases, ip or "")


def network_disconnect(name: str, container: str, force: bool = False, root: Path | None = None) -> None:
    """``docker network disconnect [-f] NETWORK CONTAINER``."""
    from minidocker.errors import MinidockerError
    from minidocker.runtime import attach

    containers = _containers(root)
    c = containers.find(container)
    check_network_exists(name, root)
    if name not in attach.endpoints(c) and not force:
        raise MinidockerError(f"container {c.id[:12]} is not connected to network {name}")
    attach.disconnect_container(containers, c, name)


def network_rm(name: str, root: Path | None = None) -> None:
    """Remove the record, then the bridge and its NAT rule from the host."""
    from minidocker.linux import network
    from minidocker.runtime import dns
    from minidocker.runtime.networks import NetworkStore

    doc = NetworkStore(root or default_root()).remove(name)
    dns.resolver_changed(Path(root or default_root()), name, last=True)  # (gone with the last container already)
    if not doc.get("Internal"):
        network.remove_masquerade(doc["Subnet"], doc["Bridge"])
    network.remove_isolation(doc["Bridge"])
    network.delete_link(doc["Bridge"])


def network_inspect(name: str, root: Path | None = None) -> dict[str, Any]:
    from minidocker.runtime.networks import NetworkStore

    doc = NetworkStore(root or default_root()).get(name)
    return {
        "Name": doc["Name"],
        "Id": doc["Id"],
        "Driver": doc["Driver"],
        "Internal": bool(doc.get("Internal")),
        "IPAM": {"Config": [{"Subnet": doc["Subnet"], "Gateway": doc["Gateway"]}]},
        "Options": {"com.docker.network.bridge.name": doc["Bridge"]},
        "Containers": {
            cid: {"IPv4Address": f"{ip}/{doc['Subnet'].rsplit('/', 1)[1]}"} for cid, ip in doc["Containers"].items()
        },
    }


# -- volumes: create, ls, inspect, rm, prune (runtime/volumes.py) ------------------------------
def _volumes(root: Path | None):
    from minidocker.runtime.volumes import VolumeStore

    return VolumeStore(root or default_root())


def volume_create(
    name: str | None = None,
    driver: str = "local",
    labels: list[str] = (),
    options: list[str] = (),
    root: Path | None = None,
) -> str:
    """``docker volume create [NAME] [--label K=V] [--opt K=V]``: returns the volume's name."""
    from minidocker.runtime.mounts import key_values

    if driver != "local":
        raise MinidockerError(f"plugin {driver!r} not found", hint="minidocker has the local driver only")
    opts, label_map = key_values(list(options), "--opt"), key_values(list(labels), "--label")
    return _volumes(root).create(name, label_map, opts)["Name"]


def volume_ls(filters: list[str] = (), root: Path | None = None) -> list[dict[str, Any]]:
    """``docker volume ls [--filter dangling=true|false|name=X|label=K[=V]|driver=local]``."""
    from minidocker.runtime.volumes import filter_volumes

    store = _volumes(root)
    return filter_volumes(store.all(), list(filters), store.users)


def volume_inspect(names: list[str], root: Path | None = None) -> list[dict[str, Any]]:
    store = _volumes(root)
    return [store.get(n) for n in names]


def volume_rm(names: list[str], force: bool = False, root: Path | None = None):
    """``docker volume rm [-f]``: yields each name removed; refused while a container uses it."""
    store = _volumes(root)
    for name in names:
        if store.remove([name], force=force) or force:
            yield name


def volume_prune(all_unused: bool = False, root: Path | None = None) -> tuple[list[str], int]:
    """``docker volume prune [-a]``: unused anonymous volumes (``all_unused``: every unused one)."""
    return _volumes(root).prune(all_unused)


def inspect_any(name: str, kind: str | None = None, root: Path | None = None, size: bool = False) -> dict[str, Any]:
    """``docker inspect [--type T] [-s]``: the object of that type (any type: a container,
    else an image, a volume, a network, in that order) by name or ID; ``size``: a
    container's ``SizeRw`` and ``SizeRootFs`` too."""
    from minidocker.errors import ImageNotFound
    from minidocker.listing import add_inspect_sizes

    def container() -> dict[str, Any]:
        doc = inspect_container(name, root)
        return add_inspect_sizes(doc, _store(root)) if size else doc

    finders = {
        "container": container,
        "image": lambda: inspect_image(name, root),
        "volume": lambda: volume_inspect([name], root)[0],
        "network": lambda: network_inspect(name, root),
    }
    if kind is not None:
        return finders[kind]()
    for find in finders.values():
        try:
            return find()
        except MinidockerError:
            continue
    raise ImageNotFound(f"No such object: {name}")


def inspect(name: str, root: Path | None = None) -> dict[str, Any]:
    """``docker inspect``: a container by that name or ID, else an image."""
    from minidocker.errors import NoSuchContainer

    try:
        return inspect_container(name, root)
    except NoSuchContainer:
        pass
    try:
        return inspect_image(name, root)
    except MinidockerError:
        from minidocker.errors import ImageNotFound

        raise ImageNotFound(f"No such object: {name}") from None


def logs(
    name: str,
    root: Path | None = None,
    follow: bool = False,
    tail: int | None = None,
    since: str | None = None,
    until: str | None = None,
):
    """Yield (stream, time, line) from the container's log; with ``follow``, until it exits;
    ``since``/``until``: only the records of that span (runtime/logs.py says how to write them)."""
    import time

    from minidocker.runtime.logs import parse_time_bound, read_log

    now = time.time()
    start = parse_time_bound(since, now) if since else None  # (a bad bound fails before anything is read)
    end = parse_time_bound(until, now) if until else None
    containers = _containers(root)
    c = containers.find(name)
    if c.spec.log_driver == "none":
        raise MinidockerError("configured logging driver does not support reading", exit_code=1)

    def running() -> bool:
        return containers.refresh(containers.load(c.id)).running

    yield from read_log(c.layout.log, tail, running if follow else None, start, end)


def _event_wanted(e: dict[str, Any], wanted: dict[str, set[str]]) -> bool:
    attrs = e["Actor"]["Attributes"]
    checks = {
        "container": lambda v: e["id"].startswith(v) or attrs["name"] == v,
        "event": lambda v: e["Action"] == v,
        "image": lambda v: attrs["image"] == v,
        "type": lambda v: e["Type"] == v,
    }
    return all(any(checks[key](v) for v in values) for key, values in wanted.items())


def stop(names: list[str], timeout: int | None = None, root: Path | None = None, signal_name: str | None = None):
    """``docker stop [-t N] [-s SIG]``: the container's stop signal (``--stop-signal``, the
    image's StopSignal, else SIGTERM), then SIGKILL after its ``--stop-timeout`` (else 10 s).
    A ``--rm`` container is gone when this returns."""
    from minidocker.runtime import lifecycle
    from minidocker.runtime.container import container_event
    from minidocker.runtime.spec import parse_signal

    containers = _containers(root)
    for name in names:
        c = containers.find(name)
        containers.update(c, StopRequested=True)  # no --restart policy brings it back
        if c.running:
            sig = parse_signal(signal_name or c.spec.stop_signal or "SIGTERM")
            wait = timeout if timeout is not None else c.spec.stop_timeout
            lifecycle.stop_container(c, sig, 10 if wait is None else wait)
            _settle(containers, c)
        container_event(c, "stop")
        yield name


def _settle(containers, c, timeout: float = 5.0) -> None:
    """Wait until the record says exited (the monitor writes it), correcting it if need be;
    a ``--rm`` container until its monitor has removed it."""
    import time

    from minidocker.errors import NoSuchContainer

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = containers.refresh(containers.load(c.id))
        except NoSuchContainer:
            return  # (--rm: removed)
        if not c.running and not (c.spec.auto_remove and c.dir.exists()):
            return
        time.sleep(0.02)


def kill(names: list[str], sig: str = "KILL", root: Path | None = None):
    from minidocker.runtime import lifecycle
    from minidocker.runtime.spec import parse_signal

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


def cp(
    src: str,
    dest: str,
    root: Path | None = None,
    *,
    archive: bool = False,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
) -> None:
    """``docker cp CONTAINER:SRC DEST`` or ``docker cp SRC CONTAINER:DEST``; ``-`` for SRC or
    DEST: a tar stream on ``stdin`` or to ``stdout``; ``archive`` (-a): keep the files' owners."""
    from minidocker.runtime import copy

    def split(arg: str) -> tuple[str | None, str]:
        head, sep, tail = arg.partition(":")
        if sep and head and "/" not in head and not arg.startswith((".", "/")):
            return head, tail or "/"
        return None, arg

    (src_c, src_path), (dest_c, dest_path) = split(src), split(dest)
    if (src_c is None) == (dest_c is None):
        raise MinidockerError(
            "copying between containers, or between two host paths, is not supported",
            hint="give exactly one CONTAINER:PATH: minidocker cp c1:/etc/hosts . ",
        )
    containers = _containers(root)
    c = containers.find(src_c or dest_c)
    lowerdirs = _store(root).get(c.spec.image_id)
    if src_c:
        out = stdout if dest_path == "-" and stdout is not None else Path(dest_path)
        copy.copy_out(c, lowerdirs, src_path, out, archive=archive)
    else:
        source = stdin if src_path == "-" and stdin is not None else Path(src_path)
        copy.copy_in(c, lowerdirs, source, dest_path, archive=archive)


def rename(name: str, new_name: str, root: Path | None = None) -> None:
    from minidocker.runtime.spec import check_name

    new_name = check_name(new_name)
    containers = _containers(root)
    containers.rename(containers.find(name), new_name)


def port(name: str, root: Path | None = None) -> list[str]:
    """``docker port``: ``80/tcp -> 0.0.0.0:8080`` lines (published ports of a running container)."""
    c = _containers(root).find(name)
    return (
        [f"{p['port']}/{p['proto']} -> {p['host_ip'] or '0.0.0.0'}:{p['host_port']}" for p in c.spec.ports]
        if c.running
        else []
    )


def top(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """``docker top``: the container's processes (those in its cgroup), as the host sees them."""
    from minidocker.errors import Conflict
    from minidocker.linux import cgroups, host, procfs

    c = _containers(root).find(name)
    if not c.running:
        raise Conflict(f"Container {c.id[:12]} is not running")
    processes = (procfs.read_process(pid) for pid in sorted(cgroups.manager(c.id).pids()))
    return [
        {"UID": host.user_name(p.uid), "PID": p.pid, "PPID": p.ppid, "CMD": p.command}
        for p in processes
        if p is not None
    ]  # None: gone meanwhile


def update(names: list[str], flags: dict[str, Any], root: Path | None = None):
    """``docker update``: new resource limits (``flags``: RunOptions' memory, memory_swap,
    cpus, cpu_shares, cpuset_cpus, pids_limit, restart; None: unchanged), written to the
    record and, for a running container, to its cgroup at once; yields each name."""
    from minidocker.runtime.spec import parse_restart, updated_limits

    containers = _containers(root)
    for name in names:
        c = containers.find(name)
        c.check_usable()
        old, c.spec.limits = c.spec.limits, updated_limits(c.spec.limits, flags)
        if flags.get("restart") is not None:
            c.spec.restart = parse_restart(flags["restart"])
        if c.running:
            try:
                _apply_limits_now(c.id, old, c.spec.limits)
            except OSError as e:
                raise MinidockerError(f"Cannot update container {c.id[:12]}: {e.strerror or e}") from None
        containers.save_spec(c)
        yield name


def _apply_limits_now(cid: str, old: dict[str, Any], new: dict[str, Any]) -> None:
    """New limits into a running container's cgroup. A memory limit that grows goes in after
    its swap limit (cgroup v1 refuses a memory limit above memory+swap, EINVAL); the device
    rules stay as they are (``privileged=True``: rewritten, "deny all" would come first and a
    running process could meanwhile be refused /dev/null)."""
    from minidocker.linux import cgroups

    cg = cgroups.manager(cid)
    if new.get("memory") and old.get("memory") and new["memory"] > old["memory"]:
        swap = new.get("memory_swap", 2 * new["memory"])
        cg.apply_limits(cgroups.Limits(memory=old["memory"], memory_swap=swap), privileged=True)
    cg.apply_limits(cgroups.Limits(**new), privileged=True)


def top_ps(name: str, ps_options: list[str], root: Path | None = None) -> str:
    """``docker top C [ps OPTIONS]``: the host's ``ps`` with those options, and of its rows
    those of the container's processes (the column headed PID says which), as docker does."""
    from minidocker.errors import Conflict
    from minidocker.linux import cgroups

    c = _containers(root).find(name)
    if not c.running:
        raise Conflict(f"Container {c.id[:12]} is not running")
    from minidocker.runtime.describe import ps_rows

    return ps_rows(cgroups.manager(c.id).pids(), ps_options)


def rm(names: list[str], force: bool = False, root: Path | None = None, volumes: bool = False):
    """``docker rm [-f] [-v]``: ``volumes`` removes the anonymous volumes of each container too."""
    import signal as _s

    from minidocker.errors import Conflict
    from minidocker.runtime import lifecycle

    containers = _containers(root)
    for name in names:
        c = containers.find(name)
        if c.running:
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {c.id}. Stop the container before "
                    "attempting removal or force remove"
                )
            containers.update(c, StopRequested=True)
            lifecycle.stop_container(c, _s.SIGKILL, 10)
            _settle(containers, c)
        lifecycle.cleanup(containers, c, remove_volumes=volumes)
        yield name


def wait(names: list[str], root: Path | None = None):
    """``docker wait``: each container's exit code once it stops, in the order named. A
    container under a monitor tells it through its console socket (a ``--rm`` one is gone
    right after); else its record is read until it says exited."""
    import time

    from minidocker.runtime.console import wait_exit

    containers = _containers(root)
    for name in names:
        c = containers.find(name)
        code = wait_exit(c.layout.console) if c.running else None
        while code is None:
            c = containers.refresh(containers.load(c.id))
            if not c.running:
                code = c.state.get("ExitCode", 0)
                break
            time.sleep(0.05)
        yield code


def prune(root: Path | None = None) -> list[str]:
    return list(rm([c.id for c in _containers(root).all() if not c.running], root=root))


# -- events (eventlog.py writes them, eventstream.py reads them) ------------------------------
def _told(root: Path | None, action: str, result, actor_id: str, name: str = ""):
    """Record the image event ``action`` of ``actor_id`` (docker's: the reference for
    ``pull`` and ``push``, else the image ID; ``name`` the image's name), and hand
    ``result`` back, so that a verb's return line can tell of itself."""
    from minidocker.eventlog import record

    record(root or default_root(), "image", action, actor_id, {"name": name or actor_id})
    return result


def _told_lines(root: Path | None, lines: list[str], image_id: str = "") -> list[str]:
    """The image events of rmi's and load's lines: ``Untagged: REF`` is an ``untag`` and
    ``Deleted: ID`` of the image a ``delete`` (docker names the image by its ID in both);
    ``Loaded image: REF`` and ``Loaded image ID: ID`` are a ``load``."""
    for line in lines:
        label, _, what = line.partition(": ")
        if label == "Untagged" or (label == "Deleted" and what == image_id):
            _told(root, "untag" if label == "Untagged" else "delete", None, image_id)
        elif label in ("Loaded image", "Loaded image ID"):
            _told(root, "load", None, what)
    return lines


def events(
    since: str | None = None, until: str | None = None, filters: list[str] = (), root: Path | None = None
) -> Iterator[dict[str, Any]]:
    """``docker events``: the store's events in ``[since, until]`` that pass ``filters``,
    then (without ``until``, or with one still to come) the new ones as they happen. The
    time forms and the filters are checked before anything is read."""
    import time

    from minidocker.eventstream import parse_filters, parse_time, read_events

    now = time.time_ns()
    since_ns = parse_time(since, now) if since else None
    until_ns = parse_time(until, now) if until else None
    wanted = parse_filters(list(filters))
    follow = until_ns is None or until_ns > now
    return read_events(str(root or default_root()), since_ns, until_ns, wanted, follow)


# -- --explain ------------------------------------------------------------------------------
def listen_events(fn: Callable[[dict[str, Any]], None] | None) -> None:
    """Install the one listener of kernel events; with one, every step is timed too (its
    ``step`` event carries ``ms``), unless a pause already watches the steps (it times them)."""
    from minidocker.linux import events
    from minidocker.runtime import steps

    events.listen(fn)
    if steps.current_hook() in (None, steps.timed):
        steps.watch(steps.timed if fn is not None else None)


def pause_at(step: str, tell: Callable[[dict[str, Any]], None]) -> None:
    """``run --pause-at STEP``: the next container started from this process stops its PID 1
    before ``step`` and ``tell`` gets its host PID and cgroup paths (runtime/pausing.py).
    An unknown step raises ``MinidockerError`` listing the valid ones, before anything starts."""
    from minidocker.runtime import pausing

    pausing.arm(step, tell)


def exec_(
    name: str,
    argv: list[str],
    *,
    root: Path | None = None,
    env: list[str] = (),
    workdir: str | None = None,
    user: str | None = None,
    tty: bool = False,
    interactive: bool = False,
) -> int:
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


def attach(
    name: str,
    *,
    root: Path | None = None,
    stdin: bool = True,
    detach_keys: str | None = None,
    sig_proxy: bool = True,
) -> int:
    """``docker attach``: our terminal joined to a running container's streams through its
    monitor's console socket (runtime/console.py), stdin too if it was made with -i and
    ``stdin``; returns its exit code, or 1 once the detach keys are typed."""
    from minidocker.errors import Conflict
    from minidocker.runtime import console

    keys = console.parse_detach_keys(detach_keys or console.DEFAULT_DETACH_KEYS)
    c = _containers(root).find(name)
    if not c.running:
        raise Conflict("You cannot attach to a stopped container, start it first", exit_code=1)
    if c.state.get("Status") == "paused":
        raise Conflict("You cannot attach to a paused container, unpause it first", exit_code=1)
    if c.spec.tty and c.spec.stdin_open and stdin and not os.isatty(0):
        raise MinidockerError("the input device is not a TTY", exit_code=1)  # docker's words and code
    code = console.attach(c.layout.console, c.state["Pid"], c.spec.tty, c.spec.stdin_open and stdin, keys, sig_proxy)
    if code != console.NO_WORD:
        return code
    from minidocker.errors import NoSuchContainer

    try:  # its monitor was killed (rm -f): the record says how the container ended, if it is still there
        return int(_containers(root).refresh(_containers(root).load(c.id)).state.get("ExitCode", 137) or 137)
    except NoSuchContainer:
        return 137  # (removed: killed with it, as rm -f kills)


def restart(names: list[str], timeout: int | None = None, root: Path | None = None):
    for name in names:
        list(stop([name], timeout=timeout, root=root))
        list(start([name], root=root))
        yield name


def stats(names: list[str] | None = None, root: Path | None = None, interval: float = 0.5) -> list[dict[str, Any]]:
    """One sample of CPU %, memory usage/limit and PIDs per running container, from its
    cgroup (CPU % = cpu time used / wall time over ``interval``, 100% = one full core)."""
    from minidocker.runtime.stats import sample_stats

    containers = _containers(root)
    chosen = [containers.find(n) for n in names] if names else [c for c in containers.all() if c.running]
    return sample_stats([c for c in chosen if c.running], interval)


# -- moving images out and in: push, save/load, export/import (issue #5, part 2) -------------
def push(
    ref: str,
    root: Path | None = None,
    progress: Callable | None = None,
    chunk_size: int | None = None,
    estargz: bool = False,
):
    """Push a tagged image of the store to its registry; returns a ``PushResult``.
    ``estargz``: push an eStargz copy of it instead (``convert``'s), under the same name;
    the local tag still names the original."""
    from minidocker.image.push import CHUNK_SIZE, push_image
    from minidocker.image.reference import parse

    store = _store(root)
    reference = parse(ref)
    image_id = None
    if estargz:
        from minidocker.image.convert import convert_image
        from minidocker.image.pull import PullEvent
        from minidocker.image.push import resolve_for_push

        tell = progress or (lambda event: None)
        image_id = convert_image(store, resolve_for_push(store, reference), say=lambda line: tell(PullEvent("", line)))
    result = push_image(store, reference, progress, chunk_size or CHUNK_SIZE, image_id=image_id)
    result.zran_artifact = _push_zran(store, reference, result)  # (zran, #16)
    return _told(root, "push", result, str(result.ref))


def _push_zran(store, reference, result) -> str | None:  # (zran, #16)
    """After a push: the image's zran indexes as its referrers artifact, if every layer has one."""
    from minidocker.image import zran_store
    from minidocker.image.referrers import push_zran_artifact
    from minidocker.image.registry import RegistryClient

    manifest_digest = store.read_index()["images"][result.image_id]["manifest"]
    indexes = zran_store.indexes_of(store, store.manifest(result.image_id))
    if indexes is None:
        return None
    with RegistryClient(reference.domain) as client, store.gc_guard():
        return push_zran_artifact(client, reference, zran_store.subject_of(store, manifest_digest), indexes)


def convert(
    source: str,
    target: str | None = None,
    *,
    root: Path | None = None,
    prefetch: list[str] = (),
    chunk_size: int | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> str:
    """``image convert --estargz SOURCE TARGET``: a new image whose layers are eStargz
    (image/convert.py), tagged ``target``; returns its ID."""
    from minidocker.image.convert import convert_image
    from minidocker.image.estargz import CHUNK_SIZE

    image_id = convert_image(
        _store(root),
        source,
        target,
        prefetch=list(prefetch),
        chunk_size=CHUNK_SIZE if chunk_size is None else chunk_size,
        say=say,
    )
    return _told(root, "convert", image_id, image_id, target or "")


def index_layers(image: str, root: Path | None = None) -> list[str]:  # (zran, #16)
    """``convert --index IMAGE``: the zran index of every gzip layer of a local image, kept
    in the store (image/zran_store.py); one line per layer."""
    from minidocker.image.zran_store import index_image

    return index_image(_store(root), image)


def save(names: list[str], output: Path | None = None, stream=None, root: Path | None = None) -> None:
    """``docker save``: to the file ``output`` (atomically), else to the binary ``stream``."""
    from minidocker.image.archive import save_images, save_to_file

    store = _store(root)
    if output is not None:
        save_to_file(store, names, output)
    else:
        save_images(store, names, stream)
    for name in names:
        _told(root, "save", None, store.resolve(name), name)


def load(
    input: Path | None = None, stdin=None, root: Path | None = None, progress: Callable | None = None
) -> list[str]:
    """``docker load`` from a tar (docker-archive or OCI, plain or gzip), a layout
    directory, or ``stdin``; returns the ``Loaded image: ...`` lines."""
    from minidocker.image.archive import load_images

    return _told_lines(root, load_images(_store(root), input, stdin, progress))


def export(name: str, output: Path | None = None, fd: int | None = None, root: Path | None = None) -> int:
    """``docker export``: the container's flattened filesystem as a tar, to the file
    ``output`` (replaced atomically: all of the new tar or the old file) or to the
    descriptor ``fd``; returns the number of tar members."""
    from minidocker.fsutil import atomic_output
    from minidocker.runtime.export import export_rootfs

    c = _containers(root).find(name)
    lowerdirs = _store(root).get(c.spec.image_id)
    if output is None:
        return export_rootfs(c.layout.upper, lowerdirs, c.layout.merged, fd if fd is not None else 1, c.spec.idmap)
    with atomic_output(Path(output)) as f:
        return export_rootfs(c.layout.upper, lowerdirs, c.layout.merged, f.fileno(), c.spec.idmap)


def import_(
    source: str,
    ref: str | None = None,
    changes: list[str] = (),
    message: str | None = None,
    stdin=None,
    root: Path | None = None,
) -> str:
    """``docker import FILE|- [REF]``: a rootfs tar (plain, gzip, zstd) as a one-layer
    image; returns its ID."""
    from minidocker.errors import MinidockerError as _Err
    from minidocker.image.flat import import_tarball

    store = _store(root)
    if source == "-":
        image_id = import_tarball(store, stdin, "-", ref, list(changes), message)
    else:
        try:
            f = open(source, "rb")
        except OSError as e:
            raise _Err(f"cannot open {source}: {e.strerror}") from None
        with f:
            image_id = import_tarball(store, f, source, ref, list(changes), message)
    return _told(root, "import", image_id, image_id)


# -- images out of containers: diff, commit, history, build ---------------------------------------
def diff(name: str, root: Path | None = None) -> list[str]:
    """``docker diff``: ``A|C|D /path`` lines, read from the container's upper dir."""
    from minidocker.runtime.commit import changed_paths

    return changed_paths(_containers(root).find(name), _store(root))


def commit(
    name: str,
    ref: str | None = None,
    *,
    root: Path | None = None,
    message: str = "",
    author: str = "",
    changes: list[str] = (),
    pause: bool = True,
    compression: str = "gzip",
) -> str:
    """``docker commit``: the container's upper dir becomes one new layer on its image; the
    container's config (Cmd, Env, WorkingDir, User...) plus ``changes`` becomes the image's.
    A running container is frozen (cgroup freezer) while its upper dir is read, and always
    thawed, even if the commit is killed. ``compression``: the layer blob's, gzip or zstd
    (podman's ``--compression-format``; a zstd layer makes the manifest an OCI one).
    Returns the new image ID."""
    from minidocker.runtime.commit import commit_container

    containers = _containers(root)
    c = containers.find(name)
    return commit_container(
        containers,
        _store(root),
        c,
        ref,
        message=message,
        author=author,
        changes=list(changes),
        pause=pause,
        compression=compression,
    )


def history(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """``docker history``: one row per history entry, newest first."""
    from minidocker.image import commit as cm

    return cm.history(_store(root), name)


def build(
    context: str | None,
    *,
    tags: list[str] = (),
    dockerfile: str | None = None,
    stdin: bytes | None = None,
    build_args: list[str] = (),
    no_cache: bool = False,
    root: Path | None = None,
    say: Callable[[str], None] = lambda s: None,
    quiet: bool = False,
    target: str | None = None,
    labels: list[str] = (),
    ulimits: list[str] = (),
    estargz: bool = False,
) -> str:
    """``docker build`` (the classic builder): returns the image ID; ``say`` gets the step lines.
    ``context`` None (``build -``): ``stdin`` holds the context as a tar, or a Dockerfile and
    there is no context; ``dockerfile`` "-": ``stdin`` holds the Dockerfile. ``estargz``:
    then convert the result (``convert``), and the tags name the eStargz image."""
    from minidocker.build import BuildRequest, build_image

    request = BuildRequest(
        context=context,
        dockerfile=dockerfile,
        stdin=stdin,
        tags=list(tags),
        build_args=list(build_args),
        no_cache=no_cache,
        target=target,
        labels=list(labels),
        ulimits=list(ulimits),
    )
    store = _store(root)
    image_id = build_image(root or default_root(), store, request, say, lambda ref: ensure_image(ref, root))
    if not estargz:
        return image_id
    from minidocker.image.convert import convert_built_image

    return convert_built_image(store, image_id, list(tags), say)


# -- the course -----------------------------------------------------------------------------
def lessons() -> list:
    """The course's lessons (``minidocker/course.py``), in order."""
    from minidocker import course

    return course.list_lessons()


def lesson(number: str):
    """One lesson, by number or name; ``LessonNotFound`` when there is none."""
    from minidocker import course

    return course.find_lesson(number)


def check_lesson(number: str, image: str | None = None, report: Callable | None = None) -> list:
    """Run the checks of one lesson on this machine; ``report`` is told each result."""
    from minidocker import course

    return course.check_lesson(course.find_lesson(number), image, report)


def lesson_checks_elsewhere(number: str) -> list:
    """The checks of one lesson that are for another kind of machine (``check cgroupN``)."""
    from minidocker import course

    return course.runs_here(course.find_lesson(number))[1]
