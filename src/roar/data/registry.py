"""Dataset registry: ``@register_dataset("name")`` on a ``build(cfg, split) -> ImageDataset``."""

from roar.errors import RoarError
from roar.registry import Registry

DATASETS = Registry("data", defaults={"params": {}})  # params: a plug-in's data config defaults
register_dataset = DATASETS.register
SPLITS = ("train", "test")


def available():
    return DATASETS.names()


def build_dataset(cfg, split: str):
    """The ``split`` ("train" or "test") of the dataset ``cfg.name``, configured by ``cfg`` (a data config)."""
    build = DATASETS[cfg.name]
    if split not in SPLITS:
        raise RoarError(f"Unknown split '{split}'; valid splits: {', '.join(SPLITS)}.")
    return build(cfg, split)
