"""Backward selection (overinterpretation paper, Carter et al. 2021): rankings that remove pixels from the
full image one step at a time, keeping the model confident in the class it predicts on the clean image.

- ``bs``, exact BackSelect (section 3.1; SIS, Carter et al. 2019): at each step every remaining pixel's
  removal is evaluated (all candidates of all images in chunked forward passes) and the one whose
  removal leaves the highest confidence goes; p(p+1)/2 forward passes for p pixels.
- ``gbs``, Batched Gradient BackSelect (section S5): M is the per-pixel mask (1 = masked, all channels
  of a pixel together), x~ = (1 - M) x + M b with b the configured fill; one backward pass of the summed
  confidences gives dM, and the k unmasked pixels with the largest dM (whose masking raises, or least
  lowers, the confidence) are masked; every image masks k pixels per iteration, so a batch stays in
  lockstep until all are masked. ceil(p / k) + 1 forward(+backward) passes.

Confidence: the softmax probability of the class predicted on the clean image (section 3.3: backward
selection follows the original model's prediction, never the label). Ties (equal gradients, equal
confidences) go by a seeded per-(sample, pixel) priority, so an image's order does not depend on its
batch. The map is the step at which a pixel was removed (later = more important), the same for every
channel; the trace holds f_c before any removal and after every step, so the sufficient input subset
at a threshold tau is a lookup (``sis_mask``).
"""

import math

import torch

from roar.errors import RoarError
from roar.estimators.registry import ITERATIVE
from roar.utils.seeding import per_sample


# iterative estimators, which run the model on images painted with the fill and share no passes:
# fn(model, x, fill, ids, params) -> (maps (B, C, H, W), trace (B, T) or None); passes(params, pixels);
# tokens: with no fill image (fill=token_drop) it drops a ViT's tokens instead (roar.estimators.lime);
# sis: it returns a confidence trace, so roar-eval reads sufficient input subsets off it;
# distractors: it needs a pool of training images (``params["pool"]``, roar.estimators.learned_masks);
# family: the entry answers to a name pattern (``mask-tv<lambda_TV>``, the suite's ``iterative_of``); the
# trait lists the names registered as options (``estimator=mask-tv0.01``).
# Every call gets ``params["name"]`` (the estimator's name) and ``params["target"]`` (the class explained).
@torch.no_grad()
def predicted(model, x) -> torch.Tensor:
    return model(x).argmax(1)


def confidence(model, x, c) -> torch.Tensor:
    return torch.softmax(model(x), 1).gather(1, c[:, None])[:, 0]


def priorities(ids, pixels: int, seed: int, device) -> torch.Tensor:
    """(B, p) a seeded per-(sample, pixel) tie-break priority in [0, 1), independent of the batch."""
    return per_sample(seed, ids, "backselect", (pixels,)).to(device)


def gbs_k(params, pixels: int) -> int:
    k = params.get("sis_k")
    k = math.ceil(pixels / 256) if k is None else int(k)  # at most 256 iterations by default
    if k < 1:
        raise RoarError(f"attribute.params.sis_k={params.get('sis_k')}: gbs masks k >= 1 pixels per iteration.")
    return k


def check_bs(params, pixels: int) -> None:
    evals, limit = pixels * (pixels + 1) // 2, int(params.get("bs_max_evals", 100000))
    if evals > limit:
        raise RoarError(
            f"bs (exact BackSelect) on {pixels}-pixel images takes {evals:,} forward passes per image, above "
            f"attribute.params.bs_max_evals={limit:,}. Use gbs (batched gradient BackSelect, "
            f"{math.ceil(pixels / 256) + 1} passes per image by default), or raise bs_max_evals."
        )


def _steps_map(step, x):
    return step.view(x.shape[0], 1, *x.shape[2:]).to(x.dtype).expand_as(x).contiguous()


@ITERATIVE.register(
    "gbs", sis=True, passes=lambda params, pixels: math.ceil(pixels / gbs_k(params, pixels)) + 1, params={"sis_k": None}
)
def gradient_backselect(model, x, fill, ids, params):
    b, _, h, w = x.shape
    p, k = h * w, gbs_k(params, h * w)
    c = predicted(model, x)
    prio = priorities(ids, p, int(params.get("seed", 0)), x.device)
    masked = torch.zeros(b, p, dtype=torch.bool, device=x.device)
    step = torch.zeros(b, p, dtype=torch.long, device=x.device)
    trace = []
    for i in range(math.ceil(p / k)):
        m = masked.to(x.dtype).view(b, 1, h, w).requires_grad_(True)
        with torch.enable_grad():
            f = confidence(model, (1 - m) * x + m * fill, c)
            (grad,) = torch.autograd.grad(f.sum(), m)
        trace.append(f.detach())
        score = grad.view(b, p).masked_fill(masked, -math.inf)
        order = torch.argsort(prio, dim=1, descending=True)  # ties: higher priority first
        ranked = order.gather(1, torch.argsort(score.gather(1, order), dim=1, descending=True, stable=True))
        chosen = ranked[:, : min(k, p - i * k)]
        masked.scatter_(1, chosen, True)
        step.scatter_(1, chosen, i)
    with torch.no_grad():
        trace.append(confidence(model, fill.expand_as(x), c))
    return _steps_map(step, x), torch.stack(trace, 1)


@ITERATIVE.register(
    "bs", sis=True, passes=lambda params, pixels: pixels * (pixels + 1) // 2, params={"bs_max_evals": 100000}
)
@torch.no_grad()
def exact_backselect(model, x, fill, ids, params):
    b, ch, h, w = x.shape
    p = h * w
    check_bs(params, p)
    chunk = int(params.get("max_rows", 64)) * 16
    c = predicted(model, x)
    prio = priorities(ids, p, int(params.get("seed", 0)), x.device)
    masked = torch.zeros(b, p, dtype=torch.bool, device=x.device)
    step = torch.zeros(b, p, dtype=torch.long, device=x.device)
    trace = [confidence(model, x, c)]
    fill = fill.expand_as(x)
    for i in range(p):
        remaining = [torch.nonzero(~masked[j])[:, 0] for j in range(b)]
        rows = [(j, q) for j in range(b) for q in remaining[j].tolist()]
        scores = torch.empty(len(rows), device=x.device)
        for lo in range(0, len(rows), chunk):
            part = rows[lo : lo + chunk]
            imgs = torch.tensor([j for j, _ in part], device=x.device)
            cand = masked[imgs].clone()
            cand[torch.arange(len(part), device=x.device), torch.tensor([q for _, q in part], device=x.device)] = True
            m = cand.view(-1, 1, h, w).to(x.dtype)
            scores[lo : lo + len(part)] = confidence(model, (1 - m) * x[imgs] + m * fill[imgs], c[imgs])
        at = 0
        for j in range(b):
            n = len(remaining[j])
            s, cands = scores[at : at + n], remaining[j]
            best = torch.nonzero(s == s.max())[:, 0]  # ties: the highest priority
            q = cands[best[prio[j, cands[best]].argmax()]]
            masked[j, q], step[j, q], at = True, i, at + n
        m = masked.view(b, 1, h, w).to(x.dtype)
        trace.append(confidence(model, (1 - m) * x + m * fill, c))
    return _steps_map(step, x), torch.stack(trace, 1)


def sis_mask(steps: torch.Tensor, trace: torch.Tensor, tau: float):
    """The sufficient input subset at threshold ``tau`` of each image, from its backward-selection steps
    (B, H, W) and trace (B, T): the pixels still present after the last step whose confidence was >= tau
    (the smallest suffix of the removal order that keeps f_c >= tau). (B, H, W) bool, and (B,) whether
    the image has one: SIS are defined for images classified with f_c(x) >= tau (section S5)."""
    if not 0 < float(tau) < 1:
        raise RoarError(f"SIS threshold tau={tau} must lie in (0, 1).")
    t = trace.shape[1]
    ok = trace >= float(tau)
    last = torch.where(ok, torch.arange(t, device=trace.device), -1).amax(1)  # the last confident step
    return steps >= last.clamp(min=0).view(-1, 1, 1), ok[:, 0]
