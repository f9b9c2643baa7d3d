"""Datasets (embedded and local), their per-channel statistics, and the datamodule."""

from roar.data import digits, local, masked, shapes  # noqa: F401  (registers the datasets)
from roar.data.base import ImageDataset, TensorImageDataset
from roar.data.datamodule import ImageDataModule
from roar.data.registry import available, build_dataset, register_dataset

__all__ = ["ImageDataset", "TensorImageDataset", "ImageDataModule", "available", "build_dataset", "register_dataset"]
