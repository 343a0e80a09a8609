"""``create``, ``start -a``, ``attach`` and ``run -a`` (issue #12), as docker has them.

A created container exists and has not run; ``start -a`` runs it in the foreground with its
streams and exit code; ``attach`` joins a running container through its monitor's console
socket, ``-it`` ones through a real pty (pexpect), where docker's detach keys leave it
running. No fixed sleeps: a test waits for what the container prints.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess

import pexpect
import pytest

from tests.integration.conftest import MINIDOCKER

PROMPT = "# "


def status(md, name: str) -> str:
    return json.loads(md.ok("inspect", name).stdout)[0]["State"]["Status"]


@pytest.fixture
def term(md_run):
    """``minidocker ARGS; echo EXIT=$?`` on a real pty of 30x100."""
    spawned = []

    def spawn(*args: str) -> pexpect.spawn:
        cmd = shlex.join([*MINIDOCKER, *args])
        p = pexpect.spawn("sh", ["-c", f"{cmd}; echo EXIT=$?"], env=md_run.env(), encoding="utf-8", timeout=20)
        p.setwinsize(30, 100)
        spawned.append(p)
        return p

    yield spawn
    for p in spawned:
        p.close(force=True)


def attached(p: pexpect.spawn) -> pexpect.spawn:
    """Wait until ``attach`` holds the terminal: press Enter until the shell's prompt comes
    back (what was typed before the client put the terminal in raw mode is discarded)."""
    for _ in range(100):
        p.send("\r")
        if p.expect([PROMPT, pexpect.TIMEOUT], timeout=0.2) == 0:
            return p
    raise AssertionError(f"attach never showed the prompt: {p.before!r}")


def wait_for_line(proc: subprocess.Popen, text: str) -> None:
    """Read ``proc``'s stdout until a line that is ``text`` (the attached client gets output)."""
    for line in proc.stdout:
        if line.strip() == text:
            return
    raise AssertionError(f"no {text!r} line: {proc.stderr.read() if proc.stderr else ''}")


def test_create_then_start_attached(md_run, bb):
    name = f"created-{os.getpid()}"
    cid = md_run.ok(
        "create",
        "--name",
        name,
        "-e",
        "WHO=c",
        "-w",
        "/tmp",
        bb,
        "sh",
        "-c",
        'echo "out $WHO $PWD"; echo err >&2; exit 3',
    ).stdout.strip()
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid)
    assert status(md_run, name) == "created"
    row = [
        r for r in map(json.loads, md_run.ok("ps", "-a", "--format", "json").stdout.splitlines()) if r["Names"] == name
    ]
    assert row and row[0]["State"] == "created" and row[0]["Status"] == "Created"
    assert name not in md_run.ok("ps").stdout  # not running
    assert md_run.ok("logs", name).stdout == ""  # it never ran
    r = md_run("start", "-a", name)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out c /tmp\n", "err\n")
    assert status(md_run, name) == "exited"


def test_create_then_start_detached(md_run, bb):
    name = f"created-d-{os.getpid()}"
    md_run.ok("create", "--name", name, bb, "sh", "-c", "echo started; exit 4")
    assert md_run.ok("start", name).stdout == f"{name}\n"  # docker prints what it was given
    assert md_run.ok("wait", name).stdout == "4\n"
    assert md_run.ok("logs", name).stdout == "started\n"


def test_create_refuses_what_run_refuses(md_run, bb):
    before = md_run.ok("ps", "-aq").stdout
    r = md_run("create", "--name", "a/b", bb)
    assert r.returncode == 125 and "Invalid container name (a/b)" in r.stderr
    r = md_run("create", "--bogus", bb)
    assert r.returncode == 125 and r.stderr == "unknown flag: --bogus\nSee 'minidocker create --help'.\n"
    assert md_run.ok("ps", "-aq").stdout == before


def test_attach_streams_stdin_out_err_and_exit_code(md_run, bb):
    cid = md_run.ok("run", "-di", bb, "sh", "-c", "read x; echo got=$x; echo to-err >&2; exit 7").stdout.strip()
    r = md_run("attach", cid, input="hello\n", timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (7, "got=hello\n", "to-err\n")
    assert status(md_run, cid) == "exited"
    r = md_run("attach", cid)
    assert r.returncode == 1 and r.stderr.startswith("Error: You cannot attach to a stopped container, start it first")


def test_attach_no_stdin_and_two_clients(md_run, bb):
    script = "until [ -e /go ]; do echo tick; sleep 0.05; done; read x; echo got=$x; exit 6"
    cid = md_run.ok("run", "-di", bb, "sh", "-c", script).stdout.strip()
    quiet = subprocess.Popen(
        [*MINIDOCKER, "attach", "--no-stdin", cid],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=md_run.env(),
    )
    try:
        quiet.stdin.write("not-sent\n")
        quiet.stdin.flush()
        wait_for_line(quiet, "tick")  # it is attached
        md_run.ok("exec", cid, "touch", "/go")
        r = md_run("attach", cid, input="sent\n", timeout=30)
        assert r.returncode == 6 and r.stdout.endswith("got=sent\n"), r.stderr
        out, _ = quiet.communicate(timeout=30)
        assert quiet.returncode == 6 and out.endswith("got=sent\n")  # its own input never went in
    finally:
        quiet.kill()
        quiet.wait()


def test_attach_proxies_signals(md_run, bb):
    script = 'trap "echo got-term; exit 9" TERM; while :; do echo tick; sleep 0.05; done'
    cid = md_run.ok("run", "-d", bb, "sh", "-c", script).stdout.strip()
    client = md_run.popen("attach", cid)
    try:
        wait_for_line(client, "tick")
        client.send_signal(signal.SIGTERM)
        out, _ = client.communicate(timeout=30)
        assert client.returncode == 9 and out.endswith("got-term\n")
    finally:
        client.kill()
        client.wait()


def test_attach_it_detaches_on_ctrl_p_ctrl_q(term, md_run, bb):
    cid = md_run.ok("run", "-dit", bb, "sh").stdout.strip()
    p = attached(term("attach", cid))
    p.sendline("echo hi-$((6*7)); stty size")
    p.expect("hi-42")
    p.expect("30 100")  # our terminal's size, passed to the container's pty
    p.setwinsize(40, 120)
    p.sendline("sleep 0.2; stty size")  # (the resize reaches the pty before the sleep ends)
    p.expect("40 120")
    p.sendcontrol("p")
    p.sendcontrol("q")
    p.expect("read escape sequence")
    p.expect(r"EXIT=1\r\n")
    assert status(md_run, cid) == "running"  # left running
    p = attached(term("attach", "--detach-keys", "ctrl-a,x", cid))
    p.sendline("echo again")
    p.expect("again")
    p.sendcontrol("p")  # no longer the detach keys: sent on to the shell
    p.sendcontrol("a")
    p.send("x")
    p.expect(r"read escape sequence\r\nEXIT=1")
    p = attached(term("attach", cid))
    p.sendline("exit 3")
    p.expect(r"EXIT=3\r\n")
    assert status(md_run, cid) == "exited"


def test_attach_refusals(md_run, bb):
    cid = md_run.ok("run", "-dit", bb, "sh").stdout.strip()
    r = md_run("attach", cid)  # -it, and our stdin is no terminal
    assert r.returncode == 1 and r.stderr == "Error: the input device is not a TTY\n"
    r = md_run("attach", "--detach-keys", "ctrl-xx", cid)
    assert r.returncode == 125 and "Invalid detach keys (ctrl-xx) provided" in r.stderr
    r = md_run("attach", "no-such-container")
    assert r.returncode == 125 and "No such container: no-such-container" in r.stderr


@pytest.mark.parametrize(
    "streams, out, err", [(["stdout"], "o\n", ""), (["stderr"], "", "e\n"), (["STDOUT", "stderr"], "o\n", "e\n")]
)
def test_run_attach_chosen_streams(md_run, bb, streams, out, err):
    flags = [w for s in streams for w in ("-a", s)]
    name = f"run-a-{os.getpid()}-{len(streams)}{streams[0]}"
    r = md_run("run", *flags, "--name", name, bb, "sh", "-c", "echo o; echo e >&2; exit 2")
    assert (r.returncode, r.stdout, r.stderr) == (2, out, err)
    logs = md_run.ok("logs", name)
    assert (logs.stdout, logs.stderr) == ("o\n", "e\n")  # the log has both streams
    md_run.ok("rm", name)


def test_run_attach_refusals(md_run, bb):
    r = md_run("run", "-a", "stdout", "-d", bb, "true")
    assert r.returncode == 125 and "Conflicting options: -a and -d" in r.stderr
    r = md_run("run", "-a", "bogus", bb, "true")
    assert r.returncode == 125 and 'invalid argument "bogus" for "-a, --attach" flag' in r.stderr
    r = md_run("run", "--rm", "-a", "stdout", bb, "sh", "-c", "echo only-out; echo e >&2")
    assert (r.returncode, r.stdout, r.stderr) == (0, "only-out\n", "")


def test_run_it_with_a_stdout_needs_no_terminal(md_run, bb):
    """``-a stdout`` without stdin: our stdin is not the container's, so it need not be a tty."""
    r = md_run("run", "--rm", "-it", "-a", "stdout", bb, "echo", "fine")
    assert r.returncode == 0 and r.stdout.replace("\r\n", "\n") == "fine\n", r.stderr
