"""CIFAR-10-C (Hendrycks & Dietterich 2019) as a test split: CIFAR-10's test images under one corruption at one
severity, read from the published ``.npy`` files (never downloaded).

The archive extracts to ``CIFAR-10-C/<corruption>.npy`` (uint8, N x 32 x 32 x 3, the five severities stacked in
order, 10,000 images each) and ``CIFAR-10-C/labels.npy``. ``data.corruption`` names one file (``gaussian_noise``,
``motion_blur``, ``snow``, ...) or ``all``; ``data.severity`` 1-5, or null for all five. ``data.n_test`` draws a
seeded uniform sample of that many images from the selection (the overinterpretation paper, section 3.1: "a
uniform random sample of 2000 images across the entire CIFAR-10-C set"). The train split is CIFAR-10's own
(``data.root`` holds ``cifar-10-batches-py/`` too): a model trained on clean images, tested on corrupted ones.
"""

from pathlib import Path

import numpy as np
import torch

from roar.data.base import TensorImageDataset
from roar.data.registry import register_dataset
from roar.errors import RoarError

FOLDER = "CIFAR-10-C"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def corruptions(folder: Path) -> list:
    return sorted(p.stem for p in folder.glob("*.npy") if p.stem != "labels")


def selection(folder: Path, corruption: str, severity, per: int) -> list:
    """[(corruption, row)] of the chosen corruption(s) and severity (rows of its .npy file; ``per`` images a
    severity)."""
    names = corruptions(folder) if corruption == "all" else [corruption]
    missing = [n for n in names if not (folder / f"{n}.npy").is_file()]
    if missing or not names:
        raise RoarError(
            f"data.corruption={corruption}: no {folder / (missing[0] if missing else '*')}.npy. "
            f"Valid: {', '.join(corruptions(folder)) or 'none there'}, or all."
        )
    if severity is not None and int(severity) not in range(1, 6):
        raise RoarError(f"data.severity={severity}: give 1 to 5, or null for all five.")
    rows = range(per * 5) if severity is None else range(per * (int(severity) - 1), per * int(severity))
    return [(name, r) for name in names for r in rows]


@register_dataset("cifar10c")
def build_cifar10c(cfg, split):
    from roar.data.local import build_cifar10, require_root

    if split == "train":  # the clean training images, under this dataset's name (the sets' manifests record it)
        train = build_cifar10(cfg, split)
        train.name = "cifar10c"
        return train
    how = "Extract CIFAR-10-C.tar (Hendrycks & Dietterich) so that CIFAR-10-C/labels.npy exists."
    folder = require_root(cfg, f"{FOLDER}/labels.npy", how) / FOLDER
    labels = np.load(folder / "labels.npy", mmap_mode="r")
    chosen = selection(folder, str(cfg.get("corruption", "all")), cfg.get("severity"), len(labels) // 5)
    n = cfg.get("n_test")
    if n is not None and int(n) < len(chosen):
        pick = np.random.default_rng(int(cfg.get("seed", 0))).choice(len(chosen), size=int(n), replace=False)
        chosen = [chosen[i] for i in sorted(pick)]
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in {c for c, _ in chosen}}
    images = np.stack([arrays[c][r] for c, r in chosen])  # N x 32 x 32 x 3 uint8
    tensors = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    ids = [f"cifar10c-{c}-{r:05d}" for c, r in chosen]
    return TensorImageDataset(
        "cifar10c", split, tensors, torch.tensor([int(labels[r]) for _, r in chosen]), ids, CLASSES
    )
