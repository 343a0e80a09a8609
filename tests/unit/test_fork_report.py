"""The one fork-and-report protocol (runtime/forked.py) and docker's exit codes (errors.py),
on real pipes and real child processes. No root."""

import errno
import os
import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidocker.errors import ChildFailed, ExitCode, MinidockerError, exit_code
from minidocker.runtime.forked import MESSAGE_LIMIT, describe_failure, read_report, report, report_failure, run_in_child


def wait_status_of(body) -> int:
    """The wait status of a real child process that runs ``body()``, then exits 0."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return status


@pytest.mark.parametrize("code", [0, 1, 2, 125, 126, 127, 255])
def test_exit_code_of_an_exit_is_the_code(code):
    assert exit_code(wait_status_of(lambda: os._exit(code))) == code


def kill_self(sig: int) -> None:
    if sig != signal.SIGKILL:  # (SIGKILL's action cannot be changed, nor caught)
        signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


# (no SIGQUIT, SIGSEGV, SIGABRT: their default action writes a core file)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1])
def test_exit_code_of_a_signal_is_128_plus_n(sig):
    assert exit_code(wait_status_of(lambda: kill_self(sig))) == ExitCode.SIGNAL_BASE + sig == 128 + sig


def test_an_empty_pipe_reports_nothing_and_facts_come_back():
    r, w = os.pipe()
    os.close(w)
    assert read_report(r) == {}
    r, w = os.pipe()
    report(w, pid=4321)
    os.close(w)
    assert read_report(r) == {"pid": 4321}


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    step=st.from_regex(r"[a-z][a-z_]{0,39}", fullmatch=True),
    message=st.text(max_size=2 * MESSAGE_LIMIT),
    code=st.integers(0, 255),
)
def test_a_failure_report_arrives_whole(step, message, code):
    """Any message (newlines, quotes, any script) comes back as it was written, cut to the
    limit, with its step and exit code."""
    r, w = os.pipe()
    report_failure(w, step, message, code)
    os.close(w)
    with pytest.raises(ChildFailed) as caught:
        read_report(r)
    assert (caught.value.step, caught.value.message, caught.value.exit_code) == (step, message[:MESSAGE_LIMIT], code)


def test_the_longest_report_takes_one_write_into_an_empty_pipe():
    """The child never blocks on its report, and the report is never split: even the longest
    (every character escaped as a surrogate pair) fits a pipe's buffer at once."""
    r, w = os.pipe()
    os.set_blocking(w, False)  # a write that did not fit would fail (and report drops it)
    report_failure(w, "prepare_rootfs", "\U0010ffff" * (2 * MESSAGE_LIMIT))
    os.close(w)
    with pytest.raises(ChildFailed) as caught:
        read_report(r)
    assert caught.value.message == "\U0010ffff" * MESSAGE_LIMIT


def test_the_reader_raises_the_error_it_is_given():
    class Custom(MinidockerError):
        def __init__(self, message, step, exit_code):
            super().__init__(f"{step}/{message}", exit_code=exit_code)

    r, w = os.pipe()
    report_failure(w, "switch_user", "no such user", 125)
    os.close(w)
    with pytest.raises(Custom) as caught:
        read_report(r, Custom)
    assert caught.value.message == "switch_user/no such user" and caught.value.exit_code == 125


@pytest.mark.parametrize(
    "error, text",
    [
        (MinidockerError("unable to find user x"), "unable to find user x"),
        (OSError(errno.ENOENT, "No such file or directory", "/x"), "No such file or directory: /x"),
        (OSError(errno.EPERM, "iptables refused"), "iptables refused"),
        (KeyError("k"), "KeyError: 'k'"),
    ],
)
def test_describe_failure_is_one_line_for_a_user(error, text):
    assert describe_failure(error) == text


def test_run_in_child_returns_the_childs_code():
    assert run_in_child(lambda: None) == 0
    assert run_in_child(lambda: 3) == 3
    assert run_in_child(lambda: kill_self(signal.SIGKILL)) == 137


def test_run_in_child_raises_the_childs_failure():
    def open_a_missing_file():
        open("/nonexistent-minidocker-test/file")

    with pytest.raises(ChildFailed) as caught:
        run_in_child(open_a_missing_file)
    assert caught.value.message == "No such file or directory: /nonexistent-minidocker-test/file"
    assert caught.value.step == "open_a_missing_file" and caught.value.exit_code == 125


def test_the_childs_reason_comes_before_the_parents():
    """The child fails; the parent's side fails because of it (its pipe is empty): the user
    reads the child's reason."""
    r, w = os.pipe()

    def work():
        os.close(r)
        raise MinidockerError("the child's reason")

    def alongside():
        os.close(w)
        if not os.read(r, 1):
            raise RuntimeError("the pipe closed early")

    with pytest.raises(ChildFailed, match="the child's reason"):
        run_in_child(work, alongside)
    os.close(r)
