"""The kernel's files under /proc and /sys that minidocker reads or names.

Every process has a directory ``/proc/PID``; ``status`` holds its parent (``PPid:``) and its
user IDs (``Uid:`` real, effective, saved, filesystem), ``stat`` the same facts on one line
for programs (``PID (COMM) STATE PPID ...``, its start time in field 22), ``exe`` is a link
to the binary it executes, ``cmdline`` its arguments (NUL separated), ``ns/*`` one file per
namespace it is in (open one and setns(2) joins it), ``fd/`` one link per open file
descriptor. The kernel lets root read these for any process, except where the process made
itself non-dumpable
(``prctl(PR_SET_DUMPABLE, 0)``), which hides ``exe``, ``environ`` and ``mem`` from anyone
without CAP_SYS_PTRACE over it (proc(5), ptrace(2) "Ptrace access mode checking").

Some of these files tell a container about the host (``/proc/kcore`` is the host's memory,
``/proc/sysrq-trigger`` can reboot it): ``MASKED_PATHS`` and ``READONLY_PATHS`` name the
ones a container must not see or must not write, as Docker names them.

See it: ``grep PPid /proc/self/status; readlink /proc/self/exe; tr '\\0' ' ' < /proc/self/cmdline;
ls -l /proc/self/ns /proc/self/fd``.
"""

from __future__ import annotations

import os
from collections import namedtuple
from pathlib import Path


def parent_pid(pid: int) -> int | None:
    """The ``PPid:`` line of /proc/PID/status (None if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


def exe_path(pid: int) -> str | None:
    """Where /proc/PID/exe points (None if gone or not readable)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


class Process(namedtuple("Process", "pid ppid uid command")):
    """One line of ``ps -o uid,pid,ppid,args``: what ``top`` shows of a process: ``pid``,
    ``ppid``, ``uid`` (the real user ID, the first of status's four Uid: fields) and
    ``command``. (collections.namedtuple, not typing.NamedTuple: typing is not imported on a
    container start's path.)"""

    __slots__ = ()


def read_process(pid: int) -> Process | None:
    """The parent, real user and command line of a process (None if it is gone meanwhile).

    ``stat`` is ``PID (COMM) STATE PPID ...``: COMM may hold spaces and parentheses, so the
    fields are counted from the last ``)``. A kernel thread and a zombie have an empty
    cmdline; ``ps`` shows their COMM instead, and so does this."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        args = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    uid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:")), None)
    if uid is None:
        return None
    ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    return Process(pid, ppid, uid, args.replace(b"\0", b" ").decode(errors="replace").strip() or comm)


def process_state(pid: int) -> str | None:
    """Field 3 of /proc/PID/stat, ps's STAT letter: R running, S sleeping, T stopped (by a
    signal), Z zombie, ... (None if the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2 :].split()[0].decode()  # (fields counted from the last ')')


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot
    (None if it is gone or a zombie). With the PID it names one process for good: a PID
    is reused once the process is gone (pid_max is small), a (PID, start time) pair never."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    rest = data[data.rindex(b")") + 2 :].split()
    if rest[0] == b"Z":
        return None  # a zombie has finished
    return int(rest[19])


def boot_id() -> str:
    """/proc/sys/kernel/random/boot_id: a new random ID at every boot, so a record from
    before a reboot describes no process ("" if unreadable)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def open_namespace(pid: int | str, kind: str) -> int:
    """An fd of /proc/PID/ns/KIND (``pid`` may be "self"): what setns(2) takes to join that
    namespace. While the fd is open the namespace lives on, even with no process in it."""
    return os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)


def open_root(pid: int) -> int:
    """An O_PATH fd of /proc/PID/root, the process's root directory (its chroot, if any):
    fchdir(2) there and chroot(".") puts another process in the same root."""
    return os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def namespace_of(pid: int | str, kind: str) -> str:
    """Which namespace of ``kind`` the process is in: readlink(/proc/PID/ns/KIND), such as
    ``ipc:[4026531839]`` (two processes share the namespace iff the links are equal)."""
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def write_sysctl(key: str, value: str) -> None:
    """A sysctl (sysctl(8)'s ``net.ipv4.ip_forward``) into /proc/sys/net/ipv4/ip_forward.
    Namespaced ones (net.*, the IPC limits) reach the namespaces of the writing process."""
    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
        f.write(value)


def host_pid() -> int:
    """Our PID as the /proc mounted at /proc sees it: in a new PID namespace, before its own
    /proc is mounted there, the host's (readlink /proc/self)."""
    return int(os.readlink("/proc/self"))


def top_mount_id(path: str) -> int | None:
    """The ID of the mount on top at ``path`` in our mount namespace (the last line of
    /proc/self/mountinfo with that mount point), or None when none is mounted there. The
    file's paths escape space, tab, newline and backslash as octal (``\\040``)."""
    import re

    path = os.path.realpath(path)
    top = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ", 5)
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            if point == path:
                top = int(fields[0])
    return top


def fd_path(fd: int, name: str) -> str:
    """``name`` inside the directory open as ``fd``, through /proc/self/fd: a short path to a
    file however deep it lies (a unix socket's path must fit in 108 bytes)."""
    return f"/proc/self/fd/{fd}/{name}"


def open_fds() -> list[int]:
    """This process's open file descriptors: the names in /proc/self/fd. (One of them is the
    fd that listed the directory, closed again by the time the list is returned.)"""
    return [int(name) for name in os.listdir("/proc/self/fd")]


# /dev's links into procfs, as every container has them: /dev/fd is the process's own fd
# directory, /dev/stdin its fd 0, and so on.
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}
KCORE = "/proc/kcore"  # the host's physical memory as an ELF core file (/dev/core links to it)

# Docker's defaults: hidden (an empty file or dir over them) and read-only parts of /proc, /sys.
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def namespace_type(path: str) -> int:
    """The CLONE_NEW* type of the namespace file at ``path`` (/proc/PID/ns/KIND, or a bind
    of one such as ``ip netns``' /run/netns/NAME): ioctl NS_GET_NSTYPE; -1 if it is none."""
    import fcntl

    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fcntl.ioctl(fd, 0xB703)  # NS_GET_NSTYPE
    except OSError:
        return -1
    finally:
        os.close(fd)


def set_oom_score_adj(pid: int, value: int) -> None:
    """/proc/PID/oom_score_adj: how readily the OOM killer picks the process (-1000..1000),
    inherited across fork and execve."""
    with open(f"/proc/{pid}/oom_score_adj", "w") as f:
        f.write(str(value))
