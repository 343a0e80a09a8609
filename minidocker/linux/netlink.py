"""rtnetlink: the kernel's socket interface for links, addresses and routes.

``ip link``, ``ip addr``, ``ip route`` and pyroute2 all speak it: a socket of family
AF_NETLINK, protocol NETLINK_ROUTE, over which a process sends *messages* to the kernel and
reads its answers. Every message is a 16-byte header (``nlmsghdr``: length, type such as
RTM_NEWLINK, flags, sequence number, port) followed by a fixed struct for its kind
(``ifinfomsg`` for links, ``ifaddrmsg`` for addresses, ``rtmsg`` for routes) and a list of
*attributes* (``rtattr``: length, type, value, padded to 4 bytes; a value may itself be a list
of attributes, "nested"). With NLM_F_ACK the kernel answers every request with an NLMSG_ERROR
message whose error is 0 (done) or a negative errno (refused), which we raise as OSError.

This small client is what a container start needs, one message a step::

    RTM_NEWLINK  a veth pair: our end on the bridge and up, the peer made directly inside the
                 container's network namespace (IFLA_NET_NS_FD inside VETH_INFO_PEER)
    RTM_NEWADDR  the container's address on its eth0
    RTM_NEWLINK  eth0 and lo up (ifi_flags IFF_UP)
    RTM_NEWROUTE the default route via the gateway
    RTM_DELLINK  one end of a veth pair (the other goes with it)

A netlink socket belongs to the network namespace it was opened in, so a socket opened while
we were inside the container's namespace (setns(2)) keeps talking to that namespace after we
step back into our own.

See it: ``strace -e trace=sendto,recvfrom ip link show lo`` (the same messages, from ``ip``),
or ``minidocker run --rm --explain busybox ip addr``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct

from minidocker.linux import syscalls as sc
from minidocker.linux.events import emit

# message types (linux/rtnetlink.h) and flags (linux/netlink.h)
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
# link attributes (linux/if_link.h)
IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFF_UP = 0x1
# address and route attributes (linux/if_addr.h, linux/rtnetlink.h)
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_GATEWAY = 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # family, (pad), type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTATTR = struct.Struct("=HH")  # len, type


def align(n: int) -> int:
    """Netlink pads every message and attribute to a multiple of 4 bytes."""
    return (n + 3) & ~3


def attr(kind: int, value: bytes | str | int | list[bytes]) -> bytes:
    """One rtattr: a string is NUL-terminated, an int a native u32, a list nested attributes."""
    if isinstance(value, str):
        data = value.encode() + b"\0"
    elif isinstance(value, int):
        data = struct.pack("=I", value)
    elif isinstance(value, list):
        data = b"".join(value)
    else:
        data = value
    raw = RTATTR.pack(RTATTR.size + len(data), kind) + data
    return raw + b"\0" * (align(len(raw)) - len(raw))


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """The attributes after a fixed struct: type -> value (the last one of a type wins)."""
    out, i = {}, 0
    while i + RTATTR.size <= len(data):
        length, kind = RTATTR.unpack_from(data, i)
        if length < RTATTR.size:
            break
        out[kind & 0x3FFF] = data[i + RTATTR.size : i + length]  # (the top bits are flags: nested, byte order)
        i += align(length)
    return out


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """nlmsghdr + body: a whole request."""
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change)


def veth_request(name: str, peer: str, peer_netns_fd: int | None, master: int | None) -> bytes:
    """RTM_NEWLINK's body for ``ip link add NAME master MASTER up type veth peer name PEER
    netns FD``: the peer's own ifinfomsg and attributes nest inside VETH_INFO_PEER."""
    peer_attrs = [attr(IFLA_IFNAME, peer)]
    if peer_netns_fd is not None:
        peer_attrs.append(attr(IFLA_NET_NS_FD, peer_netns_fd))
    info = [attr(IFLA_INFO_KIND, "veth"), attr(IFLA_INFO_DATA, [attr(VETH_INFO_PEER, [ifinfo(), *peer_attrs])])]
    attrs = [attr(IFLA_IFNAME, name), attr(IFLA_LINKINFO, info)]
    if master is not None:
        attrs.append(attr(IFLA_MASTER, master))
    return ifinfo(flags=IFF_UP, change=IFF_UP) + b"".join(attrs)


def address_request(index: int, address: str, prefixlen: int) -> bytes:
    """RTM_NEWADDR's body for ``ip addr add ADDRESS/PREFIXLEN dev INDEX`` (IPv4: the local
    and the peer address are the same)."""
    packed = ipaddress.IPv4Address(address).packed
    return IFADDRMSG.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index) + (
        attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
    )


def default_route_request(gateway: str) -> bytes:
    """RTM_NEWROUTE's body for ``ip route add default via GATEWAY`` (dst_len 0: every address)."""
    head = RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    return head + attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)


def ack_error(reply: bytes, seq: int) -> int | None:
    """The errno of the NLMSG_ERROR answering request ``seq`` in ``reply`` (0: success), or
    None when the reply holds no such answer."""
    i = 0
    while i + NLMSGHDR.size <= len(reply):
        length, kind, _, got_seq, _ = NLMSGHDR.unpack_from(reply, i)
        if length < NLMSGHDR.size:
            break
        if kind == NLMSG_ERROR and got_seq == seq:
            return -struct.unpack_from("=i", reply, i + NLMSGHDR.size)[0]
        i += align(length)
    return None


class Netlink:
    """A NETLINK_ROUTE socket, in our network namespace or (``netns_fd``) in another one."""

    def __init__(self, netns_fd: int | None = None):
        self.seq = 0
        if netns_fd is None:
            self.sock = self._open()
            return
        own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            sc.setns(netns_fd, sc.CLONE_NEWNET, why="a netlink socket in the container's network namespace")
            try:
                self.sock = self._open()
            finally:
                sc.setns(own, sc.CLONE_NEWNET, why="back to our own network namespace")
        finally:
            os.close(own)

    @staticmethod
    def _open() -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        s.bind((0, 0))
        return s

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes, what: str) -> bytes:
        """Send one request with NLM_F_ACK and return the kernel's reply; a negative errno in
        it is raised as OSError(errno, what)."""
        self.seq += 1
        self.sock.send(message(kind, NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, body))
        reply = b""
        while (err := ack_error(reply, self.seq)) is None:
            reply += self.sock.recv(65536)
        if err:
            raise OSError(err, f"{what}: {os.strerror(err)}")
        return reply

    def link(self, name: str) -> tuple[int, int] | None:
        """RTM_GETLINK by name: (index, flags) of the interface, or None if there is none."""
        try:
            reply = self.request(RTM_GETLINK, 0, ifinfo() + attr(IFLA_IFNAME, name), f"ip link show {name}")
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        _, kind, _, _, _ = NLMSGHDR.unpack_from(reply, 0)
        if kind != RTM_NEWLINK:
            return None
        _, _, index, flags, _ = IFINFOMSG.unpack_from(reply, NLMSGHDR.size)
        return index, flags

    def add_veth(self, name: str, peer: str, peer_netns_fd: int | None, master: int | None) -> None:
        self.request(
            RTM_NEWLINK,
            NLM_F_CREATE | NLM_F_EXCL,
            veth_request(name, peer, peer_netns_fd, master),
            f"ip link add {name} type veth peer name {peer}",
        )
        emit("netlink", msg="RTM_NEWLINK", link=f"{name} <-> {peer}", detail="veth pair, the peer in the container")

    def set_up(self, index: int, name: str) -> None:
        self.request(RTM_NEWLINK, 0, ifinfo(index, IFF_UP, IFF_UP), f"ip link set {name} up")
        emit("netlink", msg="RTM_NEWLINK", link=name, detail="up")

    def add_address(self, index: int, address: str, prefixlen: int, name: str) -> None:
        self.request(
            RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, address_request(index, address, prefixlen), f"ip addr add {address}"
        )
        emit("netlink", msg="RTM_NEWADDR", link=name, address=f"{address}/{prefixlen}")

    def add_default_route(self, gateway: str) -> None:
        self.request(
            RTM_NEWROUTE,
            NLM_F_CREATE | NLM_F_EXCL,
            default_route_request(gateway),
            f"ip route add default via {gateway}",
        )
        emit("netlink", msg="RTM_NEWROUTE", route=f"default via {gateway}")

    def delete_link(self, name: str) -> bool:
        """RTM_DELLINK by name; False if there was no such link."""
        try:
            self.request(RTM_DELLINK, 0, ifinfo() + attr(IFLA_IFNAME, name), f"ip link del {name}")
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        emit("netlink", msg="RTM_DELLINK", link=name)
        return True
