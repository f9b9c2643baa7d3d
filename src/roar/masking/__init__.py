"""Ranking features by their estimator scores, and masking the top (or bottom) fraction."""

from roar.masking.fills import FILLS, BoundFill, bind_fill, check_fill, gaussian_blur
from roar.masking.ranking import rank_features
from roar.masking.removal import MODES, check_fractions, feature_ranks, mask_images, removed_features, top_count

__all__ = [
    "FILLS",
    "MODES",
    "BoundFill",
    "bind_fill",
    "check_fill",
    "check_fractions",
    "feature_ranks",
    "gaussian_blur",
    "mask_images",
    "rank_features",
    "removed_features",
    "top_count",
]
