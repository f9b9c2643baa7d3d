"""The masked-sample format (roar-mask's shards), written by roar-mask and read by the retrain loader.

Each sample: ``image.npy`` (float32) or ``image.png`` (8-bit), ``mask.npy`` (bool, the removed
features), ``cls`` (label), ``json`` (id, estimator, reduce, mode, fill, fraction, label).
"""

import io

import numpy as np
import torch
from PIL import Image

from roar.store.shards import decode_key, encode_key, json_bytes, load_npy, npy_bytes

FORMATS = ("npy", "png")


def encode_image(image: torch.Tensor, fmt: str) -> dict:
    """{"image.npy": float32 bytes} or {"image.png": 8-bit PNG bytes} of a (C, H, W) image in [0, 1]."""
    if fmt == "npy":
        return {"image.npy": npy_bytes(image.numpy().astype(np.float32))}
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(
        buf, format="PNG", compress_level=1
    )  # fast, lossless
    return {"image.png": buf.getvalue()}


def masked_sample(sample_id: str, image: torch.Tensor, removed: np.ndarray, label: int, fmt: str, meta: dict) -> dict:
    return {
        "__key__": encode_key(sample_id),
        **encode_image(image, fmt),
        "mask.npy": npy_bytes(removed),
        "cls": str(int(label)).encode(),
        "json": json_bytes({"id": sample_id, "label": int(label), **meta}),
    }


def decode_masked_sample(sample: dict, with_mask: bool) -> dict:
    """Tensors from one shard sample's raw bytes."""
    if "image.npy" in sample:
        image = torch.from_numpy(load_npy(sample["image.npy"]).astype(np.float32))
    else:
        pixels = np.asarray(Image.open(io.BytesIO(sample["image.png"])), dtype=np.uint8)
        image = torch.from_numpy(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)).float() / 255
    out = {"image": image, "label": int(sample["cls"]), "id": decode_key(sample["__key__"])}
    if with_mask:
        out["removed"] = torch.from_numpy(load_npy(sample["mask.npy"]).astype(bool))
    return out
