"""fill=linear (ROAD's noisy linear imputation) batched on the device vs the reference implementations'
method (issue: leakage-free masking).

- batched: roar's ``solve_linear``, preconditioned conjugate gradients for all images and channels of
  the batch at once (one depthwise 3x3 convolution per matrix-vector product);
- per image: the sparse system of each image built with vectorized numpy (as ROAD's
  ``setup_sparse_system``) and solved by ``scipy.sparse.linalg.spsolve`` for its three channels, in a
  loop over the images (ROAD's code and Quantus do this).
Both solve the same system (the results are compared to 1e-4). 256 images of 32x32x3 at t = 0.5;
goal: >= 20x. Also: CG iterations at t = 0.1, 0.5, 0.9, and the time of a batch of 8 at 224x224.
"""

import time

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve
from timing import interleaved, verdict

from roar.masking.imputation import solve_linear

OFFSETS = [
    (dy, dx, 1 / 6 if dy == 0 or dx == 0 else 1 / 12) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)
]


def spsolve_one(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """One image's system, assembled with vectorized numpy, solved by scipy's sparse direct solver."""
    c, h, w = image.shape
    flat = removed.reshape(-1)
    unknown = np.flatnonzero(flat)
    var = np.full(h * w, -1)
    var[unknown] = np.arange(len(unknown))
    ys, xs = unknown // w, unknown % w
    rows, cols, vals = [np.arange(len(unknown))], [np.arange(len(unknown))], [np.zeros(len(unknown))]
    rhs = np.zeros((len(unknown), c))
    values = image.reshape(c, -1)
    for dy, dx, wgt in OFFSETS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        k = np.flatnonzero(inside)
        n = ny[k] * w + nx[k]
        vals[0][k] += wgt  # the diagonal: the weight of every in-image neighbour
        hole = flat[n]
        rows.append(k[hole])
        cols.append(var[n[hole]])
        vals.append(np.full(int(hole.sum()), -wgt))
        rhs[k[~hole]] += wgt * values[:, n[~hole]].T
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(unknown),) * 2)
    solution = spsolve(a.tocsc(), rhs).reshape(len(unknown), c)
    out = values.copy()
    out[:, unknown] = solution.T
    return out.reshape(c, h, w)


def per_image(images: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    return torch.stack(
        [torch.from_numpy(spsolve_one(x.double().numpy(), m[0].numpy())) for x, m in zip(images, removed)]
    ).float()


torch.manual_seed(0)
images = torch.rand(256, 3, 32, 32)
removed = torch.rand(256, 1, 32, 32) < 0.5
ours, _ = solve_linear(images, removed)
reference = per_image(images, removed)
error = float((ours - reference).abs().max())
times = interleaved(
    {"batched": lambda: solve_linear(images, removed), "per_image": lambda: per_image(images, removed)}, rounds=3
)
ratio = times["per_image"] / times["batched"]
print(
    f"fill=linear, 256 images 3x32x32 at t=0.5: batched CG {times['batched'] * 1000:.0f} ms, per-image spsolve "
    f"{times['per_image'] * 1000:.0f} ms -> {ratio:.1f}x faster (max difference {error:.1e}) {verdict(ratio, 20.0)}"
)
counts = {t: solve_linear(images, torch.rand(256, 1, 32, 32) < t)[1] for t in (0.1, 0.5, 0.9)}
print("CG iterations (to a relative residual of 1e-5): " + ", ".join(f"t={t}: {n}" for t, n in counts.items()))
big = torch.rand(8, 3, 224, 224)
start = time.perf_counter()
_, n = solve_linear(big, torch.rand(8, 1, 224, 224) < 0.5)
print(f"8 images 3x224x224 at t=0.5: {time.perf_counter() - start:.1f} s, {n} CG iterations")
