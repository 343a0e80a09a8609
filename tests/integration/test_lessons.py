"""The course (docs/lessons, minidocker/course.py): every check of every lesson passes on the
real CLI against the test store, the checker fails a wrong expectation with a clear message,
``lesson list|show|check`` behave, and every code reference in a lesson names real code."""

from __future__ import annotations

import pytest

from minidocker import course
from tests.integration.conftest import one_error

LESSONS = course.list_lessons()


def test_the_course_has_lessons_numbered_in_order():
    assert [lesson.number for lesson in LESSONS] == list(range(1, len(LESSONS) + 1))
    assert len(LESSONS) >= 12, "the issue asks for at least 12 lessons"
    assert all(course.parse_checks(lesson.text) for lesson in LESSONS), "a lesson without checks"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_every_check_of_the_lesson_passes(md_run, bb, lesson):
    r = md_run("lesson", "check", str(lesson.number), env=lesson_env(bb), timeout=240)
    checks = course.runs_here(lesson)[0]
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("PASSED: ") == len(checks) and "FAILED" not in r.stdout, r.stdout
    assert f"\n{len(checks)} of {len(checks)} checks passed\n" in r.stdout, r.stdout


def lesson_env(bb: str) -> dict[str, str]:
    """The checks' image is the session's busybox; their registry is the session's, which
    holds busybox as the course VM's does."""
    return {"MINIDOCKER_LESSON_IMAGE": bb, "MINIDOCKER_LESSON_REGISTRY": bb.split("/")[0]}


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_every_command_of_the_lesson_is_in_a_check_or_excerpt_block(lesson):
    assert not course.unchecked_commands(lesson.text), f"{lesson.path.name}: $ lines that no test runs"
    for first, info, block in course.fenced_blocks(lesson.text):
        kind = info.partition(" ")[0]
        assert kind in ("check", "excerpt", "text"), f"{lesson.path.name}:{first - 1}: a ```{info} block"
        if kind == "excerpt":
            assert sum(line.startswith("$ ") for line in block) == 1, f"{lesson.path.name}:{first}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.name)
def test_every_code_reference_of_the_lesson_resolves(lesson):
    refs = course.code_references(lesson.text)
    assert refs, f"{lesson.path.name} names no minidocker function"
    missing = [f"{path}:{name}" for path, name in refs if not course.resolves(path, name)]
    assert not missing, f"{lesson.path.name} names code that does not exist: {missing}"


def test_a_reference_to_missing_code_does_not_resolve():
    assert course.resolves("minidocker/runtime/rootfs.py", "pivot_root")
    assert not course.resolves("minidocker/runtime/rootfs.py", "no_such_function")
    assert not course.resolves("minidocker/no_such_module.py", "pivot_root")


WRONG = """# Lesson 1: a wrong expectation

```check
# hint: echo prints its argument
$ echo right
wrong
$ echo 'id 3f2a, 7 ms'
id ..., ... ms
# exit: 2
$ exit 2
```
"""


def test_a_wrong_expected_output_fails_with_its_hint_and_both_outputs(md, tmp_path):
    (tmp_path / "01-wrong.md").write_text(WRONG)
    r = md("lesson", "check", "1", env={"MINIDOCKER_LESSONS": str(tmp_path)})
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        "FAILED: echo right",
        "  line 5: the output is not the expected output",
        "  hint: echo prints its argument",
        "  expected:",
        "    wrong",
        "  got:",
        "    right",
        "PASSED: echo 'id 3f2a, 7 ms'",
        "PASSED: exit 2",
        "2 of 3 checks passed",
    ]


@pytest.mark.parametrize(
    "expected, output, matches",
    [
        (["a", "b"], "a\nb\n", True),
        (["a", "b"], "a\nb", True),
        (["a"], "a\nb\n", False),
        (["a ... c"], "a bbb c\n", True),
        (["a ... c"], "a bbb d\n", False),
        (["first", "...", "last"], "first\nx\ny\nlast\n", True),
        (["first", "...", "last"], "first\nlast\n", True),
        (["[...] pid 1"], "[  3.2 ms] pid 1\n", True),
        (["a.b"], "axb\n", False),  # (everything but ``...`` is literal)
        ([], "", True),
        ([], "x\n", False),
    ],
)
def test_the_expected_output_convention(expected, output, matches):
    assert course.output_matches(expected, output) is matches


CONDITIONAL = """# Lesson 1: both cgroup versions, and an excerpt

```check cgroup1
$ echo one
one
```

```check cgroup2
$ echo two
two
```

```excerpt
$ printf 'a\\nb 12 ms\\nc\\n'; echo d >&2
a
...
b ... ms
d
```
"""


def test_a_machine_runs_the_checks_of_its_cgroup_version_and_every_excerpt(md, tmp_path):
    (tmp_path / "01-both.md").write_text(CONDITIONAL)
    r = md("lesson", "check", "1", env={"MINIDOCKER_LESSONS": str(tmp_path)})
    assert r.returncode == 0, r.stdout + r.stderr
    mine = "one" if course.machine_condition() == "cgroup1" else "two"
    other = "v2" if mine == "one" else "v1"
    assert r.stdout.splitlines() == [
        f"PASSED: echo {mine}",
        "PASSED: printf 'a\\nb 12 ms\\nc\\n'; echo d >&2",
        "2 of 2 checks passed",
        f"(1 more for cgroup {other} machines, not this one)",
    ]
    lesson = course.list_lessons(tmp_path)[0]
    assert [c.command for c in course.runs_here(lesson, "cgroup2")[0]][0] == "echo two"


def test_an_excerpt_out_of_order_fails(md, tmp_path):
    (tmp_path / "01-order.md").write_text("# L\n\n```excerpt\n$ printf 'a\\nb\\n'\nb\na\n```\n")
    r = md("lesson", "check", "1", env={"MINIDOCKER_LESSONS": str(tmp_path)})
    assert r.returncode == 1 and "does not hold the excerpt's lines in order" in r.stdout, r.stdout


def test_lesson_list_and_show(md):
    listed = md.ok("lesson", "list").stdout.splitlines()
    assert len(listed) == len(LESSONS)
    assert listed[0].split()[:2] == ["1", "processes"]
    shown = md.ok("lesson", "show", "1").stdout
    assert shown == LESSONS[0].text and shown.startswith("# Processes")
    assert md.ok("lesson", "show", "processes").stdout == shown


@pytest.mark.parametrize("verb", ["show", "check"])
def test_an_unknown_lesson_is_one_error_line(md, verb):
    r = md("lesson", verb, "99")
    assert r.returncode == 125 and one_error(r.stderr), r.stderr
    assert r.stderr.startswith("Error: no such lesson: 99\n") and r.stdout == ""


def test_a_missing_lessons_directory_is_one_error_line_with_a_hint(md, tmp_path):
    r = md("lesson", "list", env={"MINIDOCKER_LESSONS": str(tmp_path / "nowhere")})
    assert r.returncode == 125 and r.stdout == "", r.stdout + r.stderr
    assert r.stderr.splitlines() == [
        f"Error: no lessons at {tmp_path / 'nowhere'}",
        "hint: set MINIDOCKER_LESSONS to the course's docs/lessons directory",
    ]
