"""Network records and address allocation (runtime/networks.py): pure files in a temp dir."""

from __future__ import annotations

import pytest

from minidocker.errors import Conflict, MinidockerError, NoSuchNetwork
from minidocker.runtime.networks import NetworkStore


def test_bridge_is_predefined_and_allocates_in_order(tmp_path):
    store = NetworkStore(tmp_path)
    bridge = store.get("bridge")
    assert (bridge["Bridge"], bridge["Subnet"], bridge["Gateway"]) == ("minidocker0", "10.88.0.0/16", "10.88.0.1")
    assert store.get("bridge")["Id"] == bridge["Id"]  # made once, then kept
    assert [store.allocate("bridge", c) for c in ("a", "b", "c")] == ["10.88.0.2", "10.88.0.3", "10.88.0.4"]
    assert store.allocate("bridge", "b") == "10.88.0.3"  # the same container keeps its address
    store.release("bridge", "b")
    assert store.allocate("bridge", "d") == "10.88.0.3"  # a given-back address is handed out again
    with pytest.raises(MinidockerError, match="pre-defined"):
        store.remove("bridge")


def test_create_picks_free_subnets_and_refuses_overlaps(tmp_path):
    store = NetworkStore(tmp_path)
    blue = store.create("blue")
    red = store.create("red")
    assert blue["Subnet"] == "10.89.0.0/24" and red["Subnet"] == "10.90.0.0/24"
    assert blue["Gateway"] == "10.89.0.1" and blue["Bridge"].startswith("mdbr-") and len(blue["Bridge"]) <= 15
    with pytest.raises(Conflict, match="already exists"):
        store.create("blue")
    with pytest.raises(Conflict, match="overlaps"):
        store.create("green", "10.88.5.0/24")
    for bad in ("nonsense", "10.0.0.0/31", "fd00::/64"):
        with pytest.raises(MinidockerError):
            store.create("x", bad)
    with pytest.raises(MinidockerError, match="invalid network name"):
        store.create("host")
    assert [n["Name"] for n in store.all()] == ["blue", "bridge", "red"]


def test_full_network_and_removal(tmp_path):
    store = NetworkStore(tmp_path)
    store.create("tiny", "10.95.0.0/30")  # hosts .1 (gateway) and .2
    assert store.allocate("tiny", "a") == "10.95.0.2"
    with pytest.raises(MinidockerError, match="no free address"):
        store.allocate("tiny", "b")
    with pytest.raises(Conflict, match="active endpoints"):
        store.remove("tiny")
    store.release("tiny", "a")
    store.remove("tiny")
    with pytest.raises(NoSuchNetwork):
        store.get("tiny")


def test_requested_addresses_names_and_the_networks_a_container_joined(tmp_path):
    store = NetworkStore(tmp_path)
    blue = store.create("blue", "10.60.0.0/24", internal=True)
    assert blue["Internal"] is True and blue["Names"] == {}
    assert store.allocate("blue", "a", "10.60.0.9", ["web", "aaaaaaaaaaaa"], ["10.0.0.53"]) == "10.60.0.9"
    with pytest.raises(Conflict, match="already in use"):
        store.allocate("blue", "b", "10.60.0.9")
    with pytest.raises(Conflict, match="already in use"):
        store.allocate("blue", "b", "10.60.0.1")  # the gateway
    with pytest.raises(MinidockerError, match="no configured subnet"):
        store.allocate("blue", "b", "10.61.0.5")
    assert store.allocate("blue", "b") == "10.60.0.2"
    store.allocate("bridge", "a")
    assert store.joined("a") == ["blue", "bridge"] and store.joined("b") == ["blue"]
    doc = store.get("blue")
    assert doc["Names"]["a"] == ["web", "aaaaaaaaaaaa"] and doc["Dns"] == {"a": ["10.0.0.53"]}
    after = store.release("blue", "a")
    assert after is not None and "a" not in after["Containers"] and "a" not in after["Names"]
    assert "a" not in after["Dns"] and store.joined("a") == ["bridge"]
