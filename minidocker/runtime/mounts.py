"""What to mount where: ``-v``, ``--mount``, ``--volumes-from`` and an image's ``VOLUME``,
read into one list of ``MountSpec`` (docker's words and errors), before anything is touched.

Three kinds of mount, as docker has them:

* ``bind``: a host directory or file shown at a path of the container (``-v /srv:/data``,
  ``--mount type=bind,src=/srv,dst=/data``): ``mount --bind``;
* ``volume``: a directory the store keeps, ``volumes/<name>/_data`` (runtime/volumes.py),
  bound the same way. ``-v NAME:/path`` names one (made on first use); ``-v /path`` and an
  image's ``VOLUME /path`` make an anonymous one, named by 64 random hex digits;
* ``tmpfs``: a fresh in-memory file system (``--mount type=tmpfs,dst=/t,tmpfs-size=1m``).

The rules are docker's: a container path is absolute and never ``/``; two mounts on one
path are refused ("Duplicate mount point"); ``--mount`` takes only the keys docker knows
and a bind source that exists; ``:z``/``:Z`` are SELinux relabel requests, accepted and
ignored on a host without SELinux, as docker does there. Nothing in this module touches
the file system or the kernel.

See it: ``minidocker run --rm --network none -v data:/data busybox mount`` lists the bind
(and ``minidocker inspect`` of a container shows its ``Mounts``).
"""

from __future__ import annotations

import os
import posixpath
import re

from minidocker.errors import MinidockerError
from minidocker.record import field, record, replace

VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # docker's local volume names
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
VOLUME_MODES = ("ro", "rw", "z", "Z", "nocopy", *PROPAGATIONS)
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # docker 23+ marks anonymous volumes so (prune)


@record
class MountSpec:
    """One mount of a container, as its record keeps it (``config.json``'s ``volumes``)."""

    source: str  # bind: the host path; volume: the volume's name; tmpfs: ""
    target: str  # the absolute path inside the container
    readonly: bool = False
    type: str = "bind"  # bind, volume or tmpfs
    nocopy: bool = False  # volume: no copy of the image's files into an empty volume
    propagation: str = ""  # bind: rprivate (the default), shared, slave, ...
    data: str = ""  # tmpfs: its mount options (size=, mode=)
    mode: str = ""  # -v's options as given ("ro", "z"): inspect's Mode
    volume_opts: dict[str, str] = field(default_factory=dict)  # --mount volume-opt=: for a new volume
    volume_labels: dict[str, str] = field(default_factory=dict)  # --mount volume-label=
    anonymous: bool = False  # volume: made for this container (-v /path, VOLUME), 64 hex digits


def new_volume_name() -> str:
    return os.urandom(32).hex()


def check_volume_name(name: str, verb: str = "create") -> str:
    if not VOLUME_NAME.fullmatch(name) or len(name) > 255:
        raise MinidockerError(
            f'{verb} {shown(name)}: "{shown(name)}" includes invalid characters for a local volume name, '
            'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
            "use absolute path"
        )
    return name


def shown(text: str) -> str:
    from minidocker.runtime.spec import shown as _shown

    return _shown(text)


def check_target(target: str, raw: str, kind: str = "volume specification") -> str:
    """A container path: absolute, never ``/`` itself; normalised (``/a/../b`` -> ``/b``)."""
    if not target.startswith("/"):
        raise MinidockerError(f"invalid {kind}: '{shown(raw)}': the container path '{shown(target)}' must be absolute")
    clean = posixpath.normpath(target).replace("//", "/")
    if clean == "/":
        raise MinidockerError(f"invalid {kind}: '{shown(raw)}': destination can't be '/'")
    return clean


def parse_volume_flag(raw: str) -> MountSpec:
    """``-v [SRC:]DST[:OPTS]``: SRC a host path (absolute, or starting with ``.``: a bind),
    a volume name, or nothing (an anonymous volume); OPTS a comma list of ro|rw, z|Z,
    nocopy and a propagation. Nothing is touched here (a missing bind source is made at run)."""
    parts = raw.split(":")
    if len(parts) > 3 or not all(parts) or (len(parts) == 2 and parts[1] in VOLUME_MODES):
        raise MinidockerError(
            f"invalid volume specification: '{shown(raw)}'", hint="use -v [NAME|/host/path:]/container/path[:ro]"
        )
    if len(parts) == 1:
        return MountSpec(new_volume_name(), check_target(parts[0], raw), type="volume", anonymous=True)
    source, target = parts[0], check_target(parts[1], raw)
    options = parts[2].split(",") if len(parts) == 3 else []
    bad = [o for o in options if o not in VOLUME_MODES]
    if bad or len({o for o in options if o in ("ro", "rw")}) > 1:
        raise MinidockerError(f"invalid mode: {shown(parts[2])}", hint="use ro or rw, z or Z, nocopy, a propagation")
    propagation = next((o for o in options if o in PROPAGATIONS), "")
    mode = ",".join(o for o in options if o != "nocopy")
    spec = MountSpec(source, target, readonly="ro" in options, mode=mode)
    if source.startswith(("/", ".")):
        if "nocopy" in options:
            raise MinidockerError(f"invalid mode: {shown(parts[2])}: nocopy is for volumes, not host paths")
        return replace(spec, source=os.path.abspath(source), propagation=propagation or "rprivate")
    if propagation:
        raise MinidockerError(f"invalid mode: {shown(parts[2])}: a propagation is for host paths, not volumes")
    return replace(spec, source=check_volume_name(source), type="volume", nocopy="nocopy" in options)


MOUNT_KEYS = {
    "type": "type",
    "source": "source",
    "src": "source",
    "target": "target",
    "dst": "target",
    "destination": "target",
    "readonly": "readonly",
    "ro": "readonly",
    "volume-nocopy": "volume-nocopy",
    "volume-opt": "volume-opt",
    "volume-label": "volume-label",
    "volume-driver": "volume-driver",
    "tmpfs-size": "tmpfs-size",
    "tmpfs-mode": "tmpfs-mode",
    "bind-propagation": "bind-propagation",
    "consistency": "consistency",
}
BOOL_KEYS = ("readonly", "volume-nocopy")
OPTIONS_OF = {  # the keys that belong to one type: docker's XxxOptions
    "bind-propagation": ("bind", "BindOptions"),
    "volume-nocopy": ("volume", "VolumeOptions"),
    "volume-opt": ("volume", "VolumeOptions"),
    "volume-label": ("volume", "VolumeOptions"),
    "volume-driver": ("volume", "VolumeOptions"),
    "tmpfs-size": ("tmpfs", "TmpfsOptions"),
    "tmpfs-mode": ("tmpfs", "TmpfsOptions"),
}


def mount_fields(raw: str) -> dict[str, list[str]]:
    """``--mount``'s comma-separated ``key=value`` fields, by their canonical key (docker's
    CLI errors for an unknown key and for a key that needs a value)."""
    got: dict[str, list[str]] = {}
    for item in raw.split(","):
        key, eq, value = item.partition("=")
        canonical = MOUNT_KEYS.get(key.strip().lower())
        if canonical is None:
            raise MinidockerError(f"unexpected key '{shown(key)}' in '{shown(item)}'")
        if not eq and canonical not in BOOL_KEYS:
            raise MinidockerError(f"invalid field '{shown(item)}' must be a key=value pair")
        if canonical in BOOL_KEYS:
            value = value if eq else "true"
            if value.lower() not in ("true", "false", "1", "0"):
                raise MinidockerError(f"invalid value for {key}: {shown(value)}")
        got.setdefault(canonical, []).append(value)
    return got


def parse_mount_flag(raw: str) -> MountSpec:
    """``--mount type=bind|volume|tmpfs,source=,target=,...`` (docker's keys); a bind's
    source must exist, as docker requires (unlike ``-v``, which makes it)."""
    got = mount_fields(raw)
    kind = got.get("type", ["volume"])[-1]
    if kind not in ("bind", "volume", "tmpfs"):
        raise MinidockerError(f'invalid mount config for type "{shown(kind)}": mount type unknown')

    def one(key: str, default: str = "") -> str:
        return got.get(key, [default])[-1]

    for key, (owner, name) in OPTIONS_OF.items():
        if key in got and owner != kind:
            raise MinidockerError(f'invalid mount config for type "{kind}": field {name} must not be specified')
    target, source = one("target"), one("source")
    if not target:
        raise MinidockerError(f'invalid mount config for type "{kind}": field Target must not be empty')
    target = check_target(target, raw, f'mount config for type "{kind}"')
    readonly = one("readonly", "false").lower() in ("true", "1")
    if kind == "tmpfs":
        if source:
            raise MinidockerError('invalid mount config for type "tmpfs": field Source must not be specified')
        return MountSpec("", target, readonly, "tmpfs", data=tmpfs_data(one("tmpfs-size"), one("tmpfs-mode")))
    if kind == "bind":
        return bind_mount(source, target, readonly, one("bind-propagation", "rprivate"))
    if one("volume-driver", "local") != "local":
        raise MinidockerError(f"plugin {shown(one('volume-driver'))!r} not found", hint="only the local driver")
    spec = MountSpec(source, target, readonly, "volume", nocopy=one("volume-nocopy", "false").lower() in ("true", "1"))
    spec.volume_opts = key_values(got.get("volume-opt", []), "volume-opt")
    check_options(spec.volume_opts)
    spec.volume_labels = key_values(got.get("volume-label", []), "volume-label")
    if not source:
        return replace(spec, source=new_volume_name(), anonymous=True)
    return replace(spec, source=check_volume_name(source))


def bind_mount(source: str, target: str, readonly: bool, propagation: str) -> MountSpec:
    if not source:
        raise MinidockerError('invalid mount config for type "bind": field Source must not be empty')
    if propagation not in PROPAGATIONS:
        raise MinidockerError(f"invalid bind-propagation: {shown(propagation)}", hint="|".join(PROPAGATIONS))
    source = os.path.abspath(source)
    if not os.path.exists(source):
        raise MinidockerError(f'invalid mount config for type "bind": bind source path does not exist: {shown(source)}')
    return MountSpec(source, target, readonly, "bind", propagation=propagation)


def tmpfs_data(size: str, mode: str) -> str:
    """``tmpfs-size`` (64m, bytes) and ``tmpfs-mode`` (octal) as tmpfs's mount options."""
    from minidocker.linux.cgroups import parse_size

    opts = []
    if size:
        opts.append(f"size={parse_size(size)}")
    if mode:
        if not re.fullmatch(r"[0-7]{1,4}", mode):
            raise MinidockerError(f"invalid tmpfs-mode {shown(mode)}: an octal mode such as 1777")
        opts.append(f"mode={mode}")
    return ",".join(opts)


def key_values(items: list[str], what: str) -> dict[str, str]:
    """``K=V`` items (``--opt``, ``--label``, ``volume-opt=``) as a dict; a bare ``K`` is ``K=""``."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise MinidockerError(f"invalid {what}: {shown(item)}", hint="use KEY=VALUE")
        out[key] = value
    return out


LOCAL_OPTIONS = ("type", "device", "o")
REQUIRED_WITH = {"device": ("type",), "type": ("device",), "o": ("device", "type")}  # the local driver's rule


def check_options(options: dict[str, str]) -> None:
    """The local driver's options (``--opt``): only type, device and o, each with the ones it needs."""
    for key in options:
        if key not in LOCAL_OPTIONS:
            raise MinidockerError(f'invalid option key: "{key}"', hint="the local driver takes type=, device=, o=")
    for key, needs in REQUIRED_WITH.items():
        for other in needs:
            if key in options and other not in options:
                raise MinidockerError(f'missing required option: "{other}"')


def parse_volumes_from(raw: str) -> tuple[str, bool | None]:
    """``--volumes-from CONTAINER[:ro|rw]`` -> (the container, read-only: None keeps each mount's)."""
    name, _, mode = raw.partition(":")
    if not name or mode not in ("", "ro", "rw", "z", "Z"):
        raise MinidockerError(f"invalid --volumes-from: '{shown(raw)}'", hint="use CONTAINER[:ro|rw]")
    return name, {"ro": True, "rw": False}.get(mode)


def check_mount_flags(volume: list[str], mount: list[str], volumes_from: list[str], tmpfs: list[str]) -> None:
    """``run``'s mount flags, checked before any pull (the bind sources of ``--mount`` too)."""
    specs = [parse_volume_flag(v) for v in volume] + [parse_mount_flag(m) for m in mount]
    for v in volumes_from:
        parse_volumes_from(v)
    check_duplicates(specs, tmpfs)


def check_duplicates(specs: list[MountSpec], tmpfs: list[str]) -> None:
    seen: set[str] = set()
    for target in [s.target for s in specs] + [posixpath.normpath(t.partition(":")[0]) for t in tmpfs]:
        if target in seen:
            raise MinidockerError(f"Duplicate mount point: {shown(target)}")
        seen.add(target)


def container_mounts(
    volume: list[str],
    mount: list[str],
    tmpfs: list[str],
    inherited: list[MountSpec],
    image_volumes: dict | None,
) -> list[MountSpec]:
    """Every mount of a new container, docker's order of precedence: ``--volumes-from``
    (``inherited``), then ``-v`` and ``--mount`` over them (a path given twice by the user is
    refused), then an anonymous volume for each of the image's ``VOLUME`` paths no other
    mount (nor ``--tmpfs``) covers. Sorted by depth, so ``/a`` is mounted before ``/a/b``."""
    own = [parse_volume_flag(v) for v in volume] + [parse_mount_flag(m) for m in mount]
    check_duplicates(own, tmpfs)
    for s in own:
        if s.type == "bind" and not os.path.exists(s.source):
            os.makedirs(s.source, exist_ok=True)  # docker's -v creates a missing host directory
        if s.type == "bind":
            s.source = os.path.realpath(s.source)
    taken = {s.target for s in own} | {posixpath.normpath(t.partition(":")[0]) for t in tmpfs}
    specs = own + [s for s in inherited if s.target not in taken]
    taken |= {s.target for s in inherited}
    for path in image_volumes or {}:
        target = posixpath.normpath(path)
        if target not in taken and target != "/":
            specs.append(MountSpec(new_volume_name(), target, type="volume", anonymous=True))
            taken.add(target)
    return sorted(specs, key=lambda s: (s.target.count("/"), s.target))


def inherit_mounts(specs: list[MountSpec], readonly: bool | None) -> list[MountSpec]:
    """``--volumes-from``: another container's binds and volumes (not its tmpfs), at the
    same paths, read-only or not as it had them unless ``:ro``/``:rw`` says otherwise."""
    return [
        replace(s, readonly=s.readonly if readonly is None else readonly, anonymous=False)
        for s in specs
        if s.type != "tmpfs"
    ]
