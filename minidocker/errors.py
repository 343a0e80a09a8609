"""The one error vocabulary of minidocker.

Library code raises a ``MinidockerError`` subclass carrying a message, an optional hint and
the exit code the CLI ends with. The CLI prints ``Error: <message>`` (and the hint) on stderr
in one place, ``cli/render.py``, and exits with ``exit_code``: one of ``ExitCode``, or the
container's own code, which ``exit_code(wait_status)`` reads from a process's wait status.
"""

from __future__ import annotations

import enum
import os


class ExitCode(enum.IntEnum):
    """Exit codes as docker uses them."""

    OK = 0
    MINIDOCKER_FAILED = 125  # minidocker itself failed (bad flag, unknown image, ...)
    CANNOT_INVOKE = 126  # the container's command exists but cannot be executed
    NOT_FOUND = 127  # the container's command was not found
    SIGNAL_BASE = 128  # killed by signal N -> 128 + N


def exit_code(wait_status: int) -> int:
    """docker's view of a wait status (from ``os.waitpid``): the code the process exited
    with, or 128 + N when signal N killed it (the shell's rule: SIGKILL shows as 137)."""
    if os.WIFSIGNALED(wait_status):
        return ExitCode.SIGNAL_BASE + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


class MinidockerError(Exception):
    """Base of every error minidocker reports to a user."""

    exit_code: int = ExitCode.MINIDOCKER_FAILED

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class InvalidReference(MinidockerError):
    """A reference such as ``ubuntu:22.04`` that does not follow the grammar."""


class ImageNotFound(MinidockerError):
    """No such image in the store, or no such repository/tag in a registry."""


class RegistryError(MinidockerError):
    """The registry is unreachable, answered with an error, or broke the protocol."""


class AuthenticationError(RegistryError):
    """401/403 from a registry or its token server."""


class DigestMismatch(RegistryError):
    """Content whose sha256 is not the digest it was asked for (or is truncated)."""


class HostileLayer(MinidockerError):
    """A layer tar that tries to write outside its directory."""


class StoreError(MinidockerError):
    """The on-disk store cannot be read or written (disk full, permissions, corruption)."""


class Conflict(MinidockerError):
    """The request conflicts with the store's state (image in use, name taken, ...)."""


def printable(text: str) -> str:
    """``text`` safe to show on one line of a terminal: bytes that were not UTF-8 (argv and
    file names keep them as surrogates, PEP 383) as ``\\xNN``, and newlines and other
    control characters as their escapes, so one error stays one line."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
