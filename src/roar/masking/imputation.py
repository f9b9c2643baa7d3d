"""ROAD's noisy linear imputation (Rong et al., 2022, section 4.2; reference code
``road/imputations.py``, ``NoisyLinearImputer``, and Quantus 0.6's ``noisy_linear_imputation``), solved
for a whole batch at once on its device.

Every masked pixel takes the weighted mean of its 8 neighbours inside the image (1/6 for the four
side neighbours, 1/12 for the four diagonal ones; the weights of neighbours outside the image are
dropped from the mean), known neighbours contributing their values. Per image and channel that is
the sparse system  S_i x_i - sum_{unknown j ~ i} w_ij x_j = sum_{known k ~ i} w_ik v_k  over the
unknown pixels, with S_i the summed weight of i's neighbours inside the image: the reference code's
matrix, negated. It is symmetric and, when a region touches a known pixel, positive definite. The
reference builds it per image and factorizes it (scipy's sparse LU); roar solves every (image, channel)
of the batch in lockstep by conjugate gradients preconditioned with a geometric multigrid V-cycle
(roar.masking.multigrid): 5-20 iterations whatever the holes' size (Jacobi's preconditioner needed 15 on
scattered pixels and over 300 on the blobs a smooth map removes). The iterations run in float32; the
answer is accumulated in float64 and its residual recomputed in float64 before it is accepted
(iterative refinement), so float32's rounding does not limit the accuracy on large holes. A channel stops
when the V-cycle's estimate of its remaining error, the preconditioned residual, is below ``fill.tol``
at every pixel (measured against the reference's direct solve: the largest difference stays within a
few times ``fill.tol``; benchmarks/bench_linear.py). The start is the mean of the known pixels. Then
N(0, noise^2) is added to the filled pixels only, drawn per (maps seed, sample id), so a filled image is
the same on every device and in every batch.

A channel of an image with no known pixel at all (t = 1) has no system: it takes the channel mean,
and roar-mask's sample json says so. (A region of unknown pixels is bounded by known pixels or the
image border, so "touches no known pixel" only happens when nothing is known.)
"""

import torch
import torch.nn.functional as F

from roar.errors import RoarError
from roar.masking.multigrid import Multigrid, channels_last
from roar.utils.seeding import per_sample

FLOAT32_GAIN = 1e-4  # what one float32 pass can gain on its residual before rounding stalls it
REFINEMENTS = 8


def check_linear(cfg, channels: int) -> None:
    """``fill=linear``'s settings, checked before any work."""
    if float(cfg.get("noise", 0.01)) < 0:
        raise RoarError(
            f"fill.noise={cfg.noise}: give a noise standard deviation >= 0 (ROAD: 0.01, in [0, 1] pixel units)."
        )
    if float(cfg.get("tol", 1e-4)) <= 0:
        raise RoarError(f"fill.tol={cfg.tol}: give the largest error > 0 a filled pixel may keep (default 1e-4).")
    if int(cfg.get("max_iter", 200)) < 1:
        raise RoarError(f"fill.max_iter={cfg.max_iter}: give at least 1 conjugate-gradient iteration.")


def _largest(z: torch.Tensor) -> torch.Tensor:
    """Each (image, channel)'s largest |entry|, shaped (B, C, 1, 1) (a channels-last tensor's columns)."""
    b, c = z.shape[:2]
    return z.permute(0, 2, 3, 1).reshape(b, -1, c).abs().max(1).values.view(b, c, 1, 1)


def _neighbours64(x: torch.Tensor) -> torch.Tensor:
    """N x in float64, by shifted slices (a float64 convolution is 3x slower on a CPU)."""
    p = F.pad(x, (1, 1, 1, 1))
    vertical = p[..., :-2, :] + p[..., 2:, :]
    total = (p[..., 1:-1, :-2] + p[..., 1:-1, 2:]).add_(vertical[..., 1:-1]).mul_(1 / 6)
    return total.add_(vertical[..., :-2] + vertical[..., 2:], alpha=1 / 12)


def _pcg(precondition: Multigrid, r: torch.Tensor, z: torch.Tensor, target: torch.Tensor, max_iter: int):
    """Conjugate gradients on A d = r from zero (``z``: the preconditioned ``r``), each channel until its
    preconditioned residual is below ``target`` at every pixel: (d, iterations)."""
    level = precondition.levels[0]
    d, spare = torch.zeros_like(r), torch.empty_like(r)
    p, rz = z.clone(), torch.mul(r, z, out=spare).sum((2, 3), keepdim=True)
    for it in range(max_iter + 1):
        active = _largest(z) >= target
        if not active.any() or it == max_iter:
            return d, it
        ap = level.apply(p)
        pap = torch.mul(p, ap, out=spare).sum((2, 3), keepdim=True)
        alpha = torch.where(active & (pap != 0), rz / pap.where(pap != 0, torch.ones_like(pap)), torch.zeros_like(rz))
        d.addcmul_(alpha, p)
        r.addcmul_(alpha, ap, value=-1)
        z = precondition(r)
        rz_new = torch.mul(r, z, out=spare).sum((2, 3), keepdim=True)
        beta = torch.where(active & (rz != 0), rz_new / rz.where(rz != 0, torch.ones_like(rz)), torch.zeros_like(rz))
        p.mul_(beta).add_(z)
        rz = rz_new
    return d, max_iter


def solve_linear(images: torch.Tensor, removed: torch.Tensor, tol: float = 1e-4, max_iter: int = 200):
    """(filled images, conjugate-gradient iterations) without noise. ``removed``: (B, 1 or C, H, W)
    boolean. ``tol``: the largest error a filled pixel may keep, in the images' units (estimated by the
    V-cycle); ``max_iter``: conjugate-gradient iterations in all (over the refinement passes)."""
    b, c, h, w = images.shape
    unknown = channels_last(removed.expand(b, c, h, w).float())
    x = channels_last(images.float())
    known = 1.0 - unknown
    start = (x * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True).clamp_min(1)
    x = torch.where(unknown > 0, start, x)  # the start: each channel's mean of its known pixels
    precondition = Multigrid(unknown)
    u64 = unknown.double()
    s64 = _neighbours64(torch.ones_like(u64))  # S in float64 itself: float32's S would bias the answer by ~1e-6
    r = precondition.levels[0].apply(x).neg_()  # the start's residual: float32 suffices for the first pass
    total = 0
    for attempt in range(REFINEMENTS + 1):
        z = precondition(r)
        estimate = _largest(z)
        done = estimate < tol
        if done.all() or total >= max_iter or attempt == REFINEMENTS:
            break
        target = torch.clamp_min(estimate * FLOAT32_GAIN, tol)  # a float32 pass's reach; refined in the next
        d, it = _pcg(precondition, r, z, target, max_iter - total)
        x = x.double().add_(d)  # the answer accumulates in float64
        total += it
        r = _neighbours64(x).addcmul_(s64, x, value=-1).mul_(u64).float()
    if not done.all():
        raise RoarError(
            f"fill=linear: conjugate gradients did not reach fill.tol={tol} in fill.max_iter={max_iter} iterations "
            f"(worst estimated error {float(estimate.max()):.2e} over {int((~done).sum())} image channel(s)). "
            "Raise fill.max_iter."
        )
    filled = x.to(images.dtype)
    return torch.where(removed.expand(b, c, h, w), filled, images), total  # known pixels bit for bit


def linear_fill(images, removed, cfg, mean, ids, maps_seed: int, generator=None) -> torch.Tensor:  # noqa: PLR0913 (the solve's inputs (augment.fill calls it without a bound fill))
    """The ``linear`` fill: solve, fall back to the channel mean where nothing is known, add the seeded
    noise: drawn per (maps_seed, sample id), or from ``generator`` (a training augmentation's own draws)."""
    b, c, h, w = images.shape
    filled, _ = solve_linear(images, removed, float(cfg.get("tol", 1e-4)), int(cfg.get("max_iter", 200)))
    mask = removed.expand(b, c, h, w)
    nothing_known = mask.flatten(2).all(2)[..., None, None]
    if nothing_known.any():
        if mean is None:
            raise RoarError("fill=linear: an image with every pixel masked needs the channel mean to fall back to.")
        means = torch.tensor([float(m) for m in mean], dtype=images.dtype, device=images.device).view(1, c, 1, 1)
        filled = torch.where(nothing_known & mask, means, filled)
    sigma = float(cfg.get("noise", 0.01))
    if sigma > 0 and generator is not None:
        noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
        filled = torch.where(mask, filled + sigma * noise, filled)
    elif sigma > 0:
        if ids is None:
            raise RoarError("fill=linear adds noise drawn per sample id: pass the batch's ids.")
        noise = per_sample(maps_seed, ids, "linear-fill", (c, h, w), fn=torch.randn).to(images.device, images.dtype)
        filled = torch.where(mask, filled + sigma * noise, filled)
    return filled
