"""From per-element maps to the features that get ranked (``reduce=``).

- ``abs_sum`` (default): one feature per pixel, the sum of absolute values over channels; all
  channels of a pixel are masked together (FPA's unsigned estimators, subscript abs).
- ``sum``: one feature per pixel, the signed sum over channels (FPA's signed estimators, sum).
- ``none``: one feature per pixel-channel element, as the original ROAR code ranks.
"""

import torch

from roar.errors import RoarError

REDUCTIONS = ("abs_sum", "sum", "none")


def reduce_maps(maps: torch.Tensor, how: str) -> torch.Tensor:
    """(B, C, H, W) maps -> (B, 1, H, W) for per-pixel reductions, unchanged for ``none``."""
    if how == "abs_sum":
        return maps.abs().sum(1, keepdim=True)
    if how == "sum":
        return maps.sum(1, keepdim=True)
    if how == "none":
        return maps
    raise RoarError(f"reduce={how!r}; valid reductions: {', '.join(REDUCTIONS)}.")
