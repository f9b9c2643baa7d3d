"""Evaluate maps computed elsewhere, from a file, on a model you trained yourself: ROAR's no-retraining
deletion curve in both modes (remove the top t, or keep it: KAR) and FPA's MIF/LIF curves.

    python examples/maps_from_file.py [maps.npy]

Without an argument the example makes its own file first (an edge map of every test image, saved with
``numpy.save``), standing in for maps from another toolkit; the file holds one (C or 1, H, W) map per test
image, in the test set's order.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from digits_model import digits, train_cnn

import roar

train_x, train_y, test_x, test_y = digits()
model = train_cnn(train_x, train_y)

if len(sys.argv) > 1:
    path = Path(sys.argv[1])
else:  # maps from "another toolkit": the image's local contrast, a model-free edge map
    path = Path(tempfile.mkdtemp()) / "edge_maps.npy"
    padded = torch.nn.functional.pad(test_x, (1, 1, 1, 1), mode="replicate")
    edges = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]).abs() + (
        padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]
    ).abs()
    np.save(path, edges.numpy())

maps = torch.from_numpy(np.load(path)).float()
result = roar.no_retrain(model, test_x, test_y, maps, fill="channel_mean", mean=train_x.mean((0, 2, 3)).tolist())
print(
    f"maps {path.name} {tuple(maps.shape)} on your model: fidelity A {result.fidelity:.2f} ± {result.fidelity_ci:.2f}"
)
for mode, accuracy in result.accuracy.items():
    print(f"  {mode:6s} t = " + "  ".join(f"{t:.1f}: {a:.3f}" for t, a in zip(result.fractions, accuracy)))
print("  MIF (normalized target logit) at t = 0, 0.5, 1: " + ", ".join(f"{result.mif[i]:.3f}" for i in (0, 5, 10)))
