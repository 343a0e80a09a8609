"""The parent's side of a container: create, start, wait, stop, kill, delete.

``start`` is the heart of it, a recipe of named steps (one kernel concept a line), as
``init.container_init`` is the child's::

    rootfs_plan, compile_security        the child's mounts; the seccomp program (cached:
                                         <root>/cache/seccomp)
    prepare_userns                       --userns=auto: the mapped user namespace, first
    connect_network                      a network namespace wired to each of the container's
                                         networks (attach.py), or join_network: another
                                         container's (--network container:X)
    join_ipc                             --ipc container:X: an fd of X's IPC namespace, and
                                         X's /dev/shm; or mount_shareable_shm: a /dev/shm on
                                         the host's side, for others to share (--ipc shareable)
    fork_init                            unshare(CLONE_NEWPID), fork: our child is PID 1 of a
                                         new PID namespace and runs runtime/init.py; then
                                         setns(our own PID namespace): our later children
                                         (and threads) stay with us
    find_init_pid                        the container's PID 1 on the host
    create_cgroup                        /sys/fs/cgroup/<controller>/minidocker/<id> and its
                                         limits, meanwhile the child unshares and builds its
                                         rootfs; then the child in it, before it runs anything
                                         of the image's
    set_ulimits                          --ulimit: prlimit(2) on the child (its command
                                         inherits them)
    set_sysctls                          --sysctl: a helper in the child's IPC and network
                                         namespaces writes their copies of the parameters
    record_running                       state.json: running, its PID, cgroup, address
    go                                   write(sync, "1")
    await_execve                         read(error pipe) -> EOF: execve succeeded (the pipe
                                         is O_CLOEXEC); a report: the step that failed

With ``--userns=auto`` the child forks the container's PID 1 itself (``init.userns_init``),
and the network namespace, which the user namespace must own, is made by the container and
wired once its PID 1 exists.

A foreground ``run`` waits in the CLI process itself (``run_attached``; the relays are in
stdio.py); ``run -d`` forks a monitor first (monitor.py, like conmon), which starts the
container, then becomes a small watcher of it (watch.py) that logs its output, and records
its exit. ``exec`` is in exec.py.

See it: ``minidocker run --rm --explain busybox true`` (``pid`` shows which side acts).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from minidocker.crashpoint import crashpoint
from minidocker.errors import ChildFailed, Conflict, ExitCode, MinidockerError, StartFailed
from minidocker.linux import cgroups, procfs
from minidocker.linux import syscalls as sc
from minidocker.record import field, record
from minidocker.runtime import rootfs
from minidocker.runtime.attach import attach_network, detach_network
from minidocker.runtime.container import Container, ContainerStore, alive, container_event
from minidocker.runtime.forked import read_report
from minidocker.runtime.init import InitPipes, container_init, preload_tty, userns_init
from minidocker.runtime.logfile import now_iso
from minidocker.runtime.spec import STREAMS, ContainerSpec
from minidocker.runtime.stdio import (
    FORWARDED_SIGNALS,
    lazy_notices,
    open_log,
    receive_pty,
    relay_output,
    relay_pty,
    reset_signals,
    telling_notices,
    wait_foreground,
)
from minidocker.runtime.steps import StepFailed, exiting_on_failure, step

TYPE_CHECKING = False  # (typing is not imported on a container start's path)
if TYPE_CHECKING:
    import socket

    from minidocker.linux import network, seccomp
    from minidocker.oci.hooks import ContainerHooks


def start_failed(message: str, step: str, exit_code: int) -> StartFailed:
    """docker's wording: the command's own failure (126, 127) reads as it is; any other
    names the step of ours that failed."""
    if exit_code not in (ExitCode.CANNOT_INVOKE, ExitCode.NOT_FOUND):
        message = f"container start failed at {step}: {message}"
    return StartFailed(message, step=step, exit_code=exit_code)


def as_start_error(e: StepFailed) -> MinidockerError:
    """A parent step's failure, for the user: our own errors as they are (they say what
    failed already), any other named after its step."""
    return e.error if isinstance(e.error, MinidockerError) else start_failed(e.message, e.step, e.code)


@record
class Started:
    pid: int
    master: int | None  # the pty master, with -t


def write_etc_files(c: Container) -> dict[str, str]:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf, bound into the container read-write
    (with --network container:X, X's own files, as docker shares them)."""
    spec = c.spec
    if spec.network.startswith("container:"):
        other = ContainerStore(c.layout.store.root).load(spec.network.removeprefix("container:"))
        paths = (other.layout.hostname, other.layout.hosts, other.layout.resolv_conf)
        return {f"/etc/{path.name}": str(path) for path in paths}
    localhost = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    if spec.network == "host":
        hosts = Path("/etc/hosts").read_text() if os.path.exists("/etc/hosts") else ""
        hostname = spec.hostname or os.uname().nodename
    elif spec.network != "none":  # a bridge: attach_network adds our address
        hosts, hostname = localhost, spec.hostname
    else:
        hosts, hostname = localhost + f"127.0.1.1\t{spec.hostname}\n", spec.hostname
    hosts += "".join(f"{host_gateway(ip)}\t{host}\n" for host, _, ip in (e.partition(":") for e in spec.extra_hosts))
    resolv = resolv_conf(spec, _resolver_address(c) if spec.network not in ("none", "host") else None)
    for path, text in ((c.layout.hostname, hostname + "\n"), (c.layout.hosts, hosts), (c.layout.resolv_conf, resolv)):
        path.write_text(text)
    return {f"/etc/{path.name}": str(path) for path in (c.layout.hostname, c.layout.hosts, c.layout.resolv_conf)}


def host_gateway(ip: str) -> str:
    """``--add-host NAME:host-gateway``: the host as containers reach it, the default
    bridge's gateway (docker's host-gateway-ip)."""
    from minidocker.runtime.networks import DEFAULT

    return DEFAULT["Gateway"] if ip == "host-gateway" else ip


def _resolver_address(c: Container) -> str | None:
    """The network resolver the container asks (its first network's gateway, on a user
    network), or None: the host's resolvers (the default bridge, the host's network)."""
    from minidocker.runtime.attach import endpoints
    from minidocker.runtime.networks import NetworkStore

    first = next(iter(endpoints(c)), None)
    if first is None or first == "bridge":
        return None
    return NetworkStore(c.layout.store.root).get(first)["Gateway"]


def resolv_conf(spec: ContainerSpec, resolver: str | None) -> str:
    """The container's /etc/resolv.conf, by docker's rules: on a user network only its
    resolver (which forwards the rest); else the host's resolvers, loopback ones dropped
    (the container cannot reach them); --dns, --dns-search, --dns-option replace the
    host's nameservers, search domains, options."""
    if spec.network == "none" and not (spec.dns or spec.dns_search or spec.dns_options):
        return "# no network: --network none\n"
    from minidocker.runtime import dns

    host = dns.host_resolv_conf()
    search = spec.dns_search or [w for line in host.splitlines() if line.startswith("search") for w in line.split()[1:]]
    options = spec.dns_options or [
        w for line in host.splitlines() if line.startswith("options") for w in line.split()[1:]
    ]
    if resolver:
        servers = [resolver]
    elif spec.network == "host" and not spec.dns:
        servers = [
            line.split()[1] for line in host.splitlines() if line.startswith("nameserver") and len(line.split()) > 1
        ]
    else:
        servers = spec.dns or dns.upstream_resolvers(host)
    lines = [f"nameserver {s}" for s in servers]
    lines += [f"search {' '.join(search)}"] if search else []
    lines += [f"options {' '.join(options)}"] if options else []
    return "".join(line + "\n" for line in lines) or "# no resolvers\n"


def _volumes_of(c: Container) -> list[rootfs.Volume]:
    """Binds, volumes (made if gone), tmpfs mounts: runtime/volumes.py, for a container that has any."""
    if not c.spec.volumes:
        return []
    from minidocker.runtime.volumes import rootfs_volumes

    return rootfs_volumes(c)


def rootfs_plan(c: Container, lowerdirs: list[Path]) -> rootfs.RootfsPlan:
    if not lowerdirs:  # an image with no layers: overlay still wants one lowerdir
        empty = c.layout.empty
        empty.mkdir(exist_ok=True)
        lowerdirs = [empty]
    return rootfs.RootfsPlan(
        lowerdirs=[str(p) for p in lowerdirs],
        upper=str(c.layout.upper),
        work=str(c.layout.work),
        merged=str(c.layout.merged),
        etc_files=write_etc_files(c),
        volumes=_volumes_of(c),
        readonly=c.spec.readonly_rootfs,
        tmpfs=list(c.spec.tmpfs),
        privileged=c.spec.privileged,
        shm_size=c.spec.shm_size or rootfs.DEFAULT_SHM_SIZE,
        shm=shm_source(c.spec.ipc_mode),
        devices=container_devices(c.spec) if c.spec.devices else [],
    )


def shm_source(ipc_mode: str) -> str:
    """What the container's /dev/shm is (rootfs.mount_shm): with ``--ipc host`` the host's,
    as docker binds it; with ``none`` nothing; else a tmpfs of its own."""
    return {"host": "/dev/shm", "none": "none"}.get(ipc_mode, "")


def container_devices(spec: ContainerSpec) -> list[dict]:
    """``--device``'s nodes, read from the host at each start (runtime/devices.py)."""
    from minidocker.runtime.devices import container_devices as nodes

    return nodes(spec)


def seccomp_cache(c: Container) -> Path:
    """Where compiled seccomp programs are kept (see linux/seccomp.py): <root>/cache/seccomp."""
    return c.layout.store.seccomp_cache


def compile_security(spec: ContainerSpec, cache_dir: Path | None) -> seccomp.CompiledFilter | None:
    """Before fork: the container's seccomp program (None when unconfined), which the child
    loads last (``init.apply_seccomp``)."""
    if spec.seccomp == "unconfined":
        return None
    from minidocker.linux import seccomp

    with reporting_seccomp_errors():
        return seccomp.filter_for(
            None if spec.seccomp == "default" else spec.seccomp, set(spec.capabilities), cache_dir
        )


SECCOMP_INSTALL_HINTS = {"pyseccomp": "pip install pyseccomp", "libseccomp2": "apt-get install libseccomp2"}


@contextlib.contextmanager
def reporting_seccomp_errors() -> Iterator[None]:
    """linux/seccomp.py's failures as the one line the user reads: a bad profile as it
    says (ValueError), an unreadable one with its path, a rule libseccomp refused (OSError),
    a missing library with what to install (ImportError)."""
    try:
        yield
    except ImportError as e:
        raise MinidockerError(e.msg, hint=SECCOMP_INSTALL_HINTS.get(e.name or "")) from e
    except ValueError as e:
        raise MinidockerError(str(e)) from None
    except OSError as e:
        if e.filename:
            raise MinidockerError(f"seccomp profile {e.filename}: cannot read it: {e.strerror}") from None
        raise MinidockerError(f"seccomp: {e.strerror}") from None


@record
class Channels:
    """The pipes between a parent and the child it starts, made before fork::

        sync     the parent's "go" (one byte): the child's cgroup is ready
        err      the child's report (forked.py), O_CLOEXEC: its execve closes it
        sock     -t: a unix socket pair; the child sends the pty master over it (SCM_RIGHTS)

    After fork each side closes the other's ends."""

    sync_r: int
    sync_w: int
    err_r: int
    err_w: int
    parent_sock: socket.socket | None = None
    child_sock: socket.socket | None = None

    @classmethod
    def open(cls, tty: bool) -> Channels:
        socks: tuple[socket.socket | None, socket.socket | None] = (None, None)
        if tty:  # (socket is imported only here: a start without -t needs none)
            import socket

            socks = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(*os.pipe(), *os.pipe2(os.O_CLOEXEC), *socks)

    @property
    def console(self) -> int | None:
        return self.child_sock.fileno() if self.child_sock else None

    def close_parent_ends(self) -> None:
        """In the child."""
        os.close(self.sync_w)
        os.close(self.err_r)

    def close_child_ends(self) -> None:
        """In the parent, once the child has its copies."""
        os.close(self.sync_r)
        os.close(self.err_w)
        if self.child_sock:
            self.child_sock.close()

    def go(self) -> None:
        """Tell the child to go on (it waits in ``init.wait_for_parent``)."""
        with contextlib.suppress(BrokenPipeError):  # it failed first: await_execve reads why
            os.write(self.sync_w, b"1")
        self.close_sync()

    def close_sync(self) -> None:
        if self.sync_w != -1:
            os.close(self.sync_w)
            self.sync_w = -1


# --pause-at (pausing.py) sets this: it follows a start whose PID 1 pauses, until execve
follow_pause: Callable[[int, int, dict[str, str]], None] | None = None


def await_execve(err_r: int, pid: int, error=start_failed) -> None:
    """Block until the child's error pipe closes: EOF alone means execve succeeded (the pipe
    is O_CLOEXEC); a report on it is the step that failed (raised as ``error``), and the
    child is reaped."""
    try:
        read_report(err_r, error)
    except ChildFailed:
        os.waitpid(pid, 0)
        raise


@record
class Launch:
    """What the parent's steps of one start share."""

    c: Container
    plan: rootfs.RootfsPlan
    compiled_filter: seccomp.CompiledFilter | None
    channels: Channels | None = None
    userns_fd: int | None = None  # --userns=auto: the user namespace our child enters
    netns_fd: int | None = None  # a bridge (or container:X): the network namespace our child joins
    ipcns_fd: int | None = None  # --ipc container:X: the IPC namespace our child joins
    utsns_fd: int | None = None  # minidocker-runc: a bundle's UTS namespace by path, joined by our child
    pidns_fd: int | None = None  # minidocker-runc: a bundle's PID namespace by path, our child is born in
    mntns_fd: int | None = None  # minidocker-runc: a bundle's mount namespace by path, joined by our child
    shared: tuple[str, ...] = ()  # minidocker-runc: the namespaces a bundle shares with us (InitPipes.shared)
    attachments: dict[str, network.Attachment] = field(default_factory=dict)  # network -> our place on it
    pid_r: int = -1  # --userns=auto: userns_init reports PID 1's host PID here
    pid: int = 0  # our child
    init_pid: int | None = None  # the container's PID 1, as the host sees it
    outlives_parent: bool = False  # minidocker-runc create: PID 1 stays when create exits (no pdeathsig)
    ready_w: int | None = None  # minidocker-runc create: init.wait_for_start's pipes
    state_dir: int | None = None
    cgroup: tuple[str, str] | None = None  # minidocker-runc: (parent, name) from cgroupsPath; None: minidocker/<id>
    hooks: ContainerHooks | None = None  # minidocker-runc: the bundle's hooks PID 1 runs (oci/hooks.py)

    @property
    def bridged(self) -> bool:
        """On one network or more (``--network container:X`` joins X's namespace instead)."""
        from minidocker.runtime.attach import endpoints

        return bool(endpoints(self.c))

    @property
    def joins(self) -> bool:
        return self.c.spec.network.startswith("container:")


def start(
    store: ContainerStore,
    c: Container,
    lowerdirs: list[Path],
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    monitor_pid: int | None = None,
) -> Started:
    """Create the container's processes and return once its command is executing (the
    recipe is in the module docstring). A failure of one of our steps undoes the start."""
    launch = Launch(c, rootfs_plan(c, lowerdirs), compile_security(c.spec, seccomp_cache(c)))
    try:
        if c.spec.idmap:
            prepare_userns(launch)
        if launch.joins:
            join_network(store, launch)
        elif launch.bridged and not c.spec.idmap:
            connect_network(launch)
        if c.spec.ipc_mode.startswith("container:"):
            join_ipc(store, launch)
        elif c.spec.ipc_mode == "shareable":
            mount_shareable_shm(launch)
        fork_init(launch, (stdin, stdout, stderr))
        find_init_pid(launch)
        if launch.bridged and c.spec.idmap and launch.init_pid:
            connect_network(launch)
        create_cgroup(launch)
        if c.spec.ulimits:
            set_ulimits(launch)
        if c.spec.sysctls:
            set_sysctls(launch)
        record_running(store, launch, monitor_pid or os.getpid())
        assert launch.channels is not None  # fork_init opened them
        launch.channels.go()
    except StepFailed as e:
        if not (launch.pid and isinstance(e.error, ProcessLookupError)):
            abandon(launch)
            raise as_start_error(e) from None
        # else the container's first process died before we could move it: await_execve says why
    except BaseException:
        abandon(launch)
        raise
    finally:
        if launch.channels:
            launch.channels.close_sync()
    channels = launch.channels
    assert channels is not None  # we get here only once fork_init ran: an earlier step's failure was raised
    if follow_pause is not None:
        follow_pause(channels.err_r, launch.init_pid or launch.pid, cgroups.manager(c.id).paths())
    try:
        await_execve(channels.err_r, launch.pid)
    except StartFailed as e:
        store.update(c, Status="exited", ExitCode=e.exit_code, Pid=0, FinishedAt=now_iso(), Error=e.message)
        detach_network(c)
        release_shm(c)
        raise
    return Started(launch.pid, receive_pty(channels.parent_sock))


def abandon(launch: Launch) -> None:
    """Undo a start that failed after fork: the child killed and reaped, its address back."""
    if launch.pid:
        os.kill(launch.pid, signal.SIGKILL)
        os.waitpid(launch.pid, 0)
        detach_network(launch.c)
    release_shm(launch.c)


@step
def prepare_userns(launch: Launch) -> None:
    """``--userns=auto``, the parent's part: the mapped user namespace (as an fd), an empty
    directory per layer for its idmapped view, and the container's own files handed to its
    root (host ``uid``): the upper dir (the root directory the container sees) and /etc files."""
    from minidocker.fsutil import remove_tree
    from minidocker.linux.userns import create_user_namespace

    c, plan = launch.c, launch.plan
    idmap = c.spec.idmap
    assert idmap is not None  # start() takes this step only for --userns=auto, which sets the idmap
    views = c.layout.layer_views
    if views.exists():
        remove_tree(views)  # a restart: views of the last run (copies, or mount points)
    plan.layer_views = []
    for i in range(len(plan.lowerdirs)):
        c.layout.layer_view(i).mkdir(parents=True)
        plan.layer_views.append(str(c.layout.layer_view(i)))
    plan.idmap = dict(idmap)
    os.chown(plan.upper, idmap["uid"], idmap["gid"])
    for source in plan.etc_files.values():
        os.chown(source, idmap["uid"], idmap["gid"])
    size = idmap["size"]
    launch.userns_fd = create_user_namespace([(0, idmap["uid"], size)], [(0, idmap["gid"], size)])


@step
def connect_network(launch: Launch) -> None:
    """``--network bridge|NAME``: before fork, a new network namespace wired to the bridge,
    for the child to join; with --userns=auto, once PID 1 exists, the namespace it made
    (a namespace is owned by the user namespace of the process that makes it)."""
    if launch.init_pid is None:
        launch.netns_fd, launch.attachments = attach_network(launch.c)
        return
    own = procfs.open_namespace(launch.init_pid, "net")
    try:
        _, launch.attachments = attach_network(launch.c, own)
    finally:
        os.close(own)


@step
def join_network(store: ContainerStore, launch: Launch) -> None:
    """``--network container:X``: our child joins X's network namespace (setns), as docker
    and a Kubernetes pod share one: the same interfaces, addresses and ports."""
    target = launch.c.spec.network.removeprefix("container:")
    other = store.refresh(store.load(target))
    if not other.running or not alive(other.state.get("Pid"), other.state.get("PidStartTime")):
        raise Conflict(f"cannot join network of a non running container: {target[:12]}")
    launch.netns_fd = procfs.open_namespace(other.state["Pid"], "net")


@step
def join_ipc(store: ContainerStore, launch: Launch) -> None:
    """``--ipc container:X``: our child joins X's IPC namespace (setns), so the two share
    SysV shared memory, semaphores and message queues; X must be running and shareable."""
    target = launch.c.spec.ipc_mode.removeprefix("container:")
    other = store.refresh(store.load(target))
    if not other.running or not alive(other.state.get("Pid"), other.state.get("PidStartTime")):
        raise Conflict(f"cannot join IPC of a non running container: {target[:12]}")
    if other.spec.ipc_mode not in ("shareable", "host"):
        raise Conflict("non-shareable IPC (hint: use IpcMode:shareable for the donor container)")
    launch.ipcns_fd = procfs.open_namespace(other.state["Pid"], "ipc")
    launch.plan.shm = shm_source("host") if other.spec.ipc_mode == "host" else str(other.layout.shm)


@step
def mount_shareable_shm(launch: Launch) -> None:
    """``--ipc shareable``: the container's /dev/shm made on the host's side, a tmpfs at
    containers/<id>/shm that the child binds at /dev/shm, so that a container which joins
    this IPC namespace (--ipc container:X) binds the same one and sees the same POSIX
    shared memory, as docker does. See it: ``findmnt -t tmpfs | grep shm`` on the host."""
    path = launch.c.layout.shm
    path.mkdir(exist_ok=True)
    if not os.path.ismount(path):  # (a restart: still mounted if its stop did not run)
        size = launch.c.spec.shm_size or rootfs.DEFAULT_SHM_SIZE
        flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
        sc.mount("shm", str(path), "tmpfs", flags, f"mode=1777,size={size}")
    launch.plan.shm = str(path)


@step
def fork_init(launch: Launch, stdio: tuple[int | None, int | None, int | None]) -> None:
    """Fork the container's first process (``become_container``). Without a user namespace,
    unshare(CLONE_NEWPID) first: it changes where *our* next children go, so the child is
    PID 1 of a new PID namespace; afterwards setns(2) points it back at our own (the kernel
    refuses us threads while the two differ). ``--pid host``: the child stays in ours;
    ``--pid container:X``: setns(2) into X's instead, so the child is one more process there."""
    own_pid_ns = -1
    launch.channels = Channels.open(launch.c.spec.tty)
    pid_w = -1
    pid_mode = launch.c.spec.pid_mode
    if launch.pidns_fd is not None:  # (a bundle's linux.namespaces pid path)
        own_pid_ns = procfs.open_namespace("self", "pid")
        sc.setns(launch.pidns_fd, sc.CLONE_NEWPID, why="a bundle's PID namespace by path: our child is born there")
    elif launch.userns_fd is None and pid_mode != "host":
        if pid_mode.startswith("container:"):
            other = join_pid_namespace(ContainerStore(launch.c.layout.store.root), pid_mode.removeprefix("container:"))
            own_pid_ns = procfs.open_namespace("self", "pid")
            sc.setns(other, sc.CLONE_NEWPID, why="--pid container:X: our child joins X's PID namespace")
            os.close(other)
        else:
            own_pid_ns = procfs.open_namespace("self", "pid")
            sc.unshare(sc.CLONE_NEWPID)
    elif launch.userns_fd is not None:
        launch.pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    preload_tty(launch.c.spec)
    launch.pid = os.fork()
    if launch.pid == 0:
        become_container(launch, stdio, pid_w, own_pid_ns)
    if own_pid_ns != -1:
        sc.setns(own_pid_ns, sc.CLONE_NEWPID, why="our later children stay in our own PID namespace")
    joined = (launch.netns_fd, launch.ipcns_fd, launch.utsns_fd, launch.pidns_fd, launch.mntns_fd)
    for fd in (own_pid_ns, launch.userns_fd, pid_w, *joined):
        if fd is not None and fd != -1:
            os.close(fd)
    launch.channels.close_child_ends()


def join_pid_namespace(store: ContainerStore, target: str) -> int:
    """``--pid container:X``: an fd of running X's PID namespace (docker's words if it is not)."""
    other = store.refresh(store.load(target))
    if not other.running or not alive(other.state.get("Pid"), other.state.get("PidStartTime")):
        raise Conflict(f"cannot join PID of a non running container: {target[:12]}")
    return procfs.open_namespace(other.state["Pid"], "pid")


def become_container(
    launch: Launch, stdio: tuple[int | None, int | None, int | None], pid_w: int, own_pid_ns: int
) -> None:
    """Our child, after fork: it becomes the container (runtime/init.py). Never returns."""
    c, ch = launch.c, launch.channels
    try:
        assert ch is not None  # fork_init opened them before it forked us
        with exiting_on_failure(ch.err_w):
            # (getppid() is 0 here: our parent lives outside our PID namespace)
            if not launch.outlives_parent:
                sc.set_pdeathsig(signal.SIGKILL)
            for fd in (own_pid_ns, launch.pid_r):
                if fd != -1:
                    os.close(fd)
            ch.close_parent_ends()
            reset_signals()
            stdin, stdout, stderr = stdio
            pipes = InitPipes(
                ch.sync_r,
                ch.err_w,
                ch.console,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                netns=launch.netns_fd,
                ipcns=launch.ipcns_fd,
                utsns=launch.utsns_fd,
                mntns=launch.mntns_fd,
                shared=launch.shared,
                ready_w=launch.ready_w,
                state_dir=launch.state_dir,
                hooks=launch.hooks,
            )
            if launch.userns_fd is not None:
                userns_init(
                    c.spec,
                    launch.plan,
                    pipes,
                    launch.compiled_filter,
                    launch.userns_fd,
                    pid_w,
                    tuple(s for s in FORWARDED_SIGNALS if s != signal.SIGWINCH),
                    leave=launch.outlives_parent,
                )
            container_init(c.spec, launch.plan, pipes, launch.compiled_filter)
    finally:
        os._exit(ExitCode.MINIDOCKER_FAILED)


@step
def find_init_pid(launch: Launch) -> None:
    """The container's PID 1 on the host: our child, or with --userns=auto our child's
    child, which ``userns_init`` reports (none if it failed first: await_execve says why)."""
    if launch.pid_r == -1:
        launch.init_pid = launch.pid
        return
    launch.init_pid = read_report(launch.pid_r).get("pid")


def hasten_cgroup_moves() -> None:
    """Begin, in a thread, the kernel's wait that moving PID 1 into its cgroup would make
    (linux/hasten.py): it passes while ``run`` reads the image and writes the record. (The
    entry point began it already for a ``run`` command line: this is for the library's callers.)"""
    from minidocker.linux.hasten import hasten_moves

    hasten_moves()


@step
def create_cgroup(launch: Launch) -> None:
    """While the child unshares its namespaces and builds its rootfs, we make its cgroup
    and move it in; it waits for our word before it runs anything of the image's."""
    c = launch.c
    cg = cgroups.manager(c.id) if launch.cgroup is None else cgroups.manager(launch.cgroup[1], parent=launch.cgroup[0])
    cg.create()
    crashpoint("start:cgroup-created")
    # every rule first (a process must never be in a cgroup whose device rules are half
    # written: "deny all" comes before the allows), then the process (no wait for the
    # kernel's lock here: the start began that wait early, linux/hasten.py)
    extra = device_rules(c.spec) if c.spec.devices or c.spec.device_cgroup_rules else ()
    cg.apply_limits(cgroups.Limits(**c.spec.limits, devices=extra), privileged=c.spec.privileged)
    if launch.init_pid:
        cg.add(launch.init_pid)


def device_rules(spec: ContainerSpec) -> tuple[str, ...]:
    """--device and --device-cgroup-rule's rules for the device cgroup (runtime/devices.py)."""
    from minidocker.runtime.devices import cgroup_rules

    return cgroup_rules(spec)


@step
def set_ulimits(launch: Launch) -> None:
    """``--ulimit``: prlimit(2) on the container's first process while it waits for our word;
    its command inherits the limits through execve. (Raising a hard limit needs
    CAP_SYS_RESOURCE, which root lacks on some hosts: the kernel's EPERM says so.)"""
    prlimits(launch.init_pid or launch.pid, launch.c.spec.ulimits)


def prlimits(pid: int, ulimits: list[dict]) -> None:
    """``ulimits`` (ContainerSpec's form) on process ``pid`` (also minidocker-runc exec's)."""
    import resource

    from minidocker.runtime.spec import ULIMITS

    for u in ulimits:
        soft, hard = (resource.RLIM_INFINITY if v == -1 else v for v in (u["Soft"], u["Hard"]))
        try:
            resource.prlimit(pid, ULIMITS[u["Name"]], (soft, hard))
        except (OSError, ValueError) as e:
            raise MinidockerError(
                f"cannot set ulimit {u['Name']}={u['Soft']}:{u['Hard']}: {getattr(e, 'strerror', None) or e}"
            ) from None


@step
def set_sysctls(launch: Launch) -> None:
    """``--sysctl``: the container's own copies of kernel parameters, written by a helper
    that joins its IPC and network namespaces (a namespaced parameter reads and writes the
    copy of the writer's namespace). The child makes those namespaces itself, so first we
    wait until /proc/PID/ns says it has: never may a write reach the host's."""
    pid = launch.init_pid or launch.pid
    kinds = {"ipc": sc.CLONE_NEWIPC} | ({"net": sc.CLONE_NEWNET} if launch.c.spec.network != "host" else {})
    deadline = time.monotonic() + 10
    while any(procfs.namespace_of(pid, k) == procfs.namespace_of("self", k) for k in kinds):
        if time.monotonic() > deadline:
            raise MinidockerError("sysctl: the container did not make its namespaces in time")
        time.sleep(0.001)
    from minidocker.runtime.forked import run_in_child

    def write_parameters() -> None:
        for kind, flag in kinds.items():
            sc.setns(procfs.open_namespace(pid, kind), flag, why="the container's copy of its parameters")
        for key, value in launch.c.spec.sysctls.items():
            try:
                procfs.write_sysctl(key, value)
            except OSError as e:
                raise MinidockerError(f"{key}={value}: {e.strerror}") from None

    try:
        run_in_child(write_parameters)
    except ChildFailed as e:
        raise MinidockerError(f"sysctl: {e.message}") from None


@step
def record_running(store: ContainerStore, launch: Launch, monitor_pid: int) -> None:
    """state.json: running, with what ``ps``, ``exec``, ``kill`` and ``rm`` need to find it."""
    c, cg = launch.c, cgroups.manager(launch.c.id)
    pid = launch.init_pid or launch.pid
    store.update(
        c,
        Status="running",
        Pid=pid,
        PidStartTime=procfs.start_time(pid),
        BootId=procfs.boot_id(),
        StartedAt=now_iso(),
        FinishedAt="",
        ExitCode=0,
        Error="",
        MonitorPid=monitor_pid,
        MonitorStartTime=procfs.start_time(monitor_pid),
        Cgroup=cg.paths(),
        CgroupVersion=cg.version,
        Network=None,  # (a record from before had its one attachment here)
        Networks={name: att.__dict__ for name, att in launch.attachments.items()},
    )
    container_event(c, "start")


def run_attached(store: ContainerStore, c: Container, lowerdirs: list[Path], attached: tuple[str, ...] = ()) -> int:
    """A foreground run: this process is the container's parent, with the user's terminal
    (relayed through a pty with -t) or its stdin/stdout/stderr; returns the exit code.
    ``attached`` (``run -a stdout``): only these streams are ours, the others go to the log
    only (stdin: the container reads /dev/null); none named: all of them."""
    try:
        if c.spec.auto_remove and not attached:  # no record will be left to read a log from: no log
            notices = lazy_notices([str(p) for p in lowerdirs])  # (before the start: its first reads are at once)
            started = start(store, c, lowerdirs)
            with telling_notices(notices):
                code = (
                    relay_pty(started.pid, started.master, c.spec.stdin_open)
                    if started.master is not None
                    else wait_foreground(started.pid)
                )
            container_event(c, "die", exitCode=code)
            return code  # no "exited" record to write (and fsync): cleanup removes the record
        code = _run_attached_logged(store, c, lowerdirs, {s.lower() for s in attached} or set(STREAMS))
        record_exit(store, c, code, oom_killed=cgroups.manager(c.id).oom_killed())
        return code
    finally:
        if c.spec.auto_remove:
            cleanup(store, c)
        else:
            cgroups.manager(c.id).destroy()


def _run_attached_logged(store: ContainerStore, c: Container, lowerdirs: list[Path], shown: set[str]) -> int:
    """As docker does, a foreground container keeps a log too (``logs`` reads it later):
    its output comes to us through pipes (or its pty) and we copy it to the terminal (the
    ``shown`` streams) and to ``container.log``."""
    log = open_log(c)
    stdin = "stdin" in shown
    if c.spec.tty:
        notices = lazy_notices([str(p) for p in lowerdirs])
        started = start(store, c, lowerdirs)
        assert started.master is not None  # with -t the child sends the pty master before its execve
        with telling_notices(notices):
            return relay_pty(started.pid, started.master, c.spec.stdin_open and stdin, log)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = -1 if stdin else os.open("/dev/null", os.O_RDONLY)
    notices = lazy_notices([str(p) for p in lowerdirs])
    try:
        started = start(store, c, lowerdirs, stdin=None if stdin else null, stdout=out_w, stderr=err_w)
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        for fd in (out_w, err_w, null):
            if fd != -1:
                os.close(fd)
    out = sys.stdout.fileno() if "stdout" in shown else -1
    err = sys.stderr.fileno() if "stderr" in shown else -1
    streams = {out_r: (out, "stdout"), err_r: (err, "stderr")}
    return relay_output(started.pid, streams, log, notices)


def record_exit(store: ContainerStore, c: Container, code: int, oom_killed: bool = False) -> None:
    """docker reports an OOM kill as exit 137 with State.OOMKilled true."""
    if oom_killed:
        container_event(c, "oom")
    container_event(c, "die", exitCode=code)  # (before the record: `stop` waits for the record, then says "stop")
    store.update(c, Status="exited", ExitCode=code, Pid=0, FinishedAt=now_iso(), OOMKilled=oom_killed)
    detach_network(c)
    release_shm(c)


def release_shm(c: Container) -> None:
    """A shareable container's /dev/shm, unmounted from the host once it stops (as docker
    does); containers that bound it keep theirs until they end (MNT_DETACH)."""
    if c.spec.ipc_mode == "shareable":
        try:
            sc.umount2(str(c.layout.shm), sc.MNT_DETACH)
        except OSError:  # not mounted: a start that failed before, a second stop
            pass


def cleanup(store: ContainerStore, c: Container, remove_volumes: bool = False) -> None:
    """Remove what the container had on the host: its cgroup, its address, its directory;
    with ``remove_volumes`` (``rm -v``) or ``--rm`` the anonymous volumes it made."""
    if c.damaged:  # its record lost the monitor's PID: find the monitor by its children
        stop_monitors(cgroups.manager(c.id).pids())
    cgroups.manager(c.id).destroy()
    detach_network(c)
    release_shm(c)
    store.remove_files(c)
    if (remove_volumes or c.spec.auto_remove) and c.spec.volumes:
        from minidocker.runtime.volumes import VolumeStore

        VolumeStore(store.root).remove_anonymous(c.spec.volumes)
    release_lazy_layers(store)


def release_lazy_layers(store: ContainerStore) -> None:
    """A container removed: unmount the lazy layers (pull --lazy) that no running container
    needs any more, and end their FUSE servers (lazy/mounts.py). One listdir when none is."""
    try:
        if not any(not n.startswith(".") for n in os.listdir(store.layout.lazy_dir)):
            return  # (no lazy layer: nothing more is imported on a start's path)
    except FileNotFoundError:
        return
    from minidocker.lazy.layers import LazyLayers

    if not LazyLayers(store.layout).any_mounted():
        return
    from minidocker.lazy.mounts import release_unused

    release_unused(store.root, {c.spec.image_id for c in store.all() if c.running})


def stop_monitors(container_pids: list[int]) -> None:
    """SIGKILL the minidocker processes above a container's processes (its monitor, a
    foreground ``run``, the --userns=auto helper), so none of them restarts the container or
    writes its record again. A process counts only if it runs the same interpreter as we do
    and its command line names minidocker; never ourselves or our own parents."""
    ours = procfs.exe_path(os.getpid())
    spared = {os.getpid(), os.getppid(), 0, 1}
    inside = set(container_pids)
    for pid in container_pids:
        for _ in range(3):  # container -> userns helper -> monitor, at most
            pid = procfs.parent_pid(pid) or 0
            if pid in spared or pid in inside:
                break
            if procfs.exe_path(pid) != ours or not any("minidocker" in a for a in procfs.cmdline(pid)):
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            spared.add(pid)


def signal_container(c: Container, sig: int) -> None:
    pid = c.state.get("Pid")
    if not c.running or not alive(pid, c.state.get("PidStartTime")):
        raise Conflict(f"Cannot kill container: {c.id[:12]}: container {c.id[:12]} is not running")
    assert pid is not None  # alive() is false without a PID
    os.kill(pid, sig)
    container_event(c, "kill", signal=sig)
    if c.state.get("Status") == "paused":  # a frozen process gets the signal only once thawed
        unpause(ContainerStore(c.layout.store.root), c)


def pause(store: ContainerStore, c: Container) -> None:
    """``pause``: every process of the container frozen by its cgroup (v1 freezer.state
    FROZEN, v2 cgroup.freeze 1): they stay in memory and get no CPU until ``unpause``."""
    if not c.running:
        raise Conflict(f"Container {c.id[:12]} is not running")
    if c.state.get("Status") == "paused":
        raise Conflict(f"Container {c.id[:12]} is already paused")
    cgroups.manager(c.id).freeze()
    store.update_if(c, "running", Status="paused")
    container_event(c, "pause")


def unpause(store: ContainerStore, c: Container) -> None:
    if c.state.get("Status") != "paused":
        raise Conflict(f"Container {c.id[:12]} is not paused")
    cgroups.manager(c.id).thaw()
    store.update_if(c, "paused", Status="running")
    container_event(c, "unpause")


def wait_gone(c: Container, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(c.state.get("Pid"), c.state.get("PidStartTime")):
            return True
        time.sleep(0.02)
    return not alive(c.state.get("Pid"), c.state.get("PidStartTime"))


def stop_container(c: Container, sig: int, timeout: float) -> None:
    """``stop``'s and ``rm -f``'s end of a container: ``sig``, then SIGKILL if it is still
    there after ``timeout`` seconds (docker's rule); a container already gone is no error."""
    for signum, wait in ((sig, timeout), (signal.SIGKILL, 10)):
        with contextlib.suppress(MinidockerError):
            signal_container(c, signum)
        if wait_gone(c, wait):
            return
