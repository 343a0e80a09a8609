"""runtime/dns.py's answers from network records: who shares a network with the asker,
names, aliases, forwarding rules (no root, no sockets but for a refused forward)."""

from __future__ import annotations

import socket
import threading

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from minidocker.runtime import dns

RECORDS = [
    {
        "Name": "blue",
        "Containers": {"a" * 64: "10.1.0.2", "b" * 64: "10.1.0.3"},
        "Names": {"a" * 64: ["web", "aaaaaaaaaaaa", "db"], "b" * 64: ["both", "bbbbbbbbbbbb"]},
    },
    {
        "Name": "red",
        "Containers": {"b" * 64: "10.2.0.2", "c" * 64: "10.2.0.3"},
        "Names": {"b" * 64: ["both", "bbbbbbbbbbbb"], "c" * 64: ["cache", "cccccccccccc"]},
    },
    {"Name": "old", "Containers": {"d" * 64: "10.3.0.2"}},  # a record from before: no names
]


def test_the_asker_sees_names_of_the_networks_it_is_on():
    only_blue = dns.names_table(RECORDS, "blue", "10.1.0.2")
    assert only_blue["web"] == ["10.1.0.2"] and only_blue["db"] == ["10.1.0.2"] and "cache" not in only_blue
    on_both = dns.names_table(RECORDS, "blue", "10.1.0.3")
    assert on_both["cache"] == ["10.2.0.3"] and on_both["web"] == ["10.1.0.2"]
    assert sorted(on_both["both"]) == ["10.1.0.3", "10.2.0.2"]
    assert dns.names_table(RECORDS, "blue", "10.9.9.9") == {}  # not a container of the network
    assert dns.names_table(RECORDS, "old", "10.3.0.2") == {}


def _query(name: str, qtype: str = "A") -> bytes:
    return DNSRecord.question(name, qtype).pack()


def test_local_answers():
    table = dns.names_table(RECORDS, "blue", "10.1.0.2")
    reply = DNSRecord.parse(dns.local_answer(_query("WEB."), table))
    assert [str(rr.rdata) for rr in reply.rr] == ["10.1.0.2"] and reply.rr[0].rtype == QTYPE.A
    empty = DNSRecord.parse(dns.local_answer(_query("web", "AAAA"), table))
    assert empty.header.rcode == RCODE.NOERROR and empty.rr == []
    assert dns.local_answer(_query("example.org"), table) is None


def test_unknown_names_without_upstreams_are_nxdomain_and_garbage_gets_no_answer():
    reply = DNSRecord.parse(dns.respond(_query("cache"), dns.names_table(RECORDS, "blue", "10.1.0.2"), []))
    assert reply.header.rcode == RCODE.NXDOMAIN
    assert dns.respond(b"\x00\x01garbage", {}, []) is None


def test_an_upstream_that_does_not_answer_is_servfail():
    reply = DNSRecord.parse(dns.respond(_query("example.org"), {}, ["10.0.0.2"], forwarder=lambda q, u: None))
    assert reply.header.rcode == RCODE.SERVFAIL


def test_forward_returns_the_upstreams_reply_or_none():
    """A real UDP resolver of the test's own on 127.0.0.1 (a free port), then a silent one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]

        def answer_once():
            data, peer = server.recvfrom(4096)
            reply = DNSRecord.parse(data).reply()
            reply.add_answer(RR("far.test", QTYPE.A, rdata=A("192.0.2.7")))
            server.sendto(reply.pack(), peer)

        t = threading.Thread(target=answer_once)
        t.start()
        got = dns.forward(_query("far.test"), ["127.0.0.1"], timeout=2, port=port)
        t.join()
        assert [str(rr.rdata) for rr in DNSRecord.parse(got).rr] == ["192.0.2.7"]
        assert dns.forward(_query("far.test"), ["127.0.0.1"], timeout=0.2, port=port) is None  # no answer now


@pytest.mark.parametrize(
    "text, expected",
    [
        ("nameserver 10.0.0.2\nnameserver 127.0.0.53\nsearch x\n", ["10.0.0.2"]),
        ("# c\nnameserver ::1\nnameserver 2001:db8::1\nnameserver bogus\n", ["2001:db8::1"]),
        ("", []),
    ],
)
def test_upstreams_skip_loopback_resolvers(text, expected):
    assert dns.upstream_resolvers(text) == expected


def test_other_queries_go_to_the_askers_dns_servers_else_the_hosts_and_never_out_of_an_internal_network():
    records = [
        {"Name": "blue", "Containers": {"a": "10.1.0.2", "b": "10.1.0.3"}, "Dns": {"a": ["10.0.0.53"]}},
        {"Name": "sealed", "Internal": True, "Containers": {"c": "10.4.0.2"}},
    ]
    assert dns.asker(records, "blue", "10.1.0.3") == "b" and dns.asker(records, "blue", "10.4.0.2") is None
    assert dns.upstreams_of(records, "blue", "a", ["10.9.9.9"]) == ["10.0.0.53"]
    assert dns.upstreams_of(records, "blue", "b", ["10.9.9.9"]) == ["10.9.9.9"]
    assert dns.upstreams_of(records, "sealed", "c", ["10.9.9.9"]) == []
