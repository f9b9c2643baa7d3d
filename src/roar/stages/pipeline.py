"""``roar-pipeline``: the whole chain for one experiment, each stage skipped when its outputs verify.

    roar-pipeline experiment=roar_digits [overrides...]

train base -> attribute (grid.estimators) -> mask (grid.modes x grid.fractions, plus t = 0)
-> retrain grid.seeds seeds of every retrain setting (roar.store.grid.retrain_settings: the
unmodified baseline t = 0 once under random, every estimator x mode x fraction > 0) -> roar-eval
(no-retrain curves of the base model) -> roar-report (tables, figures, index.html).
``experiment=roar_toy`` runs ROAR's toy check instead and reports it. One config (conf/pipeline.yaml:
every stage's section) drives every stage, so running a stage by hand with the same overrides finds
the same artifacts. Finished runs are skipped, interrupted ones resume.
"""

import signal
import sys
import time

from roar.attribution.imported import import_maps
from roar.attribution.run import attribute
from roar.attribution.run import check_config as check_attribute
from roar.config import compose_config, search_path
from roar.errors import RoarError, positive_int, reported
from roar.evaluate.leakage import audit_sets
from roar.evaluate.run import check_config as check_eval
from roar.evaluate.run import evaluate
from roar.evaluate.toy import mean_curves, run_toy
from roar.masking.fills import check_fill
from roar.masking.run import check_config as check_mask
from roar.masking.run import write_masks
from roar.plan.run import check_space, format_plan, make_plan
from roar.report.collect import summarize
from roar.report.run import build_report
from roar.stages.chain import describe, is_cluster, submit_chain
from roar.stages.chain_status import status_lines
from roar.stages.dry_run import describe_dry_run, dry_run
from roar.store.experiment import runs_dir
from roar.store.grid import check_grid, experiment_jobs
from roar.store.io import atomic_write_json
from roar.store.names import fraction_name
from roar.store.resolve import base_key, experiment_dir, toy_file
from roar.tracking import finishing_wandb, quiet_lightning
from roar.training.run import train, validate
from roar.utils.log import get_logger
from roar.utils.progress import progress as progress_bar
from roar.utils.slurm import check_cluster

log = get_logger(__name__)

HELP = """roar-pipeline: the whole ROAR chain for one experiment, each stage skipped when its outputs verify.

  roar-pipeline experiment=roar_digits [key=value ...]
  roar-pipeline --config-dir my_configs experiment=mine    (your own my_configs/experiment/mine.yaml)
  roar-pipeline --config-dir my_conf hydra/launcher=mycluster experiment=...   (the chain as SLURM jobs; returns)
  roar-pipeline status [the same arguments]                (each stage's outputs and jobs)
  roar-pipeline experiment=roar_imagenet_fig4 dry_run=true (the whole chain on a tiny stand-in: config errors in
                                                            minutes; outputs under <name>_dry_run)

train the base model -> attribute (grid.estimators) -> mask (grid.modes x grid.fractions, t = 0 too)
-> retrain grid.seeds seeds per setting -> roar-eval (no retraining) -> roar-report.
Main keys: experiment, name, data, model, augment, fill, grid.estimators, grid.modes, grid.fractions,
grid.seeds, trainer.accelerator, paths.output_root. Every key of roar-train, roar-attribute, roar-mask
and roar-eval applies (see their --help and --cfg job). The pipeline sweeps its own grid: no -m.
"""


def run_pipeline(overrides, progress: bool = True) -> list:
    """Run every stage; returns the retrain runs' metrics."""
    cfg, overrides = composed(overrides)
    if cfg.get("dry_run"):
        log.info(f"[roar-pipeline] dry run: {describe_dry_run(cfg)}")
    if cfg.get("toy") is not None:
        return run_toy_check(cfg, overrides)
    jobs = checked_jobs(cfg)
    plan = make_plan(cfg)  # the bill first; refused when it cannot fit on disk
    check_fill(cfg.fill, int(plan["data"]["shape"][0]))  # fill.* against the images' channels, before any compute
    log.info(format_plan(plan))
    check_space(cfg, plan)
    runs_cfg, run_overrides = retrain_configs(cfg, overrides, jobs)
    for run_cfg in runs_cfg:
        validate(run_cfg)
    cluster = launched(overrides)
    if cluster is not None:  # hydra/launcher=<a SLURM launcher>: the chain as dependent jobs (roar.stages.chain)
        log.info(describe(cfg, submit_chain(cluster, overrides, runs_cfg, run_overrides, plan), overrides))
        return []
    started = time.time()
    log.info(f"[roar-pipeline] {cfg.name}: base model")
    base = train(cfg)
    log.info(
        f"[roar-pipeline] {cfg.name}: base test_acc {base['test_acc']:.4f}; attributions for "
        f"{list(cfg.attribute.estimators)}"
    )
    attribute_all(cfg, overrides)
    runs = []
    if runs_cfg:
        log.info(f"[roar-pipeline] {cfg.name}: masked shards")
        audit_sets(write_masks(cfg), int(cfg.mask.audit_steps), int(cfg.maps_seed))
        log.info(f"[roar-pipeline] {cfg.name}: retraining {len(runs_cfg)} runs")
        runs = retrain(runs_cfg, progress)
        log.info(
            f"[roar-pipeline] {cfg.name}: retraining done in {time.time() - started:.0f} s; runs under "
            f"{runs_dir(experiment_dir(cfg))}"
        )
        print_summary(runs, base)
    else:
        log.info(f"[roar-pipeline] {cfg.name}: no retraining (attribute.splits={list(cfg.attribute.splits)})")
    log.info(f"[roar-pipeline] {cfg.name}: no-retrain evaluation of the base model")
    evaluate(cfg)
    report = build_report(cfg)
    log.info(f"[roar-pipeline] {cfg.name}: done in {time.time() - started:.0f} s. Report: {report.resolve()}")
    return runs


def composed(overrides) -> tuple:
    """(config, overrides) of the pipeline; with ``dry_run=true`` the experiment's tiny stand-in
    (roar.stages.dry_run), in its own folder, for running and for ``status`` alike."""
    overrides = list(overrides)
    cfg = compose_config("pipeline", overrides)
    if not cfg.get("dry_run"):
        return cfg, overrides
    overrides = dry_run(cfg, overrides)
    return compose_config("pipeline", overrides), overrides


def checked_jobs(cfg) -> list:
    """The experiment's retrain runs (roar.store.grid.experiment_jobs), after every
    stage's settings are checked: nothing computes before a config error is found."""
    check_grid(cfg)
    positive_int(cfg.grid.seeds, "grid.seeds")  # retrain at least one seed per setting
    if not cfg.grid.estimators or not cfg.grid.modes or not [t for t in cfg.grid.fractions if float(t) > 0]:
        raise RoarError(
            f"grid.estimators={list(cfg.grid.estimators)} grid.modes={list(cfg.grid.modes)} "
            f"grid.fractions={list(cfg.grid.fractions)}: nothing to mask or retrain. Give at least one estimator, "
            f"one mode and one fraction t > 0 (t = 0, the unmodified baseline, is added by itself)."
        )
    jobs = experiment_jobs(cfg)
    for check in (validate, check_attribute, check_mask, check_eval):  # every stage's settings, before any compute
        check(cfg)
    return jobs


def attribute_all(cfg, overrides: list) -> None:
    """The maps of every estimator: imported ones (``import=``), computed ones, and the runner-up class's
    (``attribute.target=second``) when the soundness evaluation is on (masking-explanations appendix D)."""
    if cfg.get("import") is not None:  # maps made elsewhere, among grid.estimators as imported-<name>
        import_maps(cfg)
    attribute(cfg)
    if int(cfg.eval.soundness.images or 0) > 0 and str(cfg.attribute.target) != "second":
        log.info(f"[roar-pipeline] {cfg.name}: attributions for the runner-up class (soundness)")
        attribute(compose_config("pipeline", [*overrides, "attribute.target=second"]))


def retrain_configs(cfg, overrides: list, jobs: list) -> tuple:
    """(config, overrides) of every retrain run of ``jobs``, on the base model this pipeline trains."""
    base_name = base_key(cfg).name
    extra = [[f"base={base_name}", f"estimator={e}", f"mode={m}", f"fraction={t}", f"seed={s}"] for e, m, t, s in jobs]
    return [compose_config("pipeline", [*overrides, *o]) for o in extra], extra


def launched(overrides: list):
    """The config with its hydra section when ``hydra/launcher=`` names a SLURM launcher (checked: partition,
    time, DDP tasks), else None (the local pipeline)."""
    if not any(o.lstrip("+").startswith("hydra/launcher=") for o in overrides):
        return None
    full = compose_config("pipeline", overrides, with_hydra=True)
    if not is_cluster(full):
        return None
    check_cluster(full)
    return full


def status(overrides: list) -> None:
    """``roar-pipeline status <overrides>``: each stage's outputs in the store and its jobs in SLURM."""
    cfg, overrides = composed(overrides)
    runs_cfg, _ = retrain_configs(cfg, overrides, experiment_jobs(cfg))
    for line in status_lines(cfg, runs_cfg):
        log.info(line)


def retrain(configs, progress: bool) -> list:
    """Train every run, one progress line for the sweep (runs done / total, elapsed, the current setting)."""
    runs = []
    with progress_bar(len(configs), "retrain", "run", disable=not progress) as bar:
        for run_cfg in configs:
            bar.set_postfix_str(
                f"{run_cfg.estimator} {run_cfg.mode} t={fraction_name(run_cfg.fraction)} seed={run_cfg.seed}"
            )
            with finishing_wandb():
                runs.append(train(run_cfg, quiet=progress))
            bar.update(1)
    return runs


def run_toy_check(cfg, overrides) -> dict:
    """ROAR's toy check (roar.evaluate.toy): results.json under <experiment>/toy/, then the report."""
    toy = run_toy(**{k: v for k, v in dict(cfg.toy).items() if k != "seeds"}, seeds=list(cfg.toy.seeds))
    atomic_write_json(toy_file(cfg), toy)
    log.info(f"[roar-pipeline] toy check, test accuracy (mean over {len(toy['seeds'])} datasets) vs fraction removed")
    log.info("  " + " " * 24 + " ".join(f"{t:5.2f}" for t in toy["fractions"]))
    for (name, kind), accs in mean_curves(toy).items():
        log.info(f"  {name:12s} {kind:11s} " + " ".join(f"{a:5.2f}" for a in accs))
    report = build_report(cfg)
    log.info(f"[roar-pipeline] {cfg.name}: done. Report: {report.resolve()}")
    return toy


def print_summary(runs, base) -> None:
    """Test accuracy per estimator (rows) and fraction removed (columns), mean ± sd over seeds
    (the report's summary, roar.report.collect.summarize); one seed shows no spread."""
    cells = {(s["estimator"], s["mode"], s["fraction"]): s for s in summarize(runs)}
    fractions = sorted({r["fraction"] for r in runs})
    log.info(f"\nTest accuracy after retraining (mean ± sd over seeds); base model {base['test_acc']:.4f}")
    log.info(f"  {'estimator':14s} {'mode':6s} " + " ".join(f"{'t=' + fraction_name(t):>15s}" for t in fractions))
    for est, mode in dict.fromkeys((r["estimator"], r["mode"]) for r in runs):
        row = []
        for t in fractions:
            c = cells.get((est, mode, t))
            row.append("" if not c else f"{c['mean']:.3f} ± {c['std']:.3f}" if c["n"] > 1 else f"{c['mean']:.3f}")
        log.info(f"  {est:14s} {mode:6s} " + " ".join(f"{c:>15s}" for c in row))


def main():
    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print(HELP)
        return
    if any(a in ("-m", "--multirun") for a in args):
        print("roar-pipeline: error: the pipeline sweeps its own grid (grid.*); drop -m.", file=sys.stderr)
        sys.exit(2)
    with reported("roar-pipeline"):
        args = with_config_dir(args)
    if any(a.startswith("--") for a in args):
        print(
            f"roar-pipeline: error: {next(a for a in args if a.startswith('--'))} is not an option of roar-pipeline "
            f"(it takes key=value overrides; see roar-pipeline --help). For a stage's config: roar-train --cfg job ...",
            file=sys.stderr,
        )
        sys.exit(2)
    quiet_lightning()
    signal.signal(signal.SIGTERM, interrupted)
    with reported("roar-pipeline"):
        if "status" in args:  # roar-pipeline status <the chain's overrides>
            status([a for a in args if a != "status"])
            return
        run_pipeline(args + ["trainer.enable_progress_bar=false"])


def with_config_dir(args: list) -> list:
    """``--config-dir <folder>`` (or ``--config-dir=<folder>``, ``-cd``) as the search-path override Hydra's own
    apps make of it, so roar-pipeline finds the user's experiments as roar-train does."""
    out, rest = [], list(args)
    while rest:
        arg = rest.pop(0)
        flag, eq, value = arg.partition("=")
        if flag in ("--config-dir", "-cd"):
            if not eq and not rest:
                raise RoarError(f"{flag} needs a folder: roar-pipeline --config-dir my_configs experiment=mine")
            out.insert(0, search_path(value if eq else rest.pop(0)))
        else:
            out.append(arg)
    return out


def interrupted(signum, frame):
    """SIGTERM (a scheduler's time limit, ``timeout``, ``kill``) anywhere in the chain: one line, exit 128 + 15,
    so ``roar-pipeline ... && next`` stops; every stage resumes where it was on the same command. Lightning
    calls this too when the signal lands in a training (it composes the handlers it finds)."""
    log.info("[roar-pipeline] interrupted by SIGTERM; rerun the same command to resume (finished work is skipped).")
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
