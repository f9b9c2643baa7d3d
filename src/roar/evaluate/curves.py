"""Perturbation curves without retraining: the model's outputs as ranked features are masked.

- MIF / LIF (FPA section 3): mask the most (MIF) or the least (LIF) important features first, in
  steps of ``step`` up to 100%, and record the target logit divided by the unmasked one. MIF at t
  masks exactly what ``remove`` masks at t; LIF at t what ``keep`` masks at t (the bottom-ranked t),
  so the curves use the one masking function of roar-mask (``roar.masking.mask_images``). For signed
  rankings (``reduce=sum``) "most important" is the highest positive score, LIF starts at the most
  negative (counter-evidence), as in FPA.
- The deletion curve (ROAR Fig. 3, "no retraining"): test accuracy of the unchanged model on images
  masked at the ROAR grid's fractions.
- Where the predictions go (missingness paper, section 3, Figs. 3-5): at every MIF/LIF step, the share
  of predictions unchanged from the clean image and the class entropy of the predicted-class histogram.

All masked copies of a chunk of images (every mode x every fraction) go through the model together.
"""

from dataclasses import dataclass

import numpy as np
import torch

from roar.errors import RoarError
from roar.evaluate.stats import fidelity_area, normal_ci_half_width
from roar.masking import mask_images
from roar.masking.patches import patch_keep

CURVE_MODES = {"mif": "remove", "lif": "keep"}


@dataclass(frozen=True)
class MaskGrid:
    """Where one pass masks every image: each of ``modes`` x each of ``fractions``, the features being
    patches of side ``patch`` (None: pixels); ``max_rows`` masked images go through the model at a time."""

    modes: list
    fractions: list
    patch: int | None = None
    max_rows: int = 512


def step_fractions(step: float) -> list:
    """0, step, 2 step, ..., 1 (1 always included)."""
    n = int(round(1.0 / float(step))) if 0 < float(step) <= 1 else 0
    if n < 1 or abs(n * float(step) - 1.0) > 1e-9:
        raise RoarError(f"eval.step={step}: give a step that divides 1 (0.05 for FPA's 5% steps, 0.1, 0.25, ...).")
    return [k / n for k in range(n + 1)]


@torch.no_grad()
def masked_logits(model, images, ranks, grid, fill, donors=None, ids=None) -> torch.Tensor:  # noqa: PLR0913 (a batch (images, ids, donors), its ranks, the grid and the fill)
    """(B, len(grid.modes), len(grid.fractions), classes) logits of every masked copy of every image.

    ``ranks``: (B, F) from ``feature_ranks``, over patches of side ``grid.patch`` when set; ``grid``: a
    MaskGrid (the modes and fractions, the patch size, ``max_rows`` masked images per forward pass);
    ``fill``: a BoundFill, ``donors`` and ``ids`` the batch's (fills that need them). A token-dropping
    ViT with ``fill=token_drop`` drops the tokens of the removed patches instead of seeing painted
    pixels (missingness paper, appendix B).
    """
    modes, fractions, patch, max_rows = grid.modes, grid.fractions, grid.patch, grid.max_rows
    settings = [(m, t) for m in modes for t in fractions]
    per_image = max(1, int(max_rows) // len(settings))
    out = []
    for a in range(0, images.shape[0], per_image):
        x, r = images[a : a + per_image], ranks[a : a + per_image]
        d = donors[a : a + per_image] if donors is not None else None
        chunk_ids = None if ids is None else list(ids)[a : a + per_image]
        masked, removed = zip(*(mask_images(x, r, m, t, fill, d, patch, chunk_ids) for m, t in settings))
        batch = torch.stack(masked, 1).flatten(0, 1)  # image-major: all settings of an image together
        keep = None
        if fill.drops_tokens:
            keep = patch_keep(torch.stack(removed, 1).flatten(0, 1), model.net.patch_size)
        logits = torch.cat(
            [
                model(batch[k : k + max_rows], None if keep is None else keep[k : k + max_rows])
                for k in range(0, len(batch), max_rows)
            ]
        )
        out.append(logits.view(x.shape[0], len(modes), len(fractions), -1))
    return torch.cat(out)


def normalized_target_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, M, S) target logit at every step divided by the unmasked one (step 0 must be t = 0)."""
    picked = logits.gather(-1, target.view(-1, 1, 1, 1).expand(*logits.shape[:-1], 1)).squeeze(-1)
    return picked / picked[:, :, :1]


def summarize_curves(fractions, normalized: np.ndarray) -> dict:
    """Mean curves with 95% intervals over images, and the fidelity A per image and on average.

    ``normalized``: (N, 2, S) for (MIF, LIF) over N images.
    """
    areas = fidelity_area(fractions, normalized[:, 0], normalized[:, 1])
    curves = {}
    for k, name in enumerate(CURVE_MODES):
        values = normalized[:, k]
        curves[name] = {
            "mean": values.mean(0).tolist(),
            "ci": [normal_ci_half_width(values[:, s]) for s in range(values.shape[1])],
        }
    return {
        "fractions": list(fractions),
        **curves,
        "fidelity": {
            "mean": float(areas.mean()),
            "ci": normal_ci_half_width(areas),
            "std": float(areas.std(ddof=1)) if len(areas) > 1 else 0.0,
            "n": int(len(areas)),
        },
        "fidelity_per_image": [round(float(a), 4) for a in areas],
    }


def prediction_shift(predictions: np.ndarray, num_classes: int) -> dict:
    """Missingness paper section 3: per curve (MIF, LIF) and step, the share of predictions unchanged
    from the clean image (Figs. 4, 5: "fraction of predictions unchanged"), the class entropy
    -sum q log q of the predicted-class histogram q in nats and divided by log C (Fig. 3: a bias toward
    a few classes lowers it), and the histogram itself. ``predictions``: (N, 2, S) predicted classes,
    step 0 the clean image."""
    out = {}
    for k, name in enumerate(CURVE_MODES):
        p = predictions[:, k]
        hist = np.stack([np.bincount(p[:, s], minlength=num_classes) for s in range(p.shape[1])])
        q = hist / hist.sum(1, keepdims=True)
        entropy = 0.0 - np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0).sum(1)  # 0.0 -: no -0.0
        out[name] = {
            "unchanged": (p == p[:, :1]).mean(0).tolist(),
            "entropy": entropy.tolist(),
            "entropy_norm": (entropy / np.log(num_classes)).tolist(),
            "histogram": hist.tolist(),
        }
    return out
