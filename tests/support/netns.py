"""The test session's private network namespace, and a way back out for downloads.

Containers join a bridge by default, so the whole test session (and each benchmark) runs
in a network namespace of its own: the bridges, veths, NAT rules and resolvers it makes
live and die there, and no test traffic can leave the machine. Only the builds of test
images reach the package mirror (debootstrap, pip for the guest); they run in the host's
namespace through ``host_network()``, which moves the calling thread back for the block
(setns(2) is per thread; the processes it starts inherit the thread's namespace)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from minidocker.linux import syscalls as sc

# The namespace we left: opened by enter_private_network, or inherited across an exec (bench/
# keeps it open for the process it re-executes in a private namespace, and names it here).
_host_fd: int | None = int(os.environ["MINIDOCKER_HOST_NETNS_FD"]) if "MINIDOCKER_HOST_NETNS_FD" in os.environ else None


def enter_private_network() -> None:
    """unshare(CLONE_NEWNET) for this process, ``lo`` up; the namespace left is kept open."""
    global _host_fd
    _host_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    sc.unshare(sc.CLONE_NEWNET)
    sc.set_link_up("lo")


@contextlib.contextmanager
def host_network() -> Iterator[None]:
    """Run the block in the host's network namespace (the one we left), then come back.
    Never having left, the block runs where we are."""
    if _host_fd is None:
        yield
        return
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(_host_fd, sc.CLONE_NEWNET, why="the host's network, to download a test image's packages")
        try:
            yield
        finally:
            sc.setns(own, sc.CLONE_NEWNET, why="back to the private network namespace")
    finally:
        os.close(own)
