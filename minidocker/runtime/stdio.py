"""A container's input and output on the host side: relays, the pty, the log, signals.

Without ``-t`` the container writes to pipes and we copy them to our own stdout and stderr
(``relay_output``), and to ``container.log`` in docker's json-file format (``LogWriter``:
``{"log": "...", "stream": "stdout", "time": "..."}``, one record a line). With ``-t`` the
container opens a pty in its own devpts and hands us the master over a unix socket
(``receive_pty``); ``relay_pty`` puts the user's terminal in raw mode and copies bytes both
ways. Meanwhile the signals a foreground run gets (Ctrl-C, ``kill``) are passed on to the
container (``forwarding_signals``), and its wait status becomes docker's exit code.

See it: ``minidocker run -it --rm busybox sh``, then ``tty`` and ``ls -l /proc/self/fd``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import sys
from collections.abc import Callable

from minidocker.errors import exit_code
from minidocker.runtime.logfile import LogWriter, copy_streams, write_all

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    import socket

    from minidocker.lazy.notices import LazyNotices
    from minidocker.runtime.container import Container

FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


def open_log(c: Container) -> LogWriter:
    """The container's log as its ``--log-driver`` and ``--log-opt`` say."""
    return LogWriter(*log_settings(c))


def log_settings(c: Container) -> list:
    """[path, max_size, max_file] of the container's log as its ``--log-driver`` and
    ``--log-opt`` say: json-file (no limit unless max-size), local (docker's defaults: 20 MB
    a file, 5 files), none (no path: nothing is kept)."""
    driver, opts = c.spec.log_driver, c.spec.log_opts
    if driver == "none":
        return [None, None, 1]
    if driver == "local":
        opts = {"max-size": "20m", "max-file": "5", **opts}
    if "max-size" not in opts:
        return [str(c.layout.log), None, 1]
    from minidocker.linux.cgroups import parse_size

    return [str(c.layout.log), parse_size(opts["max-size"]), int(opts.get("max-file", "1"))]


def reset_signals() -> None:
    """In a child: the signals we forward get their default actions back (a handler of
    ours would otherwise run in the container's process until its execve)."""
    for s in FORWARDED_SIGNALS:
        signal.signal(s, signal.SIG_DFL)


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


def wait_for(pid: int) -> int:
    """waitpid(2) until ``pid`` ends; docker's exit code for it (128+N for signal N)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return exit_code(status)
        except InterruptedError:
            continue


def wait_foreground(pid: int, on_signal: Callable[[int], None] | None = None) -> int:
    """Wait for the container, forwarding the signals we get to it (a foreground run)."""
    with forwarding_signals(pid, on_signal):
        return wait_for(pid)


def receive_pty(sock: socket.socket | None) -> int | None:
    """The pty master the child opened in the container's devpts, passed over SCM_RIGHTS."""
    if sock is None:
        return None
    import socket  # (only -t uses a socket: made before fork, so this costs nothing)

    _, fds, _, _ = socket.recv_fds(sock, 16, 1)
    sock.close()
    return fds[0] if fds else None


def relay_output(
    pid: int, streams: dict[int, tuple[int, str]], log: LogWriter, notices: LazyNotices | None = None
) -> int:
    """A foreground run without -t that keeps a log (as docker's does): copy the container's
    stdout and stderr pipes to ours and to the log until both close, then wait for it. The
    warnings of its lazy layers (``notices``: lazy/notices.py) are told on stderr too."""
    with forwarding_signals(pid):
        copy_streams(streams, log, notices=notices)
        if notices is not None:
            notices.poll()
            notices.summary()
        return wait_for(pid)


def relay_pty(pid: int, master: int, stdin_open: bool, log: LogWriter | None = None) -> int:
    """-t: put the user's terminal in raw mode and copy bytes both ways until the container
    exits; keep the window size in step (SIGWINCH); restore the terminal on every path."""
    from minidocker.linux import tty

    in_fd = sys.stdin.fileno()
    is_tty = os.isatty(in_fd)
    saved = tty.tcgetattr(in_fd) if is_tty else None

    def sync_winsize(*_):
        if is_tty:
            tty.set_window_size(master, tty.get_window_size(in_fd))

    old_winch = signal.signal(signal.SIGWINCH, sync_winsize)
    try:
        sync_winsize()
        if is_tty:
            tty.set_raw(in_fd)
        status = _pump_pty(pid, master, stdin_open, log)
    finally:
        signal.signal(signal.SIGWINCH, old_winch)
        if saved is not None:
            tty.tcsetattr(in_fd, saved)
        os.close(master)
        if log is not None:
            log.flush()
    if status is None:
        _, status = os.waitpid(pid, 0)
    return exit_code(status)


def _pump_pty(pid: int, master: int, stdin_open: bool, log: LogWriter | None) -> int | None:
    """Copy the pty's output to our stdout (and the log) and our stdin to the pty, until the
    pty closes (the container's wait status is then still to be read: None) or the container
    exits with the pty still open (its wait status)."""
    in_fd, out_fd = sys.stdin.fileno(), sys.stdout.fileno()
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
                return None
            write_all(out_fd, data)
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
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status


def lazy_notices(lowerdirs: list[str]):
    """The warnings of the container's lazy layers (lazy/notices.py), or None if it has none."""
    if not any("/lazy/" in d for d in lowerdirs):
        return None
    from minidocker.lazy.notices import LazyNotices

    return LazyNotices.of(lowerdirs)


def telling_notices(notices: LazyNotices | None) -> contextlib.AbstractContextManager:
    """While the ``with`` block waits for a container whose output is not relayed (``run
    --rm`` writes straight to our stdout), a thread tells its lazy layers' warnings on stderr."""
    if notices is None:
        return contextlib.nullcontext()
    import threading

    done = threading.Event()

    def tell() -> None:
        while not done.wait(0.5):
            for line in notices.poll():
                with contextlib.suppress(OSError):
                    write_all(2, line)

    @contextlib.contextmanager
    def running():
        thread = threading.Thread(target=tell, name="lazy-notices", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            for line in notices.poll():  # what came in the last half second
                with contextlib.suppress(OSError):
                    write_all(2, line)
            notices.summary()

    return running()
