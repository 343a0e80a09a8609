"""A fast path for ``run``: parse its flags without importing typer (about 100 ms saved).

``minidocker run`` is the command whose start-up time people feel, and typer with what it
imports costs more than Python's own start. So ``main()`` first tries this small parser of
docker's flag grammar (``-it``, ``-e K=V``, ``-eK=V``, ``--name=x``, ``--name x``, flags end
at the image name). Anything it does not know (``--help``, a typo) falls back to typer, which
then prints the proper usage. Its table, ``RUN_FLAGS``, is made from the same RunOptions
fields as the typer command in ``cli/run.py`` (see ``cli/options.py``), and both parsers
end in ``run_container`` here, which starts the container; what it raises is reported by
``cli/main.py``'s one error exit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from minidocker import api
from minidocker.cli.options import RUN_FLAGS
from minidocker.errors import MinidockerError

GLOBAL_FLAGS = {"--root": "str", "--debug": "bool", "-D": "bool"}


class NotFast(Exception):
    """Leave this command line to typer."""


def parse_run(argv: list[str]) -> tuple[dict, dict]:
    """``[global flags] run [flags] IMAGE [ARGS]`` -> (globals, the flags given + image, args)."""
    glob, i = parse_globals(argv)
    if i >= len(argv) or argv[i] != "run":
        raise NotFast
    opts, i = parse_run_flags(argv, i + 1)
    if i >= len(argv):
        raise NotFast  # no image: typer prints the usage
    opts["image"] = argv[i]
    opts["args"] = argv[i + 1 :]
    return glob, opts


def parse_globals(argv: list[str]) -> tuple[dict, int]:
    """The global flags before the command -> ({"root": ..., "debug": True}, where they end)."""
    glob: dict = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        flag, eq, value = argv[i].partition("=")
        kind = GLOBAL_FLAGS.get(flag)
        if kind is None:
            raise NotFast
        if kind == "bool":
            glob[flag.lstrip("-")] = True
        else:
            value, i = (value, i) if eq else take_next(argv, i)
            glob[flag.lstrip("-")] = value
        i += 1
    return glob, i


def parse_run_flags(argv: list[str], i: int) -> tuple[dict, int]:
    """``run``'s flags from ``argv[i]`` on -> (the flags given by field name, the image's index)."""
    opts: dict = {}
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return opts, i + 1
        if not arg.startswith("-") or arg == "-":
            break
        i = parse_long_flag(argv, i, opts) if arg.startswith("--") else parse_short_flags(argv, i, opts)
    return opts, i


def parse_long_flag(argv: list[str], i: int, opts: dict) -> int:
    """``--flag``, ``--flag=value`` or ``--flag value`` at ``argv[i]``; returns the next index."""
    flag, eq, value = argv[i].partition("=")
    if flag not in RUN_FLAGS:
        raise NotFast
    dest, kind = RUN_FLAGS[flag]
    if kind == "bool":
        if eq:
            raise NotFast
        opts[dest] = True
        return i + 1
    value, i = (value, i) if eq else take_next(argv, i)
    store(opts, dest, kind, value)
    return i + 1


def parse_short_flags(argv: list[str], i: int, opts: dict) -> int:
    """Short flags, possibly combined, at ``argv[i]``: ``-it``, ``-dit``, ``-eK=V``, ``-e K=V``."""
    arg = argv[i]
    for j in range(1, len(arg)):
        flag = "-" + arg[j]
        if flag not in RUN_FLAGS:
            raise NotFast
        dest, kind = RUN_FLAGS[flag]
        if kind == "bool":
            opts[dest] = True
            continue
        value = arg[j + 1 :]  # a value flag takes the rest of the word, or the next word
        if not value:
            value, i = take_next(argv, i)
        store(opts, dest, kind, value)
        break
    return i + 1


def take_next(argv: list[str], i: int) -> tuple[str, int]:
    """The word after ``argv[i]``, a flag's value, and its index."""
    if i + 1 >= len(argv):
        raise NotFast  # a flag without its value: typer says so
    return argv[i + 1], i + 1


def store(opts: dict, dest: str, kind: str, value: str) -> None:
    """One flag's value into ``opts``, as its kind says (a list flag collects every value)."""
    if kind == "list":
        opts.setdefault(dest, []).append(value)
    elif kind in ("int", "float"):
        try:
            opts[dest] = int(value) if kind == "int" else float(value)
        except ValueError:
            raise NotFast from None  # typer says what is wrong with the number
    else:
        opts[dest] = value


def run(glob: dict, line: dict) -> int:
    """Run a line ``parse_run`` understood; returns the exit code."""
    root = glob.get("root") or os.environ.get("MINIDOCKER_ROOT")
    flags = {k: v for k, v in line.items() if k not in ("image", "args")}
    return run_container(line["image"], line["args"], api.RunOptions(**flags), Path(root) if root else None)


def wants_debug(glob: dict) -> bool:
    """``--debug`` or ``-D`` among the global flags."""
    return bool(glob.get("debug") or glob.get("D"))


def run_container(image: str, args: list[str], opts: api.RunOptions, root: Path | None) -> int:
    """``run``'s work once its line is parsed, by either parser: start the container (a pull's
    progress shown if the image must be pulled first) and return its exit code, or print its
    ID with ``-d``. Errors are raised, for ``cli/main.py``'s one error exit to report."""
    if opts.tty and attaches_stdin(opts) and not sys.stdin.isatty():
        raise MinidockerError("the input device is not a TTY", exit_code=1)  # docker's words and code
    if opts.explain:
        from minidocker.cli import render

        render.explain_to_stderr()
    if opts.pause_at is not None:
        if opts.detach:
            raise MinidockerError("--pause-at needs a foreground run (not -d): its guide is printed here")
        from minidocker.cli import render

        render.pause_guide_to_stderr(opts.pause_at)
    progress = PullDisplay(announce=opts.pull != "always")
    try:
        result = api.run(
            image, args, opts, root=root, progress=progress, on_pull=progress.start, on_created=progress.stop
        )
    finally:
        progress.stop()  # before any error is printed: the bars end first
    if opts.detach:
        print(result, flush=True)
        return 0
    return int(result)


def attaches_stdin(opts: api.RunOptions) -> bool:
    """Whether our stdin becomes the container's (docker's AttachStdin): ``-i``, not ``-d``,
    and ``stdin`` among the ``-a`` streams if any are named."""
    return opts.interactive and not opts.detach and (not opts.attach or "stdin" in map(str.lower, opts.attach))


class PullDisplay:
    """A pull's progress on stderr, made (and rich imported) only when a pull starts; stopped
    once the container exists, before the container's own output (or a fork) can begin."""

    def __init__(self, announce: bool = True) -> None:
        self.shown = None
        self.announce = announce  # (--pull always: the image may well be here)

    def start(self, ref: str) -> None:
        from minidocker.cli import render

        self.shown = render.PullProgress().__enter__()
        if self.announce:
            self.shown._line(f"Unable to find image '{ref}' locally")

    def __call__(self, event) -> None:
        if self.shown is not None:
            self.shown(event)

    def stop(self, _cid: str = "") -> None:
        if self.shown is not None:
            self.shown.stop()
