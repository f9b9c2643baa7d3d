"""The masked-sample formats (roar-mask's shards), written by roar-mask and read by the retrain loader.

Every sample has ``cls`` (label) and ``json`` (id, estimator, reduce, ...). The formats differ in what
carries the image and the mask:

- ``npy``: ``image.npy`` the masked, filled image (float32); ``mask.npy`` the removed features (bool).
- ``png``: ``image.png`` the masked, filled image (8-bit); ``mask.npy``.
- ``uint8``: the *source* image (``source_fields``) and ``mask.bits`` (the removed features, one bit
  each, ``np.packbits``); the fill is applied at load, on the model's device (roar.masking.at_load).
- ``buckets``: ``buckets`` (roar.masking.buckets: one bucket per feature in the fewest bits, bit planes, raw
  bytes), one set per (base model, ranking) for every (mode, fraction) of the grid and every fill, read
  in lockstep with the base model's image set (``image_sample``: the source image and ``cls``, stored
  once for every ranking); masked and filled at load.

The source image is stored as the source holds it: the original encoded file (``source.<ext>``: JPEG,
PNG) where the dataset reads files, else ``image.npy`` in uint8 where the pixels are 8-bit exactly
(CIFAR), else float32 (digits' 17 grey levels, rendered shapes).
"""

import io

import numpy as np
import torch
from PIL import Image

from roar.errors import RoarError
from roar.registry import Registry
from roar.store.shards import decode_key, encode_key, json_bytes, load_npy, npy_bytes

# mask.format: each entry encodes a sample's fields; its traits say how the stages treat its sets.
# - at_load: the mask and the fill are made at load, on the model's device (roar.masking.at_load);
# - per_ranking: one set per ranking serves every mode, fill and fraction (else one set per setting);
# - stores_source: the source image is stored as the source holds it (its bytes follow the source files);
# - compressed: a sample's bytes depend on the pixels (the planner encodes real images);
# - eight_bit: it is for 8-bit data only.
FORMATS = Registry(
    "mask.format",
    defaults={"at_load": False, "per_ranking": False, "stores_source": False, "compressed": False, "eight_bit": False},
)


def eight_bit(images: torch.Tensor) -> torch.Tensor | None:
    """``images`` as uint8 when every pixel is k/255 exactly (decoding gives them back bit for bit), else None."""
    pixels = torch.round(images * 255).to(torch.uint8)
    return pixels if torch.equal(pixels.float() / 255, images) else None


def source_fields(image: torch.Tensor, encoded: tuple | None = None) -> dict:
    """The source image as stored: ``encoded`` = (extension, file bytes) when the dataset reads files,
    else uint8 where exact, else float32."""
    if encoded is not None:
        ext, data = encoded
        return {f"source.{ext}": data}
    pixels = eight_bit(image)
    return {"image.npy": npy_bytes((image if pixels is None else pixels).numpy())}


def pack_bits(removed: np.ndarray) -> bytes:
    return np.packbits(removed.reshape(-1)).tobytes()


@FORMATS.register("npy")
def npy_fields(image: torch.Tensor, removed: np.ndarray, encoded=None) -> dict:
    """The filled image as float32 and the removed features."""
    return {"image.npy": npy_bytes(image.numpy().astype(np.float32)), "mask.npy": npy_bytes(removed)}


@FORMATS.register("png", compressed=True)
def png_fields(image: torch.Tensor, removed: np.ndarray, encoded=None) -> dict:
    """The filled image as an 8-bit PNG (fast, lossless) and the removed features."""
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(buf, format="PNG", compress_level=1)
    return {"image.png": buf.getvalue(), "mask.npy": npy_bytes(removed)}


@FORMATS.register("uint8", at_load=True, stores_source=True, eight_bit=True)
def uint8_fields(image: torch.Tensor, removed: np.ndarray, encoded=None) -> dict:
    """The source image and the removed features' bits; the set records its one fill, made at load."""
    return {**source_fields(image, encoded), "mask.bits": pack_bits(removed)}


@FORMATS.register("buckets", at_load=True, per_ranking=True, stores_source=True)
def bucket_fields(packed: np.ndarray) -> dict:
    """The packed bucket map's raw bytes (bits x ceil(F / 8) of them, ``pack_buckets``); the image and label
    are in the base model's image set, read beside it."""
    return {"buckets": np.ascontiguousarray(packed, dtype=np.uint8).tobytes()}


def masked_sample(  # noqa: PLR0913 (a sample's fields)
    sample_id: str, image: torch.Tensor, removed: np.ndarray, label: int, fmt: str, meta: dict, encoded=None
) -> dict:
    """One sample of a set of one setting (``fmt`` a format that is not per ranking): the fields its format
    encodes, the label and the sample's json."""
    fields = FORMATS[fmt](image, removed, encoded)
    return {
        "__key__": encode_key(sample_id),
        **fields,
        "cls": str(int(label)).encode(),
        "json": json_bytes({"id": sample_id, "label": int(label), **meta}),
    }


def image_sample(sample_id: str, image: torch.Tensor, label: int, encoded=None) -> dict:
    """One sample of a base model's image set: the source image and its label."""
    return {"__key__": encode_key(sample_id), **source_fields(image, encoded), "cls": str(int(label)).encode()}


def bucket_sample(sample_id: str, packed: np.ndarray) -> dict:
    """One sample of a bucket set: the packed bucket map's raw bytes alone (bits x ceil(F / 8) of them,
    ``pack_buckets``); the image and label are in the image set, read beside it."""
    return {"__key__": encode_key(sample_id), **FORMATS["buckets"](packed)}


def decode_masked_sample(sample: dict, with_mask: bool, decode_source=None, mask_shape=None) -> dict:
    """Tensors from one shard sample's raw bytes: the image (float in [0, 1]), label, id, and the mask
    (``removed``) when ``with_mask``; a bucket sample's ``buckets`` and a uint8 sample's ``removed``
    always (their masking happens later). ``decode_source(ext, bytes)``: the dataset's own decoding
    of an encoded source file; ``mask_shape``: the removed mask's shape (uint8 sets)."""
    source = next((k for k in sample if k.startswith("source.")), None)
    if source is not None:
        if decode_source is None:
            raise RoarError(f"sample {decode_key(sample['__key__'])} holds an encoded {source}: pass the data config.")
        image = decode_source(source.partition(".")[2], sample[source])
    elif "image.npy" in sample:
        array = load_npy(sample["image.npy"])
        image = torch.from_numpy(array).float() / 255 if array.dtype == np.uint8 else torch.from_numpy(array)
    else:
        pixels = np.asarray(Image.open(io.BytesIO(sample["image.png"])), dtype=np.uint8)
        image = torch.from_numpy(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)).float() / 255
    out = {"image": image.float(), "label": int(sample["cls"]), "id": decode_key(sample["__key__"])}
    if "buckets" in sample:
        out["buckets"] = torch.frombuffer(bytearray(sample["buckets"]), dtype=torch.uint8)
    elif "mask.bits" in sample:
        bits = np.unpackbits(np.frombuffer(sample["mask.bits"], dtype=np.uint8))[: int(np.prod(mask_shape))]
        out["removed"] = torch.from_numpy(bits.astype(bool).reshape(mask_shape))
    elif with_mask:
        out["removed"] = torch.from_numpy(load_npy(sample["mask.npy"]).astype(bool))
    return out
