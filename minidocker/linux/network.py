"""Bridge networking: a network namespace, a veth pair, a bridge, an address, a route, NAT.

A new network namespace has only ``lo``, down. To reach other containers and the world, a
container gets one end of a *veth pair* (two virtual interfaces joined by a wire: a packet
sent into one comes out of the other), the other end staying on the host, enslaved to a
*bridge* (a virtual switch, ``minidocker0``) that also has the network's gateway address.
Inside, the container's end is renamed ``eth0`` and gets the container's address and a
default route via the gateway. For the world beyond the host, the kernel forwards the
packets (``net.ipv4.ip_forward``) and rewrites their source address to the host's
(iptables ``MASQUERADE``). It is what ``docker0`` and ``podman``'s CNI bridge do, one
netlink message a step.

The work is split by how often it is needed. Once per network (``ensure_bridge``, when the
network is created or first used): the bridge, its address, ip_forward and the iptables
rules, through pyroute2 and ``iptables`` processes, both slow to start. Once per container
(``connect``): only the veth pair, the address, the route and links up, through our own
small netlink client (netlink.py), so a container start imports neither.

The container's namespace is made and wired *before* the container starts: we unshare a
network namespace ourselves, open it, step back into our own, create the veth's peer
directly inside it (IFLA_NET_NS_FD) and configure it through a netlink socket opened while
we were inside it (a socket stays in the namespace it was made in). The container's first
process then joins it with setns(2).

See it: ``minidocker run --rm --network bridge busybox ip addr`` and, on the host,
``ip link show master minidocker0``.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import subprocess
from dataclasses import dataclass

from minidocker.linux import syscalls as sc
from minidocker.linux.events import emit


@dataclass
class Attachment:
    """One container's place on a bridge network."""

    bridge: str  # "minidocker0"
    subnet: str  # "10.88.0.0/16"
    gateway: str  # "10.88.0.1"
    address: str  # "10.88.0.2"
    host_veth: str  # "vethc0ffee12": our end, on the bridge
    ifname: str = "eth0"  # the container's end


def create_netns() -> int:
    """A new, empty network namespace, as an open fd; we stay in ours."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.unshare(sc.CLONE_NEWNET)
        try:
            return os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            sc.setns(own, sc.CLONE_NEWNET, why="back to our own network namespace")
    finally:
        os.close(own)


def bridge_index(name: str) -> int | None:
    """The bridge's interface index if it exists and is up (``ensure_bridge`` brings it up
    last, once its address and iptables rules are there), else None: one RTM_GETLINK."""
    from minidocker.linux.netlink import IFF_UP, Netlink

    with Netlink() as nl:
        found = nl.link(name)
    return found[0] if found and found[1] & IFF_UP else None


def ensure_bridge(name: str, subnet: str, gateway: str, internal: bool = False) -> int:
    """Once per network: ``ip link add NAME type bridge; ip addr add GATEWAY/N dev NAME``,
    forwarding plus NAT for the subnet (none for an ``--internal`` network: its traffic
    stays on its bridge), the isolation rules, and last ``ip link set NAME up`` (an up
    bridge is a finished one: ``bridge_index``). Returns the bridge's interface index."""
    from pyroute2 import IPRoute

    prefix = ipaddress.ip_network(subnet).prefixlen
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            # A bridge without an address of its own takes the lowest MAC of its ports, so it
            # would change whenever a container leaves, and the others, whose ARP caches hold
            # the old one, would lose their gateway for half a minute. Ours is set once.
            ipr.link("add", ifname=name, kind="bridge", address=bridge_mac(name))
            found = ipr.link_lookup(ifname=name)
            emit("link", name=name, state="created (bridge)")
        index = found[0]
        if gateway not in {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index)}:
            ipr.addr("add", index=index, address=gateway, prefixlen=prefix)
            emit("addr", dev=name, address=f"{gateway}/{prefix}")
        if internal:
            confine(name)
        else:
            enable_forwarding()
            masquerade(subnet, name)
        isolate(name)
        ipr.link("set", index=index, state="up")
        emit("link", name=name, state="up")
    return index


def bridge_mac(name: str) -> str:
    """A fixed MAC for the bridge ``name``: locally administered (0x02 in the first byte),
    unicast, the rest from the name's hash (the same bridge gets the same one again)."""
    import hashlib

    tail = hashlib.sha256(name.encode()).digest()[:5]
    return ":".join(f"{b:02x}" for b in (0x02, *tail))


def enable_forwarding() -> None:
    """sysctl net.ipv4.ip_forward=1: the host routes packets between its interfaces."""
    _set_sysctl("net/ipv4/ip_forward", "1", why="the host forwards packets between its interfaces")


def masquerade(subnet: str, bridge: str) -> None:
    """iptables -t nat -A POSTROUTING -s SUBNET ! -o BRIDGE -j MASQUERADE (if not there yet):
    what leaves the host from a container seems to come from the host itself."""
    rule = ["POSTROUTING", "-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"]
    if _iptables(["-t", "nat", "-C", *rule]) == 0:
        return
    if _iptables(["-t", "nat", "-A", *rule]) != 0:
        raise OSError(1, f"iptables could not add the NAT rule for {subnet}")
    emit("iptables", rule="-t nat -A " + " ".join(rule), why="containers reach the world with the host's address")


ISOLATION_CHAIN = "MINIDOCKER-ISOLATION"
BRIDGE_PATTERNS = ("minidocker0", "mdbr+")  # every bridge minidocker makes ("+": a prefix, for iptables)


def ensure_isolation_chain() -> None:
    """``iptables -N MINIDOCKER-ISOLATION; iptables -I FORWARD -j MINIDOCKER-ISOLATION`` (once)."""
    if _iptables(["-N", ISOLATION_CHAIN]) == 0:
        emit("iptables", rule=f"-N {ISOLATION_CHAIN}", why="one chain for the rules that keep networks apart")
    if _iptables(["-C", "FORWARD", "-j", ISOLATION_CHAIN]) != 0:
        _add_rule(["-I", "FORWARD", "-j", ISOLATION_CHAIN])


def isolate(bridge: str) -> None:
    """Containers of different networks must not reach each other through the host's routing:
    in a chain of our own, jumped to from FORWARD, drop what comes in on this bridge and goes
    out on any other minidocker bridge (traffic within one bridge is switched, not routed,
    so it never meets these rules)."""
    ensure_isolation_chain()
    same = [ISOLATION_CHAIN, "-i", bridge, "-o", bridge, "-j", "RETURN"]  # (br_netfilter sees bridged traffic)
    if _iptables(["-C", *same]) != 0:
        _add_rule(["-I", *same])
    for rule in _isolation_rules(bridge):
        if _iptables(["-C", *rule]) != 0:
            _add_rule(["-A", *rule])
            emit("iptables", rule="-A " + " ".join(rule), why="no traffic from this network to another one")


def confine(bridge: str) -> None:
    """``network create --internal``: nothing in or out of the bridge is routed (docker's
    internal network): drop what comes in on it for elsewhere, and what goes out to it from
    elsewhere; within the bridge, containers still reach each other."""
    ensure_isolation_chain()
    for rule in _confinement_rules(bridge):
        if _iptables(["-C", *rule]) != 0:
            _add_rule(["-A", *rule])
            emit("iptables", rule="-A " + " ".join(rule), why="an internal network: no way out")


def _confinement_rules(bridge: str) -> list[list[str]]:
    return [
        [ISOLATION_CHAIN, "-i", bridge, "!", "-o", bridge, "-j", "DROP"],
        [ISOLATION_CHAIN, "-o", bridge, "!", "-i", bridge, "-j", "DROP"],
    ]


def _isolation_rules(bridge: str) -> list[list[str]]:
    return [[ISOLATION_CHAIN, "-i", bridge, "-o", other, "-j", "DROP"] for other in BRIDGE_PATTERNS if other != bridge]


def remove_isolation(bridge: str) -> None:
    same = [ISOLATION_CHAIN, "-i", bridge, "-o", bridge, "-j", "RETURN"]
    for rule in [same, *_isolation_rules(bridge), *_confinement_rules(bridge)]:
        while _iptables(["-C", *rule]) == 0:
            if _iptables(["-D", *rule]) != 0:
                break


def remove_masquerade(subnet: str, bridge: str) -> None:
    rule = ["POSTROUTING", "-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"]
    while _iptables(["-t", "nat", "-C", *rule]) == 0:
        if _iptables(["-t", "nat", "-D", *rule]) != 0:
            break


def _iptables(args: list[str]) -> int:
    try:
        return subprocess.run(["iptables", "-w", *args], capture_output=True).returncode
    except FileNotFoundError:
        raise OSError(2, "iptables not found: install it (apt-get install iptables)") from None


def connect(netns_fd: int, att: Attachment, bridge: int, route: bool = True) -> None:
    """Wire the namespace to the bridge (index ``bridge``), through our own netlink client:
    a veth pair whose peer is made inside the namespace as ``att.ifname``, our end on the
    bridge and up; inside, the address, the link and lo up, and (``route``) the default
    route via the gateway."""
    from minidocker.linux.netlink import Netlink

    prefix = ipaddress.ip_network(att.subnet).prefixlen
    with Netlink() as host:
        host.add_veth(att.host_veth, att.ifname, netns_fd, master=bridge)
    with Netlink(netns_fd) as inside:
        found = inside.link(att.ifname)
        if found is None:
            raise OSError(19, f"{att.ifname} did not appear in the container's network namespace")
        inside.add_address(found[0], att.address, prefix, att.ifname)
        inside.set_up(found[0], att.ifname)
        inside.set_up(1, "lo")  # (lo is interface 1 in every network namespace)
        if route:
            inside.add_default_route(att.gateway)


def delete_link(name: str) -> bool:
    """``ip link del NAME`` if it exists (a veth goes with its pair, a bridge with its ports'
    links): one RTM_DELLINK. False: there was none."""
    from minidocker.linux.netlink import Netlink

    with Netlink() as nl:
        return nl.delete_link(name)


def publish(att: Attachment, ports: list[dict], tag: str) -> None:
    """``-p HOSTPORT:PORT``: connections to the host's port go to the container's, by
    destination NAT. PREROUTING catches what arrives from other machines, OUTPUT what the
    host itself sends (to any of its own addresses, 127.0.0.1 included: that takes
    route_localnet, as kube-proxy sets it, and a MASQUERADE so the reply finds its way
    back). Every rule carries the comment ``tag``, so ``unpublish`` finds them all."""
    if not ports:
        return
    _set_sysctl("net/ipv4/conf/all/route_localnet", "1", why="127.0.0.1 may be rewritten to a container's address")
    for p in ports:
        match = ["-p", p["proto"], "--dport", str(p["host_port"])]
        if p["host_ip"]:
            match = ["-d", p["host_ip"], *match]
        else:
            match = ["-m", "addrtype", "--dst-type", "LOCAL", *match]
        to = ["-j", "DNAT", "--to-destination", f"{att.address}:{p['port']}"]
        comment = ["-m", "comment", "--comment", tag]
        for chain in ("PREROUTING", "OUTPUT"):
            _add_rule(["-t", "nat", "-A", chain, *match, *comment, *to])
        _add_rule(
            [
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-s",
                "127.0.0.0/8",
                "-d",
                att.address,
                "-p",
                p["proto"],
                "--dport",
                str(p["port"]),
                *comment,
                "-j",
                "MASQUERADE",
            ]
        )
        emit(
            "iptables",
            rule=f"-t nat DNAT {p['host_ip'] or '*'}:{p['host_port']} -> {att.address}:{p['port']}/{p['proto']}",
            why="connections to the host's port go to the container's",
        )


def unpublish(tag: str) -> None:
    """Delete every nat rule that carries the comment ``tag``."""
    listing = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True)
    for line in listing.stdout.splitlines():
        if line.startswith("-A ") and tag in shlex.split(line):  # iptables -S quotes the comment
            _iptables(["-t", "nat", "-D", *shlex.split(line[3:])])


def _add_rule(args: list[str]) -> None:
    if _iptables(args) != 0:
        raise OSError(1, f"iptables refused: {' '.join(args)}")


def _set_sysctl(key: str, value: str, why: str | None = None) -> None:
    path = f"/proc/sys/{key}"
    with open(path) as f:
        if f.read().strip() == value:
            return
    with open(path, "w") as f:
        f.write(value)
    emit("sysctl", key=key.replace("/", "."), value=value, why=why)
