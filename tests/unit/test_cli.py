"""The CLI's contract with a user: exit codes and one-line errors. No root, no registry."""

import os
import subprocess
import sys

import pytest

from minidocker.cli.render import human_ago, human_size, ports_text


def run(*args, root):
    env = {**os.environ, "MINIDOCKER_ROOT": str(root), "MINIDOCKER_CONFIG": str(root / "cfg")}
    return subprocess.run([sys.executable, "-m", "minidocker", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize(
    "args, code, text",
    [
        (["--no-such-flag"], 125, "unknown flag: --no-such-flag"),
        (["pull"], 125, "Missing argument"),
        (["pull", "Bad_Name"], 125, "invalid reference format"),
        (["pull", "busybox@sha256:123"], 125, "malformed digest"),
        (["rmi", "nosuchimage"], 1, "No such image: nosuchimage"),
        (["tag", "nosuchimage", "x"], 125, "No such image"),
        (["inspect", "nosuchimage"], 1, "No such object: nosuchimage"),
        (["pull", "--platform", "linux", "busybox"], 125, "invalid platform"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(tmp_path, args, code, text):
    r = run(*args, root=tmp_path)
    assert r.returncode == code, r.stderr
    assert text in r.stderr
    assert "Traceback" not in r.stderr


def test_images_on_an_empty_store(tmp_path):
    r = run("images", root=tmp_path)
    assert r.returncode == 0
    assert r.stdout.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert run("images", "-q", root=tmp_path).stdout == ""


def test_version():
    r = subprocess.run([sys.executable, "-m", "minidocker", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("minidocker version ")


@pytest.mark.parametrize(
    "n, text",
    [(0, "0B"), (999, "999B"), (1000, "1kB"), (4_261_000, "4.26MB"), (74_800_000, "74.8MB"), (1_230_000_000, "1.23GB")],
)
def test_human_size_like_docker(n, text):
    assert human_size(n) == text


@pytest.mark.parametrize(
    "ago, text",
    [
        (0.2, "Less than a second ago"),
        (5, "5 seconds ago"),
        (90, "About a minute ago"),
        (600, "10 minutes ago"),
        (3700, "About an hour ago"),
        (7 * 3600, "7 hours ago"),
        (3 * 86400, "3 days ago"),
        (21 * 86400, "3 weeks ago"),
    ],
)
def test_human_ago_like_docker(ago, text):
    assert human_ago("2026-01-01T00:00:00Z", now=1767225600 + ago) == text


@pytest.mark.parametrize(
    "ports, text",
    [
        ([], ""),
        ([{"host_ip": "", "host_port": 8080, "port": 80, "proto": "tcp"}], "0.0.0.0:8080->80/tcp"),
        (
            [
                {"host_ip": "", "host_port": 8080, "port": 80, "proto": "tcp"},
                {"host_ip": "127.0.0.1", "host_port": 5353, "port": 53, "proto": "udp"},
            ],
            "0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp",
        ),
    ],
)
def test_ports_column_like_docker(ports, text):
    assert ports_text(ports) == text
