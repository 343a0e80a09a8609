"""The pure parts of ``events``: docker's time forms, its filter rules, its default line,
and the log's append and rotation (on a real file in a temp store)."""

from __future__ import annotations

import calendar
import json
import os
import time

import pytest

from minidocker import eventlog
from minidocker.cli.events import default_line
from minidocker.errors import MinidockerError
from minidocker.eventstream import matches, parse_filters, parse_time, read_events

NOW = 1_700_000_000 * 10**9 + 123  # a fake clock: parse_time is given "now"
S = 10**9


@pytest.mark.parametrize(
    "value, want",
    [
        ("10m", NOW - 600 * S),
        ("1h30m", NOW - 5400 * S),
        ("1.5s", NOW - 1_500_000_000),
        ("250ms", NOW - 250_000_000),
        ("0s", NOW),
        ("0", NOW),
        ("-5m", NOW + 300 * S),  # a negative duration: in the future
        ("1700000000", 1_700_000_000 * S),
        ("1700000000.5", 1_700_000_000 * S + 500_000_000),
        ("1700000000.000000001", 1_700_000_000 * S + 1),
        ("2024-01-02T03:04:05Z", calendar.timegm((2024, 1, 2, 3, 4, 5)) * S),
        ("2024-01-02T03:04:05.25Z", calendar.timegm((2024, 1, 2, 3, 4, 5)) * S + 250_000_000),
        ("2024-01-02T03:04:05+02:00", calendar.timegm((2024, 1, 2, 1, 4, 5)) * S),
        ("2024-01-02T03:04:05-01:30", calendar.timegm((2024, 1, 2, 4, 34, 5)) * S),
        ("2024-01-02T03:04", int(time.mktime((2024, 1, 2, 3, 4, 0, 0, 0, -1))) * S),  # local time
        ("2024-01-02", int(time.mktime((2024, 1, 2, 0, 0, 0, 0, 0, -1))) * S),
    ],
)
def test_parse_time_reads_docker_forms(value, want):
    assert parse_time(value, NOW) == want


@pytest.mark.parametrize("value", ["yesterday", "10x", "2024-13", "1e9", "", "12:00"])
def test_parse_time_refuses_the_rest(value):
    with pytest.raises(MinidockerError, match="failed to parse value as time or duration"):
        parse_time(value, NOW)


def test_parse_filters_groups_values_and_refuses_unknown_keys():
    assert parse_filters(["type=container", "event=start", "action=die", "label=a=b"]) == {
        "type": {"container"},
        "event": {"start", "die"},
        "label": {"a=b"},
    }
    for bad in (["colour=red"], ["type"]):
        with pytest.raises(MinidockerError, match="Invalid filter"):
            parse_filters(bad)


def ev(type_: str, action: str, actor: str, **attrs: str) -> dict:
    return eventlog.event(type_, action, actor, attrs, NOW)


START = ev("container", "start", "3f4e5a6b" * 8, image="busybox:1.36", name="web", tier="front")
TAG = ev("image", "tag", "sha256:" + "a" * 64, name="me/app:2")
CONNECT = ev("network", "connect", "9" * 64, name="blue", type="bridge", container="3f4e5a6b" * 8)


@pytest.mark.parametrize(
    "filters, want",
    [
        ([], [START, TAG, CONNECT]),
        (["type=container"], [START]),
        (["type=container", "type=image"], [START, TAG]),  # one key's values ORed
        (["type=container", "event=die"], []),  # keys ANDed
        (["container=web"], [START]),
        (["container=3f4e"], [START]),  # an ID prefix
        (["container=we"], [START]),  # docker's FuzzyMatch: a value that begins the name matches too
        (["container=eb"], []),
        (["image=busybox"], [START]),  # the image without its tag
        (["image=busybox:1.36"], [START]),
        (["image=me/app"], [TAG]),
        (["image=sha256:" + "a" * 64], [TAG]),
        (["label=tier"], [START]),
        (["label=tier=front", "label=name=web"], [START]),  # every label= must hold
        (["label=tier=front", "label=name=db"], []),
        (["network=blue"], [CONNECT]),
        (["event=connect", "event=tag"], [TAG, CONNECT]),
        (["scope=local"], [START, TAG, CONNECT]),
        (["scope=swarm"], []),
    ],
)
def test_matches_follows_dockers_filter_rules(filters, want):
    wanted = parse_filters(filters)
    got = [e for e in (START, TAG, CONNECT) if matches(e, wanted)]
    assert got == want


def test_exec_actions_match_by_prefix():
    e = ev("container", "exec_start: sh -c true", "c" * 64, name="x")
    assert matches(e, parse_filters(["event=exec_start"]))
    assert not matches(e, parse_filters(["event=start"]))


def test_event_has_dockers_shape_and_default_line():
    assert START["status"] == "start" and START["id"] == START["Actor"]["ID"] and START["from"] == "busybox:1.36"
    assert "status" not in CONNECT and "from" not in TAG
    assert list(START["Actor"]["Attributes"]) == ["image", "name", "tier"]  # a Go map: sorted
    assert START["time"] == 1_700_000_000 and START["timeNano"] == NOW
    assert default_line(START) == (
        f"2023-11-14T22:13:20.000000123Z container start {'3f4e5a6b' * 8} (image=busybox:1.36, name=web, tier=front)"
    )


def test_record_appends_whole_lines_and_rotates_past_the_limit(tmp_path, monkeypatch):
    (tmp_path / "locks").mkdir()
    monkeypatch.setattr(eventlog, "MAX_BYTES", 2000)
    for i in range(40):
        eventlog.record(tmp_path, "volume", "create", f"v{i}", {"driver": "local"})
    live, old = tmp_path / "events.jsonl", tmp_path / "events.jsonl.1"
    eventlog.record(tmp_path, "volume", "create", "v40", {"driver": "local"})  # (the 40th may have rotated)
    assert live.stat().st_size <= 2000 and old.exists()  # bounded: the rest went to .1
    lines = old.read_text().splitlines() + live.read_text().splitlines()
    names = [json.loads(line)["Actor"]["ID"] for line in lines]
    assert len(names) < 41 and names == [f"v{i}" for i in range(41 - len(names), 41)]  # the newest, in order, none torn
    got = [e["Actor"]["ID"] for e in read_events(str(tmp_path), 0, None, {}, follow=False)]
    assert got == names


def test_record_never_fails_the_change_it_tells_of(tmp_path):
    eventlog.record(tmp_path / "gone", "volume", "create", "v", {})  # no store there: nothing, no error
    assert not (tmp_path / "gone").exists()


def test_concurrent_writers_never_interleave(tmp_path):
    (tmp_path / "locks").mkdir()
    children = []
    for w in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                for i in range(200):
                    eventlog.record(tmp_path, "container", "start", f"w{w}-{i}", {"name": "x" * 200})
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    ids = [json.loads(line)["Actor"]["ID"] for line in lines]  # every line parses: none torn
    assert sorted(ids) == sorted(f"w{w}-{i}" for w in range(4) for i in range(200))
