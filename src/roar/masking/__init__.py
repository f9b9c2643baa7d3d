"""Ranking features by their estimator scores, and masking the top (or bottom) fraction."""

from roar.masking.ranking import rank_features

__all__ = ["rank_features"]
