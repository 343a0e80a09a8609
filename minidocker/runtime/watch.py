"""The watcher: what a detached container's monitor becomes once the container runs.

Starting a container needs the whole runtime (about 7 MB of Python objects: namespaces,
mounts, cgroups, seccomp). Watching it needs very little: copy its stdout and stderr into
``container.log``, serve the clients that ``attach`` (console.py), wait for its exit. So
once the container runs, its monitor (monitor.py) calls ``become("watch", facts)``: an
``execve`` of a fresh interpreter (``python -I -S``: no site packages, no environment) that
runs ``main`` below with the pipes and the console socket inherited. The process stays the
same: its PID (the record's MonitorPid), its start time, its session, the container as its
child; only its memory is new, and it holds this module, logfile.py and console.py.

When the container exits, the watcher knows its wait status and becomes the monitor again
(``become("monitor", facts)``: monitor.py ``main``), which records the exit, tells the
attached clients, and restarts the container (and becomes a watcher again) or removes it,
as ``--restart`` and ``--rm`` say. Every descriptor not named in ``facts`` is close-on-exec,
so nothing else crosses.

See it: ``minidocker run -d busybox sleep 60``, then ``ps -o pid,rss,args -C python3``.
"""

from __future__ import annotations

import json
import os
import sys

from minidocker.runtime.console import ConsoleServer
from minidocker.runtime.logfile import LogWriter, copy_streams

# The program a fresh interpreter runs: the tree this module was loaded from first on the path
# (-I leaves out the working directory and PYTHONPATH), then the module's main(facts).
BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from minidocker.runtime.{module} import main; main(sys.argv[2])"
SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def become(module: str, facts: dict) -> None:
    """execve this interpreter running ``minidocker.runtime.<module>.main(facts)``: the
    watcher (``watch``, without site packages) or the monitor (``monitor``). The descriptors
    that ``facts`` names are inherited. Returns only if the execve failed."""
    for fd in descriptors(facts):
        os.set_inheritable(fd, True)
    flags = ["-I", "-S"] if module == "watch" else ["-I"]
    if sys.dont_write_bytecode:
        flags.append("-B")
    argv = [sys.executable, *flags, "-c", BOOT.format(module=module), SOURCE_TREE, json.dumps(facts)]
    try:
        os.execv(sys.executable, argv)
    except OSError:
        return


def descriptors(facts: dict) -> list[int]:
    """Every file descriptor ``facts`` names: the container's output streams, its stdin
    pipe, the console's socket, clients and pty master."""
    fds = [int(fd) for fd in facts["streams"]] + [facts["input"]]
    console = facts.get("console")
    if console:
        fds += [*console["fds"], console["input"], console["master"] if console["master"] is not None else -1]
    return sorted({fd for fd in fds if fd >= 0})


def watch(facts: dict, console: ConsoleServer | None = None) -> tuple[int, ConsoleServer | None]:
    """Copy the container's output to its log and to attached clients until it closes
    them, then wait for it: its wait status, and the console (still open: the exit code is
    sent once the exit is recorded). ``console``: the one ``facts`` describes, if this
    process has it already."""
    log = LogWriter(*facts["log"])
    if console is None and facts.get("console"):
        console = ConsoleServer.resume(facts["console"])
    notices = None
    if any("/lazy/" in d for d in facts.get("lowerdirs", ())):  # (lazy/notices.py, imported only then)
        from minidocker.lazy.notices import LazyNotices

        notices = LazyNotices.of(facts["lowerdirs"], facts.get("lazy_logs") or {})
    copy_streams({int(fd): (-1, name) for fd, name in facts["streams"].items()}, log, console, notices)
    if facts["input"] >= 0:
        os.close(facts["input"])
    if console is not None:  # the container's input and pty are gone (copy_streams closed the master)
        console.input_fd, console.master = -1, None
    _, status = os.waitpid(facts["pid"], 0)
    return status, console


def main(text: str) -> None:
    """The watcher's program (``python -I -S -c BOOT``): watch, then become the monitor again
    with the wait status (or, if that execve fails, carry on here with the monitor imported)."""
    facts = json.loads(text)
    status, console = watch(facts)
    facts.update(streams={}, input=-1, status=status, console=console.hand_on() if console else None)
    become("monitor", facts)
    from minidocker.runtime.monitor import after_exit

    after_exit(facts, console)
