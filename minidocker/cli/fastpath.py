"""A fast path for ``run``: parse its flags without importing typer (about 100 ms saved).

``minidocker run`` is the command whose start-up time people feel, and typer with what it
imports costs more than Python's own start. So ``main()`` first tries this small parser of
docker's flag grammar (``-it``, ``-e K=V``, ``-eK=V``, ``--name=x``, ``--name x``, flags end
at the image name). Anything it does not know (``--help``, a typo) falls back to typer, which
then prints the proper usage. ``tests/unit/test_cli_fastpath.py`` checks that this table and
the typer command in ``cli/run.py`` accept the same flags.
"""

from __future__ import annotations

import os
import sys

# flag -> (destination, kind); kind: "bool", "str" or "list"
RUN_FLAGS: dict[str, tuple[str, str]] = {
    "-i": ("interactive", "bool"), "--interactive": ("interactive", "bool"),
    "-t": ("tty", "bool"), "--tty": ("tty", "bool"),
    "-d": ("detach", "bool"), "--detach": ("detach", "bool"),
    "--rm": ("rm", "bool"),
    "--name": ("name", "str"),
    "-e": ("env", "list"), "--env": ("env", "list"),
    "--env-file": ("env_file", "list"),
    "-w": ("workdir", "str"), "--workdir": ("workdir", "str"),
    "-u": ("user", "str"), "--user": ("user", "str"),
    "-h": ("hostname", "str"), "--hostname": ("hostname", "str"),
    "--entrypoint": ("entrypoint", "str"),
    "-v": ("volume", "list"), "--volume": ("volume", "list"),
    "--init": ("init", "bool"),
    "--network": ("network", "str"), "--net": ("network", "str"),
    "--read-only": ("read_only", "bool"),
    "--explain": ("explain", "bool"),
    "--tmpfs": ("tmpfs", "list"),
    "-m": ("memory", "str"), "--memory": ("memory", "str"),
    "--memory-swap": ("memory_swap", "str"),
    "--cpus": ("cpus", "float"),
    "-c": ("cpu_shares", "int"), "--cpu-shares": ("cpu_shares", "int"),
    "--cpuset-cpus": ("cpuset_cpus", "str"),
    "--pids-limit": ("pids_limit", "int"),
    "--cap-add": ("cap_add", "list"),
    "--cap-drop": ("cap_drop", "list"),
    "--privileged": ("privileged", "bool"),
    "--security-opt": ("security_opt", "list"),
    "--userns": ("userns", "str"),
    "-p": ("publish", "list"), "--publish": ("publish", "list"),
    "--restart": ("restart", "str"),
}
GLOBAL_FLAGS = {"--root": "str", "--debug": "bool", "-D": "bool"}


class NotFast(Exception):
    """Leave this command line to typer."""


def parse_run(argv: list[str]) -> tuple[dict, dict]:
    """``[global flags] run [flags] IMAGE [ARGS]`` -> (globals, run options)."""
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
            if not eq:
                i += 1
                if i >= len(argv):
                    raise NotFast
                value = argv[i]
            glob[flag.lstrip("-")] = value
        i += 1
    if i >= len(argv) or argv[i] != "run":
        raise NotFast
    i += 1
    opts: dict = {dest: ([] if kind == "list" else False if kind == "bool" else None)
                  for dest, kind in RUN_FLAGS.values()}
    opts["network"] = "default"
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            flag, eq, value = arg.partition("=")
            if flag not in RUN_FLAGS:
                raise NotFast
            dest, kind = RUN_FLAGS[flag]
            if kind == "bool":
                if eq:
                    raise NotFast
                opts[dest] = True
            else:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise NotFast
                    value = argv[i]
                _store(opts, dest, kind, value)
            i += 1
            continue
        # short flags, possibly combined: -it, -dit, -eK=V, -e K=V
        j = 1
        while j < len(arg):
            flag = "-" + arg[j]
            if flag not in RUN_FLAGS:
                raise NotFast
            dest, kind = RUN_FLAGS[flag]
            if kind == "bool":
                opts[dest] = True
                j += 1
                continue
            value = arg[j + 1:]
            if not value:
                i += 1
                if i >= len(argv):
                    raise NotFast
                value = argv[i]
            _store(opts, dest, kind, value)
            break
        i += 1
    if i >= len(argv):
        raise NotFast  # no image: typer prints the usage
    opts["image"] = argv[i]
    opts["args"] = argv[i + 1:]
    return glob, opts


def _store(opts: dict, dest: str, kind: str, value: str) -> None:
    if kind == "list":
        opts[dest].append(value)
    elif kind in ("int", "float"):
        try:
            opts[dest] = int(value) if kind == "int" else float(value)
        except ValueError:
            raise NotFast from None  # typer says what is wrong with the number
    else:
        opts[dest] = value


def run(argv: list[str]) -> int:
    """Parse and run; raises NotFast when typer should handle the line instead."""
    from pathlib import Path

    from minidocker import api
    from minidocker.errors import MinidockerError

    glob, o = parse_run(argv)
    root = Path(glob["root"]) if glob.get("root") else (Path(os.environ["MINIDOCKER_ROOT"])
                                                        if os.environ.get("MINIDOCKER_ROOT") else None)
    if o["tty"] and o["interactive"] and not sys.stdin.isatty():
        _error("the input device is not a TTY", None)
        return 1
    if o["explain"]:
        from minidocker.cli import render

        render.explain_to_stderr()
    progress = None

    def on_pull(ref: str):
        nonlocal progress
        from minidocker.cli import render

        progress = render.PullProgress()
        progress.__enter__()
        progress._line(f"Unable to find image '{ref}' locally")
        return progress

    def stop_progress(_cid: str) -> None:
        if progress is not None:
            progress.stop()

    try:
        result = api.run(o["image"], o["args"], root=root, name=o["name"], entrypoint=o["entrypoint"],
                         env=o["env"], env_files=o["env_file"], workdir=o["workdir"], user=o["user"],
                         hostname=o["hostname"], tty=o["tty"], interactive=o["interactive"], detach=o["detach"],
                         auto_remove=o["rm"], init=o["init"], network=o["network"], volumes=o["volume"],
                         read_only=o["read_only"], tmpfs=o["tmpfs"], memory=o["memory"],
                         memory_swap=o["memory_swap"], cpus=o["cpus"], cpu_shares=o["cpu_shares"],
                         cpuset_cpus=o["cpuset_cpus"], pids_limit=o["pids_limit"], cap_add=o["cap_add"],
                         cap_drop=o["cap_drop"], privileged=o["privileged"], security_opt=o["security_opt"],
                         userns=o["userns"] or "host", publish=o["publish"], restart=o["restart"] or "no", progress=lambda ev: progress(ev) if progress else None,
                         on_pull=on_pull, on_created=stop_progress)
    except MinidockerError as e:
        stop_progress("")
        _error(e.message, e.hint, e if glob.get("debug") or glob.get("D") else None)
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - a bug still ends in one line, never a traceback
        from minidocker.cli import render

        stop_progress("")
        render.unexpected_error(e, debug=bool(glob.get("debug") or glob.get("D") or os.environ.get("MINIDOCKER_DEBUG")))
        return 125
    if o["detach"]:
        print(result, flush=True)
        return 0
    return int(result)


def _error(message: str, hint: str | None, exc: BaseException | None = None) -> None:
    """Errors on the fast path: plain lines on a pipe, rich only on a terminal."""
    if exc is not None or sys.stderr.isatty():
        from minidocker.cli import render

        render.error(exc or message, hint=hint, debug=exc is not None)
        return
    from minidocker.errors import printable

    sys.stderr.write(f"Error: {printable(message)}\n" + (f"hint: {printable(hint)}\n" if hint else ""))
