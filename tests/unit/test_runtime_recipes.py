"""The runtime's shape (../shared/design.md, examples 1, 8, 9): the start is recipes of named
steps, a step's name is its function's, exec shares init's last steps, and the modules stay
small and free of import cycles. Checked on the source and on real child processes; no root."""

import ast
import inspect
import os
import textwrap
from pathlib import Path

import pytest

from minidocker.errors import ExitCode, MinidockerError, StartFailed
from minidocker.runtime import exec as exec_module
from minidocker.runtime import init, lifecycle
from minidocker.runtime.lifecycle import await_execve
from minidocker.runtime.spec import ContainerSpec
from minidocker.runtime.steps import StepFailed, exiting_on_failure, step

RUNTIME = Path(init.__file__).parent


def called_names(fn) -> list[str]:
    """The plain names ``fn`` calls, in the order they appear in its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return [c.func.id for c in sorted(calls, key=lambda c: (c.lineno, c.col_offset))]


STEP_WRAPPER = step(lambda: None).__code__  # every step's wrapper runs this code


def is_step(obj) -> bool:
    return getattr(obj, "__code__", None) is STEP_WRAPPER


def steps_called(fn, module) -> list[str]:
    return [n for n in called_names(fn) if is_step(getattr(module, n, None)) or n == "finish_and_exec"]


def docstring_table(doc: str, indent: int) -> list[str]:
    """The first word of each line of a docstring's ``::`` table at exactly ``indent``."""
    table = doc.split("::\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in table.splitlines() if line.strip() and len(line) - len(line.lstrip()) == indent]


def test_container_init_is_the_table_of_contents_of_init_py():
    assert steps_called(init.container_init, init) == docstring_table(init.__doc__, 4)
    assert steps_called(init.finish_and_exec, init) == docstring_table(init.__doc__, 6)
    table = docstring_table(init.userns_init.__doc__, 8)
    assert steps_called(init.userns_init, init) == table[:-1]
    assert table[-1] == called_names(init.userns_init)[-1] == "follow_pid_1"


def test_exec_and_init_share_one_tail_behind_the_same_first_wall():
    for recipe in (init.container_init, exec_module.run_helper):
        names = steps_called(recipe, exec_module if recipe is exec_module.run_helper else init)
        assert names[0] == "hide_host_binary" and names[-1] == "finish_and_exec", names
    assert steps_called(init.finish_and_exec, init) == [
        "apply_seccomp_with_privileges",
        "drop_capabilities",
        "switch_user",
        "limit_capabilities",
        "set_no_new_privs",
        "change_dir",
        "apply_seccomp",
        "run_reaper",
        "exec_command",
    ]


def test_no_step_name_is_written_by_hand():
    for path in sorted(RUNTIME.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                assert not any(isinstance(t, ast.Name) and t.id == "step" for t in node.targets), path.name


def test_a_step_failure_carries_the_functions_name_and_code():
    @step
    def mount_the_thing():
        raise OSError(2, "No such file or directory", "/x")

    @step
    def outer_step():
        mount_the_thing()

    with pytest.raises(StepFailed) as caught:
        outer_step()
    e = caught.value
    assert (e.step, e.message, e.code) == ("mount_the_thing", "No such file or directory: /x", 125)
    assert isinstance(e.error, OSError) and outer_step.__name__ == "outer_step"


@pytest.mark.parametrize(
    "code, text",
    [
        (125, "container start failed at switch_user: no such user"),
        (126, "no such user"),
        (127, "no such user"),
    ],
)
def test_a_start_failure_reads_as_dockers(code, text):
    e = lifecycle.start_failed("no such user", step="switch_user", exit_code=code)
    assert (e.message, e.exit_code, e.step) == (text, code, "switch_user")


def test_a_parent_steps_own_error_reaches_the_user_as_it_is():
    ours = MinidockerError("cannot connect the container to network n1: File exists")
    assert lifecycle.as_start_error(StepFailed("connect_network", ours.message, 125, ours)) is ours
    other = lifecycle.as_start_error(
        StepFailed(
            "create_cgroup",
            "Numerical result out of range: /x",
            125,
            OSError(34, "Numerical result out of range", "/x"),
        )
    )
    assert other.message == "container start failed at create_cgroup: Numerical result out of range: /x"


def start_in_child(body) -> StartFailed | None:
    """Run ``body(error_w)`` in a real child as init runs its steps, read its report as
    ``lifecycle.start`` does; the failure the user would see, or None after execve."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(r)
        with exiting_on_failure(w):
            body(w)
        os._exit(0)
    os.close(w)
    try:
        await_execve(r, pid)
    except StartFailed as e:
        return e
    os.waitpid(pid, 0)
    return None


def spec_for(argv: list[str], user: str = "") -> ContainerSpec:
    return ContainerSpec(
        id="0" * 64, name="t", image="t", image_id="", argv=argv, env=["PATH=/usr/bin:/bin"], user=user
    )


@pytest.mark.parametrize(
    "command, code, text",
    [
        ("no-such-command-anywhere", ExitCode.NOT_FOUND, "executable file not found in $PATH"),
        ("/etc", ExitCode.CANNOT_INVOKE, "permission denied"),
        ("{tmp}/data.txt", ExitCode.CANNOT_INVOKE, "permission denied"),  # a file without any x bit
    ],
)
def test_exec_commands_failure_comes_back_with_dockers_code(tmp_path, command, code, text):
    (tmp_path / "data.txt").write_text("not a program\n")
    argv = [command.format(tmp=tmp_path)]
    text = f'exec: "{argv[0]}": {text}'
    spec = spec_for(argv)
    failed = start_in_child(lambda w: init.exec_command(spec, spec.env, w))
    assert failed is not None and (failed.step, failed.exit_code, failed.message) == ("exec_command", code, text)


def test_a_failed_step_in_the_child_is_named_and_a_good_execve_is_silent():
    spec = spec_for(["true"], user="no-such-user-anywhere")
    failed = start_in_child(lambda w: init.switch_user(spec, spec.env))
    assert failed is not None and failed.exit_code == 125
    assert failed.message == (
        "container start failed at switch_user: unable to find user "
        "no-such-user-anywhere: no matching entries in passwd file"
    )
    good = spec_for(["true"])
    assert start_in_child(lambda w: init.exec_command(good, good.env, w)) is None


def test_every_runtime_function_fits_a_screen():
    long = [
        (path.name, n.name, n.end_lineno - n.lineno + 1)
        for path in sorted(RUNTIME.glob("*.py"))
        if path.name != "spec.py"  # (build_spec: issue #10's spec part)
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60
    ]
    assert long == []


def runtime_imports(path: Path) -> set[str]:
    """The runtime modules ``path`` imports at its top level (not inside functions)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("minidocker.runtime"):
            if node.module == "minidocker.runtime":
                out.update(a.name for a in node.names)
            else:
                out.add(node.module.rsplit(".", 1)[1])
    return out


def test_runtime_modules_import_each_other_without_cycles():
    graph = {p.stem: runtime_imports(p) for p in RUNTIME.glob("*.py")}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(m == goal or (m not in seen and reaches(m, goal, seen | {m})) for m in graph.get(start, ()))

    assert [m for m in graph if reaches(m, m, set())] == []


def test_no_module_uses_another_ones_private_names():
    for path in sorted(RUNTIME.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.value.id in ("lifecycle", "init", "monitor", "stdio")
            ):
                pytest.fail(f"{path.name} uses {node.value.id}.{node.attr}")
