"""Which features are masked: exactly round(t x F) of them in both modes, from one ranking per
image that serves every fraction. ``remove`` (ROAR) masks the top-ranked t; ``keep`` (KAR) masks
the bottom-ranked t, keeping the most important 1 - t. So t is always the fraction masked, and
keep at t masks exactly the features that remove at 1 - t leaves (whenever t x F is not a half
integer, where rounding makes the two counts differ by one).

Features are pixels (``granularity=pixel``: the reduced map, or pixel-channel elements with
``reduce=none``) or square patches (``granularity=patch``: a patch's score is the mean of the reduced
map over it, missingness paper section 3 and appendix A.3). Patch rankings remove exactly
round(t x P) whole patches, the unit a token-dropping ViT removes, so t stays the share removed."""

import math

import torch
import torch.nn.functional as F

from roar.errors import RoarError, check_probability
from roar.estimators.reduce import reduce_maps
from roar.masking.ranking import rank_features
from roar.utils.patches import expand_patches

MODES = ("remove", "keep")


def top_count(fraction: float, num_features: int) -> int:
    """round(t x F), halves rounded up, the one rounding used everywhere."""
    return int(math.floor(fraction * num_features + 0.5))


def check_fractions(fractions) -> list:
    return [check_probability("fraction", t, "the share of features masked (ROAR's t)") for t in fractions]


def check_patch(patch, image_shape, reduce: str = "abs_sum") -> None:
    """A patch size that tiles the images, with a per-pixel reduction to average over it."""
    if patch is None:
        return
    h, w = image_shape[-2:]
    if int(patch) < 1 or h % int(patch) or w % int(patch):
        raise RoarError(f"patch_size={patch} does not tile {h}x{w} images; pick a divisor of the image side.")
    if reduce == "none":
        raise RoarError(
            "granularity=patch ranks patches by the mean of a per-pixel map; reduce=none keeps channels apart. "
            "Use reduce=abs_sum or reduce=sum."
        )


def check_granularity(fill, patch, model_patch) -> None:
    """A token-dropping fill removes whole tokens: it needs patch rankings (pixels would drop almost every
    token at any t). Patches of the model's own size make t the share of tokens dropped (missingness paper,
    section 3); other sizes (appendix C.5: 14, 28, 32, 56 at 224 for 16-pixel tokens) drop every token a
    removed patch overlaps, "conservatively" (appendix B), so a little more than t is removed."""
    if not fill.drops_tokens:
        return
    if model_patch is None:
        raise RoarError(
            f"fill={fill.name} drops the tokens of removed patches; the model has no tokens. Use a ViT "
            f"(model=vit_tiny) or a painting fill."
        )
    if patch is None:
        raise RoarError(
            f"fill={fill.name} drops whole {model_patch}x{model_patch} tokens, but the ranking is over pixels: "
            f"pass granularity=patch (patch_size=null takes the model's {model_patch})."
        )


def ranking_scores(maps: torch.Tensor, reduce: str, patch: int | None = None) -> torch.Tensor:
    """(B, F) scores of the features ranked: the ``reduce``-d (B, C, H, W) maps per pixel (or element),
    or their mean over each ``patch`` x ``patch`` patch (row-major patches) when ``patch`` is set."""
    reduced = reduce_maps(maps, reduce)
    if patch is None:
        return reduced.flatten(1)
    check_patch(patch, maps.shape, reduce)
    return F.avg_pool2d(reduced.float(), int(patch)).flatten(1)


def feature_ranks(scores: torch.Tensor, ids, maps_seed: int) -> torch.Tensor:
    """(B, F) rank of every feature, 0 = most important: one sort per image for every fraction."""
    order = rank_features(scores, ids, maps_seed)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return ranks


def removed_features(ranks: torch.Tensor, fraction: float, mode: str) -> torch.Tensor:
    """(B, F) boolean: the features masked at ``fraction`` in ``mode``."""
    k = top_count(fraction, ranks.shape[1])
    if mode == "remove":
        return ranks < k
    if mode == "keep":
        return ranks >= ranks.shape[1] - k
    raise RoarError(f"mode={mode!r}; valid modes: {', '.join(MODES)}.")


def removed_pixels(removed: torch.Tensor, image_shape, patch=None) -> torch.Tensor:
    """(B, 1 or C, H, W) boolean from (B, F) removed features: H x W features mask whole pixels (reduced
    maps), C x H x W single elements, (H/p) x (W/p) features (``patch`` = p) whole patches."""
    c, h, w = image_shape[-3:]
    b, f = removed.shape
    if patch is not None:
        p = int(patch)
        if f != (h // p) * (w // p):
            raise RoarError(
                f"ranks have {f} features per image; {h}x{w} images have {(h // p) * (w // p)} patches of {p}x{p}."
            )
        return expand_patches(removed.view(b, 1, h // p, w // p), p)
    if f not in (h * w, c * h * w):
        raise RoarError(
            f"ranks have {f} features per image; images of shape {(c, h, w)} have {h * w} pixels or {c * h * w} "
            f"elements."
        )
    return removed.view(b, 1 if f == h * w else c, h, w)


def mask_images(images, ranks, mode: str, fraction: float, fill, donors=None, patch=None, ids=None):  # noqa: PLR0913 (the one masking function: a batch, its ranks, the setting and its fill)
    """(masked images, removed mask) of a batch from its feature ranks (``feature_ranks``, one sort
    serving every fraction), the features expanded to pixels by ``removed_pixels``. ``fill``: a BoundFill;
    ``donors``: the ``random_image`` fill's other images; ``ids``: the samples' ids (fills with per-sample
    noise). roar-mask writes its output, roar-eval feeds it to the model, and the formats masked at load
    (roar.masking.at_load) make the same masks from rank buckets."""
    removed = removed_pixels(removed_features(ranks, fraction, mode), images.shape, patch)
    return fill.apply(images, removed, ids, donors), removed
