"""Whiteouts: how a layer says "this file is deleted", in the two forms that exist.

A layer holds only what changed. Adding or changing a file is easy to write down: the file
is in the layer. Deleting one needs a marker, and there are two ways to write that marker.

**The tar form** (the OCI image spec, inherited from Docker's first driver, AUFS). A deletion
is an empty file with a special name, next to what it deletes::

    etc/.wh.motd            etc/motd is deleted: it exists in a lower layer, not in this one
    var/cache/.wh..wh..opq  var/cache is *opaque*: everything the lower layers have under
                            var/cache is hidden; only what this layer puts there remains

**The overlayfs form** (what the kernel reads in a lowerdir or upperdir, and so what we
unpack a layer into). The kernel marks the same two facts in its own way::

    etc/motd     a character device with device number 0/0 (a "whiteout")
    var/cache    a directory with the extended attribute trusted.overlay.opaque="y"

Note the opaque marker hides only the *lower* layers: files that the same layer puts in
var/cache stay visible, in whatever order the tar lists them.

``apply_layer`` (pull) turns the tar form into the overlayfs form; ``diff`` (commit, push)
turns an upper directory's overlayfs form back into the tar form. This module is the one
place that knows both vocabularies; it makes no system calls.

AUFS also kept bookkeeping of its own under names starting with ``.wh..wh.`` (for example
``.wh..wh.plnk/``, its hard-link directory). Such names are not files of the image:
``classify`` calls them "meta" and ``apply_layer`` leaves them out.

See it for yourself (as root)::

    mkdir -p /tmp/ov/{lower,upper,work,merged} && echo hi > /tmp/ov/lower/motd
    mount -t overlay overlay -o lowerdir=/tmp/ov/lower,upperdir=/tmp/ov/upper,workdir=/tmp/ov/work /tmp/ov/merged
    rm /tmp/ov/merged/motd && ls -l /tmp/ov/upper     # c--------- 2 root root 0, 0 ... motd
    umount /tmp/ov/merged && rm -r /tmp/ov

``ls`` prints a device's numbers, ``0, 0``, where a file's size would be. (The link count 2
is overlayfs keeping one whiteout in its workdir and hard-linking it for each deletion; the
whiteouts ``apply_layer`` makes have 1.)
"""

from __future__ import annotations

import os
import posixpath
import stat

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
OPAQUE_VALUE = b"y"
META_PREFIX = ".wh..wh."  # AUFS's own bookkeeping (OPAQUE_MARKER is the one name we use)

OPAQUE, WHITEOUT, META, REGULAR = "opaque", "whiteout", "meta", "regular"


def classify(name: str) -> tuple[str, str]:
    """Say what a tar member name means, as ``(kind, path)``:

    * ``("opaque", dir)``: ``dir/.wh..wh..opq``; ``dir`` is "" for the layer's root;
    * ``("whiteout", deleted)``: ``dir/.wh.NAME`` deletes ``dir/NAME``;
    * ``("meta", name)``: AUFS bookkeeping (a ``.wh..wh.*`` component), not part of the image;
    * ``("regular", name)``: anything else, a file, directory, link... to create as it is.

    Raises ``ValueError`` for a whiteout that names no file: ``.wh.``, ``.wh..``, ``.wh...``
    (they would delete "", "." or "..", that is the directory itself or its parent).
    """
    if WHITEOUT_PREFIX not in name:  # the common case, decided by one substring search
        return REGULAR, name
    head, base = posixpath.split(name.rstrip("/"))
    if base == OPAQUE_MARKER:
        return OPAQUE, head
    if base.startswith(META_PREFIX) or any(p.startswith(META_PREFIX) for p in head.split("/")):
        return META, name
    if base.startswith(WHITEOUT_PREFIX):
        deleted = base[len(WHITEOUT_PREFIX) :]
        if deleted in ("", ".", ".."):
            raise ValueError(f"whiteout {name!r} names no file")
        return WHITEOUT, posixpath.join(head, deleted)
    return REGULAR, name


def whiteout_name(path: str) -> str:
    """``etc/motd`` -> ``etc/.wh.motd``: the tar member that deletes ``path``."""
    head, base = posixpath.split(path.rstrip("/"))
    if base in ("", ".", ".."):
        raise ValueError(f"cannot write a whiteout for {path!r}")
    return posixpath.join(head, WHITEOUT_PREFIX + base)


def opaque_marker(directory: str) -> str:
    """``var/cache`` -> ``var/cache/.wh..wh..opq``: the tar member that makes it opaque."""
    return posixpath.join(directory.rstrip("/"), OPAQUE_MARKER)


def is_overlay_whiteout(st: os.stat_result) -> bool:
    """Is this ``lstat`` result overlayfs's whiteout, a character device 0/0?"""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque_value(value: bytes | None) -> bool:
    """Does this value of ``trusted.overlay.opaque`` (None: not set) make a directory opaque?

    overlayfs reads "y" as opaque. Since Linux 6.7 it also understands "x", which marks a
    directory holding "xwhiteouts" (a whiteout form for composefs-style layers); that
    directory is *not* opaque."""
    return value == OPAQUE_VALUE
