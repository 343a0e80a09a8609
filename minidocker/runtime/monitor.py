"""The per-container monitor of a detached run (what conmon is to podman).

``run -d`` forks this process, which detaches (setsid), starts the container as its own
child, copies the container's stdout and stderr into ``container.log`` line by line with
timestamps (docker's json-file format: ``{"log": "...", "stream": "stdout", "time": "..."}``),
waits for it, records the exit code and finish time, and with ``--rm`` removes it. The CLI
returns as soon as the monitor says the container started.

See it: ``minidocker run -d busybox sleep 60; ps -ef --forest | grep -B1 sleep``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from pathlib import Path

from minidocker.errors import MinidockerError
from minidocker.runtime import lifecycle
from minidocker.runtime.container import Container, ContainerStore, now_iso


class LogWriter:
    def __init__(self, path: Path):
        self.f = open(path, "ab", buffering=0)
        self.partial: dict[str, bytes] = {}

    def feed(self, stream: str, data: bytes) -> None:
        buf = self.partial.get(stream, b"") + data
        *lines, rest = buf.split(b"\n")
        for line in lines:
            self._write(stream, line + b"\n")
        self.partial[stream] = rest

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._write(stream, rest)
        self.partial.clear()

    def _write(self, stream: str, line: bytes) -> None:
        rec = {"log": line.decode("utf-8", "replace"), "stream": stream, "time": now_iso()}
        self.f.write((json.dumps(rec) + "\n").encode())


def spawn_monitor(store: ContainerStore, c: Container, lowerdirs: list[Path]) -> int:
    """Fork the monitor; return the container's PID once it runs (raise if it failed)."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(ready_r)
            code = _monitor(store, c, lowerdirs, ready_w)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(ready_w)
    data = lifecycle._read_all(ready_r)
    os.close(ready_r)
    os.waitpid(pid, 0)  # the monitor's first half exits at once; its child (the monitor) goes on
    if not data:
        raise MinidockerError("the container monitor failed to start")
    msg = json.loads(data)
    if "error" in msg:
        raise lifecycle.StartFailed(msg["error"], exit_code=msg.get("code", 125))
    return msg["pid"]


def _monitor(store: ContainerStore, c: Container, lowerdirs: list[Path], ready_w: int) -> int:
    # Double fork: the monitor is re-parented to init and outlives the CLI.
    os.setsid()
    if os.fork() != 0:
        return 0
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(s, signal.SIG_IGN)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()  # -i without a client attached: stdin stays open and empty
    try:
        started = lifecycle.start(store, c, lowerdirs, stdin=in_r, stdout=out_w, stderr=err_w,
                                  monitor_pid=os.getpid())
    except MinidockerError as e:
        os.write(ready_w, json.dumps({"error": e.message, "code": e.exit_code}).encode())
        os.close(ready_w)
        if c.spec.auto_remove:
            lifecycle.cleanup(store, c)
        return 0
    for fd in (out_w, err_w, in_r):
        os.close(fd)
    os.write(ready_w, json.dumps({"pid": started.pid}).encode())
    os.close(ready_w)
    log = LogWriter(c.path("container.log"))
    streams = {out_r: "stdout", err_r: "stderr"}
    if started.master is not None:
        os.close(out_r)
        os.close(err_r)
        streams = {started.master: "stdout"}
    while streams:
        ready, _, _ = select.select(list(streams), [], [])
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if data:
                log.feed(streams[fd], data)
            else:
                os.close(fd)
                del streams[fd]
    log.flush()
    _, status = os.waitpid(started.pid, 0)
    lifecycle.record_exit(store, c, lifecycle.exit_code(status),
                          oom_killed=lifecycle.cgroups.manager(c.id).oom_killed())
    if c.spec.auto_remove:
        lifecycle.cleanup(store, c)
    else:
        lifecycle.cgroups.manager(c.id).destroy()
    sys.stdout.flush()
    return 0
