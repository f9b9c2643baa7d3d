"""The one expansion from patches to pixels."""

import torch


def expand_patches(values: torch.Tensor, patch: int) -> torch.Tensor:
    """(..., gh, gw) per-patch values -> (..., gh p, gw p) per pixel: each patch's value on its p x p pixels
    (row-major patches, as roar.masking.removal pools them)."""
    return values.repeat_interleave(patch, -2).repeat_interleave(patch, -1)
