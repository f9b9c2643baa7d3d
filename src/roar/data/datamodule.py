"""The LightningDataModule over any registered dataset: train and test loaders, channel stats."""

import lightning as L
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, default_collate

from roar.data.masked_shards import open_shard_set
from roar.data.registry import build_dataset
from roar.data.resident import ResidentLoader, decode, sampler_order, wants_resident
from roar.data.stats import channel_stats


class ImageDataModule(L.LightningDataModule):
    """The source dataset ``data_cfg`` (a base model), or the masked shard set ``shards`` (a ShardSetKey:
    a retrain run) read with ``retrain_cfg`` (on_error, shuffle_buffer); batch size and workers from ``data_cfg``."""

    def __init__(self, data_cfg, seed: int, cache_dir, shards=None, retrain_cfg=None):
        super().__init__()
        self.cfg, self.seed, self.cache_dir = data_cfg, int(seed), cache_dir
        self.shards, self.retrain_cfg = shards, retrain_cfg or {}
        self.train_set = self.test_set = self.stats = None
        self.resident = {}  # split -> decoded columns, when the data live on the device (data.in_memory)
        self.masker = None  # a set masked at load: batch -> masked batch (roar.masking.at_load), set by the run

    def on_after_batch_transfer(self, batch, dataloader_idx):
        """Sets masked at load (``mask.format`` uint8, buckets) are masked and filled here, on the model's device."""
        return self.masker(batch) if self.masker is not None else batch

    def setup(self, stage=None):
        if self.train_set is not None:
            return
        if self.shards is not None:
            opts = {
                "on_error": self.retrain_cfg.get("on_error", "raise"),
                "shuffle_buffer": int(self.retrain_cfg.get("shuffle_buffer", 1000)),
            }
            self.train_set, self.test_set = open_shard_set(self.shards, self.seed, **opts)  # checked and verified once
            self.stats = self.train_set.stats  # the source data's, recorded in the manifest
        else:
            self.train_set = build_dataset(self.cfg, "train")
            self.test_set = build_dataset(self.cfg, "test")
            self.stats = channel_stats(self.train_set, self.cfg, self.cache_dir)
        on_error = self.retrain_cfg.get("on_error", "raise") if self.shards is not None else "raise"
        if wants_resident(self.cfg, (self.train_set, self.test_set), on_error):
            self.resident = {
                "train": decode(self.train_set, "train split"),
                "test": decode(self.test_set, "test split"),
            }

    def first_images(self, n: int):
        """The first ``n`` training images in storage order (a data-dependent initialization's sample)."""
        if self.resident:
            k = min(n, len(self.resident["train"]["label"]))
            batch = next(iter(ResidentLoader(self.resident["train"], lambda epoch: list(range(k)), k)))
        else:
            samples = iter(self.train_set.samples()) if isinstance(self.train_set, IterableDataset) else None
            count = int(getattr(self.train_set, "num_samples", 0) or len(self.train_set))
            batch = default_collate([next(samples) if samples else self.train_set[i] for i in range(min(n, count))])
        return self.on_after_batch_transfer(batch, 0)["image"]

    @property
    def num_classes(self):
        return self.train_set.num_classes

    @property
    def image_shape(self):
        return tuple(self.train_set.image_shape)

    def set_epoch(self, epoch: int) -> None:
        """Streaming datasets reshuffle per epoch; map-style ones get it from their sampler."""
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)

    def _loader(self, dataset, shuffle):
        # One sampler for one process and for DDP: the order is a function of (seed, epoch, rank),
        # so ranks see disjoint data and a resumed run sees the batches an uninterrupted one would.
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        workers = int(self.cfg.get("num_workers", 0))
        if self.resident:  # the same order, drawn from tensors on the model's device
            split = "train" if dataset is self.train_set else "test"
            if isinstance(dataset, IterableDataset):
                dataset.configure(rank, world, 0)
                order = dataset.order  # the shard reader's own order, replayed on positions
            else:
                order = sampler_order(dataset, world, rank, shuffle, self.seed)
            loader = ResidentLoader(self.resident[split], order, int(self.cfg.batch_size))
            return loader.to(self.trainer.strategy.root_device) if self.trainer else loader
        if isinstance(dataset, IterableDataset):  # shards: split by rank and worker inside the dataset
            dataset.configure(rank, world, workers)
            return DataLoader(dataset, batch_size=int(self.cfg.batch_size), num_workers=workers)
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=self.seed)
        return DataLoader(
            dataset,
            batch_size=int(self.cfg.batch_size),
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def train_dataloader(self):
        return self._loader(self.train_set, shuffle=True)

    def test_dataloader(self):
        return self._loader(self.test_set, shuffle=False)
