"""A container on its networks: addresses, wired network namespaces, names.

``networks.py`` keeps the records (which network has which subnet, which container which
address); this module does one container's part with them and with the kernel
(``linux/network.py``). A container may be on several networks: its *endpoints* are the
networks it is configured on (``run --network``, then ``network connect``/``disconnect``),
with their ``--network-alias``es and ``--ip``::

    state.json  "Endpoints": {network: {"Aliases": [...], "IPAddress": "" or --ip}}
                "Networks":  {network: its attachment (linux/network.Attachment), while it runs}

(a record from before has neither: its one network is ``spec.network``, its attachment
``"Network"``). For each endpoint ``attach_network`` takes an address, makes the network's
bridge if it is not up yet (once per network: pyroute2 and iptables), then wires the
namespace to it with a veth pair (per container: our own netlink messages, nothing else),
publishes ``-p`` ports on the first network, tells the other containers its name (their
/etc/hosts), and on a user network starts or reloads the network's resolver (dns.py).
``detach_network`` undoes all of that; the veths go by themselves with the namespace.

See it: ``minidocker run -d --network bridge busybox sleep 60; ip link show master
minidocker0`` (the host's end of the container's veth pair).
"""

from __future__ import annotations

import os
from pathlib import Path

from minidocker.errors import MinidockerError
from minidocker.fsutil import locked
from minidocker.runtime.container import Container, ContainerStore

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import Any

NOT_NETWORKS = ("none", "host")


def endpoints(c: Container) -> dict[str, dict[str, Any]]:
    """The networks the container is configured on, the first its primary one."""
    configured = c.state.get("Endpoints")
    if configured is not None:
        return dict(configured)
    if c.spec.network in NOT_NETWORKS or c.spec.network.startswith("container:"):
        return {}
    return {c.spec.network: {"Aliases": list(c.spec.aliases), "IPAddress": c.spec.ip}}


def attachments(c: Container) -> dict[str, dict[str, Any]]:
    """The container's attachments while it runs: network -> its Attachment's fields."""
    if not c.running:
        return {}
    if c.state.get("Networks") is not None:
        return dict(c.state["Networks"])
    old = c.state.get("Network")  # a record from before: one network
    return {c.spec.network: old} if old else {}


def dns_names(c: Container, endpoint: dict[str, Any]) -> list[str]:
    """What the network's resolver answers for the container: its name, its short ID, its aliases."""
    return [c.name, c.id[:12], *endpoint.get("Aliases", [])]


def host_veth(c: Container, n: int) -> str:
    """Our end of the container's n-th veth pair (IFNAMSIZ: 15 characters at most)."""
    return f"veth{c.id[:8]}" if n == 0 else f"veth{c.id[:8]}-{n}"


def attach_network(c: Container, netns_fd: int | None = None):
    """Every endpoint of the container: an address from each network, and a network
    namespace wired to their bridges (linux/network.py), for the container's first process
    to join; or, given ``netns_fd`` (a namespace the container made itself,
    --userns=auto), that one wired. Returns (the namespace's fd, {network: attachment})."""
    from minidocker.linux import network

    fd = network.create_netns() if netns_fd is None else netns_fd
    wired: dict[str, Any] = {}
    try:
        for n, (name, endpoint) in enumerate(endpoints(c).items()):
            wired[name] = attach_one(c, fd, name, endpoint, n, route=n == 0)
            if n == 0:
                publish_ports(c, wired[name])
                with open(c.layout.hosts, "a") as f:
                    f.write(f"{wired[name].address}\t{c.spec.hostname}\n")
    except BaseException:
        if netns_fd is None:
            os.close(fd)
        detach_network(c)
        raise
    return fd, wired


def publish_ports(c: Container, att) -> None:
    from minidocker.linux import network

    try:
        network.publish(att, c.spec.ports, port_tag(c))
    except OSError as e:
        raise MinidockerError(f"cannot publish the ports of the container: {e.strerror or e}") from None


def attach_one(c: Container, netns_fd: int, name: str, endpoint: dict[str, Any], n: int, route: bool):
    """One network: an address (``--ip``'s if given), the bridge made if it is not up yet,
    a veth pair into the namespace as eth<n>, its names for the others (/etc/hosts, the
    resolver)."""
    from minidocker.linux import network
    from minidocker.runtime.networks import NetworkStore

    networks = NetworkStore(c.layout.store.root)
    doc = networks.get(name)
    address = networks.allocate(name, c.id, endpoint.get("IPAddress") or None, dns_names(c, endpoint), c.spec.dns)
    att = network.Attachment(doc["Bridge"], doc["Subnet"], doc["Gateway"], address, host_veth(c, n), f"eth{n}")
    internal = bool(doc.get("Internal"))
    try:
        bridge = network.bridge_index(att.bridge)
        if bridge is None:  # the network's first container here: the per-network work, once
            with locked(networks.lock):  # (and once only, when two containers start together)
                bridge = network.bridge_index(att.bridge) or network.ensure_bridge(
                    att.bridge, att.subnet, att.gateway, internal
                )
        network.connect(netns_fd, att, bridge, route=route and not internal)
    except OSError as e:
        networks.release(name, c.id)
        raise MinidockerError(f"cannot connect the container to network {name}: {e.strerror or e}") from None
    except BaseException:
        networks.release(name, c.id)
        raise
    if name != "bridge":  # names on the user's own networks only, as docker
        networks.introduce(name, c.id, _hosts_files(c))
        from minidocker.runtime import dns

        dns.ensure_resolver(c.layout.store.root, name, att.gateway)
    return att


def _hosts_files(c: Container) -> dict[str, tuple[str, Path]]:
    """Every container of the store: the names it answers to, and its /etc/hosts file."""
    store = ContainerStore(c.layout.store.root)
    out = {}
    for cid in store.ids():
        try:
            other = store.load(cid)
        except Exception:  # noqa: BLE001 - a record being written or removed: skip it
            continue
        out[cid] = (f"{other.name} {other.spec.hostname}", other.layout.hosts)
    return out


def detach_network(c: Container) -> None:
    """Give the container's addresses back (its veths went with its network namespace),
    remove its published ports, and tell the networks' resolvers."""
    if not endpoints(c) and not c.damaged:
        return  # on no network (none, host, container:X): no address to give back, no record to read
    from minidocker.runtime.networks import NetworkStore

    networks = NetworkStore(c.layout.store.root)
    names = networks.joined(c.id)
    if c.spec.ports or (c.damaged and names):  # (a damaged record's ports, if any, went with an address)
        from minidocker.linux import network

        network.unpublish(port_tag(c))
    for name in names:
        leave(networks, c, name)


def leave(networks, c: Container, name: str) -> None:
    """The container off one network's records: its /etc/hosts lines, its address, its names."""
    if name != "bridge":
        networks.forget(name, c.id, _hosts_files(c))
    doc = networks.release(name, c.id)
    if name != "bridge" and doc is not None:
        from minidocker.runtime import dns

        dns.resolver_changed(c.layout.store.root, name, last=not doc["Containers"])


def port_tag(c: Container) -> str:
    """The comment on the iptables rules of the container's published ports."""
    return f"minidocker:{c.id[:12]}"


# -- network connect / disconnect ------------------------------------------------------------------
def connect_container(store: ContainerStore, c: Container, name: str, aliases: list[str], ip: str) -> None:
    """``network connect``: the network becomes one of the container's endpoints; a running
    container gets a veth into its namespace at once (a default route only if it has none)."""
    from minidocker.linux import procfs

    eps = endpoints(c)
    eps[name] = {"Aliases": list(aliases), "IPAddress": ip}
    if not c.running:
        store.update(c, Endpoints=eps)
        return
    wired = attachments(c)
    used = {att.get("ifname", "eth0") for att in wired.values()}
    n = next(i for i in range(len(used) + 1) if f"eth{i}" not in used)
    fd = procfs.open_namespace(c.state["Pid"], "net")
    try:
        att = attach_one(c, fd, name, eps[name], n, route=not wired)
    finally:
        os.close(fd)
    wired[name] = att.__dict__
    store.update(c, Endpoints=eps, Networks=wired)


def disconnect_container(store: ContainerStore, c: Container, name: str) -> None:
    """``network disconnect``: the endpoint goes; a running container's veth is deleted."""
    from minidocker.linux import network
    from minidocker.runtime.networks import NetworkStore

    eps = endpoints(c)
    eps.pop(name, None)
    wired = attachments(c)
    att = wired.pop(name, None)
    if att is not None:
        network.delete_link(att["host_veth"])
    if c.running:
        leave(NetworkStore(c.layout.store.root), c, name)
    store.update(c, Endpoints=eps, **({"Networks": wired} if c.running else {}))
