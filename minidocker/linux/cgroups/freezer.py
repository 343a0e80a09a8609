"""A freeze that ends when its owner ends, however it ends (``commit`` on a running container).

``commit`` freezes the container's cgroup so that its upper dir holds still while it is
read. But a freeze is a state of the kernel, not of the process that asked for it: if that
process dies before it thaws (by SIGKILL, which no handler and no ``finally`` can catch),
the container stays frozen, every process of it stopped, until someone writes THAWED.

So the freeze has an owner that outlives the command: ``hold_frozen`` forks a small helper
process, which freezes the cgroup and then waits on a pipe. The command keeps the pipe's only
write end and never writes to it. When the command is done it closes that end; when the
command dies, the kernel closes it. Either way the helper's ``read`` returns end-of-file, and
the helper thaws the cgroup and exits. The thaw follows the commit's end at once, with no
one having to notice later that the commit is gone.

Why a pipe rather than ``prctl(PR_SET_PDEATHSIG)``: the death signal is sent when the
*thread* that forked the helper ends (not the process), and it is a signal to handle; an
end-of-file on a pipe cannot be missed, and says the same thing.

The helper ignores SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGTSTP: a Ctrl-C at the terminal goes
to the whole process group, and the helper must live until it has thawed. If the helper
itself is killed, the command (still alive) thaws the cgroup itself.

See it: during a long ``minidocker commit``, ``ps -o pid,ppid,stat,cmd --ppid <commit pid>``
shows the helper; ``kill -9`` the commit, then ``cat
/sys/fs/cgroup/freezer/minidocker/<id>/freezer.state``: THAWED.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator

from minidocker.errors import FreezeFailed

IGNORED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTSTP)
FROZEN = b"frozen"


@contextlib.contextmanager
def hold_frozen(
    manager, on_frozen: Callable[[], object] = lambda: None, on_thawed: Callable[[], object] = lambda: None
) -> Iterator[None]:
    """Keep ``manager``'s cgroup frozen for the ``with`` block, the freeze owned by a helper
    process (module docstring). ``on_frozen`` runs in the helper once every task is stopped;
    ``on_thawed`` after the thaw (both record the container's status). Call it from a
    process without other threads: it forks."""
    owner_r, owner_w = os.pipe2(os.O_CLOEXEC)  # owner_w: ours alone; its end of file = thaw
    report_r, report_w = os.pipe2(os.O_CLOEXEC)  # the helper says "frozen" or what failed
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _be_the_helper(manager, owner_r, owner_w, report_w, on_frozen, on_thawed)
    os.close(owner_r)
    os.close(report_w)
    with os.fdopen(report_r, "rb") as f:
        report = f.read()  # the helper closes its end once the freeze is done (or failed)
    try:
        if report != FROZEN:
            raise FreezeFailed(f"cannot freeze the container: {report.decode(errors='replace') or 'the helper died'}")
        yield
    finally:
        os.close(owner_w)  # end of file for the helper: it thaws now
        _, status = os.waitpid(pid, 0)
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):  # the helper was killed
            with contextlib.suppress(OSError):
                manager.thaw()
            on_thawed()


def _be_the_helper(
    manager, owner_r: int, owner_w: int, report_w: int, on_frozen: Callable[[], object], on_thawed: Callable[[], object]
) -> None:
    """The helper's whole life: freeze, report, wait for the owner's end, thaw, exit."""
    code = 0
    try:
        for sig in IGNORED:
            signal.signal(sig, signal.SIG_IGN)
        os.close(owner_w)  # else our own copy would keep the pipe open: no end of file, ever
        _keep_only_fds(owner_r, report_w)
        try:
            manager.freeze()
            on_frozen()
            message = FROZEN
        except BaseException as e:  # noqa: BLE001 - reported to the owner
            message = (str(e) or type(e).__name__).encode()[:4000]
        with contextlib.suppress(OSError):  # EPIPE: the owner was killed while we froze; read on: EOF, thaw
            os.write(report_w, message)
        os.close(report_w)
        while os.read(owner_r, 4096):  # the owner never writes: this returns at its end
            pass
        with contextlib.suppress(OSError):  # gone: the container was removed meanwhile
            manager.thaw()
        on_thawed()
    except BaseException:  # noqa: BLE001 - the owner thaws in our place when we fail
        code = 1
    finally:
        os._exit(code)


def _keep_only_fds(*keep: int) -> None:
    """Close every descriptor but stdin/out/err and ``keep``: the helper must not hold the
    owner's locks or pipes (a test's, a terminal's) open after the owner has gone. stdin
    and stdout go to /dev/null; stderr stays, for a message if something goes wrong."""
    start = 3
    for fd in sorted(keep):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, os.sysconf("SC_OPEN_MAX"))
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
