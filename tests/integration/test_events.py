"""``events``: the lifecycle events of one scenario, read back as ``docker events`` shows them.

The scenario runs once, in a store and a network namespace of this module's own (its
bridge and veths live there and vanish with it): pull, volume create/rm, network create,
a container on that network run, stopped and removed, tag/rmi, network rm. The tests read
its window (``--since T0 --until T1``) with filters and formats, and follow the log while
a container starts.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time

import pytest

from tests.integration.conftest import MINIDOCKER, Minidocker, _remove, one_error


class Scenario:
    def __init__(self, md: Minidocker, prefix: list[str], t0: str, t1: str, cid: str, bb: str, image_id: str):
        self.md, self.prefix, self.t0, self.t1, self.cid, self.bb = md, prefix, t0, t1, cid, bb
        self.image_id = image_id

    def events(self, *args: str) -> subprocess.CompletedProcess:
        return self.md.ok("events", "--since", self.t0, "--until", self.t1, *args, timeout=30)

    def lines(self, *args: str) -> list[str]:
        return self.events(*args).stdout.splitlines()


def _netns_holder() -> subprocess.Popen:
    holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"])
    for _ in range(100):  # until the sleep runs in its own namespace
        if os.readlink(f"/proc/{holder.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
            break
        time.sleep(0.01)
    return holder


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, registry):
    base = tmp_path_factory.mktemp("events")
    md = Minidocker(base / "root", base / "config")
    holder = _netns_holder()
    prefix = ["nsenter", f"--net=/proc/{holder.pid}/ns/net"]

    def ok(*args: str) -> str:
        r = subprocess.run([*prefix, *MINIDOCKER, *args], capture_output=True, text=True, env=md.env(), timeout=120)
        assert r.returncode == 0, f"minidocker {' '.join(args)} exited {r.returncode}:\n{r.stderr}"
        return r.stdout.strip()

    bb = f"{registry.host}/busybox:latest"
    try:
        t0 = f"{time.time():.9f}"
        md.ok("pull", "-q", bb)  # (the registry is on the loopback of the session's namespace, not this one's)
        ok("volume", "create", "evvol")
        ok("volume", "rm", "evvol")
        ok("network", "create", "--subnet", "10.78.0.0/24", "evnet")
        trapping = "trap 'exit 3' TERM; while :; do sleep 0.1; done"  # (PID 1 gets no default SIGTERM action)
        cid = ok("run", "-d", "--name", "evc", "--network", "evnet", bb, "sh", "-c", trapping)
        ok("exec", "evc", "true")
        image_id = ok("commit", "evc", "evimg:1")
        ok("stop", "-t", "5", "evc")
        ok("rm", "evc")
        ok("tag", bb, "evtag:1")
        ok("rmi", "evtag:1")
        ok("save", "-o", str(base / "evimg.tar"), "evimg:1")
        ok("rmi", "evimg:1")
        ok("network", "rm", "evnet")
        t1 = f"{time.time():.9f}"
        yield Scenario(md, prefix, t0, t1, cid, bb, image_id)
    finally:
        _remove(md, base)
        holder.kill()
        holder.wait()


def test_the_window_holds_each_event_in_order(scenario):
    got = [tuple(line.split()[1:3]) for line in scenario.lines()]
    # the monitor gives the address back (disconnect) while `stop`, which saw the container
    # exit, records its own event: the two come in either order, as they may in docker
    both = [("network", "disconnect"), ("container", "stop")]
    at = got.index(both[0]) if both[0] in got else -1
    if at > 0 and got[at - 1] == both[1]:
        got[at - 1 : at + 1] = both
    assert got == [
        ("image", "pull"),
        ("volume", "create"),
        ("volume", "destroy"),
        ("network", "create"),
        ("container", "create"),
        ("network", "connect"),
        ("container", "start"),
        ("container", "exec_create:"),  # docker's actions name the command: "exec_create: true"
        ("container", "exec_start:"),
        ("container", "exec_die"),
        ("container", "pause"),  # commit freezes the container while it reads its files
        ("container", "unpause"),
        ("container", "commit"),
        ("container", "kill"),
        ("container", "die"),
        ("network", "disconnect"),
        ("container", "stop"),
        ("container", "destroy"),
        ("image", "tag"),
        ("image", "untag"),
        ("image", "save"),
        ("image", "untag"),
        ("image", "delete"),
        ("network", "destroy"),
    ]


def test_docker_default_line_and_json(scenario):
    start = next(line for line in scenario.lines() if " container start " in line)
    stamp, rest = start.split(" ", 1)
    assert len(stamp) == len("2024-01-01T00:00:00.000000000Z") and stamp.endswith("Z")
    assert rest == f"container start {scenario.cid} (image={scenario.bb}, name=evc)"
    die = json.loads(scenario.events("--format", "json", "--filter", "event=die").stdout)
    assert die["status"] == "die" and die["id"] == scenario.cid and die["from"] == scenario.bb
    assert die["Actor"] == {
        "ID": scenario.cid,
        "Attributes": {"exitCode": "3", "image": scenario.bb, "name": "evc"},
    }
    assert die["Type"] == "container" and die["scope"] == "local"
    assert die["time"] == die["timeNano"] // 10**9 and float(scenario.t0) <= die["time"] <= float(scenario.t1)


@pytest.mark.parametrize(
    "filters, want",
    [
        (
            ["type=container"],
            ["create", "start", "exec_create: true", "exec_start: true", "exec_die"]
            + ["pause", "unpause", "commit", "kill", "die", "stop", "destroy"],
        ),
        (["event=exec_start"], ["exec_start: true"]),  # docker's prefix rule for exec actions
        (["type=volume"], ["create", "destroy"]),
        (["container=evc", "event=start"], ["start"]),
        (["event=start", "event=stop"], ["start", "stop"]),  # one key's values ORed
        (["action=kill"], ["kill"]),
        (["label=name=evc", "event=die"], ["die"]),  # docker's label= looks at every attribute
        (["label=name=other"], []),
        (["network=evnet"], ["create", "connect", "disconnect", "destroy"]),
        (["type=image", "image=evtag:1"], ["tag"]),
        (["type=image", "event=delete"], ["delete"]),
        (["volume=evvol"], ["create", "destroy"]),
    ],
)
def test_filters(scenario, filters, want):
    args = [a for f in filters for a in ("--filter", f)]
    assert scenario.lines(*args, "--format", "{{.Action}}") == want


def test_format_template_and_signal_attribute(scenario):
    lines = scenario.lines("-f", "event=kill", "--format", "{{.Type}} {{.Actor.Attributes.signal}} {{.ID}}")
    assert lines == [f"container 15 {scenario.cid}"]


def test_bad_filter_time_and_template_are_one_error(scenario):
    for args in (["--filter", "colour=red"], ["--since", "yesterday"], ["--format", "{{.Nope"]):
        r = scenario.md("events", "--until", "0s", *args)
        assert r.returncode == 125 and one_error(r.stderr) and r.stdout == "", (args, r.stderr)


def _read_line(stream, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline() if ready else ""


def test_follow_prints_a_start_as_it_happens_and_ctrl_c_exits_0(scenario):
    since = f"{time.time():.9f}"  # no race with the start: the window begins before it
    follower = scenario.md.popen(
        "events", "--since", since, "-f", "event=start", "--format", "{{.Actor.Attributes.name}}"
    )
    try:
        scenario.md.ok("run", "--rm", "--network", "none", "--name", "evfollow", scenario.bb, "true")
        assert _read_line(follower.stdout, 20) == "evfollow\n"
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 0
        assert "Traceback" not in follower.stderr.read()
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_exec_and_commit_attributes(scenario):
    fmt = "{{.Action}}|{{.Actor.Attributes.exitCode}}|{{.Actor.Attributes.imageID}}|{{.Actor.Attributes.imageRef}}"
    lines = scenario.lines("-f", "event=exec_die", "-f", "event=commit", "--format", fmt)
    assert lines == [
        "exec_die|0|<no value>|<no value>",
        f"commit|<no value>|{scenario.image_id}|evimg:1",
    ]  # (Go's missing key)
