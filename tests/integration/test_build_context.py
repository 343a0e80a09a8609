"""``build`` reads only the build context, whatever its symlinks say (issue #9, item 2).

A context is often someone else's (a cloned repository), and its symlinks may point at the
host: ``e -> /host/dir``, ``f -> /host/secret``, ``up -> ../../..``. Docker looks every
COPY/ADD source up *inside* the context, as if the context were ``/``, and copies a link
as a link; so does minidocker. Each test here builds such a context next to a host
"secret" file and checks that the image holds the links (seen by running the image) and
that the secret's bytes are nowhere in the store, compressed blobs included. ``-f`` naming
a symlink out of the context, or a host file, must not echo the file's text either.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import busybox_store, one_error


@pytest.fixture
def scene(tmp_path):
    """tmp/host/secret (the host's file) and tmp/a/b/ctx, a context with hostile links."""
    host = tmp_path / "host"
    host.mkdir()
    secret = f"host-secret-{uuid.uuid4().hex}\n".encode()
    (host / "secret").write_bytes(secret)
    with tarfile.open(host / "host.tar", "w") as t:
        t.add(host / "secret", "unpacked-secret")
    ctx = tmp_path / "a" / "b" / "ctx"
    ctx.mkdir(parents=True)
    (ctx / "e").symlink_to(host)  # an absolute link to a host directory ("e -> /etc")
    (ctx / "f").symlink_to(host / "secret")  # an absolute link to a host file
    (ctx / "up").symlink_to("../../..")  # climbs from the context to tmp_path
    (ctx / "arch.tar").symlink_to(host / "host.tar")  # ADD of a tar that is a link
    (ctx / "marker").write_text("in the context\n")
    before = sorted(p.name for p in host.iterdir())
    yield ctx, host, secret
    # nothing of the host's was lost or changed
    assert (host / "secret").read_bytes() == secret and sorted(p.name for p in host.iterdir()) == before


@pytest.fixture(scope="module")
def bmd(tmp_path_factory, registry):
    """A store of this module's own (busybox only), so every blob in it can be searched."""
    with busybox_store(tmp_path_factory, registry, "build-context") as (m, _base):
        yield m


def _write(ctx: Path, dockerfile: str) -> Path:
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def _store_holds(root: Path, secret: bytes) -> list[str]:
    """Every file of the store whose bytes (gunzipped, for compressed blobs) hold ``secret``."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            if secret.strip() in data:
                found.append(str(path))
    return found


def test_a_symlinked_directory_resolves_inside_the_context(bmd, bb, scene):
    """``COPY e/secret``: e -> /HOST is CONTEXT/HOST, so only a file there can be copied."""
    ctx, host, secret = scene
    r = bmd("build", "-t", "ctx:dir", str(_write(ctx, f"FROM {bb}\nCOPY e/secret /x\n")))
    assert r.returncode == 125 and one_error(r.stderr) and "file not found in build context" in r.stderr
    r = bmd("build", "-t", "ctx:glob", str(_write(ctx, f"FROM {bb}\nCOPY e/* /g/\n")))
    assert r.returncode == 125 and one_error(r.stderr), r.stderr  # a glob does not match through it either
    # the same absolute link, with a file where it leads *inside* the context: that one is copied
    decoy = ctx / host.relative_to("/") / "secret"
    decoy.parent.mkdir(parents=True)
    decoy.write_text("the context's own\n")
    bmd.ok("build", "-t", "ctx:decoy", str(_write(ctx, f"FROM {bb}\nCOPY e/secret /x\nCOPY e/* /g/\n")))
    r = bmd.ok("run", "--rm", "ctx:decoy", "sh", "-c", "cat /x; ls /g; cat /g/secret")
    assert r.stdout.splitlines() == ["the context's own", "secret", "the context's own"]
    assert _store_holds(bmd.root, secret) == []


def test_a_symlink_is_copied_as_a_link(bmd, bb, scene):
    """``COPY f /x`` (f -> /HOST/secret) and a directory walk: links, with their target text."""
    ctx, host, secret = scene
    (ctx / ".dockerignore").write_text("ignored*\n")
    (ctx / "ignored.txt").write_text("not sent\n")
    r = bmd("build", "-t", "ctx:links", str(_write(ctx, f"FROM {bb}\nCOPY f /x\nCOPY . /all/\n")))
    assert r.returncode == 0, r.stderr
    out = bmd.ok(
        "run",
        "--rm",
        "ctx:links",
        "sh",
        "-c",
        "for p in /x /all/f /all/up /all/e; do readlink $p; done; cat /all/marker; "
        "test -e /all/ignored.txt || echo ignored; "
        "test -L /x && echo link",
    ).stdout
    assert out.splitlines() == [
        str(host / "secret"),
        str(host / "secret"),
        "../../..",
        str(host),
        "in the context",
        "ignored",
        "link",
    ]
    assert _store_holds(bmd.root, secret) == []


def test_dotdot_stops_at_the_context_root(bmd, bb, scene):
    """``up -> ../../..``: in the context, ``..`` of the root is the root (as ``/..`` is ``/``)."""
    ctx, _host, secret = scene
    r = bmd("build", "-t", "ctx:up", str(_write(ctx, f"FROM {bb}\nCOPY up/host/secret /x\n")))
    assert r.returncode == 125 and one_error(r.stderr) and "file not found in build context" in r.stderr
    bmd.ok("build", "-t", "ctx:up", str(_write(ctx, f"FROM {bb}\nCOPY up/marker up/up/up/marker /m/\n")))
    assert bmd.ok("run", "--rm", "ctx:up", "cat", "/m/marker").stdout == "in the context\n"
    assert _store_holds(bmd.root, secret) == []


def test_add_of_a_linked_tar_copies_the_link(bmd, bb, scene):
    """``ADD arch.tar`` (a link to a host tar): docker copies the link and unpacks nothing."""
    ctx, host, secret = scene
    bmd.ok("build", "-t", "ctx:add", str(_write(ctx, f"FROM {bb}\nADD arch.tar /a/\n")))
    out = bmd.ok("run", "--rm", "ctx:add", "sh", "-c", "readlink /a/arch.tar; ls /a").stdout
    assert out.splitlines() == [str(host / "host.tar"), "arch.tar"]
    assert _store_holds(bmd.root, secret) == []


def test_dockerfile_flag_never_echoes_a_host_file(bmd, scene):
    """``-f`` a symlink to a host file, a host file itself, a FIFO, a directory: one line,
    exit 125, and not a byte of the file in the output."""
    ctx, host, secret = scene
    (ctx / "Dockerfile.link").symlink_to(host / "secret")
    fifo = ctx / "Dockerfile.fifo"
    os.mkfifo(fifo)
    cases = [
        (["-f", "Dockerfile.link"], "symbolic link that leads outside the build context"),
        (["-f", str(ctx / "Dockerfile.link")], "symbolic link that leads outside the build context"),
        (["-f", str(host / "secret")], "outside the build context: its text is not shown"),
        (["-f", str(fifo)], "not a regular file"),
        (["-f", str(host)], "not a regular file"),
    ]
    for flags, words in cases:
        r = bmd("build", "-t", "ctx:f", *flags, str(ctx), timeout=60)
        assert r.returncode == 125 and one_error(r.stderr) and words in r.stderr, (flags, r.stderr)
        assert secret.decode().strip() not in r.stdout + r.stderr
    # the default Dockerfile as such a link is refused the same way
    (ctx / "Dockerfile").unlink(missing_ok=True)
    (ctx / "Dockerfile").symlink_to(host / "secret")
    r = bmd("build", "-t", "ctx:f", str(ctx))
    assert r.returncode == 125 and one_error(r.stderr) and "leads outside" in r.stderr
    assert secret.decode().strip() not in r.stdout + r.stderr
    assert not any(line.split()[:2] == ["ctx", "f"] for line in bmd.ok("images").stdout.splitlines())
