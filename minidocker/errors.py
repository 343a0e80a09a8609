"""The one error vocabulary of minidocker.

Library code raises a ``MinidockerError`` subclass carrying a message, an optional hint and
the exit code the CLI ends with. The CLI prints ``Error: <message>`` (and the hint) on stderr
in one place, ``cli/render.py``, and exits with ``exit_code``: one of ``ExitCode``, or the
container's own code, which ``exit_code(wait_status)`` reads from a process's wait status.

Every error class lives here, grouped by what failed: images, registries and the store;
pull and push; lazy layers; containers (their start, freeze, ``cp``, ``export``); networks;
volumes; ``build``, ``import`` and ``load``. A failed kernel call in ``linux/`` raises
``OSError`` (with the path set) instead; the runtime step that called it says which step failed.
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


class RangesUnsupported(RegistryError):
    """The server answered a Range request with the whole blob (200): pull it whole (image/blobrange.py)."""


class DigestMismatch(RegistryError):
    """Content whose sha256 is not the digest it was asked for (or is truncated)."""


class HostileLayer(MinidockerError):
    """A layer tar that tries to write outside its directory."""


class StoreError(MinidockerError):
    """The on-disk store cannot be read or written (disk full, permissions, corruption)."""


class Conflict(MinidockerError):
    """The request conflicts with the store's state (image in use, name taken, ...)."""


# -- pull and push ----------------------------------------------------------------------------
class PullAborted(MinidockerError):
    """Another layer of the same pull failed; this one stops early."""


class PushAborted(MinidockerError):
    """Another blob of the same push failed; this one stops early."""


class EstargzError(MinidockerError):
    """A blob that is not the eStargz its descriptor says (footer, TOC), or a layer that
    cannot be written as one (image/estargz.py)."""


class ChunkCorrupt(EstargzError):
    """A chunk of an eStargz file whose bytes do not inflate to what the TOC's digest names."""


# -- lazy layers ------------------------------------------------------------------------------
class LazyLayerError(MinidockerError):
    """A lazy layer that cannot be served (minidocker/lazy/): a table of contents that does
    not add up, a chunk its source could not give in time, a FUSE server that did not start."""


# -- containers -------------------------------------------------------------------------------
class NoSuchContainer(MinidockerError):
    """No container has this ID, ID prefix or name."""


class ChildFailed(MinidockerError):
    """A child's reported failure: the step it failed at, what went wrong, its exit code."""

    def __init__(self, message: str, step: str = "", exit_code: int | None = None):
        super().__init__(message, exit_code=exit_code)
        self.step = step


class StartFailed(ChildFailed):
    """The container did not start: the step that failed (ours or its own), and why."""


class BundleError(MinidockerError):
    """An OCI bundle's config.json that the runtime cannot run, or cannot read (oci/bundle.py)."""


class HookFailed(MinidockerError):
    """An OCI bundle's hook exited non-zero, was killed, timed out, or could not be executed (oci/hooks.py)."""


class CommandFailed(MinidockerError):
    """execve of the container's command failed: docker's 127 (not found) or 126 (found,
    but it cannot be executed)."""


class FreezeFailed(MinidockerError):
    """``commit`` of a running container: its cgroup could not be frozen meanwhile."""


class CopyError(MinidockerError):
    """``cp``: a path that is not there, a destination that cannot take it, a refused member."""


class ExportFailed(MinidockerError):
    """``export``: the process writing the container's tar failed, or its reader went away."""


# -- networks ---------------------------------------------------------------------------------
class NoSuchNetwork(MinidockerError):
    """No network of this name."""

    def __init__(self, name: str):
        super().__init__(
            f"network {name} not found",
            hint="minidocker network ls lists them; minidocker network create NAME makes one",
        )


# -- volumes --------------------------------------------------------------------------------
class NoSuchVolume(MinidockerError):
    """No volume of this name."""

    def __init__(self, name: str):
        super().__init__(f"No such volume: {name}", hint="minidocker volume ls lists them")


# -- build, import, load ----------------------------------------------------------------------
class DockerfileError(MinidockerError):
    """A Dockerfile (or a ``commit -c`` change) that does not parse."""


class BuildError(MinidockerError):
    """``build``: a step of a Dockerfile that parses but cannot be carried out."""


class NotATar(MinidockerError):
    """The input of ``import`` is not a (gzip or zstd) tar."""


class ArchiveError(MinidockerError):
    """An archive that is not a docker-archive or OCI layout, or is damaged or hostile."""


class TemplateParsingError(MinidockerError):
    """A ``--format`` Go template that does not parse or fails while it runs (docker calls
    both a "template parsing error")."""


def printable(text: str) -> str:
    """``text`` safe to show on one line of a terminal: bytes that were not UTF-8 (argv and
    file names keep them as surrogates, PEP 383) as ``\\xNN``, and newlines and other
    control characters as their escapes, so one error stays one line."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class LessonNotFound(MinidockerError):
    """``minidocker lesson show N`` of a lesson the course does not have."""
