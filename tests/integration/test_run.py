"""``minidocker run`` and the container verbs, against the real kernel."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import MINIDOCKER
from tests.integration.layouts import make_layout, tar_of


def test_echo(md_run, bb):
    r = md_run.ok("run", "--rm", bb, "echo", "hi")
    assert r.stdout == "hi\n"


@pytest.mark.parametrize(
    "argv, code",
    [
        (["true"], 0),
        (["sh", "-c", "exit 3"], 3),
        (["nosuchcommand"], 127),
        (["/etc/passwd"], 126),
        (["/"], 126),
        (["sh", "-c", "kill -9 $$"], 0),  # PID 1 ignores signals from its own namespace
    ],
)
def test_exit_codes(md_run, bb, argv, code):
    r = md_run("run", "--rm", bb, *argv)
    assert r.returncode == code, r.stderr
    if code in (126, 127):
        assert r.stderr.startswith("Error: exec: ") and len(r.stderr.splitlines()) == 1


def test_killed_by_a_signal_is_128_plus_n(md_run, bb):
    r = md_run("run", "--rm", "--init", bb, "sh", "-c", "kill -9 $$")
    assert r.returncode == 137
    proc = md_run.popen("run", "--rm", "--init", bb, "sleep", "30")
    time.sleep(0.8)
    proc.send_signal(signal.SIGTERM)  # forwarded to the container; --init forwards to sleep
    proc.wait(timeout=10)
    assert proc.returncode == 128 + signal.SIGTERM


def test_unknown_image_is_125(md_run, registry):
    r = md_run("run", "--rm", f"{registry.host}/nosuchimage", "true")
    assert r.returncode == 125 and "not found" in r.stderr


@pytest.fixture(scope="session")
def configured_image(shared_md, registry, image_layouts, tmp_path_factory):
    """busybox plus a config with Env, WorkingDir, User and Entrypoint set."""
    layout = make_layout(
        tmp_path_factory.mktemp("cfg") / "layout",
        tar_of(("dir", "srv", None), ("file", "srv/show", b"#!/bin/sh\necho args:$*\n")),
        config={
            "Env": ["PATH=/usr/bin:/bin", "GREETING=hello", "MODE=image"],
            "WorkingDir": "/srv",
            "User": "app",
            "Entrypoint": ["/srv/show"],
            "Cmd": ["from-cmd"],
        },
        base=image_layouts["busybox"],
    )
    registry.seed(layout, "configured")
    ref = f"{registry.host}/configured:latest"
    shared_md.ok("pull", "-q", ref)
    return ref


def test_config_from_image_and_flags(md_run, configured_image):
    assert md_run.ok("run", "--rm", configured_image).stdout == "args:from-cmd\n"
    assert md_run.ok("run", "--rm", configured_image, "x", "y").stdout == "args:x y\n"
    r = md_run.ok(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        configured_image,
        "-c",
        'echo "$GREETING|$MODE|$(pwd)|$(id -u):$(id -g)|$(id -G)|$HOME|$HOSTNAME"',
    )
    greeting, mode, cwd, ids, groups, home, hostname = r.stdout.strip().split("|")
    assert (greeting, mode, cwd, ids, home) == ("hello", "image", "/srv", "1000:1000", "/home/app")
    assert "50" in groups.split()  # the supplementary group staff, from the image's /etc/group
    assert re.fullmatch(r"[0-9a-f]{12}", hostname)
    r = md_run.ok(
        "run",
        "--rm",
        "-e",
        "MODE=flag",
        "-w",
        "/tmp/new",
        "-u",
        "0:0",
        "-h",
        "box",
        "--entrypoint",
        "sh",
        configured_image,
        "-c",
        "echo $MODE $(pwd) $(id -u) $(hostname)",
    )
    assert r.stdout.split() == ["flag", "/tmp/new", "0", "box"]


def test_env_file_and_passthrough(md_run, bb, tmp_path):
    f = tmp_path / "env"
    f.write_text("# comment\nA=1\nB=two words\n")
    r = md_run.ok(
        "run", "--rm", "--env-file", str(f), "-e", "C", bb, "sh", "-c", 'echo "$A|$B|$C"', env={"C": "from-host"}
    )
    assert r.stdout == "1|two words|from-host\n"


def test_volumes_rw_and_ro(md_run, bb, tmp_path):
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "data").write_text("keep")
    md_run.ok("run", "--rm", "-v", f"{rw}:/data", bb, "sh", "-c", "echo written > /data/out")
    assert (rw / "out").read_text() == "written\n"
    r = md_run("run", "--rm", "-v", f"{ro}:/data:ro", bb, "sh", "-c", "cat /data/data; echo x > /data/data")
    assert r.returncode != 0 and "Read-only file system" in r.stderr and r.stdout == "keep"
    assert (ro / "data").read_text() == "keep"


def test_pid1_hostname_and_isolation(md_run, bb):
    script = (
        "echo pid=$$; hostname; ps -o pid,comm | wc -l; cat /proc/mounts | wc -l; "
        "for n in cgroup ipc mnt net pid uts; do readlink /proc/self/ns/$n; done; ls /proc/1/fd; true"
    )
    out = md_run.ok("run", "--rm", "-h", "inside", bb, "sh", "-c", script).stdout.split("\n")
    assert out[0] == "pid=1" and out[1] == "inside" and out[1] != os.uname().nodename
    assert int(out[2]) <= 4  # a header, sh, ps, wc: the host's processes are invisible
    host_mounts = len(Path("/proc/mounts").read_text().splitlines())
    assert int(out[3]) < 20 and int(out[3]) != host_mounts
    inside = out[4:10]
    for n, link in zip(["cgroup", "ipc", "mnt", "net", "pid", "uts"], inside):
        assert link != os.readlink(f"/proc/self/ns/{n}"), n
    assert [x for x in out[10:] if x] == ["0", "1", "2"]  # no file descriptor of minidocker's leaked in


def test_network_none_and_host(md_run, bb):
    r = md_run.ok("run", "--rm", "--network", "none", bb, "sh", "-c", "cat /proc/net/dev | tail -n +3 | cut -d: -f1")
    assert r.stdout.split() == ["lo"]
    r = md_run.ok("run", "--rm", bb, "sh", "-c", "cat /proc/net/dev | tail -n +3 | cut -d: -f1")
    assert r.stdout.split() == ["lo", "eth0"]  # no --network: the default bridge, as docker
    r = md_run.ok("run", "--rm", "--network", "host", bb, "readlink", "/proc/self/ns/net")
    assert r.stdout.strip() == os.readlink("/proc/self/ns/net")


def test_stdin_closed_unless_i(md_run, bb):
    assert md_run.ok("run", "--rm", bb, "cat", input="hello\n").stdout == ""
    assert md_run.ok("run", "--rm", "-i", bb, "cat", input="hello\n").stdout == "hello\n"


def test_dev_and_read_only_rootfs(md_run, bb):
    r = md_run.ok("run", "--rm", bb, "sh", "-c", "ls /dev; echo x > /dev/null && head -c 4 /dev/zero | wc -c")
    names = set(r.stdout.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "fd", "stdin"} <= names
    r = md_run("run", "--rm", "--read-only", bb, "touch", "/x")
    assert r.returncode == 1 and "Read-only" in r.stderr


def test_explain_narrates_the_kernel_steps(md_run, bb):
    r = md_run.ok("run", "--rm", "--explain", bb, "true")
    for word in (
        "unshare(CLONE_NEWPID)",
        "CLONE_NEWNS",
        "mount -t overlay",
        "mount -t proc",
        "pivot_root",
        "sethostname",
        "cgroup mkdir",
        "execve",
    ):
        assert word in r.stderr, word


def assert_nothing_left(md, cid: str) -> None:
    assert cid not in Path("/proc/mounts").read_text()
    leftovers = [p for p in Path("/sys/fs/cgroup").glob(f"*/minidocker/{cid}")] + [
        p for p in Path("/sys/fs/cgroup").glob(f"minidocker/{cid}")
    ]
    assert leftovers == []
    assert not (md.root / "containers" / cid).exists()


def test_foreground_run_keeps_a_log(md_run, bb, tmp_path):
    """As docker's: the output of a foreground container (without --rm) can be read again."""
    name = f"fg-{os.getpid()}"
    r = md_run("run", "--name", name, bb, "sh", "-c", "echo out1; echo err1 >&2; echo out2; exit 3")
    assert r.returncode == 3 and r.stdout == "out1\nout2\n" and r.stderr == "err1\n"
    logs = md_run.ok("logs", name)
    assert logs.stdout == "out1\nout2\n" and logs.stderr == "err1\n"
    # our reader going away early (| head) neither hangs the run nor loses the log
    big = f"fgbig-{os.getpid()}"
    r = subprocess.run(
        f"{' '.join(MINIDOCKER)} run --name {big} {bb} seq 1 20000 | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env=md_run.env(),
        timeout=60,
    )
    assert r.stdout == "1\n"
    assert md_run.ok("logs", "--tail", "1", big).stdout == "20000\n"
    md_run.ok("rm", name, big)


def test_detached_logs_stop_ps_rm(md_run, bb):
    cid = md_run.ok(
        "run",
        "-d",
        "--name",
        "ticker",
        bb,
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    ).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    time.sleep(0.6)
    ps = md_run.ok("ps").stdout.splitlines()
    row = next(line for line in ps if "ticker" in line)
    assert row.startswith(cid[:12]) and "Up " in row
    logs = md_run.ok("logs", "ticker").stdout.splitlines()
    assert logs[:2] == ["tick 0", "tick 1"]
    assert md_run.ok("logs", "--tail", "1", "ticker").stdout.count("\n") == 1
    stamped = md_run.ok("logs", "-t", "--tail", "1", "ticker").stdout
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z tick \d+", stamped)
    follower = md_run.popen("logs", "-f", "ticker")
    time.sleep(0.3)
    assert md_run("run", "-d", "--name", "ticker", bb, "true").returncode == 125  # the name is taken
    md_run.ok("stop", "ticker")
    out, _ = follower.communicate(timeout=10)  # -f ends when the container does
    assert out.splitlines()[-1] == "bye"
    info = json.loads(md_run.ok("inspect", "ticker").stdout)[0]
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 0
    assert info["GraphDriver"]["Data"]["UpperDir"].endswith(f"{cid}/upper")
    assert "Exited (0)" in next(line for line in md_run.ok("ps", "-a").stdout.splitlines() if "ticker" in line)
    assert "ticker" not in md_run.ok("ps").stdout
    md_run.ok("rm", "ticker")
    assert_nothing_left(md_run, cid)


def test_stop_escalates_to_sigkill(md_run, bb):
    cid = md_run.ok("run", "-d", bb, "sleep", "60").stdout.strip()  # sh-less PID 1 ignores TERM
    t = time.monotonic()
    md_run.ok("stop", "-t", "1", cid)
    assert time.monotonic() - t < 8
    assert json.loads(md_run.ok("inspect", cid).stdout)[0]["State"]["ExitCode"] == 137


def test_kill_start_restart_wait(md_run, bb):
    cid = md_run.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    md_run.ok("kill", "-s", "KILL", cid)
    assert md_run.ok("wait", cid).stdout.strip() == "137"
    md_run.ok("start", cid)
    assert json.loads(md_run.ok("inspect", cid).stdout)[0]["State"]["Running"] is True
    md_run.ok("restart", "-t", "0", cid)
    assert json.loads(md_run.ok("inspect", cid).stdout)[0]["State"]["Running"] is True
    r = md_run("rm", cid)
    assert r.returncode == 1 and "cannot remove a running container" in r.stderr
    md_run.ok("rm", "-f", cid)
    assert_nothing_left(md_run, cid)


def test_rm_flag_leaves_nothing(md_run, bb):
    r = md_run.ok("run", "--rm", bb, "sh", "-c", "hostname")
    short = r.stdout.strip()
    assert short not in md_run.ok("ps", "-aq").stdout
    assert short not in Path("/proc/mounts").read_text()
    assert not [p for p in Path("/sys/fs/cgroup").glob(f"*/minidocker/{short}*")]
    assert not list((md_run.root / "containers").glob(f"{short}*"))


def test_exec_joins_every_namespace(md_run, bb):
    cid = md_run.ok("run", "-d", "-h", "execbox", bb, "sleep", "60").stdout.strip()
    r = md_run.ok(
        "exec",
        cid,
        "sh",
        "-c",
        "hostname; ps -o pid,comm | grep -c sleep; for n in ipc mnt net pid uts; do "
        "[ $(readlink /proc/self/ns/$n) = $(readlink /proc/1/ns/$n) ] && echo same; done",
    )
    lines = r.stdout.split()
    assert lines[0] == "execbox" and lines[1] == "1" and lines[2:] == ["same"] * 5
    assert md_run("exec", cid, "sh", "-c", "exit 7").returncode == 7
    assert md_run("exec", cid, "nosuch").returncode == 127
    assert md_run.ok("exec", "-u", "app", "-w", "/tmp", cid, "sh", "-c", "id -u; pwd").stdout.split() == [
        "1000",
        "/tmp",
    ]
    md_run.ok("rm", "-f", cid)
    assert md_run("exec", cid, "true").returncode != 0


def test_ten_containers_at_once(md_run, bb):
    procs = [md_run.popen("run", "-d", bb, "sleep", "60") for _ in range(10)]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids.append(out.strip())
    assert len(set(ids)) == 10
    rows = [json.loads(line) for line in md_run.ok("ps", "--no-trunc", "--format", "json").stdout.splitlines()]
    mine = [r for r in rows if r["ID"] in ids]
    assert len(mine) == 10 and all(r["State"] == "running" for r in mine)
    assert len({r["Names"] for r in mine}) == 10
    md_run.ok("rm", "-f", *ids)
    for cid in ids:
        assert_nothing_left(md_run, cid)


def test_killed_monitor_is_shown_truthfully(md_run, bb):
    cid = md_run.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    state = json.loads((md_run.root / "containers" / cid / "state.json").read_text())
    os.kill(state["MonitorPid"], signal.SIGKILL)  # a process this test's container has: its monitor
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        row = next(line for line in md_run.ok("ps", "-a").stdout.splitlines() if line.startswith(cid[:12]))
        if "Up " not in row:
            break
        time.sleep(0.1)
    assert "Exited (137)" in row
    # the container died with its monitor (PR_SET_PDEATHSIG): gone, or a zombie not yet reaped
    try:
        stat = Path(f"/proc/{state['Pid']}/stat").read_text()
        assert stat[stat.rindex(")") + 2] == "Z", stat
    except FileNotFoundError:
        pass
    md_run.ok("rm", cid)
    assert_nothing_left(md_run, cid)


def test_container_prune(md_run, bb):
    cid = md_run.ok("run", bb, "true").stdout.strip() or None
    running = md_run.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    r = md_run.ok("container", "prune", "-f")
    assert "Total reclaimed containers:" in r.stdout
    assert running[:12] in md_run.ok("ps", "-q").stdout
    assert cid is None
    md_run.ok("rm", "-f", running)


def test_start_attached_reruns_in_the_foreground(md_run, bb):
    first = md_run(
        "run",
        "--name",
        "again",
        bb,
        "sh",
        "-c",
        "echo run $(cat /count 2>/dev/null || echo 0); "
        "echo $(( $(cat /count 2>/dev/null || echo 0) + 1 )) > /count; exit 4",
    )
    assert first.returncode == 4 and first.stdout == "run 0\n"
    r = md_run("start", "-a", "again")
    assert r.returncode == 4 and r.stdout == "run 1\n"  # the upper dir kept the first run's write
    md_run.ok("rm", "again")


def test_init_reaps_orphans(md_run, bb):
    script = 'sh -c "sleep 0.2 &"; sleep 1; ps -o stat,comm | grep -c "^ *Z" || true'
    assert md_run.ok("run", "--rm", "--init", bb, "sh", "-c", script).stdout.strip() == "0"
    ps = md_run.ok("run", "--rm", "--init", bb, "ps", "-o", "pid,comm").stdout.split()
    assert ps[2] == "1" and ps[4] == "2"  # PID 1 is the init, the command is its child


def test_run_pulls_a_missing_image(md, registry):
    r = md.ok("run", "--rm", f"{registry.host}/busybox", "echo", "pulled")
    assert r.stdout == "pulled\n"
    assert f"Unable to find image '{registry.host}/busybox' locally" in r.stderr
    assert md.ok("images", "-q").stdout.strip()


def test_pause_and_unpause(md_run, bb):
    cid = md_run.ok(
        "run", "-d", bb, "sh", "-c", "while true; do date +%s%N > /tmp/tick; sleep 0.05; done"
    ).stdout.strip()
    upper = Path(json.loads(md_run.ok("inspect", cid).stdout)[0]["GraphDriver"]["Data"]["UpperDir"])
    time.sleep(0.3)
    md_run.ok("pause", cid)
    assert json.loads(md_run.ok("inspect", cid).stdout)[0]["State"]["Paused"] is True
    assert "(Paused)" in md_run.ok("ps").stdout
    frozen_tick = (upper / "tmp/tick").read_text()
    time.sleep(0.4)
    assert (upper / "tmp/tick").read_text() == frozen_tick  # no CPU while paused
    r = md_run("exec", cid, "true")
    assert r.returncode == 125 and "is paused" in r.stderr
    again = md_run("pause", cid)
    assert again.returncode == 1 and "already paused" in again.stderr
    md_run.ok("unpause", cid)
    time.sleep(0.4)
    assert (upper / "tmp/tick").read_text() != frozen_tick
    # a paused container can still be removed by force (thawed so that SIGKILL lands)
    md_run.ok("pause", cid)
    md_run.ok("rm", "-f", cid)
    assert_nothing_left(md_run, cid)


def test_info(md, registry):
    doc = json.loads(md.ok("info", "--format", "json").stdout)
    assert (doc["Containers"], doc["Images"], doc["Driver"]) == (0, 0, "overlay")
    md.ok("pull", "-q", f"{registry.host}/busybox")
    md.ok("run", "--name", "i1", f"{registry.host}/busybox", "true")
    doc = json.loads(md.ok("info", "--format", "json").stdout)
    assert (doc["Containers"], doc["ContainersStopped"], doc["Images"]) == (1, 1, 1)
    assert doc["CgroupVersion"] in ("1", "2") and "memory" in doc["CgroupControllers"]
    assert any(o.startswith("name=seccomp") for o in doc["SecurityOptions"])
    text = md.ok("info").stdout
    assert "Storage Driver: overlay" in text and f"Root Dir: {md.root}" in text


def test_rename_top_and_port(md_run, bb):
    name, new = f"before-{os.getpid()}", f"after-{os.getpid()}"
    cid = md_run.ok("run", "-d", "--name", name, bb, "sh", "-c", "sleep 60 & sleep 61").stdout.strip()
    md_run.ok("rename", name, new)
    assert json.loads(md_run.ok("inspect", new).stdout)[0]["Name"] == f"/{new}"
    assert md_run("inspect", name).returncode != 0
    taken = md_run.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    r = md_run("rename", taken, new)
    assert r.returncode == 125 and "already in use" in r.stderr
    top = md_run.ok("top", new).stdout.splitlines()
    assert top[0].split() == ["UID", "PID", "PPID", "CMD"]
    cmds = [line.split(None, 3)[3] for line in top[1:]]
    assert sorted(cmds) == ["sleep 60", "sleep 61"]  # (sh execs its last command: PID 1 is sleep 61)
    assert md_run.ok("port", new).stdout == ""  # --network none: nothing published
    md_run.ok("rm", "-f", cid, taken)
    r = md_run("top", taken)
    assert r.returncode == 125


def test_restart_policies(md_run, bb):
    # on-failure:2 - the first run and two restarts, then it stays down
    cid = md_run.ok("run", "-d", "--restart", "on-failure:2", bb, "sh", "-c", "echo ran; exit 3").stdout.strip()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        info = json.loads(md_run.ok("inspect", cid).stdout)[0]
        if info["RestartCount"] == 2 and not info["State"]["Running"]:
            break
        time.sleep(0.1)
    time.sleep(1.0)  # (it would have been restarted again by now)
    info = json.loads(md_run.ok("inspect", cid).stdout)[0]
    assert info["RestartCount"] == 2 and info["State"]["ExitCode"] == 3 and not info["State"]["Running"]
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert md_run.ok("logs", cid).stdout == "ran\nran\nran\n"
    # always: comes back after it exits, but not after stop
    cid2 = md_run.ok("run", "-d", "--restart", "always", bb, "sh", "-c", "sleep 0.3; exit 0").stdout.strip()
    deadline = time.monotonic() + 20
    while json.loads(md_run.ok("inspect", cid2).stdout)[0]["RestartCount"] < 2:
        assert time.monotonic() < deadline, "--restart always did not restart"
        time.sleep(0.1)
    md_run.ok("stop", "-t", "1", cid2)
    count = json.loads(md_run.ok("inspect", cid2).stdout)[0]["RestartCount"]
    time.sleep(1.5)
    after = json.loads(md_run.ok("inspect", cid2).stdout)[0]
    assert after["RestartCount"] == count and not after["State"]["Running"]
    r = md_run("run", "--rm", "--restart", "always", bb, "true")
    assert r.returncode == 125 and "Conflicting options" in r.stderr
    r = md_run("run", "-d", "--restart", "sometimes", bb, "true")
    assert r.returncode == 125 and "invalid restart policy" in r.stderr
    md_run.ok("rm", "-f", cid, cid2)
