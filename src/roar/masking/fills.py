"""What takes the place of masked features (``fill=``), in raw pixel units ([0, 1] images).

Each fill is one registered function ``fill(images, removed, cfg, ctx) -> images`` with its declared
traits; ``ctx`` (a FillContext) holds the training split's channel ``mean``, the ``donors`` of a fill
that needs them, and the batch's sample ``ids`` and ``maps_seed`` for fills that draw noise per sample.
Stages and the report ask for traits, never compare names:
- ``params``: its config keys and their defaults (``fill=<name>`` on the command line gets them);
- ``needs_donors``: it takes pixels of other training images (``roar.masking.donors``);
- ``drops_tokens``: it paints nothing; the mask travels with the sample and a ViT drops the tokens
  of every patch with a removed pixel (missingness paper, appendix B);
- ``leakage_control``: its images carry only the mask's shape, so a model trained on them measures
  how much class information the mask alone leaks; it is reported against chance, not judged;
- ``fallback``: what a fill writes where an image has no known pixel left (its samples' json names it);
- ``depends_on_mask``: a pixel's fill depends on which other pixels are removed (an imputation), so
  painting everything at once is not painting a subset (backward selection refuses it: its selection
  and its SIS re-check must fill alike);
- ``per_sample``: it draws its values per sample id (a training augmentation, which has no ids, cannot use it).
A training augmentation's ``augment.fill`` names a fill of this registry too (``augment_fill``), so training
and evaluation speak one vocabulary.
``removed`` is (B, 1 or C, H, W) boolean.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from roar.errors import RoarError
from roar.masking.imputation import check_linear, linear_fill
from roar.registry import Registry
from roar.utils.seeding import per_sample

FILLS = Registry(
    "fill",
    defaults={
        "params": {},
        "needs_donors": False,
        "drops_tokens": False,
        "leakage_control": False,
        "check": None,
        "fallback": None,
        "depends_on_mask": False,
        "per_sample": False,
    },
)


class FillContext(NamedTuple):
    mean: list | None = None  # the training split's per-channel mean
    donors: torch.Tensor | None = None  # (B, C, H, W) other training images (needs_donors)
    ids: list | None = None  # the batch's sample ids (per-sample noise)
    maps_seed: int = 0
    generator: torch.Generator | None = None  # a training augmentation's own draws (its noise, not per sample)


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


def _per_channel(values, images) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], dtype=images.dtype, device=images.device).view(1, -1, 1, 1)


@FILLS.register("channel_mean")
def channel_mean(images, removed, cfg, ctx):
    """ROAR section 4.1: the training split's per-channel mean (the default)."""
    return torch.where(removed, _per_channel(ctx.mean, images), images)


@FILLS.register("zero")
def zero(images, removed, cfg, ctx):
    """Black, 0 (FPA)."""
    return images.masked_fill(removed, 0.0)


def _check_constant(cfg, channels: int) -> None:
    value = list(cfg.get("value") or [])
    if len(value) not in (1, channels) or not all(0 <= float(v) <= 1 for v in value):
        counts = "1 pixel value" if channels == 1 else f"1 or {channels} pixel values"
        raise RoarError(f"fill.value={value}: give {counts} in [0, 1].")


@FILLS.register("constant", params={"value": [0.5, 0.5, 0.5]}, check=_check_constant)
def constant(images, removed, cfg, ctx):
    """Any colour, ``fill.value`` (one value per channel, or one for all)."""
    return torch.where(removed, _per_channel(cfg.value, images), images)


def blur_size(cfg, size: int) -> tuple:
    """(kernel, sigma) in pixels for ``size``-pixel images: ``fill.kernel`` and ``fill.sigma`` are given for
    ``fill.reference_size``-pixel images (the missingness paper's 21 and 10 at 224) and scale with the image
    (kernel rounded to odd); ``reference_size=null`` takes them in pixels as given. A kernel that scales
    below 3 pixels is refused: such a blur leaves each pixel almost as it was, so nothing would be removed."""
    kernel, sigma, ref = int(cfg.get("kernel", 21)), float(cfg.get("sigma", 10.0)), cfg.get("reference_size", 224)
    if ref is None:
        return kernel, sigma
    scale = size / float(ref)
    scaled = 2 * int(round((kernel * scale - 1) / 2)) + 1
    if scaled < 3:
        raise RoarError(
            f"fill=blur: kernel {kernel} and sigma {sigma:g} are given for {ref}-pixel images "
            f"(fill.reference_size); at {size} pixels they scale to a kernel under 3 pixels, which leaves each "
            f"pixel almost as it was. Use another fill, or give the blur in pixels: fill.reference_size=null "
            f"fill.kernel=... fill.sigma=..."
        )
    return scaled, sigma * scale


@FILLS.register("blur", params={"kernel": 21, "sigma": 10.0, "reference_size": 224})
def blur(images, removed, cfg, ctx):
    """The image blurred by a Gaussian, kernel 21 and sigma 10 at 224 pixels (missingness paper C.4),
    scaled to the image's size (``blur_size``)."""
    kernel, sigma = blur_size(cfg, min(images.shape[-2:]))
    return torch.where(removed, gaussian_blur(images, kernel, sigma), images)


@FILLS.register("random_image", needs_donors=True)
def random_image(images, removed, cfg, ctx):
    """The pixels of another training image, chosen per (maps seed, sample id) (the
    masking-explanations paper's distractor)."""
    return torch.where(removed, ctx.donors, images)


def _per_sample_noise(ctx, stream: str, shape, images) -> torch.Tensor:
    if ctx.ids is None:
        raise RoarError(f"{stream} draws per sample id: pass the batch's ids.")
    return per_sample(ctx.maps_seed, ctx.ids, stream, shape).to(images.device, images.dtype)


@FILLS.register("random_colour_image", per_sample=True)
def random_colour_image(images, removed, cfg, ctx):
    """One uniform random RGB colour per image, drawn per (maps seed, sample id) (missingness paper,
    C.4's "random" baseline: the colour differs between images, not within one)."""
    colour = _per_sample_noise(ctx, "random_colour_image", (images.shape[1], 1, 1), images)
    return torch.where(removed, colour, images)


@FILLS.register("random_colour_pixel", per_sample=True)
def random_colour_pixel(images, removed, cfg, ctx):
    """An independent uniform value per pixel and channel, drawn per (maps seed, sample id)
    (missingness paper, C.4: noise as the baseline)."""
    return torch.where(removed, _per_sample_noise(ctx, "random_colour_pixel", images.shape[1:], images), images)


@FILLS.register(
    "linear",
    params={"noise": 0.01, "tol": 1e-4, "max_iter": 200},
    check=check_linear,
    fallback="channel_mean",
    depends_on_mask=True,
)
def linear(images, removed, cfg, ctx):
    """ROAD's noisy linear imputation: each masked pixel the weighted mean of its neighbours, plus
    N(0, noise^2), seeded per (maps seed, sample id) (roar.masking.imputation)."""
    return linear_fill(images, removed, cfg, ctx.mean, ctx.ids, ctx.maps_seed, generator=ctx.generator)


@FILLS.register("token_drop", drops_tokens=True)
def token_drop(images, removed, cfg, ctx):
    """No painting: a ViT drops the masked patches' tokens (missingness paper, appendix B)."""
    return images


@FILLS.register("mask_only", leakage_control=True, depends_on_mask=True)
def mask_only(images, removed, cfg, ctx):
    """The image is the binary mask itself (removed = 1): the leakage control."""
    return removed.expand_as(images).to(images.dtype)


def fill_of(cfg):
    """The registered fill ``cfg.name`` (its traits: ``needs_donors``, ``drops_tokens``, ``leakage_control``)."""
    return FILLS[cfg.name]


def check_fill(cfg, channels: int):
    """The fill's entry after checking its config against the images' channel count."""
    fill = fill_of(cfg)
    unknown = set(cfg) - {"name", *fill.params}
    if unknown:
        raise RoarError(
            f"fill={cfg.name} has no setting {sorted(unknown)}; its settings: {sorted(fill.params) or 'none'}."
        )
    if fill.check:
        fill.check(cfg, channels)
    return fill


@dataclass(frozen=True)
class BoundFill:
    """A fill bound once per stage to what it paints with: its config, the training split's channel ``mean``
    and the ``maps_seed`` (which seeds per-sample noise). Its registered traits read through (``needs_donors``,
    ``drops_tokens``, ``leakage_control``, ``fallback``, ``depends_on_mask``, ``name``)."""

    cfg: Any
    entry: Any  # the registered fill
    mean: Any = None
    maps_seed: int = 0

    def apply(self, images, removed, ids=None, donors=None, generator=None):
        """Masked images. ``ids``: the batch's sample ids (fills that draw noise per sample); ``donors``
        (B, C, H, W): the other training images of a fill that needs donors; ``generator``: a training
        augmentation's own draws for a fill's noise."""
        ctx = FillContext(self.mean, donors, None if ids is None else list(ids), int(self.maps_seed), generator)
        return self.entry(images, removed, self.cfg, ctx)

    def __getattr__(self, trait):  # the registered traits (never the fields: unpickling asks before they exist)
        if trait.startswith("_") or trait in ("cfg", "entry", "mean", "maps_seed"):
            raise AttributeError(trait)
        return getattr(self.entry, trait)


def bind_fill(cfg, channels: int, mean=None, maps_seed: int = 0) -> BoundFill:
    """The fill of ``cfg``, checked against the images' channel count and bound to its mean and maps seed."""
    return BoundFill(cfg, check_fill(cfg, channels), mean, int(maps_seed))


def augment_fill_config(fill) -> dict:
    """``augment.fill`` as a fill config: a fill's name (``channel_mean``, ``zero``, ``linear``, ``blur``) or
    a list of pixel values (``constant``), with the fill's default settings."""
    if not isinstance(fill, str) and isinstance(fill, Sequence):  # a list or a ListConfig
        return {"name": "constant", "value": [float(v) for v in fill]}
    name = str(fill)
    return {"name": name, **(FILLS[name].params if name in FILLS else {})}


def augment_fill(fill, mean) -> BoundFill:
    """The bound fill a training augmentation paints its removed pixels with (``augment.fill``): a fill of the
    registry that needs no donors and no sample ids (an augmentation has neither) and paints pixels."""
    usable = [n for n in FILLS.names() if fill_usable_in_training(FILLS[n])]
    cfg = augment_fill_config(fill)
    if cfg["name"] not in FILLS or not fill_usable_in_training(FILLS[cfg["name"]]):
        raise RoarError(f"augment.fill={fill!r}: use one of {', '.join(usable)}, or a list of pixel values in [0, 1].")
    return bind_fill(OmegaConf.create(cfg), len(mean), [float(m) for m in mean])


def fill_usable_in_training(entry) -> bool:
    return not (entry.needs_donors or entry.drops_tokens or entry.leakage_control or entry.per_sample)


def same_painting(a, b, channels: int) -> bool:
    """Whether two fill configs paint alike: the same fill with the same settings, defaults filled in and a
    constant's one value taken for every channel."""

    def plain(cfg):
        out = {**FILLS[cfg["name"]].params, **dict(cfg)}
        if out["name"] == "constant":
            values = [float(v) for v in out["value"]]
            out["value"] = values * (channels // len(values)) if len(values) == 1 else values
        return out

    return plain(a) == plain(b)


def fill_named(label: str):
    """The registered fill behind a fill label of a path or a metrics.json (``constant-1f3a9c2e`` -> constant)."""
    return FILLS[str(label).partition("-")[0]]
