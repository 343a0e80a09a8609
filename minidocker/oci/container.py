"""The OCI lifecycle (create, start, state, kill, delete) over minidocker's own runtime.

``create`` is ``lifecycle.start``'s recipe with the bundle's rootfs directory in place of an
overlay, stopped short of the user's program, as the runtime spec asks::

    load_bundle          config.json -> ContainerSpec + RootfsPlan (oci/bundle.py)
    compile_security     the bundle's seccomp profile, compiled before fork
    create_user_namespace  a user namespace in the bundle: mapped with its uid/gid mappings
    fork_init            PID 1 in its namespaces, running init.container_init's steps (with a
                         user namespace our child is init.userns_init, which forks PID 1)
    find_init_pid        (PID 1 outlives us: no pdeathsig)
    create_cgroup        its cgroup and limits, PID 1 moved in
    set_ulimits ...      process.rlimits, linux.sysctl
    go                   PID 1 builds its rootfs, then closes ``ready`` and waits in
                         init.wait_for_start, opening exec.fifo for writing
    record created       --root/ID/state.json; --pid-file

A bundle that lists no mount namespace shares ours, as runc lets it: PID 1 mounts its /proc,
/dev, ... in our namespace below a private bind of its rootfs and chroots there; ``delete``
(or a failed ``create``) detaches them (state.json's hostMounts).

``start`` opens exec.fifo for reading, which lets PID 1 go on to its execve; the fifo is
then removed, so the status a reader sees is derived from what is there: ``created`` while
PID 1 lives and the fifo exists, ``running`` once it is gone, ``stopped`` when PID 1 is.

See it: ``minidocker-runc create --bundle B c1; minidocker-runc state c1; ls /run/minidocker-runc/c1``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

from minidocker.errors import BundleError, Conflict, HookFailed, MinidockerError, NoSuchContainer
from minidocker.fsutil import atomic_write, write_json
from minidocker.linux import cgroups, procfs
from minidocker.oci.bundle import OCI_VERSION, Bundle, load_bundle
from minidocker.oci.hooks import ContainerHooks, as_config, hooks_of, run_hooks, run_runtime_hooks
from minidocker.runtime import lifecycle, rootfs
from minidocker.runtime.container import Container, alive
from minidocker.runtime.logfile import now_iso
from minidocker.runtime.steps import StepFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FIFO = "exec.fifo"


def state_dir(root: str, cid: str) -> Path:
    if not cid or "/" in cid or cid in (".", "..") or len(cid) > 1024:
        raise BundleError(f"invalid container id {cid!r}")
    return Path(root) / cid


def load_state(root: str, cid: str) -> dict[str, Any]:
    try:
        return json.loads((state_dir(root, cid) / "state.json").read_text())
    except FileNotFoundError:
        raise NoSuchContainer(f"container {cid} does not exist") from None


def status_of(d: Path, st: dict[str, Any]) -> str:
    if not alive(st.get("pid"), st.get("pidStartTime")):
        return "creating" if st.get("status") == "creating" and not st.get("pid") else "stopped"
    if os.path.lexists(d / FIFO):
        return "created"
    return "paused" if frozen(st) else "running"


def frozen(st: dict[str, Any]) -> bool:
    """``pause`` froze the container's cgroup (oci/ops.py)."""
    try:
        return cgroup_of(st).frozen()
    except (OSError, KeyError):
        return False


def oci_state(root: str, cid: str) -> dict[str, Any]:
    """The runtime spec's state: ociVersion, id, status, pid, bundle, annotations."""
    st = load_state(root, cid)
    return oci_state_of(cid, st, status_of(state_dir(root, cid), st))


def oci_state_of(cid: str, st: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "ociVersion": OCI_VERSION,
        "id": cid,
        "status": status,
        "pid": st.get("pid", 0) if status != "stopped" else 0,
        "bundle": st["bundle"],
        "rootfs": st.get("rootfs", ""),
        "created": st.get("created", ""),
        "annotations": st.get("annotations", {}),
    }


def create(root: str, cid: str, bundle_dir: str, pid_file: str | None, console_socket: str | None) -> tuple[int, int]:
    """Make the container and leave its PID 1 waiting for ``start``; returns its PID and
    our child's (the same but with a user namespace: then init.userns_init, PID 1's parent,
    which exits once PID 1 is forked)."""
    d = state_dir(root, cid)
    if d.exists():
        raise Conflict(f"container {cid} already exists")
    bundle = load_bundle(bundle_dir, cid)
    if bundle.spec.tty and not console_socket:
        raise BundleError("process.terminal is true: --console-socket is needed (the pty master is sent there)")
    d.mkdir(parents=True, mode=0o711)
    shutil.copyfile(Path(bundle.path) / "config.json", d / "config.json")  # exec's, whatever the bundle becomes
    st = {"id": cid, "bundle": bundle.path, "rootfs": bundle.rootfs, "annotations": bundle.annotations}
    st["cgroup"] = list(bundle.cgroup)
    st |= {"status": "creating", "created": now_iso()}
    if bundle.hooks:
        st["hooks"] = as_config(bundle.hooks)
    if "mount" not in bundle.namespaces:  # our mounts below the rootfs are the host's: delete detaches them
        st["hostMounts"] = {"path": bundle.rootfs, "below": procfs.top_mount_id(bundle.rootfs)}
    write_json(d / "state.json", st)
    os.mkfifo(d / FIFO, 0o622)
    if bundle.id_maps is not None:  # PID 1 opens it as the container's root: host uid hostID of its 0
        os.chown(d / FIFO, host_id_of_root(bundle.id_maps[0]), host_id_of_root(bundle.id_maps[1]))
    try:
        pid, child = launch_init(bundle, d, console_socket)
    except BaseException:
        remove_container(d, st)
        run_hooks("poststop", bundle.hooks.get("poststop", []), oci_state_of(cid, st, "stopped"), warn=True)
        raise
    write_json(d / "state.json", st | {"status": "created", "pid": pid, "pidStartTime": procfs.start_time(pid)})
    if pid_file:
        Path(pid_file).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(Path(pid_file), str(pid).encode())
    return pid, child


def host_id_of_root(lines: list[tuple[int, int, int]]) -> int:
    """The host ID that a uid_map or gid_map's lines give the container's 0 (bundle.py checked there is one)."""
    return next(outside - inside for inside, outside, count in lines if inside <= 0 < inside + count)


def rootfs_plan(bundle: Bundle) -> rootfs.RootfsPlan:
    from minidocker.oci.bundle import mount_options

    spec = bundle.spec
    volumes = []
    for m in spec.volumes:
        options = m.mode.split(",") if m.mode else []
        flags = mount_options(options)[0]
        v = rootfs.Volume(m.source, m.target, m.readonly, None if m.type == "bind" else m.type, m.data or None)
        v.propagation, v.flags, v.recursive = m.propagation, flags, "bind" not in options
        volumes.append(v)
    return rootfs.RootfsPlan(
        lowerdirs=[],
        upper="",
        work="",
        merged=bundle.rootfs,
        volumes=volumes,
        readonly=spec.readonly_rootfs,
        bundle_root=True,
        masked=bundle.masked_paths,
        readonly_paths=bundle.readonly_paths,
        shm=bundle.shm,
        devices=bundle.devices,
        root_propagation=bundle.root_propagation,
        in_host_mount_ns="mount" not in bundle.namespaces and "mount" not in bundle.namespace_paths,
    )


def launch_init(bundle: Bundle, d: Path, console_socket: str | None) -> tuple[int, int]:
    """``lifecycle.start``'s parent steps for a bundle, up to PID 1's wait for ``start``:
    PID 1's host PID and our child's."""
    from minidocker.paths import Layout

    spec = bundle.spec
    if bundle.seccomp is not None:
        write_json(d / "seccomp.json", bundle.seccomp)
        spec.seccomp = str(d / "seccomp.json")
    c = Container(Layout(d).container(spec.id), spec)
    launch = lifecycle.Launch(c, rootfs_plan(bundle), lifecycle.compile_security(spec, None), outlives_parent=True)
    launch.cgroup = bundle.cgroup
    launch.shared = tuple(k for k in ("mount", "uts") if k not in bundle.namespaces)
    if bundle.id_maps is not None:  # a new user namespace: init.userns_init forks PID 1 in it
        from minidocker.linux.userns import create_user_namespace

        launch.userns_fd = create_user_namespace(*bundle.id_maps)
    fds = {"network": "netns_fd", "ipc": "ipcns_fd", "uts": "utsns_fd", "pid": "pidns_fd", "mount": "mntns_fd"}
    for kind, path in bundle.namespace_paths.items():  # (closed by fork_init, or by abandon)
        setattr(launch, fds[kind], os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    if bundle.cgroup_mount is not None:  # made now, so that PID 1 can bind it before pivot_root
        cg = cgroups.manager(bundle.cgroup[1], parent=bundle.cgroup[0])
        cg.create()
        launch.plan.cgroup_binds, launch.plan.cgroup_readonly = cg.paths(), bundle.cgroup_mount
    ready_r, launch.ready_w = os.pipe2(os.O_CLOEXEC)
    launch.state_dir = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    hooks_sock = hook_points(bundle, launch)
    umask = os.umask(bundle.umask) if bundle.umask is not None else None
    try:
        try:
            lifecycle.fork_init(launch, (None, None, None))  # (PID 1 inherits the umask)
        finally:
            if umask is not None:
                os.umask(umask)
        for fd in (launch.ready_w, launch.state_dir, launch.hooks.sock if launch.hooks else None):
            if fd is not None:
                os.close(fd)
        lifecycle.find_init_pid(launch)
        if not launch.init_pid:  # userns_init failed before its fork: its report says why
            from minidocker.runtime.forked import read_report

            assert launch.channels is not None
            read_report(launch.channels.err_r, lifecycle.start_failed)
            raise MinidockerError("the container's init exited before it was ready")
        if bundle.oom_score_adj is not None:  # (before go: PID 1's program inherits it across execve)
            procfs.set_oom_score_adj(launch.init_pid, bundle.oom_score_adj)
        lifecycle.create_cgroup(launch)
        if spec.ulimits:
            lifecycle.set_ulimits(launch)
        if spec.sysctls:
            lifecycle.set_sysctls(launch)
        assert launch.channels is not None  # fork_init opened them
        if hooks_sock is not None:
            await_runtime_hooks(hooks_sock, bundle, launch)
        launch.channels.go()
    except StepFailed as e:
        lifecycle.abandon(launch)
        raise lifecycle.as_start_error(e) from None
    except BaseException:
        lifecycle.abandon(launch)
        raise
    await_ready(ready_r, launch)  # (a failure there has reaped PID 1)
    if spec.tty:
        assert console_socket is not None  # create() refused a terminal without one
        send_console(launch.channels.parent_sock, console_socket)
    return launch.init_pid, launch.pid


def hook_points(bundle: Bundle, launch: lifecycle.Launch) -> int | None:
    """The hooks PID 1 runs (launch.hooks), and when the bundle has prestart or createRuntime
    hooks a socket pair: PID 1 waits on its end before pivot_root while we run them; ours
    is returned."""
    kinds = {k for k, v in bundle.hooks.items() if v}
    if not kinds & {"prestart", "createRuntime", "createContainer", "startContainer"}:
        return None
    import socket

    from minidocker.runtime import init

    ours = theirs = None
    if kinds & {"prestart", "createRuntime"}:
        ours, theirs = (s.detach() for s in socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM))
    state = oci_state_of(bundle.spec.id, {"bundle": bundle.path, "annotations": bundle.annotations}, "created")
    state["rootfs"] = bundle.rootfs
    launch.hooks = ContainerHooks(
        state, bundle.hooks.get("createContainer", []), bundle.hooks.get("startContainer", []), theirs
    )
    launch.plan.before_pivot = lambda: init.run_create_hooks(launch.hooks)
    return ours


def await_runtime_hooks(sock: int, bundle: Bundle, launch: lifecycle.Launch) -> None:
    """The prestart and createRuntime hooks, run while PID 1 waits before its pivot_root."""
    from minidocker.runtime.forked import read_report

    assert launch.hooks is not None and launch.channels is not None
    state = launch.hooks.state | {"pid": launch.init_pid}
    try:
        if not run_runtime_hooks(sock, bundle.hooks, state):  # PID 1 failed first: its report says why
            read_report(launch.channels.err_r, lifecycle.start_failed)
            raise MinidockerError("the container's init exited before it was ready")
    finally:
        os.close(sock)


def await_ready(ready_r: int, launch: lifecycle.Launch) -> None:
    """``ready`` closes when PID 1 waits for ``start``, or when it died: then its error
    pipe holds the report of the step that failed (written before it exited)."""
    import select

    from minidocker.runtime.forked import read_to_end

    read_to_end(ready_r)
    os.close(ready_r)
    assert launch.channels is not None
    err_r = launch.channels.err_r
    if select.select([err_r], [], [], 0)[0]:
        lifecycle.await_execve(err_r, launch.pid)
        os.waitpid(launch.pid, 0)
        raise MinidockerError("the container's init exited before it was ready")
    os.close(err_r)


def send_console(parent_sock: Any, console_socket: str) -> None:
    """The runtime spec's console socket: the pty master PID 1 made, sent with SCM_RIGHTS."""
    import socket

    from minidocker.runtime.stdio import receive_pty

    master = receive_pty(parent_sock)
    if master is None:
        raise MinidockerError("the container's init sent no pty master")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(console_socket)
            socket.send_fds(s, [b"/dev/ptmx"], [master])
    except OSError as e:
        raise MinidockerError(f"--console-socket {console_socket}: {e.strerror}") from None
    finally:
        os.close(master)


def start(root: str, cid: str) -> None:
    """Let a created container's PID 1 run its program: open exec.fifo for reading and
    take the byte PID 1 writes once it has it open; then the fifo goes (status running)."""
    d = state_dir(root, cid)
    st = load_state(root, cid)
    status = status_of(d, st)
    if status != "created":
        raise Conflict(f"cannot start a container that is {status}")
    fifo = os.open(d / FIFO, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        told = read_fifo(fifo, cid, st)
    finally:
        os.close(fifo)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(d / FIFO)
    if told.startswith(b"!"):  # a startContainer hook failed: PID 1 has exited
        kill_and_wait(st)
        raise HookFailed(told[1:].decode(errors="replace"))
    hooks = hooks_of(st.get("hooks")).get("poststart", [])
    run_hooks("poststart", hooks, oci_state_of(cid, st, "running"), warn=True)


def read_fifo(fifo: int, cid: str, st: dict[str, Any]) -> bytes:
    """PID 1's byte (it has the fifo open), then what it writes until the fifo closes,
    which is at its execve (or exit): a startContainer hook's failure, or nothing."""
    told = b""
    while True:
        try:
            chunk = os.read(fifo, 4096)
            if chunk:
                told += chunk
            elif told:  # EOF after PID 1's byte: it closed its end
                return told[1:]
        except BlockingIOError:  # PID 1 has it open but has not written (all) yet
            pass
        if not told and not alive(st["pid"], st.get("pidStartTime")):
            raise Conflict(f"container {cid}'s init exited before it started")
        time.sleep(0.001)


def kill(root: str, cid: str, sig: int, all_processes: bool = False) -> None:
    d = state_dir(root, cid)
    st = load_state(root, cid)
    status = status_of(d, st)
    if status not in ("created", "running", "paused"):
        raise Conflict(f"container {cid} is not running")
    if all_processes:
        for pid in cgroup_of(st).pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    else:
        os.kill(st["pid"], sig)
    if status == "paused" and sig == signal.SIGKILL:  # (a frozen task dies only once thawed)
        cgroup_of(st).thaw()


def delete(root: str, cid: str, force: bool = False) -> None:
    """Remove a stopped container's cgroup and state; ``force`` kills it first."""
    d = state_dir(root, cid)
    try:
        st = load_state(root, cid)
    except NoSuchContainer:
        if force:  # (runc's rule: what is not there is deleted already)
            return
        raise
    status = status_of(d, st)
    if status in ("created", "running", "paused"):
        if not force:
            raise Conflict(f"cannot delete container {cid} that is not stopped: {status}")
        kill_and_wait(st)
    state = oci_state_of(cid, st, "stopped")
    remove_container(d, st)
    run_hooks("poststop", hooks_of(st.get("hooks")).get("poststop", []), state, warn=True)


def cgroup_of(st: dict[str, Any]) -> cgroups.CgroupManager:
    parent, name = st["cgroup"]
    return cgroups.manager(name, parent=parent)


def kill_and_wait(st: dict[str, Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(st["pid"], signal.SIGKILL)
    for pid in cgroup_of(st).pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):  # a paused container's tasks take SIGKILL once thawed
        cgroup_of(st).thaw()
    deadline = time.monotonic() + 10
    while alive(st["pid"], st.get("pidStartTime")) and time.monotonic() < deadline:
        time.sleep(0.005)


def remove_container(d: Path, st: dict[str, Any]) -> None:
    cgroup_of(st).destroy()
    if st.get("hostMounts"):
        detach_host_mounts(st["hostMounts"]["path"], st["hostMounts"]["below"])
    from minidocker.fsutil import remove_tree

    remove_tree(d)


def detach_host_mounts(path: str, below: int | None) -> None:
    """A bundle without a mount namespace had PID 1 mount its /proc, /dev, ... in ours,
    below a bind of its rootfs onto itself: lazily unmount what is on top of ``path`` until
    the mount that was there before create (``below``) is on top again."""
    from minidocker.linux import syscalls as sc

    for _ in range(64):
        top = procfs.top_mount_id(path)
        if top is None or top == below:
            return
        sc.umount2(path, sc.MNT_DETACH)


def run(root: str, cid: str, bundle_dir: str, pid_file: str | None, console_socket: str | None, detach: bool) -> int:
    """``create`` + ``start``; without ``detach`` wait for the exit (signals passed on),
    remove the container and return its exit code."""
    from minidocker.errors import exit_code
    from minidocker.linux.syscalls import set_child_subreaper
    from minidocker.runtime.stdio import forwarding_signals

    set_child_subreaper()  # (with a user namespace PID 1 is our grandchild: orphaned, it becomes our child)
    pid, child = create(root, cid, bundle_dir, pid_file, console_socket)
    if child != pid:
        os.waitpid(child, 0)  # userns_init, which exits once PID 1 is forked
    try:
        start(root, cid)
    except BaseException:
        delete(root, cid, force=True)
        raise
    if detach:
        return 0
    with forwarding_signals(pid):
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
    delete(root, cid, force=True)
    return exit_code(status)
