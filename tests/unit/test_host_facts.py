"""What ``top`` and ``info`` read from the kernel (linux/procfs.py, linux/host.py,
linux/cgroups): against real processes and the real host, and a temp dir laid out like
/sys/fs/cgroup for the two cgroup versions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minidocker.linux import cgroups, host, procfs


def test_read_process_sees_a_childs_parent_user_and_arguments():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "two words"], stdin=subprocess.PIPE)
    expected = f"{sys.executable} -c import sys; sys.stdin.read() two words"
    try:
        for _ in range(200):  # until the child's execve is done (before it, /proc shows our own command)
            p = procfs.read_process(child.pid)
            if p is not None and p.command == expected:
                break
            time.sleep(0.01)
    finally:
        child.communicate(b"")
    assert p == procfs.Process(child.pid, os.getpid(), os.getuid(), expected)


def test_a_process_with_parentheses_in_its_name_keeps_its_fields(tmp_path):
    exe = tmp_path / "odd) (name"
    exe.symlink_to("/bin/sleep")
    child = subprocess.Popen([str(exe), "30"])
    try:
        for _ in range(200):  # until the child's execve is done (before it, /proc shows our Python)
            p = procfs.read_process(child.pid)
            if p is not None and p.command == f"{exe} 30":
                break
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    assert (p.ppid, p.command) == (os.getpid(), f"{exe} 30")


def test_a_zombie_shows_its_comm_and_a_reaped_process_is_none():
    child = subprocess.Popen(["/bin/sleep", "0"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    assert procfs.read_process(child.pid).command == "sleep"  # a zombie's cmdline is empty
    child.wait()
    assert procfs.read_process(child.pid) is None


def test_host_facts_match_uname_and_nproc():
    uname = subprocess.run(["uname", "-rm"], capture_output=True, text=True, check=True).stdout.split()
    nproc = subprocess.run(["nproc", "--all"], capture_output=True, text=True, check=True).stdout.strip()
    assert [host.kernel_release(), host.architecture()] == uname
    assert host.cpu_count() == int(nproc)
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    meminfo_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    assert host.memory_total() == meminfo_kib * 1024  # both are sysinfo(2)'s totalram


def test_user_name_from_passwd_or_the_number():
    assert host.user_name(0) == "root"
    assert host.user_name(65534) == "nobody"
    assert host.user_name(1234567) == "1234567"


def test_v1_controllers_are_the_hierarchies_with_tasks(tmp_path):
    for name in ("memory", "pids", "cpu", "systemd"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tasks").write_text("")
    (tmp_path / "unified").mkdir()  # a hybrid host's empty v2 mount: no tasks file
    assert cgroups.controllers(1, str(tmp_path)) == ["cpu", "memory", "pids"]


def test_v2_controllers_are_the_roots_list(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    assert cgroups.controllers(2, str(tmp_path)) == ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"]


def test_this_hosts_controllers_include_memory_and_pids():
    assert {"memory", "pids"} <= set(cgroups.controllers(cgroups.version()))


@pytest.mark.parametrize("version", [1, 2])
def test_a_missing_cgroup_root_is_an_oserror_naming_it(tmp_path, version):
    with pytest.raises(OSError) as e:
        cgroups.controllers(version, str(tmp_path / "nothing"))
    assert "nothing" in str(e.value.filename)
