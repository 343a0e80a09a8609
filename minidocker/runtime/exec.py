"""``exec``: a new process inside a running container, behind the same walls as its PID 1.

The parent (this process) opens the container's namespaces (/proc/PID/ns/*) and forks a
helper, moves it into the container's cgroup and tells it to go on. The helper::

    hide_host_binary         non-dumpable first: it will be visible inside the container
    wait_for_parent          until it is in the container's cgroup
    join_namespaces          setns(2) into ipc, uts, net, pid, cgroup and last mnt (which also
                             moves us to the container's root directory); the user namespace
                             first with --userns=auto (it owns the others)
    fork_into_pid_namespace  setns(CLONE_NEWPID) applies to children only: fork once more;
                             the helper waits and exits with its child's code
    setup_stdio              the container's own pty with -t, /dev/null without -i
    finish_and_exec          init's own last steps (init.py): capabilities, user,
                             no_new_privs, working directory, seccomp, execve

A failure comes back through the same error pipe and report as a container start's
(forked.py), and reads as docker's exec does: the message alone.

See it: ``minidocker exec CONTAINER grep -E 'Cap|NoNewPrivs|Seccomp' /proc/self/status``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from minidocker.errors import Conflict, ExitCode, StartFailed, exit_code
from minidocker.linux import capabilities, cgroups
from minidocker.linux import syscalls as sc
from minidocker.runtime.container import Container, alive, container_event
from minidocker.runtime.init import (
    InitPipes,
    finish_and_exec,
    hide_host_binary,
    preload_tty,
    setup_stdio,
    wait_for_parent,
)
from minidocker.runtime.lifecycle import Channels, await_execve, compile_security, seccomp_cache
from minidocker.runtime.spec import ContainerSpec, merge_env
from minidocker.runtime.stdio import receive_pty, relay_pty, reset_signals, wait_foreground
from minidocker.runtime.steps import exiting_on_failure, step

if TYPE_CHECKING:
    from collections.abc import Callable

    from minidocker.linux import seccomp


def exec_in(
    c: Container, argv: list[str], env: list[str], cwd: str | None, user: str | None, tty: bool, interactive: bool
) -> int:
    """``exec``: run ``argv`` in the running container ``c``; its exit code."""
    pid = c.state.get("Pid")
    if not c.running or not alive(pid, c.state.get("PidStartTime")):
        raise Conflict(f"Container {c.id[:12]} is not running")
    assert pid is not None  # alive() is false without a PID
    if c.state.get("Status") == "paused":
        raise Conflict(f"Container {c.id[:12]} is paused, unpause the container before exec")
    spec = exec_spec(c.spec, argv, env, cwd, user, tty, interactive)
    exec_id, command = os.urandom(32).hex(), " ".join(argv)  # docker's events name an exec by its command
    container_event(c, f"exec_create: {command}", execID=exec_id)
    compiled_filter = compile_security(spec, seccomp_cache(c))
    capabilities.preload()  # as init's load_security: prctl imported before we join the mount namespace
    preload_tty(spec)
    # the user namespace first: the others belong to it, and joining it gives us the
    # capabilities that joining them takes (see setns(2))
    kinds = ["ipc", "uts", "net", "pid", "cgroup", "mnt"]
    ns_fds = sc.open_namespace_fds(pid, ["user", *kinds] if c.spec.idmap else kinds)
    channels = Channels.open(tty)
    child = os.fork()
    if child == 0:
        run_helper(spec, ns_fds, channels, compiled_filter)
    for _, fd in ns_fds:
        os.close(fd)
    channels.close_child_ends()
    try:
        cgroups.manager(c.id).add(child)
    except OSError:
        pass  # the container may have no cgroup left (it is exiting)
    channels.go()
    await_execve(channels.err_r, child, error=StartFailed)  # docker's exec: the message alone
    container_event(c, f"exec_start: {command}", execID=exec_id)
    master = receive_pty(channels.parent_sock)
    code = relay_pty(child, master, interactive) if master is not None else wait_foreground(child)
    container_event(c, "exec_die", execID=exec_id, exitCode=code)
    return code


def exec_spec(
    spec: ContainerSpec,
    argv: list[str],
    env: list[str],
    cwd: str | None,
    user: str | None,
    tty: bool,
    interactive: bool,
) -> ContainerSpec:
    """The container's own spec (capabilities, seccomp, user namespace), with exec's command,
    terminal, working directory, user and extra environment."""
    return ContainerSpec(
        **{
            **spec.__dict__,
            "argv": argv,
            "tty": tty,
            "stdin_open": interactive,
            "cwd": cwd or spec.cwd,
            "user": user if user is not None else spec.user,
            "env": merge_env(spec.env, env),
            "init": False,
        }
    )


def run_helper(
    spec: ContainerSpec,
    ns_fds: list[tuple[str, int]],
    channels: Channels,
    compiled_filter: seccomp.CompiledFilter | None,
    enter_pid_namespace: Callable[[], None] | None = None,
    root_fd: int | None = None,
) -> None:
    """The helper, after fork (the module docstring's recipe). Never returns.
    minidocker-runc's exec passes ``enter_pid_namespace`` (it forks and leaves instead of
    waiting) and, for a container without a mount namespace of its own, its ``root_fd``."""
    try:
        with exiting_on_failure(channels.err_w):
            hide_host_binary()  # before we are visible in the container's PID namespace
            channels.close_parent_ends()
            pipes = InitPipes(channels.sync_r, channels.err_w, channels.console)
            wait_for_parent(pipes)
            reset_signals()
            join_namespaces(ns_fds)
            if root_fd is not None:
                enter_root(root_fd)
            if enter_pid_namespace is not None:
                enter_pid_namespace()
            else:
                fork_into_pid_namespace(channels.err_w)
            setup_stdio(spec, pipes, console=False)  # (/dev/console is PID 1's)
            finish_and_exec(spec, compiled_filter, channels.err_w)
    finally:
        os._exit(ExitCode.MINIDOCKER_FAILED)


@step
def join_namespaces(ns_fds: list[tuple[str, int]]) -> None:
    for kind, fd in ns_fds:
        sc.setns(fd, sc.NAMESPACE_FLAGS[kind])
        os.close(fd)


@step
def enter_root(root_fd: int) -> None:
    """The container's root, for one that shares our mount namespace: chroot(2) as its PID 1 did."""
    os.fchdir(root_fd)
    sc.chroot(".")
    os.close(root_fd)


@step
def fork_into_pid_namespace(err_w: int) -> None:
    """Our setns(CLONE_NEWPID) applies to the children we make from now on, not to us: fork.
    The child returns, the first of us really inside; we wait for it and exit with its code
    (closing our copy of the error pipe, so that only the child's execve closes it)."""
    child = os.fork()
    if child == 0:
        return
    os.close(err_w)
    _, status = os.waitpid(child, 0)
    os._exit(exit_code(status))
