"""``roar-pipeline experiment=<name> dry_run=true``: the experiment's whole chain on a tiny stand-in, so that a
configuration error shows in minutes on a laptop, not after a day on a cluster (issue 32).

What stays the experiment's own: the architecture (``model``, ``retrain.model``), the augmentations, the fill, the
estimators and their options, the modes, the mask format, the reduction and granularity, the evaluations. What
shrinks: the data become ``DRY_IMAGES`` images per split of the generated shapes rendered at the experiment's image
side (embedded data stay themselves), one epoch, one seed, the grid's first two fractions, two samples or steps
where an estimator takes many, and one retrain run per mode and retrain variant (the first estimator at the first
fraction) besides the t = 0 baseline. A pretrained base (``base_checkpoint=``) becomes a freshly initialized
state_dict of the same architecture, written beside the dry run's outputs, so the loading path runs too. The
outputs go to ``<experiment name>_dry_run``: a dry run never touches the real experiment's folders.
"""

import io
from pathlib import Path

import torch
from omegaconf import OmegaConf

from roar.config import CONFIG_DIR, compose_config
from roar.data import build_dataset
from roar.errors import RoarError
from roar.estimators import EstimatorSuite
from roar.estimators.registry import parse
from roar.models.registry import build_model
from roar.plan.facts import data_facts
from roar.store.grid import experiment_jobs
from roar.store.io import atomic_write_bytes
from roar.store.resolve import stand_in_checkpoint
from roar.utils.log import get_logger
from roar.utils.plain import to_plain

log = get_logger(__name__)

DRY_IMAGES = 2  # images per split, and the batch: one optimizer step per epoch
DRY_PASSES = 5000  # forward(+backward) passes per image the stand-in's side is chosen for
DRY_ITERATIONS = 8  # batched gradient BackSelect's iterations per image (attribute.params.sis_k raised to fit)
ESTIMATOR_CAPS = {  # attribute.params that multiply an estimator's passes: capped in a dry run
    "samples": 2,
    "ig_steps": 2,
    "lime_samples": 16,
    "mask_steps": 2,
    "mask_distractors": 2,
    "mask_pool": DRY_IMAGES,
}
EVAL_CAPS = ("eval.soundness.images", "eval.consistency.images")  # per-image evaluations, capped when on


def image_side(cfg) -> int:
    """The experiment's image side: ``data.crop``, ``data.resize``, ``data.image_size``, or the planner's facts."""
    for key in ("crop", "resize", "image_size"):
        if cfg.data.get(key):
            return int(cfg.data[key])
    shape = data_facts(cfg).get("shape")
    if not shape:
        raise RoarError(f"dry_run=true: the image size of data={cfg.data.name} is not known; give data.crop=<side>.")
    return int(shape[-1])


def data_overrides(cfg, overrides: list, side: int) -> list:
    """The stand-in data: embedded data made small, any other dataset replaced by shapes at its image side (the
    keys the experiment sets for its own dataset dropped: they name files that a dry run does not read)."""
    name = str(cfg.data.name)
    small = [f"data.n_train={DRY_IMAGES}", f"data.n_test={DRY_IMAGES}", f"data.batch_size={DRY_IMAGES}"]
    small.append("attribute.shard_size=1")  # more than one shard per split: the sharded paths run too
    if name == "digits":  # the bundled 8x8 digits: the first images of each split (keys its config does not list)
        return [f"+{o}" if o.startswith("data.n_") else o for o in small]
    if name == "shapes":
        return small
    shapes = OmegaConf.load(CONFIG_DIR / "data" / "shapes.yaml")  # the shapes config's own keys
    swapped = compose_config("pipeline", [*overrides, "data=shapes"]).data
    foreign = [f"~data.{k}" for k in swapped if k not in shapes]
    return ["data=shapes", *foreign, f"data.image_size={side}", *small, "data.num_workers=0"]


def stand_in_side(cfg) -> int:
    """The experiment's image side, halved while its estimators would take more than ``DRY_PASSES`` passes per
    image (exact BackSelect's p(p+1)/2: 524,800 at CIFAR-10's 32 x 32), so that every estimator runs."""
    side = own = image_side(cfg)
    params = {**to_plain(cfg.attribute.params), **ESTIMATOR_CAPS}
    suite = EstimatorSuite([e for e in cfg.attribute.estimators if parse(e)[0] != "imported"], **params)
    while side > 8 and suite.passes_for(side * side) > DRY_PASSES:
        side //= 2
    if side != own:
        log.info(
            f"[roar-pipeline] dry run: {list(cfg.attribute.estimators)} take {suite.passes_for(own * own):,} passes "
            f"per image at the experiment's {own} px; the stand-in is rendered at {side} px"
        )
    return side


def dry_run_overrides(cfg, overrides: list) -> list:
    """The overrides that turn ``cfg``'s experiment into its dry run (appended after the user's own)."""
    fractions = [float(t) for t in cfg.grid.fractions if float(t) > 0][:2]
    params = cfg.attribute.params
    caps = [f"attribute.params.{k}={min(int(params[k]), v)}" for k, v in ESTIMATOR_CAPS.items() if k in params]
    side = image_side(cfg) if str(cfg.data.name) in ("digits", "shapes") else stand_in_side(cfg)
    if "sis_k" in params:  # batched gradient BackSelect: at most DRY_ITERATIONS gradient steps per image
        caps.append(f"attribute.params.sis_k={max(int(params.sis_k or 1), -(-side * side // DRY_ITERATIONS))}")
    evals = [f"{k}={min(int(v), DRY_IMAGES)}" for k in EVAL_CAPS if (v := OmegaConf.select(cfg, k))]
    if OmegaConf.select(cfg, "eval.soundness.images"):  # an untrained stand-in scores few images right: take all
        evals += ["eval.soundness.correct_only=false", "eval.soundness.donors=1", "eval.soundness.step=0.5"]
    return [
        f"name={cfg.name}_dry_run",
        *data_overrides(cfg, overrides, side),
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "logger=csv",
        "grid.seeds=1",
        f"grid.fractions=[{','.join(format(t, 'g') for t in fractions)}]",
        *caps,
        "eval.max_images=1",  # the no-retrain curves of one test image (every ranking, mode and fraction)
        "eval.step=0.5",  # the MIF/LIF curves at 0, 0.5, 1
        "mask.audit_steps=2",
        *evals,
    ]


def stand_in_weights(cfg, path: Path) -> None:
    """A freshly initialized state_dict of ``cfg``'s architecture at the stand-in data's shape, for a dry run of
    an experiment whose base model is pretrained (``base_checkpoint=``); written once."""
    if path.is_file():
        return
    data = build_dataset(cfg.data, "train")
    c, h, _ = data.image_shape
    model = to_plain(cfg.model)
    torch.manual_seed(0)
    net = build_model(
        model["name"], num_classes=data.num_classes, in_channels=c, image_size=h, **(model.get("params") or {})
    )
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def dry_run(cfg, overrides: list) -> list:
    """The overrides of ``cfg``'s dry run: the stand-in (``dry_run_overrides``) and, for a pretrained base, its
    stand-in weights (written here)."""
    if cfg.get("toy") is not None:  # ROAR's toy check: one small dataset
        return [*overrides, f"name={cfg.name}_dry_run", "toy.n_train=200", "toy.n_test=200", "toy.seeds=[0]"]
    dry = [*overrides, *dry_run_overrides(cfg, overrides)]
    if cfg.get("base_checkpoint") is None:
        return dry
    stand_in = compose_config("pipeline", [*dry, "base_checkpoint=null"])
    path = stand_in_checkpoint(stand_in)
    stand_in_weights(stand_in, path)
    return [*dry, f"base_checkpoint={path}"]


def describe_dry_run(cfg) -> str:
    """One line: what the dry run runs instead of the experiment."""
    if cfg.get("toy") is not None:
        return f"{cfg.name}: ROAR's toy check on one dataset of {cfg.toy.n_train} + {cfg.toy.n_test} samples"
    data = cfg.data
    size = f"{data.image_size}px " if data.get("image_size") else ""
    return (
        f"{cfg.name}: {size}{data.name} (a few images per split), {cfg.model.name}, 1 epoch, estimators "
        f"{list(cfg.attribute.estimators)}, fractions {list(cfg.grid.fractions)}, "
        f"{len(experiment_jobs(cfg))} retrain runs (one per mode and the t = 0 baseline, or none)"
    )
