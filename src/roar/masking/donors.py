"""Donor images for fills that take other training images' pixels (``needs_donors``)."""

import torch

from roar.errors import RoarError
from roar.utils.seeding import sample_seed


def donor_images(train_set, ids, maps_seed: int) -> torch.Tensor:
    """One other training image per sample id, chosen per (maps_seed, id): the same donor in
    roar-mask and roar-eval, whatever the batch."""
    n, picks = len(train_set), []
    for sid in ids:
        j = sample_seed(maps_seed, sid, "donor") % n
        if train_set.ids[j] == sid:
            j = (j + 1) % n
        picks.append(train_set[j]["image"])
    return torch.stack(picks)


def donor_pool(train_set, size: int, maps_seed: int) -> torch.Tensor:
    """(min(size, N), C, H, W) training images chosen per maps_seed without replacement, in dataset order:
    the distractors learned masks are superimposed on (roar.estimators.learned_masks)."""
    n = len(train_set)
    if int(size) < 1:
        raise RoarError(f"attribute.params.mask_pool={size}: the distractor pool needs at least one training image.")
    picks = torch.randperm(n, generator=torch.Generator().manual_seed(sample_seed(maps_seed, "pool", "donor-pool")))
    return torch.stack([train_set[int(j)]["image"] for j in sorted(picks[: int(size)].tolist())])
