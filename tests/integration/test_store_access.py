"""The store is no side door on the host: an ordinary host user reaches no file of it.

An unpacked layer keeps the image's owners and modes, so a store open to everyone would
hand any local user the image's setuid-root binaries and its device nodes. Here a store
holds such an image (a setuid-root ``head``, a 0666 char device 1:11, /dev/kmsg), running
containers (one plain, two ``--userns=auto``: idmapped and shifted copies) and a stopped
one; then ``nobody`` (``setpriv --reuid=65534 --regid=65534 --clear-groups``) tries every
path of it, found by a walk as root: each try must fail with EACCES.

The stores live in a directory of their own that ``nobody`` may enter (pytest's temp
directories are 0700 already, which would prove nothing), and the probe is the system's
``/usr/bin/python3``, which ``nobody`` can run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from minidocker.paths import STORE_DIRS
from tests.integration.conftest import Minidocker, _remove
from tests.integration.layouts import make_layout

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
PROBE_PYTHON = "/usr/bin/python3"
SIDE_DOOR = "example.com/side-door:v1"

# Run as nobody: reads [[path, how], ...] on stdin, prints [[path, how, "ok" or errno name]].
PROBE = r"""
import errno, json, os, subprocess, sys

def attempt(path, how):
    try:
        if how == "stat":
            os.lstat(path)
        elif how == "list":
            os.listdir(path)
        elif how in ("read", "write"):
            flags = os.O_RDONLY if how == "read" else os.O_WRONLY
            os.close(os.open(path, flags | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY))
        elif how == "exec":
            subprocess.run([path, "-n1", "/etc/shadow"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

json.dump([[p, how, attempt(p, how)] for p, how in json.load(sys.stdin)], sys.stdout)
"""


def as_nobody(tries: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """Each (path, how) tried by host user 65534 with no groups: its outcome."""
    for tool, package in (("setpriv", "util-linux"), (PROBE_PYTHON, "python3")):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: apt-get install {package}", pytrace=False)
    r = subprocess.run(
        [*NOBODY, PROBE_PYTHON, "-I", "-S", "-c", PROBE],
        input=json.dumps(tries),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return [tuple(t) for t in json.loads(r.stdout)]


@contextlib.contextmanager
def visible_store():
    """A store whose parent directory every user may enter (0755), removed at the end with
    every container of it."""
    base = Path(tempfile.mkdtemp(prefix="md-store-access-", dir="/tmp"))
    os.chmod(base, 0o755)
    m = Minidocker(base / "root", base / "config")
    try:
        yield m
    finally:
        _remove(m, base)


def side_door_layer() -> bytes:
    """What the issue found: a setuid-root copy of ``head`` and a 0666 /dev/kmsg (1:11)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("usr", "usr/local", "usr/local/bin", "dev"):
            tar.addfile(_dir(name))
        head = Path(shutil.which("head") or "/usr/bin/head").read_bytes()
        info = tarfile.TarInfo("usr/local/bin/head")
        info.size, info.mode = len(head), 0o4755
        tar.addfile(info, io.BytesIO(head))
        kmsg = tarfile.TarInfo("dev/kmsg")
        kmsg.type, kmsg.mode, kmsg.devmajor, kmsg.devminor = tarfile.CHRTYPE, 0o666, 1, 11
        tar.addfile(kmsg)
    return buf.getvalue()


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info


def load_side_door(m: Minidocker, busybox_layout: Path, where: Path) -> None:
    layout = make_layout(where, side_door_layer(), base=busybox_layout)
    idx = json.loads((layout / "index.json").read_text())
    idx["manifests"][0]["annotations"]["io.containerd.image.name"] = SIDE_DOOR
    (layout / "index.json").write_text(json.dumps(idx))
    m.ok("load", "-q", "-i", str(layout))


@pytest.fixture(scope="module")
def full_store(registry, image_layouts, tmp_path_factory):
    """A store with busybox and the side-door image, three running containers (plain,
    --userns=auto idmapped, --userns=auto shifted copies) and a stopped one."""
    with visible_store() as m:
        bb = f"{registry.host}/busybox:latest"
        m.ok("pull", "-q", bb)
        load_side_door(m, image_layouts["busybox"], tmp_path_factory.mktemp("side-door") / "layout")
        m.ok("network", "ls")
        running = [
            m.ok("run", "-d", bb, "sleep", "600").stdout.strip(),
            m.ok("run", "-d", "--userns=auto", SIDE_DOOR, "sleep", "600").stdout.strip(),
            m.ok(
                "run", "-d", "--userns=auto", SIDE_DOOR, "sleep", "600", env={"MINIDOCKER_NO_IDMAP": "1"}
            ).stdout.strip(),
        ]
        stopped = m.ok("run", SIDE_DOOR, "sh", "-c", "echo secret > /note; echo done").stdout
        assert stopped == "done\n"
        yield m, running


def walk(root: Path) -> list[tuple[str, os.stat_result]]:
    """Every path below ``root`` (not ``root`` itself), never following a symlink."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out.append((path, os.lstat(path)))
    return out


def tries_for(path: str, st: os.stat_result) -> list[tuple[str, str]]:
    """How nobody would use the path: look, open, list a dir, run a setuid file, write a device."""
    tries = [(path, "stat"), (path, "read")]
    if stat.S_ISDIR(st.st_mode):
        tries.append((path, "list"))
    if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
        tries.append((path, "exec"))
    if stat.S_ISCHR(st.st_mode) and st.st_rdev:
        tries.append((path, "write"))
    return tries


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_nobody_reaches_no_file_of_the_store(full_store):
    m, running = full_store
    paths = walk(m.root)
    # the walk sees what an attacker wants: the setuid head and the device, in the layer and
    # in a --userns=auto container's shifted copy; a container's upper dir, logs, blobs
    setuid = [p for p, st in paths if p.endswith("/usr/local/bin/head") and st.st_mode & stat.S_ISUID]
    devices = [p for p, st in paths if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 11)]
    assert any("/layers/" in p and "/containers/" not in p for p in setuid), setuid
    assert any("/containers/" in p for p in setuid), setuid
    assert len(devices) >= 2 and any("/containers/" in p for p in devices), devices
    names = {p.removeprefix(str(m.root)) for p, _ in paths}
    assert any(n.endswith("/upper/note") for n in names)
    assert any(n.endswith("/container.log") for n in names)
    assert {"/images/index.json", "/networks/bridge.json"} <= names
    assert any(n.startswith("/blobs/sha256/") for n in names) and any(n.startswith("/cache/seccomp/") for n in names)
    tries = [t for p, st in paths for t in tries_for(p, st)]
    # the running containers' files through /proc/PID/root
    for cid in running:
        pid = json.loads(m.ok("inspect", cid).stdout)[0]["State"]["Pid"]
        tries += [(f"/proc/{pid}/root/etc/passwd", "read"), (f"/proc/{pid}/root/", "list")]
    # the probe works: nobody may enter the store's parent and see the root, only not open it
    control = [(str(m.root.parent), "list"), (str(m.root), "stat"), (str(m.root), "list")]
    outcome = as_nobody(control + tries)
    assert [o[2] for o in outcome[:3]] == ["ok", "ok", "EACCES"]
    reached = [o for o in outcome[3:] if o[2] != "EACCES"]
    assert reached == [], f"{len(reached)} of {len(tries)} tries did not fail with EACCES: {reached[:10]}"
    assert sum(how == "exec" for _, how in tries) >= 2 and sum(how == "write" for _, how in tries) >= 2


def test_every_directory_of_the_store_is_root_only(full_store):
    m, running = full_store
    for d in [m.root, *(m.root / name for name in STORE_DIRS), m.root / "blobs/sha256", m.root / "cache/seccomp"]:
        assert (mode(d), d.stat().st_uid) == (0o700, 0), d
    layers = list((m.root / "layers").iterdir())
    assert layers and all(mode(d) == 0o700 for d in layers)
    for cid in running:
        info = json.loads(m.ok("inspect", cid).stdout)[0]
        d = m.root / "containers" / info["Id"]
        idmap = info["HostConfig"].get("IdMap")
        # a --userns=auto container's root passes through its own dir (its group), no one else
        assert (mode(d), d.stat().st_gid) == ((0o710, idmap["gid"]) if idmap else (0o700, 0)), d
        assert (mode(d / "work"), mode(d / "merged")) == (0o700, 0o700)
        # the container's / shows the upper dir's mode: 0755 as in every image
        assert mode(d / "upper") == 0o755
        assert m.ok("exec", cid, "stat", "-c", "%a", "/").stdout == "755\n"


@pytest.mark.parametrize("command", [["pull", "-q", "BB"], ["run", "--rm", "BB", "true"]], ids=["pull", "run"])
def test_an_older_open_store_is_closed_when_opened(registry, command):
    """A store left by an older minidocker (0755 everywhere): the next command that writes
    to it closes the root and its top-level directories (a chmod each, no walk)."""
    bb = f"{registry.host}/busybox:latest"
    with visible_store() as m:
        m.ok("pull", "-q", bb)
        layer = next((m.root / "layers").iterdir())
        for d in [m.root, *(m.root / name for name in STORE_DIRS), layer]:
            os.chmod(d, 0o755)
        meta = str(layer / "meta.json")
        assert as_nobody([(meta, "read")])[0][2] == "ok"  # the side door, as it was
        m.ok(*(bb if a == "BB" else a for a in command))
        for d in [m.root, *(m.root / name for name in STORE_DIRS)]:
            assert mode(d) == 0o700, d
        assert as_nobody([(meta, "read"), (str(layer), "list")]) == [
            (meta, "read", "EACCES"),
            (str(layer), "list", "EACCES"),
        ]
