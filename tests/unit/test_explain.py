"""``--explain``'s sentences (cli/explain.py): one per kernel-facing event, from its fields."""

import re
from pathlib import Path

import pytest

from minidocker.cli.explain import describe_event

PKG = Path(__file__).resolve().parents[2] / "minidocker"


@pytest.mark.parametrize(
    "event, sentence",
    [
        (
            {"step": "unshare", "flags": ["pid", "mnt"]},
            "unshare(CLONE_NEWPID | CLONE_NEWNS)  -> new pid, mnt namespace(s)",
        ),
        (
            {"step": "mount", "fstype": "overlay", "target": "/m", "data": "lowerdir=/l"},
            "mount -t overlay overlay /m  (lowerdir=/l)",
        ),
        ({"step": "mount", "source": "/h", "target": "/c", "flags": 4096 | 32}, "mount --bind /h /c  (remount)"),
        (
            {"step": "mount", "source": None, "fstype": None, "target": "/", "flags": 1 << 18},
            "mount --make-rprivate /  (mount events no longer propagate)",
        ),
        (
            {"step": "mount", "source": "proc", "fstype": "proc", "target": "/proc", "flags": 0, "data": None},
            "mount -t proc proc /proc",
        ),
        ({"step": "pivot_root", "new_root": ".", "put_old": "."}, "pivot_root(., .)  -> the overlay is now /"),
        (
            {"step": "fuse_mount", "fstype": "fuse.minidocker-lazy", "source": "minidocker-lazy:l", "target": "/m"}
            | {"server": 42},
            "mount -t fuse.minidocker-lazy minidocker-lazy:l /m  -> process 42 answers its requests through /dev/fuse",
        ),
        (
            {"step": "fuse_unmount", "target": "/m", "how": "umount2", "server": 42, "ended": "exited"},
            "umount /m (umount2)  -> its FUSE server 42 exited",
        ),
        (
            {"step": "capabilities", "action": "drop bounding", "dropped": 27, "kept": ["CAP_CHOWN"] * 14},
            "prctl(PR_CAPBSET_DROP) x27  -> the bounding set keeps 14 capabilities",
        ),
        (
            {"step": "capabilities", "action": "set", "kept": ["CAP_KILL"]},
            "capset(permitted = effective = 1 capabilities), ambient cleared",
        ),
        (
            {"step": "cgroup", "action": "write", "path": "/sys/fs/cgroup/pids/x/pids.max", "value": "10"},
            "cgroup write /sys/fs/cgroup/pids/x/pids.max <- 10",
        ),
        ({"step": "setns", "nstype": ["net"]}, "setns(net)  -> join the container's namespace"),
        ({"step": "setns", "nstype": ["mnt"], "why": "read its files"}, "setns(mnt)  -> read its files"),
    ],
)
def test_each_step_reads_as_the_call_a_student_would_make(event, sentence):
    assert describe_event({"t": 0.0, **event}) == sentence


def test_a_why_is_added_after_an_arrow():
    ev = {"t": 0.0, "step": "sethostname", "hostname": "box", "why": "the UTS namespace is ours"}
    assert describe_event(ev) == "sethostname('box')  -> the UTS namespace is ours"


def test_a_step_without_a_sentence_still_shows_its_name_and_fields():
    assert describe_event({"t": 1.5, "step": "new_step", "fd": 3, "path": "/x"}) == "new_step fd=3, path=/x"


def test_every_step_linux_emits_has_a_sentence():
    from minidocker.cli import explain

    emitted = {m for p in (PKG / "linux").rglob("*.py") for m in re.findall(r'emit\("(\w+)"', p.read_text())}
    assert emitted, "no emit() calls found in linux/"
    assert emitted - set(explain._DESCRIBE) == set()
