"""Training-time augmentations: crop/flip, FPA, random erasing, input dropout, missingness."""

from roar.augment.batch import BatchAugment
from roar.augment.perturbations import AUGMENTS, fpa, fpa_loop, fpa_removed, grow_squares, register_perturbation

__all__ = [
    "AUGMENTS",
    "BatchAugment",
    "fpa",
    "fpa_loop",
    "fpa_removed",
    "grow_squares",
    "register_perturbation",
]
