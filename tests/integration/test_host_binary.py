"""Issue #9.6: no host binary is reachable through /proc from inside a container.

Between fork and execve, the container's init and ``exec``'s helper run the host's Python.
While they are visible in the container's PID namespace, a process inside could open
``/proc/PID/exe`` (the host's interpreter: CVE-2019-5736's way to overwrite it) or read
``/proc/PID/environ`` (the host's environment). Both make themselves non-dumpable first,
so the kernel refuses those opens to anyone without CAP_SYS_PTRACE over them.

The long-lived case is ``--init``: its PID 1 is our Python reaper for the container's life.
The short-lived one is exec's helper: the test catches it (SIGSTOP, from the host) after it
dropped to the container's capabilities and before its execve, the window where only its
dumpability protects it, probes it from inside, then lets it go on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

PROBE = (
    "for f in exe environ; do if head -c 1 /proc/{pid}/$f >/dev/null 2>&1; "
    "then echo OPENED-$f; else echo refused-$f; fi; done; ls -l /proc/{pid}/exe 2>&1 | head -1"
)


def probe(m, cid: str, pid_inside: int) -> str:
    return m.ok("exec", cid, "sh", "-c", PROBE.format(pid=pid_inside)).stdout


def host_python() -> str:
    return os.readlink("/proc/self/exe")


def ns_pid(host_pid: int) -> int:
    """The PID a process has in the innermost PID namespace it belongs to (NSpid's last)."""
    for line in Path(f"/proc/{host_pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError(f"no NSpid for {host_pid}")


def same_pid_ns(a: int, b: int) -> bool:
    return os.readlink(f"/proc/{a}/ns/pid") == os.readlink(f"/proc/{b}/ns/pid")


def test_init_reaper_is_not_open_to_the_container(md_run, bb):
    m = md_run
    cid = m.ok("run", "-d", "--init", bb, "sleep", "60").stdout.strip()
    try:
        out = probe(m, cid, 1)
        assert "OPENED" not in out, out
        assert "refused-exe" in out and "refused-environ" in out
        assert "Permission denied" in out  # ls -l cannot even read the link
        # a process the container started itself stays open to it (the walls are not in the way)
        mine = m.ok(
            "exec",
            cid,
            "sh",
            "-c",
            "sleep 30 >/dev/null 2>&1 & p=$!; head -c 1 /proc/$p/exe >/dev/null && echo ok-$p; kill $p",
        )
        assert "ok-" in mine.stdout
    finally:
        m("rm", "-f", cid)


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)
    for _ in range(1000):
        if _status(pid)["State"].startswith("T"):
            return
        time.sleep(0.0005)


def _stop_after_capability_drop(pid: int, python: str, host_caps: str) -> bool:
    """Step the helper (stop, look, continue) until its capabilities are the container's
    (the window between limit_capabilities and execve, where only dumpability protects it);
    False if it reached execve first."""
    for _ in range(20000):
        _stop(pid)
        if os.readlink(f"/proc/{pid}/exe") != python:
            os.kill(pid, signal.SIGCONT)
            return False
        if _status(pid)["CapPrm"] != host_caps:
            return True
        os.kill(pid, signal.SIGCONT)
    return False


def _catch_exec_helper(m, cid: str, container_pid: int, tries: int = 40) -> tuple[subprocess.Popen, int] | None:
    """Start ``exec`` and SIGSTOP its helper once it is inside the container's PID namespace,
    has dropped to the container's capabilities, and still runs the host's Python."""
    python, host_caps = host_python(), _status(os.getpid())["CapPrm"]
    for _ in range(tries):
        before = set(os.listdir("/proc"))
        # a PATH of many missing directories: the search for `true` happens after the
        # capability drop, in the host's Python, so the window we look in lasts ~50 ms
        path = ":".join(f"/no-such-dir-{i}" for i in range(5000)) + ":/bin"
        proc = m.popen("exec", "-e", f"PATH={path}", cid, "true")
        deadline = time.monotonic() + 5
        while proc.poll() is None and time.monotonic() < deadline:
            for name in set(os.listdir("/proc")) - before:
                if not name.isdigit():
                    continue
                pid = int(name)
                try:
                    if (
                        same_pid_ns(pid, container_pid)
                        and os.readlink(f"/proc/{pid}/exe") == python
                        and _stop_after_capability_drop(pid, python, host_caps)
                    ):
                        return proc, pid
                except (FileNotFoundError, ProcessLookupError, PermissionError, KeyError):
                    continue
        proc.wait(timeout=30)
    return None


def test_exec_helper_is_not_open_to_the_container(md_run, bb):
    m = md_run
    cid = m.ok("run", "-d", bb, "sleep", "120").stdout.strip()
    try:
        container_pid = int(m.ok("inspect", cid).stdout.split('"Pid": ')[1].split(",")[0])
        caught = _catch_exec_helper(m, cid, container_pid)
        assert caught is not None, "never caught exec's helper before its execve (40 tries)"
        proc, helper = caught
        try:
            out = probe(m, cid, ns_pid(helper))
        finally:
            os.kill(helper, signal.SIGCONT)
            proc.wait(timeout=30)
        assert "OPENED" not in out, f"the host's Python was open to the container:\n{out}"
        assert "refused-exe" in out and "refused-environ" in out
        assert proc.returncode == 0  # and the exec itself went on as usual
    finally:
        m("rm", "-f", cid)
