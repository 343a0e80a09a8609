"""Networking by default, as docker: no ``--network`` means the bridge, with NAT to the
world; ``--network container:X``, ``--ip``, ``-P``, ``--add-host``, ``--dns*``, ``network
connect``/``disconnect``/``prune``, ``--internal``, and the refusals.

The session runs in a network namespace of its own (tests/conftest.py). "The world" is
another namespace the test makes (tests/support/outside.py), joined to ours by a veth pair
with addresses the test chose: no packet leaves the test's namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import one_error
from tests.support.outside import HOST_SIDE, PEER_SERVER, outside_namespace


@pytest.fixture
def net(md_run):
    """The shared store; every network a test made is removed afterwards (after its containers)."""
    before = {n["Name"] for n in json.loads(md_run.ok("network", "inspect", *_networks(md_run)).stdout)}
    yield md_run
    made = set(md_run("ps", "-aq", "--no-trunc").stdout.split())
    if made:
        md_run("rm", "-f", *made)
    for name in set(_networks(md_run)) - before:
        md_run("network", "rm", name)


def _networks(m) -> list[str]:
    return [line.split()[1] for line in m.ok("network", "ls").stdout.splitlines()[1:]]


def _inspect(m, cid: str) -> dict:
    return json.loads(m.ok("inspect", cid).stdout)[0]


def _serve(m, bb, *flags: str, reply: str = "hi") -> str:
    """A detached container answering ``reply`` on port 8080."""
    cid = m.ok(
        "run", "-d", *flags, bb, "sh", "-c", f"while true; do nc -l -p 8080 -e echo {reply}; done"
    ).stdout.strip()
    time.sleep(0.3)
    return cid


def test_default_is_the_bridge_reaching_containers_and_the_world_through_nat(net, bb):
    with outside_namespace(f"d{os.getpid() % 10000}") as world:
        server = world.start(PEER_SERVER, world.address, "9000")
        try:
            web = _serve(net, bb)
            info = _inspect(net, web)
            assert info["HostConfig"]["NetworkMode"] == "bridge"
            address = info["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
            assert address.startswith("10.88.") and info["NetworkSettings"]["IPAddress"] == address
            r = net.ok(
                "run", "--rm", bb, "sh", "-c", f"nc -w 3 {address} 8080 </dev/null; nc -w 3 {world.address} 9000"
            )
            # the other container by its address, and the world, which sees the host's address (NAT)
            assert r.stdout.splitlines() == ["hi", f"seen-from {HOST_SIDE}"], r.stderr
            assert "nameserver" not in net.ok("run", "--rm", bb, "cat", "/etc/resolv.conf").stdout  # none on the host
        finally:
            server.kill()
            server.wait()


def test_the_default_start_imports_neither_pyroute2_nor_runs_iptables_once_the_bridge_exists(net, bb):
    net.ok("run", "--rm", bb, "true")  # the bridge exists now
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "minidocker", "run", "--rm", bb, "true"],
        capture_output=True,
        text=True,
        env=net.env(),
    )
    assert r.returncode == 0, r.stderr
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "pyroute2" not in imported and "dnslib" not in imported
    assert "minidocker.linux.netlink" in imported
    explained = net.ok("run", "--rm", "--explain", bb, "true").stderr
    assert "RTM_NEWLINK" in explained and "RTM_NEWROUTE" in explained
    assert "iptables" not in explained and "created (bridge)" not in explained


def test_the_gateway_stays_reachable_when_a_container_leaves(net, bb):
    """A bridge's MAC is its own, not its lowest port's: when a container leaves, the others
    (whose ARP caches hold the gateway's MAC) keep their gateway."""
    net.ok("network", "create", "--subnet", "10.67.0.0/24", f"stay{os.getpid()}")
    info = json.loads(net.ok("network", "inspect", f"stay{os.getpid()}").stdout)[0]
    bridge = info["Options"]["com.docker.network.bridge.name"]

    def mac() -> str:
        return json.loads(subprocess.run(["ip", "-j", "link", "show", bridge], capture_output=True).stdout)[0][
            "address"
        ]

    cids = [net.ok("run", "-d", "--network", f"stay{os.getpid()}", bb, "sleep", "300").stdout.strip() for _ in range(3)]
    before = mac()
    for cid in cids:
        net.ok("exec", cid, "ping", "-c1", "-W2", "10.67.0.1")  # every ARP cache holds the gateway's MAC
    net.ok("rm", "-f", cids[1])
    assert mac() == before
    for cid in (cids[0], cids[2]):
        net.ok("exec", cid, "ping", "-c1", "-W2", "10.67.0.1")


def test_internal_network_has_no_way_out(net, bb):
    with outside_namespace(f"i{os.getpid() % 10000}") as world:
        server = world.start(PEER_SERVER, world.address, "9000")
        try:
            net.ok("network", "create", "--internal", "--subnet", "10.79.0.0/24", "sealed")
            assert json.loads(net.ok("network", "inspect", "sealed").stdout)[0]["Internal"] is True
            peer = _serve(net, bb, "--network", "sealed")
            address = _inspect(net, peer)["NetworkSettings"]["IPAddress"]
            r = net(
                "run",
                "--rm",
                "--network",
                "sealed",
                bb,
                "sh",
                "-c",
                f"ip route; nc -w 3 {address} 8080 </dev/null; nc -w 2 {world.address} 9000 && echo OUT",
            )
            assert (
                "default" not in r.stdout and "hi" in r.stdout and "OUT" not in r.stdout and "seen-from" not in r.stdout
            )
        finally:
            server.kill()
            server.wait()


def test_container_network_mode_shares_the_namespace_and_its_files(net, bb):
    web = _serve(net, bb, "--name", f"pod-{os.getpid()}", "-h", "podhost")
    r = net.ok(
        "run",
        "--rm",
        "--network",
        f"container:pod-{os.getpid()}",
        bb,
        "sh",
        "-c",
        "nc -w 3 127.0.0.1 8080 </dev/null; hostname; ip -4 -o addr show eth0 | wc -l",
    )
    assert r.stdout.split() == ["hi", "podhost", "1"]
    net.ok("stop", "-t", "0", web)
    r = net("run", "--rm", "--network", f"container:{web}", bb, "true")
    assert r.returncode == 125 and one_error(r.stderr) and "non running container" in r.stderr


def test_ip_add_host_and_dns_flags(net, bb):
    net.ok("network", "create", "--subnet", "10.76.0.0/24", "fixed")
    r = net.ok(
        "run",
        "--rm",
        "--network",
        "fixed",
        "--ip",
        "10.76.0.50",
        "--add-host",
        "db.local:192.0.2.9",
        "--add-host",
        "me:host-gateway",
        bb,
        "sh",
        "-c",
        "ip -4 -o addr show eth0; cat /etc/hosts",
    )
    assert "10.76.0.50/24" in r.stdout and "192.0.2.9\tdb.local" in r.stdout and "10.88.0.1\tme" in r.stdout
    r = net.ok(
        "run",
        "--rm",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.test",
        "--dns-option",
        "ndots:2",
        bb,
        "cat",
        "/etc/resolv.conf",
    )
    assert r.stdout.splitlines() == ["nameserver 192.0.2.53", "search example.test", "options ndots:2"]
    r = net.ok("run", "--rm", "--network", "fixed", bb, "cat", "/etc/resolv.conf")
    assert r.stdout.splitlines() == ["nameserver 10.76.0.1"]  # the network's resolver


def test_publish_all_maps_each_exposed_port(net, bb, tmp_path):
    (tmp_path / "Dockerfile").write_text(f"FROM {bb}\nEXPOSE 8080 9090/udp\n")
    net.ok("build", "-t", f"exposing-{os.getpid()}", str(tmp_path))
    cid = net.ok(
        "run", "-d", "-P", f"exposing-{os.getpid()}", "sh", "-c", "while true; do nc -l -p 8080 -e echo pub; done"
    ).stdout.strip()
    try:
        lines = net.ok("port", cid).stdout.splitlines()
        assert [line.split(" -> ")[0] for line in lines] == ["8080/tcp", "9090/udp"]
        host_port = int(lines[0].rsplit(":", 1)[1])
        assert f":{host_port}->8080/tcp" in net.ok("ps").stdout
        probe = (
            f"import socket; s=socket.create_connection(('127.0.0.1', {host_port}), timeout=5); "
            "print(s.recv(9).decode())"
        )
        for _ in range(30):
            got = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
            if got.stdout.strip() == "pub":
                break
            time.sleep(0.1)
        assert got.stdout.strip() == "pub"
        assert _inspect(net, cid)["HostConfig"]["PublishAllPorts"] is True
    finally:
        net("rm", "-f", cid)
        net("rmi", f"exposing-{os.getpid()}")


def test_connect_and_disconnect_a_running_container(net, bb):
    net.ok("network", "create", "--subnet", "10.75.0.0/24", "extra")
    server = _serve(net, bb, "--network", "extra", reply="on-extra")
    target = _inspect(net, server)["NetworkSettings"]["IPAddress"]
    cid = net.ok("run", "-d", bb, "sleep", "120").stdout.strip()
    assert net("exec", cid, "nc", "-w", "2", target, "8080").stdout.strip() == ""
    net.ok("network", "connect", "--alias", "second", "--ip", "10.75.0.77", "extra", cid)
    info = _inspect(net, cid)["NetworkSettings"]["Networks"]
    assert set(info) == {"bridge", "extra"} and info["extra"]["IPAddress"] == "10.75.0.77"
    assert info["extra"]["Aliases"] == ["second"]
    r = net.ok(
        "exec", cid, "sh", "-c", f"ip -4 -o addr show eth1; ip route | head -1; nc -w 3 {target} 8080 </dev/null"
    )
    assert "10.75.0.77/24" in r.stdout and "default via 10.88.0.1" in r.stdout and "on-extra" in r.stdout
    again = net("network", "connect", "extra", cid)
    assert again.returncode == 125 and one_error(again.stderr) and "already exists" in again.stderr
    net.ok("network", "disconnect", "extra", cid)
    assert "eth1" not in net.ok("exec", cid, "ip", "link").stdout
    assert set(_inspect(net, cid)["NetworkSettings"]["Networks"]) == {"bridge"}
    assert cid not in json.loads(net.ok("network", "inspect", "extra").stdout)[0]["Containers"]
    assert f"veth{cid[:8]}-1" not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_network_prune_removes_only_unused_networks(net, bb):
    net.ok("network", "create", "--subnet", "10.74.0.0/24", "used")
    net.ok("network", "create", "--subnet", "10.73.0.0/24", "unused")
    net.ok("run", "-d", "--network", "used", bb, "sleep", "60")
    r = net.ok("network", "prune", "-f")
    assert "unused" in r.stdout.split() and "used" not in r.stdout.split()
    assert set(_networks(net)) >= {"bridge", "used"} and "unused" not in _networks(net)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ip", "10.88.0.9"], "user defined networks only"),
        (["--network-alias", "x"], "user defined networks"),
        (["--network", "nosuch"], "network nosuch not found"),
        (["--network", "container:nosuch"], "No such container"),
        (["--network", "container:x", "-p", "80:80"], "conflicting options: port publishing"),
        (["--network", "container:x", "-h", "h"], "conflicting options: hostname"),
        (["--network", "container:x", "--dns", "1.2.3.4"], "conflicting options: dns"),
        (["--dns", "not-an-ip"], "is not an ip address"),
        (["--add-host", "nocolon"], "--add-host"),
        (["--network", "refusals", "--ip", "10.72.1.5"], "no configured subnet"),
        (["--network", "refusals", "--ip", "nonsense"], "invalid IPv4 address"),
    ],
)
def test_network_refusals(net, bb, args, message):
    if "refusals" in args:
        net.ok("network", "create", "--subnet", "10.72.0.0/24", "refusals")
    before = net.ok("ps", "-aq").stdout.split()
    r = net("run", "--rm", *args, bb, "true")
    assert r.returncode == 125 and one_error(r.stderr) and message in r.stderr, r.stderr
    assert net.ok("ps", "-aq").stdout.split() == before  # no record left half-made


def test_a_stopped_container_connected_joins_the_network_when_it_starts(net, bb):
    net.ok("network", "create", "--subnet", "10.67.0.0/24", "later")
    cid = net.ok("run", "-d", bb, "sleep", "120").stdout.strip()
    net.ok("stop", "-t", "0", cid)
    net.ok("network", "connect", "later", cid)
    assert set(_inspect(net, cid)["NetworkSettings"]["Networks"]) == {"bridge", "later"}
    net.ok("start", cid)
    r = net.ok("exec", cid, "ip", "-4", "-o", "addr")
    assert "10.88." in r.stdout and "10.67.0.2/24" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["connect", "nosuch", "CID"], "network nosuch not found"),
        (["connect", "--ip", "10.88.0.99", "bridge", "CID"], "user defined networks"),
        (["connect", "bridge", "HOSTCID"], "cannot be connected"),
        (["disconnect", "nosuch", "CID"], "network nosuch not found"),
        (["connect", "bridge", "nosuch-container"], "No such container"),
    ],
)
def test_connect_refusals(net, bb, args, message):
    cid = net.ok("run", "-d", bb, "sleep", "60").stdout.strip()
    host = net.ok("run", "-d", "--network", "host", bb, "sleep", "60").stdout.strip()
    argv = [cid if a == "CID" else host if a == "HOSTCID" else a for a in args]
    r = net("network", *argv)
    assert r.returncode == 125 and one_error(r.stderr) and message in r.stderr, r.stderr
