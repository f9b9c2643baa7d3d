"""scikit-learn's bundled 8x8 handwritten digits: real data that ships with the package, no download."""

import numpy as np
import torch
import torch.nn.functional as F

from roar.data.base import TensorImageDataset
from roar.data.registry import register_dataset

TEST_FRACTION = 0.25
SPLIT_SEED = 0  # the split is part of the dataset's definition, not of an experiment's seed


def resize_images(images: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize of an (N, C, H, W) batch to ``size`` (int or None for unchanged)."""
    if size is None or images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp_(0, 1)


@register_dataset("digits")
def build_digits(cfg, split):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    index = np.arange(len(bunch.target))
    train_idx, test_idx = train_test_split(
        index, test_size=TEST_FRACTION, stratify=bunch.target, random_state=SPLIT_SEED
    )
    idx = np.sort(train_idx if split == "train" else test_idx)
    first = cfg.get("n_train" if split == "train" else "n_test")  # +data.n_train=N: the split's first N (a dry run)
    idx = idx[: int(first)] if first else idx
    images = torch.from_numpy(bunch.images[idx].astype(np.float32) / 16.0).unsqueeze(1)
    images = resize_images(images, cfg.get("image_size"))
    labels = torch.from_numpy(bunch.target[idx].astype(np.int64))
    ids = [f"digits-{i:04d}" for i in idx]
    return TensorImageDataset("digits", split, images, labels, ids, [str(c) for c in range(10)])
