"""Bridge networks: veth pairs on a bridge, addresses, routes, NAT; ``network`` commands.

Every test runs minidocker inside a network namespace of its own (``unshare --net`` for
the test, ``nsenter --net`` for each command), so the bridges, veths and iptables rules it makes
live there and vanish with it: the host's own network is never touched, and all traffic
goes to addresses the test's containers got."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import MINIDOCKER, Minidocker, one_error


class InNetns:
    """``minidocker`` (and any command) run inside one network namespace."""

    def __init__(self, md: Minidocker, holder_pid: int):
        self.md = md
        self.prefix = ["nsenter", f"--net=/proc/{holder_pid}/ns/net"]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.prefix, *MINIDOCKER, *args], capture_output=True, text=True, env=self.md.env(), timeout=timeout
        )

    def ok(self, *args: str, **kw) -> subprocess.CompletedProcess:
        r = self(*args, **kw)
        assert r.returncode == 0, f"minidocker {' '.join(args)} exited {r.returncode}:\n{r.stderr}"
        return r

    def sh(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, *argv], capture_output=True, text=True, timeout=60)


@pytest.fixture
def netns(shared_md, bb):
    """A network namespace held by a ``sleep`` of ours (no /run/netns mount needed); when the
    test ends, its containers and networks go, then the sleep, and with it the namespace."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"])
    try:
        for _ in range(100):  # until the sleep runs in its own namespace
            if os.readlink(f"/proc/{holder.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
        ns = InNetns(shared_md, holder.pid)
        before = set(shared_md.ok("ps", "-aq", "--no-trunc").stdout.split())
        try:
            ns.sh("ip", "link", "set", "lo", "up")
            yield ns
        finally:
            made = set(shared_md("ps", "-aq", "--no-trunc").stdout.split()) - before
            if made:
                ns("rm", "-f", *made)
            for network in _user_networks(ns):
                ns("network", "rm", network)
    finally:
        holder.kill()
        holder.wait()


def _user_networks(ns: InNetns) -> list[str]:
    rows = ns("network", "ls").stdout.splitlines()[1:]
    return [r.split()[1] for r in rows if r.split()[1] != "bridge"]


def _address(ns: InNetns, cid: str) -> str:
    return json.loads(ns.ok("inspect", cid).stdout)[0]["NetworkSettings"]["IPAddress"]


def test_bridge_reaches_other_containers_and_the_host(netns, bb):
    server = netns.ok(
        "run",
        "-d",
        "--network",
        "bridge",
        bb,
        "sh",
        "-c",
        "while true; do nc -l -p 8080 -e echo hello-from-server; done",
    ).stdout.strip()
    address = _address(netns, server)
    assert address.startswith("10.88.")
    # another container on the bridge, by address
    r = netns.ok(
        "run",
        "--rm",
        "--network",
        "bridge",
        bb,
        "sh",
        "-c",
        f"ip -4 -o addr show eth0; ip route; nc {address} 8080 </dev/null",
    )
    lines = r.stdout.splitlines()
    assert "10.88." in lines[0] and lines[1].startswith("default via 10.88.0.1 dev eth0")
    assert lines[-1] == "hello-from-server"
    # the host side (the test's namespace), through the bridge
    probe = (
        "import socket,sys; s=socket.create_connection((sys.argv[1], 8080), timeout=5); "
        "print(s.recv(100).decode().strip())"
    )
    for _ in range(20):
        got = netns.sh(sys.executable, "-c", probe, address)
        if got.returncode == 0:
            break
        time.sleep(0.1)
    assert got.stdout.strip() == "hello-from-server", got.stderr
    # on the host: the bridge, one veth per container on it, and the NAT rule
    links = netns.sh("ip", "-o", "link", "show", "master", "minidocker0").stdout
    assert f"veth{server[:8]}" in links
    assert (
        "-A POSTROUTING -s 10.88.0.0/16 ! -o minidocker0 -j MASQUERADE"
        in netns.sh("iptables", "-t", "nat", "-S", "POSTROUTING").stdout
    )
    netns.ok("rm", "-f", server)
    # the address is given back and the veth goes with the container's namespace
    assert json.loads(netns.ok("network", "inspect", "bridge").stdout)[0]["Containers"] == {}
    for _ in range(50):
        if f"veth{server[:8]}" not in netns.sh("ip", "-o", "link").stdout:
            break
        time.sleep(0.1)
    assert f"veth{server[:8]}" not in netns.sh("ip", "-o", "link").stdout


def test_user_network_create_use_rm(netns, bb):
    nid = netns.ok("network", "create", "--subnet", "10.77.0.0/24", "blue").stdout.strip()
    assert len(nid) == 64
    r = netns.ok("run", "--rm", "--network", "blue", bb, "ip", "-4", "-o", "addr", "show", "eth0")
    assert "10.77.0.2/24" in r.stdout
    cid = netns.ok("run", "-d", "--network", "blue", bb, "sleep", "60").stdout.strip()
    assert _address(netns, cid) == "10.77.0.2"  # the first run's address was given back
    busy = netns("network", "rm", "blue")
    assert busy.returncode == 1 and one_error(busy.stderr) and "active endpoints" in busy.stderr  # docker's 1
    netns.ok("rm", "-f", cid)
    bridge = json.loads(netns.ok("network", "inspect", "blue").stdout)[0]["Options"]["com.docker.network.bridge.name"]
    netns.ok("network", "rm", "blue")
    assert bridge not in netns.sh("ip", "-o", "link").stdout
    assert "10.77.0.0/24" not in netns.sh("iptables", "-t", "nat", "-S", "POSTROUTING").stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--rm", "--network", "nosuch", "BB", "true"], "network nosuch not found"),
        (["network", "rm", "bridge"], "pre-defined network"),
        (["network", "create", "--subnet", "10.88.1.0/24", "overlapping"], "overlaps"),
        (["network", "create", "--subnet", "nonsense", "bad"], "invalid subnet"),
    ],
)
def test_network_errors(netns, bb, args, message):
    r = netns(*[bb if a == "BB" else a for a in args])
    code = 1 if args[:2] == ["network", "rm"] else 125  # docker's network rm fails with 1
    assert r.returncode == code and one_error(r.stderr) and message in r.stderr, r.stderr


def test_publish_a_port(netns, bb):
    """-p HOSTPORT:PORT: 127.0.0.1:HOSTPORT on the host reaches the container (DNAT), and the
    rules go with the container. -p implies the bridge network, as docker's default."""
    cid = netns.ok(
        "run", "-d", "-p", "18080:8080", bb, "sh", "-c", "while true; do nc -l -p 8080 -e echo hello-published; done"
    ).stdout.strip()
    row = next(line for line in netns.ok("ps").stdout.splitlines() if line.startswith(cid[:12]))
    assert "0.0.0.0:18080->8080/tcp" in row
    ports = json.loads(netns.ok("inspect", cid).stdout)[0]["NetworkSettings"]["Ports"]
    assert ports == {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]}
    probe = (
        "import socket; s=socket.create_connection(('127.0.0.1', 18080), timeout=5); "
        "print(s.recv(100).decode().strip())"
    )
    for _ in range(30):
        got = netns.sh(sys.executable, "-c", probe)
        if got.stdout.strip() == "hello-published":
            break
        time.sleep(0.1)
    assert got.stdout.strip() == "hello-published", got.stderr
    assert f"minidocker:{cid[:12]}" in netns.sh("iptables", "-t", "nat", "-S").stdout
    netns.ok("rm", "-f", cid)
    assert f"minidocker:{cid[:12]}" not in netns.sh("iptables", "-t", "nat", "-S").stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "99999:80"], "invalid port"),
        (["-p", "80/sctp"], "invalid publish spec"),
        (["--network", "none", "-p", "8080:80"], "needs a bridge network"),
    ],
)
def test_publish_errors(netns, bb, args, message):
    r = netns("run", "--rm", *args, bb, "true")
    assert r.returncode == 125 and one_error(r.stderr) and message in r.stderr, r.stderr


def test_networks_are_isolated_from_each_other(netns, bb):
    netns.ok("network", "create", "--subnet", "10.77.0.0/24", "blue")
    netns.ok("network", "create", "--subnet", "10.78.0.0/24", "red")
    server = netns.ok(
        "run", "-d", "--network", "blue", bb, "sh", "-c", "while true; do nc -l -p 8080 -e echo hi; done"
    ).stdout.strip()
    address = _address(netns, server)
    time.sleep(0.3)
    same = netns.ok("run", "--rm", "--network", "blue", bb, "sh", "-c", f"nc -w 3 {address} 8080 </dev/null")
    assert same.stdout.strip() == "hi"
    other = netns(
        "run", "--rm", "--network", "red", bb, "sh", "-c", f"nc -w 2 {address} 8080 </dev/null && echo REACHED"
    )
    assert "REACHED" not in other.stdout and "hi" not in other.stdout
    assert "MINIDOCKER-ISOLATION" in netns.sh("iptables", "-S", "FORWARD").stdout
    netns.ok("rm", "-f", server)
    netns.ok("network", "rm", "blue", "red")
    assert "mdbr" not in netns.sh("iptables", "-S", "MINIDOCKER-ISOLATION").stdout


def test_containers_find_each_other_by_name_on_a_user_network(netns, bb):
    netns.ok("network", "create", "--subnet", "10.77.0.0/24", "blue")
    web = f"web-{os.getpid()}"
    netns.ok(
        "run",
        "-d",
        "--name",
        web,
        "--network",
        "blue",
        bb,
        "sh",
        "-c",
        "while true; do nc -l -p 8080 -e echo hi-by-name; done",
    )
    time.sleep(0.3)
    client = f"client-{os.getpid()}"
    cid = netns.ok("run", "-d", "--name", client, "--network", "blue", bb, "sleep", "60").stdout.strip()
    r = netns.ok("exec", cid, "sh", "-c", f"nc -w 3 {web} 8080 </dev/null")
    assert r.stdout.strip() == "hi-by-name"
    # the server knows the client's name too, and forgets it when the client goes
    assert client in netns.ok("exec", web, "cat", "/etc/hosts").stdout
    netns.ok("rm", "-f", client)
    assert client not in netns.ok("exec", web, "cat", "/etc/hosts").stdout
    # the pre-defined bridge has no names (docker's rule)
    netns.ok("run", "-d", "--name", f"plain-{os.getpid()}", "--network", "bridge", bb, "sleep", "60")
    r = netns("run", "--rm", "--network", "bridge", bb, "sh", "-c", f"nc -w 2 plain-{os.getpid()} 1 </dev/null")
    assert r.returncode != 0


def test_port_lists_the_mappings(netns, bb):
    cid = netns.ok("run", "-d", "-p", "18082:80", "-p", "127.0.0.1:18083:53/udp", bb, "sleep", "60").stdout.strip()
    assert netns.ok("port", cid).stdout.splitlines() == ["80/tcp -> 0.0.0.0:18082", "53/udp -> 127.0.0.1:18083"]
    netns.ok("rm", "-f", cid)


def test_user_namespaced_container_on_a_bridge(netns, bb):
    """With --userns=auto the container makes its network namespace (its user namespace must
    own it, or /sys could not be mounted); minidocker wires it before the container runs."""
    r = netns.ok(
        "run",
        "--rm",
        "--userns=auto",
        "--network",
        "bridge",
        bb,
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip route | head -1; cat /proc/self/uid_map; ls /sys/class/net",
    )
    lines = r.stdout.splitlines()
    assert "10.88." in lines[0] and lines[1].startswith("default via 10.88.0.1")
    assert lines[2].split()[0] == "0" and lines[2].split()[1] != "0"
    assert lines[3:] == ["eth0", "lo"]
