"""``diff``, ``commit`` and ``history`` against real containers and the real kernel."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

from tests.integration.conftest import one_error

# One script of changes of every kind: add, change, delete, replace a directory (opaque),
# a new directory with a symlink, a hard link, a fifo, a setuid file with another owner.
CHANGES = """
set -e
echo hi > /new
echo extra >> /etc/passwd
rm /etc/group
rm -rf /home && mkdir /home && echo x > /home/f
mkdir -p /srv/d && ln -s /new /srv/d/link
echo same > /srv/a && ln /srv/a /srv/b
mkfifo /srv/fifo
echo s > /srv/suid && chown 1000:50 /srv/suid && chmod 4755 /srv/suid
"""

EXPECTED_DIFF = """\
C /etc
D /etc/group
C /etc/passwd
C /home
D /home/app
A /home/f
A /new
A /srv
A /srv/a
A /srv/b
A /srv/d
A /srv/d/link
A /srv/fifo
A /srv/suid
""".splitlines()


def _inspect(md, name):
    return json.loads(md.ok("inspect", name).stdout)[0]


def _store_files(md) -> set[str]:
    root = md.root
    return {
        str(p.relative_to(root))
        for sub in ("blobs", "layers")
        for p in (root / sub).rglob("*")
        if "/diff/" not in str(p)
    } | {"index:" + (root / "images/index.json").read_text()}


def test_diff_commit_three_generations(md_run, bb):
    md = md_run
    name = f"gen1-{os.getpid()}"
    md.ok("run", "--name", name, bb, "sh", "-c", CHANGES)
    assert md.ok("diff", name).stdout.splitlines() == EXPECTED_DIFF

    image1 = md.ok("commit", name, f"gen:1-{os.getpid()}").stdout.strip()
    assert image1.startswith("sha256:") and len(image1) == 71
    ref1 = f"gen:1-{os.getpid()}"
    r = md.ok(
        "run",
        "--rm",
        ref1,
        "sh",
        "-c",
        "cat /new; tail -1 /etc/passwd; test -e /etc/group || echo nogroup; ls -A /home;"
        "readlink /srv/d/link; cat /srv/d/link;"
        "[ $(stat -c %i /srv/a) = $(stat -c %i /srv/b) ] && echo hardlink $(stat -c %h /srv/a);"
        "test -p /srv/fifo && echo fifo; stat -c '%a %u:%g' /srv/suid",
    )
    assert r.stdout.splitlines() == ["hi", "extra", "nogroup", "f", "/new", "hi", "hardlink 2", "fifo", "4755 1000:50"]

    # generation 2 on top of generation 1: delete what gen 1 added, change what it changed
    name2 = f"gen2-{os.getpid()}"
    md.ok("run", "--name", name2, ref1, "sh", "-c", "rm /new /srv/b && echo two > /home/f && mkdir /g2")
    # /home was only copied up for its file: same mode, size and mtime, so not a change itself
    assert md.ok("diff", name2).stdout.splitlines() == ["A /g2", "C /home/f", "D /new", "C /srv", "D /srv/b"]
    ref2 = f"gen:2-{os.getpid()}"
    md.ok("commit", "-m", "second", name2, ref2)
    # generation 3: replace a directory that gen 1 created
    name3 = f"gen3-{os.getpid()}"
    md.ok("run", "--name", name3, ref2, "sh", "-c", "rm -rf /srv && mkdir /srv && echo 3 > /srv/three")
    assert md.ok("diff", name3).stdout.splitlines() == [
        "C /srv",
        "D /srv/a",
        "D /srv/d",
        "D /srv/fifo",
        "D /srv/suid",
        "A /srv/three",
    ]
    ref3 = f"gen:3-{os.getpid()}"
    image3 = md.ok("commit", "-a", "Tess <t@example.com>", name3, ref3).stdout.strip()
    r = md.ok("run", "--rm", ref3, "sh", "-c", "ls -A /srv; test -e /new || echo nonew; cat /home/f; ls -d /g2")
    assert r.stdout.splitlines() == ["three", "nonew", "two", "/g2"]

    info = _inspect(md, ref3)
    assert info["Id"] == image3 and info["Author"] == "Tess <t@example.com>"
    assert len(info["RootFS"]["Layers"]) == len(_inspect(md, bb)["RootFS"]["Layers"]) + 3

    # history: newest first, one line per entry; each local image names its own top entry
    lines = md.ok("history", ref3).stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    ids = md.ok("history", "-q", ref3).stdout.split()
    base_ids = md.ok("history", "-q", bb).stdout.split()
    gen_ids = [_inspect(md, r)["Id"][7:19] for r in (ref3, ref2, ref1)]
    assert ids[:3] == gen_ids and ids[3:] == base_ids
    assert "   sh -c rm -rf /srv && mkdir /srv && echo 3 > …   2B" in lines[1]  # 45 columns
    assert lines[2].rstrip().endswith("second")
    full = md.ok("history", "--no-trunc", ref3).stdout.splitlines()
    assert "rm -rf /srv && mkdir /srv && echo 3 > /srv/three" in full[1] and image3 in full[1]


def test_commit_changes_show_in_inspect_and_run(md_run, bb):
    md = md_run
    name = f"chg-{os.getpid()}"
    md.ok("run", "--name", name, bb, "sh", "-c", "mkdir -p /app && echo 'echo from-cmd $*' > /app/run.sh")
    ref = f"changed:{os.getpid()}"
    md.ok(
        "commit",
        "-m",
        "with changes",
        "-a",
        "me",
        "-c",
        'CMD ["from-cmd-arg"]',
        "-c",
        'ENTRYPOINT ["sh", "/app/run.sh"]',
        "-c",
        "ENV MODE=prod X=1",
        "-c",
        "WORKDIR /app",
        "-c",
        "USER 1000:1000",
        "-c",
        'LABEL team="core dev" v=2',
        "-c",
        "EXPOSE 8080/udp 80",
        name,
        ref,
    )
    cfg = _inspect(md, ref)["Config"]
    assert cfg["Cmd"] == ["from-cmd-arg"] and cfg["Entrypoint"] == ["sh", "/app/run.sh"]
    assert "MODE=prod" in cfg["Env"] and "X=1" in cfg["Env"]
    assert cfg["WorkingDir"] == "/app" and cfg["User"] == "1000:1000"
    assert cfg["Labels"] == {"team": "core dev", "v": "2"}
    assert cfg["ExposedPorts"] == {"8080/udp": {}, "80/tcp": {}}
    info = _inspect(md, ref)
    assert info["Comment"] == "with changes" and info["Author"] == "me"
    r = md.ok("run", "--rm", ref)
    assert r.stdout == "from-cmd from-cmd-arg\n"
    r = md.ok("run", "--rm", "--entrypoint", "sh", ref, "-c", "echo $MODE $(pwd) $(id -u)")
    assert r.stdout.split() == ["prod", "/app", "1000"]


def test_commit_errors_are_one_line_and_leave_nothing(md_run, bb):
    md = md_run
    name = f"err-{os.getpid()}"
    md.ok("run", "--name", name, bb, "sh", "-c", "echo x > /x")
    before = _store_files(md)
    for args, words in [
        (["commit", "nosuchcontainer"], "No such container"),
        (["commit", "-c", "FROB x", name], "not a valid change"),
        (["commit", "-c", "RUN echo", name], "not a valid change"),
        (["commit", "-c", "EXPOSE notaport", name], "invalid containerPort"),
        (["commit", name, "Bad:Name"], "invalid reference"),
        (["diff", "nosuchcontainer"], "No such container"),
        (["history", "nosuchimage:latest"], "No such image"),
    ]:
        r = md(*args)
        assert r.returncode == 125, (args, r.stderr)
        assert one_error(r.stderr) and words.lower() in r.stderr.lower(), (args, r.stderr)
    assert _store_files(md) == before


def test_empty_diff_still_commits(md_run, bb):
    md = md_run
    name = f"empty-{os.getpid()}"
    md.ok("run", "--name", name, bb, "true")
    assert md.ok("diff", name).stdout == ""  # the runtime's mount points are not changes
    ref = f"empty:{os.getpid()}"
    image = md.ok("commit", name, ref).stdout.strip()
    assert image != _inspect(md, bb)["Id"]
    assert _inspect(md, ref)["RootFS"]["Layers"] == _inspect(md, bb)["RootFS"]["Layers"]
    top = md.ok("history", ref).stdout.splitlines()[1].split()
    assert top[0] == image[7:19] and "0B" in top
    # -q (podman's flag, which scripts pass): the ID and nothing else, on stdout and stderr
    r = md.ok("commit", "-q", name, ref + "q")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.stdout) and r.stderr == ""
    assert _inspect(md, ref + "q")["Id"] == r.stdout.strip()
    md.ok("rmi", ref + "q")


def _freezer_state(cid: str) -> str:
    return Path(f"/sys/fs/cgroup/freezer/minidocker/{cid}/freezer.state").read_text().strip()


def _proc_state(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return "?"


def test_commit_of_a_running_container_freezes_and_thaws_it(md_run, bb):
    """On the real v1 freezer: during the commit every task of the container is frozen
    (freezer.state FROZEN, the task in state D); afterwards it runs again."""
    md = md_run
    assert Path("/sys/fs/cgroup/freezer").is_dir(), "this test needs the v1 freezer hierarchy (host-notes.md)"
    cid = md.ok(
        "run",
        "-d",
        bb,
        "sh",
        "-c",
        "dd if=/dev/urandom of=/big bs=1M count=48 2>/dev/null; touch /ready; while true; do sleep 0.05; done",
    ).stdout.strip()
    upper = Path(_inspect(md, cid)["GraphDriver"]["Data"]["UpperDir"])
    deadline = time.monotonic() + 30
    while not (upper / "ready").exists():
        assert time.monotonic() < deadline, "the container did not get ready"
        time.sleep(0.05)
    pid = _inspect(md, cid)["State"]["Pid"]
    seen: list[tuple[str, str]] = []
    statuses: set[str] = set()
    stop = threading.Event()
    state_file = md.root / "containers" / cid / "state.json"

    def watch():
        while not stop.is_set():
            try:
                seen.append((_freezer_state(cid), _proc_state(pid)))
                statuses.add(json.loads(state_file.read_text())["Status"])
            except (OSError, ValueError):
                pass
            time.sleep(0.002)

    t = threading.Thread(target=watch)
    t.start()
    try:
        proc = md.popen("commit", cid, f"frozen:{os.getpid()}")
        out, err = proc.communicate(timeout=120)
    finally:
        stop.set()
        t.join()
    assert proc.returncode == 0, err
    assert ("FROZEN", "D") in seen, sorted(set(seen))
    assert _freezer_state(cid) == "THAWED"
    assert "paused" in statuses  # what `ps` showed meanwhile: "Up ... (Paused)"
    assert _inspect(md, cid)["State"]["Running"] and _inspect(md, cid)["State"]["Status"] == "running"
    assert md.ok("exec", cid, "echo", "alive").stdout == "alive\n"
    # --pause=false: the container keeps running during the commit
    seen.clear()
    stop.clear()
    t = threading.Thread(target=watch)
    t.start()
    try:
        md.ok("commit", "--pause=false", cid, f"unfrozen:{os.getpid()}")
    finally:
        stop.set()
        t.join()
    assert seen and all(s == "THAWED" for s, _ in seen)
    r = md.ok("run", "--rm", f"frozen:{os.getpid()}", "sh", "-c", "stat -c %s /big")
    assert r.stdout.strip() == str(48 << 20)


def test_commit_keeps_the_parents_manifest_family(md_run, registry):
    """An image pulled as Docker schema 2 gets a schema 2 manifest on commit; OCI stays OCI."""
    md = md_run
    ref = f"{registry.host}/multiarch-docker:latest"
    md.ok("pull", "-q", ref)
    parent_manifest = _manifest_of(md, ref)
    assert parent_manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    name = f"fam-{os.getpid()}"
    md.ok("run", "--name", name, ref, "sh", "-c", "echo x > /x")
    md.ok("commit", name, f"fam:{os.getpid()}")
    m = _manifest_of(md, f"fam:{os.getpid()}")
    assert m["mediaType"] == parent_manifest["mediaType"]
    assert m["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert m["layers"][:-1] == parent_manifest["layers"]
    assert m["layers"][-1]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"


def test_a_zstd_commit_of_a_docker_image_is_an_oci_image(md_run, registry):
    """Docker's schema 2 has no zstd layer type: the manifest becomes OCI, the parent's
    layers keep their blobs under OCI's names for the same gzip bytes, and it runs."""
    md = md_run
    ref = f"{registry.host}/multiarch-docker:latest"
    md.ok("pull", "-q", ref)
    parent = _manifest_of(md, ref)
    name, tag = f"famz-{os.getpid()}", f"famz:{os.getpid()}"
    md.ok("run", "--network", "none", "--name", name, ref, "sh", "-c", "echo z > /z")
    try:
        md.ok("commit", "--compression", "zstd", name, tag)
        m = _manifest_of(md, tag)
        assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert m["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
        assert [(la["digest"], la["size"]) for la in m["layers"][:-1]] == [
            (la["digest"], la["size"]) for la in parent["layers"]
        ]
        assert {la["mediaType"] for la in m["layers"][:-1]} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
        assert m["layers"][-1]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
        assert md.ok("run", "--rm", "--network", "none", tag, "cat", "/z").stdout == "z\n"
    finally:
        md("rm", "-f", name)
        md("rmi", "-f", tag)


def _manifest_of(md, ref):
    digest = _inspect(md, ref)["Descriptor"]["digest"]
    return json.loads((md.root / "blobs/sha256" / digest[7:]).read_text())


def test_a_commit_has_its_own_comment_and_names_its_parent(md_run, bb):
    md = md_run
    base = _inspect(md, bb)
    cid = md.ok("run", "-d", "--network", "none", bb, "true").stdout.strip()
    md.ok("wait", cid)
    plain = md.ok("commit", cid).stdout.strip()
    noted = md.ok("commit", "-m", "noted", cid).stdout.strip()
    made, second = [plain, noted], ""
    try:
        assert base["Comment"] == "minidocker images/build.py"  # the base image's own comment
        assert _inspect(md, plain)["Comment"] == ""  # is not inherited
        assert _inspect(md, noted)["Comment"] == "noted"
        assert base["Parent"] == "" and _inspect(md, plain)["Parent"] == base["Id"]
        second = md.ok("run", "-d", "--network", "none", noted, "true").stdout.strip()
        md.ok("wait", second)
        made.append(md.ok("commit", second).stdout.strip())
        assert _inspect(md, made[-1])["Parent"] == _inspect(md, noted)["Id"]
    finally:
        md("rm", "-f", cid, *filter(None, [second]))
        md("rmi", "-f", *reversed(made))
