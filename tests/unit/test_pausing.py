"""``--pause-at``'s pure parts (runtime/pausing.py, cli/explain.py) and the step hook it and
``--explain`` share (runtime/steps.py): the valid names are exactly PID 1's steps in their
order, a bad name is refused with the list, the guide names what to look at, and a watched
step is timed and still fails as a step. No root: the real pause is tests/integration/test_pause_at.py."""

import os
import select
import signal

import pytest

from minidocker.cli.explain import describe_event, describe_pause
from minidocker.errors import ExitCode, MinidockerError
from minidocker.linux import events, procfs
from minidocker.runtime import init, pausing, rootfs, steps
from minidocker.runtime.steps import StepFailed, step
from tests.unit.test_runtime_recipes import is_step, steps_called


def pid1_steps() -> list[str]:
    """Every step PID 1 runs, in order: container_init's, with prepare_rootfs's and
    finish_and_exec's own steps after their names."""
    names = []
    for name in steps_called(init.container_init, init):
        if name == "finish_and_exec":
            names += steps_called(init.finish_and_exec, init)
            continue
        names.append(name)
        if name == "prepare_rootfs":
            names += [n for n in steps_called(rootfs.prepare_rootfs, rootfs) if is_step(getattr(rootfs, n))]
    return names


def test_the_pause_points_are_pid_1s_steps_in_the_order_they_run():
    assert list(pausing.PAUSE_POINTS) == pid1_steps()
    assert "pivot_root" in pausing.PAUSE_POINTS  # (a step of its own, not hidden in prepare_rootfs)


@pytest.mark.parametrize("name, meant", [("pivot_root", "pivot_root"), ("execve", "exec_command")])
def test_a_step_name_or_its_alias_is_accepted(name, meant):
    assert pausing.step_named(name) == meant


def test_an_unknown_step_is_refused_with_the_valid_names():
    with pytest.raises(MinidockerError) as e:
        pausing.step_named("pivot-root")
    assert e.value.exit_code == ExitCode.MINIDOCKER_FAILED
    assert e.value.message.startswith("--pause-at: unknown step 'pivot-root'; valid steps: hide_host_binary, ")
    assert all(n in e.value.message for n in pausing.PAUSE_POINTS) and "execve" in e.value.message


@pytest.mark.parametrize("keys", [True, False])
def test_the_guide_says_where_to_look_and_how_to_go_on(keys):
    cgroups = {"memory": "/sys/fs/cgroup/memory/minidocker/c1", "pids": "/sys/fs/cgroup/pids/minidocker/c1"}
    text = describe_pause({"step": "pivot_root", "pid": 4321, "cgroups": cgroups, "keys": keys})
    lines = text.splitlines()
    assert lines[0] == "paused before pivot_root: the container's PID 1 is pid 4321 on the host (state T, stopped)"
    for want in ("/proc/4321/ns/", "/proc/4321/mountinfo", "nsenter -t 4321 -m -u -i -n -p sh"):
        assert any(want in line for line in lines), want
    assert "  cgroup (memory): ls /sys/fs/cgroup/memory/minidocker/c1" in lines
    assert "  cgroup (pids): ls /sys/fs/cgroup/pids/minidocker/c1" in lines
    assert lines[-1].startswith("to go on: press Enter, or kill -CONT 4321" if keys else "to go on: kill -CONT 4321")


@pytest.fixture
def heard():
    """Events as --explain hears them, and the step hook removed afterwards."""
    got: list[dict] = []
    events.listen(got.append)
    yield got
    events.listen(None)
    steps.watch(None)


@step
def sample_step(x: int) -> int:
    if x < 0:
        raise OSError(2, "No such file or directory", "/x")
    return x * 2


def test_a_timed_step_emits_its_duration(heard):
    steps.watch(steps.timed)
    assert sample_step(21) == 42
    (ev,) = heard
    assert ev["step"] == "step" and ev["name"] == "sample_step" and ev["ms"] >= 0
    assert describe_event({"step": "step", "name": "pivot_root", "ms": 0.44}) == "step pivot_root done (0.4 ms)"


def test_a_watched_step_still_fails_as_itself(heard):
    steps.watch(steps.timed)
    with pytest.raises(StepFailed) as e:
        sample_step(-1)
    assert e.value.step == "sample_step" and e.value.message == "No such file or directory: /x"
    assert [ev["name"] for ev in heard] == ["sample_step"]  # a failed step is timed too


def test_only_pid_1_pauses(heard):
    """The CLI's process runs its own steps through the same hook: it must not stop itself."""
    told: list[dict] = []
    pause = pausing.Pause("pivot_root", told.append)
    try:
        assert os.getpid() != 1
        assert pause.hook("pivot_root", lambda: "ran", (), {}) == "ran"
        assert select.select([pause.report_r], [], [], 0)[0] == []  # nothing reported
        assert told == [] and [ev["name"] for ev in heard] == ["pivot_root"]  # and timed, --explain being on
    finally:
        os.close(pause.report_r)
        os.close(pause.report_w)


def test_a_process_state_is_read_from_proc():
    """What ``stop`` waits for: our own state is R (we are running), a stopped child's T."""
    assert procfs.process_state(os.getpid()) == "R"
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGSTOP)
        os._exit(0)
    try:
        pausing.stop(pid)  # (already stopping itself: the wait is the same)
        assert procfs.process_state(pid) == "T"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert procfs.process_state(pid) is None  # reaped: gone
