"""Learned masks (masking-explanations paper, appendix A, Eqs. 5-6): ``mask-tv<lambda_TV>``.

For image x and label a, W in R^{(h/s) x (w/s)}, M = sigma(W) upsampled bilinearly by s
(``mask_scale``; s = 1: no upsampling), and the loss

    L(M) = mean over D distractors x~ of -log f(M * x + (1 - M) * x~, a) + lambda_TV TV(M) + lambda_1 |M|_1

minimized by Adam (lr 0.05) for 2000 steps with D = 10 distractors drawn afresh every step (appendix A,
"sampling 10 distractor images at every step"). Choices the appendix leaves open, stated here and in the
docs/methods.md: TV is anisotropic, sum |M[i+1, j] - M[i, j]| + |M[i, j+1] - M[i, j]|; TV and L1 are sums over the
pixels (``mask_penalty=sum``, the default) because the paper scales lambda_1 with the inverse pixel count
(0.001 at 32x32 on CIFAR, D.1; 2e-5 at 224x224 on ImageNet, D.3: lambda_1 h w = 1.0 both times), which only
a summed norm needs; ``mask_penalty=mean`` divides both by h w instead; W starts at 0 (M = 0.5);
f is the softmax probability; the distractors are drawn from a pool of ``mask_pool`` training images
(chosen per maps seed by the attribution stage), per (maps seed, sample id, step), so a mask does not
depend on its batch. a is the class the maps explain (``attribute.target``: the prediction, the label,
or ``second``, the runner-up a' of soundness). Every image and all its distractors run in one forward
pass per step; Adam is elementwise, so each image's mask is what it would be alone.

The map is M (larger = kept = more important), the same for every channel: a ranking like any other.
"""

import math

import torch
import torch.nn.functional as F

from roar.errors import RoarError
from roar.estimators.registry import ITERATIVE, PAPER_NAMES, mask_tv
from roar.utils.seeding import per_sample

PENALTIES = ("sum", "mean")


def total_variation(m: torch.Tensor) -> torch.Tensor:
    """(B,) anisotropic TV of (B, 1, H, W) masks: sum |M[i+1, j] - M[i, j]| + |M[i, j+1] - M[i, j]|."""
    return (m[..., 1:, :] - m[..., :-1, :]).abs().flatten(1).sum(1) + (m[..., 1:] - m[..., :-1]).abs().flatten(1).sum(1)


def mask_settings(params, height: int, width: int) -> dict:
    """The optimizer's settings from the estimator parameters, checked."""
    s = {
        "l1": float(params.get("mask_l1", 0.001)),
        "scale": int(params.get("mask_scale", 1)),
        "steps": int(params.get("mask_steps", 2000)),
        "distractors": int(params.get("mask_distractors", 10)),
        "lr": float(params.get("mask_lr", 0.05)),
        "penalty": str(params.get("mask_penalty", "sum")),
    }
    if s["penalty"] not in PENALTIES:
        raise RoarError(
            f"attribute.params.mask_penalty={s['penalty']!r}; valid: sum (TV and L1 summed over pixels), mean."
        )
    if s["scale"] < 1 or height % s["scale"] or width % s["scale"]:
        raise RoarError(f"attribute.params.mask_scale={s['scale']} must divide the image size {height}x{width}.")
    if s["steps"] < 1 or s["distractors"] < 1:
        raise RoarError("attribute.params.mask_steps and mask_distractors must be at least 1 (paper: 2000 and 10).")
    if s["l1"] < 0:
        raise RoarError(f"attribute.params.mask_l1={s['l1']} must be >= 0 (paper: 0.001 on CIFAR-10).")
    return s


def upsample(w: torch.Tensor, size) -> torch.Tensor:
    """M^{x s}: sigma(W) bilinearly upsampled to the image size (identity at s = 1)."""
    m = torch.sigmoid(w)
    return (
        m if tuple(m.shape[-2:]) == tuple(size) else F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    )


def learn_masks(model, x, labels, pool, ids, params, tv: float, trace=None):  # noqa: PLR0913 (the optimisation's inputs and its settings)
    """(B, 1, H, W) soft masks M^{x s} in [0, 1] for images ``x`` and ``labels``; ``pool`` (N, C, H, W)
    the distractor images. ``trace``: a list that gets each step's mean loss (the tests read it)."""
    b, c, h, w = x.shape
    s = mask_settings(params, h, w)
    if pool is None or len(pool) < 1:
        raise RoarError("mask-tv* superimposes the image on training images: pass a distractor pool.")
    pool = pool.to(x.device, x.dtype)
    picks = per_sample(int(params.get("seed", 0)), ids, "mask-distractors", (s["steps"], s["distractors"]))
    picks = (picks * len(pool)).long().clamp(max=len(pool) - 1).to(x.device)  # (B, steps, D)
    weights = torch.zeros(b, 1, h // s["scale"], w // s["scale"], device=x.device, requires_grad=True)
    optim = torch.optim.Adam([weights], lr=s["lr"])
    target = labels.to(x.device).repeat_interleave(s["distractors"])
    for step in range(s["steps"]):
        with torch.enable_grad():
            m = upsample(weights, (h, w))
            other = pool[picks[:, step].flatten()].view(b, s["distractors"], c, h, w)
            mixed = (m[:, None] * x[:, None] + (1 - m[:, None]) * other).flatten(0, 1)
            nll = F.cross_entropy(model(mixed).float(), target, reduction="none").view(b, -1).mean(1)
            per = 1.0 if s["penalty"] == "sum" else 1.0 / (h * w)
            loss = nll + per * (tv * total_variation(m) + s["l1"] * m.flatten(1).sum(1))
            # images are independent: the sum's gradient is each image's own (the model's weights get none)
            (weights.grad,) = torch.autograd.grad(loss.sum(), weights)
        optim.step()
        if trace is not None:
            trace.append(float(loss.detach().mean()))
    with torch.no_grad():
        return upsample(weights, (h, w)).detach()


def mask_passes(params, pixels: int) -> int:
    return int(params.get("mask_steps", 2000)) * int(params.get("mask_distractors", 10))


@ITERATIVE.register(
    "mask",
    passes=mask_passes,
    distractors=True,
    family=PAPER_NAMES,
    params={
        "mask_l1": 0.001,
        "mask_scale": 1,
        "mask_steps": 2000,
        "mask_distractors": 10,
        "mask_lr": 0.05,
        "mask_pool": 1024,
        "mask_penalty": "sum",
    },
)
def learned_mask(model, x, fill, ids, params):
    """(maps (B, C, H, W), None): the learned mask of ``params['name']`` (``mask-tv0.01``) for
    ``params['target']``, repeated over channels. ``fill`` is unused: distractors replace the fill."""
    tv = mask_tv(params["name"])
    if tv is None or not math.isfinite(tv):
        raise RoarError(f"{params['name']!r}: write mask-tv<lambda_TV>, e.g. mask-tv0.01.")
    m = learn_masks(model, x, params["target"], params.get("pool"), ids, params, tv)
    return m.expand_as(x).contiguous(), None
