import pytest

from minidocker.errors import RegistryError
from minidocker.image.registry import endpoint_for, is_insecure, parse_challenge


@pytest.mark.parametrize(
    "header, expect",
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"',
            (
                "bearer",
                {
                    "realm": "https://auth.docker.io/token",
                    "service": "registry.docker.io",
                    "scope": "repository:library/ubuntu:pull",
                },
            ),
        ),
        ('Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
        (
            'bearer realm="http://127.0.0.1:1/t", service="s"',
            ("bearer", {"realm": "http://127.0.0.1:1/t", "service": "s"}),
        ),
    ],
)
def test_parse_challenge(header, expect):
    assert parse_challenge(header) == expect


@pytest.mark.parametrize(
    "domain, insecure",
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.3.4.5", True),
        ("[::1]:5000", True),
        ("registry.example:5000", False),
        ("10.0.0.1:5000", False),
        ("docker.io", False),
    ],
)
def test_plain_http_only_for_loopback(domain, insecure, monkeypatch):
    monkeypatch.delenv("MINIDOCKER_INSECURE_REGISTRIES", raising=False)
    assert is_insecure(domain) is insecure


def test_insecure_registries_variable(monkeypatch):
    monkeypatch.setenv("MINIDOCKER_INSECURE_REGISTRIES", "registry.lan:5000, other.lan")
    assert is_insecure("registry.lan:5000") and is_insecure("other.lan:443")
    assert not is_insecure("registry.lan:6000")
    assert endpoint_for("registry.lan:5000") == "http://registry.lan:5000"


def test_docker_hub_and_its_mirror(monkeypatch):
    monkeypatch.delenv("MINIDOCKER_REGISTRY_MIRROR", raising=False)
    assert endpoint_for("docker.io") == "https://registry-1.docker.io"
    monkeypatch.setenv("MINIDOCKER_REGISTRY_MIRROR", "http://127.0.0.1:5001/")
    assert endpoint_for("docker.io") == "http://127.0.0.1:5001"
    assert endpoint_for("quay.io") == "https://quay.io"  # mirrors are for Docker Hub only
    monkeypatch.setenv("MINIDOCKER_REGISTRY_MIRROR", "ftp://nope")
    with pytest.raises(RegistryError):
        endpoint_for("docker.io")


@pytest.fixture
def daemon_json(tmp_path, monkeypatch):
    """A daemon.json of the test's own (not the machine's /etc/minidocker/daemon.json)."""
    path = tmp_path / "daemon.json"
    monkeypatch.setenv("MINIDOCKER_DAEMON_CONFIG", str(path))
    monkeypatch.delenv("MINIDOCKER_REGISTRY_MIRROR", raising=False)
    return path


def test_daemon_json_names_the_mirror(daemon_json, monkeypatch):
    assert endpoint_for("docker.io") == "https://registry-1.docker.io"  # no file: Docker Hub
    daemon_json.write_text('{"registry-mirrors": ["http://127.0.0.1:5000/", "http://127.0.0.1:5001"]}')
    assert endpoint_for("docker.io") == "http://127.0.0.1:5000"  # the first one
    assert endpoint_for("quay.io") == "https://quay.io"
    monkeypatch.setenv("MINIDOCKER_REGISTRY_MIRROR", "http://127.0.0.1:5002")
    assert endpoint_for("docker.io") == "http://127.0.0.1:5002"  # the environment wins
    monkeypatch.delenv("MINIDOCKER_REGISTRY_MIRROR")
    daemon_json.write_text('{"registry-mirrors": [], "debug": true}')
    assert endpoint_for("docker.io") == "https://registry-1.docker.io"


@pytest.mark.parametrize(
    "text, says",
    [
        ('{"registry-mirrors": ["http://127.0.0.1:5000"', "cannot read"),
        ('["http://127.0.0.1:5000"]', "must be a list"),
        ('{"registry-mirrors": "http://127.0.0.1:5000"}', "must be a list"),
        ('{"registry-mirrors": [5000]}', "must be a list"),
        ('{"registry-mirrors": ["127.0.0.1:5000"]}', "is not an http(s) URL"),
    ],
)
def test_a_damaged_daemon_json_is_an_error(daemon_json, text, says):
    daemon_json.write_text(text)
    with pytest.raises(RegistryError) as e:
        endpoint_for("docker.io")
    assert says in e.value.message and str(daemon_json) in e.value.message
