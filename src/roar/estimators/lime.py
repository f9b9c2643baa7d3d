"""LIME over square patches, batched (Ribeiro et al. 2016, as the missingness paper uses it: section 4,
appendix A, and its code's ``patch_ablation/lime.py``).

Segments are the p x p patches of the image. N binary vectors z in {0, 1}^P (each entry Bernoulli(0.5))
are drawn once from the maps seed and shared by every image; for each z the off patches are painted
with the configured fill (CNNs), or their tokens dropped (a ViT, when no fill image is given), and the
response is the softmax probability of the class predicted on the clean image (the reference code's
``ch.softmax(out, 1)[..., orig_pred]``). Weights pi = sqrt(exp(-d^2 / 0.25^2)), d the cosine distance
between z and the all-ones vector (sklearn's ``pairwise_distances(..., metric="cosine")``: 1 for z = 0).
A ridge regression with alpha = 1, an unpenalized intercept and sample weights pi gives the scores.

Because Z and pi are shared, the coefficients of all B images are one linear solve,
beta = (Z~^T W Z~ + alpha I')^-1 Z~^T W Y with Z~ = [Z, 1], W = diag(pi), I' the identity with 0 for
the intercept and Y the N x B responses: the minimizer of sum_i pi_i (y_i - z_i beta - b)^2 +
alpha |beta|^2, which is what scikit-learn's ``Ridge(alpha=1).fit(Z, y, sample_weight=pi)`` solves per
image (checked in the tests and ``benchmarks/bench_lime.py``). The map paints every patch with its
coefficient (signed: rank with ``lime.sum`` at ``granularity=patch``).
"""

import math

import torch

from roar.errors import RoarError
from roar.estimators.backselect import predicted
from roar.estimators.registry import ITERATIVE
from roar.utils.patches import expand_patches
from roar.utils.seeding import per_sample


def lime_patch(params, image_size: int, model=None) -> int:
    """The segment side: ``lime_patch``, else a ViT's patch size, else 4 (2 below 16 pixels: digits)."""
    p = params.get("lime_patch")
    if p is None:
        p = getattr(getattr(model, "net", None), "patch_size", None) or (4 if image_size >= 16 else 2)
    p = int(p)
    if p < 1 or image_size % p:
        raise RoarError(f"attribute.params.lime_patch={p} must divide the image size {image_size}.")
    return p


def to_pixels(patches: torch.Tensor, side: int, p: int) -> torch.Tensor:
    """(N, P) values per patch of a side x side grid -> (N, 1, side p, side p) per pixel."""
    return expand_patches(patches.view(len(patches), 1, side, -1), p)


def lime_design(params, segments: int, device=None):
    """(Z (N, P) float64 in {0, 1}, pi (N,)): the perturbations every image shares and their weights."""
    n = int(params.get("lime_samples", 1000))
    if n < 2:
        raise RoarError(f"attribute.params.lime_samples={n}: LIME needs at least 2 perturbations (paper: 1000).")
    z = (per_sample(int(params.get("seed", 0)), ["lime-design"], "lime", (n, segments))[0] < 0.5).double()
    on = z.sum(1)
    cosine = torch.where(on > 0, on / (on.sqrt() * math.sqrt(segments)), torch.zeros_like(on))
    width = float(params.get("lime_kernel", 0.25))
    pi = torch.exp(-((1 - cosine) ** 2) / width**2).sqrt()
    return z.to(device), pi.to(device)


def lime_solve(z, pi, y, alpha: float = 1.0):
    """(coefficients (P, B), intercepts (B,)) of the weighted ridge fits of every column of ``y`` (N, B)
    on ``z`` (N, P) with weights ``pi`` (N,), the intercept unpenalized: one (P+1) x (P+1) solve."""
    zt = torch.cat([z, torch.ones_like(z[:, :1])], 1).double()
    w = pi.double()[:, None]
    penalty = torch.eye(zt.shape[1], dtype=torch.float64, device=z.device) * float(alpha)
    penalty[-1, -1] = 0
    beta = torch.linalg.solve(zt.T @ (w * zt) + penalty, zt.T @ (w * y.double()))
    return beta[:-1], beta[-1]


@ITERATIVE.register(
    "lime",
    passes=lambda params, pixels: int(params.get("lime_samples", 1000)) + 1,
    tokens=True,
    params={"lime_samples": 1000, "lime_patch": None, "lime_kernel": 0.25, "lime_alpha": 1.0},
)
@torch.no_grad()
def lime(model, x, fill, ids, params):
    """(maps (B, C, H, W), None). ``fill`` None: the model drops the off patches' tokens (``keep``)."""
    b, _, h, w = x.shape
    p = lime_patch(params, h, model)
    if fill is None and not getattr(model, "accepts_keep", False):
        raise RoarError("lime without a fill image drops tokens: that needs a ViT (model=vit_tiny or vit_small).")
    if fill is None and p != model.net.patch_size:
        raise RoarError(
            f"lime drops tokens of {model.net.patch_size}x{model.net.patch_size} patches: set lime_patch to that."
        )
    side = h // p
    z, pi = lime_design(params, side * (w // p), x.device)
    c = predicted(model, x)
    rows = max(1, int(params.get("max_rows", 64)) * 16 // b)
    y = []
    for lo in range(0, len(z), rows):
        on = z[lo : lo + rows].to(torch.bool)  # (n, P)
        n = len(on)
        if fill is None:
            batch, keep = x.repeat_interleave(n, 0), on.repeat(b, 1)
        else:
            batch = torch.where(to_pixels(on, side, p)[None], x[:, None], fill[:, None]).flatten(0, 1)
            keep = None
        out = model(batch) if keep is None else model(batch, keep)
        y.append(torch.softmax(out.float(), 1).view(b, n, -1).gather(2, c.view(b, 1, 1).expand(b, n, 1))[..., 0])
    coef, _ = lime_solve(z, pi, torch.cat(y, 1).T, float(params.get("lime_alpha", 1.0)))
    return to_pixels(coef.T.to(x.dtype), side, p).expand_as(x).contiguous(), None
