"""Device-resident data (``data.in_memory``): a split decoded once into tensors on the model's device,
batches drawn by index gathers in exactly the order of the DataLoader path.

Images are kept as uint8 where that is exact (the source holds 8-bit pixels: CIFAR, image folders,
PNG shards; converted to float on the device per batch, bit-identical to the loader's ``/ 255``), as
float32 otherwise (digits' 17 grey levels, rendered shapes, npy shards). The order is the DataLoader
path's: ``DistributedSampler`` over the dataset (a function of seed, epoch and rank) for map-style
datasets, and ``MaskedShards.order`` (shard order, rank split and buffer shuffle, replayed on
positions) for shard sets, so DDP, resume and the augmentations see the same batches either way.
Lightning calls ``sampler.set_epoch`` before each epoch, as it does for a DataLoader's sampler.
"""

import math

import torch
from torch.utils.data import DistributedSampler, IterableDataset

from roar.errors import RoarError
from roar.store.masked import eight_bit
from roar.utils.progress import progress

IN_MEMORY = ("auto", "true", "false")


def resident_bytes(dataset) -> int:
    """An upper bound of a split's size in memory: float32 images (and a mask byte per pixel for shards)."""
    n = int(getattr(dataset, "num_samples", None) or len(dataset))
    c, h, w = dataset.image_shape
    return n * (4 * c * h * w + h * w)


def wants_resident(data_cfg, sets, on_error: str = "raise") -> bool:
    """``data.in_memory``: true, false, or auto (resident when both splits fit ``data.in_memory_mb`` and no
    broken sample is to be skipped: skipping is the streaming reader's job)."""
    mode = str(data_cfg.get("in_memory", "auto")).lower()
    if mode not in IN_MEMORY:
        raise RoarError(f"data.in_memory={data_cfg.get('in_memory')!r}; valid: auto, true, false.")
    if mode != "auto":
        return mode == "true"
    budget = float(data_cfg.get("in_memory_mb", 4096)) * 2**20
    return on_error == "raise" and sum(resident_bytes(s) for s in sets) <= budget


def _samples(dataset):
    if isinstance(dataset, IterableDataset):
        return dataset.samples()
    return (dataset[i] for i in range(len(dataset)))


def decode(dataset, desc: str) -> dict:
    """Every sample of ``dataset`` stacked: tensors per key (images uint8 where exact), lists for strings."""
    columns = {}
    n = int(getattr(dataset, "num_samples", None) or len(dataset))
    with progress(n, desc, "img", disable=n < 20000, leave=False) as bar:
        for sample in _samples(dataset):
            for key, value in sample.items():
                columns.setdefault(key, []).append(value)
            bar.update(1)
    out = {}
    for key, values in columns.items():
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], float):  # as default_collate makes them
            out[key] = torch.tensor(values, dtype=torch.float64)
        elif isinstance(values[0], int):
            out[key] = torch.tensor(values)
        else:
            out[key] = list(values)
    images = out["image"]
    pixels = eight_bit(images)
    if pixels is not None:
        out["image"] = pixels
    return out


class ResidentLoader:
    """An iterable of batch dicts over one decoded split: ``len()`` batches of ``batch_size`` (the last one
    short, as a DataLoader's), in ``order(epoch)``; ``to(device)`` moves the split once."""

    def __init__(self, columns: dict, order, batch_size: int):
        self.columns, self.order, self.batch_size, self.epoch = columns, order, int(batch_size), 0
        self.sampler, self.batch_sampler = self, None  # Lightning calls loader.sampler.set_epoch(epoch) per epoch
        self.length = math.ceil(len(order(0)) / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def to(self, device):
        self.columns = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.columns.items()}
        return self

    def __len__(self):
        return self.length

    def __iter__(self):
        order = torch.as_tensor(self.order(self.epoch), dtype=torch.long)
        device = self.columns["image"].device
        for chunk in order.split(self.batch_size):
            index = chunk.to(device, non_blocking=True)
            batch = {}
            for key, column in self.columns.items():
                if isinstance(column, torch.Tensor):
                    batch[key] = column.index_select(0, index)
                else:
                    batch[key] = [column[i] for i in chunk.tolist()]
            if batch["image"].dtype == torch.uint8:
                batch["image"] = batch["image"].float() / 255
            yield batch


def sampler_order(dataset, world: int, rank: int, shuffle: bool, seed: int):
    """The DataLoader path's order for a map-style dataset: its DistributedSampler's, per epoch."""
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed)

    def order(epoch: int) -> list:
        sampler.set_epoch(epoch)
        return list(sampler)

    return order
