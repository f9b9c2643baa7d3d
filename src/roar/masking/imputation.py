"""ROAD's noisy linear imputation (Rong et al., 2022, section 4.2; reference code
``road/imputations.py``, ``NoisyLinearImputer``), solved for a whole batch at once on its device.

Every masked pixel takes the weighted mean of its 8 neighbours inside the image (1/6 for the four
side neighbours, 1/12 for the four diagonal ones; the weights of neighbours outside the image are
dropped from the mean), known neighbours contributing their values. Per image and channel that is
the sparse system  S_i x_i - sum_{unknown j ~ i} w_ij x_j = sum_{known k ~ i} w_ik v_k  over the
unknown pixels, with S_i the summed weight of i's neighbours inside the image: the reference code's
matrix, negated. It is symmetric and, when a region touches a known pixel, positive definite, so
preconditioned conjugate gradients solve it: the matrix-vector product is one depthwise 3x3
convolution restricted to the unknown pixels, the preconditioner is its diagonal S (Jacobi), and
every (image, channel) runs its own CG scalars in lockstep with the others. The start is the mean of
the known pixels. Then N(0, noise^2) is added to the filled pixels only, drawn per (maps seed,
sample id), so a filled image is the same on every device and in every batch.

A channel of an image with no known pixel at all (t = 1) has no system: it takes the channel mean,
and roar-mask's sample json says so. (A region of unknown pixels is bounded by known pixels or the
image border, so "touches no known pixel" only happens when nothing is known.)
"""

import torch
import torch.nn.functional as F

from roar.errors import RoarError
from roar.utils.seeding import per_sample

_STENCIL = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]], dtype=torch.float64)


def check_linear(cfg, channels: int) -> None:
    """``fill=linear``'s settings, checked before any work."""
    if float(cfg.get("noise", 0.01)) < 0:
        raise RoarError(
            f"fill.noise={cfg.noise}: give a noise standard deviation >= 0 (ROAD: 0.01, in [0, 1] pixel units)."
        )
    if float(cfg.get("tol", 1e-5)) <= 0:
        raise RoarError(f"fill.tol={cfg.tol}: give a relative residual > 0 (default 1e-5).")
    if int(cfg.get("max_iter", 2000)) < 1:
        raise RoarError(f"fill.max_iter={cfg.max_iter}: give at least 1 conjugate-gradient iteration.")


def solve_linear(images: torch.Tensor, removed: torch.Tensor, tol: float = 1e-5, max_iter: int = 2000):
    """(filled images, iterations) without noise. ``removed``: (B, 1 or C, H, W) boolean. Computed in
    float64 (the systems are ill-conditioned on large holes; float32 CG stalls above 1e-5)."""
    b, c, h, w = images.shape
    x0 = images.double()
    unknown = removed.expand(b, c, h, w).double()
    known = 1.0 - unknown
    kernel = _STENCIL.to(images.device).expand(c, 1, 3, 3)

    def neighbours(z):  # the weighted sum of each pixel's in-image neighbours (zero padding: none outside)
        return F.conv2d(z, kernel, padding=1, groups=c)

    diag = neighbours(torch.ones((1, c, h, w), dtype=torch.float64, device=images.device))  # S_i
    rhs = neighbours(x0 * known) * unknown

    def matvec(z):
        return (diag * z - neighbours(z * unknown)) * unknown

    n_known = known.sum((2, 3))
    start = (x0 * known).sum((2, 3)) / n_known.clamp_min(1)
    x = start[..., None, None] * unknown
    r = rhs - matvec(x)
    z = r / diag
    p, rz = z, (r * z).sum((2, 3))
    scale = rhs.flatten(2).norm(dim=2).clamp_min(1e-8)
    solvable = (n_known > 0) & (unknown.sum((2, 3)) > 0)
    it = 0
    for it in range(max_iter + 1):
        rel = r.flatten(2).norm(dim=2) / scale
        active = solvable & (rel >= tol)
        if not active.any() or it == max_iter:
            break
        ap = matvec(p)
        pap = (p * ap).sum((2, 3))
        alpha = torch.where(active, rz / pap.where(pap != 0, torch.ones_like(pap)), torch.zeros_like(rz))
        x = x + alpha[..., None, None] * p
        r = r - alpha[..., None, None] * ap
        z = r / diag
        rz_new = (r * z).sum((2, 3))
        beta = torch.where(active & (rz != 0), rz_new / rz.where(rz != 0, torch.ones_like(rz)), torch.zeros_like(rz))
        p, rz = z + beta[..., None, None] * p, rz_new
    if active.any():
        worst = float(rel[active].max())
        raise RoarError(
            f"fill=linear: conjugate gradients did not reach fill.tol={tol} in fill.max_iter={max_iter} iterations "
            f"(worst relative residual {worst:.2e} over {int(active.sum())} image channel(s)). Raise fill.max_iter."
        )
    filled = torch.where(unknown > 0, x, x0)
    return filled.to(images.dtype), it


def linear_fill(images, removed, cfg, mean, ids, maps_seed: int, generator=None) -> torch.Tensor:  # noqa: PLR0913 (the solve's inputs (augment.fill calls it without a bound fill))
    """The ``linear`` fill: solve, fall back to the channel mean where nothing is known, add the seeded
    noise: drawn per (maps_seed, sample id), or from ``generator`` (a training augmentation's own draws)."""
    b, c, h, w = images.shape
    filled, _ = solve_linear(images, removed, float(cfg.get("tol", 1e-5)), int(cfg.get("max_iter", 2000)))
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
