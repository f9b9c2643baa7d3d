"""Sufficient input subsets (SIS) read from backward-selection rankings (``gbs``, ``bs``), for roar-eval.

Overinterpretation paper (Carter et al. 2021): an SIS at threshold tau is the smallest suffix of the
backward-selection order that keeps the confidence of the class predicted on the clean image >= tau,
defined for images classified with that confidence (sections 3.1, S5; ``sis_mask``). Per ranking:

- SIS size at every tau of ``eval.sis.taus`` (mean, median, % of the image; section 4.1, Fig. 3);
- correctly vs wrongly classified images (section 4.4, Fig. 4): the percentage increase in mean SIS
  size of the correct over the misclassified images, with the 95% interval of the difference in means
  (Welch) divided by the misclassified mean;
- the confidence of the clean image and of its top-``eval.sis.subset`` pixel subset (section 4.2,
  Table 1's "confidence drop" of the 5% subsets), from the deletion logits roar-eval computes anyway;
- at ``eval.sis.tau_map``: the heatmap of where SIS pixels fall (share of images whose SIS holds each
  pixel), the share of SIS pixels on every ground-truth region the data has (``object_mask``,
  ``shortcut_mask`` of ``shapes``: shortcut detection) next to the region's share of the image and the
  share of the region's pixels the SIS holds (mean over images with an SIS and the region), and a
  re-evaluation of every SIS (the model on the SIS alone, the rest painted with the fill, must reach
  tau: the share that does is ``verified``).
"""

import math

import numpy as np
import torch

from roar.errors import RoarError, as_list
from roar.estimators.backselect import sis_mask
from roar.evaluate.stats import normal_ci_half_width, welch_diff_ci

REGIONS = ("object_mask", "shortcut_mask")  # ground truth a dataset may carry per sample
TRACES = 32  # the confidence traces kept per ranking (overinterpretation Fig. S10: 32 images)


def check_sis(sis) -> dict:
    """eval.sis as plain values, every one checked."""
    taus = [float(t) for t in as_list(sis.taus, "eval.sis.taus")]
    for t in [*taus, float(sis.tau_map)]:
        if not 0 < t < 1:
            raise RoarError(f"eval.sis: SIS threshold tau={t} must lie in (0, 1).")
    subset = float(sis.subset)
    if not 0 < subset < 1:
        raise RoarError(f"eval.sis.subset={subset}: the kept share of pixels must lie in (0, 1) (paper: 0.05).")
    return {"taus": taus, "tau_map": float(sis.tau_map), "subset": subset}


class SisStats:
    """Accumulates one ranking's SIS statistics batch by batch; ``result()`` gives the plain dict."""

    def __init__(self, taus, tau_map: float, subset: float):
        self.taus, self.tau_map, self.subset = list(taus), float(tau_map), float(subset)
        self.sizes, self.correct, self.full, self.kept = [], [], [], []
        self.heat, self.pixels, self.with_sis, self.verified, self.checked = None, None, 0, 0, 0
        self.regions, self.traces = {}, []

    def add(self, steps, trace, labels, probs_full, probs_subset, regions=None, refill=None):  # noqa: PLR0913 (one batch's measurements)
        """One batch. ``steps`` (B, H, W) removal steps, ``trace`` (B, T) confidences, ``probs_full`` /
        ``probs_subset`` (B, classes) softmax on the clean image and on its top-``subset`` pixels;
        ``regions`` {name: (B, H, W) bool}; ``refill(rows, removed)``: the model's softmax on images
        ``rows`` with ``removed`` (n, 1, H, W) painted by the fill (None: no re-evaluation)."""
        c = probs_full.argmax(1)
        conf = probs_full.gather(1, c[:, None])[:, 0]
        if not torch.allclose(trace[:, 0], conf, atol=1e-3):
            raise RoarError(
                "The backward-selection traces do not start at this model's confidence on the clean images: the maps "
                "were made by another model or fill. Rerun roar-attribute."
            )
        self.full.append(conf.cpu().numpy())
        self.traces += trace[: TRACES - len(self.traces)].cpu().numpy().round(4).tolist()  # the first TRACES images
        self.kept.append(probs_subset.gather(1, c[:, None])[:, 0].cpu().numpy())
        self.correct.append((c == labels).cpu().numpy())
        self.pixels = steps[0].numel()
        sizes = np.full((len(c), len(self.taus)), np.nan)
        for k, tau in enumerate(self.taus):
            keep, has = sis_mask(steps, trace, tau)
            sizes[has.cpu().numpy(), k] = keep.flatten(1).sum(1)[has].cpu().numpy()
        self.sizes.append(sizes)
        keep, has = sis_mask(steps, trace, self.tau_map)
        self.heat = (0 if self.heat is None else self.heat) + keep[has].float().sum(0).cpu().numpy()
        self.with_sis += int(has.sum())
        for name, region in (regions or {}).items():
            region = region.to(keep.device).bool()
            on = has & region.flatten(1).any(1) & keep.flatten(1).any(1)
            sis_share = (keep & region).flatten(1).sum(1) / keep.flatten(1).sum(1).clamp(min=1)
            area = region.flatten(1).float().mean(1)
            held = (keep & region).flatten(1).sum(1) / region.flatten(1).sum(1).clamp(min=1)
            acc = self.regions.setdefault(name, ([], [], []))
            for part, values in zip(acc, (sis_share, area, held)):
                part.append(values[on].cpu().numpy())
        if refill is not None and has.any():
            rows = torch.nonzero(has)[:, 0]
            again = refill(rows, ~keep[rows][:, None]).gather(1, c[rows][:, None])[:, 0]
            self.verified += int((again >= self.tau_map - 1e-4).sum())
            self.checked += int(has.sum())

    def size_rows(self, sizes, correct) -> tuple:
        """(size rows, correct-vs-misclassified rows), one of each per tau (paper sections 4.1, 4.2)."""
        size_rows, versus = [], []
        for k, tau in enumerate(self.taus):
            s = sizes[:, k]
            ok = ~np.isnan(s)
            mean = float(s[ok].mean()) if ok.any() else math.nan
            median = float(np.median(s[ok])) if ok.any() else math.nan
            size_rows.append(
                {"tau": tau, "n": int(ok.sum()), "mean": mean, "median": median, "percent": 100 * mean / self.pixels}
            )
            right, wrong = s[ok & correct], s[ok & ~correct]
            diff = welch_diff_ci(right, wrong)
            scale = 100 / wrong.mean() if len(wrong) and wrong.mean() > 0 else math.nan
            versus.append(
                {
                    "tau": tau,
                    "n_correct": int(len(right)),
                    "n_wrong": int(len(wrong)),
                    "mean_correct": float(right.mean()) if len(right) else math.nan,
                    "mean_wrong": float(wrong.mean()) if len(wrong) else math.nan,
                    "increase_pct": diff["diff"] * scale,
                    "ci_low": diff["ci_low"] * scale,
                    "ci_high": diff["ci_high"] * scale,
                }
            )
        return size_rows, versus

    def region_rows(self) -> dict:
        """Per ground-truth region: the SIS's share on it, its share of the image, its pixels held."""
        regions = {}
        for name, parts in self.regions.items():
            share, area, held = (np.concatenate(p) for p in parts)
            if not len(share):  # no image has this region (shapes without the marker)
                continue
            regions[name.removesuffix("_mask")] = {
                "n": int(len(share)),
                "sis_share": float(share.mean()),
                "area_share": float(area.mean()),
                "held": float(held.mean()),
            }
        return regions

    def result(self) -> dict:
        correct = np.concatenate(self.correct)
        full, kept = np.concatenate(self.full), np.concatenate(self.kept)
        size_rows, versus = self.size_rows(np.concatenate(self.sizes), correct)
        drop = full - kept
        return {
            "taus": self.taus,
            "tau_map": self.tau_map,
            "subset": self.subset,
            "pixels": self.pixels,
            "images": int(len(full)),
            "accuracy": float(correct.mean()),
            "size": size_rows,
            "correct_vs_wrong": versus,
            "confidence": {
                "full": float(full.mean()),
                "subset": float(kept.mean()),
                "drop": float(drop.mean()),
                "drop_ci": normal_ci_half_width(drop),
            },
            "with_sis": self.with_sis,
            "heatmap": (self.heat / max(self.with_sis, 1)).round(4).tolist(),
            "regions": self.region_rows(),
            "verified": self.verified / self.checked if self.checked else None,
            "traces": self.traces,  # confidence before any removal and after every step (Fig. S10)
        }
