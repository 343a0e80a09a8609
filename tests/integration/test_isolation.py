"""The walls of a default container, tried from inside: each escape must fail. And the
resource limits, proven by the kernel's own counters."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

DOCKER_DEFAULT_CAPS = "00000000a80425fb"


def test_status_shows_capabilities_no_new_privs_and_seccomp(md_run, bb):
    status = md_run.ok("run", "--rm", bb, "cat", "/proc/self/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["CapBnd"] == DOCKER_DEFAULT_CAPS
    assert fields["CapEff"] == DOCKER_DEFAULT_CAPS and fields["CapPrm"] == DOCKER_DEFAULT_CAPS
    assert fields["CapAmb"] == "0000000000000000"
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"
    user = md_run.ok("run", "--rm", "-u", "app", bb, "cat", "/proc/self/status").stdout
    assert "CapEff:\t0000000000000000" in user and f"CapBnd:\t{DOCKER_DEFAULT_CAPS}" in user


def test_exec_gets_the_same_walls(md_run, bb):
    """A process started by ``exec`` must not have more power than the container's own."""
    cid = md_run.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    status = md_run.ok("exec", cid, "cat", "/proc/self/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["CapBnd"] == DOCKER_DEFAULT_CAPS and fields["CapEff"] == DOCKER_DEFAULT_CAPS
    assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2"
    r = md_run("exec", cid, "sh", "-c", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo ESCAPED")
    assert r.returncode != 0 and "ESCAPED" not in r.stdout
    r = md_run("exec", cid, "unshare", "-U", "true")
    assert r.returncode != 0
    user = md_run.ok("exec", "-u", "app", cid, "cat", "/proc/self/status").stdout
    assert "CapEff:\t0000000000000000" in user and "Seccomp:\t2" in user


def test_seccomp_program_is_compiled_once_and_cached(md_run, bb):
    cache = md_run.root / "cache" / "seccomp"
    md_run.ok("run", "--rm", bb, "true")
    entries = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.bpf")}
    assert entries, f"no compiled filter under {cache}"
    md_run.ok("run", "--rm", bb, "true")
    assert {p.name: p.stat().st_mtime_ns for p in cache.glob("*.bpf")} == entries  # reused, not rewritten
    # another capability set is another program (the profile's rules depend on the caps)
    md_run.ok("run", "--rm", "--cap-add", "SYS_ADMIN", bb, "true")
    assert len(list(cache.glob("*.bpf"))) == len(entries) + 1
    # a damaged entry is compiled again, and the filter still holds
    for p in cache.glob("*.bpf"):
        p.write_bytes(b"garbage")
    r = md_run("run", "--rm", bb, "sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true && echo ESCAPED")
    assert "Seccomp:\t2" in r.stdout and "ESCAPED" not in r.stdout
    assert any(p.read_bytes() != b"garbage" for p in cache.glob("*.bpf"))


ESCAPES = {
    "mount": "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m",
    "umount": "umount /proc",
    "pivot_root": "mkdir -p /tmp/new /tmp/new/old && pivot_root /tmp/new /tmp/new/old",
    "reboot": "reboot -f",
    "hostname via /proc/sys": "echo evil > /proc/sys/kernel/hostname",
    "sysrq-trigger": "echo h > /proc/sysrq-trigger",
    "mknod block device": "mknod /tmp/sda b 8 0",
    "load a module": "echo junk > /tmp/x.ko && insmod /tmp/x.ko",
    "new user namespace": "unshare -U true",
    "new mount namespace": "unshare -m true",
    "sethostname": "hostname evil",
    "set the clock": "date -s 2000-01-01 2>&1 | grep -q 'not permitted' || echo ESCAPED; false",  # busybox date exits 0
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_escape_fails(md_run, bb, name):
    before = os.uname().nodename
    r = md_run("run", "--rm", bb, "sh", "-c", f"{ESCAPES[name]} && echo ESCAPED")
    assert "ESCAPED" not in r.stdout, f"{name} succeeded inside a default container: {r.stderr}"
    assert r.returncode not in (0, 125), r.stderr  # the attempt ran, and failed
    assert os.uname().nodename == before


def test_kcore_and_keys_are_masked(md_run, bb):
    r = md_run.ok(
        "run",
        "--rm",
        bb,
        "sh",
        "-c",
        "for f in /proc/kcore /proc/keys /proc/timer_list; do [ -e $f ] && wc -c < $f || echo absent; done; "
        "find /proc/acpi /sys/firmware -mindepth 1 | wc -l",
    )
    sizes = r.stdout.split()
    assert all(s in ("0", "absent") for s in sizes[:3]), sizes  # /dev/null over them
    assert sizes[3] == "0"  # empty read-only tmpfs over the directories


def test_host_pids_invisible(md_run, bb):
    pids = md_run.ok("run", "--rm", bb, "sh", "-c", "ls /proc | grep -E '^[0-9]+$'").stdout.split()
    assert max(int(p) for p in pids) < 10 and str(os.getpid()) not in pids


def test_raw_sockets_follow_net_raw(md_run, bb):
    assert md_run("run", "--rm", bb, "ping", "-c", "1", "-W", "1", "127.0.0.1").returncode == 0
    r = md_run("run", "--rm", "--cap-drop", "NET_RAW", bb, "ping", "-c", "1", "-W", "1", "127.0.0.1")
    assert r.returncode != 0 and ("permission" in r.stderr.lower() or "not permitted" in r.stderr.lower())


def test_cap_add_and_privileged(md_run, bb):
    r = md_run.ok(
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        bb,
        "sh",
        "-c",
        "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo mounted",
    )
    assert r.stdout.strip() == "mounted"
    status = md_run.ok("run", "--rm", "--privileged", bb, "cat", "/proc/self/status").stdout
    assert "Seccomp:\t0" in status and "NoNewPrivs:\t0" in status
    assert int(status.split("CapEff:\t")[1].split()[0], 16) > int(DOCKER_DEFAULT_CAPS, 16)


def test_seccomp_unconfined_and_profile_file(md_run, bb, tmp_path):
    status = md_run.ok("run", "--rm", "--security-opt", "seccomp=unconfined", bb, "cat", "/proc/self/status").stdout
    assert "Seccomp:\t0" in status
    profile = tmp_path / "deny-getcwd.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
            }
        )
    )
    r = md_run("run", "--rm", "--security-opt", f"seccomp={profile}", bb, "sh", "-c", "/bin/pwd")
    assert r.returncode != 0
    r = md_run("run", "--rm", "--security-opt", "seccomp=/nonexistent.json", bb, "true")
    assert r.returncode == 125 and "seccomp profile" in r.stderr


def test_read_only_root_with_tmpfs(md_run, bb):
    r = md_run.ok(
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        bb,
        "sh",
        "-c",
        "echo ok > /scratch/f && cat /scratch/f; touch /etc/x 2>/dev/null || echo ro",
    )
    assert r.stdout.split() == ["ok", "ro"]


def test_memory_limit_oom_kill(md_run, bb):
    cid = md_run("run", "-d", "-m", "64m", bb, "sh", "-c", "head -c 200m /dev/zero | tail").stdout.strip()
    assert md_run.ok("wait", cid).stdout.strip() == "137"
    state = json.loads(md_run.ok("inspect", cid).stdout)[0]["State"]
    assert state["ExitCode"] == 137 and state["OOMKilled"] is True
    r = md_run("run", "--rm", "-m", "64m", bb, "sh", "-c", "head -c 200m /dev/zero | tail")
    assert r.returncode == 137


def test_pids_limit_contains_a_fork_bomb(md_run, bb):
    # the bomb runs in a child shell (a shell whose fork fails gives up); PID 1 stays to be seen
    cid = md_run.ok(
        "run",
        "-d",
        "--pids-limit",
        "50",
        bb,
        "sh",
        "-c",
        'sh -c "for i in \\$(seq 300); do sleep 30 & done" 2>/dev/null; exec sleep 30',
    ).stdout.strip()
    time.sleep(2)
    pids = Path(f"/sys/fs/cgroup/pids/minidocker/{cid}/pids.current")
    assert pids.exists(), "expected the cgroup v1 pids controller on this host"
    assert int(pids.read_text()) <= 50
    events = Path(f"/sys/fs/cgroup/pids/minidocker/{cid}/pids.events").read_text()
    assert int(events.split()[1]) > 0  # forks were refused
    assert os.fork  # the host can still fork
    md_run.ok("rm", "-f", cid)
    assert not pids.exists()


def test_cpus_quota_limits_a_busy_loop(md_run, bb):
    cid = md_run.ok("run", "-d", "--cpus", "0.5", bb, "sh", "-c", "while :; do :; done").stdout.strip()
    usage = Path(f"/sys/fs/cgroup/cpuacct/minidocker/{cid}/cpuacct.usage")
    time.sleep(0.5)
    u0, t0 = int(usage.read_text()), time.monotonic()
    time.sleep(5)
    u1, t1 = int(usage.read_text()), time.monotonic()
    ratio = (u1 - u0) / ((t1 - t0) * 1e9)
    md_run.ok("rm", "-f", cid)
    assert 0.35 <= ratio <= 0.6, f"the container used {ratio:.2f} of a core"


def test_stats_no_stream(md_run, bb):
    cid = md_run.ok("run", "-d", "-m", "64m", bb, "sleep", "30").stdout.strip()
    rows = [json.loads(line) for line in md_run.ok("stats", "--format", "json", cid).stdout.splitlines()]
    assert rows[0]["ID"] == cid and rows[0]["MemLimit"] == 64 * 1024 * 1024 and rows[0]["PIDs"] == 1
    table = md_run.ok("stats", "--no-stream", cid).stdout
    assert "MEM USAGE / LIMIT" in table and "67.1MB" in table
    md_run.ok("rm", "-f", cid)


def test_cgroup_removed_at_rm(md_run, bb):
    cid = md_run.ok("run", "-d", "--cpu-shares", "512", "--cpuset-cpus", "0", bb, "sleep", "30").stdout.strip()
    assert Path(f"/sys/fs/cgroup/cpu/minidocker/{cid}/cpu.shares").read_text().strip() == "512"
    assert Path(f"/sys/fs/cgroup/cpuset/minidocker/{cid}/cpuset.cpus").read_text().strip() == "0"
    md_run.ok("rm", "-f", cid)
    assert not list(Path("/sys/fs/cgroup").glob(f"*/minidocker/{cid}"))
