"""minidocker-runc's exec, ps, pause, resume, events, update and list (minidocker/oci/exec.py,
ops.py) on a busybox bundle, against the real kernel: namespaces joined, cgroups frozen
and written, as runc's commands do."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import one_error
from tests.integration.test_oci_runtime import RUNC, WORKTREE, Runc, bundle, configure, runc  # noqa: F401 (the fixtures)


@pytest.fixture
def running(bundle, runc, tmp_path):
    """A started container ``c1`` whose PID 1 sleeps; its host PID."""
    configure(bundle, runc, ["sleep", "600"])
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 777, "soft": 555}]
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    config["linux"]["resources"]["pids"] = {"limit": 64}
    (bundle / "config.json").write_text(json.dumps(config))
    runc.ok("create", "--bundle", str(bundle), "--pid-file", str(tmp_path / "pid"), "c1")
    runc.ok("start", "c1")
    return int((tmp_path / "pid").read_text())


# a detached process that keeps no copy of our capturing pipes (their reader would wait for it)
QUIET_SLEEP = ["sh", "-c", "exec sleep 30 >/dev/null 2>&1"]


def cgroup_file(controller: str, name: str) -> Path:
    v1 = Path("/sys/fs/cgroup") / controller / "minidocker" / "c1" / name
    return v1 if v1.parent.exists() else Path("/sys/fs/cgroup/minidocker/c1") / name


def wait_for(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_exec_runs_in_the_containers_namespaces_and_returns_its_code(runc, running, bundle):
    script = "readlink /proc/1/ns/mnt; readlink /proc/self/ns/pid; hostname; exit 6"
    r = runc("exec", "c1", "sh", "-c", script)
    assert r.returncode == 6, r.stderr
    mnt, pidns, host = r.stdout.split()
    assert mnt == os.readlink(f"/proc/{running}/ns/mnt") and pidns == os.readlink(f"/proc/{running}/ns/pid")
    assert host == "minidocker"
    # the bundle's config is the one create read: editing it now changes nothing
    (bundle / "config.json").write_text("{}")
    assert runc("exec", "c1", "true").returncode == 0


def test_exec_gets_the_containers_walls(runc, running):
    """The container's seccomp profile (mkdir refused), its rlimits, its cgroup."""
    r = runc("exec", "c1", "sh", "-c", "mkdir /tmp/x || echo refused; ulimit -n; ulimit -Hn; cat /proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["refused", "555", "777"], r.stdout
    assert any(line.endswith(":/") or "minidocker/c1" in line for line in lines[3:] if "pids" in line), r.stdout


def test_exec_flags_shape_the_process(runc, running):
    r = runc(
        "exec",
        "--user",
        "1000:1001",
        "--cwd",
        "/tmp",
        "-e",
        "FOO=bar",
        "c1",
        "sh",
        "-c",
        "id -u; id -g; pwd; echo $FOO",
    )
    assert (r.returncode, r.stdout.split()) == (0, ["1000", "1001", "/tmp", "bar"]), r.stderr
    r = runc("exec", "--cap", "CAP_SYS_ADMIN", "c1", "grep", "CapEff", "/proc/self/status")
    assert r.returncode == 0 and int(r.stdout.split()[1], 16) & (1 << 21), r.stdout  # CAP_SYS_ADMIN is 21


def test_exec_of_a_process_json(runc, running, tmp_path):
    process = {
        "args": ["sh", "-c", "echo $A; exit 3"],
        "cwd": "/",
        "env": ["A=from-json"],
        "user": {"uid": 0, "gid": 0},
    }
    (tmp_path / "process.json").write_text(json.dumps(process))
    r = runc("exec", "--process", str(tmp_path / "process.json"), "c1")
    assert (r.returncode, r.stdout) == (3, "from-json\n"), r.stderr


def test_exec_detach_writes_the_pid_file_and_returns(runc, running, tmp_path):
    start = time.monotonic()
    runc.ok("exec", "--detach", "--pid-file", str(tmp_path / "epid"), "c1", *QUIET_SLEEP)
    assert time.monotonic() - start < 10
    pid = int((tmp_path / "epid").read_text())
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{running}/ns/pid")
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    assert pid in json.loads(runc.ok("ps", "--format", "json", "c1").stdout)


def test_exec_preserve_fds_passes_the_callers_fds(runc, running, tmp_path):
    """The caller's fd 3 (opened by a shell that then runs us) reaches the process only with
    --preserve-fds 1."""
    (tmp_path / "given").write_text("through fd 3\n")
    env = dict(os.environ, PYTHONPATH=str(WORKTREE))

    def exec_with_fd3(*flags: str) -> subprocess.CompletedProcess:
        argv = [*RUNC, "--root", str(runc.root), "exec", *flags, "c1", "sh", "-c", "cat <&3"]
        shell = ["sh", "-c", 'exec 3<"$0"; exec "$@"', str(tmp_path / "given"), *argv]
        return subprocess.run(shell, capture_output=True, text=True, env=env, timeout=60)

    r = exec_with_fd3("--preserve-fds", "1")
    assert (r.returncode, r.stdout) == (0, "through fd 3\n"), r.stderr
    r = exec_with_fd3()
    assert r.returncode != 0 and r.stdout == ""


def test_exec_failures_are_126_127_or_125(runc, running, bundle):
    assert runc("exec", "c1", "nosuch").returncode == 127
    assert runc("exec", "c1", "/etc/passwd").returncode == 126
    r = runc("exec", "--process-label", "system_u:system_r:x", "c1", "true")
    assert r.returncode == 125 and one_error(r.stderr) and "--process-label" in r.stderr, r.stderr
    r = runc("exec", "c1")
    assert r.returncode == 125 and one_error(r.stderr) and "needs a command" in r.stderr, r.stderr
    r = runc("exec", "nosuch", "true")
    assert r.returncode == 125 and one_error(r.stderr) and "does not exist" in r.stderr, r.stderr


def receive_console(path: Path, out: list[bytes]) -> threading.Thread:
    """The --console-socket protocol's receiving end: take the pty master, read it to EOF."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        _, fds, _, _ = socket.recv_fds(conn, 16, 1)
        conn.close()
        server.close()
        while True:
            try:
                data = os.read(fds[0], 4096)
            except OSError:  # EIO: the last holder of the pty's slave end is gone
                break
            if not data:
                break
            out.append(data)
        os.close(fds[0])

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def test_exec_tty_sends_the_pty_master_to_the_console_socket(runc, running, tmp_path):
    out: list[bytes] = []
    t = receive_console(tmp_path / "console.sock", out)
    r = runc("exec", "--tty", "--console-socket", str(tmp_path / "console.sock"), "c1", "sh", "-c", "tty; exit 4")
    assert r.returncode == 4, r.stderr
    t.join(10)
    assert b"".join(out) == b"/dev/pts/0\r\n"
    r = runc("exec", "--tty", "c1", "true")
    assert r.returncode == 125 and "--console-socket is needed" in r.stderr


def test_ps_lists_the_containers_processes(runc, running):
    runc.ok("exec", "-d", "c1", *QUIET_SLEEP)
    pids = json.loads(runc.ok("ps", "--format", "json", "c1").stdout)
    assert running in pids and len(pids) == 2
    table = runc.ok("ps", "c1").stdout.splitlines()
    assert "PID" in table[0].split() and len(table) == 3 and any("sleep 600" in row for row in table[1:])
    r = runc("ps", "--format", "yaml", "c1")
    assert r.returncode == 125 and one_error(r.stderr)


def test_pause_freezes_and_resume_thaws(runc, running):
    runc.ok("pause", "c1")
    assert runc.state("c1")["status"] == "paused"
    freezer = cgroup_file("freezer", "freezer.state")
    assert freezer.read_text().strip() == "FROZEN" if freezer.name == "freezer.state" and freezer.exists() else True
    stat = Path(f"/proc/{running}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert stat == "D" or stat == "S", stat  # (v1 shows a frozen task in D)
    r = runc("pause", "c1")
    assert r.returncode == 125 and one_error(r.stderr) and "already paused" in r.stderr
    r = runc("exec", "c1", "true")
    assert r.returncode == 125 and "paused" in r.stderr
    runc.ok("resume", "c1")
    assert runc.state("c1")["status"] == "running"
    assert runc("exec", "c1", "true").returncode == 0
    r = runc("resume", "c1")
    assert r.returncode == 125 and one_error(r.stderr) and "not paused" in r.stderr


def test_delete_force_of_a_paused_container_thaws_and_kills_it(runc, running):
    runc.ok("pause", "c1")
    start = time.monotonic()
    runc.ok("delete", "--force", "c1")
    assert time.monotonic() - start < 5
    assert (
        not Path(f"/proc/{running}").exists() or "Z" in Path(f"/proc/{running}/stat").read_text().rsplit(")", 1)[1][:3]
    )
    assert not any(Path("/sys/fs/cgroup").glob("*/minidocker/c1")) and not Path("/sys/fs/cgroup/minidocker/c1").exists()


def test_kill_of_a_paused_container_with_sigkill_ends_it(runc, running):
    runc.ok("pause", "c1")
    runc.ok("kill", "c1", "KILL")
    assert wait_for(lambda: runc.state("c1")["status"] == "stopped")


def test_events_stats_and_stream(runc, running):
    event = json.loads(runc.ok("events", "--stats", "c1").stdout)
    assert (event["type"], event["id"]) == ("stats", "c1")
    assert event["data"]["pids"]["current"] == 1 and event["data"]["cpu"]["usage"]["total"] > 0
    assert event["data"]["memory"]["usage"]["usage"] > 0
    env = dict(os.environ, PYTHONPATH=str(WORKTREE))
    cmd = [*RUNC, "--root", str(runc.root), "events", "--interval", "100ms", "c1"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as p:
        assert p.stdout is not None
        lines = [json.loads(p.stdout.readline()) for _ in range(2)]
        runc.ok("kill", "c1", "KILL")
        assert p.wait(timeout=10) == 0  # the stream ends with the container
    assert [e["type"] for e in lines] == ["stats", "stats"]
    r = runc("events", "--interval", "soon", "c1")
    assert r.returncode == 125 and one_error(r.stderr)


def test_events_reports_an_oom_kill(bundle, runc):
    configure(bundle, runc, ["sh", "-c", "sleep 1; x=y; while :; do x=$x$x; done"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["resources"]["memory"] = {"limit": 8 * 1024 * 1024, "swap": 8 * 1024 * 1024}
    (bundle / "config.json").write_text(json.dumps(config))
    runc.ok("create", "--bundle", str(bundle), "c1")
    runc.ok("start", "c1")
    r = runc("events", "--interval", "100ms", "c1", timeout=60)
    assert r.returncode == 0, r.stderr
    assert {"type": "oom", "id": "c1"} in [json.loads(line) for line in r.stdout.splitlines()], r.stdout


def test_update_writes_the_cgroup(runc, running, tmp_path):
    runc.ok("update", "--memory", "64m", "--pids-limit", "50", "--cpu-shares", "512", "c1")
    assert cgroup_file("pids", "pids.max").read_text() == "50\n"
    memory = cgroup_file("memory", "memory.limit_in_bytes")
    memory = memory if memory.exists() else cgroup_file("memory", "memory.max")
    assert memory.read_text() == f"{64 << 20}\n"
    (tmp_path / "r.json").write_text(json.dumps({"memory": {"limit": 128 << 20}, "pids": {"limit": 20}}))
    runc.ok("update", "--resources", str(tmp_path / "r.json"), "c1")
    assert memory.read_text() == f"{128 << 20}\n" and cgroup_file("pids", "pids.max").read_text() == "20\n"
    r = runc("update", "--resources", "-", "c1", input='{"pids": {"limit": 30}}')
    assert r.returncode == 0 and cgroup_file("pids", "pids.max").read_text() == "30\n", r.stderr
    for bad, words in ((["--memory", "lots"], "invalid size"), (["--resources", "/nonexistent"], "No such file")):
        r = runc("update", *bad, "c1")
        assert r.returncode == 125 and one_error(r.stderr) and words in r.stderr, r.stderr


def test_list_shows_every_container(runc, running, bundle):
    assert runc.ok("list", "-q").stdout == "c1\n"
    (row,) = json.loads(runc.ok("list", "--format", "json").stdout)
    assert (row["id"], row["pid"], row["status"], row["bundle"]) == ("c1", running, "running", str(bundle))
    table = runc.ok("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[:3] == ["c1", str(running), "running"]


def test_features_name_the_commands(runc):
    commands = json.loads(runc.ok("features").stdout)["annotations"]["io.github.minidocker.commands"].split(",")
    assert {"exec", "ps", "pause", "resume", "events", "update", "list"} <= set(commands)
