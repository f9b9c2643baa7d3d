"""The LightningDataModule over any registered dataset: train and test loaders, channel stats."""

import lightning as L
from torch.utils.data import DataLoader, DistributedSampler

from roar.data.registry import build_dataset
from roar.data.stats import channel_stats


class ImageDataModule(L.LightningDataModule):
    def __init__(self, data_cfg, seed: int, cache_dir):
        super().__init__()
        self.cfg, self.seed, self.cache_dir = data_cfg, int(seed), cache_dir
        self.train_set = self.test_set = self.stats = None

    def setup(self, stage=None):
        if self.train_set is None:
            self.train_set = build_dataset(self.cfg, "train")
            self.test_set = build_dataset(self.cfg, "test")
            self.stats = channel_stats(self.train_set, self.cfg, self.cache_dir)

    @property
    def num_classes(self):
        return self.train_set.num_classes

    @property
    def image_shape(self):
        return tuple(self.train_set[0]["image"].shape)

    def _loader(self, dataset, shuffle):
        # One sampler for one process and for DDP: the order is a function of (seed, epoch, rank),
        # so ranks see disjoint data and a resumed run sees the batches an uninterrupted one would.
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=self.seed)
        workers = int(self.cfg.get("num_workers", 0))
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
