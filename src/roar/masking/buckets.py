"""Rank buckets: one compact map per (image, ranking) that reproduces every (mode, fraction) of a grid
exactly (issue: ImageNet-scale storage): ``mask.format=buckets``, written by roar-mask
(roar.masking.run) and turned into masks at load (roar.masking.at_load).

ROAR masks exactly k = round(t F) features (``top_count``): ``remove`` those of rank < k, ``keep`` those
of rank >= F - k. Every mask of the grid is therefore a cut of the rank order at one of the boundaries
{k_t, F - k_t : t in the grid} (0 and F left out). A feature's bucket is the number of boundaries at or
below its rank, so the mask of (mode, t) is a comparison of the bucket with the boundary's index:
bit-identical to ``removed_features`` on the ranks. A bucket takes the fewest bits that hold it (3 for
ROAR's grid: 5 boundaries, 6 buckets; 4 up to 15 boundaries; at most 8), stored as bit planes.
"""

import torch

from roar.errors import RoarError
from roar.masking.removal import MODES, top_count


def grid_boundaries(fractions, num_features: int) -> list:
    """The sorted cut ranks of every (mode, t) of the grid: k_t and F - k_t, without 0 and F."""
    cuts = set()
    for t in fractions:
        k = top_count(float(t), num_features)
        cuts |= {k, num_features - k}
    return sorted(cuts - {0, num_features})


def bucket_bits(boundaries) -> int:
    """The fewest bits that hold a bucket (0 .. len(boundaries)): 3 for ROAR's grid (5 boundaries, 6
    buckets), at most 8 (255 boundaries)."""
    if len(boundaries) > 255:
        raise RoarError(f"{len(boundaries)} rank boundaries: a bucket map holds at most 255 (use fewer fractions).")
    return max(1, len(boundaries).bit_length())


def rank_buckets(ranks: torch.Tensor, boundaries) -> torch.Tensor:
    """(B, F) uint8: how many boundaries lie at or below each feature's rank (``feature_ranks``: 0 = top)."""
    cuts = torch.as_tensor(boundaries, dtype=ranks.dtype, device=ranks.device)
    return torch.bucketize(ranks, cuts, right=True).to(torch.uint8)


def check_on_grid(fractions, fraction: float, mode: str = "remove") -> None:
    """A (mode, fraction) a bucket map of ``fractions`` serves; else an error listing the grid."""
    grid = [float(t) for t in fractions]
    if not any(abs(float(fraction) - t) < 1e-12 for t in grid):
        raise RoarError(
            f"fraction={fraction} is not on this bucket map's grid ({', '.join(format(t, '.10g') for t in grid)}); "
            f"a bucket map serves exactly the fractions it was made for."
        )
    if mode not in MODES:
        raise RoarError(f"mode={mode!r}; valid modes: {', '.join(MODES)}.")


def removed_from_buckets(buckets: torch.Tensor, boundaries, fractions, fraction: float, mode: str) -> torch.Tensor:
    """(B, F) bool: the features (mode, fraction) masks, from the buckets alone; equal to
    ``removed_features(ranks, fraction, mode)``. A fraction off the grid is refused with the grid listed."""
    check_on_grid(fractions, fraction, mode)
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
    """(B, F) uint8 buckets -> (B, bits x ceil(F / 8)) bytes: ``bits`` bit planes (plane j holds bit j of
    every feature, 8 features a byte, the first in the high bit), so a map costs F x bits / 8 bytes."""
    b = buckets.to(torch.uint8)
    if b.numel() and int(b.max()) >= 1 << bits:
        raise RoarError(f"a {bits}-bit bucket map holds buckets 0..{(1 << bits) - 1}; this one has {int(b.max())}.")
    n, f = b.shape
    pad = (-f) % 8
    if pad:
        b = torch.cat([b, torch.zeros(n, pad, dtype=torch.uint8, device=b.device)], 1)
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=b.device)
    planes = [(((b >> j) & 1).view(n, -1, 8) * weights).sum(2, dtype=torch.uint8) for j in range(bits)]
    return torch.cat(planes, 1)


def unpack_buckets(packed: torch.Tensor, num_features: int, bits: int) -> torch.Tensor:
    """The inverse of ``pack_buckets``: (B, F) uint8 buckets (on the packed map's device)."""
    n = packed.shape[0]
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=packed.device)
    planes = ((packed.view(n, bits, -1)[..., None] >> shifts) & 1).flatten(2)[..., :num_features]
    out = torch.zeros(n, num_features, dtype=torch.uint8, device=packed.device)
    for j in range(bits):
        out |= planes[:, j] << j
    return out
