"""Whiteouts: how a layer says "this file is deleted", in the two forms that exist.

In a layer *tar* (the OCI image spec, inherited from AUFS), a deletion is an empty file
with a special name next to what it deletes::

    etc/.wh.motd            -> etc/motd is deleted (in the layers below)
    var/cache/.wh..wh..opq  -> var/cache is *opaque*: everything below it in lower layers
                               is hidden; only this layer's entries remain

In an *overlayfs* lowerdir (what we unpack into, and what the kernel reads), the same
facts are written the kernel's way::

    etc/motd     a character device with device number 0/0
    var/cache    a directory with the xattr trusted.overlay.opaque="y"

``apply_layer`` turns the first form into the second (pull); ``diff`` will turn the second
back into the first (commit, push). Both use only this module.

See it: after pulling an image whose layer deletes a file,
``ls -l /var/lib/minidocker/layers/*/diff/...`` shows ``c--------- 1 root root 0, 0``.
"""

from __future__ import annotations

import os
import posixpath
import stat

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"


def classify(name: str) -> tuple[str, str]:
    """A tar member name -> ("opaque", dir) | ("whiteout", deleted path) | ("regular", path).

    ``dir`` is "" for the layer's root."""
    head, base = posixpath.split(name.rstrip("/"))
    if base == OPAQUE_MARKER:
        return "opaque", head
    if base.startswith(WHITEOUT_PREFIX):
        return "whiteout", posixpath.join(head, base[len(WHITEOUT_PREFIX):])
    return "regular", name


def is_overlay_whiteout(st: os.stat_result) -> bool:
    """overlayfs's whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def whiteout_name(path: str) -> str:
    """``etc/motd`` -> ``etc/.wh.motd``, the tar form of deleting it."""
    head, base = posixpath.split(path)
    return posixpath.join(head, WHITEOUT_PREFIX + base)


def opaque_marker(directory: str) -> str:
    """``var/cache`` -> ``var/cache/.wh..wh..opq``."""
    return posixpath.join(directory, OPAQUE_MARKER)
