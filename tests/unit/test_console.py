"""The console socket's pure parts (runtime/console.py): frames, detach keys, and docker's
rule for merging environments (runtime/spec.py)."""

import pytest

from minidocker.errors import MinidockerError
from minidocker.runtime.console import EXIT, STDERR, STDOUT, DetachScanner, frame, parse_detach_keys, split_frames
from minidocker.runtime.spec import merge_env


def test_frames_survive_any_split():
    stream = frame(STDOUT, b"out") + frame(STDERR, b"") + frame(EXIT, b"\0\0\0\x07")
    for cut in range(len(stream) + 1):
        first, rest = split_frames(stream[:cut])
        second, left = split_frames(rest + stream[cut:])
        assert first + second == [(STDOUT, b"out"), (STDERR, b""), (EXIT, b"\0\0\0\x07")] and left == b""


@pytest.mark.parametrize(
    "text, keys",
    [("ctrl-p,ctrl-q", b"\x10\x11"), ("ctrl-a,x", b"\x01x"), ("ctrl-@", b"\0"), ("ctrl-_,ctrl-[", b"\x1f\x1b")],
)
def test_detach_keys(text, keys):
    assert parse_detach_keys(text) == keys


@pytest.mark.parametrize("text", ["ctrl-", "ctrl-xx", "shift-a", "", "a,,b"])
def test_bad_detach_keys(text):
    with pytest.raises(MinidockerError) as e:
        parse_detach_keys(text)
    assert e.value.message == f"Invalid detach keys ({text}) provided"


@pytest.mark.parametrize(
    "chunks, sent, detached",
    [
        ([b"ls\r"], b"ls\r", False),
        ([b"a\x10\x11"], b"a", True),
        ([b"a\x10", b"\x11"], b"a", True),  # the sequence split across reads
        ([b"\x10x"], b"\x10x", False),  # a ctrl-p not followed by ctrl-q goes on to the container
        ([b"\x10", b"\x10\x11"], b"\x10", True),
    ],
)
def test_detach_scanner(chunks, sent, detached):
    scanner, out, done = DetachScanner(b"\x10\x11"), b"", False
    for chunk in chunks:
        data, done = scanner.feed(chunk)
        out += data
    assert (out, done) == (sent, detached)


@pytest.mark.parametrize(
    "base, overrides, env",
    [
        (["PATH=/bin", "A=1"], ["PATH=/usr/bin", "B=2"], ["PATH=/usr/bin", "A=1", "B=2"]),  # replaced in place
        (["A=1", "B=2"], ["A=3", "A=4"], ["A=4", "B=2"]),
        (["A=1", "UNSET_IN_CALLER_X=2"], ["UNSET_IN_CALLER_X"], ["A=1"]),  # a bare name the caller lacks: removed
    ],
)
def test_env_merged_as_docker(base, overrides, env):
    assert merge_env(base, overrides) == env


def test_a_client_dropped_in_the_round_that_found_it_readable_is_left_alone(tmp_path):
    """The monitor selects on the container's output and on its clients at once. A client
    that detaches (closes its socket) as output arrives is dropped by the broadcast (its
    peer is gone: EPIPE), and select's list still holds its number: serving that number
    must neither fail (a monitor that dies takes the container's pty with it) nor block."""
    from minidocker.runtime.console import ConsoleServer, connect

    server = ConsoleServer(tmp_path / "console.sock", -1, None)
    try:
        client = connect(tmp_path / "console.sock")
        server.ready(server.listener.fileno())
        (fd,) = server.clients
        client.close()  # ctrl-p ctrl-q
        server.broadcast("stdout", b"# ")  # the prompt, in the same round
        assert fd not in server.clients
        server.ready(fd)  # (it was in select's list of readable descriptors)
        again = connect(tmp_path / "console.sock")  # a new client may get the same number...
        server.ready(server.listener.fileno())
        server.ready(fd)  # ...and has sent nothing yet: no wait for it
        assert len(server.clients) == 1
        again.close()
    finally:
        server.close(0)
