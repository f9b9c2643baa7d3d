"""Generated shapes: the dataset where we know which pixels matter.

Each image is one shape (the class) drawn at a random position, scale, colour and rotation on a
textured background; each sample carries its ground-truth ``object_mask``. With probability
``shortcut_prob`` a small class-specific marker is planted in a corner, the "ruler" shortcut of the
overinterpretation paper (section 1), with its own ``shortcut_mask``. Sample ``i`` of a split is a
pure function of (seed, split, i), so any subset or order of the data renders identically.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from roar.data.base import TensorImageDataset
from roar.data.registry import register_dataset
from roar.errors import RoarError, check_probability

CLASSES = ("circle", "square", "triangle", "plus", "ring", "bar")
_SPLIT_CODE = {"train": 0, "test": 1}


def _inside(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Membership of the unit-size shape ``kind`` at shape-frame coordinates (u, v)."""
    r = np.hypot(u, v)
    if kind == "circle":
        return r <= 1.0
    if kind == "square":
        return np.maximum(abs(u), abs(v)) <= 0.85
    if kind == "triangle":  # equilateral, pointing up in its own frame
        return (v >= -0.5) & (np.sqrt(3) * u + v <= 1.0) & (-np.sqrt(3) * u + v <= 1.0)
    if kind == "plus":
        return ((abs(u) <= 0.3) & (abs(v) <= 1.0)) | ((abs(v) <= 0.3) & (abs(u) <= 1.0))
    if kind == "ring":
        return (r <= 1.0) & (r >= 0.6)
    if kind == "bar":
        return (abs(u) <= 1.0) & (abs(v) <= 0.3)
    raise ValueError(kind)


def _marker(label: int, size: int) -> np.ndarray:
    """The class's shortcut marker: a ``size``x``size`` binary pattern unique to ``label``."""
    code = label + 1  # never empty, distinct per class
    return np.array([(code >> k) & 1 for k in range(size * size)], dtype=bool).reshape(size, size)


def render(seed: int, split: str, index: int, image_size: int, num_classes: int, shortcut_prob: float):
    """One sample: (image HxWx3 float32 in [0, 1], label, object mask HxW, shortcut mask HxW)."""
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], index])
    label = int(rng.integers(num_classes))
    s = image_size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    # textured background: two random low-frequency waves plus pixel noise, in a random tint
    f1, f2 = rng.uniform(0.5, 3.0, size=2) * 2 * np.pi / s
    ph = rng.uniform(0, 2 * np.pi, size=2)
    texture = 0.5 + 0.25 * np.sin(f1 * xx + ph[0]) * np.cos(f2 * yy + ph[1])
    tint = rng.uniform(0.2, 0.8, size=3)
    image = texture[..., None] * tint + rng.normal(0, 0.05, size=(s, s, 3))
    # the shape: position, scale, rotation and colour at random
    scale = rng.uniform(0.18, 0.32) * s
    cx, cy = rng.uniform(scale, s - scale, size=2)
    theta = rng.uniform(0, 2 * np.pi)
    du, dv = (xx - cx) / scale, (yy - cy) / scale
    u = np.cos(theta) * du + np.sin(theta) * dv
    v = -np.sin(theta) * du + np.cos(theta) * dv
    obj = _inside(CLASSES[label], u, v)
    colour = rng.uniform(0, 1, size=3)
    colour[rng.integers(3)] = rng.choice([0.05, 0.95])  # keep it apart from the mid-grey background
    image[obj] = colour
    shortcut = np.zeros((s, s), dtype=bool)
    if rng.uniform() < shortcut_prob:
        m = max(2, s // 10)
        corner = int(rng.integers(4))
        y0 = 1 if corner < 2 else s - m - 1
        x0 = 1 if corner % 2 == 0 else s - m - 1
        shortcut[y0 : y0 + m, x0 : x0 + m] = _marker(label, m)
        image[shortcut] = (1.0, 0.0, 1.0)
    return np.clip(image, 0, 1).astype(np.float32), label, obj, shortcut


@register_dataset("shapes")
def build_shapes(cfg, split):
    num_classes = int(cfg.get("num_classes", len(CLASSES)))
    if not 2 <= num_classes <= len(CLASSES):
        raise RoarError(f"data.num_classes={num_classes}: shapes has between 2 and {len(CLASSES)} classes.")
    shortcut_prob = check_probability("data.shortcut_prob", cfg.get("shortcut_prob", 0.0))
    size = int(cfg.get("image_size") or 32)
    n = int(cfg.n_train if split == "train" else cfg.n_test)
    seed = int(cfg.get("seed", 0))
    rendered = [render(seed, split, i, size, num_classes, shortcut_prob) for i in range(n)]
    images = torch.from_numpy(np.stack([r[0] for r in rendered])).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([r[1] for r in rendered], dtype=torch.int64)
    extras = {
        "object_mask": torch.from_numpy(np.stack([r[2] for r in rendered])),
        "shortcut_mask": torch.from_numpy(np.stack([r[3] for r in rendered])),
    }
    ids = [f"shapes-{seed}-{split}-{i:06d}" for i in range(n)]
    return TensorImageDataset("shapes", split, images, labels, ids, CLASSES[:num_classes], extras)


def save_image_folder(root, n_train: int, n_test: int, image_size: int, num_classes: int = 3, seed: int = 0) -> Path:
    """Shapes rendered to 8-bit PNG files in ``data=imagefolder``'s layout (``<root>/train|val/<class>/<n>.png``,
    no class marker): real files of 8-bit images, as CIFAR or ImageNet hold them, for tests and benchmarks."""
    root = Path(root)
    for split, folder, count in (("train", "train", n_train), ("test", "val", n_test)):
        for i in range(count):
            image, label, _, _ = render(seed, split, i, image_size, num_classes, 0.0)
            path = root / folder / CLASSES[label] / f"{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((image * 255).round().astype(np.uint8)).save(path)
    return root
