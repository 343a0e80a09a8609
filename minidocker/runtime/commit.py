"""``diff`` and ``commit``: what a container changed, and that change as a new image.

A container writes only to its overlay's upper dir (``containers/<id>/upper``): a file it
creates or edits is copied up there, a file it deletes leaves a whiteout there. So "what
changed" is a walk of the upper dir, each entry compared with the image's layers below
(``image/diff.py``), and ``commit`` packs those entries as one more layer on the image
(``image/commit.py``). This module is the container's side of that: which directories to
read, which empty mount points the runtime itself made (not changes), the config the
container ran with, and holding a running container still while its upper dir is read.

Holding still is the cgroup freezer: writing FROZEN to the container's cgroup stops every
task in it until THAWED is written, so no file changes halfway through the walk. The freeze
is owned by a helper process that thaws when the commit ends, however it ends
(``linux/cgroups/freezer.py``).

See it: ``minidocker run -d --name c1 busybox sh -c 'echo hi > /new; sleep 60'``, then
``ls containers/<id>/upper`` in the store, ``minidocker diff c1``, ``minidocker commit c1 img``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from minidocker.crashpoint import crashpoint
from minidocker.errors import ImageNotFound


def mountpoints(spec) -> list[str]:
    """The paths the runtime mounted over in this container (their empty mount points in the
    upper dir are not changes the container made)."""
    from minidocker.image.diff import RUNTIME_MOUNTPOINTS

    return list(RUNTIME_MOUNTPOINTS) + [v.target for v in spec.volumes] + [t.split(":", 1)[0] for t in spec.tmpfs]


def walk_changes(c, store):
    """The entries of the container's upper dir that are changes, one by one as the walk
    finds them, and the view of the image's layers they are compared with."""
    from minidocker.image import diff as d

    lower = d.LowerView(store.get(c.spec.image_id))
    return d.walk_upper(c.layout.upper, lower, mountpoints(c.spec), c.spec.idmap), lower


def changed_paths(c, store) -> list[str]:
    """``docker diff``'s ``A|C|D /path`` lines."""
    from minidocker.image import diff as d

    entries, lower = walk_changes(c, store)
    return [str(ch) for ch in d.changes(list(entries), lower)]


def config_rewriter(spec, changes: list[str]) -> Callable[[dict[str, Any]], None]:
    """What commit does to the image's config: docker commits the container's own config
    (what it was run with), then applies each ``--change`` instruction. The changes are
    parsed here, so a bad one is refused before any work."""
    from minidocker.image import dockerfile

    parsed = [dockerfile.parse_change(t) for t in changes]

    def set_config(config: dict[str, Any]) -> None:
        config["Env"] = [e for e in spec.env if not e.startswith("HOSTNAME=")]
        config["Cmd"] = list(spec.cmd) or None
        config["Entrypoint"] = list(spec.entrypoint) or None
        config["WorkingDir"] = "" if spec.cwd == "/" and not config.get("WorkingDir") else spec.cwd
        config["User"] = spec.user
        for ins in parsed:
            dockerfile.apply_change(config, ins)

    return set_config


def commit_container(
    containers,
    store,
    c,
    ref: str | None,
    *,
    message: str,
    author: str,
    changes: list[str],
    pause: bool,
    compression: str = "gzip",
) -> str:
    """The container's upper dir as one new layer on its image (compressed with
    ``compression``), its config (plus ``changes``) as the image's; tagged ``ref`` if given.
    Every input is checked before anything is written or frozen. The walk of the upper dir
    feeds the tar as it goes (``walk_changes``), so walking, reading, compressing and
    unpacking overlap (``image/commit.py``). Returns the new image ID."""
    import itertools

    from minidocker.image import commit as cm
    from minidocker.image import diff as d
    from minidocker.image.reference import parse

    cm.check_compression(compression)
    set_config = config_rewriter(c.spec, changes)
    if ref:
        parse(ref)
    if c.spec.image_id not in store.read_index()["images"]:
        raise ImageNotFound(f"the image of container {c.id[:12]} ({c.spec.image}) is no longer in the store")
    set_config(json.loads(json.dumps(store.config(c.spec.image_id).get("config") or {})))  # errors before any write
    with frozen_for_commit(containers, c, pause):
        crashpoint("commit:after-freeze")
        entries, _ = walk_changes(c, store)
        first = next(entries, None)  # no first entry: no changes, an empty layer
        image_id, _ = cm.create_image(
            store,
            c.spec.image_id,
            lambda write: d.write_layer_tar(itertools.chain([first], entries) if first else (), write),
            empty=first is None,
            compression=compression,
            changes=set_config,
            created_by=" ".join(c.spec.argv),
            author=author,
            comment=message,
            tag=str(parse(ref)) if ref else None,
        )
    from minidocker.runtime.container import container_event

    container_event(c, "commit", comment=message, imageID=image_id, imageRef=parse(ref).familiar() if ref else "")
    return image_id


def frozen_for_commit(containers, c, pause: bool):
    """The container frozen while commit reads its upper dir, if it is running and ``pause``;
    ``ps`` says "Up ... (Paused)" meanwhile. The freeze belongs to a helper process that
    thaws the container when the commit ends, even by SIGKILL (linux/cgroups/freezer.py). A
    container the user paused is left as it is: still paused afterwards, as docker leaves it."""
    if not (pause and c.state.get("Status") == "running"):
        return contextlib.nullcontext()
    from minidocker.linux import cgroups
    from minidocker.linux.cgroups.freezer import hold_frozen
    from minidocker.runtime.container import container_event

    def marked(status: str, new_status: str, action: str):
        """state.json says so, then docker's ``pause``/``unpause`` event tells of it."""

        def mark() -> None:
            if containers.update_if(c, status, Status=new_status):
                container_event(c, action)

        return mark

    return hold_frozen(
        cgroups.manager(c.id),
        on_frozen=marked("running", "paused", "pause"),
        on_thawed=marked("paused", "running", "unpause"),
    )
