import pytest

from minidocker.errors import InvalidReference
from minidocker.image.reference import parse

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "text, full, familiar",
    [
        ("ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
        ("ubuntu:22.04", "docker.io/library/ubuntu:22.04", "ubuntu:22.04"),
        ("library/ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
        ("docker.io/ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
        ("index.docker.io/library/ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
        ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        ("localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t"),
        ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest", "127.0.0.1:5000/busybox:latest"),
        ("quay.io/org/img:1.0-rc_1", "quay.io/org/img:1.0-rc_1", "quay.io/org/img:1.0-rc_1"),
        (f"busybox@{D}", f"docker.io/library/busybox@{D}", f"busybox@{D}"),
        (f"h:1/busybox:1@{D}", f"h:1/busybox:1@{D}", f"h:1/busybox:1@{D}"),
        ("a__b/c-d.e_f", "docker.io/a__b/c-d.e_f:latest", "a__b/c-d.e_f:latest"),
    ],
)
def test_parse_normalises_like_docker(text, full, familiar):
    ref = parse(text)
    assert str(ref) == full
    assert ref.familiar() == familiar


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ubuntu",
        "Ubuntu",
        "ubuntu:",
        "ubuntu:-x",
        "ubuntu@sha256:abc",
        "ubuntu@md5:" + "a" * 64,
        "a//b",
        "a/",
        "/a",
        "-a",
        "a..b",
        "ubuntu:" + "t" * 129,
        "a" * 256,
        "host:port/x",
        "UPPER.io/x:Y_/z",
        "a b",
        "ubuntu:tag:tag",
    ],
)
def test_parse_refuses_malformed(text):
    with pytest.raises(InvalidReference) as exc:
        parse(text)
    assert "invalid reference format" in str(exc.value)


def test_reference_parts():
    ref = parse("127.0.0.1:5000/ns/app:v2")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("127.0.0.1:5000", "ns/app", "v2", None)
    assert ref.reference == "v2"
    assert parse(f"app@{D}").reference == D
