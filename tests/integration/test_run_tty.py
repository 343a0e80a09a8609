"""``run -it`` and ``exec -it`` driven through a real pty (pexpect), as a person would."""

from __future__ import annotations

import shlex
import sys
import time

import pexpect
import pytest

PROMPT = "# "


@pytest.fixture
def term(shared_md, bb):
    """A pty running ``stty -g; minidocker ...; stty -g`` so a test can compare the terminal
    settings before and after the container had it in raw mode."""
    spawned = []

    def spawn(*args: str) -> pexpect.spawn:
        cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "minidocker", *args])
        p = pexpect.spawn(
            "sh",
            ["-c", f"stty -g; {cmd}; echo EXIT=$?; stty -g"],
            env=shared_md.env(),
            encoding="utf-8",
            timeout=20,
            dimensions=(30, 100),
        )
        spawned.append(p)
        return p

    yield spawn
    for p in spawned:
        p.close(force=True)


def test_run_it_shell(term, bb):
    p = term("run", "-it", "--rm", bb, "sh")
    p.expect(r"(\d+:[0-9a-f:]+)\r\n")
    before = p.match.group(1)
    p.expect(PROMPT)
    p.sendline("tty; stty size")
    p.expect(r"/dev/pts/0\r\n30 100")
    p.setwinsize(40, 120)  # SIGWINCH reaches minidocker, which resizes the container's pty
    time.sleep(0.3)
    p.sendline("stty size")
    p.expect("40 120")
    p.expect(PROMPT)
    p.sendline("sleep 30")
    time.sleep(0.5)
    p.sendcontrol("c")  # Ctrl-C reaches the foreground job, not the shell
    p.expect(PROMPT)
    p.sendline("echo alive")
    p.expect("alive")
    p.expect(PROMPT)
    p.sendline("sleep 30")
    time.sleep(0.5)
    p.sendcontrol("z")  # job control: stop it, then bring it back and interrupt it
    p.expect("Stopped")
    p.expect(PROMPT)
    p.sendline("fg")
    time.sleep(0.3)
    p.sendcontrol("c")
    p.expect(PROMPT)
    p.sendline("exit 5")
    p.expect(r"EXIT=5\r\n")
    p.expect(r"(\d+:[0-9a-f:]+)\r\n")
    assert p.match.group(1) == before  # the terminal was restored


def test_exec_it_into_running_container(term, shared_md, bb):
    cid = shared_md.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    try:
        p = term("exec", "-it", cid, "sh")
        p.expect(PROMPT)
        p.sendline("echo $$; tty")
        p.expect(r"\r\n(\d+)\r\n/dev/pts/\d+")
        assert p.match.group(1) != "1"
        p.sendline("exit 3")
        p.expect(r"EXIT=3")
    finally:
        shared_md("rm", "-f", cid)


def test_it_needs_a_terminal(shared_md, bb):
    r = shared_md("run", "-it", "--rm", bb, "true")
    assert r.returncode == 1 and "the input device is not a TTY" in r.stderr


def test_run_it_without_rm_keeps_a_log(term, shared_md, bb):
    import os

    name = f"ttylog-{os.getpid()}"
    try:
        p = term("run", "-it", "--name", name, bb, "sh")
        p.expect(PROMPT)
        p.sendline("echo logged-$((6*7))")
        p.expect("logged-42")
        p.sendline("exit 2")
        p.expect(r"EXIT=2")
        assert "logged-42" in shared_md.ok("logs", name).stdout
    finally:
        shared_md("rm", "-f", name)
