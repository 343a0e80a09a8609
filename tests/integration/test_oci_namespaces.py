"""minidocker-runc's namespaces beyond "a new one of each": a user namespace with the
bundle's own uid/gid maps (several ranges), a mount namespace joined by path, and a bundle
that lists none at all, whose mounts are made in ours and detached by ``delete``. Real
bundles, real processes, the kernel's own /proc/PID/ns links and mountinfo as the witnesses."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.test_oci_runtime import Runc, bundle, configure, podman, runc, unpack_busybox  # noqa: F401 (fixtures)

HOST_UID, HOST_GID = 8_000_000, 8_100_000  # outside the subuid blocks --userns=auto lends (provision.sh)


@pytest.fixture
def open_bundle(image_layouts):
    """A busybox bundle below a world-searchable directory: the container's root is a host
    user who must walk to its rootfs (pytest's own tmp dirs are root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="minidocker-ns-"))
    top.chmod(0o755)
    unpack_busybox(image_layouts["busybox"], top / "bundle" / "rootfs")
    (top / "bundle").chmod(0o755)
    yield top / "bundle"
    shutil.rmtree(top)


def edit(bundle: Path, change) -> dict:
    config = json.loads((bundle / "config.json").read_text())
    change(config)
    (bundle / "config.json").write_text(json.dumps(config))
    return config


def with_user_namespace(config: dict) -> None:
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [
        {"containerID": 0, "hostID": HOST_UID, "size": 1000},
        {"containerID": 1000, "hostID": HOST_UID + 5000, "size": 10},
    ]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_GID, "size": 2000}]


def share_all(config: dict) -> None:
    """No namespace of the container's own; nothing that needs one (runc refuses the same)."""
    config["linux"].update(namespaces=[], maskedPaths=[], readonlyPaths=[])
    config["root"]["readonly"] = False
    config.pop("hostname", None)


def host_ids(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = next(line for line in status if line.startswith("Uid:")).split()[1]
    gid = next(line for line in status if line.startswith("Gid:")).split()[1]
    return int(uid), int(gid)


def wait_for(predicate, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_user_namespace_gets_the_bundles_id_maps(open_bundle, runc):
    """Two uid ranges and a gid range, written as the namespace's maps; root inside is host
    uid HOST_UID outside, and the image's files (host root's) show as nobody."""
    configure(open_bundle, runc, ["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u /bin/sh"])
    edit(open_bundle, with_user_namespace)
    r = runc("run", "--bundle", str(open_bundle), "u1")
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stdout.splitlines()]
    assert lines == [
        ["0", str(HOST_UID), "1000"],
        ["1000", str(HOST_UID + 5000), "10"],
        ["0", str(HOST_GID), "2000"],
        ["0"],
        ["65534"],
    ], r.stdout


def test_a_user_namespace_containers_lifecycle(open_bundle, runc, tmp_path):
    """state's pid is the container's PID 1 (in the new user namespace, a host uid outside),
    not the helper that made it; exec joins it; kill ends it; run passes its exit code on."""
    configure(open_bundle, runc, ["sleep", "60"])
    edit(open_bundle, with_user_namespace)
    runc.ok("create", "--bundle", str(open_bundle), "--pid-file", str(tmp_path / "pid"), "u1")
    st = runc.state("u1")
    assert st["status"] == "created" and st["pid"] == int((tmp_path / "pid").read_text())
    pid = st["pid"]
    assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
    assert host_ids(pid) == (HOST_UID, HOST_GID)
    runc.ok("start", "u1")
    assert runc.state("u1")["status"] == "running"
    r = runc.ok("exec", "u1", "sh", "-c", "id -u; cat /proc/self/uid_map | wc -l")
    assert r.stdout.split() == ["0", "2"], r.stdout
    runc.ok("kill", "u1", "KILL")
    wait_for(lambda: runc.state("u1")["status"] == "stopped", "the container to stop")
    runc.ok("delete", "u1")
    (open_bundle / "config.json").unlink()
    configure(open_bundle, runc, ["sh", "-c", "exit 7"])
    edit(open_bundle, with_user_namespace)
    assert runc("run", "--bundle", str(open_bundle), "u2").returncode == 7


def test_the_mount_namespace_joined_by_path(bundle, runc):
    """A mount namespace the test made (unshare --mount): PID 1 is in it, the container's
    root is its bundle's rootfs there, and the host's mount namespace gains no mount."""
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "60"])
    try:
        ns = f"/proc/{holder.pid}/ns/mnt"
        wait_for(lambda: os.readlink(ns) != os.readlink("/proc/self/ns/mnt"), "unshare's mount namespace")
        configure(bundle, runc, ["sleep", "60"])
        edit(bundle, lambda c: c["linux"]["namespaces"].__setitem__(
            slice(None), [n for n in c["linux"]["namespaces"] if n["type"] != "mount"] + [{"type": "mount", "path": ns}]
        ))  # fmt: skip
        before = Path("/proc/self/mountinfo").read_text().count(str(bundle))
        runc.ok("create", "--bundle", str(bundle), "m1")
        pid = runc.state("m1")["pid"]
        assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink(ns)
        assert Path(f"/proc/{pid}/root/bin/busybox").exists()
        assert Path("/proc/self/mountinfo").read_text().count(str(bundle)) == before
        runc.ok("delete", "--force", "m1")
    finally:
        holder.kill()
        holder.wait()


def test_a_bundle_without_namespaces_shares_ours_and_delete_detaches_its_mounts(bundle, runc):
    """No namespace listed: PID 1 is in every one of ours; its /proc, /dev and /sys are
    mounted in our mount namespace below the rootfs (and it is chrooted there); exec enters
    the same root; delete leaves no mount below the rootfs."""
    (bundle / "rootfs" / "marker").write_text("inside\n")
    configure(bundle, runc, ["sleep", "60"])

    edit(bundle, share_all)
    runc.ok("create", "--bundle", str(bundle), "h1")
    pid = runc.state("h1")["pid"]
    for kind in ("mnt", "pid", "net", "ipc", "uts", "cgroup", "user"):
        assert os.readlink(f"/proc/{pid}/ns/{kind}") == os.readlink(f"/proc/self/ns/{kind}"), kind
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    rootfs = str(bundle / "rootfs")
    assert {rootfs, f"{rootfs}/proc", f"{rootfs}/dev", f"{rootfs}/sys"} <= set(mounts)
    assert os.readlink(f"/proc/{pid}/root") == rootfs
    runc.ok("start", "h1")
    r = runc.ok("exec", "h1", "sh", "-c", "cat /marker; hostname")
    assert r.stdout.split() == ["inside", socket.gethostname()], r.stdout
    runc.ok("delete", "--force", "h1")
    left = [m for m in Path("/proc/self/mountinfo").read_text().splitlines() if rootfs in m]
    assert left == []


def test_a_bundle_without_namespaces_that_fails_leaves_no_mount(bundle, runc):
    """PID 1 fails after it mounted /proc and /dev in our namespace (its command is
    missing): create fails, and the mounts go with the container."""
    configure(bundle, runc, ["/no/such/program"])

    edit(bundle, share_all)
    r = runc("run", "--bundle", str(bundle), "h2")
    assert r.returncode == 127, r.stderr
    assert [m for m in Path("/proc/self/mountinfo").read_text().splitlines() if str(bundle) in m] == []


def test_podman_uidmap_runs_through_it(podman):
    """podman --uidmap/--gidmap hands the ranges to the runtime as uidMappings/gidMappings:
    the container's root is host uid 8200000, and its exit code comes back."""
    r = podman(
        "run", "--rm", "--network", "none", "--uidmap", "0:8200000:65536", "--gidmap", "0:8200000:65536",
        "localhost/busybox", "sh", "-c", "cat /proc/self/uid_map; id -u; touch /made-by-root; exit 4",
    )  # fmt: skip
    assert r.returncode == 4, r.stderr
    assert [line.split() for line in r.stdout.splitlines()] == [["0", "8200000", "65536"], ["0"]], r.stdout
