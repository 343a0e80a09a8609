"""``pull --lazy`` and ``run --pull=lazy`` end to end (issue #16): debian converted to eStargz
by minidocker and pushed to a docker-registry process of this module's own, whose access log
counts the bytes that went out. A lazily started container runs bash and reads the right
bytes while only a fraction of the layer is fetched; a second run fetches nothing; ``rm``
unmounts every FUSE layer and ends its server; a layer under the threshold is pulled whole;
the background fetch makes the layer an ordinary one, and the next container uses that."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.conftest import Minidocker, _remove
from tests.support.lazy import background_fetches, fuse_mounts_under, lazy_servers, wait_until

BASH = "bash -c 'echo ready; head -c 100 /usr/lib/os-release; sha256sum /usr/bin/bash'"
NO_BACKGROUND = {"MINIDOCKER_LAZY_BACKGROUND": "off"}


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, registry):
    """debian as eStargz in a registry of this module's own: (registry, reference, layer)."""
    from tests.support.registry import start_registry

    own = start_registry(tmp_path_factory.mktemp("lazy-pull-registry"))
    base = tmp_path_factory.mktemp("lazy-pull-src")
    m = Minidocker(base / "root", base / "config")
    try:
        m.ok("pull", "-q", f"{registry.host}/debian:latest")
        target = f"{own.host}/lazy/debian:latest"
        m.ok("convert", "--estargz", f"{registry.host}/debian:latest", target)
        m.ok("push", "-q", target)
        out = m.ok("run", "--rm", f"{registry.host}/debian:latest", "sha256sum", "/usr/bin/bash").stdout
        yield own, target, out.split()[0]
    finally:
        _remove(m, base)
        own.stop()


def blob_bytes(reg) -> int:
    time.sleep(0.3)  # (the registry logs a request after answering it)
    return sum(int(r["size"]) for r in reg.requests if r["method"] == "GET" and "/blobs/" in r["path"])


def layer_size(reg, target: str) -> int:
    from minidocker.image.reference import parse
    from minidocker.image.registry import RegistryClient

    with RegistryClient(reg.host) as client:
        raw, _, _ = client.get_manifest(parse(target))
    return sum(layer["size"] for layer in json.loads(raw)["layers"])


def test_a_lazy_run_reads_the_right_bytes_fetching_little_and_a_second_run_nothing(pushed, md):
    reg, target, bash_sum = pushed
    size = layer_size(reg, target)
    reg.requests.clear()
    r = md.ok("run", "--rm", "--pull=lazy", target, "sh", "-c", BASH, env=NO_BACKGROUND)
    assert r.stdout.startswith("ready\n") and 'PRETTY_NAME="Debian GNU/Linux 12' in r.stdout, r.stdout
    assert bash_sum in r.stdout, (bash_sum, r.stdout)
    first = blob_bytes(reg)
    assert 0 < first < 0.10 * size, (first, size)  # the TOC, bash, its libraries: a few MB of 56
    assert not list((md.root / "layers").glob("[0-9a-f]*")), "the big layer was not unpacked"
    assert fuse_mounts_under(md.root) == [] and lazy_servers(md.root) == [], "run --rm left a FUSE layer"
    reg.requests.clear()
    r = md.ok("run", "--rm", "--pull=lazy", target, "sh", "-c", BASH, env=NO_BACKGROUND)
    assert bash_sum in r.stdout
    assert blob_bytes(reg) == 0, reg.requests  # every chunk from the store's cache
    assert fuse_mounts_under(md.root) == []


def test_rm_and_rmi_unmount_and_end_the_servers(pushed, md):
    _, target, _ = pushed
    md.ok("pull", "--lazy", "-q", target, env=NO_BACKGROUND)
    cid = md.ok("run", "-d", target, "sleep", "60", env=NO_BACKGROUND).stdout.strip()
    mounts = fuse_mounts_under(md.root)
    servers = lazy_servers(md.root)
    assert len(mounts) == 1 and len(servers) == 1, (mounts, servers)
    assert md.ok("exec", cid, "cat", "/etc/debian_version").stdout.startswith("12")
    md.ok("rm", "-f", cid)
    assert fuse_mounts_under(md.root) == []
    wait_until(lambda: not any(s.alive() for s in servers), "the FUSE server ended")
    md.ok("run", "--rm", target, "true", env=NO_BACKGROUND)  # mounted again, on demand
    md.ok("rmi", target)
    assert not list((md.root / "lazy").glob("[0-9a-f]*")), "rmi left the lazy layer"
    assert fuse_mounts_under(md.root) == []


def test_layers_under_the_threshold_are_pulled_whole(pushed, md):
    _, target, _ = pushed
    env = {**NO_BACKGROUND, "MINIDOCKER_LAZY_THRESHOLD": str(1 << 30)}
    md.ok("pull", "--lazy", target, env=env)
    assert len(list((md.root / "layers").glob("[0-9a-f]*"))) == 1
    assert not list((md.root / "lazy").glob("[0-9a-f]*"))


def test_the_store_setting_makes_every_pull_lazy_and_no_lazy_overrides_it(pushed, md):
    _, target, _ = pushed
    md.config.mkdir(parents=True, exist_ok=True)
    (md.config / "daemon.json").write_text(json.dumps({"lazy-pull": True, "lazy-background-fetch": False}))
    md.ok("pull", "-q", target)
    assert len(list((md.root / "lazy").glob("[0-9a-f]*"))) == 1 and not list((md.root / "layers").glob("[0-9a-f]*"))
    assert background_fetches(md.root) == []  # (the setting said: no background fetch)
    md.ok("pull", "-q", "--no-lazy", target)  # a whole pull of the same image: the ordinary layer
    assert len(list((md.root / "layers").glob("[0-9a-f]*"))) == 1
    (md.config / "daemon.json").write_text(json.dumps({"lazy-pull": "maybe"}))
    r = md("pull", target)
    assert r.returncode == 125 and "lazy-pull must be true or false" in r.stderr and "Traceback" not in r.stderr


def test_the_background_fetch_makes_the_layer_ordinary(pushed, md):
    reg, target, bash_sum = pushed
    r = md.ok("pull", "--lazy", target, env={"MINIDOCKER_LAZY_BACKGROUND": "0"})
    assert "Lazy (estargz" in r.stderr + r.stdout, r.stderr
    wait_until(lambda: list((md.root / "layers").glob("[0-9a-f]*")), "the layer unpacked", timeout=120)
    wait_until(lambda: not list((md.root / "lazy").glob("[0-9a-f]*")), "the lazy layer removed", timeout=30)
    reg.requests.clear()
    out = md.ok("run", "--rm", target, "sha256sum", "/usr/bin/bash").stdout
    assert bash_sum in out
    assert fuse_mounts_under(md.root) == [] and blob_bytes(reg) == 0  # the unpacked layer, no FUSE


def test_explain_tells_the_lazy_steps(pushed, md):
    _, target, _ = pushed
    r = md.ok("run", "--rm", "--explain", "--pull=lazy", target, "cat", "/etc/debian_version", env=NO_BACKGROUND)
    assert r.stdout.startswith("12"), r.stdout
    err = r.stderr
    assert "GET 2 byte ranges of layer" in err and "estargz table of contents" in err, err  # the TOC
    assert "mount -t fuse.minidocker-lazy" in err, err  # the FUSE mount, by its server
    assert "GET Range: bytes=" in err and "etc/debian_version" in err, err  # a chunk, by range
    assert "chunks fetched by range" in err, err  # the run's total


def test_a_lazy_pull_follows_the_blob_redirect_and_without_ranges_pulls_whole(pushed, md):
    from tests.support.registry import start_redirect_front

    reg, target, bash_sum = pushed
    with start_redirect_front(reg) as front:
        via = target.replace(reg.host, front.host)
        out = md.ok("run", "--rm", "--pull=lazy", via, "sha256sum", "/usr/bin/bash", env=NO_BACKGROUND).stdout
        assert bash_sum in out
        ranged = [r for r in front.cdn_requests if "Range" in r["headers"]]
        assert ranged and all(r["status"] == 206 for r in ranged), front.cdn_requests
        assert not any("Authorization" in r["headers"] for r in front.cdn_requests)
        assert not list((md.root / "layers").glob("[0-9a-f]*"))  # lazy: nothing unpacked
    md.ok("rmi", via)
    with start_redirect_front(reg, honour_ranges=False) as front:
        via = target.replace(reg.host, front.host)
        r = md.ok("pull", "--lazy", via, env=NO_BACKGROUND)
        assert "Range requests refused: pulling whole" in r.stdout + r.stderr, r.stderr
        assert len(list((md.root / "layers").glob("[0-9a-f]*"))) == 1 and not list((md.root / "lazy").glob("[0-9a-f]*"))
        assert bash_sum in md.ok("run", "--rm", via, "sha256sum", "/usr/bin/bash").stdout


def test_a_sigkill_at_any_lazy_step_leaves_a_store_that_goes_on(pushed, md):
    _, target, bash_sum = pushed
    killed = -9
    r = md("pull", "--lazy", target, env={**NO_BACKGROUND, "MINIDOCKER_TEST_KILL_AT": "lazy:before-rename"})
    assert r.returncode == killed, r.stderr
    assert not list((md.root / "lazy").glob("[0-9a-f]*")), "a lazy layer was named before it was whole"
    r = md(
        "run", "--rm", "--pull=lazy", target, "true", env={**NO_BACKGROUND, "MINIDOCKER_TEST_KILL_AT": "lazy:mounted"}
    )
    assert r.returncode == killed, r.stderr
    assert len(fuse_mounts_under(md.root)) == 1 and lazy_servers(md.root) == []  # mounted, not recorded
    left = md.ok("ps", "-aq").stdout.split()  # the container the kill left "created"
    if left:
        md.ok("rm", "-f", *left)
    out = md.ok("run", "--rm", "--pull=lazy", target, "sha256sum", "/usr/bin/bash", env=NO_BACKGROUND).stdout
    assert bash_sum in out  # the unrecorded mount taken down, the layer mounted anew
    assert fuse_mounts_under(md.root) == [] and not list((md.root / "lazy").glob(".tmp-*"))
    r = md("rmi", target, env={"MINIDOCKER_TEST_KILL_AT": "lazy:removed-renamed"})
    assert r.returncode == killed, r.stderr
    assert not list((md.root / "lazy").glob("[0-9a-f]*")) and fuse_mounts_under(md.root) == []
    md.ok("pull", "-q", "--lazy", target, env=NO_BACKGROUND)  # the next writer reclaims the orphan
    assert not list((md.root / "lazy").glob(".tmp-*"))
    assert bash_sum in md.ok("run", "--rm", target, "sha256sum", "/usr/bin/bash", env=NO_BACKGROUND).stdout


def recorded_files(m: Minidocker, image: str) -> list[str]:
    image_id = m.ok("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    rec = json.loads((m.root / "images" / "index.json").read_text())["images"][image_id]
    return json.loads((m.root / "blobs" / "sha256" / rec["access"].removeprefix("sha256:")).read_text())["files"]


def test_record_access_puts_the_files_first_and_a_cold_lazy_run_prefetches_them(pushed, md, tmp_path):
    reg, target, _ = pushed
    r = md.ok("run", "--rm", "--record-access", "--pull=lazy", target, "bash", "-c", "echo hi", env=NO_BACKGROUND)
    assert r.stdout == "hi\n" and "Recorded the" in r.stderr, r.stderr
    files = recorded_files(md, target)
    assert files[0] == "usr/bin/bash" or "usr/bin/bash" in files[:3], files  # execve's open comes first
    assert any(f.endswith("libc.so.6") for f in files), files
    md.ok("pull", "-q", target)  # whole now (convert reads the layer's blob)
    opt = target.replace(":latest", ":prefetch")
    r = md.ok("convert", "--estargz", target, opt)
    assert f"the {len(files)} files run --record-access recorded" in r.stderr, r.stderr
    md.ok("push", "-q", opt)
    cold = Minidocker(tmp_path / "cold" / "root", tmp_path / "cold" / "config")
    try:
        reg.requests.clear()
        r = cold.ok("run", "--rm", "--explain", "--pull=lazy", opt, "bash", "-c", "echo hi", env=NO_BACKGROUND)
        assert r.stdout == "hi\n"
        prefetched = [line for line in r.stderr.splitlines() if " files of layer " in line]
        assert prefetched and "in 1 range request" in prefetched[0], r.stderr
        assert "-> usr/bin/bash, read for the first time" not in r.stderr, r.stderr  # it came with the prefetch
    finally:
        _remove(cold, tmp_path / "cold")


def test_record_access_refuses_an_image_that_is_not_lazy(pushed, md):
    _, target, _ = pushed
    md.ok("pull", "-q", target)
    r = md("run", "--rm", "--record-access", target, "true")
    assert r.returncode == 125 and "--record-access needs an image pulled lazily" in r.stderr, r.stderr
    assert md.ok("ps", "-aq").stdout == ""  # no container left behind
    r = md("run", "-d", "--record-access", target, "true")
    assert r.returncode == 125 and "foreground" in r.stderr


def test_a_tampered_chunk_gives_the_reader_eio_and_a_line_that_says_why(pushed, md):
    from minidocker.image import estargz

    reg, target, _ = pushed
    from minidocker.image.reference import parse
    from minidocker.image.registry import RegistryClient

    with RegistryClient(reg.host) as client:
        raw, _, _ = client.get_manifest(parse(target))
    digest = json.loads(raw)["layers"][0]["digest"]
    stored = reg.blob_path(digest)
    original = stored.read_bytes()
    chunk = estargz.EstargzReader(original).chunks("usr/lib/os-release")[0]
    damaged = bytearray(original)
    damaged[chunk.offset + chunk.compressed_size // 2] ^= 0xFF  # inside the file's gzip member
    try:
        stored.write_bytes(bytes(damaged))
        r = md(
            "run", "--rm", "--pull=lazy", target, "sh", "-c", "cat /usr/lib/os-release; echo rc=$?", env=NO_BACKGROUND
        )
    finally:
        stored.write_bytes(original)
    assert "rc=1" in r.stdout and "PRETTY_NAME" not in r.stdout, r.stdout
    assert "Input/output error" in r.stderr, r.stderr
    assert "minidocker: lazy layer" in r.stderr and "usr/lib/os-release" in r.stderr, r.stderr
    assert fuse_mounts_under(md.root) == []


def test_a_registry_gone_mid_run_gives_eio_and_says_so_in_logs(pushed, md):
    """(Last in this module: it stops the module's registry.)"""
    reg, target, _ = pushed
    files = "/usr/bin/perl /usr/bin/bash /usr/lib/x86_64-linux-gnu/libdb-5.3.so"  # (not all read at the start)
    script = f"cat /etc/debian_version; while [ ! -e /tmp/go ]; do sleep 0.1; done; cat {files} >/dev/null; echo rc=$?"
    env = {**NO_BACKGROUND, "MINIDOCKER_LAZY_TIMEOUT": "10"}
    cid = md.ok("run", "-d", "--pull=lazy", target, "sh", "-c", script, env=env).stdout.strip()
    wait_until(lambda: md("logs", cid).stdout.startswith("12"), "the container read a file")
    reg.stop()
    md.ok("exec", cid, "sh", "-c", ": > /tmp/go")  # (sh is in the cache: the container runs it)
    started = time.monotonic()
    code = md.ok("wait", cid, timeout=60).stdout.strip()
    assert time.monotonic() - started < 30 and code == "0", code  # (the script's last command is echo)
    wait_until(lambda: "rc=" in md("logs", cid).stdout, "the script's last line in the log")
    logs = md.ok("logs", cid)
    assert "rc=1" in logs.stdout, logs.stdout
    assert "Input/output error" in logs.stderr and "minidocker: lazy layer" in logs.stderr, logs.stderr
    assert "usr/" in logs.stderr
    md.ok("rm", cid)
    assert fuse_mounts_under(md.root) == [] and not any(s.alive() for s in lazy_servers(md.root))
