"""Reading and following a container's json-file log (runtime/logs.py), on a real file.

Following is driven by the ``running`` callback, which here plays the container's monitor:
each time the reader finds the end of the file and asks, it appends the next piece of output
(so every interleaving is the same on every run), and says the container exited once the
script is done.
"""

import json

import pytest

from minidocker.runtime.logs import read_log


def record(text: str, stream: str = "stdout", when: str = "2024-05-01T10:00:00Z") -> bytes:
    return (json.dumps({"log": text, "stream": stream, "time": when}) + "\n").encode()


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "container.log"
    path.write_bytes(b"".join(record(f"line {i}\n") for i in range(5)))
    return path


@pytest.mark.parametrize("tail, kept", [(None, 5), (0, 0), (2, 2), (5, 5), (50, 5)])
def test_tail_keeps_the_last_lines(log, tail, kept):
    lines = [line for _stream, _when, line in read_log(log, tail)]
    assert lines == [f"line {i}\n" for i in range(5 - kept, 5)]


def test_streams_and_times_come_back_as_written(tmp_path):
    path = tmp_path / "container.log"
    path.write_bytes(record("out\n") + record("err\n", "stderr", "2024-05-01T10:00:01Z"))
    assert list(read_log(path)) == [
        ("stdout", "2024-05-01T10:00:00Z", "out\n"),
        ("stderr", "2024-05-01T10:00:01Z", "err\n"),
    ]


def test_a_container_that_never_logged_has_an_empty_log(tmp_path):
    assert list(read_log(tmp_path / "container.log", running=lambda: False)) == []


def scripted_writer(path, pieces: list[bytes]):
    """A ``running`` callback that appends the next piece each time it is asked, and says
    "exited" when none is left; ``asked`` counts the questions."""
    todo = list(pieces)

    def running() -> bool:
        running.asked += 1
        if not todo:
            return False
        with open(path, "ab") as f:
            f.write(todo.pop(0))
        return True

    running.asked = 0
    return running


def test_follow_reads_lines_written_later_and_ends_when_the_container_exits(log):
    later = record("six\n")
    writer = scripted_writer(log, [later[:10], later[10:], record("seven\n")])  # one line in two writes
    lines = [line for _s, _t, line in read_log(log, tail=1, running=writer)]
    assert lines == ["line 4\n", "six\n", "seven\n"]
    assert writer.asked == 4


def test_follow_joins_a_line_the_container_finished_as_it_exited(log):
    last = record("bye\n")
    state = {"calls": 0}

    def writes_half_then_the_rest_and_exits() -> bool:
        state["calls"] += 1
        with open(log, "ab") as f:
            f.write(last[:7] if state["calls"] == 1 else last[7:])
        return state["calls"] == 1

    lines = [line for _s, _t, line in read_log(log, tail=0, running=writes_half_then_the_rest_and_exits)]
    assert lines == ["bye\n"]


@pytest.mark.parametrize("tail", [None, 1])
def test_a_line_being_written_is_never_decoded_half(log, tail):
    last = record("bye\n")
    with open(log, "ab") as f:
        f.write(last[:7])  # the monitor is halfway through this line
    assert [line for _s, _t, line in read_log(log, tail)][-1] == "line 4\n"

    def finishes_it_and_exits() -> bool:
        with open(log, "ab") as f:
            f.write(last[7:])
        return False

    assert [line for _s, _t, line in read_log(log, tail, running=finishes_it_and_exits)][-1] == "bye\n"


NOW = 1_714_557_600.0  # 2024-05-01T10:00:00Z


@pytest.mark.parametrize(
    "text, when",
    [
        ("10m", NOW - 600),
        ("1h30m", NOW - 5400),
        ("1.5s", NOW - 1.5),
        ("250ms", NOW - 0.25),
        ("1714557000", 1_714_557_000.0),
        ("1714557000.5", 1_714_557_000.5),
        ("2024-05-01T09:00:00Z", NOW - 3600),
        ("2024-05-01T11:00:00+02:00", NOW - 3600),
        ("2024-05-01T09:59:59.123456789Z", NOW - 0.876544),
        ("2024-05-01T09:00:00", NOW - 3600),  # no zone: UTC
        ("2024-05-01", NOW - 36000),
    ],
)
def test_time_bounds_as_docker_takes_them(text, when):
    from minidocker.runtime.logs import parse_time_bound

    assert parse_time_bound(text, NOW) == pytest.approx(when, abs=1e-6)


@pytest.mark.parametrize("text", ["yesterday", "10x", "", "2024-13-01", "-5m"])
def test_a_bad_time_bound_is_one_error(text):
    from minidocker.errors import MinidockerError
    from minidocker.runtime.logs import parse_time_bound

    with pytest.raises(MinidockerError) as e:
        parse_time_bound(text, NOW)
    assert "is not a duration, Unix time or RFC 3339 time" in e.value.message


def test_since_and_until_keep_a_span_then_tail(tmp_path):
    path = tmp_path / "container.log"
    path.write_bytes(b"".join(record(f"at {m}\n", when=f"2024-05-01T10:0{m}:00.000000001Z") for m in range(6)))
    since, until = NOW + 60, NOW + 240  # 10:01 .. 10:04, the end excluded

    def lines(**kw):
        return [line for _s, _w, line in read_log(path, **kw)]

    assert lines(since=since, until=until) == ["at 1\n", "at 2\n", "at 3\n"]
    assert lines(since=since, until=until, tail=2) == ["at 2\n", "at 3\n"]
    assert lines(until=NOW + 1) == ["at 0\n"]
    assert lines(since=NOW + 300, running=lambda: False) == ["at 5\n"]


@pytest.mark.parametrize(
    "max_file, kept", [(1, ["container.log"]), (3, ["container.log", "container.log.1", "container.log.2"])]
)
def test_rotation_keeps_max_file_files_of_max_size(tmp_path, max_file, kept):
    from minidocker.runtime.logfile import LogWriter

    path = tmp_path / "container.log"
    log = LogWriter(path, max_size=300, max_file=max_file)
    for i in range(40):
        log.feed("stdout", f"line {i:02}\n".encode())
    log.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == kept
    assert all(p.stat().st_size <= 300 for p in tmp_path.iterdir())
    lines = [line for _s, _w, line in read_log(path)]
    assert lines[-1] == "line 39\n" and lines == [f"line {i:02}\n" for i in range(40 - len(lines), 40)]
    assert len(lines) > 3 * (max_file - 1)  # the older files are read too, oldest first


def test_no_log_driver_writes_nothing(tmp_path):
    from minidocker.runtime.logfile import LogWriter

    log = LogWriter(None)
    log.feed("stdout", b"dropped\n")
    log.flush()
    assert list(tmp_path.iterdir()) == []
