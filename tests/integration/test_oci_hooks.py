"""The runtime spec's hooks (minidocker/oci/hooks.py) on real bundles: each kind runs at its
point of the lifecycle, in the namespaces the spec names, with the state on its stdin; a
failing hook fails create or start (and the container is gone or stopped), or is a warning
(poststart, poststop); a hook's timeout kills it."""

from __future__ import annotations

import glob
import json
import os
import time
from pathlib import Path

import pytest

from tests.integration.conftest import one_error
from tests.integration.test_oci_runtime import Runc, bundle, configure, podman, runc  # noqa: F401 (the fixtures)

__all__ = ["podman"]  # (a fixture of test_oci_runtime.py's, shared)

# A hook of the runtime's side (and createContainer's: its path is the host's), in the host's
# Python: what it sees, as JSON in OUT/KIND.json.
RECORDER = """#!/usr/bin/python3
import json, os, sys
kind, out = sys.argv[1], sys.argv[2]
state = json.load(sys.stdin)
def ls(p):
    try:
        return sorted(os.listdir(p))
    except OSError:
        return []
def link(p):
    try:
        return os.readlink(p)
    except OSError:
        return ""
seen = {
    "state": state,
    "env": open("/proc/self/environ").read().split("\\0")[:-1],  # (as execve gave it: Python adds LC_CTYPE)
    "mnt": link("/proc/self/ns/mnt"),
    "pid_ns": link("/proc/self/ns/pid"),
    "net": link("/proc/self/ns/net"),
    "rootfs_proc_self": link(os.path.join(state["bundle"], "rootfs/proc/self")),
    "init_root_ls": ls("/proc/%d/root" % state["pid"]),
    "state_dir": os.path.exists(os.path.join(sys.argv[3], state["id"])) if len(sys.argv) > 3 else None,
    "program_ran": os.path.exists(os.path.join(state["bundle"], "rootfs/ran")),
}
with open(os.path.join(out, kind + ".json"), "w") as f:
    json.dump(seen, f)
"""

# startContainer's: its path resolves in the container (busybox's sh), its output too.
IN_CONTAINER = """#!/bin/sh
{ readlink /proc/self/ns/mnt; readlink /proc/self/ns/pid; ls /; cat; } > /startContainer.out
"""


def with_hooks(bundle: Path, runc: Runc, args: list[str], hooks: dict) -> None:
    (bundle / "config.json").unlink(missing_ok=True)
    configure(bundle, runc, args)
    config = json.loads((bundle / "config.json").read_text())
    config["root"]["readonly"] = False
    config["hooks"] = hooks
    config["annotations"] = {"org.example": "hooks"}
    (bundle / "config.json").write_text(json.dumps(config))


def recorder(tmp_path: Path) -> Path:
    path = tmp_path / "recorder"
    path.write_text(RECORDER)
    path.chmod(0o755)
    (tmp_path / "seen").mkdir(exist_ok=True)
    return path


def record_hook(tmp_path: Path, runc: Runc, kind: str) -> dict:
    return {"path": str(recorder(tmp_path)), "args": ["recorder", kind, str(tmp_path / "seen"), str(runc.root)]}


def seen(tmp_path: Path, kind: str) -> dict:
    return json.loads((tmp_path / "seen" / f"{kind}.json").read_text())


def ns(kind: str, pid: int | str = "self") -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def wait_stopped(runc: Runc, cid: str) -> None:
    deadline = time.monotonic() + 10
    while runc.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runc.state(cid)["status"] == "stopped"


def test_each_hook_runs_at_its_point_with_the_state_on_stdin(bundle, runc, tmp_path):
    (bundle / "rootfs" / "hook").write_text(IN_CONTAINER)
    (bundle / "rootfs" / "hook").chmod(0o755)
    hooks = {kind: [record_hook(tmp_path, runc, kind)] for kind in ("prestart", "createRuntime", "createContainer")}
    hooks |= {kind: [record_hook(tmp_path, runc, kind)] for kind in ("poststart", "poststop")}
    hooks["startContainer"] = [{"path": "/hook", "args": ["hook"]}]
    hooks["createRuntime"][0]["env"] = ["HOOK_ENV=given"]
    with_hooks(bundle, runc, ["sh", "-c", "touch /ran; sleep 0.3"], hooks)
    runc.ok("create", "--bundle", str(bundle), "c1")
    pid = runc.state("c1")["pid"]
    mnt, pid_ns = ns("mnt", pid), ns("pid", pid)
    for kind in ("prestart", "createRuntime", "createContainer"):
        got = seen(tmp_path, kind)
        want = {"id": "c1", "status": "created", "pid": pid, "bundle": str(bundle)}
        assert {k: got["state"][k] for k in want} == want, kind
        assert got["state"]["annotations"] == {"org.example": "hooks"}
        assert "hook" not in got["init_root_ls"], f"{kind}: PID 1 had done its pivot_root already"
        assert not got["program_ran"]
    for kind in ("prestart", "createRuntime"):  # the runtime's namespaces
        assert (seen(tmp_path, kind)["mnt"], seen(tmp_path, kind)["pid_ns"]) == (ns("mnt"), ns("pid")), kind
        assert seen(tmp_path, kind)["rootfs_proc_self"] == ""  # (the container's /proc is not mounted here)
    assert seen(tmp_path, "createRuntime")["env"] == ["HOOK_ENV=given"]  # exactly its env
    created = seen(tmp_path, "createContainer")  # the container's namespaces, its mounts made
    assert (created["mnt"], created["pid_ns"], created["net"]) == (mnt, pid_ns, ns("net", pid))
    assert mnt != ns("mnt") and int(created["rootfs_proc_self"]) < 10  # the container's /proc, its PIDs
    assert not (bundle / "rootfs" / "startContainer.out").exists()

    runc.ok("start", "c1")
    inside = (bundle / "rootfs" / "startContainer.out").read_text().splitlines()
    assert inside[:2] == [mnt, pid_ns] and "bin" in inside[2:-1]  # in the container, after pivot_root
    assert json.loads(inside[-1])["status"] == "created" and json.loads(inside[-1])["pid"] == pid
    post = seen(tmp_path, "poststart")
    assert post["state"]["status"] == "running" and post["state"]["pid"] == pid
    assert post["mnt"] == ns("mnt") and post["program_ran"] and "hook" in post["init_root_ls"]
    assert not (tmp_path / "seen" / "poststop.json").exists()
    wait_stopped(runc, "c1")
    runc.ok("delete", "c1")
    stop = seen(tmp_path, "poststop")
    assert stop["state"]["status"] == "stopped" and stop["state"]["id"] == "c1"
    assert stop["state_dir"] is False and stop["mnt"] == ns("mnt")  # after the container is gone


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create_and_destroys_the_container(bundle, runc, tmp_path, kind):
    hooks = {
        kind: [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}],
        "poststop": [record_hook(tmp_path, runc, "poststop")],
    }
    with_hooks(bundle, runc, ["touch", "/ran"], hooks)
    r = runc("create", "--bundle", str(bundle), "c1")
    assert r.returncode == 125 and one_error(r.stderr), r.stderr
    assert f"{kind} hook #0 /bin/sh: exit status 3" in r.stderr
    assert runc("state", "c1").returncode == 125
    assert not (runc.root / "c1").exists() and not (bundle / "rootfs" / "ran").exists()
    assert not glob.glob("/sys/fs/cgroup/*/minidocker/c1") + glob.glob("/sys/fs/cgroup/minidocker/c1")
    assert seen(tmp_path, "poststop")["state"]["status"] == "stopped"  # the lifecycle goes on at destroy


def test_a_failing_start_container_hook_fails_start_and_stops_the_container(bundle, runc):
    hooks = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no >&2; exit 4"]}]}
    with_hooks(bundle, runc, ["touch", "/ran"], hooks)
    runc.ok("create", "--bundle", str(bundle), "c1")
    r = runc("start", "c1")
    assert r.returncode == 125 and one_error(r.stderr), r.stderr
    assert "startContainer hook #0 /bin/sh: exit status 4" in r.stderr
    assert runc.state("c1")["status"] == "stopped" and not (bundle / "rootfs" / "ran").exists()
    runc.ok("delete", "c1")


@pytest.mark.parametrize("kind", ["poststart", "poststop"])
def test_a_failing_poststart_or_poststop_hook_is_a_warning(bundle, runc, tmp_path, kind):
    hooks = {kind: [{"path": "/bin/false", "args": ["false"]}, record_hook(tmp_path, runc, kind)]}
    with_hooks(bundle, runc, ["touch", "/ran"], hooks)
    runc.ok("create", "--bundle", str(bundle), "c1")
    r = runc.ok("start", "c1")
    wait_stopped(runc, "c1")
    d = runc.ok("delete", "c1")
    warned = r.stderr if kind == "poststart" else d.stderr
    assert f"Warning: {kind} hook #0 /bin/false: exit status 1" in warned and "Error" not in warned
    assert seen(tmp_path, kind)["state"]["id"] == "c1"  # the next hook ran
    assert (bundle / "rootfs" / "ran").exists() and not (runc.root / "c1").exists()


def test_a_hook_is_killed_at_its_timeout(bundle, runc, tmp_path):
    hooks = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "60"], "timeout": 1}]}
    with_hooks(bundle, runc, ["true"], hooks)
    began = time.monotonic()
    r = runc("create", "--bundle", str(bundle), "c1")
    assert time.monotonic() - began < 10
    assert r.returncode == 125 and one_error(r.stderr), r.stderr
    assert "createRuntime hook #0 /bin/sleep: killed after its timeout of 1s" in r.stderr
    assert not (runc.root / "c1").exists()
    with_hooks(bundle, runc, ["true"], {"poststart": [{"path": "/bin/sleep", "args": ["sleep", "60"], "timeout": 1}]})
    runc.ok("create", "--bundle", str(bundle), "c2")
    assert "killed after its timeout of 1s" in runc.ok("start", "c2").stderr


def test_run_runs_every_hook_and_a_missing_hook_is_named(bundle, runc, tmp_path):
    hooks = {kind: [record_hook(tmp_path, runc, kind)] for kind in ("createRuntime", "poststart", "poststop")}
    with_hooks(bundle, runc, ["true"], hooks)
    r = runc("run", "--bundle", str(bundle), "c1")
    assert r.returncode == 0, r.stderr
    assert all((tmp_path / "seen" / f"{k}.json").exists() for k in hooks)
    with_hooks(bundle, runc, ["true"], {"createContainer": [{"path": "/no/such/hook"}]})
    r = runc("run", "--bundle", str(bundle), "c2")
    assert r.returncode == 125 and one_error(r.stderr), r.stderr
    assert "createContainer hook #0 /no/such/hook: exec: No such file or directory" in r.stderr


def test_podman_hooks_dir_reaches_the_bundle(podman, tmp_path):
    """podman turns its --hooks-dir's OCI hooks into the bundle's hooks; each runs at its point."""
    hooks_dir = tmp_path / "hooks.d"
    hooks_dir.mkdir()
    stages = ("createRuntime", "createContainer", "poststart")
    for stage in stages:
        hook = {"path": str(recorder(tmp_path)), "args": ["recorder", stage, str(tmp_path / "seen")]}
        spec = {"version": "1.0.0", "hook": hook, "when": {"always": True}, "stages": [stage]}
        (hooks_dir / f"{stage}.json").write_text(json.dumps(spec))
    r = podman("--hooks-dir", str(hooks_dir), "run", "--rm", "--network", "none", "localhost/busybox", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    created, runtime = seen(tmp_path, "createContainer"), seen(tmp_path, "createRuntime")
    assert runtime["state"]["status"] == "created" and runtime["mnt"] == ns("mnt")
    assert created["state"]["pid"] == runtime["state"]["pid"] and created["mnt"] != ns("mnt")
    assert seen(tmp_path, "poststart")["state"]["status"] == "running"
