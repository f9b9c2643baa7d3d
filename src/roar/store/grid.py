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


def with_zero(fractions) -> list:
    """t = 0 (the unmodified data) plus ``fractions``: what roar-mask writes and roar-eval deletes."""
    return [0.0] + [float(t) for t in fractions if float(t) != 0.0]
