"""Dockerfile syntax: instructions, continuation lines, comments, words, ``$VARIABLES``.

A Dockerfile is a list of instructions, one per logical line::

    # a comment (only at the start of a line)
    FROM busybox
    ARG GREETING=hello
    ENV APP=/srv/app \\
        MODE="two words"
    RUN echo "$GREETING" > /msg      # shell form: /bin/sh -c '...'
    CMD ["cat", "/msg"]              # exec (JSON) form: no shell

The rules followed here are docker's (the classic builder and BuildKit agree on them):

* A ``\\`` at the end of a line continues the instruction on the next line; comment lines and
  empty lines inside a continued instruction are dropped.
* The keyword is case-insensitive; the rest is the instruction's *arguments*.
* RUN, CMD, ENTRYPOINT (and COPY/ADD) take either a JSON array of strings (*exec form*) or
  plain text (*shell form*: ``/bin/sh -c TEXT`` for RUN/CMD/ENTRYPOINT).
* ``ONBUILD INSTRUCTION`` stores INSTRUCTION's text in the image config's ``OnBuild`` list;
  a build whose FROM names that image runs those triggers right after its FROM, and the
  image it makes has no OnBuild of its own unless it declares one (docker's rule).
* Variables (``$NAME``, ``${NAME}``, ``${NAME:-default}``, ``${NAME:+alternative}``) are
  replaced by the builder in FROM, ENV, ARG, LABEL, EXPOSE, WORKDIR, USER, COPY, ADD;
  RUN/CMD/ENTRYPOINT leave them to the shell in the container. Inside single quotes
  nothing is replaced; a backslash escapes the next character.

``commit -c 'CMD ["x"]'`` uses the same parser for its one-line changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from minidocker.errors import DockerfileError

INSTRUCTIONS = (
    "FROM",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "ARG",
    "WORKDIR",
    "USER",
    "LABEL",
    "EXPOSE",
    "COPY",
    "ADD",
    "MAINTAINER",
    "STOPSIGNAL",
    "VOLUME",
    "SHELL",
    "ONBUILD",
    "HEALTHCHECK",
)
NOT_ONBUILD = ("ONBUILD", "FROM", "MAINTAINER")  # what ONBUILD may not carry, as docker
EXPANDED = ("FROM", "ENV", "ARG", "LABEL", "EXPOSE", "WORKDIR", "USER", "COPY", "ADD", "STOPSIGNAL", "VOLUME")


@dataclass
class Instruction:
    keyword: str  # upper case: "RUN"
    args: str  # the text after the keyword, continuation lines joined
    line: int  # where it starts (1-based)
    original: str = ""  # as written, on one line
    flags: dict[str, str] = field(default_factory=dict)  # --from=..., --chown=...

    def json_args(self) -> list[str] | None:
        """The exec form's list, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None  # docker too treats an invalid JSON array as the shell form
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        return None

    def command(self, shell: list[str] | None = None) -> list[str]:
        """RUN/CMD/ENTRYPOINT's argv: the JSON list, or ``/bin/sh -c TEXT`` (``shell``: what a
        ``SHELL ["/bin/bash", "-c"]`` instruction set instead of /bin/sh -c)."""
        exec_form = self.json_args()
        return exec_form if exec_form is not None else [*(shell or ["/bin/sh", "-c"]), self.args.strip()]


def parse(text: str, show_lines: bool = True) -> list[Instruction]:
    """All instructions of a Dockerfile; raises ``DockerfileError`` naming the line.
    ``show_lines=False`` (a Dockerfile from outside the build context, which may be any host
    file): errors give the line number only, never the file's text."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and (not stripped or stripped.startswith("#")):
            continue  # empty and comment lines inside a continued instruction are dropped
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending.append(raw.rstrip()[:-1])
            continue
        pending.append(raw)
        out.append(parse_line(" ".join(p.strip() for p in pending), start, show_lines))
        pending = []
    if pending:
        out.append(parse_line(" ".join(p.strip() for p in pending), start, show_lines))
    if not out:
        raise DockerfileError("the Dockerfile has no instructions")
    return out


def parse_line(text: str, line: int = 1, show_text: bool = True) -> Instruction:
    keyword, _, args = text.strip().partition(" ")
    upper = keyword.upper()
    if upper not in INSTRUCTIONS:
        what = f": {keyword}" if show_text else " (the Dockerfile is outside the build context: its text is not shown)"
        raise DockerfileError(f"Dockerfile parse error line {line}: unknown instruction{what}")
    args = args.strip()
    if upper == "ONBUILD":
        trigger = parse_line(args, line, show_text) if args else None
        if trigger is not None and trigger.keyword in NOT_ONBUILD:
            raise DockerfileError(
                f"Dockerfile parse error line {line}: {trigger.keyword} isn't allowed as an ONBUILD trigger"
            )
    flags: dict[str, str] = {}
    if upper in ("COPY", "ADD", "FROM", "HEALTHCHECK"):
        while args.startswith("--"):
            flag, _, args = args.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            args = args.strip()
    if not args and upper not in ("CMD", "ENTRYPOINT"):
        raise DockerfileError(f"Dockerfile parse error line {line}: {upper} requires at least one argument")
    return Instruction(upper, args, line, text.strip(), flags)


# -- words and variables ------------------------------------------------------------------------
_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def _quoted(c: str, quote: str, cur: list[str]) -> str | None:
    """One character inside ``quote``: the closing quote ends it, anything else is kept."""
    if c == quote:
        return None
    cur.append(c)
    return quote


def words(text: str, env: dict[str, str] | None, split: bool = True) -> list[str]:
    """Split ``text`` into words as docker's shell-like lexer does: whitespace separates words
    (unless ``split`` is False: one word), quotes group and are removed, a backslash escapes,
    ``$VAR`` is replaced from ``env`` outside single quotes (unless ``env`` is None)."""
    out: list[str] = []
    cur: list[str] = []
    have = False
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        c = text[i]
        if quote == "'":  # inside single quotes nothing is special
            quote = _quoted(c, quote, cur)
            i += 1
            continue
        if c == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if quote == '"' and nxt not in '"\\$':
                cur.append(c)  # inside double quotes only \" \\ \$ are escapes
            cur.append(nxt)
            have = True
            i += 2
            continue
        if c == "$" and env is not None:
            m = _VAR.match(text, i)
            if m:
                cur.append(_substitute(m, env))
                have = True
                i = m.end()
                continue
        if quote == '"':
            quote = _quoted(c, quote, cur)
            i += 1
            continue
        if c in "'\"":
            quote = c
            have = True
            i += 1
            continue
        if split and c.isspace():
            if cur or have:
                out.append("".join(cur))
                cur, have = [], False
            i += 1
            continue
        cur.append(c)
        i += 1
    if quote:
        raise DockerfileError(f"unterminated quote in {text!r}")
    if cur or have:
        out.append("".join(cur))
    return out


def _substitute(m: re.Match, env: dict[str, str]) -> str:
    name = m.group("braced") or m.group("plain")
    value = env.get(name)
    op = m.group("op")
    if op == "-":
        return value if value else m.group("word")
    if op == "+":
        return m.group("word") if value else ""
    return value or ""


def expand(text: str, env: dict[str, str]) -> str:
    """One word: ``text`` with quotes removed and variables replaced (WORKDIR, USER...)."""
    got = words(text, env, split=False)
    return got[0] if got else ""


def key_values(ins: Instruction, env: dict[str, str] | None) -> list[tuple[str, str | None]]:
    """ENV / LABEL / ARG arguments: ``K=V K2="v 2"``, or the old ``ENV K the value``."""
    parts = words(ins.args, env)
    if not parts:
        raise DockerfileError(f"Dockerfile parse error line {ins.line}: {ins.keyword} requires arguments")
    if ins.keyword != "ARG" and "=" not in parts[0]:
        key, _, rest = ins.args.strip().partition(" ")
        if not rest.strip():
            raise DockerfileError(
                f"Dockerfile parse error line {ins.line}: {ins.keyword} names must be "
                f"followed by a value ({ins.keyword} NAME=VALUE)"
            )
        return [(key, expand(rest.strip(), env) if env is not None else rest.strip())]
    out: list[tuple[str, str | None]] = []
    for p in parts:
        key, eq, value = p.partition("=")
        if not key:
            raise DockerfileError(f"Dockerfile parse error line {ins.line}: {ins.keyword} names can not be blank")
        if not eq and ins.keyword != "ARG":
            raise DockerfileError(
                f"Dockerfile parse error line {ins.line}: {ins.keyword} {p!r} has no value (write {p}=VALUE)"
            )
        out.append((key, value) if eq else (key, None))  # ARG NAME without a default
    return out


# -- config changes (commit -c, and the metadata instructions of a build) ------------------------
CHANGE_KEYWORDS = ("CMD", "ENTRYPOINT", "ENV", "WORKDIR", "USER", "LABEL", "EXPOSE", "STOPSIGNAL", "VOLUME", "ONBUILD")


def apply_change(config: dict, ins: Instruction, env: dict[str, str] | None = None) -> None:
    """Apply one metadata instruction to an image's ``config`` (the ``config`` object of the
    image config: Cmd, Entrypoint, Env, ...). ``env``: the variables for substitution (the
    image's Env plus build args); defaults to the config's own Env."""
    if env is None:
        env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
    k = ins.keyword
    shell = config.get("Shell")
    if k == "CMD":
        config["Cmd"] = ins.command(shell) if ins.args.strip() else None
    elif k == "ENTRYPOINT":
        config["Entrypoint"] = ins.command(shell) if ins.args.strip() else None
    elif k == "SHELL":
        argv = ins.json_args()
        if not argv:
            raise DockerfileError('SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/bash", "-c"]')
        config["Shell"] = argv
    elif k == "HEALTHCHECK":
        config["Healthcheck"] = healthcheck(ins, shell)
    elif k == "ENV":
        current = [e for e in config.get("Env") or []]
        for key, value in key_values(ins, env):
            assert value is not None, "only ARG may leave the value out"
            current = [e for e in current if e.split("=", 1)[0] != key] + [f"{key}={value}"]
            env[key] = value
        config["Env"] = current
    elif k == "WORKDIR":
        path = expand(ins.args, env)
        if not path.startswith("/"):
            path = (config.get("WorkingDir") or "/").rstrip("/") + "/" + path
        config["WorkingDir"] = _normpath(path)
    elif k == "USER":
        config["User"] = expand(ins.args, env)
    elif k == "LABEL":
        labels = dict(config.get("Labels") or {})
        labels.update(key_values(ins, env))
        config["Labels"] = labels
    elif k == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        for p in words(ins.args, env):
            port, _, proto = p.partition("/")
            if not port.replace("-", "").isdigit() or proto not in ("", "tcp", "udp", "sctp"):
                raise DockerfileError(f"invalid containerPort: {p}")
            ports[f"{port}/{proto or 'tcp'}"] = {}
        config["ExposedPorts"] = ports
    elif k == "ONBUILD":
        config["OnBuild"] = [*(config.get("OnBuild") or []), ins.args.strip()]
    elif k == "STOPSIGNAL":
        config["StopSignal"] = expand(ins.args, env)
    elif k == "VOLUME":
        vols = dict(config.get("Volumes") or {})
        for v in ins.json_args() or words(ins.args, env):
            vols[v] = {}
        config["Volumes"] = vols
    else:
        raise DockerfileError(
            f"{k} cannot change an image's config", hint=f"commit --change accepts {', '.join(CHANGE_KEYWORDS)}"
        )


HEALTHCHECK_OPTIONS = {
    "interval": "Interval",
    "timeout": "Timeout",
    "start-period": "StartPeriod",
    "start-interval": "StartInterval",
    "retries": "Retries",
}


def healthcheck(ins: Instruction, shell: list[str] | None = None) -> dict:
    """``HEALTHCHECK [--interval=30s ...] CMD command`` or ``HEALTHCHECK NONE``, as the image
    config's Healthcheck (durations in nanoseconds, as docker stores them). Recorded for the
    image and whoever runs it; minidocker itself does not run health checks."""
    text = ins.args.strip()
    if text.upper() == "NONE":
        return {"Test": ["NONE"]}
    out: dict = {}
    for name, value in ins.flags.items():
        if name not in HEALTHCHECK_OPTIONS:
            raise DockerfileError(f"HEALTHCHECK: unknown flag --{name}")
        out[HEALTHCHECK_OPTIONS[name]] = int(value) if name == "retries" else _duration_ns(value, name)
    word, _, rest = text.partition(" ")
    if word.upper() != "CMD" or not rest.strip():
        raise DockerfileError("HEALTHCHECK needs CMD and a command, or NONE")
    cmd = Instruction("CMD", rest.strip(), ins.line, ins.original)
    exec_form = cmd.json_args()
    out["Test"] = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", rest.strip()]
    return out


def _duration_ns(text: str, name: str) -> int:
    units = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        if text[i].isdigit() or text[i] == ".":
            number += text[i]
            i += 1
            continue
        unit = next((u for u in ("ns", "us", "ms", "s", "m", "h") if text.startswith(u, i)), None)
        if unit is None or not number:
            raise DockerfileError(f"HEALTHCHECK --{name}={text}: not a duration (e.g. 30s, 1m30s)")
        total += float(number) * units[unit]
        number, i = "", i + len(unit)
    if number:
        raise DockerfileError(f"HEALTHCHECK --{name}={text}: a duration needs a unit (e.g. 30s)")
    return int(total)


def parse_change(text: str) -> Instruction:
    """``commit -c TEXT``: one instruction that changes the config."""
    try:
        ins = parse_line(text) if text.strip() else None
    except DockerfileError:
        ins = None
    if ins is None or ins.keyword not in CHANGE_KEYWORDS:
        word = text.strip().split(" ", 1)[0] if text.strip() else "(empty)"
        raise DockerfileError(
            f"{word} is not a valid change command",
            hint=f"use one of {', '.join(CHANGE_KEYWORDS)}, e.g. -c 'CMD [\"sh\"]'",
        )
    if not ins.args.strip():
        raise DockerfileError(f"{ins.keyword} requires at least one argument")
    return ins


def apply_changes(config: dict, changes: list[str]) -> dict:
    """``commit -c`` / ``import -c``: each change parsed and applied to ``config``, in order."""
    for text in changes:
        apply_change(config, parse_change(text))
    return config


def _normpath(path: str) -> str:
    parts: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return "/" + "/".join(parts)
