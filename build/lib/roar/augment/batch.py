"""The training-time augmentation of a batch: optional crop and flip, then one perturbation."""

import torch
import torch.nn.functional as F

from roar.augment.perturbations import AUGMENTS, generators
from roar.errors import RoarError, check_probability
from roar.masking.patches import patch_keep


def fill_value(fill, mean) -> torch.Tensor:
    """The raw pixel value (1, C, 1, 1) that ``fill`` names: ``channel_mean``, ``zero`` or a list of values."""
    c = len(mean)
    if fill == "channel_mean":
        values = list(mean)
    elif fill == "zero":
        values = [0.0] * c
    elif isinstance(fill, (list, tuple)) and len(fill) in (1, c):
        values = [float(v) for v in fill] * (c // len(fill))
    else:
        raise RoarError(f"augment.fill={fill!r}: use channel_mean, zero, or a list of {c} pixel values in [0, 1].")
    return torch.tensor(values, dtype=torch.float32).view(1, c, 1, 1)


def random_crop_flip(x: torch.Tensor, padding: int, flip: bool, g: torch.Generator) -> torch.Tensor:
    """Per-sample random crop after zero padding, and horizontal flip with probability 1/2, batched."""
    b, _, h, w = x.shape
    if padding:
        padded = F.pad(x, (padding,) * 4)
        oy = torch.randint(0, 2 * padding + 1, (b,), generator=g, device=x.device)
        ox = torch.randint(0, 2 * padding + 1, (b,), generator=g, device=x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    if flip:
        flipped = torch.rand(b, generator=g, device=x.device) < 0.5
        x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
    return x


class BatchAugment:
    """``augment(x, train) -> (x, keep)``: ``keep`` is a per-patch mask for token-dropping models, else None.

    ``token_patch`` is the patch size of a model that drops tokens (ViT); ``missingness`` then drops
    the removed patches' tokens instead of painting them (missingness paper, appendix B).
    """

    def __init__(self, cfg, mean, token_patch=None, seed: int = 0):
        self.name = cfg.get("name", "none")
        self.seed, self.rng = seed, None
        entry = AUGMENTS[self.name]
        self.params = dict(cfg.get("params") or {})
        for key in entry.probabilities:
            if key in self.params:
                check_probability(f"augment.params.{key}", self.params[key])
        if self.name == "fpa":
            self.params["s_max"] = int(self.params["s_max"])
        self.perturb = entry.fn if entry.perturbs else None
        self.fill = fill_value(cfg.get("fill", "channel_mean"), mean)
        self.flip, self.padding = bool(cfg.get("flip", False)), int(cfg.get("crop_padding", 0))
        self.at_test = self.name == "input_dropout"  # overinterpretation 4.5: at train and test
        self.token_patch = token_patch if self.name == "missingness" else None
        if self.token_patch:
            self.params["patch_size"] = token_patch

    def check_image(self, image_shape):
        """Errors that depend on the image size, raised before training."""
        _, h, w = image_shape
        if self.name == "fpa" and not self.params["s_max"] < min(h, w):
            raise RoarError(
                f"augment.params.s_max={self.params['s_max']} must be smaller than the image side ({min(h, w)}), FPA Algorithm 1."
            )
        if self.name == "missingness" and (h % self.params["patch_size"] or w % self.params["patch_size"]):
            raise RoarError(
                f"augment.params.patch_size={self.params['patch_size']} does not divide the image size {h}x{w}."
            )

    def reseed(self, seed: int, device) -> None:
        """Restart the draws from ``seed`` (the module calls this per epoch and rank)."""
        self.rng = generators(seed, device)

    def __call__(self, x, train: bool = True):
        if self.rng is None or self.rng.device.device != x.device:
            self.reseed(self.seed, x.device)
        if train and (self.flip or self.padding):
            x = random_crop_flip(x, self.padding, self.flip, self.rng.device)
        if self.perturb is None or not (train or self.at_test):
            return x, None
        removed = self.perturb(x, self.rng, **self.params)
        if removed is None:
            return x, None
        if self.token_patch:
            return x, patch_keep(removed, self.token_patch)
        return torch.where(removed, self.fill.to(x.device, x.dtype), x), None
