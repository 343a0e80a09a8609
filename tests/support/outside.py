"""A place "outside" the bridge for network tests: a network namespace of the test's own,
joined to the test session's namespace by a veth pair with addresses the test chose, and
servers run inside it (a TCP echo of the peer's address, a dnslib resolver).

The session already runs in a private network namespace (tests/conftest.py), so this veth
pair, its addresses and everything listening here vanish with the holder process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

HOST_SIDE = "172.31.250.1"  # our end, in the session's namespace
OUTSIDE = "172.31.250.2"  # the far end, in the outside namespace


@dataclass
class Outside:
    pid: int  # the process holding the namespace
    address: str = OUTSIDE

    @property
    def nsenter(self) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net"]

    def start(self, code: str, *args: str) -> subprocess.Popen:
        """A Python program run inside the outside namespace; it prints "ready" when it listens."""
        p = subprocess.Popen(
            [*self.nsenter, sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
        )
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        return p


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@contextlib.contextmanager
def outside_namespace(tag: str) -> Iterator[Outside]:
    """The namespace and the veth pair ``vo-<tag>`` (ours) <-> ``eth0`` (theirs)."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"])
    ours = f"vo-{tag}"[:15]
    try:
        for _ in range(100):
            if os.readlink(f"/proc/{holder.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
        _run("ip", "link", "add", ours, "type", "veth", "peer", "name", "eth0", "netns", str(holder.pid))
        _run("ip", "addr", "add", f"{HOST_SIDE}/30", "dev", ours)
        _run("ip", "link", "set", ours, "up")
        out = Outside(holder.pid)
        _run(*out.nsenter, "ip", "addr", "add", f"{OUTSIDE}/30", "dev", "eth0")
        _run(*out.nsenter, "ip", "link", "set", "eth0", "up")
        _run(*out.nsenter, "ip", "link", "set", "lo", "up")
        yield out
    finally:
        subprocess.run(["ip", "link", "del", ours], capture_output=True)
        holder.kill()
        holder.wait()


# a TCP server that tells each client the address it sees it come from
PEER_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8); print("ready", flush=True)
while True:
    c, peer = s.accept(); c.sendall(f"seen-from {peer[0]}\\n".encode()); c.close()
"""

# a DNS server: NAME -> ADDRESS for one name, NXDOMAIN for every other; each query's name logged to stderr
TEST_RESOLVER = """
import socket, sys
from dnslib import DNSRecord, RR, A, QTYPE, RCODE
name, address = sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 53)); print("ready", flush=True)
while True:
    data, peer = s.recvfrom(4096)
    q = DNSRecord.parse(data); r = q.reply()
    print(str(q.q.qname), file=sys.stderr, flush=True)
    if str(q.q.qname).rstrip(".") == name and q.q.qtype == QTYPE.A:
        r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(address), ttl=60))
    elif str(q.q.qname).rstrip(".") != name:
        r.header.rcode = RCODE.NXDOMAIN
    s.sendto(r.pack(), peer)
"""
