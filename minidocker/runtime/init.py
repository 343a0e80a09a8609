"""The container's side: what its first process does between fork and execve.

The parent has already called ``unshare(CLONE_NEWPID)``, so this process is PID 1 of a new
PID namespace. It then runs, in order (``container_init`` reads as a table of contents)::

    hide_host_binary       non-dumpable until execve: the container cannot open our /proc/PID/exe
    enter_namespaces       unshare mount, UTS, IPC, network (unless --network host, --ipc host)
    set_hostname           in our own UTS namespace only
    bring_up_loopback      our network namespace starts with lo down
    load_security          import python-prctl while the host's files are still in sight
    prepare_rootfs         overlay, /proc, /dev, /sys, /etc files, pivot_root (rootfs.py; a
                           bundle's create hooks just before pivot_root: run_create_hooks)
    setup_stdio            a pty from the container's own /dev/pts for -t, /dev/null for no -i
    make_workdir           docker creates a missing WorkingDir
    wait_for_parent        meanwhile the parent made our cgroup and moved us in; now it says go
    enter_cgroup_namespace unshare the cgroup namespace: our cgroup becomes its root
    wait_for_start         minidocker-runc create only: block on exec.fifo until ``start``
    run_start_hooks        minidocker-runc: the bundle's startContainer hooks (oci/hooks.py)
    finish_and_exec        the walls, the same for ``exec`` (exec.py):
      apply_seccomp_with_privileges  a bundle without noNewPrivileges: its filter, while CAP_SYS_ADMIN allows
      drop_capabilities      the bounding set shrinks to Docker's 14 (+ --cap-add, - --cap-drop)
      switch_user            setgroups, setgid, setuid: from the container's /etc/passwd
      limit_capabilities     permitted/effective/inheritable = the kept set (a bundle's: its five sets)
      set_no_new_privs       no setuid binary can raise privileges again
      change_dir             the working directory, as the user
      apply_seccomp          the syscall filter (Docker's default profile), compiled by the parent
      run_reaper             --init only: we stay PID 1 and fork the command
      exec_command           execve, searching the container's PATH

Each is a ``@step`` (steps.py): a failure at any of them is written to the error pipe (which
``execve`` closes, being O_CLOEXEC) as one line of forked.py's report, named after the
step's function, and the process exits with docker's code for it: 127 when the command is
not found, 126 when it cannot be executed, 125 for any other step.

See it: ``minidocker run --rm --explain busybox true``.
"""

from __future__ import annotations

import errno
import os
import resource  # (close_other_fds: imported while the host's Python library is in sight)
import signal

from minidocker.errors import CommandFailed, ExitCode, MinidockerError, exit_code
from minidocker.linux import capabilities
from minidocker.linux import syscalls as sc
from minidocker.linux.events import emit
from minidocker.record import record
from minidocker.runtime import rootfs
from minidocker.runtime.forked import report
from minidocker.runtime.spec import ContainerSpec
from minidocker.runtime.steps import exiting_on_failure, step
from minidocker.runtime.users import resolve_user

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from minidocker.linux import seccomp
    from minidocker.oci.hooks import ContainerHooks


@record
class InitPipes:
    sync_r: int  # the parent writes one byte when we may go on
    error_w: int  # O_CLOEXEC: closed by a successful execve
    console: int | None = None  # a unix socket to send the pty master over (-t)
    stdin: int | None = None  # fds to use as 0, 1, 2 (None: inherit)
    stdout: int | None = None
    stderr: int | None = None
    netns: int | None = None  # a network namespace the parent wired to a bridge (--network bridge)
    ipcns: int | None = None  # --ipc container:X: X's IPC namespace, opened by the parent
    utsns: int | None = None  # minidocker-runc: a bundle's UTS namespace by path, opened by the parent
    mntns: int | None = None  # minidocker-runc: a bundle's mount namespace by path
    shared: tuple[str, ...] = ()  # minidocker-runc: "mount", "uts": a bundle's without one keeps ours
    ready_w: int | None = None  # minidocker-runc create: closed when we wait for ``start``
    state_dir: int | None = None  # minidocker-runc create: an O_PATH fd of the dir with exec.fifo
    fifo: int | None = None  # exec.fifo, once ``start`` opened it: open until execve, so that start sees it
    hooks: ContainerHooks | None = None  # minidocker-runc: the bundle's hooks PID 1 runs (oci/hooks.py)


@step
def wait_for_parent(pipes: InitPipes) -> None:
    if os.read(pipes.sync_r, 1) != b"1":
        raise MinidockerError("the parent went away before the container started")
    os.close(pipes.sync_r)


@step
def wait_for_start(pipes: InitPipes) -> None:
    """``minidocker-runc create``: tell ``create`` we are ready (close ``ready_w``), then
    block opening exec.fifo for writing until ``start`` opens it for reading, as runc's init
    does. The fifo is reached through an fd of its directory opened before pivot_root.
    ``create`` has exited by then: a failure from here on goes to the container's stderr.
    The fifo stays open (O_CLOEXEC) until execve: ``start`` returns when it closes."""
    if pipes.ready_w is None or pipes.state_dir is None:
        return
    os.close(pipes.ready_w)
    pipes.fifo = os.open("exec.fifo", os.O_WRONLY | os.O_CLOEXEC, dir_fd=pipes.state_dir)  # (openat: no /proc)
    os.write(pipes.fifo, b"0")
    os.close(pipes.state_dir)
    os.dup2(2, pipes.error_w, inheritable=False)


@step
def run_create_hooks(hooks: ContainerHooks) -> None:
    """minidocker-runc: rootfs.prepare_rootfs calls this before pivot_root (RootfsPlan.before_pivot):
    ``create`` runs the prestart and createRuntime hooks meanwhile, then we run createContainer's."""
    hooks.before_pivot()


@step
def run_start_hooks(pipes: InitPipes) -> None:
    """minidocker-runc: the bundle's startContainer hooks, in the container; a failure is
    told to ``start`` over exec.fifo (which fails), then PID 1 exits."""
    if pipes.hooks is None or not pipes.hooks.start_container:
        return
    try:
        pipes.hooks.started()
    except MinidockerError as e:
        if pipes.fifo is not None:
            os.write(pipes.fifo, b"!" + e.message.encode())
        raise


@step
def hide_host_binary() -> None:
    """Until execve this process runs the host's Python. Inside the container's PID namespace
    anyone could otherwise open /proc/<us>/exe, the host's interpreter, and write to it once
    it is not busy (CVE-2019-5736's shape). Non-dumpable, our /proc entries admit only a
    process with CAP_SYS_PTRACE over us, which the container's processes lack; execve of the
    container's command makes the new program dumpable again."""
    sc.set_dumpable(False)


@step
def enter_namespaces(spec: ContainerSpec, pipes: InitPipes | None = None, pid: bool = False) -> None:
    """unshare(2) mount, UTS, IPC and network namespaces (not the network with --network
    host, nor when the parent made ours: then setns(2) into that one; the same for IPC with
    --ipc host or container:X, and for any a bundle joins by path or shares with us); with
    ``pid`` a PID namespace too, which only our next child enters (--userns=auto: see userns_init)."""
    p = pipes or InitPipes(-1, -1)
    flags = 0 if p.mntns is not None or "mount" in p.shared else sc.CLONE_NEWNS
    flags |= 0 if p.utsns is not None or "uts" in p.shared else sc.CLONE_NEWUTS
    if spec.network != "host" and p.netns is None:
        flags |= sc.CLONE_NEWNET
    if spec.ipc_mode != "host" and p.ipcns is None:
        flags |= sc.CLONE_NEWIPC
    sc.unshare(flags | (sc.CLONE_NEWPID if pid else 0))
    joins = (
        (p.netns, sc.CLONE_NEWNET, "the network namespace with eth0 on the bridge"),
        (p.ipcns, sc.CLONE_NEWIPC, "--ipc container:X: X's shared memory, semaphores and queues"),
        (p.utsns, sc.CLONE_NEWUTS, "a bundle's UTS namespace by path"),
        (p.mntns, sc.CLONE_NEWNS, "a bundle's mount namespace by path: our root becomes its root"),
    )
    for fd, kind, why in joins:
        if fd is not None:
            sc.setns(fd, kind, why=why)
            os.close(fd)


@step
def enter_cgroup_namespace(spec: ContainerSpec) -> None:
    """A cgroup namespace's root is the cgroup its creator is in *at unshare time*: so only
    once the parent has moved us into our own cgroup. /proc/self/cgroup then shows ``/``.
    (An OCI bundle may keep the host's: ``cgroupns`` false.)"""
    if spec.cgroupns:
        sc.unshare(sc.CLONE_NEWCGROUP)


@step
def set_hostname(spec: ContainerSpec, shared: tuple[str, ...] = ()) -> None:
    """In our own UTS namespace only (a bundle without one has no hostname: bundle.py)."""
    if (spec.network != "host" or spec.hostname) and "uts" not in shared:
        sc.sethostname(spec.hostname)


@step
def bring_up_loopback(spec: ContainerSpec) -> None:
    """``ip link set lo up``: a new network namespace has only lo, and it is down."""
    if spec.network != "host":
        sc.set_link_up("lo")


# rootfs.py's recipes, as steps of ours (a failure inside is named after them)
prepare_rootfs = step(rootfs.prepare_rootfs)
mount_overlay = rootfs.mount_overlay  # (a step of rootfs.py's own, as are prepare_rootfs' others)


@step
def setup_stdio(spec: ContainerSpec, pipes: InitPipes, console: bool = True) -> None:
    """0, 1 and 2 of the container's process; with -t a pty of the container's devpts, also
    bound on /dev/console when ``console`` (PID 1's: an exec'd process leaves it as it is)."""
    if spec.tty:
        from minidocker.linux import tty  # (the parent imported it for us: preload_tty)

        master, slave, name = tty.open_pty()  # from the container's own devpts
        # hand the master to the parent (SCM_RIGHTS), which relays it to the user's terminal
        import socket  # (the parent imported it before fork, for its end of the pair)

        sock = socket.socket(fileno=pipes.console)
        socket.send_fds(sock, [b"pty"], [master])
        sock.close()
        os.close(master)
        tty.set_controlling_tty(slave)
        if console and not os.path.exists("/dev/console"):
            open("/dev/console", "a").close()
        if console:
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


@step
def drop_capabilities(spec: ContainerSpec) -> None:
    """The bounding set first (needs CAP_SETPCAP, which root still has)."""
    if not spec.privileged:
        capabilities.drop_bounding_set(spec.capabilities)


@step
def limit_capabilities(spec: ContainerSpec) -> None:
    """After setuid: root keeps exactly its set; a user's sets are already empty."""
    if spec.capability_sets is not None:
        capabilities.set_process_sets(spec.capability_sets)
    elif os.getuid() == 0 and not spec.privileged:
        capabilities.limit_process_sets(spec.capabilities)


@step
def set_no_new_privs(spec: ContainerSpec) -> None:
    if spec.no_new_privileges:
        capabilities.set_no_new_privs()


def preload_tty(spec: ContainerSpec) -> None:
    """With -t, import linux/tty.py in the parent, before fork: the child opens its pty
    (setup_stdio) after pivot_root, and with --userns=auto as a user who may not read the
    host's Python library even before that."""
    if spec.tty:
        import minidocker.linux.tty  # noqa: F401


@step
def load_security(spec: ContainerSpec) -> None:
    """Import what the capability steps need *before* pivot_root: afterwards the host's
    Python library is out of sight. (The seccomp program was compiled, or taken from the
    cache, by the parent: ``lifecycle.compile_security``; linux/tty.py too: ``preload_tty``.)"""
    capabilities.preload()


@step
def apply_seccomp_with_privileges(spec: ContainerSpec, compiled: seccomp.CompiledFilter | None) -> None:
    """An OCI bundle with noNewPrivileges false: its filter is loaded first, while CAP_SYS_ADMIN
    allows that without no_new_privs (the filter then sees the steps that follow)."""
    from minidocker.linux import seccomp

    if compiled is not None:
        seccomp.load_filter(compiled, no_new_privs=False)


@step
def apply_seccomp(spec: ContainerSpec, compiled: seccomp.CompiledFilter | None) -> None:
    """The syscall filter, last before execve (it must allow everything until then)."""
    if compiled is None:
        return
    from minidocker.linux import seccomp

    seccomp.load_filter(compiled)


@step
def switch_user(spec: ContainerSpec, env: list[str]) -> list[str]:
    user = resolve_user(spec.user, _read("/etc/passwd"), _read("/etc/group"))
    groups = user.groups + [g for g in spec.additional_gids if g not in user.groups]
    if spec.capability_sets is not None and user.uid != 0:
        capabilities.keep_caps()
    sc.set_credentials(user.uid, user.gid, groups)
    if not any(e.startswith("HOME=") for e in env):
        env = env + [f"HOME={user.home}"]
    return env


@step
def make_workdir(spec: ContainerSpec) -> None:
    """docker creates a missing WorkingDir (as root, before switching user); one that is
    there but is no directory is refused in runc's words."""
    try:
        os.makedirs(spec.cwd, exist_ok=True)
    except FileExistsError:  # (a file on the way, /etc/passwd/x: the kernel's "Not a directory")
        raise MinidockerError(f"mkdir {spec.cwd}: not a directory") from None


@step
def change_dir(spec: ContainerSpec) -> None:
    try:
        os.chdir(spec.cwd)
    except OSError as e:  # exec -w DIR: exec, unlike run (make_workdir), does not create DIR; runc's words
        raise MinidockerError(
            f'chdir to cwd ("{spec.cwd}") set in config.json failed: {(e.strerror or str(e)).lower()}',
            exit_code=ExitCode.CANNOT_INVOKE,
        ) from None


def close_other_fds(keep: int, preserve: int = 0) -> None:
    """Nothing of minidocker's may leak into the container: close every fd above 2 (but
    ``keep``, and the ``preserve`` fds from 3 on that minidocker-runc was told to pass).
    close_range(2), which os.closerange calls, needs no /proc: --userns=auto's first child
    calls this while PID 1's pivot_root may already have swapped the root of their shared
    mount namespace for the container's, whose /proc does not show the first child. Up to
    the open-files limit: where a bundle's seccomp profile refuses close_range, Python
    closes them one by one."""
    last = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    last = 2**20 if last == resource.RLIM_INFINITY else last
    low = 3 + preserve
    if low <= keep:
        os.closerange(low, keep)
        low = keep + 1
    os.closerange(low, max(low, last))


@step
def exec_command(spec: ContainerSpec, env: list[str], keep_fd: int = -1) -> None:
    env_map = dict(e.split("=", 1) for e in env if "=" in e)
    emit("execve", argv=spec.argv)
    close_other_fds(keep=keep_fd, preserve=spec.preserve_fds)
    try:
        os.execvpe(spec.argv[0], spec.argv, env_map)
    except FileNotFoundError:
        raise CommandFailed(not_found(spec.argv[0]), exit_code=ExitCode.NOT_FOUND) from None
    except PermissionError:
        raise CommandFailed(f'exec: "{spec.argv[0]}": permission denied', exit_code=ExitCode.CANNOT_INVOKE) from None
    except OSError as e:
        code = ExitCode.CANNOT_INVOKE if e.errno in (errno.ENOEXEC, errno.EISDIR, errno.ETXTBSY) else ExitCode.NOT_FOUND
        raise CommandFailed(f'exec: "{spec.argv[0]}": {e.strerror}', exit_code=code) from None


def not_found(command: str) -> str:
    """runc's words for a command that is not there: a name was looked up in $PATH, a path
    (anything with a slash) was not (``stat``), as scripts that grep docker's output expect."""
    if "/" in command:
        return f'exec: "{command}": stat {command}: no such file or directory'
    return f'exec: "{command}": executable file not found in $PATH'


@step
def run_reaper(spec: ContainerSpec, env: list[str], keep_fd: int) -> None:
    """``--init``: PID 1 forks the command, forwards signals to it, reaps every orphan, and
    exits with the command's status."""
    child = os.fork()
    if child == 0:
        with exiting_on_failure(keep_fd):
            exec_command(spec, env, keep_fd)
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
            os._exit(exit_code(status))


def finish_and_exec(spec: ContainerSpec, compiled_filter: seccomp.CompiledFilter | None, error_w: int) -> None:
    """The last steps, the same for a container's PID 1 and for ``exec``'s process, so that
    an exec'd process gets exactly the container's walls. Never returns: execve, or a
    ``StepFailed``. ``error_w`` stays open until execve closes it (O_CLOEXEC)."""
    early = compiled_filter is not None and not spec.no_new_privileges and spec.capability_sets is not None
    if early:
        apply_seccomp_with_privileges(spec, compiled_filter)
    drop_capabilities(spec)
    env = switch_user(spec, spec.env)
    limit_capabilities(spec)
    set_no_new_privs(spec)
    change_dir(spec)
    apply_seccomp(spec, None if early else compiled_filter)
    if spec.init:
        run_reaper(spec, env, error_w)
    exec_command(spec, env, error_w)


def container_init(
    spec: ContainerSpec,
    plan: rootfs.RootfsPlan,
    pipes: InitPipes,
    compiled_filter: seccomp.CompiledFilter | None = None,
    in_userns: bool = False,
) -> None:
    """The child after fork: never returns (execve, or _exit with docker's code).
    ``in_userns``: started by ``userns_init``, which already made our namespaces."""
    with exiting_on_failure(pipes.error_w):
        hide_host_binary()
        if not in_userns:
            enter_namespaces(spec, pipes)
        set_hostname(spec, pipes.shared)
        bring_up_loopback(spec)
        load_security(spec)
        prepare_rootfs(plan, in_userns)
        setup_stdio(spec, pipes)
        make_workdir(spec)
        wait_for_parent(pipes)
        enter_cgroup_namespace(spec)
        wait_for_start(pipes)
        run_start_hooks(pipes)
        finish_and_exec(spec, compiled_filter, pipes.error_w)


def userns_init(
    spec: ContainerSpec,
    plan: rootfs.RootfsPlan,
    pipes: InitPipes,
    compiled_filter: seccomp.CompiledFilter | None,
    userns_fd: int,
    pid_w: int,
    forwarded: tuple[int, ...],
    leave: bool = False,
) -> None:
    """``--userns=auto``: the first child, which builds what needs host root, then becomes
    the parent of the container's PID 1. Never returns. In order::

        hide_host_binary          as container_init: before anything else
        enter_mount_namespace     a mount namespace still owned by the host's user namespace
        mount_layers              idmapped (open_tree + mount_setattr + move_mount), or copies
        mount_overlay             as host root: overlayfs keeps its trusted.* xattrs working
        mount_volumes             -v binds, as host root too (their paths may be closed to the container)
                                  (minidocker-runc's bundle: none of the three, only a chdir to its rootfs)
        become_root_in            setns(user namespace), setresuid(0): root inside, host uid outside
        enter_namespaces          mount, UTS, IPC, network, PID: all owned by the new user namespace
        fork                      the child is PID 1 and goes on with container_init
        follow_pid_1              pass signals on; exit as PID 1 exits

    ``leave`` (minidocker-runc, whose PID 1 outlives it): exit at once after the fork instead
    of following, so that PID 1 is reparented to the subreaper that waits for it (podman's
    conmon, containerd's shim, ``minidocker-runc run``): only a parent sees a child's exit code.
    """
    with exiting_on_failure(pipes.error_w):
        hide_host_binary()
        enter_mount_namespace()
        if plan.bundle_root:  # (an OCI bundle's rootfs: a directory, bound by prepare_rootfs)
            os.chdir(plan.merged)
        else:
            mount_layers(plan, userns_fd)
            mount_overlay(plan)
            mount_volumes(plan)
        become_root_in(userns_fd)
        enter_namespaces(spec, pipes, pid=True)
        child = fork()
    if child == 0:
        if not leave:
            sc.set_pdeathsig(signal.SIGKILL)
        os.close(pid_w)
        container_init(spec, plan, pipes, compiled_filter, in_userns=True)
        os._exit(ExitCode.MINIDOCKER_FAILED)
    report(pid_w, pid=child)  # its PID on the host: what exec and kill need
    if leave:
        os._exit(0)
    close_other_fds(keep=-1)  # the error pipe must close when PID 1 execs, not when we exit
    follow_pid_1(child, forwarded)


@step
def enter_mount_namespace() -> None:
    sc.unshare(sc.CLONE_NEWNS)
    rootfs.make_mounts_private()


@step
def mount_layers(plan: rootfs.RootfsPlan, userns_fd: int) -> None:
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


@step
def mount_volumes(plan: rootfs.RootfsPlan) -> None:
    """-v binds as host root: the container's uid may not even be able to reach the source.
    Then into the overlay, while we may still walk the store's path to it (it is root's
    alone): prepare_rootfs goes on from this working directory."""
    rootfs.mount_volumes(plan)
    os.chdir(plan.merged)


@step
def become_root_in(userns_fd: int) -> None:
    from minidocker.linux import userns

    userns.become_root_in(userns_fd)
    os.close(userns_fd)


@step
def fork() -> int:
    """fork(2) after unshare(CLONE_NEWPID): the child is PID 1 of the new PID namespace."""
    return os.fork()


def follow_pid_1(child: int, forwarded: tuple[int, ...]) -> None:
    """Pass the signals we get on to the container's PID 1, wait for it, and end as it
    ended: killed by the same signal (so that our parent sees 128+N), or with its code."""
    for s in forwarded:
        signal.signal(s, lambda signum, _f: os.kill(child, signum))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):  # die the same way
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # (those two cannot be caught anyway)
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(exit_code(status))
