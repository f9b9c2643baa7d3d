"""Estimator maps for every train and test image, resumable and shardable (the roar-attribute stage).

Writes ``attributions/<base>/<estimator>/{train,test}-%06d.tar`` (the maps format of
roar.store.maps) and ``manifest.json`` once every shard of every split exists. Shard ``s`` holds
samples ``[s * shard_size, (s + 1) * shard_size)`` of a split and is computed by task
``s % num_shards``. A sealed shard of the same settings is skipped; everything is written atomically.
Map noise (SmoothGrad, VarGrad) and the random control are drawn per (``maps_seed``, sample id).
"""

from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig

from roar.classifier.load import load_base_model
from roar.data import build_dataset
from roar.data.stats import channel_stats
from roar.errors import RoarError, as_list, positive_int
from roar.estimators import EstimatorSuite, reduce_maps
from roar.estimators.registry import code_of, iterative_of, params_for, parse, stores_steps
from roar.lineage import base_artifact, set_artifact, stage_lineage
from roar.masking.donors import donor_images, donor_pool
from roar.masking.fills import bind_fill, check_fill, fill_of
from roar.models.checkpoint import check_trained_on
from roar.store.io import read_json
from roar.store.manifest import MANIFEST
from roar.store.maps import map_sample
from roar.store.resolve import base_key, maps_key
from roar.store.sharded import OutputSet, finish, plan_shards, samples_in, write_sealed
from roar.store.shards import sha256_file
from roar.utils.device import resolve_device
from roar.utils.log import get_logger
from roar.utils.plain import to_plain
from roar.utils.progress import progress

log = get_logger(__name__)

TARGETS = ("predicted", "label", "second")  # second: the runner-up class a' (soundness, masking-explanations D)


def check_config(cfg) -> EstimatorSuite | None:
    """The estimator suite of ``attribute.estimators`` (None when every one is imported), after checking every
    attribute.* value."""
    a = cfg.attribute
    computed = [n for n in as_list(a.estimators, "attribute.estimators") if parse(n)[0] != "imported"]
    suite = EstimatorSuite(computed, **to_plain(a.params), seed=int(cfg.maps_seed)) if computed else None
    positive_int(a.batch_size, "attribute.batch_size")
    positive_int(a.shard_size, "attribute.shard_size")
    if a.target not in TARGETS:
        raise RoarError(f"attribute.target={a.target!r}; valid targets: {', '.join(TARGETS)}.")
    if str(a.get("store", "full")) not in ("full", "reduced"):
        raise RoarError(
            f"attribute.store={a.store!r}; valid: full (C x H x W maps), reduced (H x W, reduced by reduce=)."
        )
    if stored_reduction(cfg) == "none":
        raise RoarError(
            "attribute.store=reduced stores maps reduced by reduce=, and reduce=none keeps them full: use "
            "attribute.store=full."
        )
    if not 0 <= int(a.shard_id) < int(a.num_shards):
        raise RoarError(f"attribute.shard_id={a.shard_id} must be in [0, attribute.num_shards={a.num_shards}).")
    bad = set(as_list(a.splits, "attribute.splits")) - {"train", "test"}
    if bad:
        raise RoarError(f"attribute.splits has {sorted(bad)}; valid splits: train, test.")
    selectors = [n for n in suite.iterative if stores_steps(n)] if suite else []
    if selectors and fill_of(cfg.fill).depends_on_mask:
        raise RoarError(
            f"{', '.join(selectors)} select pixels with one image filled everywhere (the reference), and an SIS is "
            f"re-checked with its own subset filled; fill={cfg.fill.name} paints each pixel from the pixels left, "
            f"so the "
            f"two fillings differ. Use a fill that paints a pixel the same whatever else is removed (channel_mean, "
            f"zero, constant, blur, random_image, random_colour_image, random_colour_pixel)."
        )
    return suite


class Reference:
    """The reference image x0 of ``baseline=fill``: the configured fill painted over every pixel (the
    channel mean, a constant, the blurred image, a donor image), in raw pixel units."""

    def __init__(self, cfg, channels: int, train_set=None):
        traits = check_fill(cfg.fill, channels)  # refused before the channel statistics
        if traits.drops_tokens or traits.leakage_control:
            raise RoarError(
                f"attribute.params.baseline=fill needs a fill that paints pixels; fill={cfg.fill.name} does not. "
                f"Use baseline=black or a painting fill (channel_mean, zero, constant, blur, random_image)."
            )
        self.cfg, self.train_set = cfg, train_set or build_dataset(cfg.data, "train")
        self.mean = channel_stats(self.train_set, cfg.data, cfg.paths.cache_dir)["mean"]
        self.fill = bind_fill(cfg.fill, channels, self.mean, int(cfg.maps_seed))

    @property
    def identity(self) -> dict:
        return {"fill": to_plain(self.cfg.fill), "mean": [float(m) for m in self.mean]}

    def __call__(self, x, ids):
        donors = donor_images(self.train_set, ids, self.fill.maps_seed).to(x.device) if self.fill.needs_donors else None
        everywhere = torch.ones((x.shape[0], 1, *x.shape[2:]), dtype=torch.bool, device=x.device)
        return self.fill.apply(x, everywhere, ids, donors)


def stored_reduction(cfg) -> str | None:
    """The reduction maps are stored with (``attribute.store=reduced``: ``reduce=``), or None for full maps."""
    return str(cfg.reduce) if str(cfg.attribute.get("store", "full")) == "reduced" else None


def settings_for(cfg, estimator: str, ckpt_sha: str, fingerprints: dict, reference=None, fill=False) -> dict:
    """Everything an estimator's maps depend on; its hash is checked before a shard is trusted.
    ``fill``: the maps depend on the configured fill (iterative rankings, token drop included)."""
    return {
        "estimator": estimator,
        "estimator_params": params_for(estimator, to_plain(cfg.attribute.params)),
        **({"estimator_code": code_of(estimator)} if code_of(estimator) else {}),  # a user's: its source digest
        **({"reference": reference.identity} if reference is not None else {}),
        **({"fill": to_plain(cfg.fill)} if fill else {}),
        **({"reduced_by": stored_reduction(cfg)} if stored_reduction(cfg) else {}),  # full maps: as before
        **({"steps_stored": "integers"} if stores_steps(estimator) else {}),  # float16 fractions before: redone
        "maps_seed": int(cfg.maps_seed),
        "target": cfg.attribute.target,
        "base_checkpoint_sha256": ckpt_sha,
        "dataset": cfg.data.name,
        "dataset_fingerprints": fingerprints,
        "shard_size": int(cfg.attribute.shard_size),
    }


def class_targets(model, x, labels, target: str):
    """The class each map explains: the model's prediction, the label, or its second most probable class."""
    if target == "label":
        return labels
    with torch.no_grad():
        top = model(x).topk(2, 1).indices
    return top[:, 0] if target == "predicted" else top[:, 1]


def storable(name: str, m: torch.Tensor, reduced: str | None):
    """(maps as stored, per-map scale) of a batch of ``name``'s maps (roar.store.maps): float16 divided by
    the largest magnitude; backward selection's removal steps as unsigned integers with scale 1 (exact:
    a float16 fraction collides above 2,048 steps). ``reduced``: attribute.store=reduced's reduction."""
    steps = stores_steps(name)
    if reduced and steps:
        m = m[:, :1]  # the same in every channel: kept as numbers
    elif reduced:  # attribute.store=reduced: the 1 x H x W map the ranking reads
        m = reduce_maps(m, reduced)
    if steps:
        scale = torch.ones(m.shape[0], device=m.device)
        return m.cpu().numpy().astype(np.uint16 if int(m.max()) < 2**16 else np.uint32), scale
    scale = m.flatten(1).abs().amax(1).clamp_min(torch.finfo(torch.float32).tiny)
    return (m / scale.view(-1, *[1] * (m.dim() - 1))).to(torch.float16).cpu().numpy(), scale


@dataclass(frozen=True)
class Attributor:
    """What computing maps needs besides the samples: the base model, the config, the device, the progress
    bar, the Reference (x0 of ``baseline=fill`` and the painted images) and ``pool`` (learned masks'
    distractor images)."""

    model: object
    cfg: object
    device: object
    bar: object
    reference: object = None
    pool: object = None

    def compute_shard(self, suite, dataset, start: int, stop: int) -> dict:
        """{estimator: [samples of the maps format]} of ``suite``'s estimators for samples [start, stop) of
        ``dataset``."""
        out = {n: [] for n in suite.names}
        bs = int(self.cfg.attribute.batch_size)
        for lo in range(start, stop, bs):
            samples = [dataset[i] for i in range(lo, min(lo + bs, stop))]
            ids = [dataset.ids[i] for i in range(lo, min(lo + bs, stop))]
            for name, made in self.batch(suite, samples, ids).items():
                out[name] += made
            self.bar.update(len(samples))
        return out

    def batch(self, suite, samples, ids) -> dict:
        model, cfg, device, reference = self.model, self.cfg, self.device, self.reference
        out, reduced = {n: [] for n in suite.names}, stored_reduction(cfg)
        x = torch.stack([s["image"] for s in samples]).to(device)
        labels = torch.tensor([s["label"] for s in samples], device=device)
        target = class_targets(model, x, labels, cfg.attribute.target)
        extras = {k: torch.stack([torch.as_tensor(s[k]) for s in samples]) for k in suite.needs}
        painted = reference(x, ids) if reference else None
        baseline = painted if suite.fill_baseline else None
        fill = painted if suite.needs_fill else None
        maps = suite(model, x, target, ids, baseline, extras, fill=fill, pool=self.pool)
        for name, m in maps.items():
            bad = ~torch.isfinite(m.flatten(1)).all(1)
            if bad.any():
                raise RoarError(
                    f"Estimator {name} gave NaN or infinite maps for samples "
                    f"{[ids[i] for i in torch.nonzero(bad)[:, 0].tolist()]}."
                )
            unit, scale = storable(name, m, reduced)
            trace = suite.traces[name].cpu().tolist() if name in suite.traces else None  # gbs, bs
            for k, sid in enumerate(ids):
                extra = {"trace": [round(v, 6) for v in trace[k]]} if trace else None
                out[name].append(map_sample(sid, unit[k], labels[k], target[k], scale[k], extra))
        return out


def check_data(cfg, suite, probe) -> bool:
    """Refuse what the data or the fill cannot give the estimators; whether LIME drops a ViT's tokens."""
    missing = [k for k in suite.needs if k not in probe[0]]
    if missing:
        raise RoarError(
            f"attribute.estimators has a control that needs ground truth ({', '.join(missing)}); "
            f"data={cfg.data.name} has none. "
            f"Use a dataset with masks (data=shapes) or drop it."
        )
    token_drop = suite.needs_fill and fill_of(cfg.fill).drops_tokens  # lime drops a ViT's tokens instead
    painters = [
        n
        for n in suite.iterative
        if iterative_of(n).paints and not (iterative_of(n).tokens or iterative_of(n).distractors)
    ]
    if token_drop and painters:
        raise RoarError(
            f"{', '.join(painters)} paint removed pixels with the fill; fill=token_drop paints nothing. "
            f"Use a painting fill (channel_mean, zero, constant, blur, random_image) for them."
        )
    return token_drop


def output_sets(cfg, suite, reference, ckpt_sha: str, fingerprints: dict) -> dict:
    """{estimator: its maps' OutputSet}, each with the settings its maps depend on: the reference where the
    maps are made with it (a fill baseline, or an iterative ranking that paints with the fill)."""

    def paints(name):  # an iterative ranking that masks with the fill (learned masks use distractors, CAMs nothing)
        return name in suite.iterative and iterative_of(name).paints and not iterative_of(name).distractors

    size, outs = int(cfg.attribute.shard_size), {}
    for n in suite.names:
        uses = reference if suite.fill_baseline or paints(n) else None  # part of the maps' identity
        outs[n] = OutputSet(
            maps_key(cfg, n).folder, settings_for(cfg, n, ckpt_sha, fingerprints, uses, fill=paints(n)), size
        )
    return outs


def imported_maps(cfg) -> dict:
    """{estimator: manifest} of the imported rankings of ``attribute.estimators``, refused when one has none."""
    found = {}
    for name in [n for n in as_list(cfg.attribute.estimators, "attribute.estimators") if parse(n)[0] == "imported"]:
        found[name] = read_json(maps_key(cfg, name).folder / MANIFEST)
        if found[name] is None:
            raise RoarError(
                f"{name} has no maps at {maps_key(cfg, name).folder}: import them first (roar-attribute "
                f"import=<path> import_name={name.removeprefix('imported-')}), or drop {name} from the estimators."
            )
    return found


def attribute(cfg: DictConfig) -> dict:
    """Compute this task's shards; returns {estimator: manifest or None while shards are missing}. Imported
    rankings among the estimators are not computed: their maps must be there (``imported_maps``)."""
    suite, imported = check_config(cfg), imported_maps(cfg)
    if suite is None:
        return imported
    device = resolve_device(cfg.trainer.accelerator)
    datasets = {split: build_dataset(cfg.data, split) for split in cfg.attribute.splits}
    probe = datasets[cfg.attribute.splits[0]]
    token_drop = check_data(cfg, suite, probe)
    reference = (
        Reference(cfg, probe[0]["image"].shape[0], datasets.get("train"))
        if suite.fill_baseline or (suite.needs_fill and not token_drop)
        else None
    )
    key = base_key(cfg)
    model = load_base_model(key, cfg.model, probe.num_classes, list(probe[0]["image"].shape)).to(device)
    ckpt_sha = sha256_file(key.checkpoint)
    pool = None
    if suite.needs_pool:
        train_set = datasets.get("train") or (reference.train_set if reference else build_dataset(cfg.data, "train"))
        pool = donor_pool(train_set, int(suite.params["mask_pool"]), int(cfg.maps_seed)).to(device)
    fingerprints = {split: ds.fingerprint() for split, ds in datasets.items()}
    check_trained_on(key.folder, read_json(key.metrics) or {}, fingerprints, cfg.data.get("root"))
    size = int(cfg.attribute.shard_size)
    outs = output_sets(cfg, suite, reference, ckpt_sha, fingerprints)
    counts = {split: len(ds) for split, ds in datasets.items()}
    plan = plan_shards(outs.values(), counts, cfg.attribute.shard_id, cfg.attribute.num_shards, cfg.overwrite)
    total = samples_in(plan, counts, size)
    pixels = int(probe[0]["image"].shape[1] * probe[0]["image"].shape[2])
    log.info(
        f"[roar-attribute] {len(suite.names)} estimators, {suite.passes_for(pixels)} forward(+backward) passes per "
        f"image; "
        f"{len(plan)} shard(s), {total} images to compute on {device}"
    )
    by_folder = {o.folder: n for n, o in outs.items()}
    with progress(total, "attribute", "img", disable=total == 0) as bar:
        attributor = Attributor(model, cfg, device, bar, reference, pool)
        for split, s, todo in plan:
            ds = datasets[split]
            shard_suite = EstimatorSuite([by_folder[o.folder] for o in todo], **suite.params)
            written = attributor.compute_shard(shard_suite, ds, s * size, min((s + 1) * size, len(ds)))
            for o in todo:
                write_sealed(o, split, s, written[by_folder[o.folder]])
    computed = {n: finish(o, counts) for n, o in outs.items()}
    if total:  # what this task made: a rerun that computed nothing adds no wandb run
        maps_lineage(cfg, computed)
    return {**imported, **computed}


def maps_lineage(cfg, manifests: dict) -> None:
    """roar-attribute's wandb run (roar.lineage): the base model it used, every finished estimator's maps it made."""
    key = base_key(cfg)
    base = base_artifact(key)
    maps = [set_artifact(key.experiment_dir, maps_key(cfg, n).folder, "maps", [base]) for n in manifests]
    stage_lineage(cfg, "attribute", key.maps_root, [base], maps)
