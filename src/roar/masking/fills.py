"""What takes the place of masked features (``fill=``), in raw pixel units ([0, 1] images).

``fill(images, removed, context) -> images``; ``removed`` is (B, 1 or C, H, W) boolean.
- ``channel_mean``: the training split's per-channel mean (ROAR section 4.1, the default).
- ``zero``: 0 (FPA; the overinterpretation paper's masking after normalization is ``channel_mean``).
- ``constant``: any colour, ``fill.value`` (one value per channel).
- ``blur``: the image blurred by a Gaussian, kernel 21, sigma 10 (missingness paper C.4).
- ``random_image``: the pixels of another training image, chosen per (seed, sample id) (the
  masking-explanations paper's distractor).
- ``token_drop``: no painting; the mask travels with the sample and a ViT drops every patch with
  any removed pixel (missingness paper, appendix B).
- ``mask_only``: the image is the binary mask itself (removed = 1): a leakage control measuring how
  much class information the mask's shape alone carries.
"""

import torch
import torch.nn.functional as F

from roar.errors import RoarError

FILLS = ("channel_mean", "zero", "constant", "blur", "random_image", "token_drop", "mask_only")


def gaussian_blur(images: torch.Tensor, kernel: int = 21, sigma: float = 10.0) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (kernel clipped to the image size)."""
    h, w = images.shape[-2:]
    k = min(kernel, 2 * ((min(h, w) - 1) // 2) + 1)
    r = torch.arange(k, dtype=images.dtype, device=images.device) - k // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    c = images.shape[1]
    x = F.pad(images, (k // 2, k // 2, 0, 0), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    x = F.pad(x, (0, 0, k // 2, k // 2), mode="reflect")
    return F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def check_fill(cfg, channels: int) -> None:
    if cfg.name not in FILLS:
        from roar.errors import unknown_name

        raise unknown_name("fill", cfg.name, FILLS)
    if cfg.name == "constant":
        value = list(cfg.get("value") or [])
        if len(value) not in (1, channels) or not all(0 <= float(v) <= 1 for v in value):
            raise RoarError(f"fill.value={value}: give 1 or {channels} pixel values in [0, 1].")


def apply_fill(images, removed, cfg, mean=None, donors=None):
    """Masked images. ``donors`` (B, C, H, W): the other training images for ``random_image``."""
    name = cfg.name
    if name == "token_drop":
        return images
    if name == "mask_only":
        return removed.expand_as(images).to(images.dtype)
    if name == "channel_mean":
        value = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    elif name == "zero":
        value = torch.zeros((), dtype=images.dtype, device=images.device)
    elif name == "constant":
        value = torch.tensor([float(v) for v in cfg.value], dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    elif name == "blur":
        value = gaussian_blur(images, int(cfg.get("kernel", 21)), float(cfg.get("sigma", 10.0)))
    elif name == "random_image":
        value = donors
    else:
        raise RoarError(f"fill={name}: not implemented")
    return torch.where(removed, value, images)
