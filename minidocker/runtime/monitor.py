"""The per-container monitor of a detached run (what conmon is to podman).

``run -d`` forks this process, which detaches (setsid), starts the container as its own
child, copies the container's stdout and stderr into ``container.log`` line by line with
timestamps (docker's json-file format: ``{"log": "...", "stream": "stdout", "time": "..."}``),
waits for it, records the exit code and finish time, and with ``--rm`` removes it. The CLI
returns as soon as the monitor says the container started.

See it: ``minidocker run -d busybox sleep 60; ps -ef --forest | grep -B1 sleep``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from minidocker.errors import ExitCode, MinidockerError, StartFailed, exit_code
from minidocker.linux import cgroups
from minidocker.linux import syscalls as sc
from minidocker.runtime import lifecycle
from minidocker.runtime.container import Container, ContainerStore
from minidocker.runtime.forked import read_report, report, report_failure
from minidocker.runtime.stdio import LogWriter, copy_streams, open_log


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
        signal.signal(s, signal.SIG_IGN)
    log = open_log(c)
    restarts = 0
    while True:
        try:
            code = _run_once(store, c, lowerdirs, log, ready_w)
        except Exception:  # noqa: BLE001 - e.g. removed (rm -f) while waiting to restart
            break
        ready_w = -1  # the CLI heard about the first start; restarts are ours alone
        if code is None or not c.dir.exists():
            break  # the start itself failed (recorded), or the container is gone
        c = store.load(c.id)
        if not should_restart(c.spec.restart, code, restarts, bool(c.state.get("StopRequested"))):
            break
        restarts += 1
        store.update(c, RestartCount=restarts)
        time.sleep(min(0.1 * 2 ** (restarts - 1), 2.0))  # docker's back-off, shortened
    if c.spec.auto_remove:
        lifecycle.cleanup(store, c)
    sys.stdout.flush()
    return 0


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


def _run_once(store: ContainerStore, c: Container, lowerdirs: list[Path], log: LogWriter, ready_w: int) -> int | None:
    """Start the container, copy its output to the log until it exits, record the exit;
    its exit code, or None if it did not start."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()  # -i without a client attached: stdin stays open and empty
    try:
        started = lifecycle.start(store, c, lowerdirs, stdin=in_r, stdout=out_w, stderr=err_w, monitor_pid=os.getpid())
    except MinidockerError as e:
        if ready_w != -1:  # the message as the user reads it: no step of ours to add
            report_failure(ready_w, "start", e.message, e.exit_code)
            os.close(ready_w)
        for fd in (out_r, out_w, err_r, err_w, in_r, in_w):
            os.close(fd)
        cgroups.manager(c.id).destroy()
        return None
    for fd in (out_w, err_w, in_r):
        os.close(fd)
    console = open_console(c, in_w, started.master)  # before the CLI returns: attach may follow at once
    if ready_w != -1:
        report(ready_w, pid=started.pid)
        os.close(ready_w)
    streams = {out_r: (-1, "stdout"), err_r: (-1, "stderr")}
    if started.master is not None:
        os.close(out_r)
        os.close(err_r)
        streams = {started.master: (-1, "stdout")}
    copy_streams(streams, log, console)
    os.close(in_w)
    _, status = os.waitpid(started.pid, 0)
    code = exit_code(status)
    lifecycle.record_exit(store, c, code, oom_killed=cgroups.manager(c.id).oom_killed())
    if console is not None:
        console.close(code)  # (after the record: an attached client that returns sees "exited")
    cgroups.manager(c.id).destroy()
    return code


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
