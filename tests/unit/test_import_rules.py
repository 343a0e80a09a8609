"""The architecture's import rules (../shared/design.md), checked on the source.

Who may import whom: ``cli`` only ``api``, ``errors`` and ``cli.*``; ``image`` never
``runtime`` or ``linux``; ``linux`` nothing of ours but ``errors`` (and ``linux.*``); only
``cli/render.py`` imports rich. And the ``linux/`` boundary: only ``linux/`` talks to the
kernel directly (ctypes, ioctls, device nodes, credentials, chroot, the files of /proc and
/sys); everything else calls its wrappers. Every rule is an AST scan of the source.
"""

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


def rel(path: Path) -> str:
    return path.relative_to(PKG).as_posix()


@pytest.mark.parametrize("path", modules("cli"), ids=lambda p: p.name)
def test_cli_uses_only_api_errors_and_render(path):
    ours = {n for n in imports_of(path) if n.startswith("minidocker")}
    if rel(path) == "cli/main.py":  # the one exception: a `run` begins the kernel's wait before any import
        ours -= {"minidocker.linux.hasten", "minidocker.linux.hasten.hasten_moves"}
    allowed = ("minidocker.api", "minidocker.errors", "minidocker.cli", "minidocker.__version__")
    assert all(n == "minidocker" or n.startswith(allowed) for n in ours), ours


@pytest.mark.parametrize("path", modules("image"), ids=lambda p: p.name)
def test_image_never_imports_runtime_or_linux(path):
    bad = {n for n in imports_of(path) if n.startswith(("minidocker.runtime", "minidocker.linux"))}
    assert not bad


@pytest.mark.parametrize("path", modules("linux"), ids=rel)
def test_linux_imports_nothing_of_ours_but_errors(path):
    ours = {n for n in imports_of(path) if n == "minidocker" or n.startswith("minidocker.")}
    bad = {n for n in ours if not n.startswith(("minidocker.errors", "minidocker.linux"))}
    assert not bad, f"linux/ may import only minidocker.errors and minidocker.linux.*: {sorted(bad)}"


SCREEN = 50  # lines of a function that a terminal shows at once


def test_api_is_a_facade_of_short_functions():
    """api.py is what a reader starts with: one function per command, each fitting a screen."""
    tree = ast.parse((PKG / "api.py").read_text())
    long = {
        f.name: f.end_lineno - f.lineno + 1
        for f in tree.body
        if isinstance(f, ast.FunctionDef) and f.end_lineno - f.lineno + 1 > SCREEN
    }
    assert long == {}


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=rel)
def test_only_render_imports_rich(path):
    if rel(path) == "cli/render.py":
        return
    assert not {n for n in imports_of(path) if n == "rich" or n.startswith("rich.")}


def test_import_minidocker_stays_light():
    code = (
        "import sys, minidocker.api, minidocker.image.store, minidocker.image.reference;"
        "print(','.join(m for m in ('rich','httpx','pyroute2','cgroupspy','prctl','zstandard','isal')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"heavy modules imported eagerly: {out}"


def _error_classes() -> set[str]:
    """The names of the classes errors.py defines: MinidockerError and every subclass."""
    tree = ast.parse((PKG / "errors.py").read_text())
    return {n.name for n in tree.body if isinstance(n, ast.ClassDef)} - {"ExitCode"}


def _base_names(cls: ast.ClassDef) -> set[str]:
    """``MinidockerError`` for ``class X(MinidockerError)`` and for ``class X(errors.MinidockerError)``."""
    return {b.id if isinstance(b, ast.Name) else b.attr for b in cls.bases if isinstance(b, (ast.Name, ast.Attribute))}


@pytest.mark.parametrize("path", [p for p in sorted(PKG.rglob("*.py")) if rel(p) != "errors.py"], ids=rel)
def test_every_error_class_lives_in_errors(path):
    errors = _error_classes()
    assert "MinidockerError" in errors
    classes = [node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)]
    elsewhere = [cls.name for cls in classes if _base_names(cls) & errors]
    assert not elsewhere, f"{rel(path)} defines error classes; move them to errors.py: {elsewhere}"


# -- the linux/ boundary ----------------------------------------------------------------------
# Modules that are the kernel's interface, or bindings to it: only linux/ imports them.
KERNEL_MODULES = ("ctypes", "termios", "tty", "pty", "prctl", "pyroute2", "cgroupspy", "pyseccomp", "mfusepy")

# Calls that go straight to the kernel: namespaces, mounts, credentials, device nodes, ioctls.
KERNEL_CALLS = {
    "fcntl.ioctl",
    "os.mknod",
    "os.chroot",
    "os.setsid",
    "os.unshare",
    "os.setns",
    "os.setuid",
    "os.setgid",
    "os.setgroups",
    "os.setresuid",
    "os.setresgid",
    "os.setreuid",
    "os.setregid",
    "os.seteuid",
    "os.setegid",
    "os.initgroups",
}

# Files of /proc and /sys are the kernel's: their paths are named in linux/ alone.
KERNEL_FILES = ("/proc/", "/sys/")

# Where the rule does not hold yet, or cannot: (module, what) -> why.
ALLOWED = {
    # image/ is pure Python and may not import linux/: a layer's device nodes and its
    # whiteouts (0/0 character devices) are files of the layer, made as it is unpacked
    ("image/layer.py", "os.mknod"): "a layer's own files",
}


def _dotted(node: ast.AST) -> str | None:
    """``os.mknod`` for the expression ``os.mknod``; None for anything not a plain name chain."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of every docstring's node: prose may name /proc files freely."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def kernel_contacts(path: Path) -> set[tuple[str, int]]:
    """(what, line) for each direct contact with the kernel in ``path``'s source."""
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {(a.name, node.lineno) for a in node.names if a.name.split(".")[0] in KERNEL_MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in KERNEL_MODULES:
                found.add((node.module, node.lineno))
            found |= {
                (f"{node.module}.{a.name}", node.lineno)
                for a in node.names
                if f"{node.module}.{a.name}" in KERNEL_CALLS
            }
        elif isinstance(node, ast.Attribute) and _dotted(node) in KERNEL_CALLS:
            found.add((_dotted(node), node.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found |= {(prefix, node.lineno) for prefix in KERNEL_FILES if node.value.startswith(prefix)}
    return found


OUTSIDE_LINUX = [p for p in sorted(PKG.rglob("*.py")) if not rel(p).startswith("linux/")]


@pytest.mark.parametrize("path", OUTSIDE_LINUX, ids=rel)
def test_only_linux_calls_the_kernel(path):
    contacts = {(what, line) for what, line in kernel_contacts(path) if (rel(path), what) not in ALLOWED}
    assert not contacts, f"{rel(path)} talks to the kernel itself; call (or add) a wrapper in linux/: " + ", ".join(
        f"{what} (line {line})" for what, line in sorted(contacts, key=lambda c: c[1])
    )


def test_the_boundary_scan_finds_what_it_looks_for(tmp_path):
    """The scan itself: each kind of contact is seen, in every spelling, and prose is not."""
    source = tmp_path / "sample.py"
    source.write_text(
        '"""Reads /proc/self/status, in prose."""\n'
        "import ctypes\n"
        "import fcntl\n"
        "from os import setuid\n"
        "fcntl.ioctl(0, 1)\n"
        "os.mknod('x')\n"
        "open(f'/proc/{pid}/stat')\n"
        "open('/sys/fs/cgroup')\n"
        "open('/procedure')\n"
    )
    assert kernel_contacts(source) == {
        ("ctypes", 2),
        ("os.setuid", 4),
        ("fcntl.ioctl", 5),
        ("os.mknod", 6),
        ("/proc/", 7),
        ("/sys/", 8),
    }


def test_allowed_entries_are_still_needed():
    """An allow-list entry whose module no longer does the thing is stale: remove it."""
    stale = [(module, what) for module, what in ALLOWED if what not in {w for w, _ in kernel_contacts(PKG / module)}]
    assert not stale, f"remove these entries from ALLOWED: {stale}"
