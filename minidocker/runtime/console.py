"""The console socket: how ``attach`` reaches a container its monitor runs.

A detached container's stdout, stderr (and with ``-i`` or ``-t`` its stdin) belong to its
monitor (monitor.py), not to any terminal. So the monitor also listens on a unix socket,
``containers/<id>/console.sock`` (what conmon's attach socket is to podman): every client
that connects gets the container's output from then on and may write to its input, and
when the container exits, its exit code. The socket file is 0600 in a directory only root
may enter: the file system's permissions decide who may attach.

Both directions carry frames, a header of five bytes (kind, then the length as a 32-bit
big-endian number) and the data, like docker's multiplexed attach stream::

    monitor -> client   STDOUT, STDERR (output), EXIT (4 bytes: the exit code)
    client -> monitor   STDIN (bytes for the container's stdin or its pty), RESIZE (a
                        struct winsize for the pty, the client's terminal was resized)

The client leaves on docker's detach keys (ctrl-p ctrl-q, ``--detach-keys``) and the
container goes on. See it: ``minidocker run -dit --name c busybox sh; minidocker attach c``,
type ``echo hi``, then ctrl-p ctrl-q.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import sys

TYPE_CHECKING = False  # (nothing more is imported: a detached container's watcher serves this socket, watch.py)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

STDIN, STDOUT, STDERR, EXIT, RESIZE = 0, 1, 2, 3, 4
KIND_OF_STREAM = {"stdout": STDOUT, "stderr": STDERR}
HEADER = struct.Struct(">BI")
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
NO_WORD = -1  # attach's result when the monitor closed the socket without sending the exit code
CTRL_KEYS = "@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_"  # ctrl-@ is 0, ctrl-a 1 ... ctrl-_ 31


def frame(kind: int, data: bytes) -> bytes:
    return HEADER.pack(kind, len(data)) + data


def split_frames(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The whole frames at the start of ``buf``, and what is left of a frame still coming."""
    frames = []
    while len(buf) >= HEADER.size:
        kind, size = HEADER.unpack_from(buf)
        if len(buf) < HEADER.size + size:
            break
        frames.append((kind, buf[HEADER.size : HEADER.size + size]))
        buf = buf[HEADER.size + size :]
    return frames, buf


@contextlib.contextmanager
def short_path(path: Path | str) -> Iterator[str]:
    """A name for ``path`` short enough for a unix socket (sun_path holds 108 bytes, a store's
    path can be longer): its directory opened, and the path through /proc/self/fd."""
    from minidocker.linux import procfs

    fd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY)
    try:
        yield procfs.fd_path(fd, os.path.basename(path))
    finally:
        os.close(fd)


class ConsoleServer:
    """The monitor's side: the listening socket and the clients attached to it. The monitor
    selects on ``fds()`` along with the container's outputs and calls ``ready(fd)``."""

    def __init__(self, path: Path | str, input_fd: int, master: int | None, listener: socket.socket | None = None):
        self.path, self.input_fd, self.master = path, input_fd, master
        self.clients: dict[int, tuple[socket.socket, bytes]] = {}  # fd -> (socket, unread bytes)
        self.listener = listener or self._listen(path)

    @staticmethod
    def _listen(path: Path | str) -> socket.socket:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a socket left by a monitor that was killed
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with short_path(path) as name:
            listener.bind(name)
        os.chmod(path, 0o600)
        listener.listen(8)
        return listener

    def hand_on(self) -> dict:
        """What another program needs to go on serving this console after an execve (the
        monitor becoming its watcher, watch.py): the socket's path and its file descriptors
        (watch.become makes them inheritable). The clients' unread partial frames are dropped."""
        fds = [self.listener.fileno(), *self.clients]
        return {"path": str(self.path), "fds": fds, "input": self.input_fd, "master": self.master}

    @classmethod
    def resume(cls, state: dict) -> ConsoleServer:
        """The console ``hand_on`` described, in the program that received its descriptors."""
        listener, *clients = (socket.socket(fileno=fd) for fd in state["fds"])
        server = cls(state["path"], state["input"], state["master"], listener)
        server.clients = {sock.fileno(): (sock, b"") for sock in clients}
        return server

    def fds(self) -> list[int]:
        return [self.listener.fileno(), *self.clients]

    def ready(self, fd: int) -> None:
        """A new client, or a client's frames (its input, its window size), or its leaving."""
        if fd == self.listener.fileno():
            sock, _ = self.listener.accept()
            sock.setblocking(False)  # (its number may be one select just said was readable: below)
            self.clients[sock.fileno()] = (sock, b"")
            return
        if fd not in self.clients:
            return  # dropped in this round already: the output before it could not be sent to it
        sock, buf = self.clients[fd]
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return  # a client accepted in this round under a dropped one's number: nothing yet
        except OSError:
            data = b""
        if not data:
            self.drop(fd)
            return
        frames, rest = split_frames(buf + data)
        self.clients[fd] = (sock, rest)
        for kind, payload in frames:
            self.deliver(kind, payload)

    def deliver(self, kind: int, payload: bytes) -> None:
        """A client's frame: bytes for the container's input, or its pty's new size."""
        from minidocker.runtime.logfile import write_all

        if kind == STDIN and self.input_fd >= 0:
            with contextlib.suppress(OSError):  # the container closed its stdin: input is dropped
                write_all(self.input_fd, payload)
        elif kind == RESIZE and self.master is not None:
            from minidocker.linux import tty

            with contextlib.suppress(OSError):
                tty.set_window_size(self.master, payload)

    def broadcast(self, stream: str, data: bytes) -> None:
        """Output to every client. One that cannot take it at once (it stopped reading)
        is dropped: a slow client must never stall the container's output."""
        for fd, (sock, _) in list(self.clients.items()):
            try:
                sock.sendall(frame(KIND_OF_STREAM[stream], data), socket.MSG_DONTWAIT)
            except OSError:
                self.drop(fd)

    def drop(self, fd: int) -> None:
        sock, _ = self.clients.pop(fd)
        sock.close()

    def close(self, code: int) -> None:
        """The container exited with ``code``: tell every client, then close everything;
        a client still waiting in the listen queue (a ``wait`` that connected just now) is
        accepted first, so it hears the code too."""
        self.listener.setblocking(False)
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:  # (BlockingIOError: no one else is waiting)
                break
            self.clients[sock.fileno()] = (sock, b"")
        for fd, (sock, _) in list(self.clients.items()):
            with contextlib.suppress(OSError):
                sock.sendall(frame(EXIT, struct.pack(">i", code)), socket.MSG_DONTWAIT)
            self.drop(fd)
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def parse_detach_keys(text: str) -> bytes:
    """docker's ``--detach-keys``: a comma-separated sequence of characters and ``ctrl-X``
    (X a letter or one of ``@[\\]^_``) -> the bytes that detach."""
    from minidocker.errors import MinidockerError  # (the client's side only: see TYPE_CHECKING above)

    out = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            out.append(ord(key))
        elif key.lower().startswith("ctrl-") and len(key) == 6 and key[5].upper() in CTRL_KEYS:
            out.append(ord(key[5].upper()) - 64)  # ctrl-a = 1 ... ctrl-_ = 31, as a terminal sends them
        else:
            raise MinidockerError(f"Invalid detach keys ({text}) provided")
    return bytes(out)


class DetachScanner:
    """Watches the input for the detach sequence: bytes that could be its start are held
    back, and sent on if what follows is not the rest of it (docker's escape proxy)."""

    def __init__(self, keys: bytes):
        self.keys, self.held = keys, b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(the bytes to send on, whether the sequence is complete)."""
        out = bytearray()
        for b in data:
            self.held += bytes([b])
            while self.held and not self.keys.startswith(self.held):
                out += self.held[:1]  # (the rest may still start the sequence: ctrl-p ctrl-p ctrl-q)
                self.held = self.held[1:]
            if self.held == self.keys:
                return bytes(out), True
        return bytes(out), False


def connect(path: Path) -> socket.socket:
    from minidocker.errors import MinidockerError

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with short_path(path) as name:
            sock.connect(name)
    except OSError:
        sock.close()
        raise MinidockerError(
            "cannot attach: the container runs in the foreground of another minidocker command",
            hint="only containers started with run -d, start or restart can be attached to",
        ) from None
    return sock


def wait_exit(path: Path) -> int | None:
    """The exit code the monitor sends when the container exits (``wait``), or None if no
    monitor listens there (the container is in another command's foreground, or done)."""
    from minidocker.errors import MinidockerError

    try:
        sock = connect(path)
    except MinidockerError:
        return None
    buf = b""
    with sock:
        while data := sock.recv(65536):
            frames, buf = split_frames(buf + data)
            for kind, payload in frames:
                if kind == EXIT:
                    return struct.unpack(">i", payload)[0]
    return None


def attach(path: Path, pid: int, tty: bool, stdin: bool, detach_keys: bytes, sig_proxy: bool) -> int:
    """The client: our stdin to the container (``stdin``), its output to ours, until it
    exits (its exit code; NO_WORD if its monitor went first) or the user types the detach
    keys (docker's 1, after its words "read escape sequence"). With ``tty`` and a terminal
    of ours: raw mode, resizes passed on; without: the signals we get passed to the
    container (``sig_proxy``)."""
    from minidocker.linux import tty as term

    sock = connect(path)
    in_fd = sys.stdin.fileno()
    raw = tty and stdin and os.isatty(in_fd)
    saved = term.tcgetattr(in_fd) if raw else None

    def resized(*_):
        with contextlib.suppress(OSError):
            sock.sendall(frame(RESIZE, term.get_window_size(in_fd)))

    old_winch = signal.signal(signal.SIGWINCH, resized) if raw else None
    try:
        if raw:
            resized()
            term.set_raw(in_fd)
        with proxying_signals(pid if sig_proxy and not tty else None):
            code = pump(sock, in_fd if stdin else -1, DetachScanner(detach_keys))
    finally:
        if saved is not None:
            term.tcsetattr(in_fd, saved)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        sock.close()
    if code is None:  # (the terminal is back to its own mode: the words on a line of their own)
        sys.stderr.write("read escape sequence\n")
        return 1
    return code


@contextlib.contextmanager
def proxying_signals(pid: int | None) -> Iterator[None]:
    """``--sig-proxy`` (docker's default): the signals we get go to the container's PID 1."""
    if pid is None:
        yield
        return
    from minidocker.runtime.stdio import forwarding_signals

    with forwarding_signals(pid):
        yield


def pump(sock: socket.socket, in_fd: int, scanner: DetachScanner) -> int | None:
    """Copy frames from the monitor to our stdout/stderr and our input to the monitor, until
    the container's exit code comes (returned) or the detach keys are typed (None)."""
    import select

    from minidocker.runtime.logfile import write_all

    buf, fds = b"", [sock.fileno()] + ([in_fd] if in_fd >= 0 else [])
    outputs = {STDOUT: sys.stdout.fileno(), STDERR: sys.stderr.fileno()}
    while True:
        try:
            ready, _, _ = select.select(fds, [], [])
        except InterruptedError:
            continue
        if sock.fileno() in ready:
            data = sock.recv(65536)
            if not data:
                return NO_WORD  # the monitor went away without a word (killed: rm -f)
            frames, buf = split_frames(buf + data)
            for kind, payload in frames:
                if kind == EXIT:
                    return struct.unpack(">i", payload)[0]
                write_all(outputs[kind], payload)
        if in_fd in ready:
            data = os.read(in_fd, 65536)
            if not data:
                fds.remove(in_fd)  # our input ended; the output still comes
                continue
            data, detached = scanner.feed(data)
            if data:
                sock.sendall(frame(STDIN, data))
            if detached:
                return None
