"""The data shaping of ``inspect`` and ``system prune``'s sizes: runtime/describe.py's
network settings, image/describe.py's comment, fsutil.disk_usage on real files."""

import os

import pytest

from minidocker.fsutil import disk_usage
from minidocker.image.describe import last_comment
from minidocker.runtime.describe import network_settings

PORTS = [
    {"port": 80, "proto": "tcp", "host_ip": "", "host_port": 8080},
    {"port": 53, "proto": "udp", "host_ip": "127.0.0.1", "host_port": 5353},
]
PUBLISHED = {
    "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
    "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
}


@pytest.mark.parametrize("name", ["none", "host", "container:0123"])
def test_no_address_without_a_network_of_ours(name):
    assert network_settings(name, {}, {}) == {"IPAddress": "", "Gateway": "", "Ports": {}, "Networks": {name: {}}}


def test_a_stopped_container_on_a_bridge_has_no_address_but_keeps_its_ports():
    got = network_settings("bridge", {"bridge": {"Aliases": [], "IPAddress": ""}}, {}, PORTS)
    assert got["IPAddress"] == "" and got["Ports"] == PUBLISHED
    assert got["Networks"]["bridge"]["IPAddress"] == "" and got["Networks"]["bridge"]["Aliases"] is None


def test_a_running_container_shows_every_network_it_is_on():
    eps = {"blue": {"Aliases": ["db"], "IPAddress": "172.30.0.5"}, "red": {"Aliases": [], "IPAddress": ""}}
    atts = {
        "blue": {"subnet": "172.30.0.0/16", "address": "172.30.0.5", "gateway": "172.30.0.1"},
        "red": {"subnet": "10.9.0.0/24", "address": "10.9.0.2", "gateway": "10.9.0.1"},
    }
    got = network_settings("blue", eps, atts, PORTS)
    assert (got["IPAddress"], got["IPPrefixLen"], got["Gateway"]) == ("172.30.0.5", 16, "172.30.0.1")
    assert got["Ports"] == PUBLISHED
    assert got["Networks"]["blue"] == {
        "IPAMConfig": {"IPv4Address": "172.30.0.5"},
        "Aliases": ["db"],
        "IPAddress": "172.30.0.5",
        "IPPrefixLen": 16,
        "Gateway": "172.30.0.1",
    }
    assert got["Networks"]["red"]["IPAddress"] == "10.9.0.2" and got["Networks"]["red"]["IPAMConfig"] is None


@pytest.mark.parametrize(
    "config, comment",
    [
        ({"history": None}, ""),
        ({"history": []}, ""),
        ({"history": [{"created_by": "x"}]}, ""),
        ({"history": [{"comment": "first"}, {"comment": "newest"}]}, "newest"),
        # a commit without -m: the base's older comment is not the new image's
        ({"history": [{"comment": "first"}, {"comment": "base"}, {"comment": ""}]}, ""),
        ({"history": [{"created_by": "y"}], "comment": "from the config"}, "from the config"),
    ],
)
def test_an_images_comment_is_its_newest_history_entrys_or_its_configs(config, comment):
    assert last_comment(config) == comment


def test_disk_usage_counts_allocated_blocks_of_every_tree(tmp_path):
    a, b = tmp_path / "blobs", tmp_path / "layers" / "x" / "diff"
    a.mkdir()
    b.mkdir(parents=True)
    (a / "full").write_bytes(os.urandom(1 << 20))
    with open(b / "sparse", "wb") as f:
        f.truncate(100 << 20)  # 100 MiB long, no block allocated
    used = disk_usage(a, tmp_path / "layers", tmp_path / "missing")
    assert used == (a / "full").stat().st_blocks * 512 + (b / "sparse").stat().st_blocks * 512
    assert 1 << 20 <= used < 2 << 20
    assert disk_usage(tmp_path / "missing") == 0
