"""``--device`` and ``--device-cgroup-rule`` read as docker reads them (runtime/devices.py),
and the device cgroup's rules they add on top of docker's defaults, run through the v2
filter's program (the interpreter of tests/unit/test_bpf_program.py); and ``--ipc``'s modes."""

from __future__ import annotations

import os
import stat

import pytest

from minidocker.errors import MinidockerError
from minidocker.linux import bpf
from minidocker.linux.cgroups import DEVICE_RULES, Limits
from minidocker.options import RunOptions
from minidocker.runtime import devices
from minidocker.runtime.spec import ContainerSpec, check_ipc_mode
from tests.unit.test_bpf_program import run


@pytest.mark.parametrize(
    ("text", "host", "container", "perms"),
    [
        ("/dev/null", "/dev/null", "/dev/null", "rwm"),
        ("/dev/null:/dev/mynull", "/dev/null", "/dev/mynull", "rwm"),
        ("/dev/null:r", "/dev/null", "/dev/null", "r"),  # two parts, the second reads as permissions
        ("/dev/null:/dev/x/../y:wm", "/dev/null", "/dev/y", "wm"),  # the container's path cleaned
        ("/dev/null:mr", "/dev/null", "/dev/null", "mr"),
    ],
)
def test_parse_device(text, host, container, perms):
    assert devices.parse_device(text) == {"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": perms}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a:b:c:d", "bad format for path: a:b:c:d"),
        (":/x", "bad format for path: :/x"),
        ("/dev/null:/x:rr", "bad mode specified: rr"),  # each letter at most once
        ("/dev/null:/x:", "bad mode specified: "),
        ("/dev/null:x", "x is not an absolute path"),
        ("/dev/null:rwq", "rwq is not an absolute path"),  # not permissions: a (relative) path
    ],
)
def test_parse_device_refuses(text, words):
    with pytest.raises(MinidockerError) as e:
        devices.parse_device(text)
    assert str(e.value) == f'invalid argument "{text}" for "--device" flag: {words}'


@pytest.mark.parametrize("rule", ["c 42:* rmw", "b 8:0 r", "a *:* m", "c *:3 wr"])
def test_cgroup_rule_accepted(rule):
    assert devices.check_cgroup_rule(rule) == rule


@pytest.mark.parametrize("rule", ["c 42:*", "x 1:2 r", "c 1:2 rwmx", "c a:1 r", "c 1:2  r", " c 1:2 r", "c 1-2 r"])
def test_cgroup_rule_refused(rule):
    with pytest.raises(MinidockerError, match="invalid device cgroup format"):
        devices.check_cgroup_rule(rule)


def test_a_host_node_as_the_container_gets_it():
    """/dev/null's type, numbers, mode and owner, and its rule, from the host's node."""
    [node] = devices.device_nodes(devices.parse_device("/dev/null:/dev/n:rw"))
    st = os.stat("/dev/null")
    assert stat.S_ISCHR(node["mode"]) and node["mode"] == st.st_mode
    assert (node["major"], node["minor"], node["uid"], node["gid"]) == (1, 3, st.st_uid, st.st_gid)
    assert node["rule"] == "c 1:3 rw" and node["path"] == "/dev/n" and node["host"] == "/dev/null"


def test_a_directory_gives_every_node_under_it():
    """--device of a directory (the host's /dev itself): its device nodes, at the same place
    under the container's path; its symlinks (/dev/stdin) and other files are not nodes."""
    nodes = {n["path"]: n["rule"] for n in devices.device_nodes(devices.parse_device("/dev:/dev/mine:r"))}
    assert nodes["/dev/mine/null"] == "c 1:3 r" and nodes["/dev/mine/zero"] == "c 1:5 r"
    assert "/dev/mine/stdin" not in nodes and os.path.islink("/dev/stdin")
    assert all(
        stat.S_ISCHR(os.lstat(p.replace("/dev/mine", "/dev", 1)).st_mode) or r.startswith("b ")
        for p, r in nodes.items()
    )


@pytest.mark.parametrize(("path", "words"), [("/etc/hostname", "not a device node"), ("/no/such", "no such file")])
def test_not_a_device(path, words):
    with pytest.raises(MinidockerError, match=f'adding custom device "{path}": {words}'):
        devices.device_nodes(devices.parse_device(path))


def test_rules_come_after_docker_defaults_and_allow_what_they_say():
    spec = ContainerSpec(id="x", name="x", image="i", image_id="i", argv=[], env=[])
    spec.devices = [devices.parse_device("/dev/null:/dev/n:r")]
    spec.device_cgroup_rules = ["c 10:* rw"]
    extra = devices.cgroup_rules(spec)
    assert extra == ("c 1:3 r", "c 10:* rw")
    rules = Limits(devices=extra).device_rules()
    assert rules[: len(DEVICE_RULES)] == DEVICE_RULES and Limits().device_rules() == DEVICE_RULES
    program = bpf.device_program(rules)
    read, write = 2, 4
    assert run(program, bpf.DEV_CHAR, 10, 237, read | write) == 1  # the rule's
    assert run(program, bpf.DEV_CHAR, 11, 0, read) == 0  # no rule's
    assert run(bpf.device_program(DEVICE_RULES), bpf.DEV_CHAR, 10, 237, read) == 0  # not a default


IPC_MODES = [  # (--ipc, --userns, docker's error or None: accepted)
    ("", "host", None),  # docker's default: private
    ("private", "auto", None),
    ("shareable", "host", None),
    ("host", "host", None),
    ("none", "host", None),
    ("container:web", "host", None),
    ("bogus", "host", "--ipc: invalid IPC mode"),
    ("container:", "host", "--ipc: invalid IPC mode"),
    ("Host", "host", "--ipc: invalid IPC mode"),
    ("host", "auto", "--ipc is not supported with --userns=auto"),
]


@pytest.mark.parametrize(("mode", "userns", "words"), IPC_MODES)
def test_ipc_modes(mode, userns, words):
    try:
        check_ipc_mode(RunOptions(ipc=mode, userns=userns))
        said = None
    except MinidockerError as e:
        said = str(e)
    assert said == words
