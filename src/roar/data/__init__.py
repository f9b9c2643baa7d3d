"""Datasets (embedded and local), their per-channel statistics, the masked-shard loader, and the datamodule."""

from roar.data import cifar10c, digits, local, shapes  # noqa: F401  (registers the datasets)
from roar.data.base import ImageDataset, TensorImageDataset
from roar.data.datamodule import ImageDataModule
from roar.data.registry import DATASETS, available, build_dataset, register_dataset

__all__ = [
    "DATASETS",
    "ImageDataset",
    "TensorImageDataset",
    "ImageDataModule",
    "available",
    "build_dataset",
    "register_dataset",
]
