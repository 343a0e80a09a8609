"""``--userns=auto``: root inside the container is an unprivileged user on the host, and the
image's files still show their in-image owners (idmapped mounts, or shifted copies).

These need ID ranges for the user ``minidocker`` in /etc/subuid and /etc/subgid, which
``vagrant/provision.sh`` adds."""

from __future__ import annotations

import json
import os
import shlex
import sys

import pexpect
import pytest

from minidocker.runtime.idranges import BLOCK, SUBGID, SUBUID, blocks, read_ranges


@pytest.fixture(scope="module")
def subids():
    uid, gid = blocks(read_ranges(SUBUID)), blocks(read_ranges(SUBGID))
    if not uid or not gid:
        pytest.fail(
            "no ID ranges for 'minidocker' in /etc/subuid and /etc/subgid: run vagrant/provision.sh "
            "(or add 'minidocker:1000000:6553600' to both files)",
            pytrace=False,
        )
    return set(uid), set(gid)


def _state(md, cid: str) -> dict:
    doc = json.loads(md.ok("inspect", cid).stdout)
    return doc[0] if isinstance(doc, list) else doc


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@pytest.mark.parametrize("how", ["idmapped", "copy"])
def test_root_inside_is_unprivileged_outside(md_run, bb, subids, how):
    env = {"MINIDOCKER_NO_IDMAP": "1"} if how == "copy" else None
    cid = md_run.ok(
        "run",
        "-d",
        "--userns=auto",
        bb,
        "sh",
        "-c",
        "echo data > /tmp/made-inside; mkdir /home/app/new; chown app:app /home/app/new; sleep 60",
        env=env,
    ).stdout.strip()
    state = _state(md_run, cid)
    assert state["HostConfig"]["UsernsMode"] == "auto"
    pid = state["State"]["Pid"]
    # the host sees PID 1 of the container run as the block's first uid, never as root
    uid = int(_status(pid)["Uid"].split()[0])
    assert uid in subids[0] and uid != 0
    # inside: root, with the mapping in /proc/self/uid_map, and the image's owners intact
    out = md_run.ok(
        "exec",
        cid,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; stat -c '%u:%g %n' /home/app "
        "/etc/passwd /bin/busybox /tmp/made-inside /home/app/new",
    ).stdout.split("\n")
    assert out[0] == "0"
    assert out[1].split() == ["0", str(uid), str(BLOCK)]
    assert state["HostConfig"]["IdMap"] == {"uid": uid, "gid": uid, "size": BLOCK}
    assert out[2:7] == [
        "1000:1000 /home/app",
        "0:0 /etc/passwd",
        "0:0 /bin/busybox",
        "0:0 /tmp/made-inside",
        "1000:1000 /home/app/new",
    ]
    # on the host, what the container wrote belongs to the block's IDs
    upper = state["GraphDriver"]["Data"]["UpperDir"]
    made = os.stat(os.path.join(upper, "tmp/made-inside"))
    assert (made.st_uid, made.st_gid) == (uid, uid)
    new = os.stat(os.path.join(upper, "home/app/new"))
    assert new.st_uid == uid + 1000
    # and the layer on disk still has its own owners: nothing was chowned in the store
    assert os.stat(state["GraphDriver"]["Data"]["LowerDir"].split(":")[0] + "/home/app").st_uid == 1000
    md_run.ok("rm", "-f", cid)


def test_each_container_gets_its_own_block(md_run, bb, subids):
    a = md_run.ok("run", "-d", "--userns=auto", bb, "sleep", "60").stdout.strip()
    b = md_run.ok("run", "-d", "--userns=auto", bb, "sleep", "60").stdout.strip()
    ua = int(_status(_state(md_run, a)["State"]["Pid"])["Uid"].split()[0])
    ub = int(_status(_state(md_run, b)["State"]["Pid"])["Uid"].split()[0])
    assert ua != ub and abs(ua - ub) >= BLOCK
    md_run.ok("rm", "-f", a, b)


def test_walls_hold_in_a_user_namespace(md_run, bb, subids):
    r = md_run(
        "run",
        "--rm",
        "--userns=auto",
        bb,
        "sh",
        "-c",
        "grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status; "
        "mount -t tmpfs none /mnt && echo MOUNTED; "
        "echo x > /proc/sys/kernel/hostname && echo WROTE; "
        "mknod /tmp/sda b 8 0 && echo MKNOD; "
        "cat /proc/kcore | head -c1 | wc -c",
    )
    assert "CapEff:\t00000000a80425fb" in r.stdout and "NoNewPrivs:\t1" in r.stdout and "Seccomp:\t2" in r.stdout
    for escaped in ("MOUNTED", "WROTE", "MKNOD"):
        assert escaped not in r.stdout, r.stdout
    assert r.stdout.strip().endswith("0")


def test_exit_codes_and_signals_pass_through(md_run, bb, subids):
    assert md_run("run", "--rm", "--userns=auto", bb, "sh", "-c", "exit 3").returncode == 3
    assert md_run("run", "--rm", "--userns=auto", bb, "nosuch").returncode == 127
    cid = md_run.ok("run", "-d", "--userns=auto", bb, "sleep", "60").stdout.strip()
    md_run.ok("stop", "-t", "1", cid)
    assert _state(md_run, cid)["State"]["ExitCode"] == 137
    md_run.ok("rm", cid)


def test_userns_flag_errors(md_run, bb):
    r = md_run("run", "--rm", "--userns=bogus", bb, "true")
    assert r.returncode == 125 and "--userns" in r.stderr
    r = md_run("run", "--rm", "--userns=auto", "--privileged", bb, "true")
    assert r.returncode == 125 and "incompatible" in r.stderr


def test_tty_in_a_user_namespace(shared_md, bb, subids):
    cmd = " ".join(
        shlex.quote(a) for a in [sys.executable, "-m", "minidocker", "run", "-it", "--rm", "--userns=auto", bb, "sh"]
    )
    p = pexpect.spawn("sh", ["-c", cmd], env=shared_md.env(), encoding="utf-8", timeout=20)
    try:
        p.expect("# ")
        p.sendline("tty; id -u")
        p.expect(r"/dev/pts/0\r\n0\r\n")
        p.sendline("exit 4")
        p.expect(pexpect.EOF)
    finally:
        p.close(force=True)
    assert p.exitstatus == 4


def test_commit_diff_and_export_show_the_owners_the_container_saw(md_run, bb, subids, tmp_path):
    """What a --userns=auto container wrote is owned by host IDs in its block; an image made
    from it must carry the IDs the container used (0, 1000), as docker's userns-remap does."""
    import tarfile

    name = f"uscommit-{os.getpid()}"
    md_run.ok(
        "run",
        "--name",
        name,
        "--userns=auto",
        bb,
        "sh",
        "-c",
        "echo a > /made; echo b > /home/app/mine; chown 1000:1000 /home/app/mine",
    )
    assert md_run.ok("diff", name).stdout.splitlines() == ["C /home/app", "A /home/app/mine", "A /made"]
    image = md_run.ok("commit", name, f"userns-commit:{os.getpid()}").stdout.strip()
    out = md_run.ok("run", "--rm", image, "stat", "-c", "%u:%g %n", "/made", "/home/app/mine").stdout
    assert out.split("\n")[:2] == ["0:0 /made", "1000:1000 /home/app/mine"]
    tar = tmp_path / "export.tar"
    md_run.ok("export", "-o", str(tar), name)
    with tarfile.open(tar) as t:
        owners = {m.name: (m.uid, m.gid) for m in t.getmembers()}
    assert owners["made"] == (0, 0) and owners["home/app/mine"] == (1000, 1000) and owners["bin/busybox"] == (0, 0)
    md_run.ok("rm", name)
    md_run.ok("rmi", image)


def test_cp_into_a_user_namespaced_container(md_run, bb, subids, tmp_path):
    cid = md_run.ok("run", "-d", "--userns=auto", bb, "sleep", "60").stdout.strip()
    (tmp_path / "f").write_text("x\n")
    md_run.ok("cp", str(tmp_path / "f"), f"{cid}:/tmp/f")
    assert md_run.ok("exec", cid, "stat", "-c", "%u:%g", "/tmp/f").stdout.strip() == "0:0"  # its root, not nobody
    md_run.ok("rm", "-f", cid)


def test_volumes_in_a_user_namespace(md_run, bb, subids, tmp_path):
    """-v works even where the path to the host directory is closed to the container's uid
    (pytest's 0700 temp dirs): minidocker binds it as host root before the switch."""
    host_dir = tmp_path / "vol"
    host_dir.mkdir()
    (host_dir / "in.txt").write_text("from the host\n")
    os.chmod(tmp_path, 0o700)
    r = md_run.ok("run", "--rm", "--userns=auto", "-v", f"{host_dir}:/data:ro", bb, "cat", "/data/in.txt")
    assert r.stdout == "from the host\n"
    r = md_run("run", "--rm", "--userns=auto", "-v", f"{host_dir}:/data:ro", bb, "sh", "-c", "echo x > /data/new")
    assert r.returncode != 0 and not (host_dir / "new").exists()  # read-only holds
