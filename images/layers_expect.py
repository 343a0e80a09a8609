"""What unpacking the ``layers`` image must produce (images/build.py, recipe "layers").

Written by hand, apart from the recipe, so that a test compares an unpacker against an
independent statement of the rules. ``LAYERS_EXPECTED`` is plain JSON-able data
(``python images/layers_expect.py`` prints it as JSON):

    {
      "merged": SPEC,              # the container's view: all 5 layers applied in order
      "layers": [                  # each layer unpacked on its own, in overlay form, bottom first
        {"index": 0, "media_type": "application/vnd.oci.image.layer.v1.tar+gzip", **SPEC},
        ...
      ],
    }

    SPEC = {
      "present": {PATH: ENTRY},    # PATH is relative ("data/kept.txt"): join it to the root
      "absent": [PATH, ...],       # must not exist (lstat fails)
      "exact": bool,               # true: nothing else exists under the root (dirs included)
      "no_whiteout_names": bool,   # true: no name under the root starts with ".wh."
    }

    ENTRY = {                      # every key but "type" is optional; absent = not checked
      "type": "file" | "dir" | "symlink" | "fifo" | "char" | "block",
      "mode": int,                 # stat.S_IMODE: permission bits with setuid/setgid/sticky
      "uid": int, "gid": int,      # numeric owner, checked with lstat (symlinks too)
      "content": str,              # a file's exact bytes (UTF-8)
      "target": str,               # a symlink's target, as readlink returns it
      "rdev": [major, minor],      # char/block devices
      "mtime": int,                # seconds since the epoch
      "xattrs": {NAME: VALUE},     # must be present with this value (others may exist)
      "inode": str,                # a hard-link group: entries with the same name share one
                                   # inode, entries with different names do not
      "nlink": int,
    }

The overlay form (the per-layer "layers" specs) is what an overlayfs lowerdir holds, as
containerd and Docker's overlay2 driver write it, and what the kernel reads:

  * a whiteout ``DIR/.wh.NAME`` in the tar becomes ``DIR/NAME``, a character device 0/0
    ("type": "char", "rdev": [0, 0]); the ``.wh.NAME`` file itself is not written;
  * an opaque marker ``DIR/.wh..wh..opq`` becomes the extended attribute
    ``trusted.overlay.opaque=y`` on DIR ("xattrs": {"trusted.overlay.opaque": "y"}); the
    marker file is not written;
  * everything else is written as the tar says.

Mounting the five layer dirs as ``lowerdir=L5:L4:L3:L2:L1`` must then show "merged".

``verify_tree(root, spec)`` returns a list of mismatches (empty when the tree matches).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

try:
    import zstandard  # noqa: F401                 (the recipe falls back to gzip without it)

    _ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
except ImportError:  # pragma: no cover
    _ZSTD = "application/vnd.oci.image.layer.v1.tar+gzip"

LAYER_MEDIA_TYPES = [
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar",
    _ZSTD,
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+gzip",
]

MTIME = 1000000000  # data/mtime-file: 2001-09-09T01:46:40Z
EPOCH = 1704067200  # every other entry's mtime in the tars: 2024-01-01


def _dir(mode=0o755, uid=0, gid=0, **kw):
    return {"type": "dir", "mode": mode, "uid": uid, "gid": gid, **kw}


def _file(content, mode=0o644, uid=0, gid=0, **kw):
    return {"type": "file", "mode": mode, "uid": uid, "gid": gid, "content": content, **kw}


def _link(target, uid=0, gid=0):
    return {"type": "symlink", "target": target, "uid": uid, "gid": gid}


WHITEOUT = {"type": "char", "rdev": [0, 0]}
OPAQUE = {"trusted.overlay.opaque": "y"}

_MERGED_PRESENT = {
    "bin": _dir(),
    "bin/busybox": {"type": "file", "mode": 0o755, "uid": 0, "gid": 0},
    "bin/sh": _link("busybox"),
    "bin/ls": _link("busybox"),
    "dev": _dir(),
    "proc": _dir(),
    "sys": _dir(),
    "etc": _dir(),
    "etc/passwd": {"type": "file", "mode": 0o644, "uid": 0, "gid": 0},
    "etc/group": {"type": "file", "mode": 0o644, "uid": 0, "gid": 0},
    "etc/layers-release": _file("5\n"),
    "root": _dir(0o700),
    "tmp": _dir(0o1777),
    "home": _dir(),
    "home/app": _dir(0o755, 1000, 1000),
    "home/app/notes.txt": _file("private notes\n", 0o600, 1000, 1000),
    "home/app/link-to-notes": _link("notes.txt", 1000, 1000),
    "home/app/shared-link": _file("shared across directories\n", 0o640, 1000, 1000, inode="shared", nlink=2),
    "data": _dir(),
    "data/kept.txt": _file("kept from layer 1\n"),
    "data/replaced.txt": _file("layer 3 wrote this\n"),
    "data/nobody": _file("owned by nobody\n", 0o640, 65534, 65534),
    "data/opaque": _dir(),
    "data/opaque/upper-b.txt": _file("from layer 2\n"),
    "data/recreated-dir": _dir(),
    "data/recreated-dir/new.txt": _file("recreated in layer 3\n"),
    "data/fifo": {"type": "fifo", "mode": 0o644, "uid": 0, "gid": 0},
    "data/null": {"type": "char", "mode": 0o666, "uid": 0, "gid": 0, "rdev": [1, 3]},
    "data/hardlink-a": _file("one inode, two names\n", inode="ab", nlink=2),
    "data/hardlink-b": _file("one inode, two names\n", inode="ab", nlink=2),
    "data/shared-file": _file("shared across directories\n", 0o640, 1000, 1000, inode="shared", nlink=2),
    "data/setuid": _file("#!/bin/sh\necho setuid\n", 0o4755),
    "data/sticky": _dir(0o1777),
    "data/xattr-file": _file("has user.test=hello\n", xattrs={"user.test": "hello"}),
    "data/mtime-file": _file("mtime 2001-09-09T01:46:40Z\n", mtime=MTIME),
    "data/link-rel": _link("kept.txt"),
    "data/link-abs": _link("/data/kept.txt"),
    "data/link-dir": _link("../bin"),
    "data/file-then-dir": _dir(),
    "data/file-then-dir/child.txt": _file("was a file\n"),
    "data/dir-then-link": _link("kept.txt"),
}

_MERGED_ABSENT = [
    "data/deleted-file",  # whiteout, layer 2
    "data/deleted-dir",
    "data/deleted-dir/inner.txt",  # whiteout of a dir, layer 2
    "data/opaque/lower-a.txt",
    "data/opaque/lower-sub",  # opaque dir, layer 2
    "data/recreated-dir/old.txt",  # dir whited out (2), recreated (3)
    "data/to-delete-later",  # layer 3 (zstd), whiteout in layer 4
    "data/script.sh",  # layer 3 (zstd), whiteout in layer 5
    "data/.wh.deleted-file",
    "data/opaque/.wh..wh..opq",
]

_L1_PRESENT = {
    "bin/busybox": {"type": "file", "mode": 0o755},
    "bin/sh": _link("busybox"),
    "tmp": _dir(0o1777),
    "root": _dir(0o700),
    "home/app": _dir(0o755, 1000, 1000),
    "home/app/notes.txt": _file("private notes\n", 0o600, 1000, 1000),
    "data/kept.txt": _file("kept from layer 1\n"),
    "data/replaced.txt": _file("layer 1 wrote this\n"),
    "data/nobody": _file("owned by nobody\n", 0o640, 65534, 65534),
    "data/deleted-file": _file("deleted by layer 2\n"),
    "data/deleted-dir/inner.txt": _file("deleted with its dir\n"),
    "data/deleted-dir/sub/deep.txt": _file("deleted too\n"),
    "data/opaque/lower-a.txt": _file("hidden by the opaque dir\n"),
    "data/opaque/lower-sub/x.txt": _file("hidden too\n"),
    "data/recreated-dir/old.txt": _file("deleted by layer 2\n"),
    "data/file-then-dir": _file("a file, a dir in layer 4\n"),
    "data/dir-then-link": _dir(),
    "data/dir-then-link/a.txt": _file("a dir, a symlink in layer 4\n"),
}

_L2_PRESENT = {
    "data": _dir(),
    "data/deleted-file": WHITEOUT,
    "data/deleted-dir": WHITEOUT,
    "data/recreated-dir": WHITEOUT,
    "data/opaque": _dir(xattrs=OPAQUE),
    "data/opaque/upper-b.txt": _file("from layer 2\n"),
    "data/fifo": {"type": "fifo", "mode": 0o644},
    "data/null": {"type": "char", "mode": 0o666, "rdev": [1, 3]},
    "data/hardlink-a": _file("one inode, two names\n", inode="ab", nlink=2),
    "data/hardlink-b": _file("one inode, two names\n", inode="ab", nlink=2),
}

_L3_PRESENT = {
    "data": _dir(),
    "home": _dir(),
    "home/app": _dir(0o755, 1000, 1000),
    "data/replaced.txt": _file("layer 3 wrote this\n"),
    "data/recreated-dir": _dir(),
    "data/recreated-dir/new.txt": _file("recreated in layer 3\n"),
    "data/setuid": _file("#!/bin/sh\necho setuid\n", 0o4755),
    "data/script.sh": _file("#!/bin/sh\necho deleted by layer 5\n", 0o755),
    "data/sticky": _dir(0o1777),
    "data/xattr-file": _file("has user.test=hello\n", xattrs={"user.test": "hello"}),
    "data/mtime-file": _file("mtime 2001-09-09T01:46:40Z\n", mtime=MTIME),
    "data/to-delete-later": _file("deleted by layer 4\n"),
    "data/link-rel": _link("kept.txt"),
    "data/link-abs": _link("/data/kept.txt"),
    "data/link-dir": _link("../bin"),
    "home/app/link-to-notes": _link("notes.txt", 1000, 1000),
}

_L4_PRESENT = {
    "data": _dir(),
    "home": _dir(),
    "home/app": _dir(0o755, 1000, 1000),
    "data/to-delete-later": WHITEOUT,
    "data/file-then-dir": _dir(),
    "data/file-then-dir/child.txt": _file("was a file\n"),
    "data/dir-then-link": _link("kept.txt"),
    "data/shared-file": _file("shared across directories\n", 0o640, 1000, 1000, inode="shared", nlink=2),
    "home/app/shared-link": _file("shared across directories\n", 0o640, 1000, 1000, inode="shared", nlink=2),
}

_L5_PRESENT = {
    "data": _dir(),
    "etc": _dir(),
    "data/script.sh": WHITEOUT,
    "etc/layers-release": _file("5\n"),
}

LAYERS_EXPECTED = {
    "merged": {"present": _MERGED_PRESENT, "absent": _MERGED_ABSENT, "exact": False, "no_whiteout_names": True},
    "layers": [
        {
            "index": 0,
            "media_type": LAYER_MEDIA_TYPES[0],
            "present": _L1_PRESENT,
            "absent": [],
            "exact": False,
            "no_whiteout_names": True,
        },
        {
            "index": 1,
            "media_type": LAYER_MEDIA_TYPES[1],
            "present": _L2_PRESENT,
            "absent": ["data/.wh.deleted-file", "data/.wh.deleted-dir", "data/opaque/.wh..wh..opq"],
            "exact": True,
            "no_whiteout_names": True,
        },
        {
            "index": 2,
            "media_type": LAYER_MEDIA_TYPES[2],
            "present": _L3_PRESENT,
            "absent": [],
            "exact": True,
            "no_whiteout_names": True,
        },
        {
            "index": 3,
            "media_type": LAYER_MEDIA_TYPES[3],
            "present": _L4_PRESENT,
            "absent": ["data/.wh.to-delete-later"],
            "exact": True,
            "no_whiteout_names": True,
        },
        {
            "index": 4,
            "media_type": LAYER_MEDIA_TYPES[4],
            "present": _L5_PRESENT,
            "absent": ["data/.wh.script.sh"],
            "exact": True,
            "no_whiteout_names": True,
        },
    ],
}

_TYPES = {
    "file": stat.S_ISREG,
    "dir": stat.S_ISDIR,
    "symlink": stat.S_ISLNK,
    "fifo": stat.S_ISFIFO,
    "char": stat.S_ISCHR,
    "block": stat.S_ISBLK,
}


def verify_tree(root: str | os.PathLike, spec: dict) -> list[str]:
    """Compare the tree under ``root`` with a SPEC (see the module docstring); returns one
    message per mismatch, so ``assert verify_tree(d, spec) == []`` shows them all."""
    root = Path(root)
    problems: list[str] = []
    inodes: dict[str, tuple[int, int]] = {}
    for path, want in spec.get("present", {}).items():
        p = root / path
        try:
            st = p.lstat()
        except OSError as e:
            problems.append(f"{path}: missing ({e.strerror})")
            continue
        kind = want["type"]
        if not _TYPES[kind](st.st_mode):
            problems.append(f"{path}: not a {kind} (mode {stat.filemode(st.st_mode)})")
            continue
        if "mode" in want and stat.S_IMODE(st.st_mode) != want["mode"]:
            problems.append(f"{path}: mode {stat.S_IMODE(st.st_mode):04o}, want {want['mode']:04o}")
        for key, got in (("uid", st.st_uid), ("gid", st.st_gid), ("nlink", st.st_nlink)):
            if key in want and got != want[key]:
                problems.append(f"{path}: {key} {got}, want {want[key]}")
        if "mtime" in want and int(st.st_mtime) != want["mtime"]:
            problems.append(f"{path}: mtime {int(st.st_mtime)}, want {want['mtime']}")
        if "content" in want:
            got = p.read_bytes()
            if got != want["content"].encode():
                problems.append(f"{path}: content {got[:60]!r}, want {want['content']!r}")
        if "target" in want and os.readlink(p) != want["target"]:
            problems.append(f"{path}: target {os.readlink(p)!r}, want {want['target']!r}")
        if "rdev" in want and [os.major(st.st_rdev), os.minor(st.st_rdev)] != want["rdev"]:
            problems.append(
                f"{path}: rdev {os.major(st.st_rdev)},{os.minor(st.st_rdev)}, want {want['rdev'][0]},{want['rdev'][1]}"
            )
        for name, value in want.get("xattrs", {}).items():
            try:
                got = os.getxattr(p, name, follow_symlinks=False)
            except OSError as e:
                problems.append(f"{path}: xattr {name} missing ({e.strerror})")
                continue
            if got != value.encode():
                problems.append(f"{path}: xattr {name}={got!r}, want {value!r}")
        if "inode" in want:
            key = (st.st_dev, st.st_ino)
            if want["inode"] in inodes and inodes[want["inode"]] != key:
                problems.append(f"{path}: not the same inode as the other {want['inode']!r} names")
            for group, other in inodes.items():
                if group != want["inode"] and other == key:
                    problems.append(f"{path}: shares an inode with group {group!r}")
            inodes.setdefault(want["inode"], key)
    for path in spec.get("absent", []):
        if os.path.lexists(root / path):
            problems.append(f"{path}: exists, should not")
    if spec.get("exact") or spec.get("no_whiteout_names"):
        listed = set(spec.get("present", {}))
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                if spec.get("no_whiteout_names") and name.startswith(".wh."):
                    problems.append(f"{rel}: a whiteout name left in the tree")
                elif spec.get("exact") and rel not in listed:
                    problems.append(f"{rel}: exists, not expected")
    return problems


if __name__ == "__main__":
    print(json.dumps(LAYERS_EXPECTED, indent=2))
