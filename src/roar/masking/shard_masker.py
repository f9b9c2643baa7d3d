"""Writing one source shard's samples into the sets of roar-mask (roar.masking.run plans which): the image
set's shard (the source images), rank buckets, or masked samples for every (mode, fraction) at once."""

from dataclasses import dataclass

import torch

from roar.masking.buckets import pack_buckets, rank_buckets
from roar.masking.donors import donor_images
from roar.masking.removal import feature_ranks, mask_images, ranking_scores, removed_features, removed_pixels
from roar.store.masked import FORMATS, bucket_sample, image_sample, masked_sample
from roar.store.sharded import OutputSet, open_shard, seal_shard, write_sealed


@dataclass(frozen=True)
class SourceShard:
    """One attribution shard's maps and the samples they belong to: ``ids`` are samples ``lo``.. of ``ds``."""

    ds: object
    split: str
    index: int
    lo: int
    ids: list
    maps: torch.Tensor | None = None  # None: a shard of the image set


@dataclass
class ShardMasker:
    """Masks source shards into their sets: the bound fill (its mean and maps seed), the training split its
    donors come from, the ranking's reduction, the batch size, the sets' format, the progress bar."""

    fill: object  # a BoundFill
    train_set: object
    reduce: str
    batch_size: int
    fmt: str
    bar: object

    def write_images(self, shard: SourceShard, out: OutputSet) -> None:
        """One shard of the image set: its samples, each its source file (or pixels) and label."""
        ds = shard.ds

        def samples():
            for i in range(shard.lo, shard.lo + len(shard.ids)):
                sample = ds[i]
                yield image_sample(ds.ids[i], sample["image"], int(sample["label"]), ds.encoded(i))
                self.bar.update(1)

        write_sealed(out, shard.split, shard.index, samples())

    def write(self, shard: SourceShard, todo: list) -> None:
        """Mask ``shard`` for every set in ``todo`` (each (mode, fraction), or one bucket set), streaming into
        their tars; a failure leaves no partial tar."""
        writers = {o.folder: open_shard(o, shard.split, shard.index) for o in todo}
        try:
            for a in range(0, len(shard.ids), self.batch_size):
                self.batch(shard, a, todo, writers)
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        for o in todo:
            seal_shard(o, shard.split, shard.index, writers[o.folder].close())

    def batch(self, shard: SourceShard, a: int, todo: list, writers: dict) -> None:
        batch_ids, patch = shard.ids[a : a + self.batch_size], todo[0].settings["patch"]
        scores = ranking_scores(shard.maps[a : a + self.batch_size], self.reduce, patch)
        ranks = feature_ranks(scores, batch_ids, self.fill.maps_seed)
        if FORMATS[self.fmt].per_ranking:  # the ranks alone: the images are in the image set
            st = todo[0].settings
            packed = pack_buckets(rank_buckets(ranks, st["boundaries"]), st["bits"]).numpy()
            for k, sid in enumerate(batch_ids):
                writers[todo[0].folder].write(bucket_sample(sid, packed[k]))
            self.bar.update(len(batch_ids))
            return
        at_load = FORMATS[self.fmt].at_load  # the source image and the mask; the fill is made at load
        ds, lo = shard.ds, shard.lo + a
        samples = [ds[lo + k] for k in range(len(batch_ids))]
        images, labels = torch.stack([x["image"] for x in samples]), [int(x["label"]) for x in samples]
        encoded = [ds.encoded(lo + k) for k in range(len(batch_ids))] if at_load else [None] * len(batch_ids)
        needs_donors = self.fill.needs_donors and not at_load
        donors = donor_images(self.train_set, batch_ids, self.fill.maps_seed) if needs_donors else None
        for o in todo:
            st = o.settings
            if at_load:
                masked = images
                removed = removed_pixels(removed_features(ranks, st["fraction"], st["mode"]), images.shape, patch)
            else:
                masked, removed = mask_images(
                    images, ranks, st["mode"], st["fraction"], self.fill, donors, patch, batch_ids
                )
            removed_np = removed.numpy()
            meta = {k: st[k] for k in ("estimator", "reduce", "mode", "fraction", "patch")} | {"fill": st["fill_label"]}
            for k, sid in enumerate(batch_ids):
                extra = {"filled_with": self.fill.fallback} if self.fill.fallback and removed_np[k].all() else {}
                writers[o.folder].write(
                    masked_sample(sid, masked[k], removed_np[k], labels[k], self.fmt, meta | extra, encoded[k])
                )
        self.bar.update(len(batch_ids))
