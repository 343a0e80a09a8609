"""Capabilities: root's powers, split into ~40 pieces, and which of them a container keeps.

A process has five capability sets: *bounding* (the most it can ever gain), *permitted*,
*effective* (what the kernel checks), *inheritable* and *ambient* (what survives execve).
A container starts with Docker's default set of 14 and loses the rest from every set, so
even its root cannot mount, load modules, change the clock or reboot. ``no_new_privs``
then makes sure no setuid binary or file capability can hand anything back.

Driven with python-prctl. See it: ``minidocker run --rm busybox grep Cap /proc/self/status``
and decode with ``capsh --decode=00000000a80425fb``.
"""

from __future__ import annotations

import os

from minidocker.errors import MinidockerError
from minidocker.linux.events import emit

# Docker's default set (moby's oci/caps/defaults.go lists the same 14).
DEFAULT_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# Numbers from <linux/capability.h>; newer than some libraries' tables, so kept here.
CAP_NUMBERS = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}


def preload() -> None:
    """Import python-prctl now (before pivot_root hides the host's Python library)."""
    import ctypes  # noqa: F401

    import prctl  # noqa: F401


def normalize(name: str) -> str:
    n = name.strip().upper()
    if n == "ALL":
        return n
    n = n if n.startswith("CAP_") else "CAP_" + n
    if n not in CAP_NUMBERS:
        raise MinidockerError(f"unknown capability: {name!r}", hint="names as in capabilities(7), e.g. NET_ADMIN")
    return n


_last_cap: list[int] = []  # read once per process: the kernel's number does not change


def last_cap() -> int:
    """The highest capability number this kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    if not _last_cap:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _last_cap.append(int(f.read()))
        except OSError:
            _last_cap.append(max(CAP_NUMBERS.values()))
    return _last_cap[0]


def resolve(cap_add: list[str], cap_drop: list[str], privileged: bool) -> list[str]:
    """The container's capability names: Docker's defaults, + --cap-add, - --cap-drop."""
    top = last_cap()
    everything = [n for n, v in CAP_NUMBERS.items() if v <= top]
    if privileged:
        return everything
    adds = [normalize(c) for c in cap_add]
    drops = [normalize(c) for c in cap_drop]
    caps = set(everything) if "ALL" in adds else set(DEFAULT_CAPS)
    caps |= {c for c in adds if c != "ALL"}
    if "ALL" in drops:
        caps = {c for c in adds if c != "ALL"}
    caps -= {c for c in drops if c != "ALL"}
    return sorted(caps, key=CAP_NUMBERS.__getitem__)


def mask(caps: list[str]) -> int:
    """The bit mask /proc/PID/status shows for a set (CapBnd, CapEff ...)."""
    return sum(1 << CAP_NUMBERS[c] for c in caps)


def drop_bounding_set(keep: list[str]) -> None:
    """PR_CAPBSET_DROP every capability not kept: gone for good, for us and our children."""
    import prctl

    keep_numbers = {CAP_NUMBERS[c] for c in keep}
    dropped = []
    for n in range(last_cap() + 1):
        if n not in keep_numbers:
            prctl.capbset_drop(n)
            dropped.append(n)
    emit("capabilities", action="drop bounding", dropped=len(dropped), kept=list(keep))


def limit_process_sets(keep: list[str]) -> None:
    """capset(2): permitted, effective and inheritable become ``keep``; ambient is cleared.
    (For a non-root user setuid already emptied them: execve gives nothing back without
    file capabilities, as in docker.)"""
    import prctl

    names = [c[4:].lower() for c in keep]
    for s in (prctl.cap_inheritable, prctl.cap_effective, prctl.cap_permitted):
        allowed = [n for n in names if hasattr(s, n)]
        s.limit(*allowed)
    try:  # PR_CAP_AMBIENT_CLEAR_ALL (47, 4): nothing is raised implicitly across execve
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(47, 4, 0, 0, 0)
    except OSError:
        pass
    emit("capabilities", action="capset", kept=list(keep))


def keep_caps() -> None:
    """PR_SET_KEEPCAPS: the permitted set survives the coming setuid to a user other than
    root (an OCI bundle may give a user capabilities); execve clears the flag."""
    import prctl

    prctl.set_keepcaps(True)


def set_process_sets(sets: dict[str, list[str]]) -> None:
    """capset(2) with an OCI bundle's effective, permitted and inheritable sets exactly (one
    call: python-prctl's per-set setters can only take away, and inheritable starts empty),
    then its ambient set raised one by one (PR_CAP_AMBIENT_RAISE), after clearing it."""
    import ctypes

    masks = [mask(sets.get(k) or []) for k in ("effective", "permitted", "inheritable")]
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)(*[(m >> word) & 0xFFFFFFFF for word in (0, 32) for m in masks])
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), f"capset: {os.strerror(ctypes.get_errno())}")
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
    raisable = set(sets.get("permitted") or []) & set(sets.get("inheritable") or [])
    for name in [n for n in sets.get("ambient") or [] if n in raisable]:  # (the kernel's rule; runc's spec
        # asks for ambient capabilities without inheritable ones: those are left out, as runc does)
        if libc.prctl(47, 2, CAP_NUMBERS[name], 0, 0) != 0:  # PR_CAP_AMBIENT_RAISE
            raise OSError(ctypes.get_errno(), f"ambient capability {name}: {os.strerror(ctypes.get_errno())}")
    emit("capabilities", action="capset", sets={k: list(v) for k, v in sets.items()})


def set_no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS: execve can never grant privileges again (setuid bits, file caps
    are ignored). Also what allows an unprivileged seccomp filter."""
    import prctl

    prctl.set_no_new_privs(1)
    emit("no_new_privs", value=1)
