"""The runtime spec's hooks: programs a bundle names, run at fixed points of its lifecycle,
each with the container's state (the JSON ``state`` prints) on its stdin::

    prestart, createRuntime   create: in the runtime's namespaces, once PID 1 has made its
                              namespaces and mounts, before its pivot_root (PID 1 waits)
    createContainer           create: by PID 1, in the container's namespaces, before
                              pivot_root (so the path resolves in the host's filesystem)
    startContainer            start: by PID 1, in the container, before the user's execve
    poststart                 start: in the runtime's namespaces, after that execve
    poststop                  delete: once the container is gone

A failing hook of the first four fails its operation and the container is stopped (one
error line naming the hook); a failing poststart or poststop hook is a warning, and the
rest goes on. A hook's ``timeout`` (seconds) kills it.

The hooks are run with fork and execve, not subprocess: PID 1 runs two kinds, the second
after pivot_root, where the host's Python library is out of sight.

See it: a config.json with ``"hooks": {"poststart": [{"path": "/bin/sh", "args": ["sh",
"-c", "cat >&2"]}]}``, then ``minidocker-runc run c1`` shows the state.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from minidocker.errors import BundleError, HookFailed, MinidockerError
from minidocker.linux import procfs
from minidocker.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


@record
class Hook:
    path: str
    args: list[str]
    env: list[str] = field(default_factory=list)
    timeout: int | None = None

    def describe(self, kind: str, index: int) -> str:
        return f"{kind} hook #{index} {self.path}"


def hooks_of(config: Any) -> dict[str, list[Hook]]:
    """config.json's ``hooks``, checked: each kind a list of {path, args, env, timeout}."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise BundleError("hooks must be an object")
    out: dict[str, list[Hook]] = {}
    for kind, entries in config.items():
        if kind not in KINDS:
            raise BundleError(f"hooks.{kind} is not supported yet")
        if not isinstance(entries, list):
            raise BundleError(f"hooks.{kind} must be a list")
        out[kind] = [hook_of(f"hooks.{kind}[{i}]", e) for i, e in enumerate(entries)]
    return out


def hook_of(where: str, entry: Any) -> Hook:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise BundleError(f"{where}: a hook needs a path")
    extra = sorted(set(entry) - {"path", "args", "env", "timeout"})
    if extra:
        raise BundleError(f"{where}.{extra[0]} is not supported yet")
    path = entry["path"]
    if not path.startswith("/"):
        raise BundleError(f"{where}: path {path!r} must be absolute")
    timeout = entry.get("timeout")
    if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
        raise BundleError(f"{where}: timeout must be a number of seconds greater than zero")
    args = [str(a) for a in entry.get("args") or []] or [path]
    return Hook(path, args, [str(e) for e in entry.get("env") or []], timeout)


def as_config(hooks: dict[str, list[Hook]]) -> dict[str, list[dict[str, Any]]]:
    """The hooks as config.json has them (kept in state.json for start and delete)."""
    return {
        kind: [{"path": h.path, "args": h.args, "env": h.env, "timeout": h.timeout} for h in entries]
        for kind, entries in hooks.items()
    }


def run_hooks(kind: str, hooks: list[Hook], state: dict[str, Any], warn: bool = False) -> None:
    """Each hook in order; the first failure is raised, or with ``warn`` reported on stderr
    and the next hook run."""
    data = json.dumps(state).encode()
    for i, hook in enumerate(hooks):
        try:
            run_hook(hook, data, hook.describe(kind, i))
        except HookFailed as e:
            if not warn:
                raise
            print(f"Warning: {e.message}", file=sys.stderr, flush=True)


def run_hook(hook: Hook, state: bytes, name: str) -> None:
    """fork, execve the hook with the state on a pipe as its stdin, wait (at most its timeout)."""
    stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)  # the child's execve closes it; an errno if it failed
    pid = os.fork()
    if pid == 0:
        exec_hook(hook, stdin_r, err_w)
    os.close(stdin_r)
    os.close(err_w)
    try:
        os.write(stdin_w, state)  # (far less than a pipe's buffer: this does not block)
    except BrokenPipeError:  # it exited without reading: its status says whether that was all right
        pass
    os.close(stdin_w)
    failed = os.read(err_r, 64)
    os.close(err_r)
    status = wait_hook(pid, hook.timeout)
    if failed:
        raise HookFailed(f"{name}: exec: {os.strerror(int(failed))}")
    if status is None:
        raise HookFailed(f"{name}: killed after its timeout of {hook.timeout}s")
    if os.WIFSIGNALED(status):
        raise HookFailed(f"{name}: killed by signal {os.WTERMSIG(status)}")
    if os.WEXITSTATUS(status):
        raise HookFailed(f"{name}: exit status {os.WEXITSTATUS(status)}")


def exec_hook(hook: Hook, stdin_r: int, err_w: int) -> None:
    """The hook's child: the state pipe as stdin, default signals, execve. Never returns."""
    try:
        os.dup2(stdin_r, 0)
        for s in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(s, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        env = dict(e.split("=", 1) for e in hook.env if "=" in e)
        os.execve(hook.path, hook.args, env)
    except OSError as e:
        os.write(err_w, str(e.errno or 0).encode())
    finally:
        os._exit(127)


def wait_hook(pid: int, timeout: int | None) -> int | None:
    """Its wait status; None if its timeout passed (it is killed and reaped then)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.0005
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG if deadline is not None else 0)
        except InterruptedError:
            continue
        if done:
            return status
        if deadline is not None and time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


@record
class ContainerHooks:
    """What PID 1 runs (init.InitPipes.hooks): ``before_pivot`` asks ``create`` to run the
    prestart and createRuntime hooks (over ``sock``), then runs createContainer's itself;
    ``start_container`` runs startContainer's once ``start`` let it go on."""

    state: dict[str, Any]
    create_container: list[Hook]
    start_container: list[Hook]
    sock: int | None = None  # our end of the socket pair with create (None: no runtime hooks)

    def before_pivot(self) -> None:
        self.state["pid"] = procfs.host_pid()  # (the host's /proc is still in sight)
        if self.sock is not None:
            os.write(self.sock, b"?")
            if os.read(self.sock, 1) != b"1":
                raise MinidockerError("create went away while it ran the createRuntime hooks")
            os.close(self.sock)
        run_hooks("createContainer", self.create_container, self.state)

    def started(self) -> None:
        run_hooks("startContainer", self.start_container, self.state)  # (created: the program is not run yet)


def run_runtime_hooks(sock: int, hooks: dict[str, list[Hook]], state: dict[str, Any]) -> bool:
    """``create``'s side of ``before_pivot``: wait until PID 1 is there, run the prestart
    and createRuntime hooks, let it go on. False: PID 1 died first (its error pipe says why)."""
    if os.read(sock, 1) != b"?":
        return False
    run_hooks("prestart", hooks.get("prestart", []), state)
    run_hooks("createRuntime", hooks.get("createRuntime", []), state)
    os.write(sock, b"1")
    return True
