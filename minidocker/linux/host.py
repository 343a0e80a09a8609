"""The host a container runtime runs on: its kernel, CPUs, memory and users.

Containers share the host's kernel (there is no other): the kernel release that
``uname(2)`` reports outside is the one every container sees inside, and what the kernel
offers (cgroup controllers, seccomp, user namespaces) is what every container gets. These
are the facts ``minidocker info`` shows beside the store's.

See it: ``uname -rm; nproc; grep MemTotal /proc/meminfo`` on the host, and
``minidocker run --rm busybox uname -r`` inside: the same release.
"""

from __future__ import annotations

import os
import pwd


def kernel_release() -> str:
    """``uname -r``: the running kernel's release."""
    return os.uname().release


def architecture() -> str:
    """``uname -m``: the machine's hardware name (x86_64, aarch64)."""
    return os.uname().machine


def cpu_count() -> int | None:
    """How many CPUs the kernel has online (``nproc --all``)."""
    return os.cpu_count()


def memory_total() -> int:
    """The bytes of physical memory: pages times the page size, as sysconf(3) counts them."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def user_name(uid: int) -> str:
    """The host's name for ``uid`` (/etc/passwd), or the number itself if it has none (as
    ``ps`` shows a container's users the host does not know)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
