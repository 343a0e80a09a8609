"""What a container start costs is kept down by what it does not do (bench/run measures it):
these tests hold the two ways the start path was made short.

* It imports only what it uses: no dataclasses (and inspect, ast, dis with it), no typing, no
  socket, no tempfile or random (minidocker/record.py says why each one matters).
* The kernel's wait for the first cgroup move passes early, in a thread that moves us into
  the cgroup we are already in (hasten.hasten_moves): that thread never changes our cgroups
  and never survives into a fork.
"""

from __future__ import annotations

import os
import time

from minidocker.linux import hasten

NOT_ON_THE_START_PATH = {
    "dataclasses",
    "inspect",
    "ast",
    "typing",
    "socket",
    "selectors",
    "tempfile",
    "random",
    "typer",
    "click",
    "rich",
    "httpx",
    "pyroute2",
    "cgroupspy",
    "threading",
    "shutil",
}


def imported_by(stderr: str) -> set[str]:
    """The modules named by ``python -X importtime``'s lines ("import time: self | cumulative | name")."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line and "imported package" not in line
    }


def test_a_start_imports_only_what_it_uses(md_run, bb):
    md_run.ok("run", "--rm", "--network", "none", bb, "true")  # the store's first start compiles seccomp (pyseccomp)
    r = md_run.ok("run", "--rm", "--network", "none", bb, "true", env={"PYTHONPROFILEIMPORTTIME": "1"})
    modules = imported_by(r.stderr)
    assert "minidocker.runtime.lifecycle" in modules and "prctl" in modules  # the parser read the lines
    assert modules & NOT_ON_THE_START_PATH == set()


def own_cgroups() -> str:
    with open("/proc/self/cgroup") as f:
        return f.read()


def test_the_hastening_thread_moves_us_nowhere_and_stops_before_a_fork():
    before = own_cgroups()
    hasten.hasten_moves()
    assert hasten.Hastener.running is not None
    time.sleep(0.05)  # some moves in place have been made
    assert own_cgroups() == before
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only the forking thread, as ever
        os.write(w, str(len(os.listdir("/proc/self/task"))).encode())
        os._exit(0)
    os.close(w)
    threads_in_child = int(os.read(r, 16))
    os.close(r)
    os.waitpid(pid, 0)
    assert threads_in_child == 1
    assert hasten.Hastener.running is None  # stopped by the fork (os.register_at_fork)
    assert own_cgroups() == before


def test_the_hastening_thread_ends_by_itself():
    hasten.hasten_moves(longest=0.05)
    assert hasten.Hastener.running is not None
    deadline = time.monotonic() + 5
    while hasten.Hastener.running is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hasten.Hastener.running is None
