"""The container's side: what its first process does between fork and execve.

The parent has already called ``unshare(CLONE_NEWPID)``, so this process is PID 1 of a new
PID namespace. It then runs, in order (``container_init`` reads as a table of contents)::

    hide_host_binary       non-dumpable until execve: the container cannot open our /proc/PID/exe
    enter_namespaces       unshare mount, UTS, IPC, network (unless --network host)
    set_hostname           in our own UTS namespace only
    bring_up_loopback      our network namespace starts with lo down
    load_security          import python-prctl while the host's files are still in sight
    prepare_rootfs         overlay, /proc, /dev, /sys, /etc files, pivot_root (rootfs.py)
    setup_stdio            a pty from the container's own /dev/pts for -t, /dev/null for no -i
    make_workdir           docker creates a missing WorkingDir
    wait_for_parent        meanwhile the parent made our cgroup and moved us in; now it says go
    enter_cgroup_namespace unshare the cgroup namespace: our cgroup becomes its root
    drop_capabilities      the bounding set shrinks to Docker's 14 (+ --cap-add, - --cap-drop)
    switch_user            setgroups, setgid, setuid: from the container's /etc/passwd
    limit_capabilities     permitted/effective/inheritable = the kept set; ambient cleared
    set_no_new_privs       no setuid binary can raise privileges again
    apply_seccomp          the syscall filter (Docker's default profile), compiled by the parent
    exec_command           execve, searching the container's PATH

A failure at any step is written to the error pipe (which ``execve`` closes, being
O_CLOEXEC) as one JSON line, and the process exits with docker's code for it: 127 when the
command is not found, 126 when it cannot be executed, 125 for any other step.

See it: ``minidocker run --rm --explain busybox true``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import struct
import termios
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from minidocker.linux import capabilities
from minidocker.linux import syscalls as sc
from minidocker.linux.events import emit
from minidocker.runtime import rootfs
from minidocker.runtime.spec import ContainerSpec
from minidocker.runtime.users import resolve_user

if TYPE_CHECKING:
    from minidocker.linux import seccomp

EXIT_STEP_FAILED = 125
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127


@dataclass
class InitPipes:
    sync_r: int  # the parent writes one byte when we may go on
    error_w: int  # O_CLOEXEC: closed by a successful execve
    console: int | None = None  # a unix socket to send the pty master over (-t)
    stdin: int | None = None  # fds to use as 0, 1, 2 (None: inherit)
    stdout: int | None = None
    stderr: int | None = None
    netns: int | None = None  # a network namespace the parent wired to a bridge (--network bridge)


class StepFailed(Exception):
    def __init__(self, step: str, message: str, code: int = EXIT_STEP_FAILED):
        super().__init__(message)
        self.step, self.message, self.code = step, message, code


def wait_for_parent(pipes: InitPipes) -> None:
    if os.read(pipes.sync_r, 1) != b"1":
        raise StepFailed("wait_for_parent", "the parent went away before the container started")
    os.close(pipes.sync_r)


def hide_host_binary() -> None:
    """Until execve this process runs the host's Python. Inside the container's PID namespace
    anyone could otherwise open /proc/<us>/exe, the host's interpreter, and write to it once
    it is not busy (CVE-2019-5736's shape). Non-dumpable, our /proc entries admit only a
    process with CAP_SYS_PTRACE over us, which the container's processes lack; execve of the
    container's command makes the new program dumpable again."""
    sc.set_dumpable(False)


def enter_namespaces(spec: ContainerSpec, netns: int | None = None) -> None:
    flags = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC
    if spec.network != "host" and netns is None:
        flags |= sc.CLONE_NEWNET
    sc.unshare(flags)
    if netns is not None:  # a bridge network: the parent made and wired our network namespace
        sc.setns(netns, sc.CLONE_NEWNET, why="the network namespace with eth0 on the bridge")
        os.close(netns)


def enter_cgroup_namespace(spec: ContainerSpec) -> None:
    """A cgroup namespace's root is the cgroup its creator is in *at unshare time*: so only
    once the parent has moved us into our own cgroup. /proc/self/cgroup then shows ``/``."""
    sc.unshare(sc.CLONE_NEWCGROUP)


def set_hostname(spec: ContainerSpec) -> None:
    if spec.network != "host" or spec.hostname:
        sc.sethostname(spec.hostname)


def bring_up_loopback(spec: ContainerSpec) -> None:
    """``ip link set lo up``, with the SIOCSIFFLAGS ioctl (no netlink needed for this one)."""
    if spec.network == "host":
        return
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    emit("link", name="lo", state="up")


TIOCSPTLCK = 0x40045431  # <asm-generic/ioctls.h>: lock/unlock a pty's slave (unlockpt)
TIOCGPTN = 0x80045430  # get the pty number (ptsname)


def open_pty() -> tuple[int, int, str]:
    """A pty from the container's own devpts: open /dev/ptmx, unlock, open the slave."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
    n = struct.unpack("i", fcntl.ioctl(master, TIOCGPTN, struct.pack("i", 0)))[0]
    name = f"/dev/pts/{n}"
    slave = os.open(name, os.O_RDWR | os.O_NOCTTY)
    return master, slave, name


def setup_stdio(spec: ContainerSpec, pipes: InitPipes) -> None:
    if spec.tty:
        master, slave, name = open_pty()
        # hand the master to the parent (SCM_RIGHTS), which relays it to the user's terminal
        sock = socket.socket(fileno=pipes.console)
        socket.send_fds(sock, [b"pty"], [master])
        sock.close()
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)  # the slave becomes our controlling terminal
        if not os.path.exists("/dev/console"):
            open("/dev/console", "a").close()
        rootfs.bind(name, "/dev/console", recursive=False)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        if slave > 2:
            os.close(slave)
        emit("pty", path=name)
        return
    if pipes.stdout is not None:
        os.dup2(pipes.stdout, 1)
    if pipes.stderr is not None:
        os.dup2(pipes.stderr, 2)
    if spec.stdin_open and pipes.stdin is not None:
        os.dup2(pipes.stdin, 0)
    elif not spec.stdin_open:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def drop_capabilities(spec: ContainerSpec) -> None:
    """The bounding set first (needs CAP_SETPCAP, which root still has)."""
    if not spec.privileged:
        capabilities.drop_bounding_set(spec.capabilities)


def limit_capabilities(spec: ContainerSpec) -> None:
    """After setuid: root keeps exactly its set; a user's sets are already empty."""
    if os.getuid() == 0 and not spec.privileged:
        capabilities.limit_process_sets(spec.capabilities)


def set_no_new_privs(spec: ContainerSpec) -> None:
    if spec.no_new_privileges:
        capabilities.set_no_new_privs()


def load_security(spec: ContainerSpec) -> None:
    """Import what the capability steps need *before* pivot_root: afterwards the host's
    Python library is out of sight. (The seccomp program was compiled, or taken from the
    cache, by the parent: ``compile_security``.)"""
    capabilities.preload()


def compile_security(spec: ContainerSpec, cache_dir: Path | None) -> "seccomp.CompiledFilter | None":
    """Parent side, before fork: the container's seccomp program (None when unconfined)."""
    if spec.seccomp == "unconfined":
        return None
    from minidocker.linux import seccomp

    return seccomp.filter_for(None if spec.seccomp == "default" else spec.seccomp,
                              set(spec.capabilities), cache_dir)


def apply_seccomp(spec: ContainerSpec, compiled: "seccomp.CompiledFilter | None") -> None:
    """The syscall filter, last before execve (it must allow everything until then)."""
    if compiled is None:
        return
    from minidocker.linux import seccomp

    seccomp.load_filter(compiled)


def switch_user(spec: ContainerSpec, env: list[str]) -> list[str]:
    user = resolve_user(spec.user, _read("/etc/passwd"), _read("/etc/group"))
    os.setgroups(user.groups)
    os.setgid(user.gid)
    os.setuid(user.uid)
    emit("setuid", uid=user.uid, gid=user.gid, groups=user.groups)
    if not any(e.startswith("HOME=") for e in env):
        env = env + [f"HOME={user.home}"]
    return env


def make_workdir(spec: ContainerSpec) -> None:
    """docker creates a missing WorkingDir (as root, before switching user)."""
    os.makedirs(spec.cwd, exist_ok=True)


def change_dir(spec: ContainerSpec) -> None:
    try:
        os.chdir(spec.cwd)
    except OSError as e:  # exec -w DIR: exec, unlike run (make_workdir), does not create DIR; runc's words
        raise StepFailed("change_dir", f'chdir to cwd ("{spec.cwd}") set in config.json failed: '
                                       f"{(e.strerror or str(e)).lower()}", EXIT_CANNOT_INVOKE) from None


def close_other_fds(keep: int) -> None:
    """Nothing of minidocker's may leak into the container: close every fd above 2."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass


def exec_command(spec: ContainerSpec, env: list[str], keep_fd: int = -1) -> None:
    env_map = dict(e.split("=", 1) for e in env if "=" in e)
    emit("execve", argv=spec.argv)
    close_other_fds(keep=keep_fd)
    try:
        os.execvpe(spec.argv[0], spec.argv, env_map)
    except FileNotFoundError:
        raise StepFailed("execve", f'exec: "{spec.argv[0]}": executable file not found in $PATH',
                         EXIT_NOT_FOUND) from None
    except PermissionError:
        raise StepFailed("execve", f'exec: "{spec.argv[0]}": permission denied', EXIT_CANNOT_INVOKE) from None
    except OSError as e:
        code = EXIT_CANNOT_INVOKE if e.errno in (errno.ENOEXEC, errno.EISDIR, errno.ETXTBSY) else EXIT_NOT_FOUND
        raise StepFailed("execve", f'exec: "{spec.argv[0]}": {e.strerror}', code) from None


def run_reaper(spec: ContainerSpec, env: list[str], keep_fd: int) -> None:
    """``--init``: PID 1 forks the command, forwards signals to it, reaps every orphan, and
    exits with the command's status."""
    child = os.fork()
    if child == 0:
        try:
            exec_command(spec, env, keep_fd)
        except StepFailed as e:
            _report(keep_fd, e.step, e.message, e.code)
            os._exit(e.code)
    close_other_fds(keep=-1)
    forwarded = [s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD)]
    for s in forwarded:
        try:
            signal.signal(s, lambda signum, _f: os.kill(child, signum))
        except (OSError, ValueError):
            pass
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == child:
            os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def container_init(spec: ContainerSpec, plan: rootfs.RootfsPlan, pipes: InitPipes,
                   compiled_filter: "seccomp.CompiledFilter | None" = None, in_userns: bool = False) -> None:
    """The child after fork: never returns (execve, or _exit with docker's code).
    ``in_userns``: started by ``userns_init``, which already made our namespaces."""
    code = EXIT_STEP_FAILED
    step = "init"
    try:
        step = "hide_host_binary"; hide_host_binary()
        if not in_userns:
            step = "enter_namespaces"; enter_namespaces(spec, pipes.netns)
        step = "set_hostname"; set_hostname(spec)
        step = "bring_up_loopback"; bring_up_loopback(spec)
        step = "load_security"; load_security(spec)
        step = "prepare_rootfs"; rootfs.prepare_rootfs(plan, in_userns)
        step = "setup_stdio"; setup_stdio(spec, pipes)
        step = "make_workdir"; make_workdir(spec)
        step = "wait_for_parent"; wait_for_parent(pipes)
        step = "enter_cgroup_namespace"; enter_cgroup_namespace(spec)
        step = "drop_capabilities"; drop_capabilities(spec)
        step = "switch_user"; env = switch_user(spec, spec.env)
        step = "limit_capabilities"; limit_capabilities(spec)
        step = "set_no_new_privs"; set_no_new_privs(spec)
        step = "change_dir"; change_dir(spec)
        step = "apply_seccomp"; apply_seccomp(spec, compiled_filter)
        if spec.init:
            step = "init"; run_reaper(spec, env, pipes.error_w)
        step = "execve"; exec_command(spec, env, pipes.error_w)
    except StepFailed as e:
        _report(pipes.error_w, e.step, e.message, e.code)
        code = e.code
    except Exception as e:  # noqa: BLE001 - every failure becomes one line for the user
        msg = getattr(e, "message", None) or (f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.filename
                                              else str(e))
        _report(pipes.error_w, step, msg, EXIT_STEP_FAILED)
    finally:
        os._exit(code)


def userns_init(spec: ContainerSpec, plan: rootfs.RootfsPlan, pipes: InitPipes,
                compiled_filter: "seccomp.CompiledFilter | None", userns_fd: int, pid_w: int,
                forwarded: tuple[int, ...]) -> None:
    """``--userns=auto``: the first child, which builds what needs host root, then becomes
    the parent of the container's PID 1. Never returns. In order::

        unshare(CLONE_NEWNS)      a mount namespace still owned by the host's user namespace
        mount the layers          idmapped (open_tree + mount_setattr + move_mount), or copies
        mount_overlay             as host root: overlayfs keeps its trusted.* xattrs working
        mount_volumes             -v binds, as host root too (their paths may be closed to the container)
        become_root_in            setns(user namespace), setresuid(0): root inside, host uid outside
        unshare(the rest)         mount, UTS, IPC, network, PID: all owned by the new user namespace
        fork                      the child is PID 1 and goes on with container_init
        wait                      pass signals on; exit as PID 1 exits
    """
    from minidocker.linux import userns

    step = "userns"
    try:
        step = "hide_host_binary"; hide_host_binary()
        step = "enter_mount_namespace"; sc.unshare(sc.CLONE_NEWNS); rootfs.make_mounts_private()
        step = "mount_layers"; _mount_layers(plan, userns_fd)
        step = "mount_overlay"; rootfs.mount_overlay(plan)
        # -v binds as host root: the container's uid may not even be able to reach the source
        step = "mount_volumes"; rootfs.mount_volumes(plan); os.chdir(plan.merged)  # (see prepare_rootfs)
        step = "become_root_in"; userns.become_root_in(userns_fd)
        os.close(userns_fd)
        step = "enter_namespaces"
        flags = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWNET | sc.CLONE_NEWPID
        sc.unshare(flags)
        step = "fork"; child = os.fork()
    except Exception as e:  # noqa: BLE001 - one line for the user
        msg = getattr(e, "message", None) or (f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.filename
                                              else str(e))
        _report(pipes.error_w, step, msg, EXIT_STEP_FAILED)
        os._exit(EXIT_STEP_FAILED)
    if child == 0:
        sc.set_pdeathsig(signal.SIGKILL)
        os.close(pid_w)
        container_init(spec, plan, pipes, compiled_filter, in_userns=True)
        os._exit(EXIT_STEP_FAILED)
    os.write(pid_w, str(child).encode())  # its PID on the host: what exec and kill need
    close_other_fds(keep=-1)  # the error pipe must close when PID 1 execs, not when we exit
    for s in forwarded:
        signal.signal(s, lambda signum, _f: os.kill(child, signum))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):  # die the same way, so that our parent sees 128+N
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # (those two cannot be caught anyway)
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else EXIT_STEP_FAILED)


def _mount_layers(plan: rootfs.RootfsPlan, userns_fd: int) -> None:
    """Idmapped mounts where the kernel and filesystem have them, else shifted copies."""
    if os.environ.get("MINIDOCKER_NO_IDMAP") != "1":
        try:
            rootfs.mount_idmapped_layers(plan, userns_fd)
            return
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP):
                raise
            for view in plan.layer_views:  # undo a partial attempt
                try:
                    sc.umount2(view, sc.MNT_DETACH)
                except OSError:
                    pass
    rootfs.copy_layers_shifted(plan)


def _report(fd: int, step: str, message: str, code: int) -> None:
    try:
        os.write(fd, (json.dumps({"step": step, "message": message, "code": code}) + "\n").encode())
    except OSError:
        pass


