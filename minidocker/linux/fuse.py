"""FUSE: a file system whose every answer comes from a process, here a server of ours.

With FUSE ("file system in user space") the kernel keeps the mount, the dentry and page
caches and the permission checks, and sends each operation it cannot answer from its caches
(LOOKUP a name, GETATTR, READDIR, READ, GETXATTR, ...) as a request on ``/dev/fuse``; a
server process reads the request and writes the reply. libfuse does that part: it opens
``/dev/fuse``, mounts it (``mount -t fuse.SUBTYPE``, with ``fd=N`` in the options), reads
requests in a few threads and calls the file system's functions, here Python ones through
mfusepy's ctypes bindings.

The server is a process of its own (``mount_fuse`` forks it), for three reasons. libfuse's
main loop takes over signals for the whole process (SIGINT, SIGTERM and SIGHUP end the loop,
SIGPIPE is ignored); a file system that hangs or crashes must not take its caller with it;
and a lazy layer outlives the command that mounted it (a detached container keeps reading).
The child starts a session of its own, so a terminal's ^C does not reach it, and closes every
file it inherited but those it is told to keep: a store lock or a container's pty held open
by a long-lived server would never be released.

Mounting waits until the kernel and the server have spoken: the kernel's first request is
INIT, and libfuse calls the file system's ``init`` once it has the reply ready, so the child
writes one word to a pipe then, and ``mount_fuse`` returns only after reading it and seeing
the mount in /proc/self/mountinfo (a ``stat`` of the mount point would not do: against a
hung server it waits forever).

Unmounting is ``umount2(2)`` (``fusermount3 -u`` does the same for users who are not root).
The kernel then ends the connection, the server's next read of ``/dev/fuse`` fails, its loop
returns and it exits. A server that died leaves its mount behind, where every access fails
(ENOTCONN, "Transport endpoint is not connected", or ECONNABORTED): umount2 removes it all
the same. A mount still in use (files open, an overlay on top of it) is detached
(MNT_DETACH) and the server asked to stop, then killed: SIGKILL closes its ``/dev/fuse``,
which aborts the connection, so nothing waits on it any more. Nothing is left: no mount,
no process.

See it: ``grep fuse /proc/self/mountinfo`` while a lazy layer is mounted, and ``ls -l
/proc/PID/fd`` of its server (``pid`` of the FuseMount) shows ``/dev/fuse`` among its files.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import select
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

from minidocker.linux.events import emit
from minidocker.linux.procfs import open_fds, start_time
from minidocker.linux.syscalls import MNT_DETACH, umount2

READY = b"ready"


@dataclass(frozen=True)
class FuseMount:
    """A mounted FUSE file system and its server: the PID with its start time names the
    process for good (a PID alone may be another process's once the server is gone)."""

    mountpoint: str
    pid: int
    started: int | None


def mount_fuse(
    operations: object,
    mountpoint: str,
    *,
    fsname: str,
    subtype: str,
    options: dict[str, str | bool],
    log_path: str | None = None,
    keep_fds: tuple[int, ...] = (),
    timeout: float = 10.0,
    readdirplus: bool = True,
    lowlevel: bool = False,
) -> FuseMount:
    """Mount ``operations`` (mfusepy's operations: ``getattr``, ``read``, ...) at
    ``mountpoint`` from a server process of its own, with libfuse's ``-o`` ``options``;
    return once it answers. The server's stderr (libfuse's messages, the log lines of the
    file system) goes to ``log_path``, else to a file without a name. Raises OSError, with
    the server's own last words, if it did not answer within ``timeout`` seconds. With
    ``readdirplus`` a listing carries every entry's attributes (``ReaddirPlusFUSE``)."""
    load_libfuse()  # once, before the fork: every server has it loaded already
    mountpoint = canonical(mountpoint)
    if fuse_mounted(mountpoint):
        raise OSError(errno.EBUSY, f"a FUSE file system is mounted on {mountpoint} already", mountpoint)
    if log_path is not None:
        log_fd = os.open(log_path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    else:
        log_fd = os.open(tempfile.gettempdir(), os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, 0o600)
    log_start = os.fstat(log_fd).st_size
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the server: never returns
        os.close(read_end)
        opts = {"fsname": fsname, "subtype": subtype, **options}
        serve(operations, mountpoint, opts, write_end, log_fd, keep_fds, readdirplus, lowlevel)
    os.close(write_end)
    try:
        said = wait_for_word(read_end, timeout)
        mount = FuseMount(mountpoint, pid, start_time(pid))
        if said != READY or not fuse_mounted(mountpoint):
            stop_server(mount, 0)
            if fuse_mounted(mountpoint):
                umount2(mountpoint, MNT_DETACH)
            # libfuse's own words (a bad mount point, no /dev/fuse) are in the log; else the child's
            why = last_line(os.pread(log_fd, 1 << 16, log_start)) or said.decode(errors="replace")
            why = why or f"no answer in {timeout:g} s"
            raise OSError(errno.EIO, f"the FUSE server for {mountpoint} did not start: {why}", mountpoint)
    finally:
        os.close(read_end)
        os.close(log_fd)
    emit("fuse_mount", target=mountpoint, fstype=f"fuse.{subtype}", source=fsname, server=pid)
    return mount


def load_libfuse() -> None:
    """Import mfusepy, the ctypes bindings of libfuse 3. (mfusepy looks for libfuse 2 first:
    FUSE_LIBRARY_NAME tells it which, for the import only.)"""
    if "mfusepy" in sys.modules:
        return
    before = os.environ.get("FUSE_LIBRARY_NAME")
    os.environ["FUSE_LIBRARY_NAME"] = "fuse3"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError, AttributeError) as e:
        raise OSError(errno.ENOENT, f"libfuse 3 or its bindings are missing ({e})") from None
    finally:
        if before is None:
            del os.environ["FUSE_LIBRARY_NAME"]
        else:
            os.environ["FUSE_LIBRARY_NAME"] = before


def last_line(data: bytes) -> str:
    lines = [line for line in data.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def unmount_fuse(mount: FuseMount, timeout: float = 5.0) -> None:
    """Unmount ``mount`` and make sure its server is gone (see the module's last paragraph)."""
    how = "not mounted"
    if fuse_mounted(mount.mountpoint):
        try:
            umount2(mount.mountpoint)
            how = "umount2"
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            umount2(mount.mountpoint, MNT_DETACH)  # in use: gone from the tree now, freed when unused
            how = "detached"
    ended = stop_server(mount, timeout if how == "umount2" else 0)
    emit("fuse_unmount", target=mount.mountpoint, how=how, server=mount.pid, ended=ended)


def stop_server(mount: FuseMount, timeout: float) -> str:
    """Wait up to ``timeout`` seconds for the server to exit, then SIGTERM (libfuse's loop
    ends on it), then SIGKILL; reap it if it is our child. Says how it ended."""
    for sig, wait in ((None, timeout), (signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)):
        if sig is not None and server_alive(mount):
            os.kill(mount.pid, sig)
        deadline = time.monotonic() + wait
        while True:
            if not server_alive(mount):
                reap(mount.pid)  # a zombie now (or gone): no entry of it is left in the process table
                return "exited" if sig is None else f"ended by {signal.Signals(sig).name}"
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
    raise OSError(errno.EBUSY, f"the FUSE server {mount.pid} of {mount.mountpoint} does not end")


def reap(pid: int, wait: float = 2.0) -> None:
    """Collect the exit status of ``pid`` if it is a child of ours that has ended. (A
    process's first thread shows as a zombie while its other threads still end; until they
    have, waitpid has nothing to collect: so it is asked again, for up to ``wait`` seconds.)"""
    if start_time(pid) is not None:
        return  # running, or a new process under a reused PID: not ours to reap
    deadline = time.monotonic() + wait
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid or time.monotonic() >= deadline:
                return
        except ChildProcessError:
            return  # not our child (another minidocker mounted it): its parent reaps it
        time.sleep(0.005)


def server_alive(mount: FuseMount) -> bool:
    """Is the server still running (the same process: same PID and start time, not a zombie)?"""
    now = start_time(mount.pid)
    return now is not None and now == mount.started


def fuse_mounted(mountpoint: str) -> bool:
    """Is a FUSE file system mounted at ``mountpoint`` in our mount namespace? Read from
    /proc/self/mountinfo (field 5 the mount point, after `` - `` the type), never from the
    file system itself, which a dead or hung server would make fail or wait."""
    point = canonical(mountpoint)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ")
            fstype = fields[fields.index("-") + 1]
            if unescape(fields[4]) == point and (fstype == "fuse" or fstype.startswith("fuse.")):
                return True
    return False


def canonical(path: str) -> str:
    """``path`` as mountinfo writes it: its directory's real path, then its name. The name
    itself is not resolved: that would stat the mount's root, asking its server."""
    head, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(head), name)


def unescape(path: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def wait_for_word(fd: int, timeout: float) -> bytes:
    """What the server writes to the pipe ``fd`` before it closes it (b"" if nothing in time)."""
    deadline = time.monotonic() + timeout
    said = b""
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            break
        data = os.read(fd, 4096)
        if not data:
            break
        said += data
        if said == READY:
            break
    return said


# -- replies that name a file's bytes instead of holding them ------------------------------------
# A ``read_buf`` operation answers a READ with a ``struct fuse_bufvec`` (fuse_common.h) that
# libfuse frees once the reply is sent: each of its buffers is either memory (malloc'd) or a
# range of an open file, which libfuse itself moves to /dev/fuse, with no Python in between:
# by splice(2) when the kernel and ``init`` agreed on it (the pages go from one page cache to
# the other), else by pread(2) into a buffer of its own and one write.
FUSE_BUF_IS_FD = 1 << 1  # enum fuse_buf_flags: the buffer is ``fd``, not ``mem``
FUSE_BUF_FD_SEEK = 1 << 2  # ...read from ``pos`` (pread), not from the file's offset
FUSE_BUF_FD_RETRY = 1 << 3  # ...and read again after a short read
FUSE_CAP_SPLICE_WRITE = 1 << 7  # fuse_conn_info.want: replies may be spliced to /dev/fuse
FUSE_CAP_SPLICE_MOVE = 1 << 8  # ...and their pages moved rather than copied, where they can be
_BUFVEC = struct.Struct("<QQQ")  # struct fuse_bufvec: count, idx, off, then struct fuse_buf buf[count]
_BUF = struct.Struct("<QiiQiiq")  # struct fuse_buf: size, flags, (pad), mem, fd, (pad), pos
_libc = ctypes.CDLL(None, use_errno=True)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]


def pack_bufvec(parts: list[tuple[int, int, int] | bytes], memory: Callable[[bytes], int]) -> bytes:
    """The bytes of a ``struct fuse_bufvec`` of ``parts``, in order: ``(fd, pos, size)`` for
    ``size`` bytes of the open file ``fd`` from ``pos``, or bytes, which ``memory`` copies to
    memory that outlives the call (and returns its address). No part: one empty buffer."""
    raw = [_BUFVEC.pack(max(1, len(parts)), 0, 0)]
    if not parts:
        raw.append(_BUF.pack(0, 0, 0, 0, -1, 0, 0))  # (an empty reply: end of file)
    for part in parts:
        if isinstance(part, tuple):
            fd, pos, size = part
            raw.append(_BUF.pack(size, FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY, 0, 0, fd, 0, pos))
        else:
            raw.append(_BUF.pack(len(part), 0, 0, memory(part), -1, 0, 0))
    return b"".join(raw)


def malloced(data: bytes) -> int:
    """A malloc'd copy of ``data`` (libfuse frees it): its address."""
    mem = _libc.malloc(max(1, len(data)))
    if not mem:
        raise MemoryError("malloc failed for a FUSE reply")
    ctypes.memmove(mem, data, len(data))
    return int(mem)


def reply_buffers(bufpp: object, parts: list[tuple[int, int, int] | bytes]) -> None:
    """Store at ``bufpp`` (read_buf's ``struct fuse_bufvec **``) a malloc'd bufvec of
    ``parts`` (``pack_bufvec``), which libfuse frees once it has replied; a file named in it
    must stay open until then."""
    vec = malloced(pack_bufvec(parts, malloced))
    ctypes.cast(bufpp, ctypes.POINTER(ctypes.c_void_p))[0] = vec  # type: ignore[arg-type]


# -- the server process ---------------------------------------------------------------------------
class Announcer:
    """``operations`` as mfusepy sees them, with an ``init`` that tells the parent (through
    the pipe ``fd``) that the kernel's INIT has come: the file system answers from now on."""

    def __init__(self, operations: object, fd: int):
        self._operations = operations
        self._fd = fd

    def __getattr__(self, name: str) -> object:
        return getattr(self._operations, name)

    def ll_init(self, conn: object) -> None:
        """The low-level API's ``init`` (linux/fuse_lowlevel.py): the same, by that name."""
        own = getattr(self._operations, "ll_init", None)
        if own is not None:
            own(conn)
        os.write(self._fd, READY)
        os.close(self._fd)

    def init_with_config(self, conn: object, config: object) -> None:
        """libfuse's ``init``: the file system's own (which may set ``conn.want``: what the
        kernel is asked for in the reply to INIT), then the word to the parent."""
        own = getattr(self._operations, "init_with_config", None)
        if own is not None:
            own(conn, config)
        elif getattr(self._operations, "init", None) is not None:
            self._operations.init("/")  # type: ignore[attr-defined]
        os.write(self._fd, READY)
        os.close(self._fd)


def become_server(word_fd: int, log_fd: int, keep: tuple[int, ...]) -> None:
    """What the forked child does before it serves (see ``serve``)."""
    os.setsid()
    os.chdir("/")  # a long-lived process must not keep the caller's directory (and its mount) busy
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    let_go_of_files(null, {0, 1, 2, word_fd, *keep})
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)  # as the caller may have set them; libfuse sets its own
    start_logging()
    import gc

    # what exists now (the file system's tree: a node and a dict per entry) lives as long
    # as the server, so it is never garbage: the collector stops walking it on every full
    # collection (a whole-layer read makes many), and its pages stay shared with the
    # parent we were forked from
    gc.freeze()


def serve(
    operations: object,
    mountpoint: str,
    options: dict,
    word_fd: int,
    log_fd: int,
    keep: tuple[int, ...],
    plus: bool,
    lowlevel: bool = False,
):
    """The server process: a session of its own, ``/`` as its directory (paths the file system
    uses must be absolute), stdin from /dev/null, stdout and stderr to the log, only the files
    it needs, then libfuse's loop until the mount goes. It exits; on a failure it first writes
    why to the pipe ``word_fd``."""
    try:
        become_server(word_fd, log_fd, keep)
        if lowlevel:
            from minidocker.linux.fuse_lowlevel import Session

            text = ",".join(k if v is True else f"{k}={v}" for k, v in options.items())
            session = Session(Announcer(operations, word_fd), mountpoint, text, operations.timeout)  # type: ignore[attr-defined]
            operations.session = session  # type: ignore[attr-defined]  # (it may write to the kernel unasked)
            session.serve()
            os._exit(0)
        import mfusepy

        fuse = readdirplus_fuse() if plus else mfusepy.FUSE
        fuse(Announcer(operations, word_fd), mountpoint, foreground=True, **options)
    except BaseException as e:
        try:
            os.write(word_fd, f"{type(e).__name__}: {e}".encode())
        except OSError:
            pass  # init has already spoken and closed the pipe: the loop failed later
        os._exit(1)
    os._exit(0)


FUSE_READDIR_PLUS = 1  # enum fuse_readdir_flags: the kernel asked for READDIRPLUS
FUSE_FILL_DIR_PLUS = 2  # enum fuse_fill_dir_flags: this entry's attributes are complete


def readdirplus_fuse() -> type:
    """mfusepy's FUSE class, with a ``readdir`` that gives libfuse each entry's whole stat
    when the kernel asks for READDIRPLUS. mfusepy gives names and types alone, so the kernel
    must LOOKUP every name it lists before ``ls -l`` can show it: one request more per
    entry. libfuse passes attributes on only from a listing with offsets (an entry's offset
    is where the next request goes on from), so every listing here has them: entry N's is
    N + 1. The file system's ``readdir`` must return a list of ``(name, attributes, 0)``
    with whole attributes, as its ``getattr`` returns them, and the same list every time.
    See docs/lazy-fuse.md for what it saves."""
    import mfusepy

    class ReaddirPlusFUSE(mfusepy.FUSE):
        def readdir_fuse_3(self, path, buf, filler, offset, fip, flags):
            plus = FUSE_FILL_DIR_PLUS if flags & FUSE_READDIR_PLUS else 0
            st = mfusepy.c_stat()
            listing = self.operations.readdir(path.decode(self.encoding, self.errors), fip.contents.fh)
            for next_offset, (name, attrs, _) in enumerate(listing[offset:], start=offset + 1):
                ctypes.memset(ctypes.byref(st), 0, ctypes.sizeof(st))
                mfusepy.set_st_attrs(st, attrs, use_ns=True)
                if filler(buf, name.encode(self.encoding, self.errors), st, next_offset, plus):
                    break  # the kernel's buffer is full: it asks again from next_offset
            return 0

    return ReaddirPlusFUSE


def let_go_of_files(null: int, keep: set[int]) -> None:
    """Point every inherited file descriptor but ``keep`` at /dev/null (fd ``null``): the
    file behind it is closed (a lock on it released, a pty's last writer gone), yet the number
    stays taken, so a Python file object that still owns it can never close a file that
    libfuse opens later under the same number."""
    for fd in open_fds():
        if fd not in keep and fd != null:
            try:
                os.dup2(null, fd, inheritable=False)
            except OSError:
                pass  # the fd that listed /proc/self/fd, closed already


def start_logging() -> None:
    """The server's log lines (the file system's, mfusepy's) go to its stderr, the log file."""
    import logging

    handler = logging.StreamHandler(open(2, "w", buffering=1, closefd=False))  # not sys.stderr: a test's capture
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s[%(process)d]: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("minidocker.lazy").setLevel(logging.INFO)  # (one line per chunk fetched: --explain's)


def detach(mountpoint: str) -> None:
    """Take a FUSE mount out of the tree whose server is unknown or dead (umount2 with
    MNT_DETACH: nothing it could ask of the server is waited for)."""
    point = canonical(mountpoint)
    umount2(point, MNT_DETACH)
    emit("fuse_unmount", target=point, how="detached", server=0, ended="(none recorded)")
