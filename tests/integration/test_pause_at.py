"""``run --pause-at STEP`` (runtime/pausing.py) on the real kernel: the container's PID 1
stops before the step, the half-built container is seen from the host, and the start goes
on (SIGCONT, or Enter on a terminal) to the command's own exit code. And ``--explain``
times every step (runtime/steps.py's ``timed``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from tests.integration.conftest import MINIDOCKER, one_error

GUIDE_PID = re.compile(r"^paused before (\w+): the container's PID 1 is pid (\d+) on the host", re.M)


def read_guide(stderr) -> tuple[str, int, str]:
    """Read the guide's lines up to its last (``to go on: ...``): the step, the PID, the text."""
    text = ""
    while not text.endswith("\n") or "to go on:" not in text.splitlines()[-1]:
        line = stderr.readline()
        assert line, f"minidocker ended before pausing:\n{text}"
        text += line
    m = GUIDE_PID.search(text)
    assert m, text
    return m.group(1), int(m.group(2)), text


def state_of(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith("State:"))


@pytest.mark.parametrize("mode", [[], ["--userns", "auto"]], ids=["root", "userns"])
def test_paused_before_pivot_root_the_half_built_container_is_seen_from_outside(md_run, bb, mode):
    """With ``--userns=auto`` PID 1 is the child of a helper, not ours: the PID is still its."""
    p = md_run.popen("run", "--rm", *mode, "--pause-at", "pivot_root", bb, "sh", "-c", "exit 7")
    try:
        step, pid, guide = read_guide(p.stderr)
        assert step == "pivot_root"
        assert f"nsenter -t {pid} -m -u -i -n -p sh" in guide and f"kill -CONT {pid}" in guide
        assert "press Enter" not in guide  # our stdin is no terminal
        assert state_of(pid) == "T"  # stopped
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
        with open(f"/proc/{pid}/mountinfo") as f:
            mounts = f.read()
        assert " - overlay overlay " in mounts, mounts
        assert os.path.samefile(f"/proc/{pid}/root", "/")  # no pivot_root yet: / is still the host's
        cgroup_lines = [line for line in guide.splitlines() if line.startswith("  cgroup (")]
        assert cgroup_lines and all("/minidocker/" in line for line in cgroup_lines), guide
        os.kill(pid, signal.SIGCONT)
        assert p.wait(timeout=60) == 7
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
        p.stdout.close()


def test_paused_before_execve_enter_on_the_terminal_goes_on(md_run, bb):
    """On a terminal the guide offers Enter; PID 1 has every wall but still runs our Python."""
    master, slave = os.openpty()
    p = subprocess.Popen(
        [*MINIDOCKER, "run", "--rm", "--pause-at", "execve", bb, "sh", "-c", "echo hi; exit 3"],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=md_run.env(),
    )
    os.close(slave)
    try:
        step, pid, guide = read_guide(p.stderr)
        assert step == "exec_command" and "press Enter" in guide, guide
        assert state_of(pid) == "T"
        assert not os.path.samefile(f"/proc/{pid}/root", "/")  # pivot_root is behind it
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M) and re.search(r"^Seccomp:\s+2$", status, re.M), status
        os.write(master, b"\n")
        out, err = p.communicate(timeout=60)
        assert p.returncode == 3 and out == "hi\n", err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def test_an_unknown_step_is_refused_before_anything_starts(md_run, bb):
    before = md_run.ok("ps", "-aq", "--no-trunc").stdout
    r = md_run("run", "--pause-at", "pivot-root", bb, "true")
    assert r.returncode == 125 and one_error(r.stderr), r.stderr
    assert "Error: --pause-at: unknown step 'pivot-root'; valid steps: hide_host_binary, " in r.stderr
    assert "pivot_root" in r.stderr and "execve" in r.stderr
    assert md_run.ok("ps", "-aq", "--no-trunc").stdout == before  # nothing created


def test_explain_shows_how_long_each_step_took(md_run, bb):
    r = md_run.ok("run", "--rm", "--explain", bb, "true")
    timed = dict(re.findall(r"step (\w+) done \((\d+\.\d) ms\)", r.stderr))
    for name in ("create_cgroup", "prepare_rootfs", "mount_overlay", "pivot_root", "drop_capabilities"):
        assert name in timed, r.stderr
    assert float(timed["prepare_rootfs"]) >= float(timed["pivot_root"])  # it holds pivot_root
    assert re.search(r"pid 1 +step pivot_root done", r.stderr), r.stderr  # the child's own step


def test_pause_at_is_refused_where_no_one_could_see_the_guide(md_run, bb):
    """``run -d`` and ``create``: the guide would be printed by a monitor, or by nobody."""
    before = md_run.ok("ps", "-aq", "--no-trunc").stdout
    for verb in (["run", "-d"], ["create"]):
        r = md_run(*verb, "--pause-at", "pivot_root", bb, "true")
        assert r.returncode == 125 and one_error(r.stderr) and "--pause-at" in r.stderr, r.stderr
    assert md_run.ok("ps", "-aq", "--no-trunc").stdout == before


def test_explain_read_by_a_reader_that_goes_away_still_cleans_up(md_run, bb):
    """``run --rm --explain ... 2>&1 | head``: once the reader has gone, the narration stops
    and the run goes on; its --rm container is removed as ever (it was once left behind)."""
    name = f"explain-head-{os.getpid()}"
    p = md_run.popen("run", "--rm", "--network", "none", "--name", name, "--explain", bb, "sleep", "0.3")
    p.stderr.readline()  # the first step's line: the narration has begun
    p.stderr.close()  # the reader goes away, as head does
    p.stdout.close()
    assert p.wait(timeout=60) == 0
    assert md_run.ok("ps", "-aq", "--filter", f"name={name}").stdout == ""
