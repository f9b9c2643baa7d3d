"""The training-time augmentation of a batch: optional crop and flip, then one perturbation."""

import math

import torch
import torch.nn.functional as F

from roar.augment.perturbations import AUGMENTS, generators
from roar.errors import RoarError, check_probability
from roar.masking.fills import augment_fill
from roar.masking.patches import patch_keep


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


def random_resized_crop(x: torch.Tensor, scale, ratio, g: torch.Generator) -> torch.Tensor:
    """Per-sample random-resized crop (Szegedy et al. 2015; torchvision's RandomResizedCrop, as ROAR's
    code trains): an area share in ``scale`` and a log-uniform aspect ratio in ``ratio``, clipped to the
    image, at a uniform position, resampled bilinearly to the input size, batched in one grid_sample."""
    b, _, h, w = x.shape
    area = torch.empty(b, device=x.device).uniform_(float(scale[0]), float(scale[1]), generator=g)
    log_r = torch.empty(b, device=x.device).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g)
    sw = torch.sqrt(area * torch.exp(log_r)).clamp(max=1.0)  # crop side / image side
    sh = torch.sqrt(area / torch.exp(log_r)).clamp(max=1.0)
    cx = (torch.rand(b, generator=g, device=x.device) * 2 - 1) * (1 - sw)  # crop centre in [-1, 1] coordinates
    cy = (torch.rand(b, generator=g, device=x.device) * 2 - 1) * (1 - sh)
    zero = torch.zeros_like(sw)
    theta = torch.stack([torch.stack([sw, zero, cx], 1), torch.stack([zero, sh, cy], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


FLIP_MODES = ("random", "alternating")


def derandomized_flip(keys: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """Which samples to mirror this epoch: a fixed pseudo-random half per (sample, seed) at even epochs, the
    other half at odd ones (airbench, arXiv 2404.00498 section 3.6: every image is seen both ways in any
    two consecutive epochs)."""
    h = (keys.long() * 2654435761 + int(seed) * 40503) % 4294967296
    return ((h >> 16) & 1).bool() ^ bool(epoch % 2)


def geometric(x, removed, cfg, g):
    """The same crop and flip for a batch and its removed mask (B, 1 or C, H, W), in one transform
    call on both stacked: a removed pixel moves with its pixel. A resampled mask is removed wherever
    any removed pixel contributes (never a kept value made of removed ones)."""
    c = x.shape[1]
    both = x if removed is None else torch.cat([x, removed.to(x.dtype)], 1)
    if cfg["resized_crop"]:
        both = random_resized_crop(both, cfg["resized_crop"]["scale"], cfg["resized_crop"]["ratio"], g)
    both = random_crop_flip(both, cfg["padding"], cfg["flip"] and cfg["mirror"] is None, g)
    if cfg["flip"] and cfg["mirror"] is not None:
        both = torch.where(cfg["mirror"][:, None, None, None], both.flip(-1), both)
    return both[:, :c], None if removed is None else both[:, c:] > 0


class BatchAugment:
    """``augment(x, train, removed=None) -> (x, keep)``: ``keep`` is the per-patch mask of a token-dropping
    model (ViT), else None.

    ``token_patch`` is the patch size of a model that drops tokens (ViT). ``missingness`` then drops
    the removed patches' tokens instead of painting them (missingness paper, appendix B), and
    ``removed`` (the mask of token-drop shards) follows the crop and flip before the patches it touches
    are dropped.
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
        # the fill of the removed pixels, from the fill registry (linear's noise: from self.rng's draws)
        self.fill = augment_fill(cfg.get("fill", "channel_mean"), mean)
        resized = cfg.get("resized_crop")
        if resized is not None:
            resized = {
                "scale": list(resized.get("scale", [0.08, 1.0])),
                "ratio": list(resized.get("ratio", [0.75, 4 / 3])),
            }
            if not (
                0 < resized["scale"][0] <= resized["scale"][1] <= 1 and 0 < resized["ratio"][0] <= resized["ratio"][1]
            ):
                raise RoarError(
                    f"augment.resized_crop={resized}: scale needs 0 < low <= high <= 1, ratio 0 < low <= high."
                )
        self.flip_mode, self.epoch = cfg.get("flip_mode", "random"), 0
        if self.flip_mode not in FLIP_MODES:
            raise RoarError(f"augment.flip_mode={self.flip_mode!r}; valid: {', '.join(FLIP_MODES)}.")
        self.geometry = {
            "flip": bool(cfg.get("flip", False)),
            "padding": int(cfg.get("crop_padding", 0)),
            "resized_crop": resized,
        }
        self.at_test = self.name == "input_dropout"  # overinterpretation 4.5: at train and test
        self.token_patch = token_patch
        if self.name == "missingness" and token_patch:
            self.params["patch_size"] = token_patch

    def check_image(self, image_shape):
        """Errors that depend on the image size, raised before training."""
        _, h, w = image_shape
        if self.name == "fpa" and not self.params["s_max"] < min(h, w):
            raise RoarError(
                f"augment.params.s_max={self.params['s_max']} must be smaller than the image side ({min(h, w)}), "
                f"FPA Algorithm 1."
            )
        if self.name == "missingness" and (h % self.params["patch_size"] or w % self.params["patch_size"]):
            raise RoarError(
                f"augment.params.patch_size={self.params['patch_size']} does not divide the image size {h}x{w}."
            )

    @property
    def needs_keys(self) -> bool:
        """Whether training draws follow each sample (``flip_mode=alternating``), so batches must say which."""
        return self.geometry["flip"] and self.flip_mode == "alternating"

    def reseed(self, seed: int, device, epoch: int = 0) -> None:
        """Restart the draws from ``seed`` (the module calls this per epoch and rank)."""
        self.rng, self.epoch = generators(seed, device), int(epoch)

    def __call__(self, x, train: bool = True, removed=None, keys=None):
        """``keys``: a stable integer per sample, which ``flip_mode=alternating`` needs."""
        if self.rng is None or self.rng.device.device != x.device:
            self.reseed(self.seed, x.device)
        g = self.geometry
        if train and (g["flip"] or g["padding"] or g["resized_crop"]):
            mirror = None
            if self.needs_keys:
                if keys is None:
                    raise RoarError("augment.flip_mode=alternating needs each sample's index or id in the batch.")
                mirror = derandomized_flip(keys.to(x.device), self.seed, self.epoch)
            x, removed = geometric(x, removed, {**g, "mirror": mirror}, self.rng.device)
        keep = None if removed is None else patch_keep(removed, self.token_patch)
        if self.perturb is None or not (train or self.at_test):
            return x, keep
        dropped = self.perturb(x, self.rng, **self.params)
        if dropped is None:
            return x, keep
        if self.name == "missingness" and self.token_patch:
            mine = patch_keep(dropped, self.token_patch)
            return x, mine if keep is None else keep & mine
        return self.fill.apply(x, dropped, generator=self.rng.device), keep
