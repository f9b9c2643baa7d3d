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
from pathlib import Path

from roar.errors import RoarError, as_list
from roar.estimators import EstimatorSuite
from roar.estimators.registry import parse
from roar.masking.buckets import bucket_bits, grid_boundaries
from roar.masking.run import num_features
from roar.plan.calibrate import calibrate, parameters
from roar.plan.facts import bucket_bytes, data_facts, map_bytes, sample_bytes
from roar.store.grid import experiment_jobs
from roar.store.masked import FORMATS
from roar.store.resolve import experiment_dir, ranking_patch
from roar.utils.log import get_logger
from roar.utils.plain import to_plain

log = get_logger(__name__)


def disk_bytes(cfg, facts: dict, counts: dict) -> dict:
    """Bytes each artifact takes: the maps, the masked shards in every format (the bucket format: the image
    set once and a bucket set per ranking), the checkpoints; ``total``: what the configured format writes."""
    shape, rankings = facts["shape"], counts["rankings"]
    features = num_features(shape, ranking_patch(cfg), str(cfg.reduce))
    bits = bucket_bits(grid_boundaries(cfg.mask.fractions, features))
    masked, sets = counts["masked"], counts["sets"]
    reduced = str(cfg.attribute.get("store", "full")) == "reduced"
    disk = {
        "maps": map_bytes(facts, reduced) * counts["attributed"] * counts["estimators"],
        **{f"shards_{fmt}": sample_bytes(facts, fmt) * masked * sets for fmt in FORMATS.where(per_ranking=False)},
        "shards_buckets": (sample_bytes(facts, "images") + bucket_bytes(facts, features, bits) * rankings) * masked,
        "checkpoints": counts["trainings"] * counts["parameters"] * 4 * 2,  # weights and momentum, float32
    }
    disk["total"] = disk["maps"] + disk[f"shards_{cfg.mask.format}"] + disk["checkpoints"]
    return disk


def device_hours(cfg, plan: dict, step: float, calibrated) -> dict:
    """Device time from a training step's seconds: training steps, attribution passes (a pass of one image
    priced at a training step's time per image) and a fixed overhead per run."""
    batch, overhead = plan["model"]["batch_size"], float(cfg.plan.run_overhead_s)
    hours = {
        "training": plan["training_steps"] * float(step) / 3600,
        "attribution": plan["attribution"]["passes"] * float(step) / batch / 3600,
        "overhead": plan["trainings"]["total"] * overhead / 3600,
    }
    hours["total"] = sum(hours.values())
    return {"step_seconds": float(step), "from": calibrated or "plan.step_seconds", "hours": hours}


def make_plan(cfg, calibrated: dict | None = None) -> dict:
    """The bill of ``cfg``'s experiment (a pipeline config): counts, bytes, and device-hours when a step
    time is known (``calibrated``, or ``plan.step_seconds``)."""
    step = calibrated["step_seconds"] if calibrated else cfg.plan.get("step_seconds")
    if step is not None and not float(step) > 0:
        raise RoarError(f"plan.step_seconds={step}: give the seconds one training step takes (> 0), or null.")
    facts = data_facts(cfg)
    n_train, n_test, shape = facts["num_train"], facts["num_test"], facts["shape"]
    jobs = experiment_jobs(cfg)  # none when the experiment does not retrain (FPA, soundness)
    estimators = as_list(cfg.attribute.estimators, "attribute.estimators")
    computed = [e for e in estimators if parse(e)[0] != "imported"]  # imported maps cost no pass
    suite = EstimatorSuite(computed, **to_plain(cfg.attribute.params)) if computed else None
    per_image = suite.passes_for(shape[1] * shape[2]) if suite else 0
    split_sizes = {"train": n_train, "test": n_test}
    splits = [str(s) for s in as_list(cfg.attribute.splits, "attribute.splits")]
    rankings = len(as_list(cfg.mask.estimators, "mask.estimators"))
    counts = {
        "trainings": 1 + len(jobs),
        "estimators": len(estimators),
        "attributed": sum(split_sizes[s] for s in splits),
        "masked": sum(split_sizes[s] for s in as_list(cfg.mask.splits, "mask.splits")) if jobs else 0,
        "rankings": rankings,
        "sets": rankings * len(cfg.mask.modes) * len(cfg.mask.fractions),
        "parameters": parameters(cfg, shape, facts["num_classes"]),
    }
    batch, epochs = int(cfg.data.batch_size), int(cfg.trainer.max_epochs)
    data = {"name": str(cfg.data.name), "num_train": n_train, "num_test": n_test, "shape": shape}
    plan = {
        "experiment": str(cfg.name),
        "data": {**data, "sizes_from": facts["source"]},
        "model": {
            "name": str(cfg.model.name),
            "parameters": counts["parameters"],
            "batch_size": batch,
            "epochs": epochs,
        },
        "trainings": {
            "base": 1,
            "retrain": len(jobs),
            "total": counts["trainings"],
            "settings": len({j[:3] for j in jobs}),
        },
        "training_steps": counts["trainings"] * epochs * math.ceil(n_train / batch),
        "attribution": {
            "estimators": estimators,
            "passes_per_image": per_image,
            "splits": splits,
            "images": counts["attributed"],
            "passes": per_image * counts["attributed"],
        },
        "shard_sets": counts["sets"],
        "bucket_sets": rankings,
        "disk_bytes": disk_bytes(cfg, facts, counts),
        "mask_format": str(cfg.mask.format),
    }
    if step is not None:
        plan["time"] = device_hours(cfg, plan, step, calibrated)
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
        f"{'x'.join(map(str, d['shape']))} ({d['sizes_from']}); {m['name']} ({m['parameters'] / 1e6:.2f} M "
        f"parameters), "
        f"batch {m['batch_size']}, {m['epochs']} epochs",
        f"  trainings      {t['base']} base + {t['retrain']:,} retrains ({t['settings']} settings x seeds) = "
        f"{t['total']:,}; "
        f"{plan['training_steps']:,} training steps",
        f"  attribution    {len(a['estimators'])} estimators, {a['passes_per_image']} forward+backward passes per "
        f"image "
        f"(shared) x {a['images']:,} images ({', '.join(a['splits'])}) = {a['passes']:,}",
        f"  disk           maps {size(disk['maps'])}; masked shards ({plan['shard_sets']} sets) npy "
        f"{size(disk['shards_npy'])}, "
        f"png {size(disk['shards_png'])}, uint8 {size(disk['shards_uint8'])}; rank buckets ({plan['bucket_sets']} "
        f"sets, "
        f"every mode, fill and fraction, and the image set) {size(disk['shards_buckets'])}; checkpoints "
        f"{size(disk['checkpoints'])}; "
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
            f"  device time    training {h['training']:.2f} h + attribution {h['attribution']:.2f} h + per-run "
            f"overhead "
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
    log.info(format_plan(plan))
    out = experiment_dir(cfg) / "plan.json"
    atomic_write_json(out, plan)
    log.info(f"[roar-plan] -> {out}")
    return plan
