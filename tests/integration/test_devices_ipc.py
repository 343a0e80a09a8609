"""``--device``, ``--device-cgroup-rule`` and ``--ipc`` (issue #12), against the real kernel.

A device is reachable in a container only if two walls let it through: a node in its /dev,
and the device cgroup's rules. The tests pass host devices in (``/dev/null`` under another
name), make nodes inside with CAP_MKNOD that the cgroup must refuse, and open them again
with a rule that allows them. The IPC tests make a real SysV shared memory segment on the
host (``ipcmk``, util-linux) and look for it through the container's /proc/sysvipc/shm,
which shows the segments of the reader's own IPC namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.integration.conftest import one_error

# /dev/loop-control (c 10:237) is on this host and in none of docker's default rules


def inspect(md, name: str) -> dict:
    return json.loads(md.ok("inspect", name).stdout)[0]


def test_device_nodes_and_cgroup(md_run, bb):
    """The nodes passed are there as the host has them and usable; a node made inside that
    no rule allows is refused by the cgroup (EPERM), even to root with CAP_MKNOD."""
    if not os.path.exists("/dev/net/tun"):
        pytest.fail("/dev/net/tun is missing: load the tun module (modprobe tun)")
    script = (
        "stat -c '%t:%T %a %u:%g %F' /dev/mynull; echo hi > /dev/mynull && echo wrote;"
        "head -c 5 /dev/zero | wc -c; mknod /dev/ctl c 10 237 && echo made;"
        "(: < /dev/ctl) 2>&1 || echo refused; stat -c '%t:%T' /dev/tunnels/tun"
    )
    passed = ["--device", "/dev/null:/dev/mynull", "--device", "/dev/zero", "--device", "/dev/net:/dev/tunnels"]
    r = md_run.ok("run", "--rm", *passed, bb, "sh", "-c", script)
    lines = r.stdout.splitlines()
    host = os.stat("/dev/null")  # (the host's owner: root, unless something on the host changed it)
    assert lines[0] == f"1:3 666 {host.st_uid}:{host.st_gid} character special file"
    assert lines[1:4] == ["wrote", "5", "made"]
    assert "Operation not permitted" in lines[4] and lines[5] == "refused"
    assert lines[6] == "a:c8"  # a directory: every node under it (/dev/net/tun is c 10:200)


def test_device_read_only_permissions(md_run, bb):
    """``:r``: the cgroup allows opening the node to read and refuses a write (a device
    outside docker's defaults: /dev/null itself is always allowed rwm)."""
    script = "(: < /dev/lc) && echo read; (: > /dev/lc) 2>/dev/null || echo refused"
    r = md_run.ok("run", "--rm", "--device", "/dev/loop-control:/dev/lc:r", bb, "sh", "-c", script)
    assert r.stdout == "read\nrefused\n"
    r = md_run.ok("run", "--rm", "--device", "/dev/loop-control:/dev/lc:rw", bb, "sh", "-c", script)
    assert r.stdout == "read\n"  # (the write refused above was the rule's doing)


def test_device_cgroup_rule_allows_a_made_node(md_run, bb):
    """``--device-cgroup-rule`` makes no node, but lets one made inside be opened."""
    script = "test ! -e /dev/ctl && mknod /dev/ctl c 10 237 && : < /dev/ctl && echo opened"
    r = md_run.ok("run", "--rm", "--device-cgroup-rule", "c 10:* rw", bb, "sh", "-c", script)
    assert r.stdout == "opened\n"
    name = f"devrules-{os.getpid()}"
    md_run.ok("create", "--name", name, "--device", "/dev/null:/dev/n:rw", "--device-cgroup-rule", "c 10:237 r", bb)
    host_config = inspect(md_run, name)["HostConfig"]
    assert host_config["Devices"] == [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rw"}
    ]
    assert host_config["DeviceCgroupRules"] == ["c 10:237 r"]
    assert host_config["IpcMode"] == "private"  # docker's default


@pytest.fixture
def host_segment():
    """A SysV shared memory segment of the host's IPC namespace: its id, removed afterwards."""
    if shutil.which("ipcmk") is None:
        pytest.fail("ipcmk not found: install util-linux")
    out = subprocess.run(["ipcmk", "-M", "4096"], check=True, capture_output=True, text=True).stdout
    shmid = out.split(":")[-1].strip()  # "Shared memory id: 5"
    yield shmid
    subprocess.run(["ipcrm", "-m", shmid], check=False)


SHM_IDS = "awk 'NR>1 {print $2}' /proc/sysvipc/shm"


def test_ipc_host_and_private(md_run, bb, host_segment):
    """``--ipc host`` shares the host's IPC namespace (and binds its /dev/shm); the default
    namespace is a new, empty one."""
    script = f"readlink /proc/self/ns/ipc; {SHM_IDS}; grep -c ' /dev/shm ' /proc/self/mountinfo"
    r = md_run.ok("run", "--rm", "--ipc", "host", bb, "sh", "-c", script)
    ns, *ids, mounts = r.stdout.split()
    assert ns == os.readlink("/proc/self/ns/ipc") and host_segment in ids and mounts == "1"
    r = md_run.ok("run", "--rm", bb, "sh", "-c", f"readlink /proc/self/ns/ipc; {SHM_IDS}")
    assert r.stdout.split() != [] and r.stdout.split()[0] != ns and len(r.stdout.split()) == 1


def test_ipc_container_and_none(md_run, bb):
    """``container:X`` joins shareable X's IPC namespace and /dev/shm (a file X wrote there
    is seen); a private X is refused, as a stopped one, whose /dev/shm is unmounted from the
    host; ``none`` has a namespace of its own and no /dev/shm."""
    donor, private = f"ipcdonor-{os.getpid()}", f"ipcprivate-{os.getpid()}"
    md_run.ok("run", "-d", "--name", donor, "--ipc", "shareable", bb, "sleep", "60")
    md_run.ok("run", "-d", "--name", private, bb, "sleep", "60")
    pid = inspect(md_run, donor)["State"]["Pid"]
    theirs = os.readlink(f"/proc/{pid}/ns/ipc")
    assert inspect(md_run, donor)["HostConfig"]["IpcMode"] == "shareable"
    md_run.ok("exec", donor, "sh", "-c", "echo shared > /dev/shm/note")
    r = md_run.ok(
        "run", "--rm", "--ipc", f"container:{donor}", bb, "sh", "-c", "readlink /proc/self/ns/ipc; cat /dev/shm/note"
    )
    assert r.stdout == theirs + "\nshared\n"  # its namespace, and its /dev/shm
    r = md_run("run", "--rm", "--ipc", f"container:{private}", bb, "true")
    assert r.returncode == 125 and "non-shareable IPC" in r.stderr and one_error(r.stderr), r.stderr
    script = "readlink /proc/self/ns/ipc; test -e /dev/shm && echo shm; grep -c ' /dev/shm ' /proc/self/mountinfo"
    r = md_run("run", "--rm", "--ipc", "none", bb, "sh", "-c", script)
    ns, count = r.stdout.split()
    assert ns not in (theirs, os.readlink("/proc/self/ns/ipc")) and count == "0"  # (and no "shm" line)
    donor_id = inspect(md_run, donor)["Id"]
    with open("/proc/self/mountinfo") as f:
        assert f"/containers/{donor_id}/shm " in f.read()  # its /dev/shm, on the host's side
    md_run.ok("stop", "-t", "0", donor)
    r = md_run("run", "--rm", "--ipc", f"container:{donor}", bb, "true")
    assert r.returncode == 125 and "cannot join IPC of a non running container" in r.stderr, r.stderr
    gone = md_run.ok("run", "-d", "--ipc", "shareable", bb, "sleep", "60").stdout.strip()
    md_run.ok("rm", "-f", gone)  # running: its /dev/shm unmounted before its directory goes
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    assert f"/containers/{donor_id}/shm " not in mounts and f"/containers/{gone}/shm " not in mounts


BAD = [  # (flags, docker's words)
    (["--ipc", "bogus"], "--ipc: invalid IPC mode"),
    (["--ipc", "container:"], "--ipc: invalid IPC mode"),
    (["--ipc", "container:no-such-one"], "No such container: no-such-one"),
    (["--device", "/dev/null:dev/x"], 'argument "/dev/null:dev/x" for "--device" flag: dev/x is not an absolute path'),
    (["--device", "/dev/null:/x:rwx"], 'for "--device" flag: bad mode specified: rwx'),
    (["--device", "/dev/null:/x:r:w"], 'for "--device" flag: bad format for path: /dev/null:/x:r:w'),
    (["--device", ":/x"], 'for "--device" flag: bad format for path: :/x'),
    (["--device", "/etc/passwd"], 'information while adding custom device "/etc/passwd": not a device node'),
    (["--device", "/no/such"], 'adding custom device "/no/such": no such file or directory'),
    (["--device-cgroup-rule", "x 1:2 r"], "for \"--device-cgroup-rule\" flag: invalid device cgroup format 'x 1:2 r'"),
    (["--device-cgroup-rule", "c 1:2"], "invalid device cgroup format 'c 1:2'"),
    (["--device-cgroup-rule", "c 1:2 rwx"], "invalid device cgroup format 'c 1:2 rwx'"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "words"), BAD, ids=[" ".join(f) for f, _ in BAD])
def test_bad_values(md_run, bb, flags, words):
    before = md_run.ok("ps", "-aq").stdout
    r = md_run("run", "--rm", *flags, bb, "true")
    assert r.returncode == 125 and words in r.stderr and one_error(r.stderr), r.stderr
    assert md_run.ok("ps", "-aq").stdout == before  # nothing left half-made
