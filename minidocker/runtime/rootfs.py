"""The container's filesystem: an overlay of the image's layers, then pivot_root into it.

Runs in the container's first process, inside its new mount namespace, as root. In order::

    make_mounts_private   mount --make-rprivate /      (our mounts must not leak to the host)
    mount_overlay         lowerdir=layers (top first), upperdir=upper, workdir=work -> merged
                          (an OCI bundle's rootfs directory instead: bind_bundle_root)
    mount_volumes         -v, --mount: binds of host paths and of volumes (an empty volume
                          first filled from the image: copy_up), tmpfs mounts
    mount_proc            /proc of the new PID namespace
    mount_dev             a tmpfs /dev with a few device nodes, /dev/pts, /dev/shm, /dev/mqueue
    make_devices          --device: the nodes asked for, as the host has them
    mount_sys             /sys, read-only
    mount_cgroups         an OCI bundle's /sys/fs/cgroup: the container's own cgroups, bound
    (--userns=auto: the overlay's layers are idmapped mounts, or shifted copies, first)
    mount_etc_files       /etc/hostname, /etc/hosts, /etc/resolv.conf bound from the container dir
    pivot_root            merged becomes /, the host's root is unmounted from our view
    mask_paths            /proc/kcore, /proc/keys, ... hidden; /proc/sys & co. read-only

Each is a ``@step`` (steps.py): a failure is named after it, ``--explain`` shows how long
it took, and ``run --pause-at pivot_root`` stops the container just before it.

Because every mount is made inside the container's own mount namespace, the kernel removes
them all when the namespace's last process exits: nothing to clean up on the host.

See it: ``minidocker run --rm busybox cat /proc/self/mountinfo``.
"""

from __future__ import annotations

import os
import stat

from minidocker.linux import procfs
from minidocker.linux import syscalls as sc
from minidocker.record import field, record
from minidocker.runtime.steps import step

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


@record
class Volume:
    """One mount of ``mount_volumes``, decided by the parent (runtime/volumes.py)."""

    source: str  # a host path to bind, or a file system's "device" (tmpfs)
    target: str  # inside the container
    readonly: bool = False
    fstype: str | None = None  # None: a bind mount of ``source``
    data: str | None = None  # the file system's mount options
    propagation: str = ""  # a bind's: rprivate (left as the namespace made it), shared, slave, ...
    copy_up: bool = False  # an empty ``source`` first gets the image's files at ``target``
    owner: tuple[int, int] | None = None  # --userns=auto: an empty volume goes to the container's root
    flags: int | None = None  # an OCI bundle's options as MS_* bits (None: nosuid,nodev and ``readonly``)
    recursive: bool = True  # a bind's submounts come along (rbind); an OCI "bind" alone: False


DEFAULT_SHM_SIZE = 64 << 20  # /dev/shm's size unless --shm-size says (docker's default, 64 MB)


@record
class RootfsPlan:
    """Everything ``prepare_rootfs`` needs, decided by the parent before fork."""

    lowerdirs: list[str]  # top layer first
    upper: str
    work: str
    merged: str
    etc_files: dict[str, str] = field(default_factory=dict)  # /etc/hosts -> host file
    volumes: list[Volume] = field(default_factory=list)
    readonly: bool = False
    tmpfs: list[str] = field(default_factory=list)  # PATH[:mount options]
    privileged: bool = False
    idmap: dict[str, int] | None = None  # --userns=auto: {"uid", "gid", "size"}
    layer_views: list[str] = field(default_factory=list)  # --userns=auto: where each layer is shown idmapped
    shm_size: int = DEFAULT_SHM_SIZE  # --shm-size: the bytes /dev/shm holds
    shm: str = ""  # --ipc: "" a tmpfs of our own at /dev/shm, "none" no /dev/shm, else a host path bound there
    devices: list[dict] = field(default_factory=list)  # --device: the nodes to make (runtime/devices.py)
    bundle_root: bool = False  # an OCI bundle's rootfs: ``merged`` is the root itself, no overlay (oci/)
    masked: list[str] | None = None  # the paths mask_paths hides (None: docker's, procfs.MASKED_PATHS)
    readonly_paths: list[str] | None = None  # the paths readonly_paths binds read-only (None: docker's)
    root_propagation: str = ""  # an OCI bundle's linux.rootfsPropagation ("": rprivate)
    cgroup_binds: dict[str, str] = field(default_factory=dict)  # a bundle's /sys/fs/cgroup: controller -> host dir
    cgroup_readonly: bool = True
    before_pivot: Callable[[], None] | None = None  # OCI hooks: mounts made, host in sight
    in_host_mount_ns: bool = False  # a bundle without a mount namespace: our mounts are the host's; chroot


@step
def make_mounts_private(slave: bool = False) -> None:
    """Stop mount events propagating between our namespace and the host's (both ways); an
    OCI bundle's rslave root only from ours to the host's."""
    sc.mount(None, "/", None, sc.MS_REC | (sc.MS_SLAVE if slave else sc.MS_PRIVATE))


@step
def mount_overlay(plan: RootfsPlan) -> None:
    """overlayfs: reads fall through upper to the lowerdirs; writes copy up into upper."""
    # The option string is limited to one page: name the layers relative to their common
    # directory (we chdir there) so that images with many layers still fit.
    common = os.path.commonpath(plan.lowerdirs) if len(plan.lowerdirs) > 1 else None
    if common:
        os.chdir(common)
        lower = ":".join(os.path.relpath(p, common) for p in plan.lowerdirs)
    else:
        lower = ":".join(plan.lowerdirs)
    opts = f"lowerdir={lower},upperdir={plan.upper},workdir={plan.work}"
    sc.mount("overlay", plan.merged, "overlay", 0, opts)
    os.chdir("/")


def _target(merged: str, path: str) -> str:
    """``path`` inside the rootfs, refusing a symlink that would lead out of it."""
    parts = [p for p in path.split("/") if p and p != "."]
    current = merged
    for p in parts:
        if p == "..":
            raise OSError(1, f"mount target {path} climbs out of the container", path)
        nxt = os.path.join(current, p)
        if os.path.islink(nxt):
            link = os.readlink(nxt)
            # resolve the link inside the container's root, not the host's
            rest = parts[parts.index(p) + 1 :]
            base = merged if link.startswith("/") else current
            return _target(merged, os.path.relpath(os.path.join(base, link, *rest), merged))
        current = nxt
    return current


def _ensure_mountpoint(target: str, is_dir: bool) -> None:
    if os.path.lexists(target):
        return
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()


def bind(source: str, target: str, readonly: bool = False, recursive: bool = True) -> None:
    sc.mount(source, target, None, sc.MS_BIND | (sc.MS_REC if recursive else 0))
    if readonly:  # a bind mount's flags change only with a second, remount call
        # ... which must keep nosuid/nodev/noexec where they are set: in a user namespace
        # the kernel refuses to clear them (EPERM). statvfs's ST_* bits equal the MS_* ones.
        kept = os.statvfs(target).f_flag & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
        sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | kept)


PROPAGATION_FLAGS = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}


@step
def mount_volumes(plan: RootfsPlan) -> None:
    """Each volume, bind and tmpfs mount, shallowest path first (``/a`` before ``/a/b``)."""
    for v in plan.volumes:
        target = _target(plan.merged, v.target)
        if v.owner is not None and not os.listdir(v.source):
            own_volume(v.source, v.owner)
        if v.copy_up:
            copy_up(target, v.source)
        if v.fstype is not None:
            _ensure_mountpoint(target, True)
            flags = sc.MS_NOSUID | sc.MS_NODEV | (sc.MS_RDONLY if v.readonly else 0) if v.flags is None else v.flags
            sc.mount(v.source, target, v.fstype, flags, v.data)
        else:
            _ensure_mountpoint(target, os.path.isdir(v.source))
            bind(v.source, target, v.readonly and v.flags is None, v.recursive)
            if v.flags:  # (a bind's flags change only with a remount)
                kept = os.statvfs(target).f_flag & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
                sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | v.flags | kept)
        if v.propagation and v.propagation != "rprivate":  # (rprivate: as make_mounts_private left it)
            sc.mount(None, target, None, PROPAGATION_FLAGS[v.propagation])


@step
def mount_bundle_mounts(plan: RootfsPlan) -> None:
    """An OCI bundle's mounts (``plan.volumes``), in its order and after the runtime's own,
    as the runtime spec orders them (so /dev/... may be among them)."""
    mount_volumes(plan)


def own_volume(path: str, owner: tuple[int, int]) -> None:
    """--userns=auto: an empty volume goes to the container's root (its host uid and gid), as
    the upper dir does, so that root inside may write to it (copy_up may then set another)."""
    from minidocker.linux.events import emit

    os.chown(path, *owner)
    emit("volume_owner", path=path, uid=owner[0], gid=owner[1])


def copy_up(image_path: str, volume: str) -> None:
    """docker's copy of an image's files into a volume: when the volume is empty and the
    image has a directory at the mount point, its contents go into the volume with their
    owners, modes, times, symlinks and xattrs (``cp -a``), and the volume's root takes the
    directory's owner and mode. (Read through the overlay, which copies nothing up: the
    container's upper dir stays as it was.)"""
    import subprocess

    from minidocker.linux.events import emit

    if os.listdir(volume) or not os.path.isdir(image_path) or os.path.islink(image_path):
        return
    subprocess.run(["cp", "-a", "--", f"{image_path}/.", volume], check=True)
    emit("copy_up", source=image_path, target=volume)


@step
def mount_tmpfs(plan: RootfsPlan) -> None:
    """--tmpfs PATH[:OPTS]: a fresh in-memory filesystem (writable even with --read-only)."""
    for spec in plan.tmpfs:
        path, _, opts = spec.partition(":")
        target = _target(plan.merged, path)
        _ensure_mountpoint(target, True)
        sc.mount("tmpfs", target, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, opts or "mode=1777")


@step
def mount_proc(merged: str) -> None:
    """A procfs shows the PID namespace of the process that mounts it: ours."""
    target = _target(merged, "/proc")
    _ensure_mountpoint(target, True)
    sc.mount("proc", target, "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


DEVICES = {  # name: (major, minor), what every container gets (Docker's default list)
    "null": (1, 3),
    "zero": (1, 5),
    "full": (1, 7),
    "random": (1, 8),
    "urandom": (1, 9),
    "tty": (5, 0),
}


@step
def mount_dev(merged: str, in_userns: bool = False, shm_size: int = DEFAULT_SHM_SIZE, shm: str = "") -> None:
    dev = _target(merged, "/dev")
    _ensure_mountpoint(dev, True)
    sc.mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k")
    for name, (major, minor) in DEVICES.items():
        if in_userns:  # no mknod in a user namespace (and its tmpfs is nodev): bind the host's node
            open(f"{dev}/{name}", "a").close()
            bind(f"/dev/{name}", f"{dev}/{name}", recursive=False)
            continue
        sc.mknod(f"{dev}/{name}", 0o666 | stat.S_IFCHR, major, minor)
        os.chmod(f"{dev}/{name}", 0o666)  # mknod obeys the umask; the mode must be exact
    os.makedirs(f"{dev}/pts")
    # newinstance: the container's own pty numbering, invisible from the host and vice versa
    sc.mount("devpts", f"{dev}/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    mount_shm(dev, shm_size, shm)
    os.makedirs(f"{dev}/mqueue")
    sc.mount("mqueue", f"{dev}/mqueue", "mqueue", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    for name, target in procfs.DEV_LINKS.items():  # fd, stdin, stdout, stderr
        os.symlink(target, f"{dev}/{name}")
    if os.path.exists(procfs.KCORE):
        os.symlink(procfs.KCORE, f"{dev}/core")


def mount_shm(dev: str, size: int, source: str = "") -> None:
    """/dev/shm, where POSIX shared memory (shm_open) lives: a tmpfs of the container's own;
    with ``--ipc host`` or ``container:X`` the host's or X's bound instead (``source``),
    shared as the IPC namespace is; ``--ipc none``: no /dev/shm at all."""
    if source == "none":
        return
    os.makedirs(f"{dev}/shm")
    if source:
        bind(source, f"{dev}/shm")
        return
    sc.mount("shm", f"{dev}/shm", "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, f"mode=1777,size={size}")


@step
def make_devices(merged: str, nodes: list[dict], in_userns: bool = False) -> None:
    """``--device``: mknod(2) each node into the container's tree (before pivot_root) with
    the host node's type, numbers, mode and owner (runtime/devices.py read them). In a user
    namespace mknod is refused: the host's node is bound onto an empty file instead."""
    for node in nodes:
        target = _target(merged, node["path"])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target):
            os.unlink(target)
        if in_userns:
            open(target, "a").close()
            bind(node["host"], target, recursive=False)
            continue
        sc.mknod(target, node["mode"], node["major"], node["minor"])
        os.chmod(target, stat.S_IMODE(node["mode"]))  # mknod obeys the umask: the mode must be exact
        os.chown(target, node["uid"], node["gid"])


@step
def mount_sys(merged: str, writable: bool = False) -> None:
    target = _target(merged, "/sys")
    _ensure_mountpoint(target, True)
    sc.mount("sysfs", target, "sysfs", (0 if writable else sc.MS_RDONLY) | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


@step
def mount_cgroups(plan: RootfsPlan) -> None:
    """An OCI bundle's /sys/fs/cgroup, as runc makes it: the container's own cgroup of each
    hierarchy bound there (v1: on a tmpfs, one directory per controller; v2: the one
    directory itself), never the host's tree above it. The parent made the cgroup before fork."""
    from minidocker.linux.cgroups import CGROUP_ROOT

    target = _target(plan.merged, CGROUP_ROOT)
    _ensure_mountpoint(target, True)
    if "unified" in plan.cgroup_binds:
        bind(plan.cgroup_binds["unified"], target, plan.cgroup_readonly)
        return
    flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    sc.mount("tmpfs", target, "tmpfs", flags, "mode=755")
    for controller, source in plan.cgroup_binds.items():
        os.mkdir(os.path.join(target, controller))
        bind(source, os.path.join(target, controller), plan.cgroup_readonly)
    if plan.cgroup_readonly:
        sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | flags)


@step
def mount_etc_files(plan: RootfsPlan) -> None:
    for path, source in plan.etc_files.items():
        target = _target(plan.merged, path)
        _ensure_mountpoint(target, False)
        bind(source, target)


@step
def pivot_root(merged: str, propagation: str = "") -> None:
    """Make ``merged`` the root. pivot_root needs new_root to be a mount point (the overlay
    is), and ``pivot_root(".", ".")`` stacks the old root on the new one, so one lazy
    unmount of "." removes the host's filesystem from our view."""
    os.chdir(merged)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")
    if propagation in ("shared", "rshared"):  # (only now: pivot_root refuses a shared new root as its put_old)
        sc.mount(None, "/", None, sc.MS_SHARED | (sc.MS_REC if propagation == "rshared" else 0))


@step
def bind_bundle_root(plan: RootfsPlan) -> None:
    """An OCI bundle's rootfs is a plain directory: bound onto itself, it becomes the mount
    point pivot_root needs (the overlay is one already). Its linux.rootfsPropagation:
    unbindable refuses binds of it; slave was make_mounts_private's; shared (pivot_root's)
    makes the root a peer group of the container's own: binds of / inside see later mounts,
    the host's mounts stay apart."""
    bind(plan.merged, plan.merged)
    if plan.in_host_mount_ns:  # the host's root is shared: our mounts below stay out of its peers
        sc.mount(None, plan.merged, None, sc.MS_PRIVATE)
    set_root_propagation(plan)


def set_root_propagation(plan: RootfsPlan) -> None:
    if plan.root_propagation in ("unbindable", "runbindable"):
        sc.mount(None, plan.merged, None, sc.MS_UNBINDABLE | (sc.MS_REC if plan.root_propagation[0] == "r" else 0))


@step
def change_root(merged: str) -> None:
    """A bundle that shares our mount namespace (it lists none): chroot(2), as runc does,
    not pivot_root, which would move the root of every process of the host's namespace.
    chroot is no wall against root (a second chroot climbs out), and ``delete`` detaches
    the mounts we made below the bundle's rootfs in the host's namespace."""
    os.chdir(merged)
    sc.chroot(".")
    os.chdir("/")


@step
def mask_paths(paths: list[str] | tuple[str, ...] = procfs.MASKED_PATHS) -> None:
    """Docker's masked parts of /proc and /sys (procfs.MASKED_PATHS, or a bundle's
    maskedPaths): files get /dev/null bound over them; directories an empty read-only tmpfs."""
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, "size=0")
        elif os.path.exists(path):
            sc.mount("/dev/null", path, None, sc.MS_BIND)


@step
def readonly_paths(paths: list[str] | tuple[str, ...] = procfs.READONLY_PATHS) -> None:
    """Docker's read-only parts of /proc (procfs.READONLY_PATHS, or a bundle's readonlyPaths):
    bind each on itself, then remount the bind read-only: writes get EROFS."""
    for path in paths:
        if os.path.exists(path):
            bind(path, path, readonly=True)


@step
def remount_root_readonly() -> None:
    sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


# -- --userns=auto: the image's files shown through the user namespace ---------------------


def mount_idmapped_layers(plan: RootfsPlan, userns_fd: int) -> None:
    """Each layer, bind-mounted idmapped at its ``layer_views`` entry; the overlay then
    stacks those views instead of the layers themselves (runs as host root)."""
    from minidocker.linux.userns import idmapped_mount

    for layer, view in zip(plan.lowerdirs, plan.layer_views):
        idmapped_mount(layer, view, userns_fd)
    plan.lowerdirs = list(plan.layer_views)


def copy_layers_shifted(plan: RootfsPlan) -> None:
    """The fallback where the kernel has no idmapped mounts: copy every layer, adding the
    container's first host ID to each owner (``cp -a``, then lchown). Slow for big images,
    but what the container sees is the same. The copies go when the container is removed."""
    import subprocess

    from minidocker.linux.events import emit

    assert plan.idmap is not None  # layers are shifted only for --userns=auto, which sets the idmap
    shift_uid, shift_gid = plan.idmap["uid"], plan.idmap["gid"]
    for layer, view in zip(plan.lowerdirs, plan.layer_views):
        subprocess.run(["cp", "-a", "--", f"{layer}/.", view], check=True)

        def shift(path: str) -> None:
            st = os.lstat(path)
            os.lchown(path, st.st_uid + shift_uid, st.st_gid + shift_gid)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(path, stat.S_IMODE(st.st_mode))  # chown cleared setuid/setgid bits

        shift(view)
        for dirpath, dirnames, filenames in os.walk(view):
            for name in dirnames + filenames:
                shift(os.path.join(dirpath, name))
        emit("chown_copy", source=layer, target=view, shift=shift_uid)
    plan.lowerdirs = list(plan.layer_views)


def prepare_rootfs(plan: RootfsPlan, in_userns: bool = False) -> None:
    """The whole filesystem setup, as a table of contents.

    With ``in_userns`` the overlay is already mounted (by our parent, as host root, before
    it joined the user namespace); we bind it onto itself so that pivot_root gets a mount
    of our own namespace (mounts copied from the host's are locked to us)."""
    if not plan.in_host_mount_ns:  # (the host's propagation is not ours to change)
        make_mounts_private(slave=plan.root_propagation in ("slave", "rslave"))
    if in_userns:
        # Our cwd is the overlay: our parent went there as host root. The path to it is not
        # searchable by our host uid (the store root is 0700, root's alone), but the
        # container's own directory is (0710, its group is our gid: ContainerStore.create).
        # The kernel checks search permission only on the directories a path walks through,
        # from the cwd on: "../merged" walks the overlay and the container's directory, so
        # from here on every path is relative to it.
        bind(".", ".")
        os.chdir(os.path.join("..", os.path.basename(plan.merged)))  # onto the bind, on top
        plan.merged = "."
        plan.etc_files = {path: os.path.join("..", os.path.basename(source)) for path, source in plan.etc_files.items()}
        if plan.bundle_root:
            set_root_propagation(plan)
    else:
        if plan.bundle_root:
            bind_bundle_root(plan)
        else:
            mount_overlay(plan)
            mount_volumes(plan)  # (in a user namespace, our parent bound them as host root already)
    mount_tmpfs(plan)
    mount_proc(plan.merged)
    mount_dev(plan.merged, in_userns, plan.shm_size, plan.shm)
    if plan.devices:
        make_devices(plan.merged, plan.devices, in_userns)
    mount_sys(plan.merged, writable=plan.privileged)
    if plan.cgroup_binds:
        mount_cgroups(plan)
    if plan.bundle_root:
        mount_bundle_mounts(plan)
    mount_etc_files(plan)
    if plan.before_pivot is not None:
        plan.before_pivot()
    if plan.in_host_mount_ns:
        change_root(plan.merged)
        return  # (bundle.py refused masked, read-only paths and a read-only root)
    pivot_root(plan.merged, plan.root_propagation)
    if not plan.privileged:
        mask_paths(procfs.MASKED_PATHS if plan.masked is None else plan.masked)
        readonly_paths(procfs.READONLY_PATHS if plan.readonly_paths is None else plan.readonly_paths)
    if plan.readonly:
        remount_root_readonly()
