"""``lesson list``, ``lesson show N``, ``lesson check N``: the course (``minidocker/course.py``).

``check`` grades a student's machine as bocker's ``./test`` does: one PASSED or FAILED line
per check, a failed one followed by its hint and what was expected and printed; the exit
status is 0 only when every check passed.
"""

from __future__ import annotations

import typer

from minidocker import api
from minidocker.cli.app import app

lesson_app = typer.Typer(help="Read the course's lessons and check your work.", no_args_is_help=True)
app.add_typer(lesson_app, name="lesson")


@lesson_app.command("list", help="List the lessons.")
def lesson_list() -> None:
    for each in api.lessons():
        print(f"{each.number:2d}  {each.name:<24} {each.title}")


@lesson_app.command("show", help="Print a lesson.")
def lesson_show(number: str = typer.Argument(..., metavar="N")) -> None:
    print(api.lesson(number).text, end="")


@lesson_app.command("check", help="Run a lesson's checks on this machine (exit 0 only if all pass).")
def lesson_check(
    number: str = typer.Argument(..., metavar="N"),
    image: str | None = typer.Option(
        None, "--image", envvar="MINIDOCKER_LESSON_IMAGE", help="The local image the checks run [busybox]."
    ),
) -> None:
    results = api.check_lesson(number, image, report=show_result)
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} of {len(results)} checks passed")
    elsewhere = api.lesson_checks_elsewhere(number)
    if elsewhere:
        kinds = " and ".join(sorted({c.when.replace("cgroup", "cgroup v") for c in elsewhere}))
        print(f"({len(elsewhere)} more for {kinds} machines, not this one)")
    if failed:
        raise typer.Exit(1)


def show_result(result) -> None:
    """One check's line; for a failure, why, its hint, and expected against printed output."""
    print(f"{'PASSED' if result.passed else 'FAILED'}: {result.check.command}")
    if result.passed:
        return
    print(f"  line {result.check.line}: {result.reason}")
    if result.check.hint:
        print(f"  hint: {result.check.hint}")
    for title, lines in (("expected", result.check.expected), ("got", (result.output + result.errors).splitlines())):
        print(f"  {title}:")
        print("\n".join(f"    {line}" for line in lines) or "    (no output)")
