"""Hastening the first cgroup move of a container start (see ``hasten_moves``).

A module of its own, importing nothing but ``os``, ``time`` and ``_thread``: the entry point
starts it for ``run`` before it imports anything else (cli/main.py), so the kernel's wait
passes while Python loads the rest of minidocker.
"""

from __future__ import annotations

import _thread  # (the C module under threading: nothing else to import)
import os
import time


class Hastener:
    """The thread of ``hasten_moves``: its stop flag and the lock it releases when done."""

    running: Hastener | None = None  # the one of this process, while it runs

    def __init__(self) -> None:
        self.stopping = False
        self.done = _thread.allocate_lock()
        self.done.acquire()

    @classmethod
    def stop(cls) -> None:
        """Before a fork, in the parent: no thread of ours is ever forked."""
        if cls.running is not None:
            cls.running.stopping = True
            with cls.running.done:
                pass


os.register_at_fork(before=Hastener.stop)


def hasten_moves(root: str = "/sys/fs/cgroup", longest: float = 2.0) -> None:
    """Have the kernel's wait for a cgroup move over before we move the container into its
    cgroup: call this early in a start; it works in a thread until this process forks.

    Every write to a ``cgroup.procs`` takes one lock of the whole kernel for writing,
    ``cgroup_threadgroup_rwsem``. It is a per-CPU rwsem, made for cheap readers (every fork
    and exit reads it), so the first writer after a quiet spell waits for an RCU grace
    period (percpu_down_write -> rcu_sync_enter -> synchronize_rcu): 8-15 ms on this VM,
    holding cgroup_mutex, so every mkdir and write in cgroupfs waits too. A writer within
    about one grace period of the last one does not wait. So a thread moves *us* into the
    cgroup we are already in (a move that changes nothing but takes the lock), every 4 ms:
    the first move waits out the grace period while we read the image and write the
    container's record, and the lock stays in its fast state until we fork. The thread
    stops before any fork (os.register_at_fork) and after ``longest`` seconds at most.
    See it: ``time sh -c 'echo $$ > /sys/fs/cgroup/pids/cgroup.procs'``, twice in a row."""
    if Hastener.running is not None:
        return
    try:
        fd = os.open(own_cgroup_procs(root), os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return  # only a head start: the real move waits for itself
    me, pid, until = Hastener(), str(os.getpid()).encode(), time.monotonic() + longest

    def move_in_place() -> None:
        try:
            while not me.stopping and time.monotonic() < until:
                os.write(fd, pid)
                time.sleep(0.004)
        except OSError:
            pass
        finally:
            os.close(fd)
            Hastener.running = None
            me.done.release()

    Hastener.running = me
    _thread.start_new_thread(move_in_place, ())


def own_cgroup_procs(root: str) -> str:
    """The ``cgroup.procs`` of the cgroup we are in: on v2 our one cgroup, on v1 our cgroup
    in the pids hierarchy (any hierarchy would do: the lock is global)."""
    with open("/proc/self/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    if os.path.exists(os.path.join(root, "cgroup.controllers")):  # root is a cgroup2 mount: v2
        return os.path.join(root, next(path for _, _, path in lines).lstrip("/"), "cgroup.procs")
    path = next((p for _, names, p in lines if "pids" in names.split(",")), "/")
    return os.path.join(root, "pids", path.lstrip("/"), "cgroup.procs")
