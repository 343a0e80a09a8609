"""Session fixtures shared by every test directory: the test images and real registries.

* ``image_layouts``: {"busybox", "debian", "layers", "multiarch", "multiarch-docker"} ->
  Path of a cached OCI image layout (images/build.py; /var/cache/minidocker/images).
* ``registry``: docker-registry on 127.0.0.1, no auth, seeded with busybox, debian,
  layers, multiarch (the whole index), multiarch-docker, library/debian, library/busybox
  (all ``:latest``).
* ``basic_registry``: htpasswd auth (``.username``/``.password`` = tester/s3cret), busybox.
* ``token_registry``: Docker Hub's bearer-token flow; busybox and private/busybox;
  ``.token_requests`` records the token server's requests.
* ``redirect_front``: a proxy in front of ``registry`` whose blob GETs 307 to 127.0.0.2.

Every fixture stops what it started and removes its directory, even when tests fail. A
missing tool fails the fixture with the Debian package to install; nothing is skipped.

As root, the whole session runs in a network namespace of its own (``pytest_configure``,
before any fixture starts): containers join a bridge by default, so every bridge, veth,
iptables rule and resolver a test makes lives there and goes with the session, and no
packet of a test can reach the host's network (it has only ``lo``). Containers' host
resolvers come from ``HOST_RESOLV_CONF``, which names none: a test that forwards a
lookup names a resolver of its own (MINIDOCKER_HOST_RESOLV_CONF).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

IMAGES = ("busybox", "debian", "layers", "multiarch", "multiarch-docker")
HOST_RESOLV_CONF = "/tmp/minidocker-tests-resolv.conf"  # no nameserver: no lookup leaves the test


def pytest_configure(config):
    """The session's own network namespace (tests/support/netns.py), with a test resolver
    file that names no nameserver. Not for a run of the cgroup v2 guest alone: the guest is
    a machine of its own (its containers' bridges live in it), and its build downloads."""
    import os

    from tests.support.netns import enter_private_network

    if os.geteuid() != 0 or _only_the_guest(config):
        return
    enter_private_network()
    with open(HOST_RESOLV_CONF, "w") as f:
        f.write("# the tests' host resolvers: none (tests/conftest.py)\n")


def _only_the_guest(config) -> bool:
    guest = (Path(__file__).parent / "v2guest").resolve()
    args = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    return bool(args) and all(a == guest or guest in a.parents for a in args)


def _fail_if_missing(fn, *args, **kwargs):
    """Call ``fn``; turn "not installed" errors into a test failure that says what to install."""
    from images.build import BuildError
    from tests.support.registry import ToolMissing

    try:
        return fn(*args, **kwargs)
    except (ToolMissing, BuildError) as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def image_layouts() -> dict[str, Path]:
    from images.build import build_image
    from tests.support.netns import host_network

    with host_network():  # a cold build of the debian image runs debootstrap against the mirror
        return {name: _fail_if_missing(build_image, name) for name in IMAGES}


def _seed_all(reg, jobs: list[tuple]) -> None:
    """Seed in parallel (each seed is a skopeo process): [(layout, repo, all_platforms)]."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(_fail_if_missing, reg.seed, layout, repo, "latest", all_platforms)
            for layout, repo, all_platforms in jobs
        ]
        for f in futures:
            f.result()


def _registry_fixture(tmp_path_factory, name: str, auth, seeds):
    from tests.support.registry import start_registry

    workdir = tmp_path_factory.mktemp(name)
    reg = None
    try:
        reg = _fail_if_missing(start_registry, workdir, auth=auth)
        _seed_all(reg, seeds)
        yield reg
    finally:
        if reg is not None:
            reg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def registry(tmp_path_factory, image_layouts):
    L = image_layouts
    yield from _registry_fixture(
        tmp_path_factory,
        "registry",
        None,
        [
            (L["debian"], "debian", False),
            (L["busybox"], "busybox", False),
            (L["layers"], "layers", False),
            (L["multiarch"], "multiarch", True),
            (L["multiarch-docker"], "multiarch-docker", True),
            (L["debian"], "library/debian", False),
            (L["busybox"], "library/busybox", False),
        ],
    )


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory, image_layouts):
    yield from _registry_fixture(
        tmp_path_factory, "basic-registry", "basic", [(image_layouts["busybox"], "busybox", False)]
    )


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory, image_layouts):
    yield from _registry_fixture(
        tmp_path_factory,
        "token-registry",
        "token",
        [(image_layouts["busybox"], "busybox", False), (image_layouts["busybox"], "private/busybox", False)],
    )


@pytest.fixture(scope="session")
def redirect_front(registry):
    from tests.support.registry import start_redirect_front

    front = start_redirect_front(registry)
    try:
        yield front
    finally:
        front.stop()
