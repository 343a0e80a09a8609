"""A start is a recipe of named steps (runtime/steps.py), on the real kernel: a failed step
is named in one ``Error:`` line with docker's exit code, whichever process it failed in (the
container's init, our own parent side, the monitor of ``-d``), nothing of the container is
left behind, and ``exec`` runs behind exactly the walls of the container's PID 1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.conftest import one_error

STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")


def containers_of(m) -> set[str]:
    return set(m.ok("ps", "-aq", "--no-trunc").stdout.split())


def cgroups_of(cid: str) -> list[Path]:
    return list(Path("/sys/fs/cgroup").glob(f"*/minidocker/{cid}")) + list(
        Path("/sys/fs/cgroup").glob(f"minidocker/{cid}")
    )


@pytest.mark.parametrize("mode", [[], ["-d"], ["--userns", "auto"]], ids=["foreground", "detached", "userns"])
@pytest.mark.parametrize(
    "flags, text",
    [
        (
            ["-u", "nosuchuser"],
            "container start failed at switch_user: unable to find user nosuchuser: no matching entries in passwd file",
        ),
        (["-w", "/etc/passwd/x"], "container start failed at make_workdir: Not a directory: /etc/passwd/x"),
    ],
    ids=["switch_user", "make_workdir"],
)
def test_a_failed_step_of_the_container_is_named(md_run, bb, mode, flags, text):
    before = containers_of(md_run)
    r = md_run("run", "--rm", *mode, *flags, bb, "true")
    assert r.returncode == 125 and one_error(r.stderr), r.stderr
    assert f"Error: {text}\n" in r.stderr
    assert containers_of(md_run) == before  # --rm: the failed container went too


@pytest.mark.parametrize(
    "mode", [[], ["-d"], ["--init"], ["--userns", "auto"]], ids=["foreground", "detached", "init", "userns"]
)
@pytest.mark.parametrize(
    "argv, code, text",
    [
        (["nosuchcmd"], 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
        (["/etc"], 126, 'exec: "/etc": permission denied'),
    ],
    ids=["not-found", "not-executable"],
)
def test_the_commands_own_failure_reads_as_dockers(md_run, bb, mode, argv, code, text):
    r = md_run("run", "--rm", *mode, bb, *argv)
    assert r.returncode == code and one_error(r.stderr) and f"Error: {text}\n" in r.stderr, r.stderr


@pytest.mark.parametrize("mode", [[], ["-d"]], ids=["foreground", "detached"])
def test_a_failed_step_of_the_parent_is_named_and_undone(md_run, bb, mode):
    """create_cgroup runs in our own process (lifecycle.start); its OSError becomes one line
    naming the step, and the half-made container (its process, its cgroup) is gone. Every
    flag is checked before the start now, so the refusal is injected at the step's crash
    point (crashpoint.py), right after the cgroup was made."""
    name = f"badcpu-{os.getpid()}-{len(mode)}"
    r = md_run("run", *mode, "--name", name, bb, "sleep", "60", env={"MINIDOCKER_TEST_FAIL_AT": "start:cgroup-created"})
    assert r.returncode == 125 and one_error(r.stderr), r.stderr
    assert "Error: container start failed at create_cgroup: " in r.stderr and "failure injected" in r.stderr
    info = json.loads(md_run.ok("inspect", name).stdout)[0]
    assert info["State"]["Status"] != "running" and cgroups_of(info["Id"]) == []
    md_run.ok("rm", name)


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--cap-drop", "ALL"],
        ["--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined"],
        ["--privileged"],
        ["-u", "65534"],
        ["--userns", "auto"],
    ],
    ids=["default", "cap-drop-all", "cap-add-unconfined", "privileged", "user", "userns"],
)
def test_exec_has_the_walls_of_pid_1(md_run, bb, flags):
    """init and exec share one tail of steps (init.finish_and_exec): whatever the walls,
    an exec'd process has PID 1's capabilities, no_new_privs and seccomp mode."""
    cid = md_run.ok("run", "-d", *flags, bb, "sleep", "60").stdout.strip()
    try:
        out = md_run.ok("exec", cid, "sh", "-c", "cat /proc/1/status; echo ---; cat /proc/self/status").stdout
        pid1, mine = (
            {k: v for k, v in (line.split(":\t", 1) for line in part.splitlines() if ":\t" in line)}
            for part in out.split("---\n")
        )
        assert [pid1[f] for f in STATUS_FIELDS] == [mine[f] for f in STATUS_FIELDS], (pid1, mine)
    finally:
        md_run("rm", "-f", cid)


def test_exec_failures_read_as_dockers(md_run, bb):
    """``exec`` reports a failure the way docker's exec does: the message alone, no step."""
    cid = md_run.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    try:
        for args, code, text in (
            (
                ["-u", "nosuchuser", cid, "true"],
                125,
                "unable to find user nosuchuser: no matching entries in passwd file",
            ),
            (
                ["-w", "/nonexistent", cid, "true"],
                126,  # docker's (runc's) words and code
                'chdir to cwd ("/nonexistent") set in config.json failed: no such file or directory',
            ),
            ([cid, "nosuchcmd"], 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
            ([cid, "/etc"], 126, 'exec: "/etc": permission denied'),
        ):
            r = md_run("exec", *args)
            assert r.returncode == code and one_error(r.stderr) and f"Error: {text}\n" in r.stderr, (args, r.stderr)
        assert md_run("exec", cid, "sh", "-c", "exit 9").returncode == 9
        assert md_run("exec", cid, "sh", "-c", "kill -9 $$").returncode == 137
    finally:
        md_run("rm", "-f", cid)
