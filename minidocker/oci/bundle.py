"""An OCI bundle's ``config.json`` read into what minidocker's runtime runs: a ContainerSpec
(runtime/spec.py) plus the parts only a bundle has (its rootfs directory, its namespaces,
masked and read-only paths, the cgroup's path, the seccomp profile in the spec's form).

The runtime is the one ``minidocker run`` uses, so a bundle may ask only for what it can do.
Whatever the spec allows that the runtime cannot do yet is refused here, with one line
naming the field, rather than silently ignored (a container that runs without the seccomp
filter or the user namespace it asked for is worse than one that does not start).

The spec: https://github.com/opencontainers/runtime-spec/blob/main/config.md

See it: ``minidocker-runc spec && python3 -m json.tool config.json``.
"""

from __future__ import annotations

import json
import os
import stat

from minidocker.errors import BundleError
from minidocker.linux.cgroups import CGROUP_ROOT
from minidocker.linux.procfs import MASKED_PATHS, READONLY_PATHS
from minidocker.oci.hooks import Hook, hooks_of
from minidocker.record import field, record
from minidocker.runtime.spec import ULIMITS, ContainerSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minidocker.linux.userns import IdMap

OCI_VERSION = "1.0.2"

# The mounts the runtime always makes itself (rootfs.prepare_rootfs): a bundle's mount of the
# same type on the same path is that one, not a second mount.
RUNTIME_MOUNTS = {
    "/proc": "proc",
    "/dev": "tmpfs",
    "/dev/pts": "devpts",
    "/dev/shm": "tmpfs",
    "/dev/mqueue": "mqueue",
    "/sys": "sysfs",
    CGROUP_ROOT: "cgroup",  # (rootfs.mount_cgroups; a destination inside the container, never opened here)
}
# The namespace kinds a bundle may list; one it leaves out is shared with the runtime's own.
NAMESPACE_KINDS = ("pid", "network", "ipc", "uts", "mount", "cgroup", "user", "time")

PROCESS_KEYS = {"args", "env", "cwd", "user", "terminal", "capabilities", "rlimits", "noNewPrivileges", "consoleSize"}
PROCESS_KEYS |= {"oomScoreAdj"}
LINUX_KEYS = {"namespaces", "maskedPaths", "readonlyPaths", "resources", "cgroupsPath", "seccomp", "sysctl"}
LINUX_KEYS |= {"devices", "rootfsPropagation", "uidMappings", "gidMappings"}
TOP_KEYS = {"ociVersion", "process", "root", "hostname", "mounts", "linux", "annotations", "domainname", "hooks"}


@record
class Bundle:
    """What ``create`` needs from a bundle, checked."""

    path: str  # the bundle directory, absolute
    rootfs: str  # root.path, absolute
    spec: ContainerSpec
    namespaces: list[str] = field(default_factory=list)  # the kinds made new
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    cgroup: tuple[str, str] = ("", "")  # linux.cgroupsPath as (parent, name); ("", ""): minidocker/<id>
    seccomp: dict[str, Any] | None = None  # linux.seccomp, in the spec's (and docker's) form
    annotations: dict[str, str] = field(default_factory=dict)
    cgroup_mount: bool | None = None  # a cgroup mount on /sys/fs/cgroup: read-only or not (None: none asked)
    umask: int | None = None  # process.user.umask: set by create before fork, so PID 1 inherits it
    shm: str = ""  # a bind on /dev/shm: its source (rootfs.RootfsPlan.shm), else a tmpfs of its own
    devices: list[dict[str, Any]] = field(default_factory=list)  # linux.devices as rootfs.make_devices' nodes
    root_propagation: str = ""  # linux.rootfsPropagation
    namespace_paths: dict[str, str] = field(default_factory=dict)  # linux.namespaces joined by path
    id_maps: tuple[IdMap, IdMap] | None = None  # a new user namespace: linux.uidMappings, gidMappings
    oom_score_adj: int | None = None  # process.oomScoreAdj: written for PID 1 by create, inherited by its program
    hooks: dict[str, list[Hook]] = field(default_factory=dict)  # the spec's hooks, by kind (oci/hooks.py)


def load_bundle(path: str, container_id: str) -> Bundle:
    """Read ``path/config.json`` and check every field the runtime must honour."""
    bundle = os.path.abspath(path)
    try:
        with open(os.path.join(bundle, "config.json")) as f:
            config = json.load(f)
    except OSError as e:
        raise BundleError(f"open {os.path.join(bundle, 'config.json')}: {e.strerror}") from None
    except ValueError as e:
        raise BundleError(f"config.json is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise BundleError("config.json must hold a JSON object")
    return parse_config(config, bundle, container_id)


def parse_config(config: dict[str, Any], bundle: str, container_id: str) -> Bundle:
    refuse_unknown("", config, TOP_KEYS)
    if config.get("domainname"):
        raise BundleError("domainname is not supported yet")
    process = section(config, "process")
    linux = section(config, "linux", required=False)
    refuse_unknown("process.", process, PROCESS_KEYS)
    refuse_unknown("linux.", linux, LINUX_KEYS)
    root = section(config, "root")
    rootfs = os.path.normpath(os.path.join(bundle, str(root.get("path") or "rootfs")))  # (root.path "." too)
    if not os.path.isdir(rootfs):
        raise BundleError(f"root.path {rootfs}: no such directory")
    if linux.get("rootfsPropagation", "rprivate") not in PROPAGATIONS:
        raise BundleError(f"linux.rootfsPropagation {linux['rootfsPropagation']!r}: not a propagation type")
    kinds = namespaces_of(linux.get("namespaces") or [])
    check_shared_namespaces(kinds, config, linux)
    cap_sets = capabilities_of(process.get("capabilities") or {})
    spec = ContainerSpec(
        id=container_id,
        name=container_id,
        image="",
        image_id="",
        argv=process_args(process),
        env=[str(e) for e in process.get("env") or []],
        cwd=str(process.get("cwd") or "/"),
        user=user_of(process.get("user") or {}),
        hostname=str(config.get("hostname") or ""),
        tty=bool(process.get("terminal")),
        stdin_open=True,  # the stdio create was given are the process's own, stdin too
        network="none" if "network" in kinds else "host",
        readonly_rootfs=bool(root.get("readonly")),
        limits=limits_of(section(linux, "resources", required=False)),
        capabilities=sorted(cap_sets["bounding"]),
        capability_sets=cap_sets,
        seccomp="unconfined",  # the bundle's profile, if any, is written beside the state (oci/state.py)
        no_new_privileges=bool(process.get("noNewPrivileges")),
        volumes=[],
        ulimits=[rlimit_of(r) for r in process.get("rlimits") or []],
        sysctls={str(k): str(v) for k, v in (linux.get("sysctl") or {}).items()},
        pid_mode="" if "pid" in kinds else "host",
        cgroupns="cgroup" in kinds,
        ipc_mode="private" if "ipc" in kinds else "host",
        additional_gids=additional_gids(process.get("user") or {}),
        device_cgroup_rules=device_rules_of((linux.get("resources") or {}).get("devices") or []),
    )
    devices = devices_of(linux.get("devices") or [])
    spec.device_cgroup_rules += [d["rule"] for d in devices if d["rule"] and d["rule"] not in spec.device_cgroup_rules]
    spec.volumes = mounts_of(config.get("mounts") or [])
    shm = next((v.source for v in spec.volumes if v.target == "/dev/shm"), "")
    spec.volumes = [v for v in spec.volumes if v.target != "/dev/shm"]
    umask = (process.get("user") or {}).get("umask")
    return Bundle(
        path=bundle,
        rootfs=rootfs,
        spec=spec,
        namespaces=kinds,
        masked_paths=[str(p) for p in linux.get("maskedPaths") or []],
        readonly_paths=[str(p) for p in linux.get("readonlyPaths") or []],
        cgroup=cgroup_of(str(linux.get("cgroupsPath") or ""), container_id),
        seccomp=seccomp_of(linux.get("seccomp")),
        annotations={str(k): str(v) for k, v in (config.get("annotations") or {}).items()},
        umask=None if umask is None else int(umask),
        shm=shm,
        devices=devices,
        root_propagation=str(linux.get("rootfsPropagation") or ""),
        namespace_paths=namespace_paths(linux.get("namespaces") or []),
        id_maps=id_maps_of(linux, "user" in kinds),
        oom_score_adj=oom_score_adj_of(process.get("oomScoreAdj")),
        hooks=hooks_of(config.get("hooks")),
        cgroup_mount=next(
            ("ro" in (m.get("options") or []) for m in config.get("mounts") or [] if m.get("type") == "cgroup"), None
        ),
    )


def cgroup_of(path: str, container_id: str) -> tuple[str, str]:
    """linux.cgroupsPath ``[/]A/B/.../NAME`` (podman's ``/libpod_parent/libpod-ID``), below
    the cgroup root (a relative path too: this runtime's own cgroup is the root's);
    none: ``minidocker/ID``, as ``minidocker run`` makes them."""
    from minidocker.linux.cgroups import PARENT

    if not path:
        return PARENT, container_id
    parts = [p for p in path.split("/") if p]
    if ":" in path or not parts or any(p in (".", "..") for p in parts):
        raise BundleError(f"linux.cgroupsPath {path!r}: only a path of cgroups (/A/B/NAME) is supported")
    return "/".join(parts[:-1]), parts[-1]


def section(parent: dict[str, Any], key: str, required: bool = True) -> dict[str, Any]:
    value = parent.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BundleError(f"config.json: {key} must be an object" if value is not None else f"config.json: no {key}")
    return value


def refuse_unknown(where: str, obj: dict[str, Any], known: set[str], reason: str | None = None) -> None:
    """A field the runtime does not know is refused by name (the spec's optional fields too)."""
    extra = sorted(set(obj) - known)
    if extra:
        raise BundleError(reason or f"{where}{extra[0]} is not supported yet")


def process_args(process: dict[str, Any]) -> list[str]:
    args = process.get("args")
    if not args or not isinstance(args, list):
        raise BundleError("process.args must name the command to run")
    if process.get("cwd") and not str(process["cwd"]).startswith("/"):
        raise BundleError(f"process.cwd {process['cwd']!r} must be an absolute path")
    return [str(a) for a in args]


def user_of(user: dict[str, Any]) -> str:
    """process.user -> ``uid:gid`` for init.switch_user: numeric, so /etc/group adds no
    groups; the supplementary ones are additionalGids (``additional_gids``). ``username``
    is Windows' field (the spec: Linux runtimes ignore it)."""
    return f"{int(user.get('uid', 0))}:{int(user.get('gid', 0))}"


def oom_score_adj_of(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or not -1000 <= value <= 1000:
        raise BundleError(f"process.oomScoreAdj {value!r} must be an integer from -1000 to 1000")
    return value


def additional_gids(user: dict[str, Any]) -> list[int]:
    gids = user.get("additionalGids") or []
    if not isinstance(gids, list) or not all(isinstance(g, int) and 0 <= g < 2**32 - 1 for g in gids):
        raise BundleError("process.user.additionalGids must be a list of group IDs")
    return list(dict.fromkeys(gids))


CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def capabilities_of(caps: dict[str, Any]) -> dict[str, list[str]]:
    """process.capabilities: each of the five sets exactly as given (init.limit_capabilities
    sets them with capset(2) after the user switch; the bounding set goes first)."""
    from minidocker.linux.capabilities import CAP_NUMBERS

    refuse_unknown("process.capabilities.", caps, set(CAP_SETS))
    sets = {}
    for kind in CAP_SETS:
        names = caps.get(kind) or []
        if not isinstance(names, list):
            raise BundleError(f"process.capabilities.{kind} must be a list")
        for name in names:
            if name not in CAP_NUMBERS:
                raise BundleError(f"process.capabilities: unknown capability {name!r}")
        sets[kind] = sorted(set(names), key=CAP_NUMBERS.__getitem__)
    return sets


def rlimit_of(rlimit: dict[str, Any]) -> dict[str, Any]:
    kind = str(rlimit.get("type", ""))
    name = kind.removeprefix("RLIMIT_").lower()
    if not kind.startswith("RLIMIT_") or name not in ULIMITS:
        raise BundleError(f"process.rlimits: unknown type {kind!r}")
    soft, hard = int(rlimit.get("soft", 0)), int(rlimit.get("hard", 0))
    return {"Name": name, "Soft": -1 if soft >= 2**64 - 1 else soft, "Hard": -1 if hard >= 2**64 - 1 else hard}


def namespaces_of(entries: list[dict[str, Any]]) -> list[str]:
    """linux.namespaces: the kinds listed, made new or joined by ``path``. A time namespace,
    a user namespace by path, or a path beside a new user namespace is refused."""
    kinds = []
    for entry in entries:
        kind = entry.get("type")
        if kind not in NAMESPACE_KINDS:
            raise BundleError(f"linux.namespaces: unknown type {kind!r}")
        if entry.get("path") and kind not in JOINABLE:
            raise BundleError(f"linux.namespaces: joining the {kind} namespace {entry['path']} is not supported yet")
        if kind == "time":
            raise BundleError("linux.namespaces: a time namespace is not supported yet")
        if kind in kinds:
            raise BundleError(f"linux.namespaces: {kind} is given twice")
        kinds.append(kind)
    if "user" in kinds and any(entry.get("path") for entry in entries):
        raise BundleError("linux.namespaces: a path beside a new user namespace is not supported yet")
    return kinds


def check_shared_namespaces(kinds: list[str], config: dict[str, Any], linux: dict[str, Any]) -> None:
    """What needs a namespace of the container's own, in the runtime's words: without a
    mount namespace the mounts are made in the runtime's (and detached by ``delete``) and
    the process is chrooted, so nothing can be hidden or made read-only."""
    if "user" in kinds and not {"mount", "pid"} <= set(kinds):
        raise BundleError("linux.namespaces: a user namespace without mount and PID namespaces is not supported yet")
    if "uts" not in kinds and config.get("hostname"):
        raise BundleError("unable to set hostname without a private UTS namespace")
    if "mount" not in kinds:
        if linux.get("maskedPaths") or linux.get("readonlyPaths"):
            raise BundleError("unable to restrict sys entries without a private MNT namespace")
        if (config.get("root") or {}).get("readonly"):
            raise BundleError("unable to make the rootfs read-only without a private MNT namespace")
        if linux.get("rootfsPropagation"):
            raise BundleError("unable to set linux.rootfsPropagation without a private MNT namespace")


def id_maps_of(linux: dict[str, Any], new_userns: bool) -> tuple[IdMap, IdMap] | None:
    """linux.uidMappings and gidMappings: ``{containerID, hostID, size}`` each, the lines of
    the new user namespace's uid_map and gid_map. Both are needed with a user namespace, and
    the container's 0 must be mapped: init's first child becomes that root to build the rest."""
    given = {k: linux.get(k) for k in ("uidMappings", "gidMappings") if linux.get(k)}
    if not new_userns:
        if given:
            raise BundleError(f"linux.{next(iter(given))} needs a user namespace in linux.namespaces")
        return None
    maps = []
    for key in ("uidMappings", "gidMappings"):
        entries = given.get(key)
        if not isinstance(entries, list):
            raise BundleError(f"linux.{key} are needed with a user namespace")
        try:
            lines = [(int(e["containerID"]), int(e["hostID"]), int(e["size"])) for e in entries]
        except (KeyError, TypeError, ValueError):
            raise BundleError(f"linux.{key}: each needs a containerID, a hostID and a size") from None
        if not any(inside <= 0 < inside + count for inside, _, count in lines):
            raise BundleError(f"linux.{key} must map the container's ID 0 (its root)")
        if len(lines) > 340 or any(n < 0 for line in lines for n in line) or any(c == 0 for *_, c in lines):
            raise BundleError(f"linux.{key}: at most 340 ranges of positive size, from IDs of 0 or more")
        maps.append(lines)
    return maps[0], maps[1]


# mount(8)'s flag options: the MS_* bit each sets (True) or clears (False); the rest of a
# mount's options, but propagation and bind/rbind, are its file system's data.
MOUNT_FLAGS = {
    "ro": (1, True), "rw": (1, False), "nosuid": (2, True), "suid": (2, False),
    "nodev": (4, True), "dev": (4, False), "noexec": (8, True), "exec": (8, False),
    "sync": (16, True), "async": (16, False), "mand": (64, True), "nomand": (64, False),
    "dirsync": (128, True), "noatime": (1024, True), "atime": (1024, False),
    "nodiratime": (2048, True), "diratime": (2048, False), "relatime": (1 << 21, True),
    "norelatime": (1 << 21, False), "strictatime": (1 << 24, True), "nostrictatime": (1 << 24, False),
}  # fmt: skip
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable")


def mount_options(options: list[str]) -> tuple[int, str, str]:
    """A mount's options -> (MS_* flags, propagation, data), in the order given."""
    flags, propagation, data = 0, "", []
    for o in options:
        if o in MOUNT_FLAGS:
            bit, on = MOUNT_FLAGS[o]
            flags = flags | bit if on else flags & ~bit
        elif o in PROPAGATIONS:
            propagation = o
        elif o not in ("bind", "rbind"):
            data.append(o)
    return flags, propagation, ",".join(data)


# The namespaces a bundle may join by path (the parent opens each; setns: lifecycle.fork_init
# for pid, init.enter_namespaces for the others), with setns(2)'s CLONE_NEW* type of each.
JOINABLE = {"network": 0x40000000, "ipc": 0x08000000, "uts": 0x04000000, "pid": 0x20000000, "mount": 0x00020000}


def namespace_paths(entries: list[dict[str, Any]]) -> dict[str, str]:
    """linux.namespaces' paths, each checked to be a namespace of its type (NS_GET_NSTYPE)."""
    from minidocker.linux.procfs import namespace_type

    paths = {}
    for entry in entries:
        kind, path = entry.get("type"), str(entry.get("path") or "")
        if not path:
            continue
        try:
            nstype = namespace_type(path)
        except OSError as e:
            raise BundleError(f"linux.namespaces: {kind} namespace {path}: {e.strerror}") from None
        if nstype != JOINABLE[str(kind)]:
            raise BundleError(f"linux.namespaces: {path} is not a {kind} namespace")
        paths[str(kind)] = path
    return paths


def mounts_of(mounts: list[dict[str, Any]]) -> list:
    """The bundle's mounts: the ones the runtime makes itself are recognised; the others
    become the container's mounts (runtime/mounts.MountSpec, with ``flags`` beside: the
    options as MS_* bits), made in order after the runtime's own."""
    from minidocker.runtime.mounts import MountSpec

    out = []
    for m in mounts:
        target, kind = str(m.get("destination", "")), str(m.get("type") or "")
        options = [str(o) for o in m.get("options") or []]
        if not target.startswith("/"):
            raise BundleError(f"mounts: destination {target!r} must be an absolute path")
        if RUNTIME_MOUNTS.get(target) == kind:
            continue
        flags, propagation, data = mount_options(options)
        is_bind = kind == "bind" or "bind" in options or "rbind" in options
        if not is_bind and not kind:
            raise BundleError(f"mounts: the mount on {target} needs a type")
        spec = MountSpec(
            str(m.get("source") or kind), target, bool(flags & 1), "bind" if is_bind else kind, propagation=propagation
        )
        spec.data = "" if is_bind else data
        spec.mode = ",".join(options)  # (rootfs_plan reads the flags and recursion back from here)
        out.append(spec)
    return out


def limits_of(resources: dict[str, Any]) -> dict[str, Any]:
    """linux.resources -> cgroups.Limits' fields (memory, cpu, pids); the device rules of a
    default bundle (deny all) are the runtime's own first rule; anything else is refused."""
    refuse_unknown("linux.resources.", resources, {"memory", "cpu", "pids", "devices"})
    memory, cpu, pids = (resources.get(k) or {} for k in ("memory", "cpu", "pids"))
    refuse_unknown("linux.resources.memory.", memory, {"limit", "swap"})
    refuse_unknown("linux.resources.cpu.", cpu, {"shares", "quota", "period", "cpus", "mems"})
    refuse_unknown("linux.resources.pids.", pids, {"limit"})
    limits: dict[str, Any] = {}
    if memory.get("limit") is not None:
        limits["memory"] = int(memory["limit"])
    if memory.get("swap") is not None:
        limits["memory_swap"] = int(memory["swap"])
    if cpu.get("shares") is not None:
        limits["cpu_shares"] = int(cpu["shares"])
    if cpu.get("quota") is not None and int(cpu["quota"]) > 0:
        limits["cpus"] = int(cpu["quota"]) / int(cpu.get("period") or 100000)
        if cpu.get("period"):
            limits["cpu_period"] = int(cpu["period"])
    if cpu.get("mems"):
        limits["cpuset_mems"] = str(cpu["mems"])
    if cpu.get("cpus"):
        limits["cpuset_cpus"] = str(cpu["cpus"])
    if pids.get("limit") is not None and int(pids["limit"]) > 0:
        limits["pids"] = int(pids["limit"])
    return limits


def device_rules_of(rules: list[dict[str, Any]]) -> list[str]:
    """linux.resources.devices -> the device cgroup's allow rules (``c 1:3 rwm``), after the
    runtime's own deny-all and docker's default allows (cgroups.DEVICE_RULES, which hold
    every device runc's and containerd's default specs allow). A deny rule is accepted only
    as that first deny-all: the runtime's rules are an allow list."""
    out = []
    for i, rule in enumerate(rules):
        kind, access = str(rule.get("type") or "a"), str(rule.get("access") or "rwm")
        if kind not in ("a", "c", "b") or not access or set(access) - set("rwm"):
            raise BundleError(f"linux.resources.devices[{i}]: bad type {kind!r} or access {access!r}")
        if not rule.get("allow"):
            if i or kind != "a":
                raise BundleError(
                    "linux.resources.devices: a deny rule is supported only as the first, for all devices"
                )
            continue
        major, minor = (rule.get(k) for k in ("major", "minor"))
        numbers = (
            "*:*" if kind == "a" else f"{'*' if major is None else int(major)}:{'*' if minor is None else int(minor)}"
        )
        out.append(f"{kind} {numbers} {access}")
    return out


DEVICE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def devices_of(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """linux.devices -> the nodes rootfs.make_devices makes in the container's /dev (type,
    numbers, mode, owner), each also allowed in the device cgroup (as runc allows them)."""
    nodes = []
    for d in entries:
        path, kind = str(d.get("path") or ""), str(d.get("type") or "")
        if not path.startswith("/") or kind not in DEVICE_TYPES:
            raise BundleError(f"linux.devices: {path or '(no path)'} needs an absolute path and a type c, b, u or p")
        major, minor = int(d.get("major") or 0), int(d.get("minor") or 0)
        if kind != "p" and ("major" not in d or "minor" not in d):
            raise BundleError(f"linux.devices: {path} needs major and minor numbers")
        mode = DEVICE_TYPES[kind] | (int(d["fileMode"]) & 0o7777 if d.get("fileMode") is not None else 0o666)
        rule = "" if kind == "p" else f"{'b' if kind == 'b' else 'c'} {major}:{minor} rwm"
        uid, gid = int(d.get("uid") or 0), int(d.get("gid") or 0)
        nodes.append({"host": "", "path": path, "mode": mode, "major": major, "minor": minor, "uid": uid, "gid": gid})
        nodes[-1]["rule"] = rule
    return nodes


def seccomp_of(profile: Any) -> dict[str, Any] | None:
    """linux.seccomp is the form linux/seccomp.py already compiles (docker's profiles are
    the same shape); its checks run when the filter is compiled, at create."""
    if profile is None:
        return None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise BundleError("linux.seccomp must be an object with a defaultAction")
    if profile.get("listenerPath") or profile.get("flags"):
        raise BundleError("linux.seccomp: flags and listenerPath are not supported yet")
    return profile


def default_config(terminal: bool = True) -> dict[str, Any]:
    """``spec``'s config.json (as ``runc spec`` writes one): ``sh`` in ./rootfs, read-only,
    with the namespaces, mounts and capabilities this runtime honours."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    mounts: list[dict[str, Any]] = [{"destination": d, "type": t, "source": t} for d, t in RUNTIME_MOUNTS.items()]
    mounts[-1]["options"] = ["nosuid", "noexec", "nodev", "relatime", "ro"]  # (the cgroup mount)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "minidocker",
        "mounts": mounts,
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": k} for k in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(MASKED_PATHS),  # docker's, as minidocker run masks them
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
