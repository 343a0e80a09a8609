"""docker's ``--filter`` rule (cli/listing.py) on plain rows: several values of one key are
ORed, different keys ANDed, ``label`` values all must hold; a key the command does not know,
a value without ``=`` and a bad value of a known key are one error each."""

from __future__ import annotations

import pytest

from minidocker.cli import listing
from minidocker.errors import MinidockerError

CONTAINERS = [  # newest first, as api.ps gives them
    {
        "ID": "c3" * 32,
        "Names": "web",
        "Status": "running",
        "ExitCode": 0,
        "Created": "2024-01-03T00:00:00Z",
        "Labels": {"tier": "front", "team": "a"},
        "Image": "nginx",
        "ImageID": "sha256:n",
        "ImageChain": ["base", "nginx-top"],
        "Networks": ["bridge"],
        "Mounts": [{"Type": "volume", "Source": "data", "Destination": "/data"}],
    },
    {
        "ID": "b2" * 32,
        "Names": "job",
        "Status": "exited",
        "ExitCode": 3,
        "Created": "2024-01-02T00:00:00Z",
        "Labels": {"tier": "back"},
        "Image": "busybox",
        "ImageID": "sha256:b",
        "ImageChain": ["base"],
        "Networks": ["none"],
        "Mounts": [{"Type": "tmpfs", "Source": "", "Destination": "/data"}],
    },
    {
        "ID": "a1" * 32,
        "Names": "old",
        "Status": "created",
        "ExitCode": 0,
        "Created": "2024-01-01T00:00:00Z",
        "Labels": {},
        "Image": "busybox",
        "ImageID": "sha256:b",
        "ImageChain": ["base"],
        "Networks": ["front"],
        "Mounts": [],
    },
]
ANCESTORS = {"busybox": ("sha256:b", "base"), "nginx": ("sha256:n", "nginx-top")}

CASES = [  # (filters, names kept)
    (["status=running"], ["web"]),
    (["status=running", "status=exited"], ["web", "job"]),  # one key: OR
    (["status=exited", "name=web"], []),  # two keys: AND
    (["label=tier"], ["web", "job"]),
    (["label=tier", "label=team=a"], ["web"]),  # labels: AND
    (["label=tier=back"], ["job"]),
    (["name=^/o"], ["old"]),  # a regexp on /NAME, as docker stores names
    (["name=o"], ["job", "old"]),
    (["id=b2b2"], ["job"]),
    (["exited=3"], ["job"]),
    (["exited=0"], []),  # only an exited container has an exit code to match
    (["ancestor=busybox"], ["web", "job", "old"]),  # nginx is built on busybox's layer
    (["ancestor=nginx"], ["web"]),
    (["network=front"], ["old"]),
    (["volume=data"], ["web"]),
    (["volume=/data"], ["web"]),  # a tmpfs is not a volume
    (["before=job"], ["old"]),
    (["since=old", "status=exited"], ["job"]),
]


@pytest.mark.parametrize("filters, kept", CASES, ids=[" ".join(f) for f, _ in CASES])
def test_container_filters(filters, kept):
    wanted = listing.parse_filters(filters, listing.PS_FILTERS)
    rows = listing.filter_containers(CONTAINERS, wanted, ANCESTORS.__getitem__)
    assert [r["Names"] for r in rows] == kept


IMAGES = [
    {"ID": "sha256:" + "1" * 64, "Repository": "app/web", "Tag": "v2", "Created": "2024-02-03", "Labels": {"x": "1"}},
    {"ID": "sha256:" + "2" * 64, "Repository": "<none>", "Tag": "<none>", "Created": "2024-02-02", "Labels": {}},
    {"ID": "sha256:" + "3" * 64, "Repository": "busybox", "Tag": "latest", "Created": "2024-02-01", "Labels": {}},
]
IMAGE_CASES = [
    (["dangling=true"], ["<none>"]),
    (["dangling=false"], ["app/web", "busybox"]),
    (["reference=app/*"], ["app/web"]),
    (["reference=*:latest", "reference=app/web:v2"], ["app/web", "busybox"]),
    (["reference=busy*", "dangling=false"], ["busybox"]),
    (["label=x=1"], ["app/web"]),
    (["before=app/web:v2"], ["<none>", "busybox"]),
    (["since=busybox"], ["app/web", "<none>"]),
    (["since=" + "3" * 12, "before=app/web:v2"], ["<none>"]),
]


@pytest.mark.parametrize("filters, kept", IMAGE_CASES, ids=[" ".join(f) for f, _ in IMAGE_CASES])
def test_image_filters(filters, kept):
    rows = listing.filter_images(IMAGES, listing.parse_filters(filters, listing.IMAGE_FILTERS))
    assert [r["Repository"] for r in rows] == kept


BAD = [
    (listing.PS_FILTERS, "color=red", "invalid filter 'color'"),
    (listing.PS_FILTERS, "status", "bad format of filter 'status' (expected name=value)"),
    (listing.IMAGE_FILTERS, "ancestor=x", "invalid filter 'ancestor'"),
    (listing.VOLUME_FILTERS, "status=x", "invalid filter 'status'"),
]


@pytest.mark.parametrize("keys, arg, message", BAD, ids=[a for _, a, _ in BAD])
def test_bad_filters(keys, arg, message):
    with pytest.raises(MinidockerError) as e:
        listing.parse_filters([arg], keys)
    assert e.value.message == message and e.value.exit_code == 125


@pytest.mark.parametrize(
    "call",
    [
        lambda: listing.filter_containers(CONTAINERS, {"status": ["sleeping"]}, ANCESTORS.__getitem__),
        lambda: listing.filter_containers(CONTAINERS, {"exited": ["x"]}, ANCESTORS.__getitem__),
        lambda: listing.filter_images(IMAGES, {"dangling": ["maybe"]}),
        lambda: listing.filter_networks([], {"type": ["odd"]}),
    ],
    ids=["status=sleeping", "exited=x", "dangling=maybe", "type=odd"],
)
def test_bad_values_of_known_keys(call):
    with pytest.raises(MinidockerError, match="invalid filter '"):
        call()
