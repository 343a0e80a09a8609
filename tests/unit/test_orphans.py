"""Temp files and their owners (image/content.py): a writer's flock tells its live temp
file from a dead writer's orphan. Real processes, really killed with SIGKILL."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from minidocker.image.content import ContentStore
from minidocker.image.store import ImageStore

REPO = Path(__file__).resolve().parents[2]

# A writer that stops halfway and waits to be killed: argv = root, kind
WRITER = """
import sys, time
from pathlib import Path
from minidocker.image.store import ImageStore
store = ImageStore(Path(sys.argv[1]))
store.ensure()
kind = sys.argv[2]
if kind == "blob":
    writing = store.content.ingest()
elif kind == "ingest":
    writing = store.content.ingest("sha256:" + "ab" * 32, 10)
else:
    writing = store.create(None, None)
with writing as w:
    if kind != "layer":
        w.write(b"half")
    print("writing", flush=True)
    time.sleep(120)
"""


def start_writer(root: Path, kind: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), kind], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "writing\n"
    return proc


def kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def test_a_killed_writers_blob_is_reclaimed_and_a_live_ones_kept(tmp_path):
    dead, live = start_writer(tmp_path, "blob"), start_writer(tmp_path, "blob")
    try:
        files = sorted(os.listdir(tmp_path / "ingest"))
        assert len(files) == 2 and all(f.startswith("new-") for f in files)
        kill(dead)
        store = ContentStore(tmp_path)
        reclaimed = store.reclaim_ingest()
        assert len(reclaimed) == 1 and os.listdir(tmp_path / "ingest") == sorted(set(files) - set(reclaimed))
        assert store.reclaim_ingest() == []  # the live writer's file stays, however often we look
    finally:
        kill(live)
    # the next writer reclaims what the second one left, then leaves nothing itself
    with ContentStore(tmp_path).ingest() as w:
        w.write(b"whole")
    assert os.listdir(tmp_path / "ingest") == [] and ContentStore(tmp_path).read(w.digest) == b"whole"


def test_an_ingest_a_killed_writer_left_is_started_over(tmp_path):
    kill(start_writer(tmp_path, "ingest"))
    assert os.listdir(tmp_path / "ingest") == ["ab" * 32]
    data = b"fresh data"
    digest = ContentStore(tmp_path).put(data)  # another digest: the next writer reclaims the orphan
    assert os.listdir(tmp_path / "ingest") == [] and ContentStore(tmp_path).read(digest) == data


def test_a_killed_commits_layer_dir_is_reclaimed_and_a_live_ones_kept(tmp_path):
    dead, live = start_writer(tmp_path, "layer"), start_writer(tmp_path, "layer")
    try:
        kill(dead)
        store = ImageStore(tmp_path)
        assert len(store.reclaim_layers()) == 1
        left = os.listdir(tmp_path / "layers")
        assert len(left) == 1 and left[0].startswith(".tmp-new-")
        store.collect_garbage()  # the garbage collector obeys the same rule
        assert os.listdir(tmp_path / "layers") == left
    finally:
        kill(live)
    ImageStore(tmp_path).collect_garbage()
    assert os.listdir(tmp_path / "layers") == []


def test_reclaimers_never_take_a_live_writers_file(tmp_path):
    """Writers and reclaimers at once, in threads (flock tells open files apart, even in one
    process): a reclaimer may open a file in the instant before its writer locks it, and the
    writer must notice and start again, never lose its blob."""
    store = ImageStore(tmp_path)
    store.ensure()
    errors: list[BaseException] = []
    made: list[tuple[str, bytes]] = []
    stop = threading.Event()

    def write(n: int) -> None:
        try:
            for i in range(40):
                data = f"{n}-{i}".encode() * 50
                with store.content.ingest() as w:
                    w.write(data)
                made.append((w.digest, data))
                with store.create(None, None) as layer:
                    (layer.diff / "f").write_bytes(data)
        except BaseException as e:  # noqa: BLE001 - asserted below
            errors.append(e)

    def reclaim() -> None:
        while not stop.is_set():
            store.content.reclaim_ingest()
            store.reclaim_layers()

    reclaimers = [threading.Thread(target=reclaim) for _ in range(2)]
    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in reclaimers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in reclaimers:
        t.join()
    assert errors == [] and len(made) == 160
    assert all(store.content.read(d) == data and d == "sha256:" + hashlib.sha256(data).hexdigest() for d, data in made)
    assert os.listdir(tmp_path / "ingest") == [] and os.listdir(tmp_path / "layers") == []


def test_a_crash_point_kills_only_when_named():
    code = "from minidocker.crashpoint import crashpoint; crashpoint('here'); print('alive')"
    for named, returncode, out in [("here", -9, ""), ("elsewhere", 0, "alive\n"), (None, 0, "alive\n")]:
        env = {k: v for k, v in os.environ.items() if k != "MINIDOCKER_TEST_KILL_AT"}
        if named:
            env["MINIDOCKER_TEST_KILL_AT"] = named
        r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
        assert (r.returncode, r.stdout) == (returncode, out)


def test_something_in_the_way_that_no_writer_made_is_an_error_not_a_loop(tmp_path):
    from minidocker.errors import StoreError

    store = ContentStore(tmp_path)
    store.ensure()
    digest = "sha256:" + hashlib.sha256(b"x").hexdigest()
    (tmp_path / "ingest" / digest[7:]).symlink_to("/etc/passwd")
    with pytest.raises(StoreError, match="writing blob"):
        store.put(b"x")
    assert (tmp_path / "ingest" / digest[7:]).is_symlink() and not store.has(digest)
