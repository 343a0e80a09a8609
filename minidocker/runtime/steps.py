"""Named steps: a container's start is two recipes, and a failure names its step.

The parent's recipe is ``lifecycle.start``, the child's ``init.container_init`` (and
``exec`` shares its last steps). Each is a list of calls to functions marked ``@step``. When
one fails, ``StepFailed`` carries the function's own name, so the user reads
``container start failed at prepare_rootfs: ...`` and the name is written once, as the
function's name. A child reports a ``StepFailed`` to its parent through its error pipe
(``exiting_on_failure``, with forked.py's report); the parent's own steps raise it to
``lifecycle.start``, which tells the user.

The wrapper costs one Python call per step (about a microsecond), and this module imports
nothing the run path has not loaded already. It is also where a start can be watched, since
a step knows its name: ``watch(hook)`` makes every step call ``hook(name, fn, args,
kwargs)`` instead of ``fn`` itself; ``--explain`` times each step that way (``timed``) and
``--pause-at`` stops the container's PID 1 before the step it names (pausing.py). With no
hook (the default) a step pays for one global lookup.

See it: ``minidocker run --rm -u nosuchuser busybox true`` (it fails at ``switch_user``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from functools import wraps

from minidocker.errors import ExitCode
from minidocker.linux import events
from minidocker.runtime.forked import describe_failure, report_failure

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import TypeVar

    F = TypeVar("F", bound=Callable)
    Hook = Callable[[str, Callable, tuple, dict], object]

_hook: Hook | None = None


class StepFailed(Exception):
    """Step ``step`` failed with ``message``; ``code`` is the exit code the user sees,
    ``error`` the exception behind it."""

    def __init__(
        self, step: str, message: str, code: int = ExitCode.MINIDOCKER_FAILED, error: BaseException | None = None
    ):
        super().__init__(message)
        self.step, self.message, self.code, self.error = step, message, code, error


def step(fn: F) -> F:
    """Mark ``fn`` as a step: any exception inside becomes ``StepFailed`` named after ``fn``,
    with the exception's exit code when it has one (``exec_command``'s 126 and 127), else 125.
    A ``StepFailed`` from a step inside it passes through: the innermost step named it."""
    name = fn.__name__

    @wraps(fn)
    def run_step(*args, **kwargs):
        try:
            if _hook is not None:
                return _hook(name, fn, args, kwargs)
            return fn(*args, **kwargs)
        except StepFailed:
            raise
        except Exception as e:
            code = getattr(e, "exit_code", ExitCode.MINIDOCKER_FAILED)
            raise StepFailed(name, describe_failure(e), code, e) from e

    return run_step  # type: ignore[return-value]


def watch(hook: Hook | None) -> None:
    """Install (or with None, remove) the one hook every step runs through; a forked child
    keeps it, so the container's own steps are watched too."""
    global _hook
    _hook = hook


def current_hook() -> Hook | None:
    return _hook


def timed(name: str, fn: Callable, args: tuple, kwargs: dict) -> object:
    """Run a step and emit how long it took, as the ``step`` event ``--explain`` shows after
    the step's own kernel events (a step that fails is timed too; ``exec_command`` never
    returns, so it has no duration: execve replaced us)."""
    began = time.monotonic()
    try:
        return fn(*args, **kwargs)
    finally:
        events.emit("step", name=name, ms=(time.monotonic() - began) * 1000)


@contextlib.contextmanager
def exiting_on_failure(error_w: int):
    """Run a child's steps: a failed one is reported to the parent on ``error_w`` (forked.py)
    and the child exits with its code, so nothing after it runs. A failure outside any step
    (there should be none) is reported as the step ``init``."""
    try:
        yield
    except StepFailed as e:
        report_failure(error_w, e.step, e.message, e.code)
        os._exit(e.code)
    except Exception as e:
        report_failure(error_w, "init", describe_failure(e))
        os._exit(ExitCode.MINIDOCKER_FAILED)
