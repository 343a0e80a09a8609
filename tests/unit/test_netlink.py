"""linux/netlink.py's messages, byte for byte, and its ack parsing (no root, no socket)."""

from __future__ import annotations

import socket
import struct

import pytest

from minidocker.linux import netlink as nl


def test_attributes_are_padded_to_four_bytes_and_strings_end_in_nul():
    assert nl.attr(nl.IFLA_IFNAME, "eth0") == struct.pack("=HH", 9, 3) + b"eth0\0" + b"\0\0\0"
    assert nl.attr(nl.IFLA_MASTER, 7) == struct.pack("=HHI", 8, 10, 7)
    nested = nl.attr(nl.IFLA_LINKINFO, [nl.attr(nl.IFLA_INFO_KIND, "veth")])
    assert struct.unpack_from("=HH", nested) == (4 + 12, nl.IFLA_LINKINFO)
    assert nl.parse_attrs(nested[4:]) == {nl.IFLA_INFO_KIND: b"veth\0"}


def test_a_veth_request_nests_the_peer_with_its_namespace():
    body = nl.veth_request("veth0123", "eth0", 5, master=3)
    family, _, index, flags, change = nl.IFINFOMSG.unpack_from(body)
    assert (family, index, flags, change) == (socket.AF_UNSPEC, 0, nl.IFF_UP, nl.IFF_UP)
    top = nl.parse_attrs(body[nl.IFINFOMSG.size :])
    assert top[nl.IFLA_IFNAME] == b"veth0123\0" and struct.unpack("=I", top[nl.IFLA_MASTER]) == (3,)
    info = nl.parse_attrs(top[nl.IFLA_LINKINFO])
    assert info[nl.IFLA_INFO_KIND] == b"veth\0"
    peer = nl.parse_attrs(info[nl.IFLA_INFO_DATA])[nl.VETH_INFO_PEER]
    peer_attrs = nl.parse_attrs(peer[nl.IFINFOMSG.size :])
    assert peer_attrs[nl.IFLA_IFNAME] == b"eth0\0" and struct.unpack("=I", peer_attrs[nl.IFLA_NET_NS_FD]) == (5,)


def test_address_and_route_requests():
    body = nl.address_request(4, "10.88.0.2", 16)
    assert nl.IFADDRMSG.unpack_from(body) == (socket.AF_INET, 16, 0, 0, 4)
    attrs = nl.parse_attrs(body[nl.IFADDRMSG.size :])
    assert attrs[nl.IFA_LOCAL] == attrs[nl.IFA_ADDRESS] == bytes([10, 88, 0, 2])
    route = nl.default_route_request("10.88.0.1")
    assert nl.RTMSG.unpack_from(route)[:2] == (socket.AF_INET, 0)  # dst_len 0: the default route
    assert nl.parse_attrs(route[nl.RTMSG.size :])[nl.RTA_GATEWAY] == bytes([10, 88, 0, 1])


def test_a_message_has_its_length_and_flags_in_the_header():
    msg = nl.message(nl.RTM_NEWLINK, nl.NLM_F_REQUEST | nl.NLM_F_ACK, 9, b"x" * 16)
    assert nl.NLMSGHDR.unpack_from(msg) == (32, nl.RTM_NEWLINK, 5, 9, 0)


def _error(seq: int, err: int) -> bytes:
    original = nl.NLMSGHDR.pack(16, nl.RTM_NEWLINK, 5, seq, 0)
    return nl.NLMSGHDR.pack(16 + 4 + 16, nl.NLMSG_ERROR, 0, seq, 0) + struct.pack("=i", err) + original


@pytest.mark.parametrize(
    "reply, seq, expected",
    [
        (_error(3, 0), 3, 0),
        (_error(3, -17), 3, 17),  # EEXIST
        (_error(2, -1), 3, None),  # another request's answer
        (nl.NLMSGHDR.pack(16, nl.RTM_NEWLINK, 0, 3, 0) + _error(3, -19), 3, 19),  # data, then the ack
        (b"", 1, None),
    ],
)
def test_ack_errors(reply, seq, expected):
    assert nl.ack_error(reply, seq) == expected
