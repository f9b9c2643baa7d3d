"""Controls that never look at the model: a random ranking and a Sobel edge filter (ROAR section
4.1), and, for datasets with ground-truth masks, the oracle rankings every estimator is measured
against: ``oracle`` ranks the object's pixels first, ``shortcut`` the planted marker's (the
overinterpretation paper's "ruler"). Inside and outside the mask every pixel scores the same, so
the seeded tie rule of roar.masking.ranking orders them at random, per sample.

Each control is ``fn(x, ids, seed, extras) -> maps`` of ``x``'s shape; ``needs`` names the ground
truth it reads from the batch (``extras``, the dataset samples' key of that name).
"""

import torch
import torch.nn.functional as F

from roar.errors import RoarError
from roar.registry import Registry
from roar.utils.seeding import per_sample

CONTROLS = Registry("control", defaults={"needs": None})


@CONTROLS.register("random")
def random_map(x, ids, seed, extras):
    """Uniform [0, 1) scores per element, reproducible per (seed, sample id)."""
    return per_sample(seed, ids, "random", tuple(x.shape[1:])).to(x.device, x.dtype)


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


@CONTROLS.register("sobel")
def sobel_map(x, ids, seed, extras):
    """Sobel gradient magnitude per channel (replicate padding, so image borders are not edges)."""
    c = x.shape[1]
    kx = _SOBEL_X.to(x.device, x.dtype).expand(c, 1, 3, 3)
    ky = kx.transpose(-1, -2)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return torch.hypot(F.conv2d(padded, kx, groups=c), F.conv2d(padded, ky, groups=c))


def _mask_map(x, extras, key: str, name: str):
    if key not in extras:
        raise RoarError(f"The {name} control needs ground-truth masks ({key}); this dataset has none. Use data=shapes.")
    mask = extras[key].to(x.device).reshape(x.shape[0], 1, *x.shape[2:])
    return mask.to(x.dtype).expand_as(x).contiguous()


@CONTROLS.register("oracle", needs="object_mask")
def oracle_map(x, ids, seed, extras):
    """1 on the object's pixels, 0 elsewhere: the object first, at random inside and outside."""
    return _mask_map(x, extras, "object_mask", "oracle")


@CONTROLS.register("shortcut", needs="shortcut_mask")
def shortcut_map(x, ids, seed, extras):
    """1 on the shortcut marker's pixels (data.shortcut_prob > 0), 0 elsewhere."""
    return _mask_map(x, extras, "shortcut_mask", "shortcut")
