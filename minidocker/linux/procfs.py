"""Reading other processes through /proc: who a process's parent is, and what it runs.

Every process has a directory ``/proc/PID``; ``status`` holds its parent (``PPid:``) and its
user IDs (``Uid:`` real, effective, saved, filesystem), ``stat`` the same facts on one line
for programs (``PID (COMM) STATE PPID ...``), ``exe`` is a link to the binary it executes,
``cmdline`` its arguments (NUL separated). The kernel
lets root read these for any process, except where the process made itself non-dumpable
(``prctl(PR_SET_DUMPABLE, 0)``), which hides ``exe``, ``environ`` and ``mem`` from anyone
without CAP_SYS_PTRACE over it (proc(5), ptrace(2) "Ptrace access mode checking").

See it: ``grep PPid /proc/self/status; readlink /proc/self/exe; tr '\\0' ' ' < /proc/self/cmdline``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


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


class Process(NamedTuple):
    """One line of ``ps -o uid,pid,ppid,args``: what ``top`` shows of a process."""

    pid: int
    ppid: int
    uid: int  # the real user ID, the first of status's four Uid: fields
    command: str


def read_process(pid: int) -> Process | None:
    """The parent, real user and command line of a process (None if it is gone meanwhile).

    ``stat`` is ``PID (COMM) STATE PPID ...``: COMM may hold spaces and parentheses, so the
    fields are counted from the last ``)``. A kernel thread and a zombie have an empty
    cmdline; ``ps`` shows their COMM instead, and so does this."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        args = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    uid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("Uid:")), None)
    if uid is None:
        return None
    ppid = int(stat[stat.rindex(")") + 2:].split()[1])
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    return Process(pid, ppid, uid, args.replace(b"\0", b" ").decode(errors="replace").strip() or comm)
