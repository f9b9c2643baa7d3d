"""Rank buckets (issue: ImageNet-scale storage): every (mode, t) of the grid from 4 bits a feature."""

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
from roar.masking.masks import feature_ranks, removed_features, top_count

ROAR_GRID = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9]


@pytest.mark.parametrize("features", [64, 63, 1024, 10])  # 63 and 10: t F lands on halves (rounding boundaries)
def test_every_grid_mask_from_the_buckets_equals_the_mask_from_the_ranks(features):
    scores = torch.rand(7, features, generator=torch.Generator().manual_seed(features))
    scores[:, : features // 3] = 0.5  # ties: the seeded tie rule decides, the buckets follow the ranks
    ranks = feature_ranks(scores, [f"s{i}" for i in range(7)], 0)
    fractions = [*ROAR_GRID, 0.25, 0.75, 0.05, 0.95, 1.0]  # 0.05 x 10 = 0.5 and 0.25 x 10 = 2.5: halves
    bounds = grid_boundaries(fractions, features)
    assert bucket_bits(bounds) == (4 if len(bounds) <= 15 else 8)
    buckets = rank_buckets(ranks, bounds)
    for mode in ("remove", "keep"):
        for t in fractions:
            got = removed_from_buckets(buckets, bounds, fractions, t, mode)
            assert torch.equal(got, removed_features(ranks, t, mode)), (mode, t)
            assert (got.sum(1) == top_count(t, features)).all()


def test_packing_round_trips_at_4_and_8_bits_and_refuses_what_does_not_fit():
    g = torch.Generator().manual_seed(0)
    for features in (9, 16):
        b = torch.randint(0, 16, (3, features), generator=g, dtype=torch.uint8)
        packed = pack_buckets(b, 4)
        assert packed.shape == (3, (features + 1) // 2)  # two features a byte
        assert torch.equal(unpack_buckets(packed, features, 4), b)
        wide = torch.randint(0, 200, (3, features), generator=g, dtype=torch.uint8)
        assert torch.equal(unpack_buckets(pack_buckets(wide, 8), features, 8), wide)
    with pytest.raises(RoarError, match="use 8 bits"):
        pack_buckets(torch.full((1, 4), 16, dtype=torch.uint8), 4)
    assert (
        bucket_bits(grid_boundaries(ROAR_GRID, 1024)) == 4
    )  # ROAR's grid, both modes: 5 boundaries (k at 0.1 = F - k at 0.9)
    assert bucket_bits(list(range(1, 17))) == 8


def test_a_fraction_off_the_grid_is_refused_with_the_grid():
    bounds = grid_boundaries(ROAR_GRID, 100)
    buckets = rank_buckets(torch.arange(100).view(1, -1), bounds)
    with pytest.raises(RoarError, match=r"fraction=0.2 is not on .*0, 0.1, 0.3, 0.5, 0.7, 0.9"):
        removed_from_buckets(buckets, bounds, ROAR_GRID, 0.2, "remove")
