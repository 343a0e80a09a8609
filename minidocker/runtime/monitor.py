"""The per-container monitor of a detached run (what conmon is to podman).

``run -d`` forks this process, which detaches (setsid) and starts the container as its own
child. The CLI returns as soon as the monitor says the container started. Then the monitor
execs the watcher (watch.py: a fresh interpreter with only the log and the console), which
copies the container's stdout and stderr into ``container.log`` line by line with
timestamps (docker's json-file format: ``{"log": "...", "stream": "stdout", "time": "..."}``)
and waits for it. On its exit the watcher execs this module again (``main``), which records
the exit code and finish time, and restarts the container (``--restart``) or removes it
(``--rm``).

See it: ``minidocker run -d busybox sleep 60; ps -ef --forest | grep -B1 sleep``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from minidocker.errors import ExitCode, MinidockerError, StartFailed, exit_code
from minidocker.linux import cgroups
from minidocker.linux import syscalls as sc
from minidocker.runtime import lifecycle, watch
from minidocker.runtime.container import Container, ContainerStore
from minidocker.runtime.forked import read_report, report, report_failure
from minidocker.runtime.stdio import lazy_notices, log_settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from minidocker.runtime.console import ConsoleServer


def spawn_monitor(store: ContainerStore, c: Container, lowerdirs: list[Path]) -> int:
    """Fork the monitor; return the container's PID once it runs (raise if it failed). The
    monitor tells us through ``ready``, in forked.py's report: the PID, or the failure."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code: int = ExitCode.MINIDOCKER_FAILED
        try:
            os.close(ready_r)
            code = _monitor(store, c, lowerdirs, ready_w)
        finally:
            os._exit(code)
    os.close(ready_w)
    try:
        facts = read_report(ready_r, StartFailed)
    finally:
        os.waitpid(pid, 0)  # the monitor's first half exits at once; its child (the monitor) goes on
    if "pid" not in facts:
        raise MinidockerError("the container monitor failed to start")
    return facts["pid"]


def _monitor(store: ContainerStore, c: Container, lowerdirs: list[Path], ready_w: int) -> int:
    # Double fork: the monitor is re-parented to init and outlives the CLI.
    sc.setsid()
    if os.fork() != 0:
        return 0
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(s, signal.SIG_IGN)  # (an ignored signal stays ignored across the watcher's execve)
    hand_over(store, c, *_start(store, c, lowerdirs, ready_w, restarts=0))
    return 0


def hand_over(store: ContainerStore, c: Container, facts: dict | None, console: ConsoleServer | None) -> None:
    """The container runs: become its watcher (watch.py), a small program that copies its
    output and waits for it, so what stays in memory per container is small. If it did not
    start, there is nothing to watch: remove it if ``--rm`` says so."""
    if facts is None:
        if c.spec.auto_remove:
            lifecycle.cleanup(store, c)
        return
    watch.become("watch", facts)  # (returns only if the execve failed: then watch from here)
    status, console = watch.watch(facts, console)
    after_exit({**facts, "status": status}, console)


def main(text: str) -> None:
    """The monitor again (``python -I -c BOOT``, from the watcher): the container exited."""
    after_exit(json.loads(text))


def after_exit(facts: dict, console: ConsoleServer | None = None) -> None:
    """Record the exit (then tell the attached clients: one that returns sees "exited"),
    then restart the container as ``--restart`` says, or remove it (``--rm``)."""
    from minidocker.runtime.console import ConsoleServer

    store = ContainerStore(Path(facts["store"]))
    if console is None and facts.get("console"):
        console = ConsoleServer.resume(facts["console"])
    code = exit_code(facts["status"])
    try:
        c = store.load(facts["id"])
        lifecycle.record_exit(store, c, code, oom_killed=cgroups.manager(c.id).oom_killed())
    except Exception:  # noqa: BLE001 - removed (rm -f) meanwhile: nothing to record or restart
        if console is not None:
            console.close(code)
        return
    if console is not None:
        console.close(code)
    cgroups.manager(c.id).destroy()
    try:
        again = _restart(store, c, code, facts["restarts"])
    except Exception:  # noqa: BLE001 - e.g. removed (rm -f) while waiting to restart
        again = None
    if again is not None:
        c, restarts = again
        hand_over(store, c, *_start(store, c, [Path(p) for p in facts["lowerdirs"]], -1, restarts))
    elif c.spec.auto_remove:
        lifecycle.cleanup(store, c)


def _restart(store: ContainerStore, c: Container, code: int, restarts: int) -> tuple[Container, int] | None:
    """The container as it is now and its restart count, once the policy says to start it
    again (after docker's back-off, shortened); or None: it stays down."""
    if not c.dir.exists():
        return None
    c = store.load(c.id)
    if not should_restart(c.spec.restart, code, restarts, bool(c.state.get("StopRequested"))):
        return None
    restarts += 1
    store.update(c, RestartCount=restarts)
    time.sleep(min(0.1 * 2 ** (restarts - 1), 2.0))
    return c, restarts


def should_restart(policy: dict, code: int, restarts: int, stop_requested: bool) -> bool:
    """``--restart``: no (docker's default), always, unless-stopped, on-failure[:N]. A
    container the user stopped or killed stays down."""
    name = (policy or {}).get("name", "no")
    if stop_requested or name == "no":
        return False
    if name == "on-failure":
        limit = policy.get("max", 0)
        return code != 0 and (limit == 0 or restarts < limit)
    return name in ("always", "unless-stopped")


def _start(
    store: ContainerStore, c: Container, lowerdirs: list[Path], ready_w: int, restarts: int
) -> tuple[dict | None, ConsoleServer | None]:
    """Start the container with pipes for its output (or its pty) and the console socket;
    tell the CLI (``ready_w``, the first start only). What its watcher needs to know, and
    the console (its socket closes with it), or None if it did not start (the failure is
    recorded)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()  # -i without a client attached: stdin stays open and empty
    try:
        notices = lazy_notices([str(p) for p in lowerdirs])  # where the lazy layers' logs are now
        started = lifecycle.start(store, c, lowerdirs, stdin=in_r, stdout=out_w, stderr=err_w, monitor_pid=os.getpid())
    except MinidockerError as e:
        if ready_w != -1:  # the message as the user reads it: no step of ours to add
            report_failure(ready_w, "start", e.message, e.exit_code)
            os.close(ready_w)
        for fd in (out_r, out_w, err_r, err_w, in_r, in_w):
            os.close(fd)
        cgroups.manager(c.id).destroy()
        return None, None
    for fd in (out_w, err_w, in_r):
        os.close(fd)
    console = open_console(c, in_w, started.master)  # before the CLI returns: attach may follow at once
    if ready_w != -1:
        report(ready_w, pid=started.pid)
        os.close(ready_w)
    streams = {str(out_r): "stdout", str(err_r): "stderr"}
    if started.master is not None:
        os.close(out_r)
        os.close(err_r)
        streams = {str(started.master): "stdout"}
    facts = {
        "store": str(store.root),
        "id": c.id,
        "pid": started.pid,
        "streams": streams,
        "input": in_w,
        "console": console.hand_on() if console is not None else None,
        "log": log_settings(c),
        "restarts": restarts,
        "lowerdirs": [str(p) for p in lowerdirs],
        "lazy_logs": notices.files if notices is not None else {},
    }
    return facts, console


def open_console(c: Container, in_w: int, master: int | None):
    """The console socket ``attach`` connects to (console.py): input goes to the container's
    stdin pipe (``-i``) or its pty (``-t``), else nowhere. None if it cannot be made: the
    container runs all the same, only unattachable."""
    from minidocker.runtime.console import ConsoleServer

    input_fd = (master if master is not None else in_w) if c.spec.stdin_open else -1
    try:
        return ConsoleServer(c.layout.console, input_fd, master)
    except OSError:
        return None
