"""The experiment grid: which retrain runs an experiment's ``grid`` (estimators x modes x fractions x
seeds, and t = 0 once) holds. One enumeration for roar-pipeline, the sweeper of ``roar-train -m``, the
planner and the report."""

from roar.errors import as_list

GRID_LISTS = ("estimators", "modes", "fractions")


def check_grid(cfg) -> None:
    """``grid.estimators``, ``grid.modes`` and ``grid.fractions`` are lists (``grid.fractions=0.7`` is not: the
    stages' own keys interpolate them, so this is checked before any of those is read)."""
    grid = cfg.get("grid") or {}
    for key in GRID_LISTS:
        if key in grid:
            as_list(grid[key], f"grid.{key}")


def retrain_settings(grid) -> list:
    """(estimator, mode, fraction) of every retrain setting of an experiment's ``grid``, the one
    enumeration used by roar-pipeline, the sweeper of ``roar-train -m`` (any launcher) and the report:
    every estimator x mode x fraction t > 0, and the unmodified baseline t = 0 once, under random
    (ROAR section 4.2 retrains the unmodified data once)."""
    settings = [("random", str(grid.modes[0]), 0.0)] if "random" in grid.estimators else []
    for est in grid.estimators:
        for mode in grid.modes:
            settings += [(str(est), str(mode), float(t)) for t in grid.fractions if float(t) != 0.0]
    return settings


def retrain_jobs(grid) -> list:
    """(estimator, mode, fraction, seed) of every retrain run of ``grid``: its settings x ``grid.seeds``
    seeds, the runs roar-pipeline trains, ``sweep=grid`` launches and roar-plan prices."""
    return [(e, m, t, s) for e, m, t in retrain_settings(grid) for s in range(int(grid.seeds))]


def retrains(cfg) -> bool:
    """An experiment retrains when its maps cover the train split; one whose maps cover only the test split
    (``attribute.splits: [test]``: FPA's fidelity, the masking paper's completeness and soundness) evaluates its
    base model without retraining."""
    return "train" in [str(s) for s in cfg.attribute.splits]


def experiment_jobs(cfg) -> list:
    """The retrain runs of a pipeline config's experiment: ``retrain_jobs`` of its grid, none when it does not
    retrain (``retrains``); in a dry run (``dry_run=true``, roar.stages.dry_run) the t = 0 baseline and one run
    per mode (the first estimator at the first fraction): every code path of retraining, not the grid's runs."""
    jobs = retrain_jobs(cfg.grid) if retrains(cfg) else []
    if not cfg.get("dry_run"):
        return jobs
    kinds = {(m, t == 0): (e, m, t, s) for e, m, t, s in reversed(jobs)}  # the first job of each kind
    return [job for job in jobs if job in kinds.values()]


def with_zero(fractions) -> list:
    """t = 0 (the unmodified data) plus ``fractions``: what roar-mask writes and roar-eval deletes."""
    return [0.0] + [float(t) for t in fractions if float(t) != 0.0]
