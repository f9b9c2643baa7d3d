"""A model trained your own way, outside roar: a small CNN on scikit-learn's 8x8 digits, plain PyTorch
(the examples' stand-in for the model you bring). ``digits()`` gives the data, ``train_cnn()`` the model."""

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def digits():
    """(train images, train labels, test images, test labels): (N, 1, 8, 8) in [0, 1], a stratified 75/25 split."""
    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    train, test = train_test_split(np.arange(len(y)), test_size=0.25, stratify=bunch.target, random_state=0)
    return x[train], y[train], x[test], y[test]


def train_cnn(images, labels, epochs: int = 15, seed: int = 0) -> nn.Module:
    """A two-layer CNN trained with Adam; about two seconds on a CPU."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(128, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(images)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    return model.eval()
