"""The one ranking of features, with the one tie-break, used by every stage.

Features are ordered by score, highest first. Ties are broken by a random permutation drawn per
(seed, sample id) ("seeded jitter" without touching the scores): each feature gets a 64-bit key
from a counter-based hash (splitmix64 of the sample's seed and the feature index), the features
are sorted by (score descending, key) in one sort of a packed 64-bit integer: the float32
score's order-preserving bits above, the key's low 32 bits below. So equal scores (a flat region, a zero
gradient) are ordered at random, but the same random order every time, on every machine, for any
batch, computed for the whole batch at once. Signed zeros are one score: a gradient's -0.0 and
+0.0 (half the features of ``grad_x_input`` on black pixels) tie, and tie at random.
"""

import torch

from roar.utils.seeding import sample_seed

_GOLDEN, _MIX1, _MIX2 = (
    -7046029254386353131,
    -4658895280553007687,
    -7723592293110705685,
)  # splitmix64's odd constants as int64


def tie_break_keys(ids, num_features: int, maps_seed: int, device=None) -> torch.Tensor:
    """(B, F) int64 keys, a function of (maps_seed, sample id, feature index) alone."""
    seeds = torch.tensor([sample_seed(maps_seed, i, "tie-break") for i in ids], dtype=torch.int64, device=device)
    x = seeds[:, None] + (torch.arange(1, num_features + 1, dtype=torch.int64, device=device) * _GOLDEN)[None]
    x = (x ^ (x >> 30)) * _MIX1
    x = (x ^ (x >> 27)) * _MIX2
    return x ^ (x >> 31)


def _descending_bits(scores: torch.Tensor) -> torch.Tensor:
    """int64 in [0, 2^32) that sorts ascending exactly as the float32 ``scores`` sort descending."""
    bits = scores.float().contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    ascending = torch.where(bits >= 2**31, (~bits) & 0xFFFFFFFF, bits | 2**31)
    return 0xFFFFFFFF - ascending


def rank_features(scores: torch.Tensor, ids, maps_seed: int = 0) -> torch.Tensor:
    """(B, F) feature indices, most important (highest score) first, ties in seeded random order."""
    keys = tie_break_keys(ids, scores.shape[1], maps_seed, scores.device) & 0xFFFFFFFF
    scores = scores.float() + 0.0  # -0.0 + 0.0 is +0.0: a zero is a zero, whatever its sign (IEEE 754)
    packed = (_descending_bits(scores) - 2**31) * 2**32 + keys  # spans int64 without overflow
    return torch.argsort(packed, dim=1, stable=True)
