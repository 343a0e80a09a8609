"""DNS on user networks (runtime/dns.py): each network's resolver answers for the names of
the containers that share a network with the asking one, forwards the rest to the host's
resolvers, and lives exactly as long as the network has containers.

Forwarded lookups go to a dnslib server the test runs in a namespace of its own, named by
MINIDOCKER_HOST_RESOLV_CONF (tests/support/outside.py): nothing reaches a real resolver."""

from __future__ import annotations

import json
import os
import time

import pytest
from dnslib import RCODE, DNSRecord

from tests.support.outside import TEST_RESOLVER, outside_namespace


@pytest.fixture
def dnsnet(md_run):
    """The shared store, two user networks (blue, red); their containers and the networks
    removed afterwards."""
    made = []

    def create(name: str, subnet: str) -> str:
        md_run.ok("network", "create", "--subnet", subnet, name)
        made.append(name)
        return name

    yield md_run, create
    ids = md_run("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        md_run("rm", "-f", *ids)
    for name in made:
        md_run("network", "rm", name)


@pytest.fixture(scope="module")
def debian(shared_md, registry):
    """The debian image (its getent asks the resolver through glibc), pulled once."""
    ref = f"{registry.host}/debian:latest"
    shared_md.ok("pull", "-q", ref)
    return ref


def _pid_file(m, network: str):
    return m.root / "networks" / f"{network}.dns.pid"


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def test_names_aliases_and_short_ids_resolve_on_the_network_and_nowhere_else(dnsnet, bb, debian):
    m, create = dnsnet
    create("dnsblue", "10.71.0.0/24")
    create("dnsred", "10.70.0.0/24")
    web = m.ok(
        "run", "-d", "--name", f"web-{os.getpid()}", "--network", "dnsblue", "--network-alias", "db", bb, "sleep", "300"
    ).stdout.strip()
    address = json.loads(m.ok("inspect", web).stdout)[0]["NetworkSettings"]["IPAddress"]
    r = m.ok(
        "run",
        "--rm",
        "--network",
        "dnsblue",
        bb,
        "sh",
        "-c",
        f"nslookup web-{os.getpid()}; nslookup {web[:12]}; cat /etc/resolv.conf",
    )
    assert r.stdout.count(f"Address: {address}") == 2 and "nameserver 10.71.0.1" in r.stdout
    r = m.ok("run", "--rm", "--network", "dnsblue", debian, "getent", "hosts", "db")  # an alias: DNS only
    assert r.stdout.split()[:2] == [address, "db"]
    other = m("run", "--rm", "--network", "dnsred", bb, "nslookup", f"web-{os.getpid()}")
    assert other.returncode != 0 and "NXDOMAIN" in other.stdout + other.stderr
    other = m("run", "--rm", "--network", "dnsred", debian, "getent", "hosts", "db")
    assert other.returncode == 2 and other.stdout == ""


def test_a_container_on_two_networks_resolves_names_of_both(dnsnet, bb):
    m, create = dnsnet
    create("dnsblue", "10.71.0.0/24")
    create("dnsred", "10.70.0.0/24")
    m.ok("run", "-d", "--name", f"b-{os.getpid()}", "--network", "dnsblue", bb, "sleep", "300")
    m.ok("run", "-d", "--name", f"r-{os.getpid()}", "--network", "dnsred", bb, "sleep", "300")
    both = m.ok("run", "-d", "--network", "dnsblue", bb, "sleep", "300").stdout.strip()
    m.ok("network", "connect", "dnsred", both)
    r = m.ok("exec", both, "sh", "-c", f"nslookup b-{os.getpid()}; nslookup r-{os.getpid()}")
    assert "10.71.0." in r.stdout and "10.70.0." in r.stdout, r.stdout
    # a container only on red does not see blue's names, even through red's resolver
    r = m("run", "--rm", "--network", "dnsred", bb, "nslookup", f"b-{os.getpid()}")
    assert "NXDOMAIN" in r.stdout + r.stderr


def test_other_names_are_forwarded_to_the_host_resolvers(dnsnet, bb, tmp_path):
    m, create = dnsnet
    create("dnsfwd", "10.69.0.0/24")
    with outside_namespace(f"r{os.getpid() % 10000}") as world:
        resolver = world.start(TEST_RESOLVER, world.address, "far.example.test", "192.0.2.77")
        try:
            conf = tmp_path / "resolv.conf"
            conf.write_text(f"nameserver 127.0.0.53\nnameserver {world.address}\n")  # loopback: skipped
            env = {"MINIDOCKER_HOST_RESOLV_CONF": str(conf)}
            r = m.ok("run", "--rm", "--network", "dnsfwd", bb, "nslookup", "far.example.test", env=env)
            assert "Address: 192.0.2.77" in r.stdout
            r = m("run", "--rm", "--network", "dnsfwd", bb, "nslookup", "nothing.example.test", env=env)
            assert "NXDOMAIN" in r.stdout + r.stderr
        finally:
            resolver.kill()
            resolver.wait()


def test_the_resolver_lives_with_the_networks_containers(dnsnet, bb):
    m, create = dnsnet
    create("dnslife", "10.68.0.0/24")
    assert not _pid_file(m, "dnslife").exists()
    first = m.ok("run", "-d", "--name", f"one-{os.getpid()}", "--network", "dnslife", bb, "sleep", "300").stdout.strip()
    pid = json.loads(_pid_file(m, "dnslife").read_text())["Pid"]
    assert _alive(pid)
    # a later container joins: the same resolver, which now knows it too
    second = m.ok(
        "run", "-d", "--name", f"two-{os.getpid()}", "--network", "dnslife", bb, "sleep", "300"
    ).stdout.strip()
    assert json.loads(_pid_file(m, "dnslife").read_text())["Pid"] == pid
    assert "Address: 10.68.0." in m.ok("exec", first, "nslookup", f"two-{os.getpid()}").stdout
    # over TCP too (asked from the host, which is no container: nothing of ours, and no upstream)
    reply = DNSRecord.parse(DNSRecord.question(f"two-{os.getpid()}").send("10.68.0.1", 53, tcp=True, timeout=5))
    assert reply.header.rcode == RCODE.NXDOMAIN
    m.ok("rm", "-f", second)
    r = m("exec", first, "nslookup", f"two-{os.getpid()}")
    assert "NXDOMAIN" in r.stdout + r.stderr  # reloaded: gone with the container
    # a killed resolver leaves a stale pid file: the next container starts a new one
    os.kill(pid, 9)
    for _ in range(100):
        if not _alive(pid):
            break
        time.sleep(0.02)
    third = m.ok(
        "run", "-d", "--name", f"three-{os.getpid()}", "--network", "dnslife", bb, "sleep", "300"
    ).stdout.strip()
    new_pid = json.loads(_pid_file(m, "dnslife").read_text())["Pid"]
    assert new_pid != pid and _alive(new_pid)
    assert "Address: 10.68.0." in m.ok("exec", third, "nslookup", f"one-{os.getpid()}").stdout
    m.ok("rm", "-f", first, third)
    assert not _pid_file(m, "dnslife").exists()
    for _ in range(100):
        if not _alive(new_pid):
            break
        time.sleep(0.02)
    assert not _alive(new_pid)


def test_the_default_bridge_has_no_dns(dnsnet, bb):
    m, _ = dnsnet
    m.ok("run", "-d", "--name", f"plain-{os.getpid()}", bb, "sleep", "300")
    r = m("run", "--rm", bb, "nslookup", f"plain-{os.getpid()}")
    assert r.returncode != 0
    assert not _pid_file(m, "bridge").exists()
