"""User namespaces: root inside the container, an unprivileged user on the host.

A user namespace maps ranges of user and group IDs: ``/proc/PID/uid_map`` holds lines of
``inside outside count``. With ``0 1000000 65536``, the container's root is host user
1000000, its user 1000 is host user 1001000, and a host user outside the range (host root
included) shows inside as the overflow ID 65534, "nobody". A process gets every capability
*in* the namespace it creates or joins, and none over anything the namespace does not own:
the host's files, the host's network, kernel modules. An escape from such a container lands
as an unprivileged user.

The kernel lets one write to uid_map and gid_map once, from outside the namespace, and the
writer needs CAP_SETUID/CAP_SETGID over the IDs mapped (root on the host has them). We
create the namespace in a short-lived helper process, map it, keep a file descriptor of
``/proc/HELPER/ns/user`` (the descriptor keeps the namespace alive after the helper exits),
and hand that descriptor to the container's first process, which joins it with setns(2).

The image's files are owned by host root (0) on disk; inside the namespace they would all
show as nobody. An *idmapped mount* (mount_setattr(2) with MOUNT_ATTR_IDMAP, Linux 5.12+;
overlayfs accepts idmapped layers since 5.19) shows them through the namespace's mapping:
on-disk 0 appears as host 1000000, which the container sees as its root.

See it: ``minidocker run --rm --userns=auto busybox cat /proc/self/uid_map``, and from the
host ``ps -o user,pid,cmd`` while it runs.
"""

from __future__ import annotations

import os

from minidocker.linux import syscalls as sc
from minidocker.linux.events import emit

IdMap = list[tuple[int, int, int]]  # uid_map's lines: (inside, outside, count)


def write_id_maps(pid: int, uids: IdMap, gids: IdMap) -> None:
    """Write the namespace's uid_map and gid_map, each in one write(2) as the kernel asks
    (at most 340 lines): ``inside outside count`` a line."""
    for kind, lines in (("uid", uids), ("gid", gids)):
        with open(f"/proc/{pid}/{kind}_map", "w") as f:
            f.write("".join(f"{inside} {outside} {count}\n" for inside, outside, count in lines))
        for inside, outside, count in lines:
            emit("idmap", kind=kind, pid=pid, inside=inside, outside=outside, count=count)


def create_user_namespace(uids: IdMap, gids: IdMap) -> int:
    """A new, mapped user namespace, as an open ``/proc/PID/ns/user`` file descriptor
    (``--userns=auto``: one range from 0; an OCI bundle: its uidMappings and gidMappings)."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the helper: unshare, say so, wait until the parent has what it needs
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)  # returns b"" when the parent closes its end
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise OSError(1, "could not create a user namespace (unshare(CLONE_NEWUSER) failed)")
        write_id_maps(pid, uids, gids)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def idmapped_mount(source: str, target: str, userns_fd: int) -> None:
    """Attach at ``target`` a bind mount of ``source`` that shows owners through the user
    namespace's mapping (open_tree -> mount_setattr -> move_mount)."""
    fd = sc.open_tree(source)
    try:
        sc.mount_setattr_idmap(fd, userns_fd)
        sc.move_mount(fd, target)
    finally:
        os.close(fd)
    emit("idmapped_mount", source=source, target=target)


def become_root_in(userns_fd: int) -> None:
    """Join the user namespace and become its root (host ``uid_base``).

    After setns(2) we hold every capability in the namespace, but our IDs are still host
    root's, which the namespace does not map: set them to the namespace's 0."""
    sc.setns(userns_fd, sc.CLONE_NEWUSER, why="root in here is an unprivileged user on the host")
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
