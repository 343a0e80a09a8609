"""The unpacking limits as numbers: settings, the two formulas, and a budget's counters.

The free-space checks ask the real kernel (statvfs of a temp dir); the bombs themselves are
in tests/integration/test_bombs.py."""

from __future__ import annotations

import io
import math

import pytest

from minidocker.errors import StoreError
from minidocker.image.limits import (
    EXPANSION_VAR,
    RESERVE_VAR,
    GiB,
    LayerBudget,
    UnpackLimits,
    copy_counted,
    human,
    parse_setting,
)

MiB = 1 << 20


@pytest.mark.parametrize(
    "text, kinds, expect",
    [
        ("250x", "x", (250, "x")),
        ("1.5x", "x", (1.5, "x")),
        ("10%", "%", (10, "%")),
        ("20g", "x", (20 * GiB, "")),
        ("20G", "x", (20 * GiB, "")),
        ("512MiB", "%", (512 * MiB, "")),
        ("64k", "x", (64 << 10, "")),
        ("1048576", "x", (MiB, "")),
        ("0", "%", (0, "")),
        (" 2 t ", "x", (2 << 40, "")),
    ],
)
def test_parse_setting(text, kinds, expect):
    assert parse_setting("VAR", text, kinds) == expect


@pytest.mark.parametrize(
    "text, kinds", [("10%", "x"), ("3x", "%"), ("abc", "x"), ("-1g", "x"), ("1e9", "x"), ("5 p", "%"), ("", "x")]
)
def test_bad_settings_name_the_variable_and_the_forms(text, kinds):
    with pytest.raises(StoreError) as e:
        parse_setting("VAR", text, kinds)
    assert e.value.message.startswith(f"VAR={text!r} is not ") and e.value.message.endswith("a size (20g) or 0")


def test_default_limits():
    limits = UnpackLimits.from_env({})
    assert limits.expansion_limit(1 * MiB) == GiB  # 100 x 1 MiB is less than the floor
    assert limits.expansion_limit(100 * MiB) == 100 * 100 * MiB
    assert limits.expansion_limit(None) == math.inf  # nothing decompressed: nothing to limit
    assert limits.reserve(64 * MiB) == pytest.approx(3.2 * MiB)  # 5% of a small tmpfs
    assert limits.reserve(2 << 40) == GiB  # at most 1 GiB on a big disk


@pytest.mark.parametrize(
    "env, compressed, limit",
    [
        ({EXPANSION_VAR: "250x"}, 10 * MiB, 2500 * MiB),
        ({EXPANSION_VAR: "250x"}, MiB, GiB),
        ({EXPANSION_VAR: "50m"}, 10 * MiB, 50 * MiB),
        ({EXPANSION_VAR: "50m"}, GiB, 50 * MiB),
        ({EXPANSION_VAR: "0"}, MiB, math.inf),
    ],
)
def test_expansion_setting(env, compressed, limit):
    assert UnpackLimits.from_env(env).expansion_limit(compressed) == limit


@pytest.mark.parametrize(
    "env, fs_size, reserve",
    [
        ({RESERVE_VAR: "10%"}, 2 << 40, 0.1 * (2 << 40)),
        ({RESERVE_VAR: "2g"}, 2 << 40, 2 * GiB),
        ({RESERVE_VAR: "2g"}, GiB, GiB),
        ({RESERVE_VAR: "0"}, 2 << 40, 0),
    ],
)
def test_reserve_setting(env, fs_size, reserve):
    assert UnpackLimits.from_env(env).reserve(fs_size) == reserve


def test_expansion_past_the_limit_raises_with_the_way_out(tmp_path):
    budget = LayerBudget(UnpackLimits.from_env({EXPANSION_VAR: "3m"}), tmp_path, "layer abc", 1000)
    budget.count_expanded(3 * MiB)  # up to the limit is allowed
    with pytest.raises(StoreError) as e:
        budget.count_expanded(1)
    assert e.value.message == (
        "layer abc expands to more than 3.0 MiB (the limit MINIDOCKER_MAX_LAYER_EXPANSION "
        "sets): refused as a decompression bomb"
    )
    assert "MINIDOCKER_MAX_LAYER_EXPANSION=1000x" in e.value.hint


def test_a_streamed_input_grows_its_limit_as_it_is_read(tmp_path):
    budget = LayerBudget(UnpackLimits(ratio=10, floor=MiB), tmp_path, "the input of import")
    with pytest.raises(StoreError, match=r"more than 1\.0 MiB \(1\.0 MiB is allowed to every layer"):
        budget.count_expanded(MiB + 1)
    budget = LayerBudget(UnpackLimits(ratio=10, floor=MiB), tmp_path, "the input of import")
    budget.saw_compressed(MiB)
    budget.count_expanded(10 * MiB)
    with pytest.raises(StoreError, match=r"\(10 times its 1\.0 MiB compressed size\)"):
        budget.count_expanded(1)


def test_reserve_checked_against_the_real_file_system(tmp_path):
    full = LayerBudget(UnpackLimits.from_env({RESERVE_VAR: "100%"}), tmp_path, "layer abc")
    with pytest.raises(StoreError) as e:
        full.count_written(1)  # the first byte already asks the kernel
    assert e.value.message.startswith("no space left on device for layer abc: the store's file system has ")
    assert RESERVE_VAR in e.value.hint
    roomy = LayerBudget(UnpackLimits.from_env({RESERVE_VAR: "1k"}), tmp_path, "layer abc")
    roomy.count_written(1)
    assert roomy.written < roomy.next_check <= roomy.written + 256 * MiB  # the next look is planned
    off = LayerBudget(UnpackLimits.from_env({RESERVE_VAR: "0"}), tmp_path / "missing", "layer abc")
    off.count_written(1 << 40)  # no reserve: statvfs is never called (the path does not even exist)
    off.check_free_space(1 << 50)


def test_copy_counted_counts_before_it_writes(tmp_path):
    out = io.BytesIO()
    budget = LayerBudget(UnpackLimits.from_env({EXPANSION_VAR: "10k", RESERVE_VAR: "0"}), tmp_path, "the archive")
    with pytest.raises(StoreError):
        copy_counted(io.BytesIO(bytes(20 << 10)), out, budget, chunk=4 << 10)
    assert out.tell() == 8 << 10  # the chunk that broke the limit was never written


@pytest.mark.parametrize(
    "n, text",
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3355443, "3.2 MiB"), (GiB, "1.0 GiB"), (3 << 40, "3.0 TiB")],
)
def test_human(n, text):
    assert human(n) == text
