"""``roar.no_retrain``: the no-retraining evaluations of a model and its maps, from plain tensors.

The same computation as roar-eval (roar.evaluate.rankings): the features ranked by the maps (ties drawn per
sample id and seed, roar.masking.ranking), masked in both modes at every fraction by the one masking function,
every masked copy through the model; MIF/LIF (FPA section 3) and fidelity A, ROAR's deletion accuracies
(Fig. 3, no retraining) and where the predictions go (missingness paper section 3). Nothing is written.
"""

from dataclasses import dataclass, field

import torch
import torch.nn as nn
from omegaconf import OmegaConf

from roar.errors import RoarError
from roar.estimators.reduce import REDUCTIONS
from roar.evaluate.curves import CURVE_MODES, MaskGrid, masked_logits, step_fractions
from roar.evaluate.rankings import Measures, Tally
from roar.masking.fills import FILLS, bind_fill
from roar.masking.removal import MODES, check_fractions, check_patch, feature_ranks, ranking_scores

ROAR_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)  # ROAR Fig. 4's grid


@dataclass(frozen=True)
class NoRetrainResult:
    """What ``no_retrain`` measured.

    Attributes:
        fractions: the deletion fractions t (0 included).
        accuracy: {mode: accuracy of the unchanged model at each of ``fractions``} (ROAR Fig. 3).
        steps: the MIF/LIF fractions (0 to 1 in ``step``).
        mif, lif: mean target logit normalized to the unmasked one at each step (FPA section 3).
        mif_ci, lif_ci: their 95% normal intervals over images (half widths).
        fidelity: fidelity A, the mean area between LIF and MIF; ``fidelity_ci`` its 95% half width.
        predictions: per curve (mif, lif) and step: the share of predictions unchanged, the class entropy
            (nats and normalized) and the histogram of predicted classes (missingness paper section 3).
        details: the whole result in roar-eval's layout (also ``fidelity_per_image``).
    """

    fractions: list
    accuracy: dict
    steps: list
    mif: list
    lif: list
    mif_ci: list
    lif_ci: list
    fidelity: float
    fidelity_ci: float
    predictions: dict
    details: dict = field(repr=False)

    @classmethod
    def of(cls, details: dict) -> "NoRetrainResult":
        deletion = details["deletion"]
        return cls(
            fractions=next(iter(deletion.values()))["fractions"],
            accuracy={mode: d["accuracy"] for mode, d in deletion.items()},
            steps=details["fractions"],
            mif=details["mif"]["mean"],
            lif=details["lif"]["mean"],
            mif_ci=details["mif"]["ci"],
            lif_ci=details["lif"]["ci"],
            fidelity=details["fidelity"]["mean"],
            fidelity_ci=details["fidelity"]["ci"],
            predictions=details["predictions"],
            details=details,
        )


class _Plain(nn.Module):
    """Any classifier as roar's masking calls it (``model(x, keep)``; ``keep`` is only a token model's)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, keep=None):
        return self.net(x)


def fill_config(fill, channels: int):
    """A fill's config from its name or a dict (``{"name": "linear", "noise": 0}``), its defaults filled in."""
    given = {"name": fill} if isinstance(fill, str) else dict(fill)
    if "name" not in given:
        raise RoarError(f"fill={fill!r}: give a fill's name, or a dict with its 'name' and settings.")
    name = str(given["name"])
    entry = FILLS[name]
    if entry.drops_tokens or entry.leakage_control:
        raise RoarError(
            f"fill={name} does not paint pixels (token dropping, the leakage control); roar.no_retrain masks any "
            f"model's input with a painting fill. Use roar-eval for a token-dropping ViT."
        )
    return OmegaConf.create({**entry.params, **given})


def _checked_inputs(images, labels, maps, donors):
    if images.dim() != 4:
        raise RoarError(f"images: expected (N, C, H, W), got shape {tuple(images.shape)}.")
    n, _, h, w = images.shape
    if n == 0:
        raise RoarError("images: no image given.")
    if maps.dim() != 4 or maps.shape[0] != n or maps.shape[2:] != (h, w) or maps.shape[1] not in (1, images.shape[1]):
        raise RoarError(
            f"maps: expected (N, C or 1, H, W) = ({n}, {images.shape[1]} or 1, {h}, {w}) like the images, got "
            f"{tuple(maps.shape)}."
        )
    if labels.shape != (n,):
        raise RoarError(f"labels: expected ({n},), one class per image, got {tuple(labels.shape)}.")
    if not torch.isfinite(maps).all():
        raise RoarError("maps have NaN or infinite values; every feature needs a score to be ranked.")
    if donors is not None and donors.shape != images.shape:
        raise RoarError(f"donors: one image per image, {tuple(images.shape)}; got {tuple(donors.shape)}.")


def no_retrain(  # noqa: PLR0913 (the keyword settings of one evaluation, as roar-eval's config has them)
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    maps: torch.Tensor,
    fill="channel_mean",
    fractions=ROAR_FRACTIONS,
    modes=MODES,
    granularity: str = "pixel",
    *,
    patch_size: int | None = None,
    reduce: str = "abs_sum",
    step: float = 0.1,
    target: torch.Tensor | None = None,
    ids=None,
    seed: int = 0,
    mean=None,
    donors: torch.Tensor | None = None,
    batch_size: int = 64,
    max_rows: int = 512,
) -> NoRetrainResult:
    """Evaluate ``maps`` on ``model`` without retraining: deletion accuracies, MIF/LIF, fidelity A.

    Args:
        model: any classifier ``model(images) -> logits`` (put in eval mode for the call, then restored).
        images: (N, C, H, W) in the model's input space; the fill paints in that space.
        labels: (N,) classes (the deletion accuracies).
        maps: (N, C or 1, H, W) scores, higher is more important.
        fill: a fill's name or a dict of its settings (``{"name": "linear", "noise": 0}``).
        fractions: the deletion fractions t (0 is added); ``modes``: remove (ROAR) and/or keep (KAR).
        granularity: ``pixel``, or ``patch`` (squares of ``patch_size``, ranked by their mean score).
        reduce: a (C, H, W) map to one score per pixel (``abs_sum``, ROAR's; ``sum`` for signed maps).
        step: the MIF/LIF step (FPA: 0.05). target: (N,) the classes explained; None: the predictions.
        ids, seed: ties are broken at random per id (None: the indices) and seed (roar's ``maps_seed``).
        mean: what ``channel_mean`` paints; None: the images' own channel mean (roar-eval: the training split's).
        donors: (N, C, H, W) one donor image per image, for a fill that paints from other images.
        batch_size: images per chunk; ``max_rows``: masked copies per forward pass.

    Returns:
        A NoRetrainResult (``.accuracy[mode]``, ``.mif``, ``.lif``, ``.fidelity``, ``.predictions``).
    """
    _checked_inputs(images, labels, maps, donors)
    _checked_settings(granularity, patch_size, reduce, images.shape, modes)
    bound = _bound_fill(fill, images, mean, seed, donors)
    steps, deletion = step_fractions(step), sorted({0.0, *check_fractions(fractions)})
    grid = MaskGrid(list(CURVE_MODES.values()), sorted(set(steps) | set(deletion)), patch_size, int(max_rows))
    measures = Measures(steps, deletion, 0.0, grid)
    ids = [str(i) for i in range(len(images))] if ids is None else [str(i) for i in ids]
    was_training = model.training
    model.eval()
    try:
        tally, classes = _measure(
            model, (images, labels, maps, target, donors), ids, measures, bound, reduce, seed, batch_size
        )
    finally:
        model.train(was_training)
    return NoRetrainResult.of(tally.result(measures, classes, list(modes)))


def _bound_fill(fill, images, mean, seed, donors):
    """The fill bound to its channel mean (given, or the images' own) and seed; donors where it needs them."""
    channels = images.shape[1]
    cfg = fill_config(fill, channels)
    if FILLS[cfg.name].needs_donors and donors is None:
        raise RoarError(f"fill={cfg.name} paints from other images: pass donors=, one image per image.")
    mean = images.float().mean((0, 2, 3)).tolist() if mean is None else [float(m) for m in mean]
    return bind_fill(cfg, channels, mean, int(seed))


def _checked_settings(granularity, patch_size, reduce, shape, modes) -> None:
    if granularity not in ("pixel", "patch") or (granularity == "patch") != (patch_size is not None):
        raise RoarError(f"granularity={granularity!r}: pixel, or patch with patch_size=<side of a patch>.")
    if reduce not in REDUCTIONS:
        raise RoarError(f"reduce={reduce!r}: one of {', '.join(REDUCTIONS)}.")
    check_patch(patch_size, shape, reduce)
    if not list(modes) or set(modes) - set(MODES):
        raise RoarError(f"modes={list(modes)}: a list of {', '.join(MODES)}.")


def _measure(model, tensors, ids, measures, fill, reduce, seed, batch_size) -> tuple:  # noqa: PLR0913 (the call's inputs, as no_retrain checked them)
    """(Tally, number of classes): every masked copy of every chunk through the model, tallied as roar-eval does."""
    images, labels, maps, target, donors = tensors
    device = next(iter(model.parameters()), torch.empty(0)).device
    tally, wrapped, classes, grid = Tally("maps", "maps", reduce), _Plain(model), 1, measures.grid
    for lo in range(0, len(images), int(batch_size)):
        part = slice(lo, lo + int(batch_size))
        x, y = images[part].to(device), labels[part].to(device)
        chunk_ids, d = ids[part], None if donors is None else donors[part].to(device)
        scores = ranking_scores(maps[part].to(device), reduce, grid.patch)
        ranks = feature_ranks(scores, chunk_ids, int(seed))
        logits = masked_logits(wrapped, x, ranks, grid, fill, d, chunk_ids)
        clean, classes = logits[:, measures.mode("remove"), grid.fractions.index(0.0)], logits.shape[-1]
        tally.add(logits, clean.argmax(1) if target is None else target[part].to(device), measures, y, scores)
    return tally, classes
