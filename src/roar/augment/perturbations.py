"""Batch perturbations: each returns the boolean mask of removed pixels, shape (B, 1, H, W), or None.

All run vectorized on the batch's device. Each takes ``rng``, a pair of generators: batch-level
draws use ``rng.cpu`` (no device sync), per-pixel draws ``rng.device`` (on the batch's device).
Owning their generators makes the draws independent of anything else that consumes random numbers.
"""

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from roar.registry import Registry
from roar.utils.patches import expand_patches

# augment=<name>: ``perturbs`` (False: crop/flip at most), ``probabilities`` (config keys checked to lie in [0, 1])
AUGMENTS = Registry("augment", defaults={"perturbs": True, "probabilities": ()})
register_perturbation = AUGMENTS.register
AUGMENTS.add("none", lambda x, rng, **params: None, perturbs=False)
AUGMENTS.add(
    "standard", lambda x, rng, **params: None, perturbs=False
)  # crop and flip only (augment.crop_padding, augment.flip)
AUGMENTS.add(
    "resized_crop", lambda x, rng, **params: None, perturbs=False
)  # random-resized crop and flip only (augment.resized_crop, augment.flip)
AUGMENTS.add("flip", lambda x, rng, **params: None, perturbs=False)  # horizontal flip only: FPA's "None" model


class Generators(NamedTuple):
    cpu: torch.Generator
    device: torch.Generator


def generators(seed: int, device) -> Generators:
    device = torch.device(device)
    return Generators(torch.Generator().manual_seed(seed), torch.Generator(device=device).manual_seed(seed))


def _uniform(rng) -> float:
    return float(torch.rand((), generator=rng.cpu))


def grow_squares(seeds: torch.Tensor, sides: torch.Tensor, s_max: int) -> torch.Tensor:
    """Pixels covered by an s x s square whose top-left corner is each seed (s = ``sides`` there)."""
    covered = seeds.clone()
    for s in range(2, s_max + 1):
        at = (seeds & (sides == s)).float()
        covered |= F.max_pool2d(F.pad(at, (s - 1, 0, s - 1, 0)), s, stride=1) > 0
    return covered


@register_perturbation("fpa", probabilities=("p", "p1_max", "p2"))
def fpa(x, rng, p: float, p1_max: float, p2: float, s_max: int):
    """FPA paper Algorithm 1 on a mini-batch, selected with probability ``p``: p1 ~ U(0, p1_max) for
    the batch; each pixel removed with probability p1; with probability p2 a selected pixel also
    starts an s x s square (s uniform in 1..s_max) extending right and down (x[w:w+s, h:h+s])."""
    if _uniform(rng) >= p:
        return None
    b, _, h, w = x.shape
    return fpa_removed((b, 1, h, w), _uniform(rng) * p1_max, p2, s_max, rng.device)


def fpa_removed(shape, p1: float, p2: float, s_max: int, g: torch.Generator) -> torch.Tensor:
    """Algorithm 1's removed pixels for a selected batch at a given p1, vectorized (``g``: the device generator)."""
    selected = torch.rand(shape, generator=g, device=g.device) < p1
    seeds = selected & (torch.rand(shape, generator=g, device=g.device) < p2)
    sides = torch.randint(1, s_max + 1, shape, generator=g, device=g.device)
    return grow_squares(seeds, sides, s_max) | selected


def fpa_loop(image_hw, p1: float, p2: float, s_max: int, rng: np.random.Generator) -> np.ndarray:
    """Algorithm 1 for one selected image, literally: a Python loop over every pixel (the reference
    the vectorized ``fpa`` is tested and benchmarked against)."""
    h, w = image_hw
    removed = np.zeros((h, w), dtype=bool)
    for i in range(h):
        for j in range(w):
            if rng.random() < p1:
                removed[i, j] = True
                s = int(rng.integers(1, s_max + 1))
                if rng.random() < p2:
                    removed[i : i + s, j : j + s] = True
    return removed


@register_perturbation("rectangle", probabilities=("p",))
def rectangle(x, rng, p: float, scale=(0.02, 0.33), ratio=(0.3, 3.3)):
    """Random erasing (Zhong et al. 2020), the FPA paper's "Rectangle" baseline: with probability
    ``p`` per image, one rectangle of area fraction ~ U(scale) and log-uniform aspect ratio."""
    b, _, h, w = x.shape
    dev, g = x.device, rng.device
    area = torch.empty(b, device=dev).uniform_(*scale, generator=g) * h * w
    aspect = torch.exp(torch.empty(b, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g))
    rh = torch.sqrt(area * aspect).round().clamp(1, h)
    rw = torch.sqrt(area / aspect).round().clamp(1, w)
    y0 = (torch.rand(b, generator=g, device=dev) * (h - rh + 1)).floor()
    x0 = (torch.rand(b, generator=g, device=dev) * (w - rw + 1)).floor()
    ys = torch.arange(h, device=dev)[None, :]
    xs = torch.arange(w, device=dev)[None, :]
    in_y = (ys >= y0[:, None]) & (ys < (y0 + rh)[:, None])
    in_x = (xs >= x0[:, None]) & (xs < (x0 + rw)[:, None])
    chosen = torch.rand(b, generator=g, device=dev) < p
    return (in_y[:, :, None] & in_x[:, None, :] & chosen[:, None, None])[:, None]


@register_perturbation("input_dropout", probabilities=("keep_prob",))
def input_dropout(x, rng, keep_prob: float):
    """Overinterpretation paper section 4.5: keep each pixel with probability ``keep_prob``."""
    b, _, h, w = x.shape
    return torch.rand(b, 1, h, w, generator=rng.device, device=x.device) >= keep_prob


def random_patches(batch: int, grid: tuple, fraction: float, g: torch.Generator) -> torch.Tensor:
    """(B, gh, gw) boolean: exactly round(fraction * gh * gw) patches per sample, chosen at random."""
    n = grid[0] * grid[1]
    k = round(fraction * n)
    rank = torch.rand(batch, n, generator=g, device=g.device).argsort(dim=1).argsort(dim=1)
    return (rank < k).reshape(batch, *grid)


@register_perturbation("missingness", probabilities=("fraction",))
def missingness(x, rng, fraction: float, patch_size: int):
    """Missingness paper section 3 / appendix F: remove a random ``fraction`` of the patches."""
    b, _, h, w = x.shape
    patches = random_patches(b, (h // patch_size, w // patch_size), fraction, rng.device)
    return expand_patches(patches[:, None], patch_size)
