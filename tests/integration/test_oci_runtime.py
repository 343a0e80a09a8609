"""minidocker-runc (minidocker/oci/) against the real kernel: a bundle unpacked from the
busybox image, driven through create, state, start, kill and delete by real processes, as
podman's conmon and containerd's shim drive runc; then podman itself driving it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import one_error

WORKTREE = Path(__file__).resolve().parents[2]
RUNC = [sys.executable, "-m", "minidocker.oci"]


def unpack_busybox(layout: Path, rootfs: Path) -> None:
    """The image's one layer, untarred: a bundle's rootfs is a plain directory."""
    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"].removeprefix("sha256:")).read_text())
    rootfs.mkdir(parents=True)
    for layer in manifest["layers"]:
        blob = blobs / layer["digest"].removeprefix("sha256:")
        subprocess.run(["tar", "-C", str(rootfs), "-xf", str(blob)], check=True)


class Runc:
    def __init__(self, root: Path):
        self.root = root

    def __call__(self, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """A command's result. ``create`` hands its stdio to the container's process, which
        outlives it: a pipe would stay open after create exits, so files it is (as conmon's)."""
        env = dict(os.environ, PYTHONPATH=str(WORKTREE))
        cmd = [*RUNC, "--root", str(self.root), *args]
        if "create" not in args:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)
        out = self.root.parent / "create.out"
        err = self.root.parent / "create.err"
        with out.open("w") as o, err.open("w") as e:
            r = subprocess.run(cmd, stdout=kw.pop("stdout", o), stderr=e, text=True, timeout=timeout, env=env, **kw)
        return subprocess.CompletedProcess(cmd, r.returncode, out.read_text(), err.read_text())

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        r = self(*args, **kw)
        assert r.returncode == 0, f"minidocker-runc {' '.join(args)} exited {r.returncode}:\n{r.stderr}"
        return r

    def state(self, cid: str) -> dict:
        return json.loads(self.ok("state", cid).stdout)


@pytest.fixture
def bundle(tmp_path, image_layouts):
    b = tmp_path / "bundle"
    unpack_busybox(image_layouts["busybox"], b / "rootfs")
    return b


@pytest.fixture
def runc(tmp_path):
    r = Runc(tmp_path / "state")
    yield r
    for d in r.root.glob("*") if r.root.exists() else []:
        r("delete", "--force", d.name)


def configure(bundle: Path, runc: Runc, args: list[str], **process) -> None:
    runc.ok("spec", "--bundle", str(bundle))
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(args=args, terminal=False, **process)
    (bundle / "config.json").write_text(json.dumps(config))


def test_run_returns_the_exit_code_and_removes_the_container(bundle, runc):
    configure(bundle, runc, ["sh", "-c", "echo hi from $(hostname); exit 3"])
    r = runc("run", "--bundle", str(bundle), "c1")
    assert (r.returncode, r.stdout) == (3, "hi from minidocker\n"), r.stderr
    assert not (runc.root / "c1").exists()


def test_the_user_and_its_additional_gids_are_exact(bundle, runc):
    """process.user is numeric: the groups are additionalGids, not the image's /etc/group."""
    configure(bundle, runc, ["sh", "-c", "id -u; id -g; grep ^Groups: /proc/self/status"])
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 100]}
    (bundle / "config.json").write_text(json.dumps(config))
    r = runc("run", "--bundle", str(bundle), "c1")
    assert (r.returncode, r.stdout.split()) == (0, ["1000", "1001", "Groups:", "5", "100"]), r.stderr


def test_create_waits_until_start(bundle, runc, tmp_path):
    out = tmp_path / "out"
    configure(bundle, runc, ["sh", "-c", "echo started; exec sleep 60"])
    with out.open("w") as f:
        runc.ok("create", "--bundle", str(bundle), "--pid-file", str(tmp_path / "pid"), "c1", stdout=f)
    pid = int((tmp_path / "pid").read_text())
    st = runc.state("c1")
    assert (st["status"], st["pid"], st["bundle"], st["id"]) == ("created", pid, str(bundle), "c1")
    assert st["ociVersion"] and st["annotations"] == {}
    time.sleep(0.2)
    assert out.read_text() == ""  # the user's program has not run
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    runc.ok("start", "c1")
    assert runc.state("c1")["status"] == "running"
    deadline = time.monotonic() + 10
    while out.read_text() != "started\n" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert out.read_text() == "started\n"
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    r = runc("delete", "c1")
    assert r.returncode == 125 and one_error(r.stderr) and "not stopped: running" in r.stderr
    runc.ok("kill", "c1", "KILL")
    deadline = time.monotonic() + 10
    while runc.state("c1")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runc.state("c1")["status"] == "stopped"
    runc.ok("delete", "c1")
    assert not (runc.root / "c1").exists()
    r = runc("state", "c1")
    assert r.returncode == 125 and one_error(r.stderr) and "does not exist" in r.stderr


def test_kill_by_number_and_delete_force_of_a_created_container(bundle, runc, tmp_path):
    configure(bundle, runc, ["sleep", "60"])
    runc.ok("create", "--bundle", str(bundle), "--pid-file", str(tmp_path / "pid"), "c1")
    runc.ok("kill", "c1", "0")  # signal 0: only whether it is there
    assert runc.state("c1")["status"] == "created"
    runc.ok("delete", "--force", "c1")
    pid = int((tmp_path / "pid").read_text())
    assert not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[-1][:3]
    assert not (runc.root / "c1").exists()


def test_a_failing_step_fails_create_and_leaves_nothing(bundle, runc):
    configure(bundle, runc, ["true"], cwd="/etc/passwd/x")
    r = runc("create", "--bundle", str(bundle), "c1")
    assert r.returncode == 125 and one_error(r.stderr) and "make_workdir" in r.stderr, r.stderr
    assert not (runc.root / "c1").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--systemd-cgroup", "state", "c1"], "--systemd-cgroup is not supported"),
        (["create", "--no-pivot", "c1"], "--no-pivot is not supported"),
        (["kill", "c1", "NOSUCH"], "Invalid signal"),
        (["start", "c1"], "container c1 does not exist"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_error_line(runc, args, words):
    r = runc(*args)
    assert r.returncode == 125 and one_error(r.stderr) and words in r.stderr, r.stderr


def test_an_unsupported_field_is_refused(bundle, runc):
    configure(bundle, runc, ["true"])
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["apparmorProfile"] = "unconfined"
    (bundle / "config.json").write_text(json.dumps(config))
    r = runc("--log", str(bundle / "log"), "--log-format", "json", "create", "--bundle", str(bundle), "c1")
    want = "process.apparmorProfile is not supported yet"
    assert r.returncode == 125 and one_error(r.stderr) and want in r.stderr
    assert json.loads((bundle / "log").read_text())["msg"] == want


def test_features_and_spec(runc, tmp_path):
    features = json.loads(runc.ok("features").stdout)
    assert "pid" in features["linux"]["namespaces"] and not features["linux"]["cgroup"]["systemd"]
    runc.ok("spec", "--bundle", str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["process"]["args"] == ["sh"]
    r = runc("spec", "--bundle", str(tmp_path))
    assert r.returncode == 125 and one_error(r.stderr) and "exists" in r.stderr


# -- podman driving minidocker-runc ------------------------------------------------------------


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    """podman with a private store and configuration (tests/support/podman.py), busybox
    loaded from the cached OCI layout (nothing is pulled), minidocker-runc as its runtime
    through a wrapper that runs this worktree's code."""
    from tests.support.podman import podman_sandbox

    conf = tmp_path_factory.mktemp("podman")
    runtime = conf / "minidocker-runc"
    state = conf / "runc-state"  # (not the default /run/minidocker-runc: the test's own)
    command = f'exec {sys.executable} -m minidocker.oci --root {state} "$@"'
    runtime.write_text(f"#!/bin/sh\nPYTHONPATH={WORKTREE} {command}\n")
    runtime.chmod(0o755)
    with podman_sandbox(conf, str(runtime), prefix="mdr-") as run:
        archive = conf / "busybox.tar"
        subprocess.run(["tar", "-C", "/var/cache/minidocker/images/busybox", "-cf", str(archive), "."], check=True)
        loaded = run("load", "-q", "-i", str(archive))
        assert loaded.returncode == 0, loaded.stderr
        assert run("tag", loaded.stdout.split()[-1], "localhost/busybox:latest").returncode == 0
        yield run


def test_podman_runs_a_container_with_it(podman):
    r = podman("run", "--rm", "--network", "none", "localhost/busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr


def test_podman_gets_the_exit_code(podman):
    r = podman("run", "--rm", "--network", "none", "localhost/busybox", "sh", "-c", "exit 7")
    assert r.returncode == 7, r.stderr


def test_podman_detached_logs_stop_and_rm(podman):
    script = "trap 'exit 3' TERM; echo up; while :; do sleep 0.1; done"  # (PID 1 gets only the signals it handles)
    r = podman("run", "-d", "--name", "d1", "--network", "none", "localhost/busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while podman("logs", "d1").stdout != "up\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert podman("logs", "d1").stdout == "up\n"
    assert podman("inspect", "-f", "{{.State.Status}}", "d1").stdout.strip() == "running"
    assert podman("stop", "-t", "5", "d1").returncode == 0
    assert podman("inspect", "-f", "{{.State.ExitCode}}", "d1").stdout.strip() == "3"  # SIGTERM reached the trap
    assert podman("rm", "d1").returncode == 0


def test_podman_t_gets_a_pty_through_the_console_socket(podman):
    """``-t``: conmon passes --console-socket; PID 1's pty master is sent there (SCM_RIGHTS)."""
    r = podman("run", "--rm", "-t", "--network", "none", "localhost/busybox", "sh", "-c", "tty; exit 4")
    assert (r.returncode, r.stdout) == (4, "/dev/pts/0\n"), r.stderr  # (the pty's \r\n, as text mode reads it)


def test_runc_specs_default_bundle_runs(bundle, runc):
    """The config.json ``runc spec`` writes (ambient capabilities, inheritable, its masked
    paths) is one this runtime honours whole."""
    import shutil

    if shutil.which("runc") is None:
        pytest.fail("runc is not installed: apt-get install runc")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(args=["sh", "-c", "cat /proc/self/status | grep CapEff; exit 5"], terminal=False)
    (bundle / "config.json").write_text(json.dumps(config))
    r = runc("run", "--bundle", str(bundle), "c1")
    # CAP_AUDIT_WRITE (29), CAP_NET_BIND_SERVICE (10), CAP_KILL (5): what runc spec keeps
    assert (r.returncode, r.stdout) == (5, "CapEff:\t0000000020000420\n"), r.stderr


def test_the_bundles_seccomp_profile_and_limits_apply(bundle, runc):
    """linux.seccomp in the spec's form, compiled by linux/seccomp.py; linux.resources.pids
    written to the container's cgroup (cgroupsPath's PARENT/NAME)."""
    configure(bundle, runc, ["sh", "-c", "mkdir /tmp/x || echo refused; cat /sys/fs/cgroup/pids/pids.max"])
    config = json.loads((bundle / "config.json").read_text())
    config["root"]["readonly"] = False
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    config["linux"]["resources"]["pids"] = {"limit": 42}
    config["linux"]["cgroupsPath"] = "/minidocker-runc-test/c1"
    (bundle / "config.json").write_text(json.dumps(config))
    runc.ok("create", "--bundle", str(bundle), "c1")
    max_file = next(Path("/sys/fs/cgroup").glob("pids/minidocker-runc-test/c1/pids.max"), None)
    assert max_file is not None and max_file.read_text() == "42\n"
    runc.ok("start", "c1")
    deadline = time.monotonic() + 10
    while runc.state("c1")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    runc.ok("delete", "c1")
    # (its stdout: create's); /sys/fs/cgroup/pids is its own cgroup (rootfs.mount_cgroups)
    assert (runc.root.parent / "create.out").read_text().splitlines() == ["refused", "42"]
    assert not any(Path("/sys/fs/cgroup").glob("*/minidocker-runc-test"))  # delete removed it, and its parent


def test_kill_all_signals_every_process(bundle, runc, tmp_path):
    configure(bundle, runc, ["sh", "-c", "sleep 60 & sleep 60 & wait"])
    runc.ok("create", "--bundle", str(bundle), "c1")
    runc.ok("start", "c1")
    time.sleep(0.3)
    runc.ok("kill", "--all", "c1", "SIGKILL")
    deadline = time.monotonic() + 10
    while runc.state("c1")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runc.state("c1")["status"] == "stopped"
    runc.ok("delete", "c1")


def test_a_command_that_is_not_there_exits_127_after_start(bundle, runc):
    """The command is looked up after ``start`` (create has exited): the failure is PID 1's
    exit code, 127, and its report goes to the container's stderr."""
    configure(bundle, runc, ["nosuch"])
    r = runc("run", "--bundle", str(bundle), "c1")
    assert r.returncode == 127 and 'exec: \\"nosuch\\": executable file not found' in r.stderr, r.stderr


def test_podmans_cgroup_mount_shows_the_containers_own_cgroup_read_only(podman):
    script = "cat /sys/fs/cgroup/pids/pids.max; echo 1 > /sys/fs/cgroup/pids/pids.max || echo refused"
    r = podman("run", "--rm", "--network", "none", "--pids-limit", "77", "localhost/busybox", "sh", "-c", script)
    assert (r.returncode, r.stdout) == (0, "77\nrefused\n"), r.stderr


def test_podman_exec_pause_kill_pass_through(podman):
    """``podman exec`` (conmon runs ``exec --detach --process``), with -t through the console
    socket; ``pause``/``unpause`` (state paused); ``kill``; exit codes as the process's."""
    r = podman("run", "-d", "--name", "e1", "--network", "none", "localhost/busybox", "sleep", "600")
    assert r.returncode == 0, r.stderr
    script = '[ "$(readlink /proc/1/ns/mnt)" = "$(readlink /proc/self/ns/mnt)" ] && cat /proc/1/comm; exit 9'
    r = podman("exec", "e1", "sh", "-c", script)
    assert (r.returncode, r.stdout) == (9, "sleep\n"), r.stderr  # (the container's namespaces: its PID 1 is sleep)
    r = podman("exec", "-t", "e1", "sh", "-c", "tty; exit 5")
    assert (r.returncode, r.stdout) == (5, "/dev/pts/0\n"), r.stderr
    r = podman("exec", "-it", "e1", "sh", "-c", "read line; echo got $line", input="typed\n")
    assert r.returncode == 0 and "got typed" in r.stdout, r.stderr
    assert podman("exec", "e1", "nosuch").returncode == 127
    assert podman("pause", "e1").returncode == 0
    assert podman("inspect", "-f", "{{.State.Status}}", "e1").stdout.strip() == "paused"
    assert podman("unpause", "e1").returncode == 0
    assert podman("inspect", "-f", "{{.State.Status}}", "e1").stdout.strip() == "running"
    assert podman("exec", "e1", "true").returncode == 0
    assert podman("kill", "e1").returncode == 0
    deadline = time.monotonic() + 15
    while podman("inspect", "-f", "{{.State.Status}}", "e1").stdout.strip() != "exited" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert podman("inspect", "-f", "{{.State.ExitCode}}", "e1").stdout.strip() == "137"
    assert podman("rm", "e1").returncode == 0


def test_mounts_of_every_kind_with_their_options(bundle, runc, tmp_path):
    """A bundle's mounts, made in the container with its options as flags and data: seen in
    the container's own /proc/self/mountinfo."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("from the host\n")
    configure(bundle, runc, ["sh", "-c", "cat /b/f; grep -E ' /(t|b|mq|p2) ' /proc/self/mountinfo; touch /b/x"])
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"] += [
        {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["noexec", "strictatime", "mode=700"]},
        {"destination": "/b", "type": "bind", "source": str(src), "options": ["bind", "ro", "nosuid", "nodev"]},
        {"destination": "/mq", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "nodev", "noexec"]},
        {"destination": "/p2", "type": "proc", "source": "proc", "options": ["nosuid", "nodev", "noexec"]},
    ]
    (bundle / "config.json").write_text(json.dumps(config))
    r = runc("run", "--bundle", str(bundle), "c1")
    out = r.stdout.splitlines()
    assert r.returncode == 1 and out[0] == "from the host" and "Read-only file system" in r.stderr, (r.stdout, r.stderr)
    mounts = {line.split()[4]: line.split() for line in out[1:]}
    assert set(mounts) == {"/t", "/b", "/mq", "/p2"}, out
    t = mounts["/t"]
    assert "noexec" in t[5] and "mode=700" in t[-1] and t[-3] == "tmpfs", t
    assert "relatime" not in t[5], "strictatime was not applied"
    assert {"ro", "nosuid", "nodev"} <= set(mounts["/b"][5].split(",")), mounts["/b"]
    assert mounts["/mq"][-3] == "mqueue" and mounts["/p2"][-3] == "proc"
    assert not (src / "x").exists()


def test_linux_devices_are_made_and_allowed(bundle, runc):
    """linux.devices: the node made with its type, numbers, mode and owner, and allowed by
    the device cgroup (/dev/zero's numbers under another name can be read); a fifo too."""
    script = "stat -c '%F %t:%T %a %u:%g' /dev/myzero /dev/myfifo; head -c 4 /dev/myzero | od -An -tx1"
    configure(bundle, runc, ["sh", "-c", script])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["devices"] = [
        {"path": "/dev/myzero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o604, "uid": 7, "gid": 8},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o600},
    ]
    (bundle / "config.json").write_text(json.dumps(config))
    r = runc("run", "--bundle", str(bundle), "c1")
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines, (r.stdout, r.stderr)
    assert lines[0] == "character special file 1:5 604 7:8", (lines, r.stderr)
    assert lines[1].startswith("fifo") and " 600 0:0" in lines[1], (lines, r.stderr)
    assert lines[2].split() == ["00"] * 4


@pytest.mark.parametrize(("propagation", "field"), [("shared", "shared:"), ("unbindable", "unbindable"), ("", "")])
def test_rootfs_propagation_is_the_roots(bundle, runc, propagation, field):
    """linux.rootfsPropagation: the root mount's optional fields in the container's mountinfo
    (shared: a peer group of the container's own; unbindable; none: private)."""
    configure(bundle, runc, ["sh", "-c", "awk '$5 == \"/\"' /proc/self/mountinfo"])
    config = json.loads((bundle / "config.json").read_text())
    if propagation:
        config["linux"]["rootfsPropagation"] = propagation
    (bundle / "config.json").write_text(json.dumps(config))
    r = runc("run", "--bundle", str(bundle), "c1")
    assert r.returncode == 0 and r.stdout, r.stderr
    optional = r.stdout.split(" - ")[0].split()[6:]
    assert [f for f in optional if f.startswith(field)] if field else optional == [], r.stdout
    assert not any(f.startswith("master:") for f in optional), "the host's mounts would propagate in"


def cap_masks(status: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split()[1], 16) for line in status.splitlines() if line.startswith("Cap")}


@pytest.mark.parametrize("uid", [0, 1000])
def test_each_capability_set_is_what_the_bundle_says(bundle, runc, uid):
    """process.capabilities, set by set, in the container's /proc/self/status: for root the
    inheritable set too; for a user the ambient set, which execve carries into effective."""
    configure(bundle, runc, ["grep", "^Cap", "/proc/self/status"])
    config = json.loads((bundle / "config.json").read_text())
    kill, chown, net_raw = 1 << 5, 1 << 0, 1 << 13
    config["process"]["user"] = {"uid": uid, "gid": uid}
    config["process"]["capabilities"] = {
        "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "effective": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"],
    }
    (bundle / "config.json").write_text(json.dumps(config))
    r = runc("run", "--bundle", str(bundle), "c1")
    assert r.returncode == 0, r.stderr
    caps = cap_masks(r.stdout)
    assert caps["CapBnd"] == kill | chown | net_raw and caps["CapInh"] == kill and caps["CapAmb"] == kill, caps
    if uid:  # execve: P' = E' = the ambient set, without file capabilities
        assert caps["CapPrm"] == caps["CapEff"] == kill, caps
    else:  # as given (no_new_privs, the default bundle's, keeps execve from raising root's to the bounding set)
        assert caps["CapPrm"] == caps["CapEff"] == kill | chown, caps


def test_oom_score_adj_is_the_processs(bundle, runc):
    configure(bundle, runc, ["cat", "/proc/self/oom_score_adj"], oomScoreAdj=345)
    r = runc("run", "--bundle", str(bundle), "c1")
    assert (r.returncode, r.stdout) == (0, "345\n"), r.stderr


def test_namespaces_joined_by_path(bundle, runc):
    """linux.namespaces with a path (a Kubernetes pod's containers join its sandbox's so):
    the container's network, UTS, IPC and PID namespaces are the holder's, which the test made."""
    holder = subprocess.Popen(["unshare", "--net", "--uts", "--ipc", "--pid", "--fork", "--kill-child", "sleep", "60"])
    try:
        ns = f"/proc/{holder.pid}/ns"
        for _ in range(200):  # until unshare has made them (its own links change) and forked
            # (pid_for_children reads as missing until the new PID namespace has its PID 1)
            if os.readlink(f"{ns}/net") != os.readlink("/proc/self/ns/net") and os.path.exists(
                f"{ns}/pid_for_children"
            ):
                break
            time.sleep(0.01)
        want = {k: os.readlink(f"{ns}/{k}") for k in ("net", "uts", "ipc", "pid_for_children")}
        configure(bundle, runc, ["sh", "-c", "for k in net uts ipc pid; do readlink /proc/self/ns/$k; done"])
        config = json.loads((bundle / "config.json").read_text())
        paths = {"network": "net", "uts": "uts", "ipc": "ipc", "pid": "pid_for_children"}
        config["linux"]["namespaces"] = [{"type": "mount"}, {"type": "cgroup"}] + [
            {"type": kind, "path": f"{ns}/{name}"} for kind, name in paths.items()
        ]
        (bundle / "config.json").write_text(json.dumps(config))
        r = runc("run", "--bundle", str(bundle), "c1")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == [want["net"], want["uts"], want["ipc"], want["pid_for_children"]], (r.stdout, want)
        config["linux"]["namespaces"][-1]["path"] = f"{ns}/net"
        (bundle / "config.json").write_text(json.dumps(config))
        r = runc("run", "--bundle", str(bundle), "c2")
        assert r.returncode == 125 and f"{ns}/net is not a pid namespace" in r.stderr, r.stderr
    finally:
        holder.kill()
        holder.wait()
