"""The one ranking of features, with the one tie-break, used by every stage.

Features are ordered by score, highest first. Ties are broken by a random permutation drawn per
(seed, sample id) ("seeded jitter" without touching the scores): the features are first shuffled
by that permutation, then stably sorted by score. So equal scores (a flat region, a zero gradient)
are ordered at random, but the same random order every time, on every machine.
"""

import torch

from roar.estimators.controls import per_sample


def tie_break_permutations(ids, num_features: int, seed: int) -> torch.Tensor:
    """(B, F) per-sample random permutations, a function of (seed, sample id)."""
    return per_sample(seed, ids, "tie-break", num_features, fn=lambda n, generator: torch.randperm(n, generator=generator))


def rank_features(scores: torch.Tensor, ids, seed: int = 0) -> torch.Tensor:
    """(B, F) feature indices, most important (highest score) first, ties in seeded random order."""
    perm = tie_break_permutations(ids, scores.shape[1], seed).to(scores.device)
    by_score = torch.argsort(scores.gather(1, perm), dim=1, descending=True, stable=True)
    return perm.gather(1, by_score)
