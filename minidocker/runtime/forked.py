"""Work done in a forked child, its failure reported back through a pipe.

Some steps must run in a process of their own: one that joins a container's mount
namespace (``cp``), or one whose state a container start changes (``build`` starts many).
``run_in_child`` forks, runs the work there, and hands back its exit code; an exception in
the child comes back as one line of text (``ChildFailed``), never as a lost traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from minidocker.errors import MinidockerError


class ChildFailed(MinidockerError):
    pass


def run_in_child(work: Callable[[], int | None], alongside: Callable[[], None] | None = None) -> int:
    """Fork; the child runs ``work()`` (its return value is the exit code, None meaning 0)
    while this process runs ``alongside()``, if given (the two may talk through a pipe made
    before the call). Returns the child's exit code, 128+N for signal N. A failure of the
    child raises ``ChildFailed`` with its message, and comes before one of ``alongside``'s:
    when the child dies, the pipe ``alongside`` uses breaks, but the reason is the child's."""
    err_r, err_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 125
        try:
            os.close(err_r)
            code = work() or 0
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(err_w, (getattr(e, "message", None) or getattr(e, "strerror", None)
                             or f"{type(e).__name__}: {e}").encode()[:4000])
        finally:
            os._exit(code)
    os.close(err_w)
    ours: BaseException | None = None
    try:
        if alongside is not None:
            alongside()
    except Exception as e:  # noqa: BLE001 - raised below unless the child has the reason
        ours = e
    with os.fdopen(err_r, "rb") as f:
        message = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if message:
        raise ChildFailed(message)
    if ours is not None:
        raise ours
    return os.waitstatus_to_exitcode(status) if not os.WIFSIGNALED(status) else 128 + os.WTERMSIG(status)
