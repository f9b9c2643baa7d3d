"""Two intrinsic metrics of the masking-explanations paper's Tables 3, 5, 7 and 9, beside its completeness
and soundness (roar.evaluate.soundness): the Saliency Metric of Dabkowski & Gal (2017) and the blurred
canvas of Petsiuk et al.'s insertion game (RISE, 2018).

- The Saliency Metric (the paper's related work: "thresholds saliency values above some alpha chosen on a
  holdout set, finds the smallest bounding box containing these pixels, upsamples and measures ...
  s(a, p) = log(max(a, 0.05)) - log(p) where a is the area of the bounding box and p is the class
  probability of the upsampled image"; appendix D: "we tune the threshold delta on a holdout set of size
  100 with delta between 0 and 5 in increments of 0.2"). Neither paper fixes the map's scale the threshold
  applies to; roar thresholds each map's z-score (its values minus their mean, over their standard
  deviation), so delta in [0, 5] means "delta standard deviations above the mean" for every estimator.
  A map with no value above delta keeps its largest one (a one-feature box). The box is cropped and
  resized to the image's size (bilinear), a is its share of the image, p the probability of label a.
  Lower is better. The first ``holdout`` images choose delta; the metric is the mean over the others.
- The blur canvas: RISE's ``evaluation.py`` (``gkern(klen=11, nsig=5)``: scipy's gaussian_filter of a
  delta on an 11 x 11 grid, applied per channel by a convolution with zero padding), in pixels whatever
  the image's size, as the reference code does.
"""

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

DELTAS = [round(0.2 * k, 1) for k in range(26)]  # 0, 0.2, ..., 5 (appendix D)
SMALLEST_AREA = 0.05
RISE_KERNEL, RISE_SIGMA = 11, 5.0


def rise_blur(images: torch.Tensor) -> torch.Tensor:
    """RISE's blurred substrate of ``images`` (B, C, H, W)."""
    delta = np.zeros((RISE_KERNEL, RISE_KERNEL))
    delta[RISE_KERNEL // 2, RISE_KERNEL // 2] = 1
    kernel = torch.tensor(gaussian_filter(delta, RISE_SIGMA), dtype=images.dtype, device=images.device)
    c = images.shape[1]
    return F.conv2d(images, kernel.expand(c, 1, -1, -1), padding=RISE_KERNEL // 2, groups=c)


def boxes(scores: torch.Tensor, delta: float) -> torch.Tensor:
    """(B, 4) rows y0, y1, x0, x1 (inclusive) of the tightest box around the features of ``scores`` (B, h, w)
    whose z-score exceeds ``delta``; the largest feature alone where none does."""
    flat = scores.flatten(1).double()
    z = (flat - flat.mean(1, keepdim=True)) / flat.std(1, keepdim=True).clamp_min(1e-12)
    chosen = z > delta
    none = ~chosen.any(1)
    chosen[none, flat[none].argmax(1)] = True
    chosen = chosen.view_as(scores)
    b, h, w = scores.shape
    rows, cols = chosen.any(2), chosen.any(1)
    ar_h, ar_w = torch.arange(h, device=scores.device), torch.arange(w, device=scores.device)
    y0 = torch.where(rows, ar_h, h).min(1).values
    y1 = torch.where(rows, ar_h, -1).max(1).values
    x0 = torch.where(cols, ar_w, w).min(1).values
    x1 = torch.where(cols, ar_w, -1).max(1).values
    return torch.stack([y0, y1, x0, x1], 1)


@torch.no_grad()
def saliency_metric(model, images, scores, labels, max_rows: int) -> torch.Tensor:
    """(B, len(DELTAS)) s(a, p) of every image at every threshold. ``scores``: (B, h, w) the map's feature
    scores (pixels, or patches: a box of patches is scaled to pixels)."""
    b, _, height, width = images.shape
    scale_y, scale_x = height // scores.shape[1], width // scores.shape[2]
    crops, areas = [], []
    for delta in DELTAS:
        for image, (y0, y1, x0, x1) in zip(images, boxes(scores, delta).tolist()):
            top, bottom, left, right = y0 * scale_y, (y1 + 1) * scale_y, x0 * scale_x, (x1 + 1) * scale_x
            crop = image[None, :, top:bottom, left:right]
            crops.append(F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False))
            areas.append((bottom - top) * (right - left) / (height * width))
    probs = []
    for lo in range(0, len(crops), max(1, max_rows)):
        logits = model(torch.cat(crops[lo : lo + max_rows])).float()
        probs.append(torch.softmax(logits, 1))
    p = torch.cat(probs).view(len(DELTAS), b, -1).gather(2, labels.view(1, b, 1).expand(len(DELTAS), b, 1))[..., 0]
    area = torch.tensor(areas, dtype=torch.float64).view(len(DELTAS), b).clamp_min(SMALLEST_AREA)
    return (area.log() - p.double().cpu().clamp_min(1e-12).log()).T


def summarize_sm(per_image: list, holdout: int) -> dict | None:
    """The threshold the first ``holdout`` images choose (lowest mean), and the mean metric of the others
    at it; with no image left over, the holdout's own mean, said so."""
    if not per_image:
        return None
    values = np.array(per_image, dtype=float)
    tune, report = values[:holdout], values[holdout:]
    best = int(np.argmin(tune.mean(0)))
    scored = report if len(report) else tune
    return {
        "delta": DELTAS[best],
        "score": float(scored[:, best].mean()),
        "holdout": len(tune),
        "images": len(scored),
        "tuned_on_scored_images": not len(report),
        "per_delta": tune.mean(0).round(6).tolist(),
    }
