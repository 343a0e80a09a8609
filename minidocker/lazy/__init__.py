"""Lazy layers (issue #16): a container starts before its image's layers have arrived.

An ordinary pull downloads every layer and unpacks it into a directory before the first
container can start. A lazy pull downloads only each layer's *table of contents* (TOC): the
list of its files, their metadata, and for each file where its bytes lie in the layer's
blob, cut into chunks. The layer is then *mounted*, not unpacked: a FUSE file system shows
the tree at once, and a file's bytes are fetched (and kept in a cache) only when someone
reads them. That mount is an ordinary overlayfs lowerdir, so the container's rootfs is made
as it always is.

The parts, each independent of the format the TOC came in (eStargz, or another index):

* ``toc.py``: ``Entry`` and ``Chunk``, the model of a TOC, and ``build_tree``, the tree the
  file system shows, with OCI whiteouts turned into the form overlayfs reads;
* ``cache.py``: fetched chunks on disk, one sparse file, a place per distinct chunk;
* ``fs.py``: the read-only file system over a tree and a ``ChunkSource``: lookups, stat,
  readdir, readlink, xattrs, reads, each chunk fetched once, verified, with a time limit;
  ``mount_layer`` / ``unmount_layer`` serve it at a mount point;
* ``minidocker/linux/fuse.py``: the kernel's side, the FUSE server process and its mount.

See it: ``grep fuse.minidocker-lazy /proc/self/mountinfo`` while a lazy layer is mounted.
"""


class driver:  # noqa: N801 - used as a function: driver(root)
    """The store's lazy-layer driver (lazy/mounts.py's ``LazyMounts``) for ``ImageStore``,
    imported only when a lazy layer is asked for: a ``run`` of ordinary layers never loads
    the FUSE code."""

    def __init__(self, root):
        self.root = root
        self._mounts = None

    def __getattr__(self, name: str):
        if self._mounts is None:
            from minidocker.lazy.mounts import LazyMounts
            from minidocker.paths import Layout

            self._mounts = LazyMounts(Layout(self.root))
        return getattr(self._mounts, name)
