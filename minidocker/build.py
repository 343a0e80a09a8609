"""build: a Dockerfile, step by step, each step one new image on top of the last.

This is docker's classic builder, the one the Docker papers describe, in a few functions::

    FROM ref [AS name]   the starting image (pulled if it is not here); "scratch": none;
                         or an earlier stage's image (multi-stage builds)
    ENV/LABEL/WORKDIR/USER/CMD/ENTRYPOINT/EXPOSE/ARG
                         a new config, no new layer: history says empty_layer
    RUN cmd              a container from the current image runs ``/bin/sh -c cmd`` (or the
                         exec form's argv), then is committed exactly like ``minidocker
                         commit`` does (image/diff.py -> image/commit.py) and removed
    COPY/ADD src... dst  files of the build context written as one layer tar directly (no
                         container needed); ADD also unpacks local tar archives and
                         fetches http(s) URLs;
                         COPY --from=stage|N|image copies out of an earlier stage's image;
                         a destination ending in / or /. (or ".", or an existing directory)
                         receives the files; two names of one inode stay one (a hard link)
    ONBUILD INSTRUCTION  stored in the image config (OnBuild); a later build FROM this image
                         runs the stored instructions right after its FROM

The command line adds: ``build -`` (the Dockerfile on stdin, no context), ``-f -`` (the
Dockerfile on stdin, a context), ``--target STAGE`` (the build ends with that stage),
``--label K=V`` (a last LABEL step), ``--ulimit NAME=SOFT[:HARD]`` (the rlimits of every RUN).
Two builds may write into one store at once: every store write takes the store's locks.

Every step is looked up in the **build cache** first: the key is the current image's ID,
the instruction's text, the build args in effect and, for COPY/ADD, a hash of the names,
modes and bytes of what is copied. A hit reuses the image that step made before (``--->
Using cache``), so an unchanged Dockerfile builds again without making a single layer. The
cache is ``build-cache.json`` in the store (key -> image ID), written atomically under the
store lock; the step images are recorded in images/index.json as *intermediate* images,
which ``images`` hides until they get a tag, and which keep their layers from ``rmi``'s
garbage collection.

The build context is the directory given on the command line, minus what ``.dockerignore``
excludes (one pattern a line, ``#`` comments, ``!`` re-includes, ``**`` any depth; the last
line that matches a path decides, and an excluded directory is still walked when a ``!``
line may bring back something in it: ``is_excluded``, ``may_reinclude``). Its paths
are looked up as if the context were ``/`` (``resolve_in_context``): a symlink in it can name
``/etc`` or ``../..``, but the lookup stays inside the context, and a symlink that COPY meets
is copied as a symlink, never followed out to the host.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import posixpath
import resource
import stat
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from minidocker.errors import BuildError, DockerfileError
from minidocker.fsutil import read_json, write_json
from minidocker.image import commit as cm
from minidocker.image import diff as d
from minidocker.image import dockerfile as df
from minidocker.image.store import ImageStore, short_id

METADATA = (
    "ENV",
    "LABEL",
    "WORKDIR",
    "USER",
    "CMD",
    "ENTRYPOINT",
    "EXPOSE",
    "STOPSIGNAL",
    "VOLUME",
    "SHELL",
    "HEALTHCHECK",
    "ONBUILD",
)
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class Builder:
    def __init__(
        self,
        root: Path,
        store: ImageStore,
        context: Path,
        say: Callable[[str], None],
        build_args: dict[str, str | None],
        no_cache: bool,
        ensure_image: Callable[[str], str],
    ):
        self.root, self.store, self.context, self.say = root, store, context, say
        self.build_args = build_args
        self.no_cache = no_cache
        self.ensure_image = ensure_image
        self.image_id: str | None = None
        self.args: dict[str, str | None] = {}  # ARGs declared in this stage (name -> value)
        self.meta_args: dict[str, str | None] = {}  # ARGs before FROM
        self.ignore = read_dockerignore(context)
        self.cache_path = store.layout.build_cache
        self.used_args: set[str] = set()
        self.stages: list[tuple[str | None, str | None]] = []  # finished stages: (AS name, image ID)
        self.stage_name: str | None = None
        self.in_stage = False
        self.downloaded: dict[Path, str] = {}  # ADD URL: temp file -> URL
        self.tmpdirs: list[Path] = []
        self.clear_onbuild = False  # the FROM image's OnBuild triggers: not inherited by the next image
        self.ulimits: list[Ulimit] = []  # --ulimit: for every RUN's container

    # -- the loop --------------------------------------------------------------------------
    def build(self, instructions: list[df.Instruction]) -> str:
        import shutil

        try:
            return self._build(instructions)
        finally:
            for folder in self.tmpdirs:
                shutil.rmtree(folder, ignore_errors=True)

    def _build(self, instructions: list[df.Instruction]) -> str:
        n = len(instructions)
        started = False
        for i, ins in enumerate(instructions, 1):
            self.say(f"Step {i}/{n} : {ins.original}")
            if ins.keyword == "ARG" and not started:
                for name, value in df.key_values(ins, {}):
                    self.meta_args[name] = self.arg_value(name, value)
                    self.used_args.add(name)
                continue
            if ins.keyword == "FROM":
                self.from_(ins)
                started = True
            elif not started:
                raise BuildError(
                    f"Dockerfile line {ins.line}: the first instruction must be FROM (or ARG), not {ins.keyword}"
                )
            else:
                self.dispatch(ins)
            self.say(f" ---> {short_id(self.image_id) if self.image_id else 'scratch'}")
        if self.image_id is None:
            raise BuildError("the build made no image (FROM scratch and nothing else)")
        return self.image_id

    def dispatch(self, ins: df.Instruction) -> None:
        """One instruction after FROM: a container for RUN, a tar for COPY/ADD, else a config."""
        if ins.keyword == "RUN":
            self.run(ins)
        elif ins.keyword in ("COPY", "ADD"):
            self.copy(ins)
        else:
            self.metadata(ins)

    def run_triggers(self, line: int) -> None:
        """ONBUILD: the FROM image's triggers, run now, in order, as if written after FROM
        (on ``line``, the FROM's: the line errors name)."""
        triggers = (self.store.config(self.image_id).get("config") or {}).get("OnBuild") or [] if self.image_id else []
        if not triggers:
            return
        self.say(f" ---> {short_id(self.image_id)}")
        self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
        self.clear_onbuild = True
        for text in triggers:
            try:
                trigger = df.parse_line(text, line)
            except DockerfileError as e:
                raise BuildError(f"the base image's ONBUILD trigger {text!r}: {e.message}") from None
            self.dispatch(trigger)

    def new_image(self, produce, **kw) -> None:
        """The next image of the build (create_image's arguments): the current one becomes its
        parent. The first image after a FROM drops the OnBuild triggers it inherited."""
        changes = kw.pop("changes", None)
        if self.clear_onbuild:
            self.clear_onbuild = False

            def changes(cfg, then=changes):
                cfg.pop("OnBuild", None)
                if then:
                    then(cfg)

        self.image_id, _ = cm.create_image(self.store, self.image_id, produce, changes=changes, intermediate=True, **kw)

    # -- variables ---------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Variables for substitution: the ARGs in effect, then the image's Env (Env wins)."""
        out = {k: v for k, v in self.args.items() if v is not None}
        if self.image_id:
            for e in self.store.config(self.image_id).get("config", {}).get("Env") or []:
                k, _, v = e.partition("=")
                out[k] = v
        return out

    def arg_value(self, name: str, default: str | None) -> str | None:
        """An ARG's value: the --build-arg's, else the Dockerfile's default. ``--build-arg
        NAME`` alone takes NAME from the environment; when it is not set there, the default
        stands (docker's rule)."""
        given = self.build_args.get(name)
        return given if given is not None else default

    def args_in_effect(self) -> list[str]:
        return [f"{k}={v}" for k, v in sorted(self.args.items()) if v is not None]

    # -- instructions --------------------------------------------------------------------------
    def from_(self, ins: df.Instruction) -> None:
        """``FROM image [AS name]``: a new stage, from an image or from an earlier stage."""
        words = ins.args.split()
        name = None
        if len(words) == 3 and words[1].lower() == "as":
            name = words[2].lower()
        elif len(words) != 1:
            raise BuildError(f"Dockerfile line {ins.line}: FROM takes an image and, optionally, AS NAME")
        if self.in_stage:
            self.stages.append((self.stage_name, self.image_id))
        self.in_stage, self.stage_name = True, name
        ref = df.expand(words[0], {k: v for k, v in self.meta_args.items() if v is not None})
        self.args = {}
        stage = self.stage_image(ref)
        if stage is not None:
            self.image_id = stage or None
        else:
            self.image_id = None if ref == "scratch" else self.ensure_image(ref)
        self.clear_onbuild = False
        self.run_triggers(ins.line)

    def stage_image(self, text: str) -> str | None:
        """The image an earlier stage made, by its AS name or its number ("" for a stage that
        ended on scratch); None when ``text`` names no stage."""
        for name, image_id in self.stages:
            if name is not None and name == text.lower():
                return image_id or ""
        if text.isdigit() and int(text) < len(self.stages):
            return self.stages[int(text)][1] or ""
        return None

    def metadata(self, ins: df.Instruction) -> None:
        if ins.keyword == "ARG":
            pairs = df.key_values(ins, self.env())
            for name, value in pairs:
                if value is None and name in self.meta_args:
                    value = self.meta_args[name]
                self.args[name] = self.arg_value(name, value)
                self.used_args.add(name)
        key = self.cache_key(ins)
        if self.cached(key):
            return
        env = self.env()
        changes = (lambda cfg: df.apply_change(cfg, ins, env)) if ins.keyword in METADATA else None
        if ins.keyword == "MAINTAINER":
            changes = None
        self.new_image(
            None,
            empty=True,
            changes=changes,
            created_by=f"/bin/sh -c #(nop)  {ins.original}",
            author=ins.args if ins.keyword == "MAINTAINER" else "",
        )
        self.remember(key)

    def run(self, ins: df.Instruction) -> None:
        key = self.cache_key(ins)
        if self.cached(key):
            return
        from minidocker.errors import ChildFailed
        from minidocker.options import RunOptions
        from minidocker.runtime import lifecycle
        from minidocker.runtime.container import ContainerStore
        from minidocker.runtime.forked import run_in_child
        from minidocker.runtime.spec import build_spec

        if self.image_id is None:
            raise BuildError(f"Dockerfile line {ins.line}: RUN needs an image with a shell, not scratch")
        config = self.store.config(self.image_id)
        argv = ins.command((config.get("config") or {}).get("Shell"))
        containers = ContainerStore(self.root)
        opts = RunOptions(entrypoint="", env=self.args_in_effect(), network="none")  # the rest: run's defaults
        c = containers.create(
            lambda cid, random_name: build_spec(
                cid=cid,
                name=random_name(),
                image=short_id(self.image_id),
                image_id=self.image_id,
                image_config=config,
                args=argv,
                opts=opts,
            )
        )
        self.say(f" ---> Running in {c.id[:12]}")
        try:
            # in a child of its own: a container start changes the process that makes it (the PID
            # namespace of its next child, signal handlers while it waits), and a build makes many
            try:
                code = run_in_child(
                    lambda: with_rlimits(
                        self.ulimits, lambda: lifecycle.run_attached(containers, c, self.store.get(self.image_id))
                    )
                )
            except ChildFailed as e:
                raise BuildError(e.message) from None
            if code != 0:
                raise BuildError(f"The command '{' '.join(argv)}' returned a non-zero code: {code}")
            lower = d.LowerView(self.store.get(self.image_id))
            entries = list(d.walk_upper(c.layout.upper, lower))
            args = self.args_in_effect()
            created_by = (f"|{len(args)} {' '.join(args)} " if args else "") + " ".join(argv)
            self.new_image(lambda write: d.write_layer_tar(entries, write), empty=not entries, created_by=created_by)
        finally:
            lifecycle.cleanup(containers, c, remove_volumes=True)
            self.say(f"Removing intermediate container {c.id[:12]}")
        self.remember(key)

    def copy(self, ins: df.Instruction) -> None:
        env = self.env()
        parts = ins.json_args() or df.words(ins.args, env)
        if ins.json_args() is not None:
            parts = [df.expand(p, env) for p in parts]
        if len(parts) < 2:
            raise BuildError(
                f"Dockerfile line {ins.line}: {ins.keyword} requires at least two arguments: source(s) and destination"
            )
        owner = parse_chown(ins.flags.get("chown"), ins.line, self.image_file)
        sources, dest = parts[:-1], self.destination(parts[-1])
        content = hashlib.sha256()
        if "from" in ins.flags:  # a multi-stage build: files of an earlier stage (or any image)
            if ins.keyword != "COPY":
                raise BuildError(f"Dockerfile line {ins.line}: --from goes with COPY, not {ins.keyword}")
            source_image = self.copy_source_image(ins)
            plan = plan_copy_from_image(ins, self.store.get(source_image), sources, dest)
            content.update(f"{source_image}\0{json.dumps(sources)}\0{dest}".encode())  # images never change
            if "chown" not in ins.flags:
                owner = None  # files from an image keep their owners
        else:
            plan = self.plan_copy(ins, sources, dest)
        if "from" not in ins.flags:
            self.hash_plan(plan, content)
        key = self.cache_key(ins, content.hexdigest() + str(owner))
        if self.cached(key):
            return
        lower = d.LowerView(self.store.get(self.image_id) if self.image_id else [])

        def produce(write):
            tw = d.TarWriter(write)
            for ti, source in copy_members(plan, lower, owner):
                tw.add(ti, source)
            tw.close()

        created_by = f"/bin/sh -c #(nop) {ins.keyword} {content.hexdigest()[:12]} in {dest} "
        self.new_image(produce, created_by=created_by)
        self.remember(key)

    def hash_plan(self, plan: list[tuple[Path, str, str]], content) -> None:
        """COPY's cache key part from the context: each file's place, mode, size and bytes (a
        link's target), and which files are one inode (hard links stay links)."""
        inodes: dict[tuple[int, int], str] = {}
        for src, target, _ in plan:
            where = (
                "."
                if src == self.context
                else src.relative_to(self.context)
                if src.is_relative_to(self.context)
                else f"url:{self.downloaded.get(src, src.name)}"
            )
            content.update(f"{target}\0{where}\0".encode())
            st = os.lstat(src)
            content.update(f"{st.st_mode}\0{st.st_size}\0".encode())
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                first = inodes.setdefault((st.st_dev, st.st_ino), target)
                if first != target:
                    content.update(f"link:{first}\0".encode())
                    continue
            if stat.S_ISREG(st.st_mode):
                with open(src, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        content.update(chunk)
            elif stat.S_ISLNK(st.st_mode):
                content.update(os.readlink(src).encode())

    def destination(self, dest: str) -> str:
        """COPY/ADD's destination as an absolute path, ending in ``/`` when it names a
        directory: a relative one is taken from the WORKDIR; ``.``, ``..``, ``dir/`` and
        ``dir/.`` name directories (so ``WORKDIR /app`` + ``COPY a.txt .`` writes /app/a.txt,
        not a file called /app); so does a path that already is a directory in the image,
        or a symlink to one (``COPY a.txt /tmp`` writes /tmp/a.txt), as docker does."""
        config = self.store.config(self.image_id).get("config", {}) if self.image_id else {}
        is_dir = dest.endswith("/") or posixpath.basename(dest) in (".", "..")
        dest = d_norm(posixpath.join(config.get("WorkingDir") or "/", dest))
        if not is_dir and self.image_id and dest != "/":
            lower = d.LowerView(self.store.get(self.image_id))
            where = posixpath.dirname(resolve_in_image(lower, dest + "/x"))  # a symlink to a directory: followed
            st = lower.lookup(where.strip("/"))
            is_dir = st is not None and stat.S_ISDIR(st.st_mode)
        return dest.rstrip("/") + "/" if is_dir or dest == "/" else dest

    def image_file(self, path: str) -> str:
        """A text file of the current image ("" if it has none), read through its layers."""
        if self.image_id is None:
            return ""
        view = d.LowerView(self.store.get(self.image_id))
        rel = path.strip("/")
        st = view.lookup(rel)
        if st is None or not stat.S_ISREG(st.st_mode):
            return ""
        with open(_layer_path(view, rel), encoding="utf-8", errors="replace") as f:
            return f.read()

    def download(self, ins: df.Instruction, url: str) -> Path:
        """``ADD URL``: the file, fetched into a temp dir of the build, named after the URL's
        last path segment, mode 0600 and the server's Last-Modified time, as docker does."""
        import email.utils
        import tempfile
        import urllib.parse

        import httpx

        if not url.startswith(("http://", "https://")):
            raise BuildError(f"Dockerfile line {ins.line}: ADD fetches http:// and https:// URLs only: {url}")
        name = posixpath.basename(urllib.parse.urlparse(url).path) or "index.html"
        folder = Path(tempfile.mkdtemp(prefix="minidocker-add-"))
        self.tmpdirs.append(folder)
        path = folder / name
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=60) as resp:
                if resp.status_code != 200:
                    raise BuildError(f"Dockerfile line {ins.line}: ADD {url}: the server answered {resp.status_code}")
                with open(path, "wb") as f:
                    for chunk in resp.iter_bytes(1 << 20):
                        f.write(chunk)
                modified = resp.headers.get("Last-Modified")
        except httpx.HTTPError as e:
            raise BuildError(f"Dockerfile line {ins.line}: ADD {url}: {e}") from None
        os.chmod(path, 0o600)
        if modified:
            with contextlib.suppress(TypeError, ValueError):
                when = email.utils.parsedate_to_datetime(modified).timestamp()
                os.utime(path, (when, when))
        self.downloaded[path] = url
        return path

    def copy_source_image(self, ins: df.Instruction) -> str:
        """``--from=NAME|N|IMAGE``: an earlier stage's image, else an image (pulled if need be)."""
        text = ins.flags["from"]
        stage = self.stage_image(text)
        if stage == "":
            raise BuildError(f"Dockerfile line {ins.line}: stage {text} is empty (FROM scratch): nothing to copy")
        if stage is not None:
            return stage
        if self.stage_name is not None and text.lower() == self.stage_name:
            raise BuildError(f"Dockerfile line {ins.line}: --from={text} names the stage being built")
        return self.ensure_image(text)

    def plan_copy(self, ins: df.Instruction, sources: list[str], dest: str) -> list[tuple[Path, str, str]]:
        """[(file in the context, path in the image, "file" | "archive")], parents first.

        Each source is looked up *inside* the context (``match_in_context``), so no symlink
        leads out of it; a source that is itself a symlink, or one met while walking a
        directory, is planned as the link it is (``copy_members`` writes its target text)."""
        matched: list[Path] = []
        for s in sources:
            if "://" in s:
                if ins.keyword != "ADD":
                    raise BuildError(
                        f"Dockerfile line {ins.line}: COPY takes files of the build context; ADD fetches URLs"
                    )
                matched.append(self.download(ins, s))
                continue
            rel = os.path.normpath(s.lstrip("/"))
            if rel.startswith(".."):
                raise BuildError(f"Dockerfile line {ins.line}: {s} is outside the build context")
            follow = s.endswith(("/", "/.")) or rel == "."  # "dir/": the directory a link names
            found = sorted(
                {p for p in match_in_context(self.context, rel, follow) if not self.ignored(p) or self.reached(p)}
            )
            if not found:
                raise BuildError(
                    f"Dockerfile line {ins.line}: {ins.keyword} failed: file not found in build "
                    f"context or excluded by .dockerignore: {s}"
                )
            matched += found
        as_dir = dest.endswith("/") or len(matched) > 1 or any(p.is_dir() and not p.is_symlink() for p in matched)
        dest = d_norm(dest)
        plan: list[tuple[Path, str, str]] = []
        for src in matched:
            if src.is_dir() and not src.is_symlink():
                for dirpath, dirnames, filenames in os.walk(src):
                    dirnames.sort()
                    base = Path(dirpath)
                    rel = base.relative_to(src)
                    if base != src and not self.walk_into(base):
                        dirnames[:] = []
                        continue
                    if base != src and not self.ignored(base):
                        plan.append((base, d_norm(posixpath.join(dest, rel.as_posix())), "file"))
                    for name in sorted(filenames + [x for x in dirnames if (base / x).is_symlink()]):
                        p = base / name
                        if not self.ignored(p):
                            plan.append((p, d_norm(posixpath.join(dest, (rel / name).as_posix())), "file"))
                    dirnames[:] = [x for x in dirnames if not (base / x).is_symlink()]
            elif src in self.downloaded:  # ADD URL: the file as it came, never unpacked (docker's rule)
                plan.append((src, d_norm(posixpath.join(dest, src.name)) if as_dir else dest, "file"))
            elif ins.keyword == "ADD" and src.name.endswith(ARCHIVE_SUFFIXES) and _is_local_tar(src):
                plan.append((src, dest, "archive"))
            else:
                plan.append((src, d_norm(posixpath.join(dest, src.name)) if as_dir else dest, "file"))
        return plan

    # -- .dockerignore -------------------------------------------------------------------------
    def ignored(self, path: Path) -> bool:
        return is_excluded(self.ignore, path.relative_to(self.context).as_posix())

    def reached(self, path: Path) -> bool:
        """An excluded source that COPY still looks into: a directory a ``!`` line reaches."""
        return path.is_dir() and not path.is_symlink() and self.walk_into(path)

    def walk_into(self, path: Path) -> bool:
        """Whether COPY must look inside directory ``path``: it is not excluded, or a ``!``
        line may bring back something under it (``docs`` then ``!docs/keep.md``)."""
        rel = path.relative_to(self.context).as_posix()
        return not is_excluded(self.ignore, rel) or may_reinclude(self.ignore, rel)

    # -- the cache -------------------------------------------------------------------------------
    def cache_key(self, ins: df.Instruction, extra: str = "") -> str:
        doc = [self.image_id or "scratch", ins.keyword, ins.original, self.args_in_effect(), extra]
        return "sha256:" + hashlib.sha256(json.dumps(doc).encode()).hexdigest()

    def cached(self, key: str) -> bool:
        if self.no_cache:
            return False
        image_id = (read_json(self.cache_path, {}) or {}).get(key)
        doc = self.store.read_index()
        if not image_id or image_id not in doc["images"]:
            return False
        if not all(self.store.has_layer(c) for c in self.store.chain_ids(image_id)):
            return False
        self.image_id = image_id
        self.clear_onbuild = False  # the cached image was made with the triggers dropped
        self.say(" ---> Using cache")
        return True

    def remember(self, key: str) -> None:
        with self.store.locked():
            doc = read_json(self.cache_path, {}) or {}
            doc[key] = self.image_id
            write_json(self.cache_path, doc)


def plan_copy_from_image(
    ins: df.Instruction, lowerdirs: list[Path], sources: list[str], dest: str
) -> list[tuple[Path, str, str]]:
    """COPY --from's plan: each source path as the image shows it (the topmost layer that has
    it, whiteouts and opaque directories obeyed: image/diff.py's LowerView), directories walked
    through every layer, each entry paired with the file in the layer it comes from."""
    view = d.LowerView(lowerdirs)
    found: list[str] = []
    for s in sources:
        rel = posixpath.normpath("/" + s).strip("/")
        if rel and view.lookup(rel) is None:
            raise BuildError(
                f"Dockerfile line {ins.line}: COPY --from={ins.flags['from']} failed: {s} not found in that image"
            )
        found.append(rel)
    as_dir = dest.endswith("/") or len(found) > 1 or any(not r or stat.S_ISDIR(view.lookup(r).st_mode) for r in found)
    dest = d_norm(dest)
    plan: list[tuple[Path, str, str]] = []

    def walk(rel: str, target: str) -> None:
        for name in sorted(view.children(rel)):
            child = f"{rel}/{name}" if rel else name
            st = view.lookup(child)
            if st is None:
                continue
            plan.append((Path(_layer_path(view, child)), d_norm(posixpath.join(target, name)), "file"))
            if stat.S_ISDIR(st.st_mode):
                walk(child, posixpath.join(target, name))

    for rel in found:
        st = view.lookup(rel) if rel else None
        if st is None or stat.S_ISDIR(st.st_mode):  # a directory: its contents go into dest
            walk(rel, dest)
        else:
            target = d_norm(posixpath.join(dest, posixpath.basename(rel))) if as_dir else dest
            plan.append((Path(_layer_path(view, rel)), target, "file"))
    return plan


def _layer_path(view: d.LowerView, rel: str) -> str:
    """The file that ``rel`` is in the image: the path in the topmost layer that has it."""
    parent = rel.rpartition("/")[0]
    for layer in view._layers_of_dir(parent):
        if os.path.lexists(f"{layer}/{rel}"):
            return f"{layer}/{rel}"
    raise BuildError(f"{rel}: not in the image")


def d_norm(path: str) -> str:
    return "/" + posixpath.normpath("/" + path).lstrip("/") if path else "/"


def parse_chown(text: str | None, line: int, image_file: Callable[[str], str] = lambda path: "") -> tuple[int, int]:
    """``--chown=USER[:GROUP]``: numbers, or names looked up in the image's own /etc/passwd
    and /etc/group (``image_file(path)`` reads a file of the image). As docker: without a
    group, the GID is the UID's number."""
    if not text:
        return 0, 0
    user, _, group = text.partition(":")

    def lookup(name: str, path: str, what: str) -> int:
        if name.isdigit():
            return int(name)
        for entry in image_file(path).splitlines():
            fields = entry.split(":")
            if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        raise BuildError(f"Dockerfile line {line}: --chown={text}: no {what} {name!r} in the image's {path}")

    uid = lookup(user, "/etc/passwd", "user")
    return uid, lookup(group, "/etc/group", "group") if group else uid


def read_dockerignore(context: Path) -> list[tuple[bool, str]]:
    path = context / resolve_in_context(context, ".dockerignore", follow_last=True)
    if not path.is_file():
        return []
    out = []
    for line in path.read_bytes().decode("utf-8", "surrogateescape").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
        out.append((negate, pattern))
    return out


def is_excluded(patterns: list[tuple[bool, str]], rel: str) -> bool:
    """Whether ``.dockerignore``'s ``patterns`` (``read_dockerignore``) exclude ``rel``, a path
    relative to the context. Every line is tried in order and **the last line that matches
    wins**: ``*.md`` then ``!README.md`` keeps README.md; ``!README.md`` then ``*.md`` does not.
    The context itself is never excluded."""
    if rel in (".", ""):
        return False
    result = False
    for negate, pattern in patterns:
        if _match(pattern, rel):
            result = not negate
    return result


def may_reinclude(patterns: list[tuple[bool, str]], rel_dir: str) -> bool:
    """Whether a ``!`` line could match ``rel_dir`` or a path below it: then an excluded
    directory must still be walked, and only its re-included files copied."""
    rp = rel_dir.split("/")

    def m(pp: list[str], i: int, j: int) -> bool:
        if j == len(rp) or i == len(pp) or pp[i] == "**":
            return True  # the directory is used up, or the pattern matched a parent, or ** can reach below
        return go_match(rp[j], pp[i]) and m(pp, i + 1, j + 1)

    return any(negate and m(pattern.split("/"), 0, 0) for negate, pattern in patterns)


def go_match(name: str, pattern: str) -> bool:
    """One path component against one pattern component, as Go's ``filepath.Match`` (which
    docker uses): ``*``, ``?``, ``[a-z]``, ``[^a-z]`` (Python's fnmatch says ``[!a-z]``) and
    ``\\x`` for a literal x (fnmatch has no escapes: ``*``, ``?`` and ``[`` go in a class)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            out.append(f"[{escaped}]" if escaped in "*?[" else escaped)
            i += 2
            continue
        if c == "[" and pattern.startswith("[^", i):
            out.append("[!")
            i += 2
            continue
        out.append(c)
        i += 1
    return fnmatch.fnmatchcase(name, "".join(out))


def _match(pattern: str, rel: str) -> bool:
    """A .dockerignore pattern: Go's filepath.Match per component, ``**`` any number of them;
    a pattern naming a directory excludes everything under it too."""
    pp, rp = pattern.split("/"), rel.split("/")

    def m(i: int, j: int) -> bool:
        if i == len(pp):
            return True  # the pattern matched a parent directory: everything below goes too
        if pp[i] == "**":
            return any(m(i + 1, k) for k in range(j, len(rp) + 1))
        return j < len(rp) and go_match(rp[j], pp[i]) and m(i + 1, j + 1)

    return m(0, 0)


# -- the build context, looked up as if it were / ----------------------------------------------
MAX_SYMLINKS = 40  # as the kernel: a lookup that meets more symlinks than this fails with ELOOP
GLOB_CHARS = ("*", "?", "[")


def resolve_in_context(context: Path, rel: str, follow_last: bool = False) -> str:
    """``rel`` looked up inside ``context`` the way the kernel looks a path up in a chroot
    whose root is the context: a symlink met on the way is followed, but an absolute target
    starts again at the *context's* root and ``..`` stops there, as ``..`` of ``/`` is ``/``.
    So no answer leaves the context, whatever the links say (``e -> /etc`` means
    CONTEXT/etc; ``up -> ../..`` means CONTEXT). The last component is not followed unless
    ``follow_last``: COPY copies a link as a link. Returns the path relative to the context
    ("" for the context itself); it need not exist."""
    todo = [p for p in rel.split("/") if p and p != "."]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()  # every component in ``done`` is a real directory: its parent is the one before
            continue
        path = context.joinpath(*done, part)
        if (todo or follow_last) and path.is_symlink():
            hops += 1
            if hops > MAX_SYMLINKS:
                raise BuildError(f"{rel}: too many levels of symbolic links in the build context")
            target = os.readlink(path)
            if target.startswith("/"):
                done = []  # an absolute link: from the context's root, not the host's
            todo = [p for p in target.split("/") if p and p != "."] + todo
            continue
        done.append(part)
    return "/".join(done)


def match_in_context(context: Path, pattern: str, follow_last: bool = False) -> list[Path]:
    """The paths of the context that a COPY source names: ``pattern``'s components matched one
    directory at a time (``*``, ``?`` and ``[...]`` as Go's filepath.Match, which docker uses),
    every directory reached through ``resolve_in_context``, so a glob never matches through a
    symlinked directory to outside the context. Only paths that exist are returned."""
    parts = [p for p in pattern.split("/") if p and p != "."]
    candidates = [""]
    for part in parts:
        reached: list[str] = []
        for base in candidates:
            try:
                base = resolve_in_context(context, base, follow_last=True)  # a directory part: followed
            except BuildError:
                continue  # a loop of links: nothing is under it
            if not any(c in part for c in GLOB_CHARS):
                reached.append(posixpath.join(base, part))
                continue
            try:
                names = os.listdir(context / base)
            except OSError:
                continue  # not a directory: nothing under it matches
            reached += [posixpath.join(base, n) for n in names if go_match(n, part)]
        candidates = reached
    found = (context / resolve_in_context(context, c, follow_last) for c in candidates)
    return [p for p in found if os.path.lexists(p)]


def _is_local_tar(path: Path) -> bool:
    """ADD unpacks a regular file that is a tar archive; a symlink is copied as a link (as
    docker does) and a FIFO is never opened (reading it would wait for a writer)."""
    return stat.S_ISREG(os.lstat(path).st_mode) and tarfile.is_tarfile(path)


@dataclass
class BuildRequest:
    """What ``build`` was asked for, as the command line said it."""

    context: str | None  # the context directory; None: none (``build -``)
    dockerfile: str | None = None  # -f PATH; "-": the Dockerfile is ``stdin``
    stdin: bytes | None = None  # what stdin held, for ``build -`` or ``-f -``
    tags: list[str] = field(default_factory=list)
    build_args: list[str] = field(default_factory=list)  # KEY=VALUE, or KEY: from the environment
    no_cache: bool = False
    target: str | None = None  # --target STAGE: the build ends with that stage
    labels: list[str] = field(default_factory=list)  # --label KEY=VALUE: on the final image
    ulimits: list[str] = field(default_factory=list)  # --ulimit NAME=SOFT[:HARD]: for RUN


def build_image(
    root: Path, store: ImageStore, req: BuildRequest, say: Callable[[str], None], ensure_image: Callable[[str], str]
) -> str:
    """``docker build``: the Dockerfile read (from the context, ``-f``, or stdin), cut at
    ``--target``'s stage, ``--label``s added as a last LABEL step, built, tagged.
    Everything the command line got wrong is refused before the first step."""
    from minidocker.image.reference import parse as parse_ref

    with contextlib.ExitStack() as stack:
        ctx, text, inside = prepare_context(req, stack)
        refs = [str(parse_ref(t)) for t in req.tags]  # a bad -t fails before any step
        args = {k: v if eq else os.environ.get(k) for k, eq, v in (a.partition("=") for a in req.build_args)}
        instructions = df.parse(text, show_lines=inside)  # a file outside the context: no line of it in errors
        instructions = cut_at_target(instructions, req.target) + label_instructions(req.labels)
        ulimits = [parse_ulimit(u) for u in req.ulimits]
        store.ensure()
        b = Builder(root, store, ctx, say, args, req.no_cache, ensure_image)
        b.ulimits = ulimits
        image_id = b.build(instructions)
    unused = sorted(set(args) - b.used_args)
    if unused:
        say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")  # docker's words
    say(f"Successfully built {short_id(image_id)}")
    for ref in refs:
        store.tag(image_id, ref)
        say(f"Successfully tagged {parse_ref(ref).familiar()}")
    return image_id


# -- --ulimit: resource limits for RUN -------------------------------------------------------------
RLIMITS = {  # docker's names (setrlimit(2)'s RLIMIT_* without the prefix)
    "as": resource.RLIMIT_AS,
    "core": resource.RLIMIT_CORE,
    "cpu": resource.RLIMIT_CPU,
    "data": resource.RLIMIT_DATA,
    "fsize": resource.RLIMIT_FSIZE,
    "locks": 10,  # RLIMIT_LOCKS: Linux has it, Python's resource module does not name it
    "memlock": resource.RLIMIT_MEMLOCK,
    "msgqueue": resource.RLIMIT_MSGQUEUE,
    "nice": resource.RLIMIT_NICE,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "rss": resource.RLIMIT_RSS,
    "rtprio": resource.RLIMIT_RTPRIO,
    "rttime": resource.RLIMIT_RTTIME,
    "sigpending": resource.RLIMIT_SIGPENDING,
    "stack": resource.RLIMIT_STACK,
}


@dataclass
class Ulimit:
    text: str  # as given: "nofile=1024:2048"
    resource: int  # RLIMIT_*
    soft: int  # resource.RLIM_INFINITY for -1 (unlimited)
    hard: int


def parse_ulimit(text: str) -> Ulimit:
    """``NAME=SOFT[:HARD]`` (HARD defaults to SOFT, -1 is unlimited), in docker's words when
    it is wrong."""
    name, eq, value = text.partition("=")
    if not eq or not value:
        raise BuildError(
            f"invalid ulimit argument: {text}", hint="give --ulimit NAME=SOFT[:HARD], e.g. nofile=1024:2048"
        )
    if name not in RLIMITS:
        raise BuildError(f"invalid ulimit type: {name}", hint=f"one of {', '.join(RLIMITS)}")
    numbers = value.split(":")
    if len(numbers) > 2:
        raise BuildError(f"too many limit value arguments - {value}, can only have up to two, `soft[:hard]`")
    try:
        soft, hard = (int(n) for n in (numbers[0], numbers[-1]))
    except ValueError:
        raise BuildError(f"invalid ulimit argument: {text}: the limits are numbers") from None
    if soft > hard and hard != -1 or soft == -1 and hard != -1:
        raise BuildError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
    unlimited = resource.RLIM_INFINITY
    return Ulimit(text, RLIMITS[name], unlimited if soft == -1 else soft, unlimited if hard == -1 else hard)


def with_rlimits(ulimits: list[Ulimit], start: Callable[[], int]) -> int:
    """``start()`` (a RUN's container) under ``ulimits``: set here, in the child the build
    forks for it, they pass to the container, since rlimits survive fork(2) and execve(2).
    Raising a hard limit above this process's needs CAP_SYS_RESOURCE: refused in one line."""
    for u in ulimits:
        try:
            resource.setrlimit(u.resource, (u.soft, u.hard))
        except (ValueError, OSError) as e:
            hard = resource.getrlimit(u.resource)[1]
            shown = "unlimited" if hard == resource.RLIM_INFINITY else hard
            raise BuildError(f"--ulimit {u.text}: cannot set it ({e}); the hard limit here is {shown}") from None
    return start()


def prepare_context(req: BuildRequest, stack: contextlib.ExitStack) -> tuple[Path, str, bool]:
    """The build context and the Dockerfile's text, as docker finds them: PATH and
    PATH/Dockerfile (or ``-f``); ``build -``: stdin's tar unpacked into a temp dir (removed
    when ``stack`` closes) and its Dockerfile, or, when stdin is no tar, stdin as the
    Dockerfile and an empty context; ``-f -``: stdin as the Dockerfile. Also whether the
    Dockerfile lies in the context (``read_dockerfile``)."""
    import tempfile

    if req.context is not None and not Path(req.context).is_dir():
        raise BuildError(f"unable to prepare context: path {req.context!r} not found")
    if req.context is not None:
        ctx = Path(req.context).resolve()
    else:
        ctx = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="minidocker-context-"))).resolve()
    if req.context is None and req.dockerfile == "-":
        raise BuildError("build - and -f - both read stdin: give one of them")
    if req.dockerfile != "-" and (req.context is not None or unpack_context(req.stdin or b"", ctx)):
        return (ctx, *read_dockerfile(ctx, req.dockerfile))
    try:  # the Dockerfile is what came on stdin
        return ctx, (req.stdin or b"").decode(), True
    except UnicodeDecodeError:
        raise BuildError("the Dockerfile on stdin is not UTF-8 text (nor a tar of a context)") from None


def unpack_context(data: bytes, into: Path) -> bool:
    """``build - < context.tar[.gz|.bz2|.xz]``: the tar unpacked into ``into`` with tarfile's
    ``data`` filter (no absolute names, no ``..``, no links out, no devices); False when
    ``data`` is no tar at all (then it is a Dockerfile)."""
    import io

    try:
        archive = tarfile.open(fileobj=io.BytesIO(data))
    except tarfile.TarError:
        return False
    with archive:
        try:
            archive.extractall(into, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise BuildError(f"unable to unpack the build context from stdin: {e}") from None
    return True


def cut_at_target(instructions: list[df.Instruction], target: str | None) -> list[df.Instruction]:
    """``--target NAME``: the instructions up to the end of stage NAME (the stages after it
    are not built, as docker's)."""
    if target is None:
        return instructions
    in_target = False
    for i, ins in enumerate(instructions):
        if ins.keyword != "FROM":
            continue
        if in_target:
            return instructions[:i]
        words = ins.args.split()
        in_target = len(words) == 3 and words[1].lower() == "as" and words[2].lower() == target.lower()
    if in_target:
        return instructions
    raise BuildError(f"failed to reach build target {target} in Dockerfile")


def label_instructions(labels: list[str]) -> list[df.Instruction]:
    """``--label K=V`` (``--label K``: an empty value): one LABEL step at the end of the
    build, its words quoted so that nothing in them is a variable or a separator."""
    if not labels:
        return []

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'

    bad = [label for label in labels if not label.partition("=")[0].strip()]
    if bad:
        raise BuildError(f"invalid label {bad[0]!r}: the key is empty", hint="give --label KEY=VALUE")
    pairs = [label.partition("=") for label in labels]
    args = " ".join(f"{quoted(k)}={quoted(v)}" for k, _, v in pairs)
    return [df.Instruction("LABEL", args, 0, f"LABEL {args}")]


def read_dockerfile(context: Path, given: str | None) -> tuple[str, bool]:
    """The Dockerfile's text, and whether the file lies inside the build context (when it
    does not, its lines must not be quoted in errors: ``dockerfile.parse(show_lines=)``).

    Without ``-f``: CONTEXT/Dockerfile. A relative ``-f`` is relative to the current
    directory (docker's rule), else to the context. Refused with one line: a Dockerfile
    that a symlink leads to outside the context (a host file chosen by whoever made the
    context), anything but a regular file (a FIFO would block the read, a device would never
    end), and text that is not UTF-8."""
    context = context.resolve()
    if not given:
        lexical = context / "Dockerfile"
    else:
        lexical = Path(os.path.abspath(given))
        if not Path(given).is_absolute() and not os.path.lexists(lexical):
            lexical = Path(os.path.abspath(context / given))
    real = Path(os.path.realpath(lexical))  # (a loop of links stays unresolved: stat says ELOOP)
    inside = real.is_relative_to(context)
    shown = given or "Dockerfile"
    if not inside and (lexical.is_symlink() or lexical.is_relative_to(context)):
        raise BuildError(
            f"the Dockerfile {shown} is a symbolic link that leads outside the build context",
            hint="give -f the file itself, or a file inside the context",
        )
    try:
        if not stat.S_ISREG(os.stat(real).st_mode):
            raise BuildError(f"the Dockerfile {shown} is not a regular file")
        return real.read_bytes().decode(), inside
    except OSError as e:
        raise BuildError(f"cannot read the Dockerfile {shown}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise BuildError(f"the Dockerfile {shown} is not UTF-8 text") from None


# -- COPY's tar -----------------------------------------------------------------------------------
def resolve_in_image(lower: d.LowerView, path: str, hops: int = 40) -> str:
    """``path`` with the image's symlinks in its directories resolved *inside the image*
    (/bin -> usr/bin on merged-/usr systems), so COPY never replaces a symlink by a directory."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    i = 0
    while i < len(parts):
        rel = "/".join(done + [parts[i]])
        st = lower.lookup(rel)
        if st is not None and stat.S_ISLNK(st.st_mode) and i < len(parts) - 1 and hops > 0:
            target = _readlink_in(lower, rel)
            hops -= 1
            base = [] if target.startswith("/") else done
            parts = [p for p in posixpath.normpath("/" + "/".join(base + [target])).split("/") if p] + parts[i + 1 :]
            done, i = [], 0
            continue
        done.append(parts[i])
        i += 1
    return "/" + "/".join(done)


def _readlink_in(lower: d.LowerView, rel: str) -> str:
    parent = rel.rpartition("/")[0]
    for layer in lower._layers_of_dir(parent):
        try:
            return os.readlink(f"{layer}/{rel}")
        except FileNotFoundError:
            continue
    return rel


def copy_members(plan: list[tuple[Path, str, str]], lower: d.LowerView, owner: tuple[int, int] | None):
    """Tar members for COPY/ADD: each destination's parent directories first (with the
    image's own owner, mode and mtime when it has them, else root 0755), then the files,
    owned by ``owner`` (root unless --chown), with their mode and mtime. Two names of one
    inode among the sources stay one inode: the second is a hard link member to the first."""
    emitted: set[str] = set()
    inodes: dict[tuple[int, int], str] = {}  # a file of several names: its first name in the layer
    keep_owners = owner is None  # COPY --from: files keep the owners they have in their image
    uid, gid = owner or (0, 0)

    def parents(path: str):
        rel = path.strip("/")
        prefix = []
        for part in rel.split("/")[:-1]:
            prefix.append(part)
            p = "/".join(prefix)
            if p in emitted:
                continue
            emitted.add(p)
            ti = tarfile.TarInfo(p + "/")
            ti.type = tarfile.DIRTYPE
            st = lower.lookup(p)
            if st is not None and stat.S_ISDIR(st.st_mode):
                ti.mode, ti.uid, ti.gid, ti.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
            else:
                ti.mode, ti.uid, ti.gid, ti.mtime = 0o755, 0, 0, int(time.time())
            yield ti, None

    for src, target, kind in plan:
        target = resolve_in_image(lower, target)
        if kind == "archive":
            yield from parents(target + "/x")
            yield from archive_members(src, target.strip("/"), emitted)
            continue
        yield from parents(target)
        st = os.lstat(src)
        rel = target.strip("/")
        if not rel:
            continue  # the root itself: only its contents are copied
        ti = tarfile.TarInfo(rel)
        ti.mode, ti.uid, ti.gid, ti.mtime = stat.S_IMODE(st.st_mode), uid, gid, int(st.st_mtime)
        if keep_owners:
            ti.uid, ti.gid = st.st_uid, st.st_gid
        if stat.S_ISDIR(st.st_mode):
            ti.type, ti.name = tarfile.DIRTYPE, rel + "/"
            emitted.add(rel)
            yield ti, None
        elif stat.S_ISLNK(st.st_mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(src)
            yield ti, None
        elif stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) in inodes:
            ti.type, ti.linkname = tarfile.LNKTYPE, inodes[(st.st_dev, st.st_ino)]  # a second name of one file
            yield ti, None
        elif stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                inodes[(st.st_dev, st.st_ino)] = rel
            ti.size = st.st_size
            yield ti, str(src)


def archive_members(src: Path, dest: str, emitted: set[str]):
    """ADD of a local tar: its members under ``dest``; names that would climb out are refused."""
    import shutil
    import tempfile

    with tarfile.open(src) as t:
        for m in t:
            parts = [p for p in m.name.split("/") if p and p != "."]
            if m.name.startswith("/") or ".." in parts:
                raise BuildError(f"ADD {src.name}: member {m.name!r} would be written outside {dest or '/'}")
            if not parts:
                continue
            m.name = "/".join(([dest] if dest else []) + parts)
            if m.islnk():
                lparts = [p for p in m.linkname.split("/") if p and p != "."]
                if ".." in lparts:
                    raise BuildError(f"ADD {src.name}: hard link {m.linkname!r} climbs out")
                m.linkname = "/".join(([dest] if dest else []) + lparts)
            if m.isdir():
                m.name += "/"
                emitted.add(m.name.rstrip("/"))
            if m.isreg():
                # the member's bytes, through a temp file (TarWriter copies from a path)
                with tempfile.NamedTemporaryFile(delete=False) as tmp, t.extractfile(m) as f:
                    shutil.copyfileobj(f, tmp, 1 << 20)
                try:
                    yield m, tmp.name
                finally:
                    os.unlink(tmp.name)
            else:
                yield m, None
