"""The cgroup v2 device filter (linux/bpf.py) against the real kernel.

This host's controllers are on v1, but its cgroup2 hierarchy (/sys/fs/cgroup/unified) holds
every process too, and the kernel runs BPF_CGROUP_DEVICE programs attached there on every
device open and mknod. So the eBPF program minidocker writes for v2 hosts is proven here;
tests/v2guest runs a whole container with it on a v2-only kernel."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from minidocker.linux import bpf
from minidocker.linux.cgroups import DEVICE_RULES

UNIFIED = "/sys/fs/cgroup/unified"


@pytest.fixture
def filtered_cgroup(tmp_path):
    base = UNIFIED if os.path.exists(f"{UNIFIED}/cgroup.procs") else "/sys/fs/cgroup"
    if not os.path.exists(f"{base}/cgroup.procs") or os.path.exists(f"{base}/tasks"):
        pytest.fail(f"no cgroup2 hierarchy at {UNIFIED} or /sys/fs/cgroup: mount one (mount -t cgroup2 none DIR)")
    d = f"{base}/minidocker-devtest-{os.getpid()}"
    os.mkdir(d)
    try:
        bpf.attach_device_filter(d, DEVICE_RULES)
        yield d
    finally:
        os.rmdir(d)


def _try_in(cgroup: str, actions: dict) -> dict[str, str]:
    """Fork a child into ``cgroup`` and run each action there: "ok" or the errno's name."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            with open(f"{cgroup}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
            out = []
            for name, fn in actions.items():
                try:
                    fn()
                    out.append(f"{name}=ok")
                except OSError as e:
                    out.append(f"{name}={errno.errorcode.get(e.errno, e.errno)}")
            os.write(w, "\n".join(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        return dict(line.split("=", 1) for line in f.read().splitlines())


def test_device_filter_allows_the_default_devices_only(filtered_cgroup, tmp_path):
    kmsg = tmp_path / "kmsg"
    os.mknod(kmsg, 0o600 | stat.S_IFCHR, os.makedev(1, 11))  # /dev/kmsg's numbers, made outside
    result = _try_in(
        filtered_cgroup,
        {
            "mknod block": lambda: os.mknod(tmp_path / "sda", 0o600 | stat.S_IFBLK, os.makedev(8, 0)),
            "mknod char": lambda: os.mknod(tmp_path / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3)),
            "open null": lambda: os.close(os.open("/dev/null", os.O_RDWR)),
            "open urandom": lambda: os.close(os.open("/dev/urandom", os.O_RDONLY)),
            "open kmsg": lambda: os.close(os.open(kmsg, os.O_RDONLY)),
        },
    )
    assert result == {
        "mknod block": "EPERM",
        "mknod char": "ok",
        "open null": "ok",
        "open urandom": "ok",
        "open kmsg": "EPERM",
    }
    # outside the cgroup, the same open works: the refusal came from the program
    os.close(os.open(kmsg, os.O_RDONLY))
