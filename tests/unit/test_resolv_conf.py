"""A container's /etc/resolv.conf by docker's rules (runtime/lifecycle.resolv_conf), from a
host resolv.conf the test writes (MINIDOCKER_HOST_RESOLV_CONF); and run's network flags
checked before anything is pulled (runtime/spec.check_network_flags)."""

from __future__ import annotations

import pytest

from minidocker.errors import MinidockerError
from minidocker.options import RunOptions
from minidocker.runtime.lifecycle import resolv_conf
from minidocker.runtime.spec import ContainerSpec, check_network_flags

HOST = "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.test\noptions edns0\n"


def spec(**kw) -> ContainerSpec:
    return ContainerSpec(id="a" * 64, name="c", image="i", image_id="sha256:x", argv=["true"], env=[], **kw)


@pytest.fixture(autouse=True)
def host_conf(tmp_path, monkeypatch):
    path = tmp_path / "resolv.conf"
    path.write_text(HOST)
    monkeypatch.setenv("MINIDOCKER_HOST_RESOLV_CONF", str(path))


@pytest.mark.parametrize(
    "kw, resolver, expected",
    [
        ({}, None, "nameserver 10.0.0.2\nsearch corp.test\noptions edns0\n"),  # the default bridge: loopback dropped
        ({}, "10.89.0.1", "nameserver 10.89.0.1\nsearch corp.test\noptions edns0\n"),  # a user network's resolver
        (
            {"dns": ["192.0.2.1"], "dns_search": ["a.test"], "dns_options": ["ndots:2"]},
            None,
            "nameserver 192.0.2.1\nsearch a.test\noptions ndots:2\n",
        ),
        ({"network": "host"}, None, "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.test\noptions edns0\n"),
        ({"network": "none"}, None, "# no network: --network none\n"),
    ],
)
def test_resolv_conf(kw, resolver, expected):
    assert resolv_conf(spec(**kw), resolver) == expected


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"ip": "10.88.0.5"}, "user defined networks only"),
        ({"network": "none", "network_alias": ["x"]}, "user defined networks"),
        ({"network": "blue", "ip": "10.1.2"}, "invalid IPv4 address"),
        ({"network": "blue", "ip": "fe80::1"}, "invalid IPv4 address"),
        ({"network": "container:x", "publish_all": True}, "port publishing"),
        ({"network": "container:x", "add_host": ["a:1.2.3.4"]}, "host-to-IP"),
        ({"network": "container:"}, "needs a container"),
        ({"dns": ["8.8.8"]}, "not an ip address"),
        ({"add_host": ["a:notip"]}, "--add-host"),
    ],
)
def test_network_flags_refused(kw, message):
    with pytest.raises(MinidockerError, match=message):
        check_network_flags(RunOptions(**kw))


def test_network_flags_accepted():
    assert check_network_flags(RunOptions()) == "bridge"
    assert check_network_flags(RunOptions(network="blue", ip="10.1.0.9", network_alias=["db"])) == "blue"
    assert check_network_flags(RunOptions(add_host=["gw:host-gateway", "v6:2001:db8::1"])) == "bridge"
