"""The monitor of a detached container becomes a small watcher (runtime/watch.py) once the
container runs: the same process, a fresh interpreter without site packages or the runtime.
It still writes the log, serves attach, records the exit, restarts and removes."""

import json
import os
import time


def status_field(pid: int, name: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split()[1]
    raise AssertionError(f"{name} not in /proc/{pid}/status")


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except FileNotFoundError:  # (gone, and reaped)
        return b""


def monitor_of(md_run, cid: str) -> int:
    info = json.loads(md_run.ok("inspect", cid).stdout)[0]
    pid = int(status_field(info["State"]["Pid"], "PPid"))  # (no user namespace: the monitor is its parent)
    return pid


def test_the_monitor_is_a_small_watcher_while_the_container_runs(md_run, bb):
    cid = md_run.ok("run", "-d", "--network", "none", bb, "sh", "-c", "echo out; echo err >&2; sleep 30").stdout.strip()
    try:
        pid = monitor_of(md_run, cid)
        argv = cmdline(pid).split(b"\0")
        assert b"-S" in argv and any(b"minidocker.runtime.watch" in a for a in argv), argv
        anon_kib = int(status_field(pid, "RssAnon"))
        # the monitor that kept the whole runtime held 7.3 MB of anonymous memory; the watcher about 4.8
        assert anon_kib < 6 * 1024, f"the watcher holds {anon_kib} KiB of anonymous memory"
        targets = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        store = str(md_run.root)
        assert {t for t in targets if t.startswith(store)} == {f"{store}/containers/{cid}/container.log"}, targets
        deadline = time.monotonic() + 10
        while md_run.ok("logs", cid).stdout != "out\n" or md_run.ok("logs", cid).stderr != "err\n":
            assert time.monotonic() < deadline, "the watcher did not write the log"
            time.sleep(0.1)
        md_run.ok("kill", cid)
        assert md_run.ok("wait", cid).stdout.strip() == "137"  # (wait hears it from the console socket)
        info = json.loads(md_run.ok("inspect", cid).stdout)[0]
        assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 137
        deadline = time.monotonic() + 10  # (it tells wait first, then removes the cgroup and ends)
        while b"minidocker" in cmdline(pid):
            assert time.monotonic() < deadline, "the monitor outlived its container"
            time.sleep(0.05)
    finally:
        md_run("rm", "-f", cid)


def test_a_restarted_container_is_watched_again(md_run, bb):
    cid = md_run.ok("run", "-d", "--network", "none", "--restart", "on-failure:1", bb, "sh", "-c", "sleep 1; exit 3")
    cid = cid.stdout.strip()
    try:
        deadline = time.monotonic() + 20
        while True:  # the second run (restarted after the first exited 3)
            info = json.loads(md_run.ok("inspect", cid).stdout)[0]
            if info["RestartCount"] == 1 and info["State"]["Running"]:
                break
            assert time.monotonic() < deadline, "--restart on-failure:1 did not restart"
            time.sleep(0.02)
        argv = cmdline(monitor_of(md_run, cid))
        assert b"minidocker.runtime.watch" in argv  # its monitor is a watcher again
        assert md_run.ok("wait", cid).stdout.strip() == "3"
    finally:
        md_run("rm", "-f", cid)


def test_rm_removes_a_detached_container_after_its_watcher(md_run, bb):
    cid = md_run.ok("run", "-d", "--rm", "--network", "none", bb, "sh", "-c", "sleep 0.3").stdout.strip()
    deadline = time.monotonic() + 10
    while md_run("inspect", cid).returncode == 0:
        assert time.monotonic() < deadline, "--rm did not remove the detached container"
        time.sleep(0.05)
    assert not (md_run.root / "containers" / cid).exists()
