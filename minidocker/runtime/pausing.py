"""``run --pause-at STEP``: the container's PID 1 stops just before one of its steps.

A container is built in a few dozen small steps (init.py's ``container_init``, rootfs.py's
``prepare_rootfs``), and each is a moment worth seeing from outside: before ``pivot_root``
the container already has its own mount namespace and its overlay, but ``/`` is still the
host's. The protocol, armed in the CLI's process before fork (the child inherits it)::

    child (PID 1)   the step hook (steps.watch) meets the named step:
                    block SIGCONT, report(pause pipe, paused=STEP), sigwait(SIGCONT)
    parent          reads the report, kill(PID 1, SIGSTOP): the child shows state T in ps;
                    tells the user its host PID and what to look at
    the user        presses Enter (the parent sends SIGCONT) or runs ``kill -CONT PID``
    child           sigwait returns; SIGCONT unblocked again (a mask survives execve);
                    the step runs, and the start goes on as if nothing had happened

Why not ``raise(SIGSTOP)`` in the child: the kernel drops a signal that PID 1 of a PID
namespace sends itself unless PID 1 handles it (pid_namespaces(7)); SIGSTOP cannot be
handled. The parent, in the ancestor namespace, may stop it.

Only a process whose PID is 1 pauses, so the CLI's own steps (and ``--userns=auto``'s helper
that forks PID 1) never do. Nothing here is imported unless ``--pause-at`` is given.

See it: ``minidocker run --rm --pause-at pivot_root busybox true``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable

from minidocker.errors import MinidockerError
from minidocker.linux import events, procfs
from minidocker.runtime import steps
from minidocker.runtime.forked import report

# The steps of a container's PID 1, in the order they run (tests/unit/test_pausing.py reads
# them off init.py and rootfs.py); "execve" is the name a student expects for the last one.
PAUSE_POINTS = tuple(
    """
    hide_host_binary enter_namespaces set_hostname bring_up_loopback load_security
    prepare_rootfs
        make_mounts_private bind_bundle_root mount_overlay mount_volumes mount_tmpfs mount_proc mount_dev
        make_devices mount_sys mount_cgroups mount_bundle_mounts mount_etc_files change_root pivot_root mask_paths
        readonly_paths
        remount_root_readonly
    setup_stdio make_workdir wait_for_parent enter_cgroup_namespace wait_for_start run_start_hooks
    apply_seccomp_with_privileges drop_capabilities switch_user limit_capabilities set_no_new_privs change_dir
    apply_seccomp run_reaper exec_command
    """.split()  # noqa: SIM905 - a line per phase reads better than a line per name
)
ALIASES = {"execve": "exec_command"}


def step_named(name: str) -> str:
    """The step ``--pause-at NAME`` means, or the error that lists the valid names."""
    if name in ALIASES:
        return ALIASES[name]
    if name not in PAUSE_POINTS:
        raise MinidockerError(f"--pause-at: unknown step {name!r}; valid steps: {', '.join(PAUSE_POINTS)} (or execve)")
    return name


class Pause:
    """The armed pause: its step, the pipe PID 1 reports on, and how to tell the user."""

    def __init__(self, name: str, tell: Callable[[dict], None]) -> None:
        self.step = step_named(name)
        self.tell = tell
        self.report_r, self.report_w = os.pipe2(os.O_CLOEXEC)  # (the image's program never sees it)

    def hook(self, name: str, fn: Callable, args: tuple, kwargs: dict) -> object:
        """Every step runs through here (steps.watch): PID 1 pauses before ours."""
        if name == self.step and os.getpid() == 1:
            self.pause_here()
        if events.enabled():
            return steps.timed(name, fn, args, kwargs)
        return fn(*args, **kwargs)

    def pause_here(self) -> None:
        """In PID 1: say where we are, then wait for SIGCONT (blocked, so that it waits for
        us instead of being lost; its default action, continuing a stopped process, is the
        kernel's and happens anyway)."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCONT})
        report(self.report_w, paused=self.step)
        signal.sigwait({signal.SIGCONT})
        signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def follow(self, err_r: int, pid: int, cgroup_paths: dict[str, str]) -> None:
        """In the parent, before ``await_execve``: stop PID 1 when it reports the pause, tell
        the user, send SIGCONT on Enter (stdin a terminal); return once the error pipe has
        something to read (execve closed it, or a step failed: ``await_execve`` reads which)."""
        try:
            self._follow(err_r, pid, cgroup_paths)
        except BaseException:  # Ctrl-C while paused: a stopped PID 1 would outlive us
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            raise

    def _follow(self, err_r: int, pid: int, cgroup_paths: dict[str, str]) -> None:
        keys = sys.stdin.isatty()
        paused = False
        while True:
            watched = [err_r] + ([0] if keys else []) if paused else [err_r, self.report_r]
            ready, _, _ = select.select(watched, [], [])
            if err_r in ready:
                return
            if self.report_r in ready:
                facts = json.loads(os.read(self.report_r, 4096).decode().splitlines()[0])
                stop(pid)
                paused = True
                self.tell({"step": facts["paused"], "pid": pid, "cgroups": cgroup_paths, "keys": keys})
            elif 0 in ready:
                os.read(0, 4096)  # the line the user typed (Enter)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                keys = False  # from now on we wait for the error pipe only


def stop(pid: int, timeout: float = 5.0) -> None:
    """SIGSTOP ``pid`` and return once the kernel shows it stopped (kill(2) only queues the
    signal; the guide must not say "stopped" of a process still on its way to sigwait). It
    may not be our child (``--userns=auto``), so we read its state rather than wait(2) for it."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:  # killed meanwhile: the error pipe says so
        return
    deadline = time.monotonic() + timeout
    while procfs.process_state(pid) not in ("T", "t", "Z", "X", None) and time.monotonic() < deadline:
        time.sleep(0.001)


_armed: Pause | None = None


def arm(name: str, tell: Callable[[dict], None]) -> None:
    """``--pause-at NAME``: check the name (before anything starts), then make every step
    watched, in this process and in the children it forks."""
    global _armed
    from minidocker.runtime import lifecycle

    _armed = Pause(name, tell)
    steps.watch(_armed.hook)
    lifecycle.follow_pause = _armed.follow


def armed() -> Pause | None:
    return _armed
