"""Inode flags: the per-file attributes ``chattr(1)`` sets and ``lsattr(1)`` shows.

ioctl_iflags(2): ``FS_IOC_GETFLAGS`` reads an open file's flags as an int and
``FS_IOC_SETFLAGS`` writes them back (e2fsprogs passes an int, whatever the ``long`` in the
ioctl numbers of <linux/fs.h> says). Which flags a file system keeps is its own affair: ext4
keeps them all; tmpfs a few (append, immutable, nodump, noatime); other flags, or a file
system without any, fail with ``EOPNOTSUPP``, ``ENOTTY`` or ``EINVAL``. Changing most flags
needs only ownership of the file; immutable and append-only need ``CAP_LINUX_IMMUTABLE``.

The store uses one: ``FS_TOPDIR_FL`` (``chattr +T``), which tells ext4's Orlov allocator to
spread the subdirectories of a directory over the disk's block groups
(``fsutil.mkdir_apart``). See it: ``lsattr -d /var/lib/minidocker/layers/*``, or
``mkdir t && chattr +T t && mkdir t/a t/b && ls -i t`` (far apart inode numbers).
"""

from __future__ import annotations

import fcntl
import sys

FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long)
FS_IOC_SETFLAGS = 0x40086602  # _IOW('f', 2, long)
FS_TOPDIR_FL = 0x00020000  # "T": the top of a directory hierarchy, for the Orlov allocator


def get_inode_flags(fd: int) -> int:
    """ioctl(fd, FS_IOC_GETFLAGS): the flags of the open file ``fd`` (OSError if it has none)."""
    return int.from_bytes(fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(4)), sys.byteorder, signed=True)


def set_inode_flags(fd: int, flags: int) -> None:
    """ioctl(fd, FS_IOC_SETFLAGS, &flags): replace the flags of the open file ``fd``."""
    fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags.to_bytes(4, sys.byteorder, signed=True))
