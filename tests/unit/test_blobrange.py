"""merge_ranges: the fewest requests that cover the ranges a lazy layer wants at once."""

import pytest

from minidocker.image.blobrange import merge_ranges


@pytest.mark.parametrize(
    "ranges, gap, runs",
    [
        ([], 10, []),
        ([(0, 10)], 10, [(0, 10)]),
        ([(0, 10), (10, 5)], 0, [(0, 15)]),  # adjacent
        ([(0, 10), (5, 10)], 0, [(0, 15)]),  # overlapping
        ([(0, 10), (15, 5)], 4, [(0, 10), (15, 5)]),  # a gap of 5 > 4
        ([(0, 10), (15, 5)], 5, [(0, 20)]),  # a gap of 5 <= 5: read through
        ([(100, 1), (0, 1), (50, 1)], 10, [(0, 1), (50, 1), (100, 1)]),  # sorted
        ([(0, 100), (10, 5)], 0, [(0, 100)]),  # contained
        ([(0, 0), (5, 1)], 0, [(5, 1)]),  # empty ranges are dropped
    ],
)
def test_merge_ranges(ranges, gap, runs):
    assert merge_ranges(ranges, gap) == runs
