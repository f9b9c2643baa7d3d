"""Controls that never look at the model (ROAR section 4.1): a random ranking and a Sobel edge filter."""

import torch
import torch.nn.functional as F

from roar.registry import Registry
from roar.utils.seeding import per_sample

CONTROLS = Registry("control")


@CONTROLS.register("random")
def random_map(x, ids, seed):
    """Uniform [0, 1) scores per element, reproducible per (seed, sample id)."""
    return per_sample(seed, ids, "random", tuple(x.shape[1:])).to(x.device, x.dtype)


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


@CONTROLS.register("sobel")
def sobel_map(x, ids, seed):
    """Sobel gradient magnitude per channel (replicate padding, so image borders are not edges)."""
    c = x.shape[1]
    kx = _SOBEL_X.to(x.device, x.dtype).expand(c, 1, 3, 3)
    ky = kx.transpose(-1, -2)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return torch.hypot(F.conv2d(padded, kx, groups=c), F.conv2d(padded, ky, groups=c))
