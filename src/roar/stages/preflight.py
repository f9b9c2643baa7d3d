"""The sweeper of every roar multirun: the retrain grid generated the same way on every launcher,
and every job checked before any is launched.

``roar-train -m experiment=... sweep=grid`` runs every retrain setting of ``grid.*``
(roar.store.grid.retrain_settings: t = 0 once under random, every estimator x mode x fraction > 0)
times ``grid.seeds``, on the local launcher or as one SLURM job array alike. Before launching, a
sweep that would fail in every job fails once, here, in seconds: a SLURM launcher config without
partition or time, DDP jobs whose tasks per node differ from trainer.devices, retrain jobs whose
shard sets do not exist (each job's config is composed, and its own key says where its shards are).
"""

import sys

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from roar.errors import RoarError
from roar.masking.buckets import check_on_grid
from roar.store.experiment import set_folder
from roar.store.grid import retrain_jobs
from roar.store.manifest import read_manifest
from roar.store.masked import FORMATS
from roar.store.resolve import is_retrain, run_key
from roar.utils.slurm import check_cluster

GRID_KEYS = ("estimator", "mode", "fraction", "seed")


def grid_jobs(config, jobs: list) -> list:
    """Every job of ``jobs`` times every retrain setting of the experiment's grid and every seed."""
    given = sorted({o.split("=", 1)[0].lstrip("+~") for job in jobs for o in job} & set(GRID_KEYS))
    if given:
        raise RoarError(
            f"sweep=grid makes the estimator, mode, fraction and seed of every job from grid.*; drop "
            f"{', '.join(given)}=... "
            f"(or drop sweep=grid to sweep your own lists)."
        )
    return [
        [*job, f"estimator={e}", f"mode={m}", f"fraction={t}", f"seed={s}"]
        for job in jobs
        for e, m, t, s in retrain_jobs(config.grid)
    ]


def missing_shards(configs) -> list:
    """The shard sets the retrain jobs among ``configs`` would need and that are missing: a setting's
    materialized set, else its ranking's bucket set (``set_folder``), which must hold the job's fraction."""
    missing = []
    for cfg in configs:
        if is_retrain(cfg):
            key = run_key(cfg).shards
            folder = set_folder(key)
            manifest = read_manifest(folder)
            if manifest is None:
                what = str(folder)
            elif FORMATS[manifest.get("format", "npy")].per_ranking:
                try:
                    check_on_grid(manifest["fractions"], key.fraction, key.mode)
                    continue
                except RoarError as err:
                    what = f"{folder} ({err})"
            else:
                continue
            if what not in missing:
                missing.append(what)
    return missing


class PreflightSweeper(BasicSweeper):
    """Hydra's basic sweeper, with the grid generated and the jobs checked before launching."""

    def split_arguments(self, overrides, max_batch_size):
        jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        try:
            check_cluster(self.config)
            if self.config.get("sweep") == "grid":
                jobs = grid_jobs(self.config, jobs)
            elif self.config.get("sweep") is not None:
                raise RoarError(f"sweep={self.config.sweep!r}: the only sweep roar makes itself is sweep=grid.")
            if not jobs:  # e.g. -m 'seed=range(0)': a sweep of nothing must not report success
                given = " ".join(str(getattr(o, "input_line", o)) for o in overrides)
                raise RoarError(f"The sweep '{given}' has no jobs: a swept value list is empty (range(0), []).")
            loader = self.hydra_context.config_loader
            missing = missing_shards(loader.load_sweep_config(self.config, list(job)) for job in jobs)
            if missing:
                raise RoarError(
                    f"{len(missing)} setting(s) of this sweep have no masked shards, e.g. {missing[0]}. "
                    f"Run roar-attribute and then roar-mask for them first (or roar-pipeline)."
                )
        except Exception as err:  # fail closed: a check that cannot run must not let the sweep through
            print(f"roar: error: {err} Nothing was launched.", file=sys.stderr)
            sys.exit(2)
        if max_batch_size is None:
            return [jobs]
        return [jobs[i : i + max_batch_size] for i in range(0, len(jobs), max_batch_size)]
