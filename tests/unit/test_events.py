"""Container events derived from two readings of the records (runtime/events.py)."""

import pytest

from minidocker.runtime.events import changes, past

T = "2024-05-01T10:00:0{}.000000000Z"


def facts(status: str, started: int | None = None, finished: int | None = None, code: int = 0) -> dict:
    return {
        "name": "web",
        "image": "busybox",
        "status": status,
        "created": T.format(0),
        "started": T.format(started) if started is not None else "",
        "finished": T.format(finished) if finished is not None else "",
        "code": code,
    }


@pytest.mark.parametrize(
    "before, after, actions",
    [
        (None, facts("created"), ["create"]),
        (None, facts("running", 1), ["create", "start"]),
        (None, facts("exited", 1, 2), ["create", "start", "die"]),
        (facts("created"), facts("running", 1), ["start"]),
        (facts("running", 1), facts("running", 1), []),
        (facts("running", 1), facts("paused", 1), ["pause"]),
        (facts("paused", 1), facts("running", 1), ["unpause"]),
        (facts("running", 1), facts("exited", 1, 2, code=3), ["die"]),
        (facts("exited", 1, 2), facts("running", 3, 2), ["start"]),  # started again
        (facts("exited", 3, 4), facts("exited", 5, 6), ["start", "die"]),  # a restart between readings
        (facts("running", 1), None, ["destroy"]),
    ],
)
def test_changes_between_two_readings(before, after, actions):
    events = changes({"c1": before} if before else {}, {"c1": after} if after else {})
    assert [e["Action"] for e in events] == actions
    assert all(e["id"] == "c1" and e["Actor"]["Attributes"]["name"] == "web" for e in events)


def test_die_carries_the_exit_code_and_times_are_the_records():
    (die,) = changes({"c1": facts("running", 1)}, {"c1": facts("exited", 1, 2, code=3)})
    assert die["Actor"]["Attributes"] == {"exitCode": "3", "image": "busybox", "name": "web"}
    assert die["time"] == 1_714_557_602 and die["timeNano"] == 1_714_557_602 * 10**9


def test_past_events_in_a_span_oldest_first():
    snap = {"a": facts("exited", 1, 5), "b": facts("running", 3)}
    since, until = 1_714_557_601.0, 1_714_557_605.0  # 10:00:01 .. 10:00:05, the end excluded
    assert [(e["id"], e["Action"]) for e in past(snap, since, until)] == [("a", "start"), ("b", "start")]
    assert [e["Action"] for e in past(snap, 0, None)] == ["create", "create", "start", "start", "die"]
