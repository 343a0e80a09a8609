"""Which host user IDs a ``--userns=auto`` container gets.

The host's administrator lends ID ranges to a user in ``/etc/subuid`` and ``/etc/subgid``
(``NAME:FIRST:COUNT`` per line, see subuid(5)); minidocker takes its ranges from the lines of
the user ``minidocker`` and cuts them into blocks of 65,536 IDs (every ID a Linux image uses:
0-65535). Each container gets a block no other container has, so a process escaping one
container is a stranger to the files and processes of every other one, and of the host.
``vagrant/provision.sh`` adds ``minidocker:1000000:6553600`` (100 blocks) when no line exists.

See it: ``grep minidocker /etc/subuid``, then ``minidocker inspect C`` (HostConfig.IdMap).
"""

from __future__ import annotations

from minidocker.errors import MinidockerError

SUBID_USER = "minidocker"
BLOCK = 65536
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"


def read_ranges(path: str, user: str = SUBID_USER) -> list[tuple[int, int]]:
    """``[(first, count)]`` lent to ``user`` in a subuid/subgid file (comments and bad lines skipped)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] != user or line.lstrip().startswith("#"):
            continue
        try:
            first, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if first > 0 and count > 0:
            out.append((first, count))
    return out


def blocks(ranges: list[tuple[int, int]], size: int = BLOCK) -> list[int]:
    """The first ID of every whole block of ``size`` IDs inside the ranges."""
    return [first + i * size for first, count in ranges for i in range(count // size)]


def allocate(taken_uids: set[int], subuid: str = SUBUID, subgid: str = SUBGID) -> dict[str, int]:
    """The first free block: ``{"uid": first host uid, "gid": first host gid, "size": 65536}``."""
    uid_blocks, gid_blocks = blocks(read_ranges(subuid)), blocks(read_ranges(subgid))
    if not uid_blocks or not gid_blocks:
        raise MinidockerError(
            f"--userns=auto needs ID ranges for the user {SUBID_USER!r} in {subuid} and {subgid}",
            hint=f"add the line '{SUBID_USER}:1000000:6553600' to both files (vagrant/provision.sh does)",
        )
    for uid, gid in zip(uid_blocks, gid_blocks):
        if uid not in taken_uids:
            return {"uid": uid, "gid": gid, "size": BLOCK}
    raise MinidockerError(
        f"--userns=auto: all {min(len(uid_blocks), len(gid_blocks))} ID blocks of {SUBID_USER!r} are in use",
        hint=f"remove containers, or lend more IDs in {subuid}",
    )
