"""Rank buckets: one compact map per (image, ranking) that reproduces every (mode, fraction) of a grid
exactly (issue: ImageNet-scale storage; the first part of ``mask.format=buckets``, not yet written by
roar-mask nor read by the loader).

ROAR masks exactly k = round(t F) features (``top_count``): ``remove`` those of rank < k, ``keep`` those
of rank >= F - k. Every mask of the grid is therefore a cut of the rank order at one of the boundaries
{k_t, F - k_t : t in the grid} (0 and F left out). A feature's bucket is the number of boundaries at or
below its rank, so the mask of (mode, t) is a comparison of the bucket with the boundary's index:
bit-identical to ``removed_features`` on the ranks. With at most 15 boundaries a bucket fits 4 bits
(two features a byte); up to 255, 8 bits. ROAR's grid (5 fractions, both modes) has at most 10.
"""

import torch

from roar.errors import RoarError
from roar.masking.masks import MODES, top_count


def grid_boundaries(fractions, num_features: int) -> list:
    """The sorted cut ranks of every (mode, t) of the grid: k_t and F - k_t, without 0 and F."""
    cuts = set()
    for t in fractions:
        k = top_count(float(t), num_features)
        cuts |= {k, num_features - k}
    return sorted(cuts - {0, num_features})


def bucket_bits(boundaries) -> int:
    """4 bits a feature for at most 15 boundaries (16 buckets), else 8 (at most 255)."""
    if len(boundaries) > 255:
        raise RoarError(f"{len(boundaries)} rank boundaries: a bucket map holds at most 255 (use fewer fractions).")
    return 4 if len(boundaries) <= 15 else 8


def rank_buckets(ranks: torch.Tensor, boundaries) -> torch.Tensor:
    """(B, F) uint8: how many boundaries lie at or below each feature's rank (``feature_ranks``: 0 = top)."""
    cuts = torch.as_tensor(boundaries, dtype=ranks.dtype, device=ranks.device)
    return torch.bucketize(ranks, cuts, right=True).to(torch.uint8)


def removed_from_buckets(buckets: torch.Tensor, boundaries, fractions, fraction: float, mode: str) -> torch.Tensor:
    """(B, F) bool: the features (mode, fraction) masks, from the buckets alone; equal to
    ``removed_features(ranks, fraction, mode)``. A fraction off the grid is refused with the grid listed."""
    grid = [float(t) for t in fractions]
    if not any(abs(float(fraction) - t) < 1e-12 for t in grid):
        raise RoarError(
            f"fraction={fraction} is not on this bucket map's grid ({', '.join(format(t, '.10g') for t in grid)}); "
            f"a bucket map serves exactly the fractions it was made for."
        )
    if mode not in MODES:
        raise RoarError(f"mode={mode!r}; valid modes: {', '.join(MODES)}.")
    f = buckets.shape[1]
    k = top_count(float(fraction), f)
    if k == 0:
        return torch.zeros_like(buckets, dtype=torch.bool)
    if k == f:
        return torch.ones_like(buckets, dtype=torch.bool)
    if mode == "remove":  # rank < k  <=>  at most the index of k boundaries lie at or below the rank
        return buckets <= boundaries.index(k)
    return buckets > boundaries.index(f - k)  # keep: rank >= F - k


def pack_buckets(buckets: torch.Tensor, bits: int) -> torch.Tensor:
    """(B, F) uint8 buckets -> (B, ceil(F / 2)) bytes at 4 bits (feature 2i in the low nibble), or as is at 8."""
    if bits == 8:
        return buckets.to(torch.uint8)
    if buckets.numel() and int(buckets.max()) > 15:
        raise RoarError("a 4-bit bucket map holds buckets 0..15; this one has more: use 8 bits.")
    b = buckets.to(torch.uint8)
    if b.shape[1] % 2:
        b = torch.cat([b, torch.zeros_like(b[:, :1])], 1)
    return b[:, 0::2] | (b[:, 1::2] << 4)


def unpack_buckets(packed: torch.Tensor, num_features: int, bits: int) -> torch.Tensor:
    """The inverse of ``pack_buckets``: (B, F) uint8 buckets."""
    if bits == 8:
        return packed[:, :num_features].to(torch.uint8)
    out = torch.stack([packed & 0x0F, packed >> 4], 2).flatten(1)
    return out[:, :num_features]
