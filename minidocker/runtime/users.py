"""``-u USER[:GROUP]`` resolved against the container's own /etc/passwd and /etc/group.

Pure functions over the files' text (unit-tested without root); the container's init calls
them after pivot_root, so it reads the image's files and never the host's, as docker does.
"""

from __future__ import annotations

from minidocker.errors import MinidockerError
from minidocker.record import field, record


@record
class User:
    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)
    home: str = "/"
    name: str | None = None


def _entries(text: str, fields: int) -> list[list[str]]:
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            out.append(parts)
    return out


def resolve_user(spec: str, passwd: str, group: str) -> User:
    """``""``/``root``/``1000``/``app``/``app:staff``/``1000:50`` -> uid, gid, groups, home.

    Rules (docker's): a name must exist in passwd; a number need not (then gid 0 and home
    /); the primary group comes from passwd unless ``:GROUP`` says otherwise; supplementary
    groups are every group that lists the user's name as a member.
    """
    user_part, _, group_part = (spec or "0").partition(":")
    users = _entries(passwd, 7)
    groups = _entries(group, 4)
    entry = next((u for u in users if u[0] == user_part), None)
    if entry is None and user_part.isdigit():
        entry = next((u for u in users if u[2] == user_part), None)
        if entry is None:
            return User(int(user_part), _group_id(group_part, groups) if group_part else 0, [], "/")
    if entry is None:
        raise MinidockerError(f"unable to find user {user_part}: no matching entries in passwd file")
    name, uid, gid, home = entry[0], int(entry[2]), int(entry[3]), entry[5] or "/"
    if group_part:
        gid = _group_id(group_part, groups)
        supplementary: list[int] = []
    else:
        supplementary = sorted({int(g[2]) for g in groups if name in g[3].split(",") and int(g[2]) != gid})
    return User(uid, gid, supplementary, home, name)


def _group_id(text: str, groups: list[list[str]]) -> int:
    g = next((g for g in groups if g[0] == text), None)
    if g is not None:
        return int(g[2])
    if text.isdigit():
        return int(text)
    raise MinidockerError(f"unable to find group {text}: no matching entries in group file")
