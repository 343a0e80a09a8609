"""The ``minidocker`` command's entry point, and its one error exit.

``run`` goes through ``fastpath`` (no typer import: a container starts sooner); every other
command line, and any ``run`` line the fast path does not understand, goes to the typer app.
Both leave through ``report_errors``: whatever a command raises ends as one ``Error:`` line
on stderr and docker's exit code, and a Python traceback only with ``--debug``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from minidocker.errors import ExitCode, MinidockerError


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if "run" in args[:4]:
        if command_of(args) == "run":
            from minidocker.linux.hasten import hasten_moves

            hasten_moves()  # first of all: the kernel's wait for a cgroup move passes while we import
        from minidocker.cli import fastpath

        try:
            glob, line = fastpath.parse_run(args)
        except fastpath.NotFast:
            pass
        else:
            code = report_errors(lambda: fastpath.run(glob, line), debug=lambda: fastpath.wants_debug(glob))
            # Everything is written and recorded: leave without the interpreter's teardown
            # (garbage collection of every module), a few ms on every container start.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    from minidocker.cli.app import typer_main

    typer_main(args)


def command_of(args: list[str]) -> str | None:
    """The command word of a command line: the first word after the global flags
    (``--root DIR`` takes the next word, ``--root=DIR``, ``--debug`` and ``-D`` do not)."""
    words = iter(args)
    for word in words:
        if word == "--root":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def report_errors(command: Callable[[], int], debug: Callable[[], bool]) -> int:
    """Run ``command`` and return its exit code; what it raises is reported here, the one
    place for every command and both parsers:

    * a MinidockerError: ``Error: <message>`` (and its hint), its own exit code;
    * an OSError: ``Error: <strerror>: <filename>``, 125;
    * Ctrl-C (KeyboardInterrupt): 130, 128 + SIGINT, as a shell reports a command the
      signal ended;
    * anything else, a bug: one ``Error: internal error: ...`` line, 125.

    ``debug()`` (``--debug``, or MINIDOCKER_DEBUG set) adds the traceback."""
    try:
        return command()
    except KeyboardInterrupt:
        import signal

        if sys.stderr.isatty():
            sys.stderr.write("\n")  # the terminal echoed ^C: the shell's prompt starts on a line of its own
        return ExitCode.SIGNAL_BASE + signal.SIGINT
    except Exception as e:  # noqa: BLE001 - a bug too ends in one line, never a bare traceback
        from minidocker.cli import render

        debugging = debug() or bool(os.environ.get("MINIDOCKER_DEBUG"))
        if isinstance(e, MinidockerError):
            render.error(e, debug=debugging)
            return e.exit_code
        render.unexpected_error(e, debug=debugging)
        return ExitCode.MINIDOCKER_FAILED
