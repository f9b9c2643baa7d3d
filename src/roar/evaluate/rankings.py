"""One pass over the evaluated test images for every ranking (roar-eval's work, roar.evaluate.run around it).

Each image is loaded once; the maps of every estimator are streamed side by side (their shards hold the
test split in dataset order); every masked copy of a batch (each mode x each fraction of ``Measures``)
goes through the model together (``masked_logits``). Per ranking a ``Tally`` accumulates the normalized
target logits of the MIF/LIF steps (FPA section 3), the predictions (missingness paper section 3), the
deletion accuracies (ROAR Fig. 3) and, for backward-selection rankings, the SIS statistics.
"""

from dataclasses import dataclass

import numpy as np
import torch

from roar.errors import RoarError
from roar.estimators.registry import stores_steps
from roar.evaluate.curves import (
    CURVE_MODES,
    MaskGrid,
    masked_logits,
    normalized_target_logits,
    prediction_shift,
    step_fractions,
    summarize_curves,
)
from roar.evaluate.sis import REGIONS, SisStats, check_sis
from roar.masking.donors import donor_images
from roar.masking.removal import check_fractions, feature_ranks, ranking_scores
from roar.store.maps import iter_maps
from roar.store.resolve import ranking_patch


@dataclass(frozen=True)
class Measures:
    """The fractions one pass masks at: the MIF/LIF ``steps``, the ``deletion`` fractions, and the keep
    fraction that leaves an SIS ranking's top-subset pixels; in both modes (MIF is remove, LIF keep)."""

    steps: list
    deletion: list
    subset_at: float
    grid: MaskGrid

    @classmethod
    def of(cls, cfg) -> "Measures":
        steps = step_fractions(cfg.eval.step)
        deletion = sorted(set(check_fractions(cfg.eval.fractions)))
        subset_at = round(1 - check_sis(cfg.eval.sis)["subset"], 9)  # keep at 1 - subset leaves the top pixels
        fractions = sorted(set(steps) | set(deletion) | {subset_at})
        modes = list(CURVE_MODES.values())  # remove, keep: MIF/LIF and both deletion modes from one pass
        return cls(steps, deletion, subset_at, MaskGrid(modes, fractions, ranking_patch(cfg), int(cfg.eval.max_rows)))

    def at(self, fractions) -> list:
        return [self.grid.fractions.index(t) for t in fractions]

    def mode(self, name: str) -> int:
        return self.grid.modes.index(name)


@dataclass
class Batch:
    """A chunk of test images on the device: their ids, samples, images, labels and the fill's donors."""

    ids: list
    samples: list
    images: torch.Tensor
    labels: torch.Tensor
    donors: torch.Tensor | None

    @classmethod
    def load(cls, test_set, train_set, indices, fill, device) -> "Batch":
        ids = [test_set.ids[i] for i in indices]
        samples = [test_set[i] for i in indices]
        images = torch.stack([x["image"] for x in samples]).to(device)
        labels = torch.tensor([int(x["label"]) for x in samples], device=device)
        donors = donor_images(train_set, ids, fill.maps_seed).to(device) if fill.needs_donors else None
        return cls(ids, samples, images, labels, donors)

    def regions(self) -> dict:
        """The ground-truth regions the samples carry (shapes: object, marker), stacked."""
        return {k: torch.stack([torch.as_tensor(x[k]) for x in self.samples]) for k in REGIONS if k in self.samples[0]}


class Refill:
    """The model's softmax on a batch's images ``rows`` with ``removed`` painted by the fill: an SIS
    re-evaluated with the filling its selection used."""

    def __init__(self, model, batch: Batch, fill):
        self.model, self.batch, self.fill = model, batch, fill

    @torch.no_grad()
    def __call__(self, rows, removed):
        b = self.batch
        donors = b.donors[rows] if b.donors is not None else None
        painted = self.fill.apply(b.images[rows], removed, [b.ids[i] for i in rows.tolist()], donors)
        return torch.softmax(self.model(painted), 1)


class Tally:
    """What one ranking accumulates over the batches; ``sis``: eval.sis's settings for a ranking of removal
    steps (backward selection, ``stores_steps``), else None."""

    def __init__(self, name: str, estimator: str, reduce: str, sis: dict | None = None):
        self.name, self.estimator, self.reduce = name, estimator, reduce
        self.normalized, self.predicted, self.correct, self.ordered = [], [], [], []
        self.example = None  # the first image's own curves, scores and map (FPA Fig. 5)
        self.sis = SisStats(**sis) if sis is not None else None

    def add(self, logits, target, measures: Measures, labels, scores) -> None:
        """One batch: its masked logits, the class scored, its labels and the ranking's ``scores`` (B, features),
        kept in LIF order (least important first) at the MIF/LIF steps for FPA Fig. 4 and appendix C.3, bottom row
        ("the importance scores in LIF order, the x-axis their position in the ranking")."""
        ordered = scores.flatten(1).float().sort(1).values
        n = ordered.shape[1]
        at = torch.tensor([min(int(t * n), n - 1) for t in measures.steps], device=ordered.device)
        self.ordered.append(ordered[:, at].cpu().numpy())
        steps = logits[:, :, measures.at(measures.steps)]
        self.normalized.append(normalized_target_logits(steps, target).cpu().numpy())
        self.predicted.append(steps.argmax(-1).cpu().numpy())
        deleted = logits[:, :, measures.at(measures.deletion)]
        self.correct.append((deleted.argmax(-1) == labels.view(-1, 1, 1)).cpu().numpy())
        if self.example is None:
            self.example = sign_example(self.normalized[-1][0], scores[0], at, measures)

    def result(self, measures: Measures, num_classes: int, modes) -> dict:
        result = summarize_curves(measures.steps, np.concatenate(self.normalized))
        result["predictions"] = prediction_shift(np.concatenate(self.predicted), num_classes)
        acc = np.concatenate(self.correct).mean(0)  # (2 modes, deletion fractions)
        deletion = measures.deletion
        result["deletion"] = {
            mode: {"fractions": deletion, "accuracy": acc[measures.mode(mode)].tolist()} for mode in modes
        }
        result["accuracy_unmasked"] = float(acc[0, deletion.index(0.0)]) if 0.0 in deletion else None
        result["lif_scores"] = np.concatenate(self.ordered).mean(0).tolist()  # at result["fractions"]
        result["example"] = self.example
        if self.sis is not None:
            result["sis"] = self.sis.result()
        return result


EXAMPLE_SIDE = 64  # the example's map is stored average-pooled to at most this side


def sign_example(normalized, scores, at, measures) -> dict:
    """FPA Fig. 5 of one image (the first evaluated): its MIF and LIF curves, the importance scores of the
    features masked at each step in MIF (highest first) and LIF (lowest first) order, and its map (pooled to
    at most EXAMPLE_SIDE on a side; None for a map that is not square, reduce=none)."""
    ranked = scores.flatten().float().sort().values
    side = int(round(ranked.numel() ** 0.5))
    heat = None
    if side * side == ranked.numel():
        grid = scores.float().reshape(1, 1, side, side)
        heat = torch.nn.functional.adaptive_avg_pool2d(grid, min(side, EXAMPLE_SIDE))[0, 0].cpu().numpy()
    return {
        "mif": normalized[measures.mode("remove")].round(6).tolist(),
        "lif": normalized[measures.mode("keep")].round(6).tolist(),
        "mif_scores": ranked.flip(0)[at].cpu().numpy().round(8).tolist(),
        "lif_scores": ranked[at].cpu().numpy().round(8).tolist(),
        "heatmap": None if heat is None else heat.round(8).tolist(),
    }


def own_class(clean_logits, labels, target: str):
    """The class a model's own maps of kind ``target`` (attribute.target) explain: its prediction on the
    clean image, its runner-up, or the label."""
    if target == "label":
        return labels
    top = clean_logits.topk(2, 1).indices
    return top[:, 0] if target == "predicted" else top[:, 1]


class RankingPass:
    """One roar-eval pass over ``ctx`` (an EvalContext: the model, the data, the bound fill). ``own_target``:
    the maps are another model's (``eval.order_from``), so MIF/LIF score this model's own class of that kind
    (``own_class``) rather than the class the other model's maps explain."""

    def __init__(self, ctx, own_target: str | None = None):
        self.ctx, self.own_target = ctx, own_target
        self.model, self.test_set, self.train_set = ctx.model, ctx.test_set, ctx.train_set
        self.fill, self.device = ctx.fill, ctx.device

    def add(self, batch: Batch, entries: list, tallies: list, measures: Measures) -> None:
        """Every ranking's masked logits of one batch, into its tally. ``entries``: each image's maps entry."""
        seed, clean = self.fill.maps_seed, measures.grid.fractions.index(0.0)
        paints = not (self.fill.drops_tokens or self.fill.leakage_control)  # an SIS is re-evaluated painted
        for tally in tallies:
            est = tally.estimator
            maps = torch.from_numpy(np.stack([entry[est][1] for entry in entries])).to(self.device)
            scores = ranking_scores(maps, tally.reduce, measures.grid.patch)
            ranks = feature_ranks(scores, batch.ids, seed)
            logits = masked_logits(self.model, batch.images, ranks, measures.grid, self.fill, batch.donors, batch.ids)
            if self.own_target is None:  # the class the maps explain (this model's own maps)
                target = torch.tensor([entry[est][2]["target"] for entry in entries], device=self.device)
            else:  # another model's maps: the class this model's own maps would explain
                target = own_class(logits[:, measures.mode("remove"), clean], batch.labels, self.own_target)
            tally.add(logits, target, measures, batch.labels, scores)
            if tally.sis is not None:
                probs = logits.softmax(-1)
                trace = torch.tensor([entry[est][2]["trace"] for entry in entries], device=self.device)
                tally.sis.add(
                    maps[:, 0].round().long(),
                    trace,
                    batch.labels,
                    probs[:, 0, clean],
                    probs[:, measures.mode("keep"), measures.grid.fractions.index(measures.subset_at)],
                    batch.regions(),
                    Refill(self.model, batch, self.fill) if paints else None,
                )

    def run(self, rankings, folders, bar) -> dict:
        """{ranking: curves and deletion accuracies} over the evaluated test images; ``rankings``: (name,
        estimator, reduce); ``folders``: {estimator: maps folder}."""
        cfg = self.ctx.cfg
        measures, wanted, size = Measures.of(cfg), set(self.ctx.indices), int(cfg.eval.batch_size)
        sis = check_sis(cfg.eval.sis)
        own = self.own_target is None  # another model's subsets (eval.order_from): its SIS statistics are its own
        tallies = [Tally(name, est, red, sis if own and stores_steps(est) else None) for name, est, red in rankings]
        streams = {est: iter_maps(folders[est], "test") for est in sorted({est for _, est, _ in rankings})}
        chunk = []
        for i, sid in enumerate(self.test_set.ids):
            entry = {est: next(stream, (None, None, None)) for est, stream in streams.items()}
            for est, (found, _, _) in entry.items():
                if found != sid:
                    raise RoarError(
                        f"{folders[est]}: test sample {i} is {found}, the dataset has {sid} there. Rerun "
                        f"roar-attribute."
                    )
            if i in wanted:
                chunk.append((i, entry))
            if chunk and (len(chunk) == size or i == len(self.test_set.ids) - 1):
                batch = Batch.load(self.test_set, self.train_set, [k for k, _ in chunk], self.fill, self.device)
                self.add(batch, [e for _, e in chunk], tallies, measures)
                bar.update(len(chunk))
                chunk = []
        return {t.name: t.result(measures, self.test_set.num_classes, cfg.eval.modes) for t in tallies}
