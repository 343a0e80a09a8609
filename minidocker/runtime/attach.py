"""A container on a network: its address, its wired network namespace, its names.

``networks.py`` keeps the records (which network has which subnet, which container which
address); this module does one container's part with them and with the kernel
(``linux/network.py``): ``attach_network`` takes an address, wires a network namespace to
the network's bridge (a veth pair: one end on the bridge, the other the container's
``eth0``), publishes ``-p`` ports with iptables rules tagged with the container's ID, and
on a user-made network tells the other containers its name (their /etc/hosts).
``detach_network`` undoes all of that; the veth goes by itself with the namespace.

See it: ``minidocker run -d --network bridge busybox sleep 60; ip link show master
minidocker0`` (the host's end of the container's veth pair).
"""

from __future__ import annotations

import os
from pathlib import Path

from minidocker.errors import MinidockerError
from minidocker.runtime.container import Container, ContainerStore


def attach_network(c: Container, netns_fd: int | None = None):
    """``--network bridge|NAME``: an address from the network, and a network namespace wired
    to its bridge (linux/network.py), for the container's first process to join; or, given
    ``netns_fd`` (a namespace the container made itself, --userns=auto), that one wired."""
    from minidocker.linux import network
    from minidocker.runtime.networks import NetworkStore

    networks = NetworkStore(c.layout.store.root)
    doc = networks.get(c.spec.network)
    address = networks.allocate(c.spec.network, c.id)
    att = network.Attachment(doc["Bridge"], doc["Subnet"], doc["Gateway"], address, f"veth{c.id[:8]}")
    try:
        fd = network.create_netns() if netns_fd is None else netns_fd
        try:
            network.connect(fd, att)
            network.publish(att, c.spec.ports, port_tag(c))
        except BaseException:
            if netns_fd is None:
                os.close(fd)
            network.unpublish(port_tag(c))
            raise
    except OSError as e:
        networks.release(c.spec.network, c.id)
        raise MinidockerError(f"cannot connect the container to network {c.spec.network}: {e.strerror or e}") from None
    except BaseException:
        networks.release(c.spec.network, c.id)
        raise
    with open(c.layout.hosts, "a") as f:
        f.write(f"{address}\t{c.spec.hostname}\n")
    if c.spec.network != "bridge":  # names on the user's own networks only, as docker
        networks.introduce(c.spec.network, c.id, _hosts_files(c))
    return fd, att


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
    """Give the container's address back (its veth went with its network namespace), and
    remove its published ports. A record without its config is looked for on every network."""
    if c.spec.network in ("none", "host") and not c.damaged:
        return  # nothing to give back (and the network records need not be read)
    from minidocker.runtime.networks import NetworkStore

    networks = NetworkStore(c.layout.store.root)
    if c.damaged and not c.spec.image_id:
        known = networks.all() if networks.dir.exists() else []
        names = [doc["Name"] for doc in known if c.id in doc.get("Containers", {})]
        published = bool(names)  # ports, if it had any, went with an address
    else:
        names = [] if c.spec.network in ("none", "host") else [c.spec.network]
        published = bool(c.spec.ports)
    if published:
        from minidocker.linux import network

        network.unpublish(port_tag(c))
    for name in names:
        if name != "bridge":
            networks.forget(name, c.id, _hosts_files(c))
        networks.release(name, c.id)


def port_tag(c: Container) -> str:
    """The comment on the iptables rules of the container's published ports."""
    return f"minidocker:{c.id[:12]}"
