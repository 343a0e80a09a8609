"""``minidocker-runc exec``: a new process in a running container, as runc's exec.

The process is the container's ``process`` of config.json (the copy ``create`` kept in the
state dir: later edits of the bundle do not count), or ``--process FILE`` whole, with the
flags over it (args, --cwd, --env, --user, --cap, --no-new-privs, --tty). It is started by
runtime/exec.py's helper, the one ``minidocker exec`` uses::

    parent     open the namespaces of the container's PID 1 that are not ours (its user
               namespace first), fork the helper, prlimit it (process.rlimits), move it
               into the container's cgroup, say go
    helper     join_namespaces; fork once more (setns(CLONE_NEWPID) counts for children),
               report that child's host PID on a pipe and exit: the child is reparented to
               the nearest subreaper (us without --detach, else the shim or conmon that ran us)
    child      setup_stdio (-t: a pty of the container's devpts, its master sent to us and
               on over --console-socket), finish_and_exec: capabilities, user,
               no_new_privs, cwd, the container's seccomp profile, execve

Without --detach we wait and exit with the process's code (signals passed on); with it we
return once it runs, its PID in --pid-file. A failure before execve is 125 (ours) or the
command's 126/127.

See it: ``minidocker-runc exec c1 grep -E 'Cap|Seccomp' /proc/self/status``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from minidocker.errors import BundleError, Conflict, StartFailed
from minidocker.linux import capabilities, procfs
from minidocker.linux import syscalls as sc
from minidocker.oci import container
from minidocker.runtime.steps import step

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minidocker.linux import seccomp
    from minidocker.runtime.lifecycle import Channels
    from minidocker.runtime.spec import ContainerSpec

NAMESPACE_ORDER = ("user", "ipc", "uts", "net", "pid", "cgroup", "mnt")  # the user namespace owns the others


class ExecOptions:
    """The flags of ``exec`` that shape the process (None: the config's own)."""

    def __init__(self, **kw: Any) -> None:
        self.args: list[str] = kw.get("args") or []
        self.process: str | None = kw.get("process")
        self.tty: bool = bool(kw.get("tty"))
        self.cwd: str | None = kw.get("cwd")
        self.env: list[str] = kw.get("env") or []
        self.user: str | None = kw.get("user")
        self.caps: list[str] = kw.get("cap") or []
        self.no_new_privs: bool = bool(kw.get("no_new_privs"))
        self.process_label: str | None = kw.get("process_label")
        self.preserve_fds: int = int(kw.get("preserve_fds") or 0)


def process_json(opts: ExecOptions, config: dict[str, Any]) -> dict[str, Any]:
    """The process to run: --process FILE, or the container's with the flags over it."""
    if opts.process_label:
        raise BundleError("--process-label is not supported: no SELinux here")
    if opts.process:
        text = Path(opts.process).read_text() if opts.process != "-" else sys.stdin.read()
        try:
            process = json.loads(text)
        except ValueError as e:
            raise BundleError(f"--process {opts.process}: not valid JSON: {e}") from None
        if not isinstance(process, dict):
            raise BundleError(f"--process {opts.process}: a JSON object is needed")
    else:
        process = dict(config.get("process") or {}, terminal=False)
        if not opts.args:
            raise BundleError("exec needs a command, or --process FILE")
    if opts.args:
        process["args"] = opts.args
    if opts.tty:
        process["terminal"] = True
    if opts.cwd:
        process["cwd"] = opts.cwd
    if opts.env:
        process["env"] = [*(process.get("env") or []), *opts.env]
    if opts.user:
        uid, _, gid = opts.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise BundleError(f"--user {opts.user}: uid[:gid], numbers, is needed")
        process["user"] = dict(process.get("user") or {}, uid=int(uid), gid=int(gid or 0))
    if opts.no_new_privs:
        process["noNewPrivileges"] = True
    if opts.caps:
        process["capabilities"] = with_caps(process.get("capabilities") or {}, opts.caps)
    process.pop("apparmorProfile", None)  # (no AppArmor here: none applies, as to PID 1)
    return process


def with_caps(caps: dict[str, Any], extra: list[str]) -> dict[str, Any]:
    """runc's --cap: added to the bounding, effective and permitted sets (and to the
    inheritable one, unless that is empty)."""
    names = [c.upper() if c.upper().startswith("CAP_") else f"CAP_{c.upper()}" for c in extra]
    out = dict(caps)
    for kind in ("bounding", "effective", "permitted", "inheritable"):
        if kind == "inheritable" and not caps.get(kind):
            continue  # (an empty inheritable set stays empty)
        out[kind] = [*(caps.get(kind) or []), *(n for n in names if n not in (caps.get(kind) or []))]
    return out


def exec_spec(root: str, cid: str, opts: ExecOptions) -> tuple[dict[str, Any], ContainerSpec]:
    """The container's state and the spec of the process (bundle.parse_config's checks)."""
    from minidocker.oci.bundle import parse_config

    d = container.state_dir(root, cid)
    st = container.load_state(root, cid)
    status = container.status_of(d, st)
    if status not in ("created", "running"):
        raise Conflict(f"cannot exec in a container that is {status}")
    kept = d / "config.json"
    config = json.loads((kept if kept.exists() else Path(st["bundle"]) / "config.json").read_text())
    config["process"] = process_json(opts, config)
    spec = parse_config(config, st["bundle"], cid).spec
    spec.stdin_open = True  # runc's exec: our stdio are the process's
    spec.preserve_fds = opts.preserve_fds
    if (d / "seccomp.json").exists():
        spec.seccomp = str(d / "seccomp.json")
    return st, spec


def exec_process(
    root: str, cid: str, opts: ExecOptions, console_socket: str | None, pid_file: str | None, detach: bool
) -> int:
    """``exec``: start the process; its exit code, or 0 once it runs with ``detach``."""
    from minidocker.runtime.lifecycle import Channels, compile_security, prlimits

    st, spec = exec_spec(root, cid, opts)
    if spec.tty and not console_socket:
        raise BundleError("a terminal is asked for: --console-socket is needed (the pty master is sent there)")
    compiled_filter = compile_security(spec, None)
    capabilities.preload()  # as init's load_security: imported before we join the mount namespace
    if spec.tty:
        import minidocker.linux.tty  # noqa: F401 - the helper opens its pty after joining the mnt namespace
    keep_only_preserved(opts.preserve_fds)
    ns_fds = sc.open_namespace_fds(st["pid"], foreign_namespaces(st["pid"]))
    # a container without a mount namespace of its own is in ours, chrooted: so is its process
    root_fd = procfs.open_root(st["pid"]) if st.get("hostMounts") else None
    channels = Channels.open(spec.tty)
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    if not detach:
        sc.set_child_subreaper()  # the process, orphaned by the helper, becomes our child
    helper = os.fork()
    if helper == 0:
        os.close(pid_r)
        run_helper(spec, ns_fds, channels, compiled_filter, pid_w, root_fd)
    for fd in [fd for _, fd in ns_fds] + ([root_fd] if root_fd is not None else []):
        os.close(fd)
    os.close(pid_w)
    channels.close_child_ends()
    try:
        prlimits(helper, spec.ulimits)
        with contextlib.suppress(OSError):  # (none left: the container is exiting)
            container.cgroup_of(st).add(helper)
    except BaseException:
        os.kill(helper, 9)
        os.waitpid(helper, 0)
        raise
    channels.go()
    return follow(helper, pid_r, channels, spec, console_socket, pid_file, detach)


def follow(
    helper: int,
    pid_r: int,
    channels: Channels,
    spec: ContainerSpec,
    console_socket: str | None,
    pid_file: str | None,
    detach: bool,
) -> int:
    """The process's PID from the helper, then its execve (or the failure), then its end."""
    from minidocker.fsutil import atomic_write
    from minidocker.runtime.forked import read_report, read_to_end
    from minidocker.runtime.stdio import wait_foreground

    text = read_to_end(pid_r)
    os.close(pid_r)
    os.waitpid(helper, 0)
    pid = int(text) if text else 0
    try:
        read_report(channels.err_r, StartFailed)
    except StartFailed:
        if pid:
            with contextlib.suppress(ChildProcessError):  # (with --detach it is not our child)
                os.waitpid(pid, 0)
        raise
    if not pid:
        raise StartFailed("exec failed: its helper exited before it forked")
    if spec.tty:
        assert console_socket is not None
        container.send_console(channels.parent_sock, console_socket)
    if pid_file:
        Path(pid_file).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(pid_file), str(pid).encode())
    if detach:
        return 0
    return wait_foreground(pid)


def foreign_namespaces(pid: int) -> list[str]:
    """The namespaces of ``pid`` that are not ours, in the order to join them."""
    return [k for k in NAMESPACE_ORDER if procfs.namespace_of(pid, k) != procfs.namespace_of("self", k)]


def keep_only_preserved(preserve: int) -> None:
    """runc's --preserve-fds N: fds 3 .. 3+N-1 go to the process, no other of ours does."""
    for fd in procfs.open_fds():
        if fd >= 3:
            with contextlib.suppress(OSError):  # (the fd that listed them is closed again)
                os.set_inheritable(fd, fd < 3 + preserve)


def run_helper(
    spec: ContainerSpec,
    ns_fds: list[tuple[str, int]],
    channels: Channels,
    compiled_filter: seccomp.CompiledFilter | None,
    pid_w: int,
    root_fd: int | None = None,
) -> None:
    """The helper, after fork: runtime/exec.py's, but it forks and leaves (fork_and_leave)."""
    from minidocker.runtime import exec as runtime_exec

    runtime_exec.run_helper(
        spec, ns_fds, channels, compiled_filter, lambda: fork_and_leave(channels.err_w, pid_w), root_fd
    )


@step
def fork_and_leave(err_w: int, pid_w: int) -> None:
    """Fork into the PID namespace we joined; the parent reports the child's host PID and
    exits, so that the child is reparented to the subreaper that waits for it."""
    child = os.fork()
    if child == 0:
        os.close(pid_w)
        return
    os.write(pid_w, str(child).encode())
    os._exit(0)
