"""The architecture's import rules (../shared/design.md), checked on the source."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "minidocker"


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def modules(sub: str):
    return sorted((PKG / sub).rglob("*.py"))


@pytest.mark.parametrize("path", modules("cli"), ids=lambda p: p.name)
def test_cli_uses_only_api_errors_and_render(path):
    ours = {n for n in imports_of(path) if n.startswith("minidocker")}
    allowed = ("minidocker.api", "minidocker.errors", "minidocker.cli", "minidocker.__version__")
    assert all(n == "minidocker" or n.startswith(allowed) for n in ours), ours


@pytest.mark.parametrize("path", modules("image"), ids=lambda p: p.name)
def test_image_never_imports_runtime_or_linux(path):
    bad = {n for n in imports_of(path) if n.startswith(("minidocker.runtime", "minidocker.linux"))}
    assert not bad


@pytest.mark.parametrize("path", modules("linux"), ids=lambda p: str(p.relative_to(PKG)))
def test_linux_imports_nothing_of_ours_but_errors(path):
    ours = {n for n in imports_of(path) if n.startswith("minidocker")}
    assert all(n.startswith(("minidocker.linux", "minidocker.errors")) for n in ours), ours


def test_api_is_a_facade_of_short_functions():
    """api.py is what a reader starts with: one function per command, each fitting a screen
    (run, being rewritten on its own, is measured once that work lands)."""
    tree = ast.parse((PKG / "api.py").read_text())
    long = {f.name: f.end_lineno - f.lineno + 1 for f in tree.body
            if isinstance(f, ast.FunctionDef) and f.name != "run" and f.end_lineno - f.lineno + 1 > 40}
    assert long == {}


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_only_render_imports_rich(path):
    if path.relative_to(PKG).as_posix() == "cli/render.py":
        return
    assert not {n for n in imports_of(path) if n == "rich" or n.startswith("rich.")}


def test_import_minidocker_stays_light():
    code = ("import sys, minidocker.api, minidocker.image.store, minidocker.image.reference;"
            "print(','.join(m for m in ('rich','httpx','pyroute2','cgroupspy','prctl','zstandard','isal')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"heavy modules imported eagerly: {out}"
