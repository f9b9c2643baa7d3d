"""What roar-plan knows of a dataset before anything runs: its split sizes, image shape and class count
(from the data when it can be opened, else the official sizes), and the bytes one sample takes in each
stored format, encoded by the real writers inside tar members of 512-byte blocks."""

import math

import numpy as np
import torch

from roar.data import build_dataset
from roar.errors import RoarError
from roar.store.maps import map_sample
from roar.store.masked import FORMATS, bucket_sample, image_sample, masked_sample

# official split sizes and image sides of the datasets read from data.root (when the data are not here)
KNOWN = {
    "cifar10": (50000, 10000, 32, 10),
    "cifar100": (50000, 10000, 32, 100),
    "cifar10c": (50000, 950000, 32, 10),  # CIFAR-10's train split; 19 corruptions x 5 severities x 10,000 to test
    "food101": (75750, 25250, None, 101),
}


def tar_bytes(sample: dict) -> int:
    """Bytes of one sample in a POSIX tar: a 512-byte header per member, data padded to 512."""
    return sum(512 + 512 * math.ceil(len(v) / 512) for k, v in sample.items() if k != "__key__")


def opened_facts(cfg) -> dict | None:
    """The facts of the dataset read here (its first images, for PNG sizes), or None when it cannot be opened."""
    try:
        train, test = build_dataset(cfg.data, "train"), build_dataset(cfg.data, "test")
    except RoarError:
        return None
    images = [train[i]["image"] for i in range(min(16, len(train)))]
    encoded = [train.encoded(i) for i in range(len(images))]
    return {
        "source": "dataset",
        "num_train": len(train),
        "num_test": len(test),
        "shape": list(train.image_shape),
        "images": images,
        "encoded": encoded if all(encoded) else None,
        "label": int(train[0]["label"]),
        "id": train.ids[0],
        "num_classes": train.num_classes,
    }


def stated_facts(cfg) -> dict:
    """The sizes ``plan.num_train``/``num_test``/``num_classes`` state, else the dataset's official ones."""
    name, plan = str(cfg.data.name), cfg.plan
    facts = {"source": "config", "images": None}
    if plan.get("num_train") is not None:
        facts.update(num_train=int(plan.num_train), num_test=int(plan.num_test), source="plan.num_train/num_test")
        if plan.get("num_classes") is not None:
            facts["num_classes"] = int(plan.num_classes)
    elif name in KNOWN:
        n_train, n_test, side, classes = KNOWN[name]
        if cfg.data.get("n_test") is not None:  # a sample of the test split (cifar10c's data.n_test)
            n_test = min(n_test, int(cfg.data.n_test))
        facts.update(num_train=n_train, num_test=n_test, num_classes=classes, source="official sizes")
        side = cfg.data.get("crop") or cfg.data.get("resize") or side
        if side:
            facts["shape"] = [3, int(side), int(side)]
    return facts


def data_facts(cfg) -> dict:
    """Sizes, classes and image shape: the dataset's when it can be opened here (and its first images, for
    PNG sizes), else ``plan.num_train``/``num_test``/``num_classes``, else the dataset's official ones."""
    name = str(cfg.data.name)
    facts = opened_facts(cfg) or stated_facts(cfg)
    if "num_train" not in facts:
        raise RoarError(
            f"roar-plan cannot size data={name}: its data.root ({cfg.data.get('root')}) cannot be opened here and its "
            f"size is not known. Pass plan.num_train=... plan.num_test=... (and data.crop for the image size)."
        )
    if "shape" not in facts:
        side = cfg.data.get("crop") or cfg.data.get("resize")
        if not side:
            raise RoarError(f"roar-plan cannot tell the image size of data={name}: set data.crop.")
        facts["shape"] = [3, int(side), int(side)]
    if "num_classes" not in facts:
        raise RoarError(f"roar-plan cannot tell the number of classes of data={name}: pass plan.num_classes=...")
    facts.setdefault("label", 0)
    facts.setdefault("id", f"{name}-train-0000000")
    return facts


def sample_bytes(facts: dict, fmt: str) -> float:
    """Bytes of one sample in ``fmt`` (npy, png, uint8, or ``images``: the image set), encoded by the real
    writers: PNG from the first real images; uint8 and the image set from the first images' source files
    where the dataset reads files, else their pixels."""
    c, h, w = facts["shape"]
    removed = np.zeros((1, h, w), dtype=bool)
    meta = {"estimator": "sg_sq-grad", "reduce": "abs_sum", "mode": "remove", "fill": "channel_mean", "fraction": 0.5}
    real = fmt == "images" or FORMATS[fmt].compressed or FORMATS[fmt].stores_source  # bytes follow the pixels
    if fmt != "images" and FORMATS[fmt].compressed and facts["images"] is None:
        return float("nan")
    images = facts["images"] if real and facts["images"] is not None else [torch.zeros(c, h, w)]
    encoded = facts.get("encoded") or [None] * len(images)
    if fmt == "images":
        samples = [image_sample(facts["id"], x, facts["label"], e) for x, e in zip(images, encoded)]
    else:
        samples = [
            masked_sample(facts["id"], x, removed, facts["label"], fmt, meta, e) for x, e in zip(images, encoded)
        ]
    return float(np.mean([tar_bytes(x) for x in samples]))


def bucket_bytes(facts: dict, features: int, bits: int) -> int:
    """Bytes of one bucket-set sample: ``bits`` planes of ``features`` bits (its image is in the image set)."""
    return tar_bytes(bucket_sample(facts["id"], np.zeros(bits * math.ceil(features / 8), dtype=np.uint8)))


def map_bytes(facts: dict, reduced: bool = False) -> int:
    """Bytes of one stored map: float16 C x H x W, or 1 x H x W with ``attribute.store=reduced``."""
    c, h, w = facts["shape"]
    shape = (1, h, w) if reduced else (c, h, w)
    return tar_bytes(map_sample(facts["id"], np.zeros(shape, np.float16), facts["label"], 0, 1.0))
