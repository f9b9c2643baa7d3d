"""``roar-pipeline``: the whole chain for one experiment, each stage skipped when its outputs verify.

    roar-pipeline experiment=roar_digits [overrides...]

train base -> attribute (grid.estimators) -> mask (grid.modes x grid.fractions, plus t = 0)
-> retrain grid.seeds seeds of every (estimator, mode, fraction) on the masked shards, and the
unmodified baseline (t = 0) under ``random`` -> roar-eval (no-retrain curves of the base model)
-> roar-report (tables, figures, index.html). ``experiment=roar_toy`` runs ROAR's toy check
instead and reports it. Every stage composes its own config from the same
overrides (conf/train.yaml, attribute.yaml, mask.yaml), so running a stage by hand with those
overrides finds the same artifacts. Finished runs are skipped, interrupted ones resume.
"""

import logging
import statistics
import sys
import time
import warnings

from roar.artifacts import fraction_name
from roar.attribute import attribute
from roar.config import compose_config
from roar.errors import RoarError, reported
from roar.eval import evaluate
from roar.evaluate.toy import mean_curves, run_toy
from roar.logging_setup import finishing_wandb
from roar.mask import mask
from roar.report import build_report
from roar.report.collect import summarize
from roar.train import train
from roar.utils.io import atomic_write_json


def retrain_settings(cfg):
    """(estimator, mode, fraction) of every retrain setting of the grid; t = 0 once, under random."""
    settings = [("random", cfg.grid.modes[0], 0.0)] if "random" in cfg.grid.estimators else []
    for est in cfg.grid.estimators:
        for mode in cfg.grid.modes:
            settings += [(est, mode, float(t)) for t in cfg.grid.fractions if float(t) != 0.0]
    return settings


def run_pipeline(overrides) -> list:
    """Run every stage; returns the retrain runs' metrics."""
    overrides = list(overrides)
    cfg = compose_config("train", overrides)
    if cfg.get("toy") is not None:
        return run_toy_check(cfg, overrides)
    if int(cfg.grid.seeds) < 1:
        raise RoarError(f"grid.seeds={cfg.grid.seeds}: retrain at least one seed per setting.")
    started = time.time()
    print(f"[roar-pipeline] {cfg.name}: base model", flush=True)
    base = train(cfg)
    print(f"[roar-pipeline] {cfg.name}: base test_acc {base['test_acc']:.4f}; attributions for {list(cfg.grid.estimators)}", flush=True)
    attribute(compose_config("attribute", overrides))
    print(f"[roar-pipeline] {cfg.name}: masked shards", flush=True)
    mask(compose_config("mask", overrides))
    settings = retrain_settings(cfg)
    seeds = range(int(cfg.grid.seeds))
    print(f"[roar-pipeline] {cfg.name}: retraining {len(settings)} settings x {len(seeds)} seeds = {len(settings) * len(seeds)} runs", flush=True)
    runs = []
    for k, (est, mode, t) in enumerate(settings):
        for seed in seeds:
            run_cfg = compose_config("train", [*overrides, "data=shards", f"estimator={est}", f"mode={mode}", f"fraction={t}", f"seed={seed}"])
            with finishing_wandb():
                runs.append(train(run_cfg))
        accs = [r["test_acc"] for r in runs[-len(seeds):]]
        spread = f" ± {statistics.stdev(accs):.4f}" if len(accs) > 1 else ""
        print(f"  [{k + 1}/{len(settings)}] {est:14s} {mode:6s} t={fraction_name(t):4s} test_acc {statistics.mean(accs):.4f}{spread}", flush=True)
    print(f"[roar-pipeline] {cfg.name}: retraining done in {time.time() - started:.0f} s; runs under {cfg.paths.experiment_dir}/runs")
    print_summary(runs, base)
    print(f"[roar-pipeline] {cfg.name}: no-retrain evaluation of the base model", flush=True)
    evaluate(compose_config("eval", overrides))
    report = build_report(compose_config("report", overrides))
    print(f"[roar-pipeline] {cfg.name}: done in {time.time() - started:.0f} s. Report: {report.resolve()}")
    return runs


def run_toy_check(cfg, overrides) -> dict:
    """ROAR's toy check (roar.evaluate.toy): results.json under <experiment>/toy/, then the report."""
    toy = run_toy(**{k: v for k, v in dict(cfg.toy).items() if k != "seeds"}, seeds=list(cfg.toy.seeds))
    atomic_write_json(f"{cfg.paths.experiment_dir}/toy/results.json", toy)
    print(f"[roar-pipeline] toy check, test accuracy (mean over {len(toy['seeds'])} datasets) vs fraction removed")
    print("  " + " " * 24 + " ".join(f"{t:5.2f}" for t in toy["fractions"]))
    for (name, kind), accs in mean_curves(toy).items():
        print(f"  {name:12s} {kind:11s} " + " ".join(f"{a:5.2f}" for a in accs))
    report = build_report(compose_config("report", overrides))
    print(f"[roar-pipeline] {cfg.name}: done. Report: {report.resolve()}")
    return toy


def print_summary(runs, base) -> None:
    """Test accuracy per estimator (rows) and fraction removed (columns), mean ± sd over seeds
    (the report's summary, roar.report.collect.summarize)."""
    cells = {(s["estimator"], s["mode"], s["fraction"]): s for s in summarize(runs)}
    fractions = sorted({r["fraction"] for r in runs})
    print(f"\nTest accuracy after retraining (mean ± sd over seeds); base model {base['test_acc']:.4f}")
    print(f"  {'estimator':14s} {'mode':6s} " + " ".join(f"{'t=' + fraction_name(t):>15s}" for t in fractions))
    for est, mode in dict.fromkeys((r["estimator"], r["mode"]) for r in runs):
        row = [f"{c['mean']:.3f} ± {c['std']:.3f}" if (c := cells.get((est, mode, t))) else "" for t in fractions]
        print(f"  {est:14s} {mode:6s} " + " ".join(f"{c:>15s}" for c in row))


def quiet_lightning() -> None:
    """Dozens of runs in one process: keep Lightning's per-run banners (devices, tips) off the console;
    its warnings still show."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated")  # inside Lightning, not ours to fix
    # data=shards splits its samples by worker itself (roar.data.masked), which this warning cannot see
    warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")


def main():
    quiet_lightning()
    overrides = sys.argv[1:]
    if any(o in ("-m", "--multirun") for o in overrides):
        print("roar-pipeline: error: the pipeline sweeps its own grid (grid.*); drop -m.", file=sys.stderr)
        sys.exit(2)
    with reported("roar-pipeline"):
        run_pipeline(overrides)


if __name__ == "__main__":
    main()
