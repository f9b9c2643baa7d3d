"""Which features are masked: exactly round(t x F) of them in both modes, from one ranking per
image that serves every fraction. ``remove`` (ROAR) masks the top-ranked t; ``keep`` (KAR) masks
the bottom-ranked t, keeping the most important 1 - t. So t is always the fraction masked, and
keep at t masks exactly the features that remove at 1 - t leaves (whenever t x F is not a half
integer, where rounding makes the two counts differ by one)."""

import math

import torch

from roar.errors import RoarError, check_probability
from roar.masking.fills import apply_fill
from roar.masking.ranking import rank_features

MODES = ("remove", "keep")


def top_count(fraction: float, num_features: int) -> int:
    """round(t x F), halves rounded up, the one rounding used everywhere."""
    return int(math.floor(fraction * num_features + 0.5))


def check_fractions(fractions) -> list:
    return [check_probability("fraction", t, "the share of features masked (ROAR's t)") for t in fractions]


def feature_ranks(scores: torch.Tensor, ids, seed: int) -> torch.Tensor:
    """(B, F) rank of every feature, 0 = most important: one sort per image for every fraction."""
    order = rank_features(scores, ids, seed)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return ranks


def removed_features(ranks: torch.Tensor, fraction: float, mode: str) -> torch.Tensor:
    """(B, F) boolean: the features masked at ``fraction`` in ``mode``."""
    k = top_count(fraction, ranks.shape[1])
    if mode == "remove":
        return ranks < k
    if mode == "keep":
        return ranks >= ranks.shape[1] - k
    raise RoarError(f"mode={mode!r}; valid modes: {', '.join(MODES)}.")


def mask_images(images, ranks, mode: str, fraction: float, fill, mean=None, donors=None):
    """(masked images, removed mask) of a batch from its feature ranks (``feature_ranks``, one sort
    serving every fraction). Ranks over H x W features mask whole pixels (reduced maps), over
    C x H x W single elements. ``donors``: the ``random_image`` fill's other images. The one masking
    function: roar-mask writes its output, roar-eval feeds it to the model."""
    b, c, h, w = images.shape
    per_pixel = ranks.shape[1] == h * w
    if not per_pixel and ranks.shape[1] != c * h * w:
        raise RoarError(
            f"ranks have {ranks.shape[1]} features per image; images of shape {(c, h, w)} have {h * w} pixels or {c * h * w} elements."
        )
    removed = removed_features(ranks, fraction, mode).view(b, 1 if per_pixel else c, h, w)
    return apply_fill(images, removed, fill, mean=mean, donors=donors), removed
