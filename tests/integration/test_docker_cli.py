"""The command line as people who script ``docker`` type it (issue #12: verbs, flags, errors).

Each case is a command line and what docker answers it with: the words on stderr that
scripts grep for, and the exit code. ``run`` lines go through both of its parsers, the fast
path (``python -m minidocker``) and the typer app that takes what the fast path leaves; the
image exists, so a flag that slipped through as an image name would start a container.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import MINIDOCKER, one_error

TYPER = [sys.executable, "-c", "import sys; from minidocker.cli.app import typer_main; typer_main(sys.argv[1:])"]


def via(md, parser: str, *args: str) -> subprocess.CompletedProcess:
    """``minidocker ARGS`` through the entry point (the fast path first for ``run``), or
    straight into typer."""
    if parser == "minidocker":
        return md(*args)
    return subprocess.run([*TYPER, *args], check=False, capture_output=True, text=True, env=md.env(), timeout=120)


UNKNOWN_FLAGS = [  # (argv; {bb} is the busybox image), the command docker's "See" line names
    (["run", "--bogus", "{bb}", "true"], "--bogus", "minidocker run"),
    (["run", "--bogus=1", "--rm", "{bb}", "true"], "--bogus", "minidocker run"),
    (["run", "--rm", "-z", "{bb}", "true"], "'z' in -z", "minidocker run"),
    (["run", "-it", "--rm", "--nope", "{bb}", "true"], "--nope", "minidocker run"),
    (["ps", "--bogus"], "--bogus", "minidocker ps"),
    (["ps", "-z"], "'z' in -z", "minidocker ps"),
    (["network", "rm", "--bogus", "x"], "--bogus", "minidocker network rm"),
    (["container", "prune", "--bogus"], "--bogus", "minidocker container prune"),
    (["logs", "--bogus", "x"], "--bogus", "minidocker logs"),
    (["container", "run", "--bogus", "{bb}"], "--bogus", "minidocker container run"),
    (["container", "stop", "--bogus", "x"], "--bogus", "minidocker container stop"),
]


def containers_of(md) -> list[str]:
    """The store's container directories (no command run: cheap enough for every case)."""
    path = md.root / "containers"
    return sorted(n for n in os.listdir(path) if not n.endswith(".lock")) if path.exists() else []


CASES = [(parser, *case) for case in UNKNOWN_FLAGS for parser in ("minidocker", "typer") if case[0][0] == "run"]
CASES += [("minidocker", *case) for case in UNKNOWN_FLAGS if case[0][0] != "run"]  # (only run has a fast path)


@pytest.mark.parametrize("parser, argv, flag, command", CASES, ids=[f"{c[0]}: {' '.join(c[1])}" for c in CASES])
def test_unknown_flag(shared_md, bb, parser, argv, flag, command):
    """(The shared store without md_run's bookkeeping: these make nothing, as they check.)"""
    md = shared_md
    before = containers_of(md)
    r = via(md, parser, *(a.replace("{bb}", bb) for a in argv))
    first = f"unknown flag: {flag}" if flag.startswith("--") else f"unknown shorthand flag: {flag}"
    assert r.returncode == 125 and r.stderr == f"{first}\nSee '{command} --help'.\n", r.stderr
    assert "invalid reference" not in r.stderr and r.stdout == ""
    assert containers_of(md) == before  # nothing was made


ERRORS = [  # (argv, the line on stderr, exit code) as docker has them
    (["rm", "no-such-c"], "Error: No such container: no-such-c", 1),
    (["stop", "no-such-c"], "Error: No such container: no-such-c", 1),
    (["start", "no-such-c"], "Error: No such container: no-such-c", 1),
    (["logs", "no-such-c"], "Error: No such container: no-such-c", 125),
    (["rmi", "no-such-image:1"], "Error: No such image: no-such-image:1", 1),
    (["network", "rm", "no-such-net"], "Error: network no-such-net not found", 1),
    (["run", "--rm", "{bb}", "no-such-cmd"], 'exec: "no-such-cmd": executable file not found in $PATH', 127),
    (["run", "--rm", "{bb}", "/no/such"], 'exec: "/no/such": stat /no/such: no such file or directory', 127),
    (["run", "--rm", "{bb}", "/etc/passwd"], 'exec: "/etc/passwd": permission denied', 126),
]


@pytest.mark.parametrize("argv, line, code", ERRORS, ids=[" ".join(a) for a, _, _ in ERRORS])
def test_docker_wording(shared_md, bb, argv, line, code):
    before = containers_of(shared_md)
    r = shared_md(*(a.replace("{bb}", bb) for a in argv))
    assert containers_of(shared_md) == before  # (--rm: the failed ones are gone too)
    assert r.returncode == code and line in r.stderr.splitlines()[0], r.stderr
    assert "Traceback" not in r.stderr


HELP = [  # (argv, a line the help shows)
    (["--help"], "Usage: minidocker [OPTIONS] COMMAND [ARGS]..."),
    (["-h"], "Usage: minidocker [OPTIONS] COMMAND [ARGS]..."),
    (["run", "--help"], "Usage: minidocker run [OPTIONS] {IMAGE} [COMMAND] [ARG...]"),
    (["ps", "-h"], "Usage: minidocker ps [OPTIONS]"),
    (["network", "rm", "-h"], "Usage: minidocker network rm [OPTIONS] {NETWORK...}"),
    (["container", "--help"], "Usage: minidocker container [OPTIONS] COMMAND [ARGS]..."),
]


@pytest.mark.parametrize("argv, usage", HELP, ids=[" ".join(a) for a, _ in HELP])
def test_help(shared_md, argv, usage):
    r = shared_md(*argv)
    assert r.returncode == 0 and usage in r.stdout.splitlines(), r.stdout
    assert r.stderr == ""


def test_help_groups_commands_as_docker(shared_md):
    out = shared_md.ok("--help").stdout
    sections = [line for line in out.splitlines() if line.endswith("Commands:")]
    assert sections == ["Common Commands:", "Management Commands:", "Commands:"], out
    common, management, rest = (out.split("\n" + s + "\n")[1].split("\n\n")[0] for s in sections)
    first_words = [line.split()[0] for line in common.strip().splitlines()]
    assert first_words[:3] == ["run", "exec", "ps"], common
    assert "container" in management and "network" in management and "run " not in management
    assert "\n  rm " in rest and "\n  ps " not in rest


# -- run's flags (issue #12, item 3) -------------------------------------------------------------
def inspect(md, name: str) -> dict:
    return json.loads(md.ok("inspect", name).stdout)[0]


def test_pull_policies(md_run, bb, registry):
    missing = f"{registry.host}/not-here:1"
    r = md_run("run", "--rm", "--pull", "never", missing, "true")
    assert r.returncode == 125 and r.stderr == f"Error: No such image: {missing}\n", r.stderr
    r = md_run("run", "--rm", "--pull=bad", bb, "true")
    assert r.returncode == 125 and "invalid pull option: 'bad': must be one of" in r.stderr
    assert md_run.ok("run", "--rm", "--pull=never", bb, "true").stderr == ""  # here: not pulled
    assert md_run.ok("run", "--rm", bb, "true").stderr == ""  # missing (the default): here, not pulled
    r = md_run.ok("run", "--rm", "--pull", "always", bb, "echo", "ran")
    assert f"Pulling from {registry.host}/busybox" in r.stderr and "Already exists" in r.stderr
    assert "Unable to find" not in r.stderr and r.stdout == "ran\n"


def test_platform(md_run, registry):
    ref = f"{registry.host}/multiarch:latest"
    cid = md_run.ok("create", "--platform", "linux/arm64", ref).stdout.strip()
    assert inspect(md_run, inspect(md_run, cid)["Image"])["Architecture"] == "arm64"
    r = md_run.ok("run", "--rm", "--platform", "linux/amd64", ref, "cat", "/arch")  # the store's is arm64: pulled
    assert r.stdout == "amd64\n"
    r = md_run("run", "--rm", "--platform", "linux", ref, "true")
    assert r.returncode == 125 and "invalid platform 'linux'" in r.stderr


def test_labels_and_stop_settings_recorded(md_run, bb, tmp_path):
    (tmp_path / "labels").write_text("# a comment\nfrom.file=1\nboth=file\n")
    cid = md_run.ok(
        "create", "-l", "a=1", "--label", "empty", "--label-file", str(tmp_path / "labels"), "--label", "both=flag",
        "--stop-signal", "SIGUSR1", "--stop-timeout", "3", bb,
    ).stdout.strip()  # fmt: skip
    config = inspect(md_run, cid)["Config"]
    assert config["Labels"] == {"from.file": "1", "both": "flag", "a": "1", "empty": ""}
    assert (config["StopSignal"], config["StopTimeout"]) == ("SIGUSR1", 3)
    r = md_run("create", "--stop-signal", "NOPE", bb)
    assert r.returncode == 125 and r.stderr == "Error: Invalid signal: NOPE\n"


def logged(md, cid: str, text: str, timeout: float = 10) -> bool:
    """Whether the container's log reads ``text`` within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if md.ok("logs", cid).stdout == text:
            return True
        time.sleep(0.05)
    return False


def test_stop_sends_the_stop_signal_and_waits_the_stop_timeout(md_run, bb):
    trap = 'trap "exit 3" USR1; echo up; while :; do sleep 0.05; done'
    a = md_run.ok("run", "-d", "--stop-signal", "USR1", bb, "sh", "-c", trap).stdout.strip()
    deaf = 'trap "" TERM; while :; do sleep 0.05; done'
    b = md_run.ok("run", "-d", "--stop-timeout", "1", bb, "sh", "-c", deaf).stdout.strip()
    assert logged(md_run, a, "up\n")  # its trap is set
    started = time.monotonic()
    md_run.ok("stop", a, b)
    assert time.monotonic() - started < 8  # b: 1 s, not the default 10
    assert inspect(md_run, a)["State"]["ExitCode"] == 3  # its trap ran: USR1, not TERM
    assert inspect(md_run, b)["State"]["ExitCode"] == 137  # it ignored TERM: killed after 1 s


def test_cidfile(md_run, bb, tmp_path):
    path = tmp_path / "cid"
    cid = md_run.ok("run", "-d", "--cidfile", str(path), bb, "true").stdout.strip()
    assert path.read_text() == cid
    before = md_run.ok("ps", "-aq").stdout
    r = md_run("run", "--rm", "--cidfile", str(path), bb, "true")
    assert r.returncode == 125 and r.stderr == (
        f"Error: Container ID file found, make sure the other container isn't running or delete {path}\n"
    )
    assert md_run.ok("ps", "-aq").stdout == before and path.read_text() == cid


def test_memory_zero_is_no_limit(md_run, bb):
    cid = md_run.ok("create", "-m", "0", bb, "true").stdout.strip()
    assert json.loads((md_run.root / "containers" / cid / "config.json").read_text())["limits"] == {}
    assert inspect(md_run, cid)["HostConfig"]["Memory"] == 0
    assert md_run("start", "-a", cid).returncode == 0
    r = md_run("run", "--rm", "-m", "1k", bb, "true")
    assert r.returncode == 125 and "Minimum memory limit allowed is 6MB" in r.stderr


def gone(md, cid: str, timeout: float = 10) -> bool:
    """Whether the container's record goes within ``timeout`` (its monitor removes it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cid not in md.ok("ps", "-aq", "--no-trunc").stdout:
            return True
        time.sleep(0.05)
    return False


def connected(pid: int) -> bool:
    """Whether process ``pid`` holds a connected unix socket (St 03 in /proc/net/unix)."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except FileNotFoundError:
        return False
    with open("/proc/net/unix") as f:
        rows = [line.split() for line in f][1:]
    return any(len(r) > 6 and r[5] == "03" and f"socket:[{r[6]}]" in inodes for r in rows)


def test_stop_and_kill_remove_an_rm_container(md_run, bb):
    loop = "while :; do sleep 0.05; done"
    a = md_run.ok("run", "-d", "--rm", bb, "sh", "-c", loop).stdout.strip()
    md_run.ok("stop", "-t", "1", a)
    assert a not in md_run.ok("ps", "-aq", "--no-trunc").stdout  # gone when stop returns
    b = md_run.ok("run", "-d", "--rm", bb, "sh", "-c", loop).stdout.strip()
    waiter = md_run.popen("wait", b)
    deadline = time.monotonic() + 30
    while not connected(waiter.pid) and time.monotonic() < deadline:  # to the monitor's console socket
        time.sleep(0.02)
    md_run.ok("kill", b)
    out, _ = waiter.communicate(timeout=30)
    assert (waiter.returncode, out) == (0, "137\n")  # wait hears the code before the record goes
    assert gone(md_run, b)


def test_wait_for_several(md_run, bb):
    a = md_run.ok("run", "-d", bb, "sh", "-c", "exit 3").stdout.strip()
    b = md_run.ok("run", "-d", bb, "sh", "-c", "until [ -e /go ]; do sleep 0.05; done; exit 4").stdout.strip()
    waiter = md_run.popen("wait", a, b)
    md_run.ok("exec", b, "touch", "/go")
    out, err = waiter.communicate(timeout=30)
    assert (waiter.returncode, out) == (0, "3\n4\n"), err
    r = md_run("wait", a, "no-such-c")
    assert r.returncode == 1 and r.stdout == "3\n" and "No such container: no-such-c" in r.stderr


def test_env_merged_with_the_image_env(md_run, bb):
    r = md_run.ok(
        "run",
        "--rm",
        "-e",
        "PATH=/usr/bin:/bin",
        "-e",
        "NEW=1",
        "-e",
        "FROM_CALLER",
        bb,
        "env",
        env={"FROM_CALLER": "c"},
    )
    names = [line.split("=", 1)[0] for line in r.stdout.splitlines()]
    assert r.stdout.splitlines()[0] == "PATH=/usr/bin:/bin"  # the image's PATH, replaced where it stood
    assert names.count("PATH") == 1 and "NEW=1" in r.stdout and "FROM_CALLER=c" in r.stdout
    r = md_run.ok("run", "--rm", "-e", "NOT_SET_ANYWHERE", bb, "env")
    assert "NOT_SET_ANYWHERE" not in r.stdout


def test_top_with_ps_options(md_run, bb):
    cid = md_run.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    lines = md_run.ok("top", cid, "-o", "pid,comm").stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"] and [line.split()[1] for line in lines[1:]] == ["sleep"]
    lines = md_run.ok("top", cid, "aux").stdout.splitlines()
    assert lines[0].split()[:2] == ["USER", "PID"] and len(lines) == 2 and lines[1].endswith("sleep 60")
    assert md_run.ok("top", cid).stdout.splitlines()[0].split() == ["UID", "PID", "PPID", "CMD"]
    r = md_run("top", cid, "-o", "comm")
    assert r.returncode == 125 and "Couldn't find PID field in ps output" in r.stderr


def test_update_limits_of_a_running_and_a_stopped_container(md_run, bb):
    cid = md_run.ok("run", "-d", "-m", "32m", bb, "sleep", "60").stdout.strip()
    cgroup = json.loads((md_run.root / "containers" / cid / "state.json").read_text())["Cgroup"]

    def read(controller: str, name: str) -> str:
        return (Path(cgroup[controller]) / name).read_text().strip()

    assert md_run.ok("update", "-m", "256m", "--cpus", "0.5", "--pids-limit", "50", cid).stdout == f"{cid}\n"
    assert read("memory", "memory.limit_in_bytes") == str(256 << 20)  # above the old memory+swap: it grew first
    assert read("cpu", "cpu.cfs_quota_us") == "50000" and read("pids", "pids.max") == "50"
    md_run.ok("update", "--pids-limit", "-1", "-m", "16m", cid)
    assert read("pids", "pids.max") == "max" and read("memory", "memory.limit_in_bytes") == str(16 << 20)
    assert md_run.ok("exec", cid, "sh", "-c", "echo x > /dev/null; echo ok").stdout == "ok\n"  # devices still work
    r = md_run("update", "-m", "1k", cid, "no-such-c")
    assert r.returncode == 1 and "Minimum memory limit allowed is 6MB" in r.stderr and "No such container" in r.stderr
    assert read("memory", "memory.limit_in_bytes") == str(16 << 20)  # unchanged
    md_run.ok("stop", "-t", "0", cid)
    md_run.ok("update", "--cpus", "1", "--restart", "on-failure:2", cid)  # stopped: the record only
    spec = json.loads((md_run.root / "containers" / cid / "config.json").read_text())
    assert spec["limits"]["cpus"] == 1 and spec["limits"]["memory"] == 16 << 20
    assert spec["restart"] == {"name": "on-failure", "max": 2}


def test_logs_since_until_timestamps_details(md_run, bb):
    cid = md_run.ok("run", "-d", bb, "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.05; done").stdout.strip()
    md_run.ok("wait", cid)
    stamped = md_run.ok("logs", "-t", cid).stdout.splitlines()
    times = [line.split(" ", 1)[0] for line in stamped]
    assert [line.split(" ", 1)[1] for line in stamped] == ["line 1", "line 2", "line 3"]
    assert all(t.endswith("Z") and len(t) == len("2024-05-01T10:00:00.123456789Z") for t in times)
    assert md_run.ok("logs", "--since", times[1], cid).stdout == "line 2\nline 3\n"
    assert md_run.ok("logs", "--until", times[1], cid).stdout == "line 1\n"
    assert md_run.ok("logs", "--since", times[1], "--until", times[2], cid).stdout == "line 2\n"
    assert md_run.ok("logs", "--since", "1h", cid).stdout == "line 1\nline 2\nline 3\n"
    assert md_run.ok("logs", "--until", "1h", cid).stdout == ""
    assert md_run.ok("logs", "--details", "--tail", "1", cid).stdout == " line 3\n"
    r = md_run("logs", "--since", "yesterday", cid)
    assert r.returncode == 125 and "is not a duration, Unix time or RFC 3339 time" in r.stderr


def test_ulimit(md_run, bb):
    r = md_run.ok(
        "run", "--rm", "--ulimit", "nofile=512:1024", "--ulimit", "nproc=100", "--ulimit", "locks=7", bb,
        "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u; ulimit -x",
    )  # fmt: skip
    assert r.stdout == "512\n1024\n100\n7\n"
    cid = md_run.ok("create", "--ulimit", "nofile=300", bb).stdout.strip()
    assert inspect(md_run, cid)["HostConfig"]["Ulimits"] == [{"Name": "nofile", "Soft": 300, "Hard": 300}]
    for value, words in (
        ("bogus=1", "invalid ulimit type: bogus"),
        ("nofile", "invalid ulimit argument: nofile"),
        ("nofile=x", "invalid ulimit argument: nofile=x"),
        ("nofile=5:1", "ulimit soft limit must be less than or equal to hard limit: 5 > 1"),
    ):
        r = md_run("run", "--rm", "--ulimit", value, bb, "true")
        assert r.returncode == 125 and r.stderr == f"Error: {words}\n", r.stderr


def test_log_drivers_and_rotation(md_run, bb):
    script = "for i in $(seq 1 100); do echo line-$i; done"
    cid = md_run.ok("run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", bb, "sh", "-c", script)
    cid = cid.stdout.strip()
    md_run.ok("wait", cid)
    logs = sorted(p.name for p in (md_run.root / "containers" / cid).iterdir() if p.name.startswith("container.log"))
    assert logs == ["container.log", "container.log.1", "container.log.2"]
    lines = md_run.ok("logs", cid).stdout.splitlines()
    assert lines[-1] == "line-100" and lines == [f"line-{i}" for i in range(101 - len(lines), 101)]
    assert inspect(md_run, cid)["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "1k", "max-file": "3"},
    }
    name = f"nolog-{os.getpid()}"
    assert md_run.ok("run", "--log-driver", "none", "--name", name, bb, "echo", "shown").stdout == "shown\n"
    r = md_run("logs", name)
    assert r.returncode == 1 and r.stderr == "Error: configured logging driver does not support reading\n"
    assert not (md_run.root / "containers" / inspect(md_run, name)["Id"] / "container.log").exists()
    for flags, words in (
        (["--log-driver", "syslog"], "logger: no log driver named 'syslog' is registered"),
        (["--log-opt", "foo=1"], "unknown log opt 'foo' for json-file log driver"),
        (["--log-opt", "max-file=0"], "max-file cannot be less than 1"),
        (["--log-driver", "none", "--log-opt", "max-size=1m"], "unknown log opt 'max-size' for none log driver"),
    ):
        r = md_run("run", "--rm", *flags, bb, "true")
        assert r.returncode == 125 and r.stderr == f"Error: {words}\n", r.stderr


def test_shm_size(md_run, bb):
    def shm_kib(*flags: str) -> str:
        return md_run.ok("run", "--rm", *flags, bb, "df", "-k", "/dev/shm").stdout.splitlines()[1].split()[1]

    assert (shm_kib(), shm_kib("--shm-size", "128m")) == ("65536", "131072")
    r = md_run("run", "--rm", "--shm-size", "0", bb, "true")
    assert r.returncode == 125 and r.stderr == "Error: SHM size must be greater than 0\n"


def test_events_past_and_live(md_run, bb):
    name = f"events-{os.getpid()}"
    t0 = f"{time.time():.6f}"
    cid = md_run.ok("run", "-d", "--name", name, bb, "sh", "-c", "exit 3").stdout.strip()
    md_run.ok("wait", cid)
    r = md_run.ok("events", "--since", t0, "--until", f"{time.time():.6f}", "--filter", f"container={name}")
    lines = r.stdout.splitlines()  # the span is over: it prints the past and ends
    assert [line.split()[1:4] for line in lines] == [["container", a, cid] for a in ("create", "start", "die")]
    assert lines[2].endswith(f"(exitCode=3, image={bb}, name={name})")
    watcher = subprocess.Popen(
        [*MINIDOCKER, "events", "--since", t0, "--format", "json", "--filter", f"container={name}"],
        stdout=subprocess.PIPE,
        text=True,
        env=md_run.env(),
    )
    try:
        seen = []
        for line in watcher.stdout:
            seen.append(json.loads(line)["Action"])
            if len(seen) == 3:  # the past: now remove it
                md_run.ok("rm", name)
            if seen[-1] == "destroy":
                break
        assert seen == ["create", "start", "die", "destroy"]
    finally:
        watcher.kill()
        watcher.wait()
    r = md_run("events", "--filter", "bogus=1")
    assert r.returncode == 125 and r.stderr.splitlines()[0] == "Error: Invalid filter 'bogus=1'"


def test_sysctl_reaches_the_containers_namespaces_only(md_run, bb):
    host = [
        Path("/proc/sys/kernel/shmmni").read_text(),
        Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text(),
    ]
    show = "cat /proc/sys/kernel/shmmni /proc/sys/net/ipv4/ip_unprivileged_port_start"
    for network in ("bridge", "none"):
        r = md_run.ok(
            "run", "--rm", "--network", network, "--sysctl", "kernel.shmmni=1000",
            "--sysctl", "net.ipv4.ip_unprivileged_port_start=42", bb, "sh", "-c", show,
        )  # fmt: skip
        assert r.stdout == "1000\n42\n"
    assert [
        Path("/proc/sys/kernel/shmmni").read_text(),
        Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text(),
    ] == host
    before = md_run.ok("ps", "-aq").stdout
    for flags, words in (
        (["--sysctl", "vm.swappiness=1"], 'sysctl "vm.swappiness" is not in a separate kernel namespace'),
        (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"], "not allowed in host network namespace"),
        (["--sysctl", "kernel.shmmni"], "invalid sysctl value: 'kernel.shmmni'"),
        (["--sysctl", "kernel.shmmni=x"], "sysctl: kernel.shmmni=x: Invalid argument"),
    ):
        r = md_run("run", "--rm", *flags, bb, "true")
        assert r.returncode == 125 and words in r.stderr and one_error(r.stderr), r.stderr
    assert md_run.ok("ps", "-aq").stdout == before


def test_pid_host_and_container(md_run, bb):
    show = "readlink /proc/self/ns/pid"
    assert (
        md_run.ok("run", "--rm", "--pid", "host", bb, "sh", "-c", show).stdout
        == os.readlink("/proc/self/ns/pid") + "\n"
    )
    name = f"pidns-{os.getpid()}"
    md_run.ok("run", "-d", "--name", name, bb, "sleep", "60")
    theirs = os.readlink(f"/proc/{inspect(md_run, name)['State']['Pid']}/ns/pid")
    r = md_run.ok("run", "--rm", "--pid", f"container:{name}", bb, "sh", "-c", f"{show}; cat /proc/1/comm")
    assert r.stdout == f"{theirs}\nsleep\n"  # its PID 1 is the other container's
    assert md_run.ok("run", "--rm", bb, "sh", "-c", show).stdout not in (
        theirs + "\n",
        os.readlink("/proc/self/ns/pid"),
    )
    md_run.ok("stop", "-t", "0", name)
    r = md_run("run", "--rm", "--pid", f"container:{name}", bb, "true")
    assert r.returncode == 125 and "cannot join PID of a non running container" in r.stderr
    r = md_run("run", "--rm", "--pid", "bogus", bb, "true")
    assert r.returncode == 125 and r.stderr == "Error: invalid PID mode: bogus\n"


def test_management_command_aliases(md_run, bb):
    name = f"alias-{os.getpid()}"
    assert md_run.ok("container", "run", "--name", name, bb, "echo", "hi").stdout == "hi\n"
    assert md_run.ok("container", "logs", name).stdout == "hi\n"
    ids = md_run.ok("ps", "-aq", "--filter", f"name={name}").stdout
    for spelling in (["container", "ls"], ["container", "list"], ["container", "ps"]):
        assert md_run.ok(*spelling, "-aq", "--filter", f"name={name}").stdout == ids != ""
    assert md_run.ok("container", "stats", "--no-stream", "--format", "{{.Name}}", name).returncode == 0
    assert md_run.ok("container", "rm", name).stdout == f"{name}\n"
    images = md_run.ok("images", "-q").stdout
    assert md_run.ok("image", "ls", "-q").stdout == md_run.ok("image", "list", "-q").stdout == images != ""
    r = md_run("image", "rm", "no-such-image:1")
    assert r.returncode == 1 and r.stderr == "Error: No such image: no-such-image:1\n"
