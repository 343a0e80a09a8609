"""Prefetch: the files a container will open first, fetched before it asks, in few requests.

A lazy layer fetches a chunk when it is first read: each a round trip to the registry, one
after another as the program opens its libraries. When we know beforehand which files come
first, they are fetched together, as one range request (or a few) before the container
starts, checked chunk by chunk against the TOC, and put in the chunk cache, where the FUSE
server finds them. Two sources of that knowledge:

* the layer's own format: an eStargz blob puts the files of its *prefetch group* first and
  ends the group with the ``.prefetch.landmark`` entry (``convert --estargz-prefetch F``, or
  the image's recorded accesses, lazy/access.py): they lie side by side at the start of the
  blob, and one range request takes them all;
* the image's recorded accesses (``run --record-access``): a list of paths, stored with the
  image; each lazy layer prefetches those of them it holds, wherever they lie (runs of
  members closer than ``GAP`` are joined into one request).

A failed prefetch is not an error: the container starts, and reads what it needs as usual.

See it: ``minidocker run --explain --pull=lazy IMAGE`` tells ``prefetch``, with its requests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from minidocker.errors import MinidockerError
from minidocker.lazy.cache import ChunkCache, verify
from minidocker.lazy.toc import Chunk, Entry, Tree
from minidocker.linux.events import emit

log = logging.getLogger("minidocker.lazy")
GAP = 256 << 10  # blob bytes between two wanted members that one request still spans
THREADS = 4


def prefetch(tree: Tree, source, cache: ChunkCache, names: Iterable[str], layer: str) -> tuple[int, int]:
    """Fetch into ``cache`` the chunks of the files ``names`` (paths in the layer) that it
    does not hold yet; returns (files, chunks) fetched."""
    wanted: dict[str, tuple[Entry, Chunk]] = {}
    files = 0
    for name in names:
        node = tree.lookup(name.strip("/"))
        if node is None or not node.offsets:
            continue  # not in this layer, or not a regular file
        missing = [c for c in node.entry.chunks if c.digest not in wanted and not cache.has(c)]
        files += bool(missing)
        wanted.update({c.digest: (node.entry, c) for c in missing})
    if not wanted:
        return 0, 0
    pairs = list(wanted.values())
    before = source.ranges().stats.requests if hasattr(source, "ranges") else 0
    try:
        if hasattr(source, "read_many"):
            got = source.read_many(pairs, GAP)
        else:
            with ThreadPoolExecutor(THREADS, thread_name_prefix="prefetch") as pool:
                datas = pool.map(lambda p: source.read_chunk(*p), pairs)
                got = {c.digest: d for (_, c), d in zip(pairs, datas, strict=True)}
        for entry, chunk in pairs:
            data = got[chunk.digest]
            if isinstance(data, BaseException):
                raise data
            verify(chunk, data, entry.name)
            cache.put(chunk, data)
    except (MinidockerError, OSError, KeyError) as e:
        log.warning(
            "lazy layer %s: prefetch of %d chunks failed (%s); they are read when asked for", layer, len(pairs), e
        )
        return 0, 0
    requests = source.ranges().stats.requests - before if hasattr(source, "ranges") else len(pairs)
    size = sum(c.source_length for _, c in pairs)
    emit("lazy_prefetch", layer=layer, files=files, chunks=len(pairs), requests=requests, bytes=size)
    return files, len(pairs)
