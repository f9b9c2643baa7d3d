"""Dataset registry: ``@register_dataset("name")`` on a ``build(cfg, split) -> ImageDataset``."""

from roar.errors import RoarError, unknown_name

_DATASETS = {}
SPLITS = ("train", "test")


def register_dataset(name):
    def wrap(fn):
        _DATASETS[name] = fn
        return fn

    return wrap


def available():
    return sorted(_DATASETS)


def build_dataset(cfg, split: str):
    """The ``split`` ("train" or "test") of the dataset ``cfg.name``, configured by ``cfg`` (a data config)."""
    if cfg.name not in _DATASETS:
        raise unknown_name("data", cfg.name, _DATASETS)
    if split not in SPLITS:
        raise RoarError(f"Unknown split '{split}'; valid splits: {', '.join(SPLITS)}.")
    return _DATASETS[cfg.name](cfg, split)
