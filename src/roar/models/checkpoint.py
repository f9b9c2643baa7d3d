"""Reading checkpoints safely (``weights_only=True``) and checking they fit what is asked of them: the model,
classes and image shape they were made for, their bytes, and the data a base model was trained on."""

from pathlib import Path

import torch

from roar.errors import RoarError
from roar.store.keys import METRICS
from roar.store.shards import sha256_file


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RoarError(f"Checkpoint {path} does not exist. Train the model first (roar-train) or fix the path.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refused or a truncated file
        raise RoarError(f"Checkpoint {path} could not be loaded safely (weights_only=True): {err}") from None


def check_compatible(ckpt: dict, path, model=None, num_classes=None, image_shape=None):
    """Raise when the checkpoint at ``path`` was made for another model, class count or image shape."""
    hp = ckpt.get("hyper_parameters", {})
    found = {
        "model": hp.get("model"),
        "num_classes": hp.get("num_classes"),
        "image_shape": list(hp.get("image_shape") or []),
    }
    wanted = {"model": model, "num_classes": num_classes, "image_shape": list(image_shape) if image_shape else None}
    for key, value in wanted.items():
        if value is not None and found[key] != value:
            raise RoarError(
                f"Checkpoint {path} was trained with {key}={found[key]}, but this run asks for {key}={value}. "
                f"Point to the checkpoint of the matching run, or change the config to match it."
            )


def check_not_damaged(checkpoint, metrics: dict) -> None:
    """A base checkpoint is trusted only as it was written: metrics.json records its sha256
    (``checkpoint_sha256``); a file that differs is damaged (a disk, a copy, an edit), said as such."""
    recorded = metrics.get("checkpoint_sha256")
    if recorded and sha256_file(checkpoint) != recorded:
        raise RoarError(
            f"{checkpoint} is damaged: its sha256 differs from the one its run's {METRICS} "
            f"recorded when it was written. Rerun roar-train with the same settings and overwrite=true."
        )


def check_trained_on(folder, metrics: dict, fingerprints: dict, root) -> None:
    """The base model in ``folder`` was trained and tested on these data: its metrics' ``data_fingerprints``
    match ``fingerprints`` (splits both have). Another folder with the same layout is refused, naming both."""
    recorded = metrics.get("data_fingerprints") or {}
    differ = sorted(split for split, fp in fingerprints.items() if split in recorded and recorded[split] != fp)
    if differ:
        raise RoarError(
            f"The base model {folder} was trained on other images ({metrics.get('data_root') or 'another data.root'}) "
            f"than data.root={root} holds now (the {' and '.join(differ)} split differ). Give these images their "
            f"own experiment (name=...), or retrain the base model on them with roar-train overwrite=true."
        )
