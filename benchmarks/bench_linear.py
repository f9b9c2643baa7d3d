"""fill=linear (ROAD's noisy linear imputation): roar's batched multigrid-preconditioned solve against the
peer's own code, Quantus 0.6's ``noisy_linear_imputation`` (adapted from ROAD's ``NoisyLinearImputer``:
the system built per image and solved by scipy's sparse LU for its three channels), called per image as
Quantus and ROAD do, noise off on both. Inputs: crops of scikit-learn's bundled photographs (china.jpg,
flower.jpg); holes either scattered (each pixel removed with probability t: the issue's measurement) or
contiguous (the top t of a smooth random map: what a smooth saliency map removes, the hard case for
iterative solvers). Goal at 3x224x224: >= 10x the peer with the same answer (largest difference below
half an 8-bit level, 2e-3). Also 256 images of 3x32x32.

    python benchmarks/bench_linear.py          (CPU)
    python benchmarks/bench_linear.py --gpu    (roar's solve on CUDA; the peer on the CPU, as it runs)
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F
from quantus.functions.perturb_func import noisy_linear_imputation
from sklearn.datasets import load_sample_images
from timing import interleaved, verdict

from roar.masking.imputation import solve_linear

DEVICE = "cuda" if "--gpu" in sys.argv else "cpu"


def photos(side: int, n: int, seed: int = 0) -> torch.Tensor:
    pictures = load_sample_images().images
    rng = np.random.default_rng(seed)
    crops = []
    for k in range(n):
        picture = pictures[k % 2]
        y, x = rng.integers(0, picture.shape[0] - side), rng.integers(0, picture.shape[1] - side)
        crops.append(picture[y : y + side, x : x + side].transpose(2, 0, 1) / 255.0)
    return torch.tensor(np.stack(crops), dtype=torch.float32)


def holes(kind: str, n: int, side: int, t: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if kind == "scattered":
        return torch.rand(n, 1, side, side, generator=g) < t
    smooth = F.interpolate(torch.randn(n, 1, side // 16, side // 16, generator=g), size=(side, side), mode="bicubic")
    return smooth > torch.quantile(smooth.flatten(1), 1 - t, dim=1)[:, None, None, None]


def peer(images: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    out = [
        noisy_linear_imputation(x.double().numpy(), np.flatnonzero(m[0].numpy()), noise=0.0)
        for x, m in zip(images, removed)
    ]
    return torch.tensor(np.stack(out))


def ours(images: torch.Tensor, removed: torch.Tensor):
    filled, iterations = solve_linear(images, removed)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    return filled, iterations


def compare(side: int, n: int, kind: str, t: float, goal: float | None, rounds: int) -> None:
    images, removed = photos(side, n), holes(kind, n, side, t)
    reference = peer(images, removed)
    on_device = images.to(DEVICE), removed.to(DEVICE)
    filled, iterations = ours(*on_device)
    error = float((filled.cpu().double() - reference).abs().max())
    times = interleaved({"roar": lambda: ours(*on_device), "peer": lambda: peer(images, removed)}, rounds=rounds)
    ratio = times["peer"] / times["roar"]
    print(
        f"{n} x 3x{side}x{side}, {kind} holes, t={t}: roar {times['roar'] * 1000:.0f} ms ({iterations} CG "
        f"iterations, {DEVICE}), Quantus {times['peer'] * 1000:.0f} ms -> {ratio:.1f}x (max difference {error:.1e})"
        + (f" {verdict(ratio, goal)}" if goal else "")
        + ("" if error < 2e-3 else " DIFFERENT ANSWER")
    )


if __name__ == "__main__":
    torch.manual_seed(0)
    for kind in ("scattered", "contiguous"):
        for t in (0.5, 0.9):
            compare(224, 8, kind, t, goal=10.0, rounds=3)
    compare(32, 256, "scattered", 0.5, goal=None, rounds=3)
