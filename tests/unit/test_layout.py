"""The store's layout is told once, by ``paths.Layout``; README.md's "The store on disk"
and paths.py's docstring draw the same tree. These tests read both drawings and compare
their names with every path the Layout makes, so a change to one fails here until the
others follow."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from minidocker import paths
from minidocker.paths import STORE_DIRS, ContainerLayout, LayerLayout, Layout, LazyLayout, VolumeLayout

REPO = Path(__file__).resolve().parents[2]
ROOT = Path(paths.DEFAULT_ROOT)

# What the Layout's methods are given, by parameter name, and how the drawings write it.
SAMPLES = {
    "digest": ("sha256:" + "a" * 64, "a" * 64, "<hex>"),
    "chain_id": ("sha256:" + "b" * 64, "b" * 64, "<chain-id>"),
    "cid": ("c" * 64, "c" * 64, "<id>"),
    "name": ("net0", "net0", "<name>"),
    "suffix": ("s0", "s0", "*"),
    "n": (7, "7", "<n>"),
}
LAYOUTS = (Layout, LayerLayout, LazyLayout, ContainerLayout, VolumeLayout)


def drawn_tree(text: str) -> set[str]:
    """The paths of a drawing: the lines below ``/var/lib/minidocker/`` that are indented
    deeper, each ``NAME [NAME...]  description``; a deeper line is inside the last
    directory above it. The directories a path passes through are drawn with it; they
    end in ``/`` in the drawing, not in the result."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{ROOT}/")
    base = len(lines[start]) - len(lines[start].lstrip())
    found: set[str] = set()
    parents: list[tuple[int, str]] = []  # (indent, path of the directory) of the open dirs
    for line in lines[start + 1 :]:
        indent = len(line) - len(line.lstrip())
        if not line.strip() or indent <= base:
            break
        while parents and parents[-1][0] >= indent:
            parents.pop()
        prefix = parents[-1][1] if parents else ""
        names = line.strip().split("  ")[0].split()
        found |= {(prefix + name).rstrip("/") for name in names}
        if len(names) == 1 and names[0].endswith("/"):
            parents.append((indent, prefix + names[0]))
    return with_parents(found)


def with_parents(tree: set[str]) -> set[str]:
    """``tree`` and the directories its paths pass through."""
    return {"/".join(p.split("/")[:i]) for p in tree for i in range(1, p.count("/") + 2)}


def _template(path: Path) -> str:
    text = str(path.relative_to(ROOT))
    for _value, shown, drawn in SAMPLES.values():
        text = text.replace(shown, drawn)
    return text


def _made_by(obj) -> list:
    """What every public property and method of a layout gives (methods get SAMPLES)."""
    out = []
    for name, member in inspect.getmembers(type(obj)):
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            out.append(getattr(obj, name))
        elif inspect.isfunction(member):
            params = list(inspect.signature(member).parameters)[1:]
            out.append(member(obj, *(SAMPLES[p][0] for p in params)))
    return out


def layout_tree(obj=None) -> set[str]:
    """Every path the Layout names, written as the drawings write them."""
    obj = obj or Layout(ROOT)
    found: set[str] = set()
    for value in _made_by(obj):
        if isinstance(value, tuple):
            found |= {_template(p) for p in value}
        elif isinstance(value, Path):
            found.add(_template(value))
        elif isinstance(value, (LayerLayout, LazyLayout, ContainerLayout, VolumeLayout)):
            found.add(_template(value.dir))
            found |= layout_tree(value)
    return with_parents(found)


def test_the_layout_names_every_path_it_makes_under_the_root():
    tree = layout_tree()
    assert "images/index.json" in tree and "containers/<id>/upper" in tree
    assert all(not p.startswith(("/", "..")) for p in tree)


@pytest.mark.parametrize("document", ["README.md", "minidocker/paths.py"])
def test_the_drawing_and_the_layout_name_the_same_paths(document):
    drawn = drawn_tree((REPO / document).read_text())
    made = layout_tree()
    assert sorted(drawn - made) == [], f"{document} draws paths the Layout does not make"
    assert sorted(made - drawn) == [], f"the Layout makes paths {document} does not draw"


def test_the_store_dirs_are_the_drawings_top_level_directories():
    drawn = drawn_tree((REPO / "README.md").read_text())
    top = {p.split("/")[0] for p in drawn if "/" in p}
    assert set(STORE_DIRS) == top and len(STORE_DIRS) == len(top)


def test_the_index_maps_tags_to_image_ids_in_both_drawings():
    """The disagreement that started this: images/index.json holds tags -> image ID (the
    config digest) and the image records, not "names and tags -> manifest digest"."""
    for document in ("README.md", "minidocker/paths.py"):
        line = next(x for x in (REPO / document).read_text().splitlines() if "images/index.json  " in x)
        assert "tags -> image ID (the config digest), image records" in line


@pytest.mark.parametrize("bad", ["sha256:../../etc", "sha256:" + "A" * 64, "md5:" + "a" * 64, "a" * 64])
def test_a_malformed_digest_never_becomes_a_path(bad):
    from minidocker.errors import DigestMismatch

    layout = Layout(ROOT)
    for make in (layout.blob, layout.ingest_file, layout.blob_lock, layout.layer_lock, layout.layer):
        with pytest.raises(DigestMismatch):
            make(bad)


def test_a_container_knows_the_store_it_is_in():
    layout = Layout(ROOT)
    c = layout.container("c" * 64)
    assert c.store == layout and c.dir.parent == layout.containers_dir
    assert c.store.seccomp_cache == ROOT / "cache" / "seccomp"
