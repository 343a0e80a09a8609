import hashlib
import os

import pytest

from minidocker.errors import DigestMismatch
from minidocker.image.content import ContentStore


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_ingest_verifies_then_renames(tmp_path):
    store = ContentStore(tmp_path)
    data = b"hello layer" * 1000
    with store.lock(digest(data)), store.ingest(digest(data), len(data)) as ing:
        ing.write(data[:100])
        assert not store.has(digest(data))  # not visible before commit
        ing.write(data[100:])
    assert store.read(digest(data)) == data
    assert os.listdir(store.layout.ingest_dir) == []


@pytest.mark.parametrize("payload, size", [(b"evil", 4), (b"hello", 5), (b"hello!", 6)])
def test_ingest_refuses_wrong_or_truncated_content(tmp_path, payload, size):
    store = ContentStore(tmp_path)
    want = digest(b"hello!") if payload != b"hello!" else digest(b"hello!")
    expect_size = 6 if payload != b"hello!" else 5
    with pytest.raises(DigestMismatch), store.ingest(want, expect_size) as ing:
        ing.write(payload)
    assert not store.has(want)
    assert os.listdir(store.layout.ingest_dir) == []


def test_put_is_idempotent_and_checks(tmp_path):
    store = ContentStore(tmp_path)
    d = store.put(b"{}")
    assert d == digest(b"{}") and store.put(b"{}") == d
    with pytest.raises(DigestMismatch):
        store.put(b"[]", digest(b"{}x"))


@pytest.mark.parametrize("bad", ["md5:abc", "sha256:XYZ", "sha256:" + "a" * 63, "sha256:../../etc"])
def test_malformed_digests_never_become_paths(tmp_path, bad):
    with pytest.raises(DigestMismatch):
        ContentStore(tmp_path).path(bad)
