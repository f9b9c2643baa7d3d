"""``roar-plan``: an experiment's bill before anything is launched, from the same code that runs it.

Counts come from the code the pipeline and the sweeps use: retrain jobs from
``roar.store.grid.retrain_jobs`` (the grid's settings x seeds), shard sets from roar-mask's
estimators x modes x fractions, forward+backward passes from the estimator suite's
``passes_per_image`` (shared passes counted once). Bytes per sample come from encoding one sample
with the real writers (maps: float16 npy; masked shards: float32 npy, 8-bit PNG, uint8 and rank buckets,
measured on the first images, and their source files, where the data can be opened), inside tar members of
512-byte blocks. Rank-bucket sets are one per ranking (mask.estimators), not per mode and fraction, beside
one image set. Time comes from a
training step time: ``plan.step_seconds``, or ``plan.calibrate=true`` (``plan.calibrate_steps`` steps
of the experiment's model, recipe and batch on random images, on the configured device, after a
warm-up). An attribution pass of one image is priced at a training step's time per image.
"""

import math
import shutil
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from roar.data import build_dataset
from roar.errors import RoarError, as_list
from roar.estimators import EstimatorSuite
from roar.masking.buckets import bucket_bits, grid_boundaries
from roar.masking.write import num_features
from roar.models.module import Classifier
from roar.store.grid import retrain_jobs
from roar.store.maps import map_sample
from roar.store.masked import bucket_sample, image_sample, masked_sample
from roar.store.resolve import experiment_dir, ranking_patch
from roar.tracking import cluster_plugins
from roar.utils.plain import to_plain

# official split sizes and image sides of the datasets read from data.root (when the data are not here)
KNOWN = {"cifar10": (50000, 10000, 32, 10), "cifar100": (50000, 10000, 32, 100), "food101": (75750, 25250, None, 101)}


def tar_bytes(sample: dict) -> int:
    """Bytes of one sample in a POSIX tar: a 512-byte header per member, data padded to 512."""
    return sum(512 + 512 * math.ceil(len(v) / 512) for k, v in sample.items() if k != "__key__")


def data_facts(cfg) -> dict:
    """Sizes, classes and image shape: the dataset's when it can be opened here (and its first images, for
    PNG sizes), else ``plan.num_train``/``num_test``/``num_classes``, else the dataset's official ones."""
    name, plan = str(cfg.data.name), cfg.plan
    facts = {"source": "config", "images": None}
    try:
        train, test = build_dataset(cfg.data, "train"), build_dataset(cfg.data, "test")
    except RoarError:
        train = test = None
    if train is not None:
        facts.update(num_train=len(train), num_test=len(test), shape=list(train.image_shape), source="dataset")
        facts["images"] = [train[i]["image"] for i in range(min(16, len(train)))]
        encoded = [train.encoded(i) for i in range(len(facts["images"]))]
        facts["encoded"] = encoded if all(encoded) else None
        facts["label"] = int(train[0]["label"])
        facts["id"], facts["num_classes"] = train.ids[0], train.num_classes
    elif plan.get("num_train") is not None:
        facts.update(num_train=int(plan.num_train), num_test=int(plan.num_test), source="plan.num_train/num_test")
        if plan.get("num_classes") is not None:
            facts["num_classes"] = int(plan.num_classes)
    elif name in KNOWN:
        n_train, n_test, side, classes = KNOWN[name]
        facts.update(num_train=n_train, num_test=n_test, num_classes=classes, source="official sizes")
        side = cfg.data.get("crop") or cfg.data.get("resize") or side
        if side:
            facts["shape"] = [3, int(side), int(side)]
    if "num_train" not in facts:
        raise RoarError(
            f"roar-plan cannot size data={name}: its data.root ({cfg.data.get('root')}) cannot be opened here and its "
            f"size is not known. Pass plan.num_train=... plan.num_test=... (and data.crop for the image size)."
        )
    if "shape" not in facts:
        side = cfg.data.get("crop") or cfg.data.get("resize")
        if not side:
            raise RoarError(f"roar-plan cannot tell the image size of data={name}: set data.crop.")
        facts["shape"] = [3, int(side), int(side)]
    if "num_classes" not in facts:
        raise RoarError(f"roar-plan cannot tell the number of classes of data={name}: pass plan.num_classes=...")
    facts.setdefault("label", 0)
    facts.setdefault("id", f"{name}-train-0000000")
    return facts


def sample_bytes(facts: dict, fmt: str) -> float:
    """Bytes of one sample in ``fmt`` (npy, png, uint8, or ``images``: the image set), encoded by the real
    writers: PNG from the first real images; uint8 and the image set from the first images' source files
    where the dataset reads files, else their pixels."""
    c, h, w = facts["shape"]
    removed = np.zeros((1, h, w), dtype=bool)
    meta = {"estimator": "sg_sq-grad", "reduce": "abs_sum", "mode": "remove", "fill": "channel_mean", "fraction": 0.5}
    if fmt == "png" and facts["images"] is None:
        return float("nan")
    images = facts["images"] if fmt != "npy" and facts["images"] is not None else [torch.zeros(c, h, w)]
    encoded = facts.get("encoded") or [None] * len(images)
    if fmt == "images":
        samples = [image_sample(facts["id"], x, facts["label"], e) for x, e in zip(images, encoded)]
    else:
        samples = [
            masked_sample(facts["id"], x, removed, facts["label"], fmt, meta, e) for x, e in zip(images, encoded)
        ]
    return float(np.mean([tar_bytes(x) for x in samples]))


def bucket_bytes(facts: dict, features: int, bits: int) -> int:
    """Bytes of one bucket-set sample: ``bits`` planes of ``features`` bits (its image is in the image set)."""
    return tar_bytes(bucket_sample(facts["id"], np.zeros(bits * math.ceil(features / 8), dtype=np.uint8)))


def map_bytes(facts: dict, reduced: bool = False) -> int:
    """Bytes of one stored map: float16 C x H x W, or 1 x H x W with ``attribute.store=reduced``."""
    c, h, w = facts["shape"]
    shape = (1, h, w) if reduced else (c, h, w)
    return tar_bytes(map_sample(facts["id"], np.zeros(shape, np.float16), facts["label"], 0, 1.0))


def calibrate(cfg, shape, num_classes: int, steps: int) -> dict:
    """Seconds per training step of the experiment's model, recipe, augmentation and batch size on random
    images, on the configured device (trainer.accelerator, precision), after 10 warm-up steps."""
    batch = int(cfg.data.batch_size)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch * 4, *shape, generator=g)
    labels = torch.randint(0, num_classes, (batch * 4,), generator=g)
    data = [
        {"image": images[i::4][:batch], "label": labels[i::4][:batch], "index": torch.arange(batch)} for i in range(4)
    ]
    module = Classifier(
        model=to_plain(cfg.model),
        optim=to_plain(cfg.optim),
        augment=to_plain(cfg.augment),
        num_classes=num_classes,
        image_shape=list(shape),
        mean=[0.5] * shape[0],
        std=[0.25] * shape[0],
        max_epochs=1,
    )
    module.prepare(images)
    clock = StepClock(warmup=10)
    trainer = {k: v for k, v in to_plain(cfg.trainer).items() if k in ("accelerator", "devices", "precision")}
    L.Trainer(
        **{**trainer, "devices": 1},
        max_steps=10 + int(steps),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        plugins=cluster_plugins(),
    ).fit(module, train_dataloaders=Repeat(data, 10 + int(steps)))
    device = clock.device
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{device.type} ({torch.get_num_threads()} threads)"
    )
    return {"step_seconds": clock.seconds / int(steps), "device": name, "steps": int(steps), "batch_size": batch}


class Repeat:
    """``n`` batches cycling over a few fixed ones (a loader without a sampler: calibration only)."""

    def __init__(self, batches, n):
        self.batches, self.n = batches, n

    def __len__(self):
        return self.n

    def __iter__(self):
        return (self.batches[i % len(self.batches)] for i in range(self.n))


class StepClock(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.start, self.seconds, self.device = warmup, None, None, None

    def _sync(self, module):
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.warmup and self.start is None:
            self._sync(module)
            self.start, self.device = time.perf_counter(), module.device

    def on_train_end(self, trainer, module):
        self._sync(module)
        self.seconds = time.perf_counter() - self.start


def parameters(cfg, shape, num_classes: int) -> int:
    from roar.models import build_model

    net = build_model(
        cfg.model.name,
        num_classes=num_classes,
        in_channels=shape[0],
        image_size=shape[1],
        **(cfg.model.get("params") or {}),
    )
    return sum(p.numel() for p in net.parameters())


def make_plan(cfg, calibrated: dict | None = None) -> dict:
    """The bill of ``cfg``'s experiment (a pipeline config): counts, bytes, and device-hours when a step
    time is known (``calibrated``, or ``plan.step_seconds``)."""
    step = calibrated["step_seconds"] if calibrated else cfg.plan.get("step_seconds")
    if step is not None and not float(step) > 0:
        raise RoarError(f"plan.step_seconds={step}: give the seconds one training step takes (> 0), or null.")
    facts = data_facts(cfg)
    n_train, n_test, shape, num_classes = facts["num_train"], facts["num_test"], facts["shape"], facts["num_classes"]
    jobs = retrain_jobs(cfg.grid)
    trainings = 1 + len(jobs)
    estimators = as_list(cfg.attribute.estimators, "attribute.estimators")
    suite = EstimatorSuite(estimators, **to_plain(cfg.attribute.params))
    per_image = suite.passes_for(shape[1] * shape[2])
    split_sizes = {"train": n_train, "test": n_test}
    splits = [str(s) for s in as_list(cfg.attribute.splits, "attribute.splits")]
    attributed = sum(split_sizes[s] for s in splits)
    masked = sum(split_sizes[s] for s in as_list(cfg.mask.splits, "mask.splits"))
    passes = per_image * attributed
    rankings = len(as_list(cfg.mask.estimators, "mask.estimators"))
    sets = rankings * len(cfg.mask.modes) * len(cfg.mask.fractions)
    features = num_features(shape, ranking_patch(cfg), str(cfg.reduce))
    bits = bucket_bits(grid_boundaries(cfg.mask.fractions, features))
    params = parameters(cfg, shape, num_classes)
    disk = {
        "maps": map_bytes(facts, str(cfg.attribute.get("store", "full")) == "reduced") * attributed * len(estimators),
        **{f"shards_{fmt}": sample_bytes(facts, fmt) * masked * sets for fmt in ("npy", "png", "uint8")},
        "shards_buckets": (sample_bytes(facts, "images") + bucket_bytes(facts, features, bits) * rankings)
        * masked,  # the image set once, a bucket set per ranking
        "checkpoints": trainings * params * 4 * 2,  # weights and the optimizer's momentum, float32
    }
    disk["total"] = disk["maps"] + disk[f"shards_{cfg.mask.format}"] + disk["checkpoints"]
    batch, epochs = int(cfg.data.batch_size), int(cfg.trainer.max_epochs)
    steps = trainings * epochs * math.ceil(n_train / batch)
    plan = {
        "experiment": str(cfg.name),
        "data": {
            "name": str(cfg.data.name),
            "num_train": n_train,
            "num_test": n_test,
            "shape": shape,
            "sizes_from": facts["source"],
        },
        "model": {"name": str(cfg.model.name), "parameters": params, "batch_size": batch, "epochs": epochs},
        "trainings": {"base": 1, "retrain": len(jobs), "total": trainings, "settings": len({j[:3] for j in jobs})},
        "training_steps": steps,
        "attribution": {
            "estimators": estimators,
            "passes_per_image": per_image,
            "splits": splits,
            "images": attributed,
            "passes": passes,
        },
        "shard_sets": sets,
        "bucket_sets": rankings,
        "disk_bytes": disk,
        "mask_format": str(cfg.mask.format),
    }
    if step is not None:
        overhead = float(cfg.plan.run_overhead_s)
        hours = {
            "training": steps * float(step) / 3600,
            "attribution": passes * float(step) / batch / 3600,
            "overhead": trainings * overhead / 3600,
        }
        hours["total"] = sum(hours.values())
        plan["time"] = {"step_seconds": float(step), "from": calibrated or "plan.step_seconds", "hours": hours}
    return plan


def size(n: float) -> str:
    if n != n:  # NaN: not measurable without the data
        return "n/a (needs the data)"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{n:,.0f} B"
        n /= 1000


def format_plan(plan: dict) -> str:
    d, m, t, a, disk = plan["data"], plan["model"], plan["trainings"], plan["attribution"], plan["disk_bytes"]
    lines = [
        f"[roar-plan] {plan['experiment']}: {d['name']} {d['num_train']:,} train + {d['num_test']:,} test images "
        f"{'x'.join(map(str, d['shape']))} ({d['sizes_from']}); {m['name']} ({m['parameters'] / 1e6:.2f} M parameters), "
        f"batch {m['batch_size']}, {m['epochs']} epochs",
        f"  trainings      {t['base']} base + {t['retrain']:,} retrains ({t['settings']} settings x seeds) = {t['total']:,}; "
        f"{plan['training_steps']:,} training steps",
        f"  attribution    {len(a['estimators'])} estimators, {a['passes_per_image']} forward+backward passes per image "
        f"(shared) x {a['images']:,} images ({', '.join(a['splits'])}) = {a['passes']:,}",
        f"  disk           maps {size(disk['maps'])}; masked shards ({plan['shard_sets']} sets) npy {size(disk['shards_npy'])}, "
        f"png {size(disk['shards_png'])}, uint8 {size(disk['shards_uint8'])}; rank buckets ({plan['bucket_sets']} sets, "
        f"every mode, fill and fraction, and the image set) {size(disk['shards_buckets'])}; checkpoints {size(disk['checkpoints'])}; "
        f"to write with mask.format={plan['mask_format']}: {size(disk['total'])}",
    ]
    if "time" in plan:
        tm, h = plan["time"], plan["time"]["hours"]
        source = tm["from"]
        origin = (
            f"calibrated: {source['steps']} steps on {source['device']}"
            if isinstance(source, dict)
            else "plan.step_seconds"
        )
        lines += [
            f"  step time      {tm['step_seconds'] * 1e3:.2f} ms per step of {m['batch_size']} ({origin})",
            f"  device time    training {h['training']:.2f} h + attribution {h['attribution']:.2f} h + per-run overhead "
            f"{h['overhead']:.2f} h = {h['total']:.2f} device-hours",
        ]
    else:
        lines.append("  device time    no step time: pass plan.step_seconds=... or plan.calibrate=true")
    return "\n".join(lines)


def used_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def check_space(cfg, plan: dict) -> None:
    """Refuse (before any compute) when the bytes still to write exceed the free space where outputs go."""
    root = Path(str(cfg.paths.output_root)).absolute()
    probe = root
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    needed = plan["disk_bytes"]["total"] - used_bytes(experiment_dir(cfg))
    if needed > free and not cfg.plan.force:
        raise RoarError(
            f"{plan['experiment']} plans to write {size(needed)} more under {root}, which has {size(free)} free. "
            f"Free space, point paths.output_root elsewhere, shrink the grid, or pass plan.force=true to start anyway."
        )


def plan_and_print(cfg) -> dict:
    """Make the plan (calibrating first with ``plan.calibrate=true``), print it, write <experiment>/plan.json."""
    from roar.store.io import atomic_write_json
    from roar.tracking import quiet_lightning

    calibrated = None
    if cfg.plan.calibrate:
        quiet_lightning()
        facts = data_facts(cfg)
        calibrated = calibrate(cfg, facts["shape"], facts["num_classes"], int(cfg.plan.calibrate_steps))
    plan = make_plan(cfg, calibrated)
    print(format_plan(plan))
    out = experiment_dir(cfg) / "plan.json"
    atomic_write_json(out, plan)
    print(f"[roar-plan] -> {out}")
    return plan
