"""Donor images for fills that take other training images' pixels (``needs_donors``)."""

import torch

from roar.utils.seeding import sample_seed


def donor_images(train_set, ids, seed: int) -> torch.Tensor:
    """One other training image per sample id, chosen per (maps seed, id): the same donor in
    roar-mask and roar-eval, whatever the batch."""
    n, picks = len(train_set), []
    for sid in ids:
        j = sample_seed(seed, sid, "donor") % n
        if train_set.ids[j] == sid:
            j = (j + 1) % n
        picks.append(train_set[j]["image"])
    return torch.stack(picks)
