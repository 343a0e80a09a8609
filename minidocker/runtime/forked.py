"""Work done in a forked child, and the one way a child tells its parent how it went.

Some work must run in a process of its own: a container's first process (``init.py``), the
helper that joins a running container (``exec.py``), the monitor of a detached container
(``monitor.py``), a process that joins a container's mount namespace (``cp``), one whose
state a container start changes (``build`` starts many). Each reports back the same way,
through a pipe the parent makes before fork::

    child    report_failure(w, step, message, code)   one JSON line, then _exit(code):
                 {"step": "prepare_rootfs", "message": "Permission denied: /x", "code": 125}
             report(w, pid=4321)                      or, on success, facts the parent needs
    parent   read_report(r, error)                    read to the end of the pipe, which comes
                                                      when every copy of its write end is closed:
                                                      the child exited, or its execve closed it

A failure line raises ``error(message, step=..., exit_code=...)`` in the parent; an empty
pipe means the child had nothing to report. A report is one write(2), its message cut so
that the line stays well under a pipe's buffer (64 KiB, pipe(7)): the child never blocks on
it, and the parent never reads half of one.

``run_in_child`` is the whole pattern for work in Python: fork, run, report, wait.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable

from minidocker.errors import ChildFailed, ExitCode, MinidockerError, exit_code

MESSAGE_LIMIT = 3000  # characters; escaped as JSON, at most 12 bytes each: 36 KB


def describe_failure(e: BaseException) -> str:
    """The one line a user reads for an exception: our own errors' message, an OSError's
    reason and path, anything else with its type (so that a bug still says what it was)."""
    message = getattr(e, "message", None)  # MinidockerError's, or any exception's that has one
    if message:
        return message
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return f"{type(e).__name__}: {e}"


def report(fd: int, **facts) -> None:
    """Write one line of facts to the parent. A parent that stopped listening is no error
    of ours: it learns from our exit status."""
    try:
        os.write(fd, (json.dumps(facts) + "\n").encode())
    except OSError:
        pass


def report_failure(fd: int, step: str, message: str, code: int = ExitCode.MINIDOCKER_FAILED) -> None:
    """Tell the parent which step failed, why, and the exit code the user should see."""
    report(fd, step=step, message=message[:MESSAGE_LIMIT], code=int(code))


def read_to_end(fd: int) -> str:
    """Everything the pipe brings until end of file: every copy of its write end closed."""
    chunks = []
    while data := os.read(fd, 65536):
        chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def read_report(fd: int, error: Callable[..., MinidockerError] = ChildFailed) -> dict:
    """Read the child's report to the end of the pipe, and close it. A failure raises
    ``error(message, step=..., exit_code=...)``; otherwise return the child's facts ({} when
    it reported nothing)."""
    try:
        text = read_to_end(fd)
    finally:
        os.close(fd)
    facts = json.loads(text.splitlines()[0]) if text.strip() else {}
    if "step" in facts:
        raise error(facts["message"], step=facts["step"], exit_code=facts["code"])
    return facts


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
        code: int = ExitCode.MINIDOCKER_FAILED
        try:
            os.close(err_r)
            code = work() or 0
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            report_failure(err_w, getattr(work, "__name__", "work"), describe_failure(e))
        finally:
            os._exit(code)
    os.close(err_w)
    ours: BaseException | None = None
    try:
        if alongside is not None:
            alongside()
    except Exception as e:  # noqa: BLE001 - raised below unless the child has the reason
        ours = e
    try:
        read_report(err_r)
    finally:
        _, status = os.waitpid(pid, 0)
    if ours is not None:
        raise ours
    return exit_code(status)
