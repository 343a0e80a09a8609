"""``export``: a container's filesystem as one tar, read through a private read-only overlay.

A container's files are spread over its image's layers (``layers/*/diff``, read-only) and
its own ``upper/`` directory (what it changed, with whiteouts for what it deleted). The
kernel already knows how to flatten those into one view: overlayfs. So export mounts a
second overlay of the same directories, with ``upper`` as the *topmost lowerdir* and no
upperdir at all, which makes the mount read-only::

    mount -t overlay overlay -o lowerdir=upper:layerN:...:layer1 containers/<id>/merged

and walks it into a tar. Whiteouts and opaque directories in ``upper`` work in a lowerdir
just as they do in an upperdir, so the view shows the deletions, and lists no whiteout.
In the image store's words (image/store.py), ``mounted`` is the storage driver's ``get``
and ``put``: ``ImageStore.get`` gives the lowerdir list, and the mount is made here,
because image/ makes no syscalls.

The mount is made in a child process that first enters a mount namespace of its own
(``unshare(CLONE_NEWNS)`` + ``mount --make-rprivate /``): nobody else ever sees it, and the
kernel removes it when the child exits, however it exits (``mounted`` unmounts it first
when all goes well). Nothing left behind. It works for a running container too (its own
overlay lives in its own mount namespace; ours only reads the same directories; the kernel
may log that ``upper`` is "in use" by another mount, which for a read-only lower layer is
harmless).

See it: ``minidocker export c1 | tar -tv | head``; while it runs, ``cat /proc/mounts`` on the
host shows no overlay of c1: it is in the child's namespace only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from minidocker.errors import ExportFailed
from minidocker.linux import syscalls as sc


def overlay_options(lowerdirs: list[str]) -> tuple[str, str]:
    """(directory to chdir to, ``lowerdir=...`` option): the layers named relative to their
    common parent, so that an image of many layers still fits the one page mount(2) takes."""
    common = os.path.commonpath(lowerdirs)
    return common, "lowerdir=" + ":".join(os.path.relpath(p, common) for p in lowerdirs)


@contextlib.contextmanager
def mounted(lowerdirs: list[str], target: str) -> Iterator[str]:
    """``lowerdirs`` (top first) as one read-only overlay on ``target`` for the ``with``
    block, unmounted at its end. Overlayfs with no upperdir takes no writes (no workdir
    needed) and needs at least two lowerdirs; call it in a private mount namespace."""
    common, opts = overlay_options(lowerdirs)
    os.chdir(common)
    sc.mount("overlay", target, "overlay", sc.MS_RDONLY, opts)
    os.chdir("/")
    try:
        yield target
    finally:
        sc.umount2(target, sc.MNT_DETACH)


def export_rootfs(
    upper: Path, lowerdirs: list[Path], mountpoint: Path, out_fd: int, idmap: dict[str, int] | None = None
) -> int:
    """Write the flattened filesystem to ``out_fd``; returns the number of tar members."""
    from minidocker.image.flat import write_tree_tar

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own mount namespace, the view, the tar
        os.close(r)
        code = 0
        try:
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)  # our mount must not propagate out
            view = [str(upper), *(str(p) for p in lowerdirs)]  # upper on top of the image's layers
            with mounted(view, str(mountpoint)), os.fdopen(out_fd, "wb", buffering=1 << 20, closefd=False) as out:
                count = write_tree_tar(str(mountpoint), out, idmap)
            os.write(w, f"ok {count}".encode())
        except BaseException as e:  # noqa: BLE001  (the child reports everything, then exits)
            os.write(w, f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}".encode()[:4000])
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        report = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not report.startswith("ok "):
        if "BrokenPipe" in report:
            raise ExportFailed("export stopped: the reader of the tar went away")
        raise ExportFailed(f"export failed: {report or 'the exporting process died'}")
    return int(report.split()[1])
