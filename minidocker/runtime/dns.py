"""A network's resolver: container names through DNS, as docker's embedded DNS server and
podman's aardvark-dns give them.

On a network made with ``network create``, every container's /etc/resolv.conf names one
nameserver: the network's gateway, where this small process listens (UDP and TCP port 53,
in the network namespace where the bridge is). It answers A queries for the names of the
containers that share a network with the *asking* container (known by its source
address): their names, their short IDs (12 hex digits) and their ``--network-alias``es.
So a container on two networks resolves the names of both, and a container of another
network gets NXDOMAIN. Every other query is forwarded, as it came, to the asker's ``--dns``
servers or else the host's resolvers (/etc/resolv.conf, or the file
``$MINIDOCKER_HOST_RESOLV_CONF`` names), skipping loopback ones (127.0.0.53, a
systemd-resolved stub, is the host's own, not the containers'); an ``--internal`` network's
resolver forwards nothing.

One resolver per network, never a system-wide daemon: attach.py starts it with the
network's first container and stops it with its last; a container joining or leaving sends
it SIGHUP, and it reads the network records (networks.py) again. Its PID lives in
``networks/<name>.dns.pid`` (``Layout.network_resolver_pid``), with the process's start
time, so a PID the kernel gave to another process since is never taken for it.

See it: ``minidocker network create blue; minidocker run -d --name web --network blue
busybox sleep 600; minidocker run --rm --network blue busybox nslookup web``, and
``cat /var/lib/minidocker/networks/blue.dns.pid``.
"""

from __future__ import annotations

import ipaddress
import os
import selectors
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any

from minidocker.fsutil import read_json
from minidocker.paths import Layout

TTL = 600
FORWARD_TIMEOUT = 2.0


# -- the answers: pure functions of the network records --------------------------------------------
def asker(records: list[dict[str, Any]], network: str, source: str) -> str | None:
    """The ID of the container at address ``source`` on ``network`` (None: no container)."""
    mine = next((doc for doc in records if doc.get("Name") == network), {})
    return next((cid for cid, address in mine.get("Containers", {}).items() if address == source), None)


def upstreams_of(records: list[dict[str, Any]], network: str, me: str | None, host: list[str]) -> list[str]:
    """Where the asker's other queries go: its own --dns servers, else the host's resolvers;
    none from an ``--internal`` network (it has no way out)."""
    mine = next((doc for doc in records if doc.get("Name") == network), {})
    if mine.get("Internal"):
        return []
    return list(mine.get("Dns", {}).get(me, [])) or host


def names_table(records: list[dict[str, Any]], network: str, source: str) -> dict[str, list[str]]:
    """name (lower case) -> addresses, for the container at ``source`` on ``network``: the
    names on every network it shares with others. Empty if ``source`` is no container."""
    me = asker(records, network, source)
    if me is None:
        return {}
    table: dict[str, list[str]] = {}
    for doc in records:
        members = doc.get("Containers", {})
        if me not in members:
            continue
        for cid, names in doc.get("Names", {}).items():
            address = members.get(cid)
            for name in names if address else []:
                found = table.setdefault(name.lower(), [])
                if address not in found:
                    found.append(address)
    return table


def upstream_resolvers(text: str) -> list[str]:
    """The ``nameserver`` lines of a resolv.conf, loopback ones skipped."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                if ipaddress.ip_address(parts[1]).is_loopback:
                    continue
            except ValueError:
                continue
            out.append(parts[1])
    return out


def host_resolv_conf() -> str:
    """The host's resolver configuration: ``$MINIDOCKER_HOST_RESOLV_CONF`` or /etc/resolv.conf."""
    path = os.environ.get("MINIDOCKER_HOST_RESOLV_CONF") or "/etc/resolv.conf"
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def local_answer(query: bytes, table: dict[str, list[str]]) -> bytes | None:
    """The reply to ``query`` from the names table, or None when the name is not ours
    (then it is forwarded). A name of ours with another type than A gets an empty answer."""
    from dnslib import QTYPE, RR, A, DNSRecord

    request = DNSRecord.parse(query)
    qname = str(request.q.qname).rstrip(".").lower()
    addresses = table.get(qname)
    if addresses is None:
        return None
    reply = request.reply()
    if request.q.qtype in (QTYPE.A, QTYPE.ANY):
        for address in addresses:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=TTL))
    return reply.pack()


def error_answer(query: bytes, rcode: str) -> bytes:
    """A reply with no answer and ``rcode`` ("NXDOMAIN", "SERVFAIL")."""
    from dnslib import RCODE, DNSRecord

    reply = DNSRecord.parse(query).reply()
    reply.header.rcode = getattr(RCODE, rcode)
    return reply.pack()


def forward(query: bytes, upstreams: list[str], timeout: float = FORWARD_TIMEOUT, port: int = 53) -> bytes | None:
    """The query, as it came, to each upstream resolver in turn (UDP); its first reply."""
    for server in upstreams:
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            try:
                s.sendto(query, (server, port))
                reply, _ = s.recvfrom(65535)
            except OSError:
                continue
            if reply[:2] == query[:2]:  # the same query ID
                return reply
    return None


def respond(query: bytes, table: dict[str, list[str]], upstreams: list[str], forwarder=forward) -> bytes | None:
    """What the resolver sends back: our answer, else the upstream's, else NXDOMAIN (no
    upstream to ask) or SERVFAIL (none answered); None for a message that is no query."""
    try:
        mine = local_answer(query, table)
    except Exception:  # noqa: BLE001 - not a DNS message: no answer, as any resolver
        return None
    if mine is not None:
        return mine
    if not upstreams:
        return error_answer(query, "NXDOMAIN")
    return forwarder(query, upstreams) or error_answer(query, "SERVFAIL")


# -- starting, reloading and stopping it (from attach.py) ----------------------------------------
def _running_resolver(layout: Layout, network: str) -> int | None:
    """The PID in the network's pid file, if that process still is the one that wrote it."""
    from minidocker.linux import procfs

    doc = read_json(layout.network_resolver_pid(network), None)
    if not doc:
        return None
    pid = doc.get("Pid")
    return pid if pid and procfs.start_time(pid) == doc.get("StartTime") else None


def ensure_resolver(root: Path, network: str, address: str) -> None:
    """A container joined ``network``: start its resolver if none runs (none yet, or the
    pid file is stale: the process was killed), else tell it to reload (SIGHUP)."""
    from minidocker.fsutil import locked, write_json
    from minidocker.linux import procfs
    from minidocker.linux.events import emit

    layout = Layout(Path(root))
    with locked(layout.networks_lock):
        pid = _running_resolver(layout, network)
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
            emit("resolver", network=network, pid=pid, action="reload (SIGHUP)")
            return
        pid = spawn_resolver(Path(root), network, address)
        write_json(layout.network_resolver_pid(network), {"Pid": pid, "StartTime": procfs.start_time(pid)})
    emit("resolver", network=network, pid=pid, action=f"started, listening on {address}:53 (udp, tcp)")


def spawn_resolver(root: Path, network: str, address: str) -> int:
    """``python -m minidocker.runtime.dns ROOT NETWORK ADDRESS`` in a session of its own;
    its first line says it listens (and under which PID) or why it cannot."""
    import subprocess

    import minidocker
    from minidocker.errors import MinidockerError

    package_parent = Path(minidocker.__file__).resolve().parent.parent
    p = subprocess.Popen(
        [sys.executable, "-m", "minidocker.runtime.dns", str(root), network, address],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=package_parent,
        start_new_session=True,
        text=True,
    )
    assert p.stdout is not None  # (stdout=PIPE)
    line = p.stdout.readline().split()
    p.stdout.close()
    p.wait()
    if len(line) != 2 or line[0] != "ready":
        raise MinidockerError(f"the resolver of network {network} did not start: {' '.join(line[1:]) or 'no word'}")
    return int(line[1])


def resolver_changed(root: Path, network: str, last: bool) -> None:
    """A container left ``network``: its resolver reloads, or goes with the last container."""
    from minidocker.fsutil import locked
    from minidocker.linux.events import emit

    layout = Layout(Path(root))
    with locked(layout.networks_lock):
        pid = _running_resolver(layout, network)
        if pid is not None:
            os.kill(pid, signal.SIGTERM if last else signal.SIGHUP)
            emit("resolver", network=network, pid=pid, action="stopped" if last else "reload (SIGHUP)")
        if last and pid is not None:
            _wait_gone(pid)
        if last:
            layout.network_resolver_pid(network).unlink(missing_ok=True)


def _wait_gone(pid: int, timeout: float = 2.0) -> None:
    """Until the stopped resolver is gone, so its port is free for the next one."""
    import time

    from minidocker.linux import procfs

    deadline = time.monotonic() + timeout
    while procfs.start_time(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.01)


# -- the process ---------------------------------------------------------------------------------
class Resolver:
    """The serving loop of one network's resolver."""

    def __init__(self, root: Path, network: str, address: str):
        self.layout = Layout(Path(root))
        self.network = network
        self.address = address
        self.records: list[dict[str, Any]] = []
        self.upstreams: list[str] = []
        self.stale = True
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.udp.bind((address, 53))
        self.tcp.bind((address, 53))
        self.tcp.listen(16)

    def reload(self) -> None:
        """Read the network records and the host's resolvers again (after SIGHUP)."""
        docs = [read_json(p, None) for p in sorted(self.layout.networks_dir.glob("*.json"))]
        self.records = [d for d in docs if d]
        self.upstreams = upstream_resolvers(host_resolv_conf())
        self.stale = False

    def answer(self, query: bytes, source: str) -> bytes | None:
        if self.stale:
            self.reload()
        me = asker(self.records, self.network, source)
        upstreams = upstreams_of(self.records, self.network, me, self.upstreams)
        return respond(query, names_table(self.records, self.network, source), upstreams)

    def serve_udp(self) -> None:
        query, (source, port, *_) = self.udp.recvfrom(65535)
        reply = self.answer(query, source)
        if reply is not None:
            if len(reply) > 512:  # too big for plain UDP: truncated, the client asks again over TCP
                reply = reply[:2] + bytes([reply[2] | 0x02, reply[3]]) + b"\0" * 8
            self.udp.sendto(reply, (source, port))

    def serve_tcp(self) -> None:
        conn, (source, *_) = self.tcp.accept()
        with conn:
            conn.settimeout(FORWARD_TIMEOUT)
            try:
                length = struct.unpack("!H", _read_exactly(conn, 2))[0]
                reply = self.answer(_read_exactly(conn, length), source)
                if reply is not None:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except (OSError, struct.error):
                pass

    def run(self) -> None:
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "stale", True))
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP, signal.SIGTERM})  # (a mask survives execve)
        sel = selectors.DefaultSelector()
        sel.register(self.udp, selectors.EVENT_READ, self.serve_udp)
        sel.register(self.tcp, selectors.EVENT_READ, self.serve_tcp)
        while True:
            for key, _ in sel.select():
                key.data()


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def main(argv: list[str]) -> None:
    """``python -m minidocker.runtime.dns ROOT NETWORK ADDRESS``: bind, then fork; the first
    process prints the PID of the second (which serves) and exits, so the resolver is no
    child of the container's parent."""
    root, network, address = argv
    try:
        resolver = Resolver(Path(root), network, address)
    except OSError as e:
        print(f"error {e.strerror or e}", flush=True)
        sys.exit(1)
    pid = os.fork()
    if pid:
        print(f"ready {pid}", flush=True)
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    resolver.run()


if __name__ == "__main__":
    main(sys.argv[1:])
