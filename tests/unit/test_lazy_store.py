"""The lazy layers' records in a store (lazy/layers.py), their settings, and the notices a
container's relay reads from their servers' logs (lazy/notices.py). A temp file tree only."""

from __future__ import annotations

import json
import os

import pytest

from minidocker.errors import MinidockerError
from minidocker.lazy.layers import BACKGROUND_DELAY, THRESHOLD, LazyLayers, settings
from minidocker.lazy.notices import LazyNotices, is_lazy_mount
from minidocker.paths import Layout, prepare_store

CHAIN = "sha256:" + "ab" * 32


@pytest.fixture
def layers(tmp_path):
    prepare_store(tmp_path / "root")
    return LazyLayers(Layout(tmp_path / "root"))


def test_a_recorded_layer_is_whole_under_its_name_and_private(layers):
    assert layers.record(CHAIN, {"digest": "sha256:" + "1" * 64, "format": "estargz"}, b"TOC")
    at = layers.at(CHAIN)
    assert layers.has(CHAIN) and layers.chains() == [CHAIN]
    assert layers.toc(CHAIN) == b"TOC" and layers.meta(CHAIN)["chain_id"] == CHAIN
    assert at.mnt.is_dir() and at.cache.is_dir()
    assert os.stat(at.meta).st_mode & 0o077 == 0 and os.stat(layers.layout.lazy_dir).st_mode & 0o077 == 0
    assert not layers.record(CHAIN, {"format": "estargz"}, b"OTHER")  # the same chain: kept as it was
    assert layers.toc(CHAIN) == b"TOC"
    assert [p.name for p in layers.layout.lazy_dir.iterdir()] == [at.dir.name]  # no temp dir left


def test_a_killed_writers_temp_dir_is_reclaimed_and_remove_leaves_nothing(layers):
    orphan = layers.layout.temp_lazy_layer("killed")
    (orphan / "mnt").mkdir(parents=True)
    layers.record(CHAIN, {"format": "estargz"}, b"TOC")
    assert not orphan.exists()  # its lock was free: a killed writer's
    layers.remove_dir(CHAIN)
    assert not layers.has(CHAIN) and list(layers.layout.lazy_dir.iterdir()) == []


def test_settings_come_from_the_environment_then_daemon_json(tmp_path, monkeypatch):
    for k in ("MINIDOCKER_LAZY_PULL", "MINIDOCKER_LAZY_THRESHOLD", "MINIDOCKER_LAZY_BACKGROUND"):
        monkeypatch.delenv(k, raising=False)
    conf = tmp_path / "daemon.json"
    monkeypatch.setenv("MINIDOCKER_DAEMON_CONFIG", str(conf))
    s = settings()
    assert (s.default, s.threshold, s.background) == (False, THRESHOLD, BACKGROUND_DELAY)
    conf.write_text(json.dumps({"lazy-pull": True, "lazy-threshold": 1000, "lazy-background-fetch": False}))
    s = settings()
    assert (s.default, s.threshold, s.background) == (True, 1000, None)
    monkeypatch.setenv("MINIDOCKER_LAZY_PULL", "0")
    monkeypatch.setenv("MINIDOCKER_LAZY_BACKGROUND", "2.5")
    s = settings()
    assert (s.default, s.background) == (False, 2.5)


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"lazy-threshold": -1}, "lazy-threshold must be a number of bytes"),
        ({"lazy-threshold": "big"}, "lazy-threshold must be a number of bytes"),
        ({"lazy-background-fetch": "soon"}, "lazy-background-fetch must be seconds"),
        ({"lazy-pull": 3}, "lazy-pull must be true or false"),
    ],
)
def test_a_bad_setting_is_one_clear_error(tmp_path, monkeypatch, doc, words):
    for k in ("MINIDOCKER_LAZY_PULL", "MINIDOCKER_LAZY_THRESHOLD", "MINIDOCKER_LAZY_BACKGROUND"):
        monkeypatch.delenv(k, raising=False)
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps(doc))
    monkeypatch.setenv("MINIDOCKER_DAEMON_CONFIG", str(conf))
    with pytest.raises(MinidockerError, match=words):
        settings()


def test_notices_are_the_new_warnings_of_the_lazy_layers_logs(tmp_path):
    lazy = tmp_path / "lazy" / ("c" * 64)
    (lazy / "mnt").mkdir(parents=True)
    log = lazy / "server.log"
    log.write_text("2026-12-03 08:00:00,000 minidocker.lazy[7]: lazy layer cccc: an old warning\n")
    plain = tmp_path / "layers" / "x" / "diff"
    assert is_lazy_mount(str(lazy / "mnt")) and not is_lazy_mount(str(plain))
    assert LazyNotices.of([str(plain)]) is None
    notices = LazyNotices.of([str(plain), str(lazy / "mnt")])
    assert notices is not None and notices.poll() == []  # what was there before is not news
    with open(log, "a") as f:
        f.write("2026-12-03 08:00:01,000 minidocker.lazy[7]: lazy layer cccc: fetched etc/passwd bytes 0-839: ")
        f.write("blob bytes 93599-94026 (427) in 28.9 ms\n")
        f.write("2026-12-03 08:00:02,000 minidocker.lazy[7]: lazy layer cccc: usr/bin/bash bytes 0-9 (chunk x): ")
        f.write("ConnectError; the reader gets EIO\n2026-12-03 08:00:03,000 minidocker.lazy[7]: half a li")
    assert notices.poll() == [
        b"minidocker: lazy layer cccc: usr/bin/bash bytes 0-9 (chunk x): ConnectError; the reader gets EIO\n"
    ]
    assert notices.totals == {"cccc": (1, 427)}  # the fetched chunk: counted, for --explain
    with open(log, "a") as f:
        f.write("ne\n")
    assert notices.poll() == [b"minidocker: half a line\n"]
