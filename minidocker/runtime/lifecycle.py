"""The parent's side of a container: create, start, wait, stop, kill, delete; and exec.

``start`` is the heart of it (the recipe, one kernel concept a line)::

    compile_security()                   the seccomp program (cached: <root>/cache/seccomp)
    unshare(CLONE_NEWPID)                our next child is PID 1 of a new PID namespace
    fork()                               the child runs runtime/init.py: namespaces, rootfs, exec
    setns(our own PID namespace)         our later children (and threads) stay with us
    cgroup.create() + limits             /sys/fs/cgroup/<controller>/minidocker/<id>, meanwhile
                                         the child unshares and builds its rootfs
    cgroup.add(child)                    before it runs anything of the image's
    write(sync, "1")                     go
    read(error pipe) -> EOF              execve succeeded (the pipe is O_CLOEXEC)

With ``--userns=auto`` a user namespace comes first (``prepare_userns``) and the child forks
the container's PID 1 itself (``init.userns_init``).

A foreground ``run`` waits in the CLI process itself; ``run -d`` forks a monitor first (like
conmon), which starts the container, logs its output and records its exit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from minidocker.errors import Conflict, ExitCode, MinidockerError
from minidocker.linux import cgroups
from minidocker.linux import syscalls as sc
from minidocker.runtime import rootfs
from minidocker.runtime.container import Container, ContainerStore, alive, boot_id, now_iso, proc_start_time
from minidocker.runtime.init import InitPipes, compile_security, container_init, userns_init

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                     signal.SIGUSR2, signal.SIGWINCH)


class StartFailed(MinidockerError):
    pass


@dataclass
class Started:
    pid: int
    master: int | None  # the pty master, with -t


def write_etc_files(c: Container) -> dict[str, str]:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf, bound into the container read-write."""
    spec = c.spec
    files = {}
    if spec.network == "host":
        hosts = Path("/etc/hosts").read_text() if os.path.exists("/etc/hosts") else ""
        resolv = Path("/etc/resolv.conf").read_text() if os.path.exists("/etc/resolv.conf") else ""
        hostname = spec.hostname or os.uname().nodename
    elif spec.network != "none":  # a bridge: the host's resolvers (attach_network adds our address)
        hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        resolv = Path("/etc/resolv.conf").read_text() if os.path.exists("/etc/resolv.conf") else ""
        hostname = spec.hostname
    else:
        hosts = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 f"127.0.1.1\t{spec.hostname}\n")
        resolv = "# no network: --network none\n"
        hostname = spec.hostname
    for name, text in (("hostname", hostname + "\n"), ("hosts", hosts), ("resolv.conf", resolv)):
        path = c.path(name)
        path.write_text(text)
        files[f"/etc/{name}"] = str(path)
    return files


def rootfs_plan(c: Container, lowerdirs: list[Path]) -> rootfs.RootfsPlan:
    if not lowerdirs:  # an image with no layers: overlay still wants one lowerdir
        empty = c.path("empty")
        empty.mkdir(exist_ok=True)
        lowerdirs = [empty]
    return rootfs.RootfsPlan(
        lowerdirs=[str(p) for p in lowerdirs], upper=str(c.path("upper")), work=str(c.path("work")),
        merged=str(c.path("merged")), etc_files=write_etc_files(c),
        volumes=[rootfs.Volume(v.source, v.target, v.readonly) for v in c.spec.volumes],
        readonly=c.spec.readonly_rootfs, tmpfs=list(c.spec.tmpfs), privileged=c.spec.privileged)


def seccomp_cache(c: Container) -> Path:
    """Where compiled seccomp programs are kept (see linux/seccomp.py): <root>/cache/seccomp."""
    return c.dir.parent.parent / "cache" / "seccomp"


def start(store: ContainerStore, c: Container, lowerdirs: list[Path], stdin: int | None = None,
          stdout: int | None = None, stderr: int | None = None, monitor_pid: int | None = None) -> Started:
    """Create the container's processes and return once its command is executing.

    With ``--userns=auto`` our child is ``init.userns_init``, which forks the container's
    PID 1 itself (a PID namespace must be created after the user namespace that owns it)
    and tells us its PID through ``pid_r``; we wait for our child, which passes signals on."""
    plan = rootfs_plan(c, lowerdirs)
    compiled_filter = compile_security(c.spec, seccomp_cache(c))
    userns_fd = prepare_userns(c, plan) if c.spec.idmap else None
    bridged = c.spec.network not in ("none", "host")
    # a bridge: the namespace is made and wired now, unless a user namespace must own it (then
    # the container makes it, and we wire it once its PID 1 exists: below)
    netns_fd, attachment = attach_network(c) if bridged and userns_fd is None else (None, None)
    sync_r, sync_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC) if userns_fd is not None else (-1, -1)
    parent_sock = child_sock = None
    if c.spec.tty:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pipes = InitPipes(sync_r, err_w, child_sock.fileno() if child_sock else None, stdin, stdout, stderr,
                      netns=netns_fd)
    own_pid_ns = -1
    if userns_fd is None:
        own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        sc.unshare(sc.CLONE_NEWPID)
    pid = os.fork()
    if pid == 0:  # the child: becomes the container
        try:
            # (getppid() is 0 here: our parent lives outside our PID namespace)
            sc.set_pdeathsig(signal.SIGKILL)
            for fd in (own_pid_ns, sync_w, err_r, pid_r):
                if fd != -1:
                    os.close(fd)
            for s in FORWARDED_SIGNALS:
                signal.signal(s, signal.SIG_DFL)
            if userns_fd is not None:
                userns_init(c.spec, plan, pipes, compiled_filter, userns_fd, pid_w,
                            tuple(s for s in FORWARDED_SIGNALS if s != signal.SIGWINCH))
            container_init(c.spec, plan, pipes, compiled_filter)
        finally:
            os._exit(ExitCode.MINIDOCKER_FAILED)
    if userns_fd is None:
        # unshare(CLONE_NEWPID) changed where *our* next children go (and the kernel refuses
        # us threads while it differs from our own): point it back at our own PID namespace.
        sc.setns(own_pid_ns, sc.CLONE_NEWPID, why="our later children stay in our own PID namespace")
        os.close(own_pid_ns)
    else:
        os.close(userns_fd)
        os.close(pid_w)
    if netns_fd is not None:
        os.close(netns_fd)
    os.close(sync_r)
    os.close(err_w)
    if child_sock:
        child_sock.close()
    # While the child unshares its namespaces and builds its rootfs, we make its cgroup and
    # move it in; it waits for our word before it runs anything of the image's.
    try:
        init_pid = pid if userns_fd is None else _read_init_pid(pid_r)
        if bridged and userns_fd is not None and init_pid:
            own = os.open(f"/proc/{init_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _, attachment = attach_network(c, own)
            finally:
                os.close(own)
        cg = cgroups.manager(c.id)
        cg.create()
        # every rule first (a process must never be in a cgroup whose device rules are half
        # written: "deny all" comes before the allows), then the process
        cg.apply_limits(cgroups.Limits(**c.spec.limits), privileged=c.spec.privileged)
        if init_pid:
            cg.add(init_pid)  # (on v1 this waits for an RCU grace period, while the child works)
        init_pid = init_pid or pid
        store.update(c, Status="running", Pid=init_pid, PidStartTime=proc_start_time(init_pid), BootId=boot_id(),
                     StartedAt=now_iso(),
                     FinishedAt="", ExitCode=0, Error="", MonitorPid=monitor_pid or os.getpid(),
                     MonitorStartTime=proc_start_time(monitor_pid or os.getpid()),
                     Cgroup=cg.paths(), CgroupVersion=cg.version,
                     Network=attachment.__dict__ if attachment else None)
        try:
            os.write(sync_w, b"1")
        except BrokenPipeError:
            pass  # the child failed a step before waiting for us: await_execve reads why
    except ProcessLookupError:
        pass  # the container's first process died before we could move it: await_execve says why
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        detach_network(c)
        raise
    finally:
        os.close(sync_w)
    try:
        await_execve(err_r, pid)
    except StartFailed as e:
        store.update(c, Status="exited", ExitCode=e.exit_code, Pid=0, FinishedAt=now_iso(), Error=e.message)
        detach_network(c)
        raise
    return Started(pid, receive_pty(parent_sock))


def attach_network(c: Container, netns_fd: int | None = None):
    """``--network bridge|NAME``: an address from the network, and a network namespace wired
    to its bridge (linux/network.py), for the container's first process to join; or, given
    ``netns_fd`` (a namespace the container made itself, --userns=auto), that one wired."""
    from minidocker.linux import network
    from minidocker.runtime.networks import NetworkStore

    networks = NetworkStore(c.dir.parent.parent)
    doc = networks.get(c.spec.network)
    address = networks.allocate(c.spec.network, c.id)
    att = network.Attachment(doc["Bridge"], doc["Subnet"], doc["Gateway"], address, f"veth{c.id[:8]}")
    try:
        fd = network.create_netns() if netns_fd is None else netns_fd
        try:
            network.connect(fd, att)
            network.publish(att, c.spec.ports, port_tag(c))
        except BaseException:
            if netns_fd is None:
                os.close(fd)
            network.unpublish(port_tag(c))
            raise
    except OSError as e:
        networks.release(c.spec.network, c.id)
        raise MinidockerError(f"cannot connect the container to network {c.spec.network}: "
                              f"{e.strerror or e}") from None
    except BaseException:
        networks.release(c.spec.network, c.id)
        raise
    with open(c.path("hosts"), "a") as f:
        f.write(f"{address}\t{c.spec.hostname}\n")
    if c.spec.network != "bridge":  # names on the user's own networks only, as docker
        networks.introduce(c.spec.network, c.id, _hosts_files(c))
    return fd, att


def _hosts_files(c: Container) -> dict[str, tuple[str, Path]]:
    """Every container of the store: the names it answers to, and its /etc/hosts file."""
    store = ContainerStore(c.dir.parent.parent)
    out = {}
    for cid in store.ids():
        try:
            other = store.load(cid)
        except Exception:  # noqa: BLE001 - a record being written or removed: skip it
            continue
        out[cid] = (f"{other.name} {other.spec.hostname}", other.path("hosts"))
    return out


def detach_network(c: Container) -> None:
    """Give the container's address back (its veth went with its network namespace), and
    remove its published ports. A record without its config is looked for on every network."""
    from minidocker.runtime.networks import NetworkStore

    networks = NetworkStore(c.dir.parent.parent)
    if c.damaged and not c.spec.image_id:
        known = networks.all() if networks.dir.exists() else []
        names = [doc["Name"] for doc in known if c.id in doc.get("Containers", {})]
        published = bool(names)  # ports, if it had any, went with an address
    else:
        names = [] if c.spec.network in ("none", "host") else [c.spec.network]
        published = bool(c.spec.ports)
    if published:
        from minidocker.linux import network

        network.unpublish(port_tag(c))
    for name in names:
        if name != "bridge":
            networks.forget(name, c.id, _hosts_files(c))
        networks.release(name, c.id)


def port_tag(c: Container) -> str:
    """The comment on the iptables rules of the container's published ports."""
    return f"minidocker:{c.id[:12]}"


def _read_init_pid(pid_r: int) -> int | None:
    """The host PID of the container's PID 1, from ``userns_init`` (None if it failed first)."""
    try:
        text = _read_all(pid_r)
    finally:
        os.close(pid_r)
    return int(text) if text.strip().isdigit() else None


def prepare_userns(c: Container, plan: rootfs.RootfsPlan) -> int:
    """``--userns=auto``, the parent's part: the mapped user namespace (as an fd), an empty
    directory per layer for its idmapped view, and the container's own files handed to its
    root (host ``uid``): the upper dir (the root directory the container sees) and /etc files."""
    from minidocker.fsutil import remove_tree
    from minidocker.linux.userns import create_user_namespace

    idmap = c.spec.idmap
    views = c.path("layers")
    if views.exists():
        remove_tree(views)  # a restart: views of the last run (copies, or mount points)
    plan.layer_views = []
    for i in range(len(plan.lowerdirs)):
        (views / str(i)).mkdir(parents=True)
        plan.layer_views.append(str(views / str(i)))
    plan.idmap = dict(idmap)
    os.chown(plan.upper, idmap["uid"], idmap["gid"])
    for source in plan.etc_files.values():
        os.chown(source, idmap["uid"], idmap["gid"])
    return create_user_namespace(idmap["uid"], idmap["gid"], idmap["size"])


def await_execve(err_r: int, pid: int) -> None:
    """Block until the child's error pipe closes: EOF alone means execve succeeded (the pipe
    is O_CLOEXEC); a line on it is the step that failed, and the child is reaped."""
    report = _read_all(err_r)
    os.close(err_r)
    if report:
        os.waitpid(pid, 0)
        info = json.loads(report.splitlines()[0])
        raise StartFailed(info["message"] if info["step"] in ("execve", "exec") else
                          f"container start failed at {info['step']}: {info['message']}", exit_code=info["code"])


def receive_pty(sock: socket.socket | None) -> int | None:
    """The pty master the child opened in the container's devpts, passed over SCM_RIGHTS."""
    if sock is None:
        return None
    _, fds, _, _ = socket.recv_fds(sock, 16, 1)
    sock.close()
    return fds[0] if fds else None


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not data:
            return b"".join(chunks).decode(errors="replace")
        chunks.append(data)


def exit_code(status: int) -> int:
    """docker's view of a wait status: the exit code, or 128+N for signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


@contextlib.contextmanager
def forwarding_signals(pid: int, on_signal: Callable | None = None):
    """While the body runs, the signals a foreground run gets (Ctrl-C, kill) go to ``pid``."""
    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, on_signal or forward) for s in FORWARDED_SIGNALS if s != signal.SIGWINCH}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _wait(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return exit_code(status)
        except InterruptedError:
            continue


def wait_foreground(pid: int, on_signal: Callable[[int], None] | None = None) -> int:
    """Wait for the container, forwarding the signals we get to it (a foreground run)."""
    with forwarding_signals(pid, on_signal):
        return _wait(pid)


def relay_output(pid: int, streams: dict[int, tuple[int, str]], log) -> int:
    """A foreground run without -t that keeps a log (as docker's does): copy the container's
    stdout and stderr pipes ({pipe: (our fd, "stdout"|"stderr")}) to ours and to the log
    until both close, then wait for it. If our own output goes away (``| head``), the log
    still gets everything."""
    with forwarding_signals(pid):
        while streams:
            ready, _, _ = select.select(list(streams), [], [])
            for fd in ready:
                data = os.read(fd, 65536)
                out_fd, name = streams[fd]
                if not data:
                    os.close(fd)
                    del streams[fd]
                    continue
                log.feed(name, data)
                if out_fd >= 0:
                    try:
                        _write_all(out_fd, data)
                    except BrokenPipeError:
                        streams[fd] = (-1, name)
        log.flush()
        return _wait(pid)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def relay_pty(pid: int, master: int, stdin_open: bool, log=None) -> int:
    """-t: put the user's terminal in raw mode and copy bytes both ways until the container
    exits; keep the window size in step (SIGWINCH); restore the terminal on every path."""
    import termios
    import tty

    in_fd, out_fd = sys.stdin.fileno(), sys.stdout.fileno()
    is_tty = os.isatty(in_fd)
    saved = termios.tcgetattr(in_fd) if is_tty else None

    def sync_winsize(*_):
        if is_tty:
            import fcntl
            size = fcntl.ioctl(in_fd, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)

    old_winch = signal.signal(signal.SIGWINCH, sync_winsize)
    status = None
    try:
        sync_winsize()
        if is_tty:
            tty.setraw(in_fd)
        fds = [master] + ([in_fd] if stdin_open else [])
        while True:
            try:
                ready, _, _ = select.select(fds, [], [], 0.5)
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise
                    data = b""
                if not data:
                    break
                _write_all(out_fd, data)
                if log is not None:
                    log.feed("stdout", data)
            if in_fd in ready:
                data = os.read(in_fd, 65536)
                if not data:
                    fds.remove(in_fd)
                    os.write(master, b"\x04")  # EOF on our stdin: ^D to the container
                else:
                    os.write(master, data)
            if not ready:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = st
                    break
    finally:
        signal.signal(signal.SIGWINCH, old_winch)
        if saved is not None:
            termios.tcsetattr(in_fd, termios.TCSAFLUSH, saved)
        os.close(master)
        if log is not None:
            log.flush()
    if status is None:
        _, status = os.waitpid(pid, 0)
    return exit_code(status)


def run_attached(store: ContainerStore, c: Container, lowerdirs: list[Path]) -> int:
    """A foreground run: this process is the container's parent, with the user's terminal
    (relayed through a pty with -t) or its stdin/stdout/stderr; returns the exit code."""
    try:
        if c.spec.auto_remove:  # no record will be left to read a log from: no log
            started = start(store, c, lowerdirs)
            code = (relay_pty(started.pid, started.master, c.spec.stdin_open) if started.master is not None
                    else wait_foreground(started.pid))
        else:
            code = _run_attached_logged(store, c, lowerdirs)
        record_exit(store, c, code, oom_killed=cgroups.manager(c.id).oom_killed())
        return code
    finally:
        if c.spec.auto_remove:
            cleanup(store, c)
        else:
            cgroups.manager(c.id).destroy()


def _run_attached_logged(store: ContainerStore, c: Container, lowerdirs: list[Path]) -> int:
    """As docker does, a foreground container keeps a log too (``logs`` reads it later):
    its output comes to us through pipes (or its pty) and we copy it to the terminal and
    to ``container.log``."""
    from minidocker.runtime.monitor import LogWriter

    log = LogWriter(c.path("container.log"))
    if c.spec.tty:
        started = start(store, c, lowerdirs)
        return relay_pty(started.pid, started.master, c.spec.stdin_open, log)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        started = start(store, c, lowerdirs, stdout=out_w, stderr=err_w)
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    return relay_output(started.pid, {out_r: (sys.stdout.fileno(), "stdout"),
                                      err_r: (sys.stderr.fileno(), "stderr")}, log)


def record_exit(store: ContainerStore, c: Container, code: int, oom_killed: bool = False) -> None:
    """docker reports an OOM kill as exit 137 with State.OOMKilled true."""
    store.update(c, Status="exited", ExitCode=code, Pid=0, FinishedAt=now_iso(), OOMKilled=oom_killed)
    detach_network(c)


def cleanup(store: ContainerStore, c: Container) -> None:
    """Remove what the container had on the host: its cgroup, its address, its directory."""
    if c.damaged:  # its record lost the monitor's PID: find the monitor by its children
        stop_monitors(cgroups.manager(c.id).pids())
    cgroups.manager(c.id).destroy()
    detach_network(c)
    store.remove_files(c)


def stop_monitors(container_pids: list[int]) -> None:
    """SIGKILL the minidocker processes above a container's processes (its monitor, a
    foreground ``run``, the --userns=auto helper), so none of them restarts the container or
    writes its record again. A process counts only if it runs the same interpreter as we do
    and its command line names minidocker; never ourselves or our own parents."""
    from minidocker.linux import procfs

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
    os.kill(pid, sig)
    if c.state.get("Status") == "paused":  # a frozen process gets the signal only once thawed
        unpause(ContainerStore(c.dir.parent.parent), c)


def pause(store: ContainerStore, c: Container) -> None:
    """``pause``: every process of the container frozen by its cgroup (v1 freezer.state
    FROZEN, v2 cgroup.freeze 1): they stay in memory and get no CPU until ``unpause``."""
    if not c.running:
        raise Conflict(f"Container {c.id[:12]} is not running")
    if c.state.get("Status") == "paused":
        raise Conflict(f"Container {c.id[:12]} is already paused")
    cgroups.manager(c.id).freeze()
    store.update_if(c, "running", Status="paused")


def unpause(store: ContainerStore, c: Container) -> None:
    if c.state.get("Status") != "paused":
        raise Conflict(f"Container {c.id[:12]} is not paused")
    cgroups.manager(c.id).thaw()
    store.update_if(c, "paused", Status="running")


def wait_gone(c: Container, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(c.state.get("Pid"), c.state.get("PidStartTime")):
            return True
        time.sleep(0.02)
    return not alive(c.state.get("Pid"), c.state.get("PidStartTime"))


def exec_in(c: Container, argv: list[str], env: list[str], cwd: str | None, user: str | None, tty: bool,
            interactive: bool) -> int:
    """``exec``: a new process inside a running container's namespaces and cgroup.

    setns(2) into ipc, uts, net, pid, cgroup and finally mnt (which also moves us to the
    container's root directory); PID namespaces apply to children, so fork once more; the
    child runs the command like init's last steps (user, workdir, execve).
    """
    from minidocker.runtime import init as child_steps
    from minidocker.runtime.spec import ContainerSpec

    pid = c.state.get("Pid")
    if not c.running or not alive(pid, c.state.get("PidStartTime")):
        raise Conflict(f"Container {c.id[:12]} is not running")
    if c.state.get("Status") == "paused":
        raise Conflict(f"Container {c.id[:12]} is paused, unpause the container before exec")
    spec = c.spec
    exec_spec = ContainerSpec(**{**spec.__dict__, "argv": argv, "tty": tty, "stdin_open": interactive,
                                 "cwd": cwd or spec.cwd, "user": user if user is not None else spec.user,
                                 "env": _merge_env(spec.env, env), "init": False})
    compiled_filter = compile_security(exec_spec, seccomp_cache(c))
    child_steps.load_security(exec_spec)
    # the user namespace first: the others belong to it, and joining it gives us the
    # capabilities that joining them takes (see setns(2))
    kinds = ["ipc", "uts", "net", "pid", "cgroup", "mnt"]
    ns_fds = sc.open_namespace_fds(pid, ["user", *kinds] if spec.idmap else kinds)
    cg = cgroups.manager(c.id)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    sync_r, sync_w = os.pipe()
    parent_sock = child_sock = None
    if tty:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = os.fork()
    if child == 0:
        code = ExitCode.MINIDOCKER_FAILED
        try:
            child_steps.hide_host_binary()  # before we are visible in the container's PID namespace
            os.close(err_r)
            os.close(sync_w)
            os.read(sync_r, 1)  # the parent has put us in the container's cgroup
            for s in FORWARDED_SIGNALS:
                signal.signal(s, signal.SIG_DFL)
            for kind, fd in ns_fds:
                sc.setns(fd, sc.NAMESPACE_FLAGS[kind])
                os.close(fd)
            grandchild = os.fork()  # the first process that is really inside the PID namespace
            if grandchild:
                os.close(err_w)
                _, status = os.waitpid(grandchild, 0)
                os._exit(exit_code(status))
            pipes = InitPipes(sync_r, err_w, child_sock.fileno() if child_sock else None)
            child_steps.setup_stdio(exec_spec, pipes) if tty else (
                None if interactive else child_steps.setup_stdio(exec_spec, pipes))
            # the same walls as the container's own init: an exec'd process gets no more power
            child_steps.drop_capabilities(exec_spec)
            env_out = child_steps.switch_user(exec_spec, exec_spec.env)
            child_steps.limit_capabilities(exec_spec)
            child_steps.set_no_new_privs(exec_spec)
            child_steps.change_dir(exec_spec)
            child_steps.apply_seccomp(exec_spec, compiled_filter)
            child_steps.exec_command(exec_spec, env_out, err_w)
        except child_steps.StepFailed as e:
            child_steps._report(err_w, e.step, e.message, e.code)
            code = e.code
        except BaseException as e:  # noqa: BLE001
            child_steps._report(err_w, "exec", getattr(e, "message", None) or str(e), ExitCode.MINIDOCKER_FAILED)
        finally:
            os._exit(code)
    for _, fd in ns_fds:
        os.close(fd)
    os.close(err_w)
    os.close(sync_r)
    if child_sock:
        child_sock.close()
    try:
        cg.add(child)
    except OSError:
        pass  # the container may have no cgroup left (it is exiting)
    os.write(sync_w, b"1")
    os.close(sync_w)
    await_execve(err_r, child)
    master = receive_pty(parent_sock)
    if master is not None:
        return relay_pty(child, master, interactive)
    return wait_foreground(child)


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    from minidocker.runtime.spec import merge_env

    return merge_env(base, extra)
