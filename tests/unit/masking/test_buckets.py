"""Rank buckets (issue: ImageNet-scale storage): every (mode, t) of the grid from a few bits a feature."""

import pytest
import torch

from roar.errors import RoarError
from roar.masking.buckets import (
    bucket_bits,
    grid_boundaries,
    pack_buckets,
    rank_buckets,
    removed_from_buckets,
    unpack_buckets,
)
from roar.masking.removal import feature_ranks, removed_features, top_count

ROAR_GRID = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9]


@pytest.mark.parametrize("features", [64, 63, 1024, 10])  # 63 and 10: t F lands on halves (rounding boundaries)
def test_every_grid_mask_from_the_buckets_equals_the_mask_from_the_ranks(features):
    scores = torch.rand(7, features, generator=torch.Generator().manual_seed(features))
    scores[:, : features // 3] = 0.5  # ties: the seeded tie rule decides, the buckets follow the ranks
    ranks = feature_ranks(scores, [f"s{i}" for i in range(7)], 0)
    fractions = [*ROAR_GRID, 0.25, 0.75, 0.05, 0.95, 1.0]  # 0.05 x 10 = 0.5 and 0.25 x 10 = 2.5: halves
    bounds = grid_boundaries(fractions, features)
    assert 2 ** bucket_bits(bounds) > len(bounds) >= 2 ** (bucket_bits(bounds) - 1)  # the fewest bits
    buckets = rank_buckets(ranks, bounds)
    bits = bucket_bits(bounds)
    assert torch.equal(unpack_buckets(pack_buckets(buckets, bits), features, bits), buckets)
    for mode in ("remove", "keep"):
        for t in fractions:
            got = removed_from_buckets(buckets, bounds, fractions, t, mode)
            assert torch.equal(got, removed_features(ranks, t, mode)), (mode, t)
            assert (got.sum(1) == top_count(t, features)).all()


def test_packing_round_trips_at_every_width_and_refuses_what_does_not_fit():
    g = torch.Generator().manual_seed(0)
    for features in (1, 9, 16, 1027):
        for bits in range(1, 9):
            b = torch.randint(0, 2**bits, (3, features), generator=g, dtype=torch.int32).to(torch.uint8)
            packed = pack_buckets(b, bits)
            assert packed.dtype == torch.uint8 and packed.shape == (3, bits * -(-features // 8))  # bits/8 a feature
            assert torch.equal(unpack_buckets(packed, features, bits), b)
    with pytest.raises(RoarError, match="3-bit bucket map holds buckets 0..7; this one has 8"):
        pack_buckets(torch.full((1, 4), 8, dtype=torch.uint8), 3)
    assert bucket_bits(grid_boundaries(ROAR_GRID, 1024)) == 3  # ROAR's grid, both modes: 5 boundaries, 6 buckets
    assert bucket_bits([5]) == 1 and bucket_bits(list(range(1, 16))) == 4 and bucket_bits(list(range(1, 17))) == 5
    assert bucket_bits([]) == 1 and bucket_bits(list(range(1, 256))) == 8


def test_a_fraction_off_the_grid_is_refused_with_the_grid():
    bounds = grid_boundaries(ROAR_GRID, 100)
    buckets = rank_buckets(torch.arange(100).view(1, -1), bounds)
    with pytest.raises(RoarError, match=r"fraction=0.2 is not on .*0, 0.1, 0.3, 0.5, 0.7, 0.9"):
        removed_from_buckets(buckets, bounds, ROAR_GRID, 0.2, "remove")
