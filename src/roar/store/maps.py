"""The maps format (roar-attribute's shards): one sample per image, key = the sample id.

``map.npy``: float16 map of the image's shape (or, with ``attribute.store=reduced``, its 1 x H x W
reduction: the manifest's ``reduced_by``) divided by its largest magnitude, or for backward selection
its removal steps as unsigned integers (scale 1, exact at any image size); ``json``: id,
label, target (the class the map explains), scale (that largest magnitude); for backward-selection
rankings also ``trace``, the confidence after every step (roar.estimators.backselect).
"""

import json
from pathlib import Path

import numpy as np

from roar.errors import RoarError
from roar.store.shards import decode_key, encode_key, json_bytes, load_npy, npy_bytes, read_shard


def map_sample(sample_id: str, unit_map: np.ndarray, label: int, target: int, scale: float, extra=None) -> dict:
    """``extra``: more json fields (an iterative ranking's ``trace``)."""
    meta = {"id": sample_id, "label": int(label), "target": int(target), "scale": float(scale), **(extra or {})}
    return {"__key__": encode_key(sample_id), "map.npy": npy_bytes(unit_map), "json": json_bytes(meta)}


def iter_map_shard(tar: Path):
    """(sample id, float32 map in the estimator's units, meta) for every sample of one shard."""
    for sample in read_shard(tar):
        meta = json.loads(sample["json"])
        yield decode_key(sample["__key__"]), load_npy(sample["map.npy"]).astype(np.float32) * meta["scale"], meta


def iter_maps(folder, split: str):
    """``iter_map_shard`` over every shard of ``split`` in an estimator's folder, in sample order."""
    for tar in sorted(Path(folder).glob(f"{split}-*.tar")):
        yield from iter_map_shard(tar)


def check_reduction(manifest: dict, reduce: str, folder) -> None:
    """Maps stored reduced (``attribute.store=reduced``) serve only their own reduction: any other is refused,
    naming both ways out."""
    stored = manifest.get("reduced_by")
    if stored is not None and str(reduce) != stored:
        raise RoarError(
            f"{folder}: these maps are stored reduced by {stored} (attribute.store=reduced); reduce={reduce} needs the "
            f"full maps. Use reduce={stored}, or rerun roar-attribute with attribute.store=full overwrite=true."
        )


def map_shape(manifest: dict, image_shape) -> list:
    """The shape of one stored map: the image's, or 1 x H x W for maps stored reduced."""
    return [1, *list(image_shape)[1:]] if manifest.get("reduced_by") else list(image_shape)
