"""The system calls Python 3.11's ``os`` module lacks, wrapped with ctypes; and the ones it
has that make a container (credentials, device nodes, chroot, sessions, an interface's flags).

Each wrapper has the syscall's own name and argument order, raises ``OSError`` (with errno
and the path) on failure, and emits one ``--explain`` event where ``run --explain`` tells
the step. See the man page named in each docstring for the kernel's rules.

Try it: ``unshare --uts --fork sh -c 'hostname box; hostname'; hostname`` shows what
``unshare(CLONE_NEWUTS)`` + ``sethostname`` do.
"""

from __future__ import annotations

import _socket  # the C module under socket.py: its import costs a tenth (no selectors, no enums)
import ctypes
import fcntl
import os
import struct

from minidocker.linux.events import emit

# The C library is already loaded into Python: CDLL(None) finds its symbols without a search
# (ctypes.util.find_library would run ldconfig, a subprocess, on every start).
_libc = ctypes.CDLL(None, use_errno=True)

# Namespace flags, from <linux/sched.h>.
CLONE_NEWNS = 0x00020000  # mount
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000  # hostname
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mnt": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET,
    "cgroup": CLONE_NEWCGROUP,
    "user": CLONE_NEWUSER,
}

# mount(2) flags, from <sys/mount.h>.
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2  # umount2(2): lazy unmount

# glibc has no pivot_root() wrapper: call it by number (asm/unistd_64.h, asm-generic/unistd.h).
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}.get(
    os.uname().machine, 155
)


def flag_names(flags: int, table: dict[str, int]) -> list[str]:
    return [name for name, bit in table.items() if flags & bit]


def _check(ret: int, what: str, path: str | None = None) -> None:
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def unshare(flags: int) -> None:
    """unshare(2): move this process into new namespaces of the kinds in ``flags``.

    A new PID namespace applies to the *children* created afterwards, not to the caller:
    hence unshare, then fork, and the child is PID 1.
    """
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")
    emit("unshare", flags=flag_names(flags, NAMESPACE_FLAGS))


def setns(fd: int, nstype: int = 0, why: str | None = None) -> None:
    """setns(2): join the namespace that ``fd`` (an open /proc/PID/ns/* file) refers to.
    For a PID namespace, only the caller's future children go there."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")
    emit("setns", nstype=flag_names(nstype, NAMESPACE_FLAGS) or ["any"], why=why)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    """mount(2). With MS_BIND, ``source`` appears at ``target``; with MS_PRIVATE & co. only
    the propagation of ``target`` changes; with MS_REMOUNT|MS_BIND, flags of a bind change."""
    enc = lambda s: s.encode() if s is not None else None
    _check(
        _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
        f"mount {fstype or source or ''} on {target}".strip(),
        target,
    )
    emit("mount", source=source, target=target, fstype=fstype, flags=flags, data=data)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2); MNT_DETACH detaches now and frees when the last user goes."""
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}", target)
    emit("umount2", target=target, flags=flags)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make ``new_root`` the root of this mount namespace and move the old root
    to ``put_old``. The kernel's preconditions: new_root is a mount point (bind it on itself),
    neither it nor its parent mount has shared propagation, put_old is at or under new_root.
    ``pivot_root(".", ".")`` is valid: the old root is stacked on top of the new one at "/",
    and ``umount2("/", MNT_DETACH)`` then peels it off, with no put_old directory needed."""
    _check(_libc.syscall(ctypes.c_long(SYS_PIVOT_ROOT), new_root.encode(), put_old.encode()), "pivot_root", new_root)
    emit("pivot_root", new_root=new_root, put_old=put_old)


SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writing the range's dirty pages out, do not wait
_libc.sync_file_range.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)  # off64_t


def sync_file_range(fd: int, offset: int, nbytes: int, flags: int = SYNC_FILE_RANGE_WRITE) -> None:
    """sync_file_range(2): with SYNC_FILE_RANGE_WRITE, ask the kernel to start writing the
    dirty pages of ``nbytes`` bytes from ``offset`` (0, 0: the whole file) to disk, and go
    on at once: not an fsync (no waiting, no metadata), only an earlier start."""
    _check(_libc.sync_file_range(fd, offset, nbytes, flags), "sync_file_range")


def sethostname(name: str) -> None:
    """sethostname(2): changes the hostname of the caller's UTS namespace only."""
    data = name.encode()
    _check(_libc.sethostname(data, ctypes.c_size_t(len(data))), "sethostname")
    emit("sethostname", hostname=name)


PR_SET_PDEATHSIG = 1


def set_pdeathsig(sig: int) -> None:
    """prctl(PR_SET_PDEATHSIG): the kernel sends ``sig`` to us when our parent dies, so a
    container never outlives the process that watches it."""
    _check(_libc.prctl(ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(sig), 0, 0, 0), "prctl")


PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper() -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): an orphaned descendant of ours is reparented to us,
    not to init, so that we can wait for it (minidocker-runc exec: its helper's child)."""
    _check(_libc.prctl(ctypes.c_int(PR_SET_CHILD_SUBREAPER), ctypes.c_ulong(1), 0, 0, 0), "prctl")


PR_SET_DUMPABLE = 4


def set_dumpable(dumpable: bool) -> None:
    """prctl(PR_SET_DUMPABLE): a non-dumpable process's /proc/PID/exe, environ, mem and fd/
    can be opened only by a process with CAP_SYS_PTRACE over it (ptrace(2), "access mode
    checking"). A host process that joins a container (its init before execve, exec's
    helper) makes itself non-dumpable first, so the container's root, which lacks
    CAP_SYS_PTRACE, cannot open the host's binary through /proc/PID/exe and overwrite it
    (CVE-2019-5736). execve(2) makes the process dumpable again for the container's own
    binary. See it: ``grep -i dump /proc/self/status`` is not there; ``ls -l /proc/PID/exe``
    of such a process says "Permission denied" inside the container."""
    _check(_libc.prctl(ctypes.c_int(PR_SET_DUMPABLE), ctypes.c_ulong(int(dumpable)), 0, 0, 0), "prctl")
    emit("prctl", option="PR_SET_DUMPABLE", value=int(dumpable))


def open_namespace_fds(pid: int, kinds: list[str]) -> list[tuple[str, int]]:
    """Open /proc/PID/ns/<kind> for each kind (before joining any: /proc changes as we go)."""
    out = []
    for kind in kinds:
        try:
            out.append((kind, os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)))
        except FileNotFoundError:
            continue
    return out


PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
BPF_INSTRUCTION_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k


class _SockFprog(ctypes.Structure):
    """struct sock_fprog from <linux/filter.h>: how many instructions, and where they are."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def set_seccomp_filter(program: bytes) -> None:
    """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), see seccomp(2).

    ``program`` is a classic BPF program, an array of 8-byte ``struct sock_filter``
    instructions, that the kernel runs on every later system call of this thread and of its
    children. The kernel takes it only from a process that set no_new_privs (or holds
    CAP_SYS_ADMIN), and it can never be removed: filters only stack up.
    """
    if not program or len(program) % BPF_INSTRUCTION_SIZE:
        raise OSError(22, "a BPF program is a non-empty array of 8-byte instructions")
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // BPF_INSTRUCTION_SIZE, ctypes.cast(buf, ctypes.c_void_p))
    _check(
        _libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog), 0, 0),
        "prctl(PR_SET_SECCOMP)",
    )


# The new mount API (Linux 5.2+, mount_setattr 5.12+): numbers shared by every architecture.
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
OPEN_TREE_CLONE = 1
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(ctypes.Structure):
    """struct mount_attr from <linux/mount.h>."""

    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def open_tree(path: str, flags: int = OPEN_TREE_CLONE | os.O_CLOEXEC) -> int:
    """open_tree(2) with OPEN_TREE_CLONE: a *detached* copy of the mount at ``path`` (a bind
    mount that is not attached anywhere yet), returned as a file descriptor."""
    fd = _libc.syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(AT_FDCWD), os.fsencode(path), ctypes.c_uint(flags))
    _check(fd, "open_tree", path)
    return fd


def mount_setattr_idmap(fd: int, userns_fd: int) -> None:
    """mount_setattr(2) with MOUNT_ATTR_IDMAP: from now on, reads and writes through this
    (detached, not yet attached) mount translate owners through ``userns_fd``'s uid_map and
    gid_map: a file owned by 0 on disk shows as the user namespace's root. The filesystem
    must allow it (ext4, xfs, btrfs, tmpfs 6.3+) and the caller needs CAP_SYS_ADMIN."""
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    _check(
        _libc.syscall(
            ctypes.c_long(SYS_MOUNT_SETATTR),
            ctypes.c_int(fd),
            b"",
            ctypes.c_uint(AT_EMPTY_PATH),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        ),
        "mount_setattr",
    )


def move_mount(fd: int, target: str) -> None:
    """move_mount(2): attach the detached mount ``fd`` at ``target``."""
    _check(
        _libc.syscall(
            ctypes.c_long(SYS_MOVE_MOUNT),
            ctypes.c_int(fd),
            b"",
            ctypes.c_int(AT_FDCWD),
            os.fsencode(target),
            ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH),
        ),
        "move_mount",
        target,
    )


# -- credentials, device nodes, roots, sessions ----------------------------------------------
def set_credentials(uid: int, gid: int, groups: list[int]) -> None:
    """setgroups(2), setgid(2), setuid(2), in that order (credentials(7)): each needs
    CAP_SETGID or CAP_SETUID, and setuid to a user other than root clears every capability,
    so the groups and the gid must change first. As root, setuid sets the real, effective
    and saved user IDs all three: there is no way back to root."""
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
    emit("setuid", uid=uid, gid=gid, groups=groups)


def mknod(path: str, mode: int, major: int, minor: int) -> None:
    """mknod(2): a device node at ``path``; ``mode`` holds the kind (S_IFCHR, S_IFBLK) and
    the permissions, which the umask trims. Needs CAP_MKNOD, and a filesystem not mounted
    nodev for the node to be usable; never allowed in a user namespace."""
    os.mknod(path, mode, os.makedev(major, minor))


def chroot(path: str) -> None:
    """chroot(2): ``path`` becomes this process's root directory (paths starting with "/"
    and ".." at the root resolve there). Only the root changes, not the cwd: chdir("/")
    after it, or the old cwd is still a way out. Needs CAP_SYS_CHROOT."""
    os.chroot(path)
    emit("chroot", path=path)


def setsid() -> None:
    """setsid(2): a new session and process group, led by us, with no controlling terminal:
    the terminal's hangup and Ctrl-C no longer reach us. Fails (EPERM) for a process group
    leader, so a process forks first and its child calls it."""
    os.setsid()


# -- network devices: netdevice(7) ioctls on any socket -------------------------------------
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914  # <linux/sockios.h>
IFF_UP = 0x1  # <net/if.h>
_IFREQ_FLAGS = "16sH14x"  # struct ifreq: the interface's name, then ifr_flags (a short)


def set_link_up(name: str) -> None:
    """``ip link set NAME up``: ioctl(SIOCGIFFLAGS) reads the interface's flags and
    ioctl(SIOCSIFFLAGS) writes them back with IFF_UP (netdevice(7)); no netlink needed for
    this one. Any socket of the network namespace will do; SIOCSIFFLAGS needs CAP_NET_ADMIN."""
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack(_IFREQ_FLAGS, name.encode(), 0)
        flags = struct.unpack(_IFREQ_FLAGS, fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack(_IFREQ_FLAGS, name.encode(), flags | IFF_UP))
    finally:
        s.close()
    emit("link", name=name, state="up")
