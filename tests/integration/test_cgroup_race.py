"""Containers started and removed at once must not trip over the shared ``minidocker`` cgroup.

Each container's cgroup lives under ``<controller>/minidocker/``, a parent that goes with the
last container (so nothing of ours stays in the host's tree). One container's ``rm`` can
therefore take the parent away while another is making its own cgroup in it: the mkdir finds
no parent, a write to the parent's files finds a removed cgroup (ENODEV), and a parent made
anew starts with no CPUs and no memory nodes (and a start that fills it writes one file, then
the other). Two processes here make and remove cgroups as fast as they can, on
the real kernel; every create must succeed with a usable cpuset.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import traceback

import pytest

ROUNDS = 200


def churn(worker: int, errors) -> None:
    from minidocker.linux import cgroups

    for i in range(ROUNDS):
        m = cgroups.manager(f"race-{os.getpid()}-{worker}-{i}")
        try:
            m.create()
            cpuset = m.paths().get("cpuset")
            for name in ("cpuset.cpus", "cpuset.mems") if cpuset else ():
                with open(os.path.join(cpuset, name)) as f:
                    if not f.read().strip():
                        errors.put(f"round {i}: an empty {name} in {cpuset}")
            m.add(os.getpid())  # a process can join it (an empty cpuset refuses with ENOSPC)
        except BaseException:  # noqa: BLE001 - reported to the test
            errors.put(f"round {i}: {traceback.format_exc(limit=3)}")
        finally:
            leave_to_root(m)
            m.destroy()


def leave_to_root(m) -> None:
    """Move ourselves back to each hierarchy's root cgroup, so destroy can rmdir ours."""
    for path in m.paths().values():
        root = path.split("/minidocker/")[0]
        try:
            with open(os.path.join(root, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            pass


def test_concurrent_creates_and_removes_never_fail():
    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()
    workers = [ctx.Process(target=churn, args=(w, errors)) for w in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert all(w.exitcode == 0 for w in workers), [w.exitcode for w in workers]
    assert found == [], "\n".join(found[:5])


def test_a_cgroup_removed_between_open_and_read_holds_no_process(monkeypatch):
    """``rm -f`` reads the container's cgroup.procs while its monitor, seeing the container
    end, removes the cgroup: the kernel answers a read of an open file of a removed cgroup with
    ENODEV (a CI run once ended ``rm -f`` with "Error: No such device"). Here the rmdir falls
    exactly between the open and the read, on the real cgroup filesystem."""
    from minidocker.linux import cgroups

    m = cgroups.manager(f"race-open-read-{os.getpid()}")
    m.create()
    path = m.paths()["pids"]
    real_open = open

    def open_then_rmdir(file, *a, **kw):
        f = real_open(file, *a, **kw)
        if str(file).startswith(path):
            os.rmdir(path)  # the monitor's destroy, between our open and our read
        return f

    try:
        monkeypatch.setattr("builtins.open", open_then_rmdir)
        # first the kernel's own answer, so the test shows the real case
        with pytest.raises(OSError) as raw, real_open(os.path.join(path, "cgroup.procs")) as f:
            os.rmdir(path)
            f.read()
        assert raw.value.errno == errno.ENODEV
        os.mkdir(path)
        assert m.pids() == []
        assert not os.path.exists(path)
    finally:
        monkeypatch.undo()
        m.destroy()
