"""The LightningDataModule over any registered dataset: train and test loaders, channel stats."""

import lightning as L
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset

from roar.data.masked import open_shard_set
from roar.data.registry import build_dataset
from roar.data.stats import channel_stats


class ImageDataModule(L.LightningDataModule):
    """The source dataset ``data_cfg`` (a base model), or the masked shard set ``shards`` (a ShardSetKey:
    a retrain run) read with ``retrain_cfg`` (on_error, shuffle_buffer); batch size and workers from ``data_cfg``."""

    def __init__(self, data_cfg, seed: int, cache_dir, shards=None, retrain_cfg=None):
        super().__init__()
        self.cfg, self.seed, self.cache_dir = data_cfg, int(seed), cache_dir
        self.shards, self.retrain_cfg = shards, retrain_cfg or {}
        self.train_set = self.test_set = self.stats = None

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
