"""The course: lessons in ``docs/lessons/NN-name.md`` and the checker that grades them.

A lesson is markdown a student reads; its "check your work" part is also what the machine
runs. Checks live in fenced blocks whose info string is ``check``::

    ```check
    # hint: --hostname sets the UTS namespace's name (sethostname(2))
    $ minidocker run --rm --network none $IMAGE hostname -s
    ...
    ```

* ``$ COMMAND`` starts a check: the command, run by ``sh -c`` (so pipes and ``$IMAGE`` work);
* the lines after it, up to the next ``$`` line or the end of the block, are its expected
  standard output, line for line. Inside a line ``...`` matches any text (an ID, a PID, a
  time); a line that is only ``...`` matches any number of lines, none included;
* ``# hint: TEXT`` (before the ``$`` line) is what a failed check prints to help;
* ``# exit: N`` expects exit status N instead of 0.

A block whose info string is ``check cgroup1`` or ``check cgroup2`` runs only on a machine
of that cgroup version (a lesson shows both views; each machine grades its own). A block
whose info string is ``excerpt`` holds a ``$ COMMAND`` and lines that must appear, in that
order, among what it prints on stdout and stderr (the rest is ignored): the lesson's
``--explain`` excerpts, so they are run too and cannot drift from what minidocker prints.
Every ``$`` line of a lesson is in one of these blocks: nothing a lesson tells a student to
type goes unchecked.

The checks run the very minidocker that runs the checker (a ``minidocker`` shim first on
PATH), with ``IMAGE`` set to ``MINIDOCKER_LESSON_IMAGE`` (``busybox`` when unset): a local
image name, so no check needs the internet; ``REGISTRY`` is ``MINIDOCKER_LESSON_REGISTRY``
(``127.0.0.1:5000``, the course VM's own registry), which holds ``busybox``.

The lessons are read from ``docs/lessons`` next to the package (the source tree, which the
editable install runs from), or from the directory ``MINIDOCKER_LESSONS`` names.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from minidocker.errors import LessonNotFound

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the directory holding minidocker/
CODE_REFERENCE = re.compile(r"\b(minidocker/[\w/]+\.py):([A-Za-z_][\w.]*)")
DEFAULT_IMAGE = "busybox"
DEFAULT_REGISTRY = "127.0.0.1:5000"
BLOCK_KINDS = ("check", "excerpt")  # the fenced blocks whose $ lines run
CONDITIONS = ("cgroup1", "cgroup2")  # what may follow "check" in a block's info string
CHECK_TIMEOUT = 60.0
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)  # what a code reference may name


@dataclass(frozen=True)
class Lesson:
    number: int
    name: str  # the file's name without NN- and .md: "processes"
    title: str  # the first "# " heading
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text()


@dataclass
class Check:
    command: str
    expected: list[str] = field(default_factory=list)
    hint: str = ""
    exit_code: int = 0
    line: int = 0  # where the ``$`` line is in the lesson (1-based), for messages
    kind: str = "check"  # "excerpt": the expected lines appear in order in stdout + stderr
    when: str = ""  # "cgroup1" / "cgroup2": only on a machine of that cgroup version


@dataclass
class CheckResult:
    check: Check
    passed: bool
    output: str  # what the command printed on stdout
    errors: str  # on stderr
    exit_code: int
    reason: str = ""  # why it failed, one line


def lessons_dir() -> Path:
    """Where the lessons are: ``MINIDOCKER_LESSONS``, else the source tree's docs/lessons."""
    return Path(os.environ.get("MINIDOCKER_LESSONS") or PACKAGE_ROOT / "docs" / "lessons")


def list_lessons(directory: Path | None = None) -> list[Lesson]:
    """Every ``NN-name.md`` of the lessons directory, in the order of their numbers."""
    directory = directory or lessons_dir()
    if not directory.is_dir():
        raise LessonNotFound(
            f"no lessons at {directory}", hint="set MINIDOCKER_LESSONS to the course's docs/lessons directory"
        )
    found = []
    for path in sorted(directory.glob("[0-9][0-9]-*.md")):
        number, _, name = path.stem.partition("-")
        heading = next((ln[2:].strip() for ln in path.read_text().splitlines() if ln.startswith("# ")), name)
        found.append(Lesson(int(number), name, heading, path))
    return found


def find_lesson(number: str, directory: Path | None = None) -> Lesson:
    """The lesson numbered ``number`` (``3`` or ``03``), or its name (``processes``)."""
    for lesson in list_lessons(directory):
        if number in (lesson.name, f"{lesson.number}", f"{lesson.number:02d}"):
            return lesson
    raise LessonNotFound(f"no such lesson: {number}", hint="'minidocker lesson list' shows them")


def fenced_blocks(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """Every fenced block of a markdown text: (line number of its first line, info string,
    lines)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            info, start, i = lines[i][3:].strip(), i + 1, i + 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            yield start + 1, info, lines[start:i]
        i += 1


def check_blocks(text: str) -> Iterator[tuple[int, str, str, list[str]]]:
    """The ```check and ```excerpt blocks: (first line, kind, condition, lines)."""
    for first, info, block in fenced_blocks(text):
        kind, _, when = info.partition(" ")
        if kind in BLOCK_KINDS:
            yield first, kind, when.strip(), block


def parse_checks(text: str) -> list[Check]:
    """Every check of a lesson, in order (the format is in this module's docstring)."""
    checks: list[Check] = []
    for first, kind, when, block in check_blocks(text):
        if when and when not in CONDITIONS:
            raise ValueError(f"line {first - 1}: unknown condition {when!r} (one of {', '.join(CONDITIONS)})")
        hint, code = "", 0
        for offset, line in enumerate(block):
            if line.startswith("# hint:"):
                hint = line.removeprefix("# hint:").strip()
            elif line.startswith("# exit:"):
                code = int(line.removeprefix("# exit:").strip())
            elif line.startswith("$ "):
                checks.append(Check(line[2:], hint=hint, exit_code=code, line=first + offset, kind=kind, when=when))
                hint, code = "", 0
            elif checks and checks[-1].line >= first:
                checks[-1].expected.append(line)
    return checks


def unchecked_commands(text: str) -> list[int]:
    """Line numbers of ``$ `` lines outside check and excerpt blocks (there should be none)."""
    inside = set()
    for first, _, _, block in check_blocks(text):
        inside.update(range(first, first + len(block)))
    return [n for n, line in enumerate(text.splitlines(), 1) if line.lstrip().startswith("$ ") and n not in inside]


def expected_pattern(expected: list[str]) -> re.Pattern[str]:
    """A regular expression for expected output lines: ``...`` in a line is any text, a
    line of only ``...`` any number of lines; everything else literal."""
    parts = []
    for line in expected:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split("...")) + r"\n")
    return re.compile("".join(parts), re.DOTALL)


def output_matches(expected: list[str], output: str) -> bool:
    """Whether ``output`` is, line for line, what ``expected`` describes."""
    if output and not output.endswith("\n"):
        output += "\n"
    return expected_pattern(expected).fullmatch(output) is not None


def excerpt_matches(expected: list[str], output: str) -> bool:
    """Whether every expected line matches a line of ``output``, in order (others between)."""
    lines = iter(output.splitlines())
    for want in expected:
        if want.strip() == "...":  # (an excerpt skips lines anyway)
            continue
        pattern = expected_pattern([want])
        if not any(pattern.fullmatch(line + "\n") for line in lines):
            return False
    return True


def run_check(check: Check, env: dict[str, str], timeout: float = CHECK_TIMEOUT) -> CheckResult:
    """Run one check's command by ``sh -c`` and compare its exit status and output."""
    try:
        done = subprocess.run(
            ["sh", "-c", check.command], capture_output=True, text=True, env=env, timeout=timeout, cwd=env["HOME"]
        )
    except subprocess.TimeoutExpired:
        return CheckResult(check, False, "", "", -1, f"did not finish in {timeout:.0f} s")
    result = CheckResult(check, True, done.stdout, done.stderr, done.returncode)
    if done.returncode != check.exit_code:
        result.passed, result.reason = False, f"exited {done.returncode}, expected {check.exit_code}"
    elif check.kind == "excerpt" and not excerpt_matches(check.expected, done.stdout + done.stderr):
        result.passed, result.reason = False, "the output does not hold the excerpt's lines in order"
    elif check.kind == "check" and not output_matches(check.expected, done.stdout):
        result.passed, result.reason = False, "the output is not the expected output"
    return result


def check_env(image: str, shim_dir: Path) -> dict[str, str]:
    """The environment of the checks: IMAGE, and PATH led by a ``minidocker`` that is this
    interpreter running this package."""
    shim = shim_dir / "minidocker"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m minidocker "$@"\n')
    shim.chmod(0o755)
    registry = os.environ.get("MINIDOCKER_LESSON_REGISTRY") or DEFAULT_REGISTRY
    env = dict(os.environ, IMAGE=image, REGISTRY=registry, PATH=f"{shim_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p)
    env.setdefault("HOME", str(shim_dir))
    return env


def machine_condition() -> str:
    """This machine's condition for ``check cgroupN`` blocks."""
    from minidocker.linux import cgroups

    return f"cgroup{cgroups.version()}"


def runs_here(lesson: Lesson, condition: str | None = None) -> tuple[list[Check], list[Check]]:
    """The lesson's checks this machine runs, and those it leaves to another kind of machine."""
    condition = condition or machine_condition()
    here, elsewhere = [], []
    for check in parse_checks(lesson.text):
        (here if check.when in ("", condition) else elsewhere).append(check)
    return here, elsewhere


def check_lesson(lesson: Lesson, image: str | None = None, report: Callable[[CheckResult], None] | None = None):
    """Run every check of ``lesson`` that this machine runs; ``report`` is told each result
    as it comes. Returns the results, in order."""
    image = image or os.environ.get("MINIDOCKER_LESSON_IMAGE") or DEFAULT_IMAGE
    results = []
    with tempfile.TemporaryDirectory(prefix="minidocker-lesson-") as shim_dir:
        env = check_env(image, Path(shim_dir))
        for check in runs_here(lesson)[0]:
            results.append(run_check(check, env))
            if report:
                report(results[-1])
    return results


def code_references(text: str) -> list[tuple[str, str]]:
    """Every ``minidocker/PATH.py:NAME`` a lesson names (NAME may be ``Class.method``)."""
    return CODE_REFERENCE.findall(text)


def resolves(path: str, name: str, root: Path = PACKAGE_ROOT) -> bool:
    """Whether ``path`` (from the source root) defines ``name``: a function or class at the
    top of the module, or ``Class.method``; read with ast, nothing imported."""
    source = root / path
    if not source.is_file():
        return False
    scope: list[ast.stmt] = ast.parse(source.read_text()).body
    for part in name.split("."):
        node = next((n for n in scope if isinstance(n, DEFINITIONS) and n.name == part), None)
        if node is None:
            return False
        scope = node.body
    return True
