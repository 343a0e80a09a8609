"""Reading other processes through /proc: who a process's parent is, and what it runs.

Every process has a directory ``/proc/PID``; ``status`` holds its parent (``PPid:``), ``exe``
is a link to the binary it executes, ``cmdline`` its arguments (NUL separated). The kernel
lets root read these for any process, except where the process made itself non-dumpable
(``prctl(PR_SET_DUMPABLE, 0)``), which hides ``exe``, ``environ`` and ``mem`` from anyone
without CAP_SYS_PTRACE over it (proc(5), ptrace(2) "Ptrace access mode checking").

See it: ``grep PPid /proc/self/status; readlink /proc/self/exe; tr '\\0' ' ' < /proc/self/cmdline``.
"""

from __future__ import annotations

import os


def parent_pid(pid: int) -> int | None:
    """The ``PPid:`` line of /proc/PID/status (None if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


def exe_path(pid: int) -> str | None:
    """Where /proc/PID/exe points (None if gone or not readable)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []
