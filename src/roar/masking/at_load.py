"""Masking at load, on the model's device: the formats that store the source image and a compact mask
(``mask.format=uint8``: the removed bits; ``buckets``: rank buckets, roar.masking.buckets) become the
batch a materialized set would give, inside the training step (the DataModule's
``on_after_batch_transfer``, after the batch reached the device, like the FPA augmentation).

The mask is ``removed_from_buckets`` (equal to ``removed_features`` on the ranks roar-mask ranked) or the
stored bits, expanded to pixels by ``removed_pixels``, and filled by the one BoundFill (``apply``) with the
training split's mean, the batch's sample ids and the maps seed: the same function and arguments
roar-mask's materialized formats use, so a batch equals theirs bit for bit on the CPU (tested, every
fill but ``random_image``). ``random_image`` takes its donors from the batch itself (each image's donor
another image of its batch, drawn per (maps seed, sample id)): a donor from disk per image would cost a
second image read per sample; materialized sets draw donors from the whole training split, so their
``random_image`` images differ (docs/methods.md).
"""

import torch
from omegaconf import OmegaConf

from roar.masking.buckets import check_on_grid, removed_from_buckets, unpack_buckets
from roar.masking.fills import bind_fill
from roar.masking.removal import removed_pixels
from roar.store.masked import FORMATS
from roar.utils.seeding import sample_seed


def batch_donors(images: torch.Tensor, ids, maps_seed: int, mean) -> torch.Tensor:
    """Each image's donor: another image of its batch, the shift drawn per (maps_seed, sample id). A batch of
    one has no other image: its donor is the channel-mean image (nothing of the image leaks through)."""
    b = images.shape[0]
    if b == 1:
        return (
            torch.tensor([float(m) for m in mean], dtype=images.dtype, device=images.device)
            .view(1, -1, 1, 1)
            .expand_as(images)
        )
    shift = torch.tensor([1 + sample_seed(maps_seed, sid, "batch-donor") % (b - 1) for sid in ids])
    index = (torch.arange(b) + shift) % b
    return images.index_select(0, index.to(images.device))


class LoadMasker:
    """Makes a (mode, fraction, fill) batch from a set masked at load. ``manifest``: the set's manifest
    (format, image_shape, patch, mean, maps_seed; bucket sets also fractions, boundaries, bits,
    num_features). ``fill``: the run's fill config; a bucket set serves every fill, a uint8 set is one
    fill's and uses the one it records."""

    def __init__(self, manifest: dict, fill, mode: str | None = None, fraction: float | None = None):
        self.format = FORMATS[manifest["format"]]  # a per-ranking set serves every fill; another records its own
        self.fill_cfg = fill if self.format.per_ranking else OmegaConf.create(manifest["fill"])
        self.patch, self.mean, self.maps_seed = manifest.get("patch"), manifest["mean"], int(manifest["maps_seed"])
        self.fill = bind_fill(self.fill_cfg, int(manifest["image_shape"][0]), self.mean, self.maps_seed)
        if self.format.per_ranking:
            check_on_grid(manifest["fractions"], fraction, mode)  # refused now, not at the first batch
            self.mode, self.fraction = mode, float(fraction)
            self.fractions, self.boundaries = list(manifest["fractions"]), list(manifest["boundaries"])
            self.bits, self.num_features = int(manifest["bits"]), int(manifest["num_features"])

    def removed(self, batch) -> torch.Tensor:
        if not self.format.per_ranking:
            return batch["removed"]
        buckets = unpack_buckets(batch["buckets"], self.num_features, self.bits)
        flat = removed_from_buckets(buckets, self.boundaries, self.fractions, self.fraction, self.mode)
        return removed_pixels(flat, batch["image"].shape, self.patch)

    def __call__(self, batch: dict) -> dict:
        images, ids = batch["image"], list(batch["id"])
        removed = self.removed(batch)
        donors = batch_donors(images, ids, self.maps_seed, self.mean) if self.fill.needs_donors else None
        out = {k: v for k, v in batch.items() if k not in ("buckets", "removed")}
        out["image"] = self.fill.apply(images, removed, ids, donors)
        if self.fill.drops_tokens:  # the mask travels on to the ViT, as from a materialized token-drop set
            out["removed"] = removed
        return out


def first_test_image(folder, fill_cfg, mode: str, fraction: float) -> torch.Tensor | None:
    """The first test image of the set in ``folder`` as a retrain run on it sees it: a materialized set's image
    as stored, a set masked at load masked and filled here (a bucket set serves every mode, fill and fraction
    of its grid: ``fill_cfg``, ``mode`` and ``fraction`` pick one). None when the set, its test split or the
    fraction on its grid is not there."""
    from torch.utils.data import default_collate

    from roar.data.masked_shards import MaskedShards
    from roar.errors import RoarError
    from roar.store.manifest import read_manifest
    from roar.store.masked import FORMATS

    manifest = read_manifest(folder)
    if manifest is None or "test" not in manifest.get("counts", {}):
        return None
    sample = next(iter(MaskedShards(folder, "test", manifest)), None)
    if sample is None:
        return None
    batch = default_collate([sample])
    if FORMATS[manifest.get("format", "npy")].at_load:
        try:
            batch = LoadMasker(manifest, fill_cfg, mode, fraction)(batch)
        except RoarError:  # a fraction off the bucket set's grid
            return None
    return batch["image"][0]
