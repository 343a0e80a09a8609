"""Networks: which bridge, which subnet, which container has which address.

``bridge`` always exists (bridge ``minidocker0``, 10.88.0.0/16); ``network create NAME``
adds others, each with a bridge and a subnet of its own. A record per network, written
atomically under the store's lock::

    networks/<name>.json   {"Name", "Id", "Driver": "bridge", "Bridge", "Subnet", "Gateway",
                            "Internal", "Containers": {container id: address},
                            "Names": {container id: [name, short ID, aliases...]},
                            "Dns": {container id: [its --dns servers]}}
    networks/<name>.dns.pid  the network's resolver (runtime/dns.py), while it has containers

Addresses are handed out in order (the gateway is .1), or as ``--ip`` asks on a user
network, and given back when the container stops. ``Names`` are what the network's resolver
answers for (a record without them, from before, has none). The kernel side is
linux/network.py.

See it: ``minidocker network inspect bridge``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

from minidocker import eventlog
from minidocker.errors import Conflict, MinidockerError, NoSuchNetwork
from minidocker.fsutil import locked, read_json, write_json
from minidocker.paths import Layout, prepare_store

TYPE_CHECKING = False  # (typing is not imported on a container start's path: minidocker/record.py)
if TYPE_CHECKING:
    from typing import Any

DEFAULT = {"Name": "bridge", "Bridge": "minidocker0", "Subnet": "10.88.0.0/16", "Gateway": "10.88.0.1"}
NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}")


class NetworkStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.layout = Layout(self.root)
        self.dir = self.layout.networks_dir
        self.lock = self.layout.networks_lock

    def _default(self) -> dict[str, Any]:
        return {**DEFAULT, "Id": os.urandom(32).hex(), "Driver": "bridge", "Containers": {}}

    def get(self, name: str) -> dict[str, Any]:
        doc = read_json(self.layout.network(name), None)
        if doc is None:
            if name != "bridge":
                raise NoSuchNetwork(name)
            doc = self._default()  # the pre-defined network: its record is made on first use
            prepare_store(self.root)
            write_json(self.layout.network(name), doc)
        return doc

    def all(self) -> list[dict[str, Any]]:
        names = {"bridge"} | ({p.stem for p in self.dir.glob("*.json")} if self.dir.exists() else set())
        return [self.get(n) for n in sorted(names)]

    def create(self, name: str, subnet: str | None = None, internal: bool = False) -> dict[str, Any]:
        if not NAME.fullmatch(name) or name in ("none", "host", "default"):
            raise MinidockerError(f"invalid network name {name!r}")
        prepare_store(self.root)
        with locked(self.lock):
            existing = [self.get(n) for n in {p.stem for p in self.dir.glob("*.json")} | {"bridge"}]
            if any(n["Name"] == name for n in existing):
                raise Conflict(f"network with name {name} already exists")
            taken = [ipaddress.ip_network(n["Subnet"]) for n in existing]
            net: ipaddress.IPv4Network | ipaddress.IPv6Network | None
            if subnet:
                try:
                    net = ipaddress.ip_network(subnet)
                except ValueError:
                    raise MinidockerError(f"invalid subnet {subnet!r}: give a CIDR such as 10.90.0.0/24") from None
                if net.version != 4 or net.num_addresses < 4:
                    raise MinidockerError(f"invalid subnet {subnet}: an IPv4 network with room for hosts")
                if any(net.overlaps(t) for t in taken):
                    raise Conflict(f"subnet {subnet} overlaps with another minidocker network")
            else:
                net = next(
                    (
                        n
                        for i in range(89, 255)
                        if not any((n := ipaddress.ip_network(f"10.{i}.0.0/24")).overlaps(t) for t in taken)
                    ),
                    None,
                )
                if net is None:
                    raise MinidockerError("no free subnet left in 10.89-254.0.0/24: give --subnet")
            nid = os.urandom(32).hex()
            doc = {
                "Name": name,
                "Id": nid,
                "Driver": "bridge",
                "Bridge": f"mdbr-{nid[:10]}",
                "Subnet": str(net),
                "Gateway": str(next(net.hosts())),
                "Internal": internal,
                "Containers": {},
                "Names": {},
            }
            write_json(self.layout.network(name), doc)
        network_event(self.root, "create", doc)
        return doc

    def remove(self, name: str) -> dict[str, Any]:
        if name == "bridge":
            raise MinidockerError("bridge is a pre-defined network and cannot be removed")
        with locked(self.lock):
            doc = self.get(name)
            if doc["Containers"]:
                raise Conflict(f"error while removing network: network {name} has active endpoints")
            self.layout.network(name).unlink()
        network_event(self.root, "destroy", doc)
        return doc

    def allocate(
        self,
        name: str,
        container_id: str,
        requested: str | None = None,
        names: list[str] | None = None,
        dns: list[str] | None = None,
    ) -> str:
        """The next free address of the network for the container (its own if it has one;
        ``requested``: that one, --ip), the ``names`` its resolver answers for it, and the
        resolvers (``dns``: --dns) it forwards the container's other queries to."""
        prepare_store(self.root)
        with locked(self.lock):
            doc = self.get(name)
            if container_id not in doc["Containers"]:
                doc["Containers"][container_id] = self._free_address(doc, requested)
                network_event(self.root, "connect", doc, container_id)
            if names is not None:
                doc.setdefault("Names", {})[container_id] = names
            if dns:
                doc.setdefault("Dns", {})[container_id] = dns
            write_json(self.layout.network(name), doc)
        return doc["Containers"][container_id]

    @staticmethod
    def _free_address(doc: dict[str, Any], requested: str | None) -> str:
        used = set(doc["Containers"].values()) | {doc["Gateway"]}
        net = ipaddress.ip_network(doc["Subnet"])
        if requested:
            if ipaddress.ip_address(requested) not in net:
                raise MinidockerError(f"no configured subnet contains the IP address {requested}")
            if requested in used or requested in (str(net.network_address), str(net.broadcast_address)):
                raise Conflict(f"Address already in use: {requested} on network {doc['Name']}")
            return requested
        address = next((str(h) for h in net.hosts() if str(h) not in used), None)
        if address is None:
            raise MinidockerError(f"network {doc['Name']} has no free address left ({doc['Subnet']})")
        return address

    def release(self, name: str, container_id: str) -> dict[str, Any] | None:
        """Give the container's address back; returns the record as it is now (None: none)."""
        with locked(self.lock):
            doc = read_json(self.layout.network(name), None)
            if doc and doc["Containers"].pop(container_id, None) is not None:
                doc.get("Names", {}).pop(container_id, None)
                doc.get("Dns", {}).pop(container_id, None)
                write_json(self.layout.network(name), doc)
                network_event(self.root, "disconnect", doc, container_id)
        return doc

    def joined(self, container_id: str) -> list[str]:
        """The networks that have an address for the container."""
        if not self.dir.exists():
            return []
        out = []
        for path in sorted(self.dir.glob("*.json")):
            doc = read_json(path, None)
            if doc and container_id in doc.get("Containers", {}):
                out.append(doc["Name"])
        return out

    # -- names: on a network of the user's, containers find each other by name (/etc/hosts)
    def introduce(self, name: str, container_id: str, hosts_of: dict[str, tuple[str, Path]]) -> None:
        """Write each pair of containers on network ``name`` into the other's /etc/hosts:
        ``hosts_of`` maps container IDs to (the names it answers to, its hosts file). The
        files are bind-mounted into running containers, so they are changed in place (a
        rename would leave the container with the old file). As docker, only on networks
        made with ``network create``: the pre-defined bridge has no names."""
        if name == "bridge":
            return
        with locked(self.lock):
            members = self.get(name)["Containers"]
            me = hosts_of.get(container_id)
            if me is None or container_id not in members:
                return
            for other, address in members.items():
                if other == container_id or other not in hosts_of:
                    continue
                _append_line(me[1], f"{address}\t{hosts_of[other][0]}")
                _append_line(hosts_of[other][1], f"{members[container_id]}\t{me[0]}")

    def forget(self, name: str, container_id: str, hosts_of: dict[str, tuple[str, Path]]) -> None:
        """Take the container's line out of the other members' /etc/hosts."""
        if name == "bridge" or container_id not in hosts_of:
            return
        with locked(self.lock):
            members = self.get(name)["Containers"]
            address = members.get(container_id)
            if address is None:
                return
            line = f"{address}\t{hosts_of[container_id][0]}"
            for other in members:
                if other != container_id and other in hosts_of:
                    _remove_line(hosts_of[other][1], line)


def _append_line(path: Path, line: str) -> None:
    try:
        with open(path, "a") as f:
            f.write(line + "\n")
    except FileNotFoundError:
        pass


def _remove_line(path: Path, line: str) -> None:
    try:
        with open(path, "r+") as f:
            kept = [x for x in f.read().splitlines() if x != line]
            f.seek(0)
            f.write("".join(x + "\n" for x in kept))
            f.truncate()
    except FileNotFoundError:
        pass


def network_event(root: Path, action: str, doc: dict[str, Any], container_id: str | None = None) -> None:
    """docker's network event: the network's ID, its name and type; the container's ID too
    for ``connect`` and ``disconnect``."""
    attributes = {"name": doc["Name"], "type": doc.get("Driver", "bridge")}
    if container_id:
        attributes["container"] = container_id
    eventlog.record(root, "network", action, doc["Id"], attributes)
