"""From removed pixels to the patches a token-dropping model (ViT) keeps."""

import torch
import torch.nn.functional as F


def patch_keep(removed: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Per-patch keep mask (B, H/p, W/p) from a per-pixel removed mask (B, [C,] H, W): a patch is
    dropped when any of its pixels is removed (missingness paper, appendix B, "conservatively")."""
    if removed.dim() == 4:
        removed = removed.any(dim=1)
    return F.max_pool2d(removed[:, None].float(), patch_size)[:, 0] == 0
