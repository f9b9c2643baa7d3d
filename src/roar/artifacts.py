"""The one place that names artifact folders below ``paths.*`` (see conf/paths/default.yaml)."""

from pathlib import Path


def ranking_name(estimator: str, reduce: str = "abs_sum") -> str:
    """The folder name of an estimator's ranking: ``grad`` (abs_sum, the default) or ``grad_x_input.sum``."""
    return estimator if reduce == "abs_sum" else f"{estimator}.{reduce}"


def parse_ranking(name: str):
    """(estimator, reduce) of a ranking name, the inverse of ``ranking_name``: ``ig.sum`` -> (ig, sum)."""
    estimator, _, reduce = str(name).partition(".")
    return estimator, reduce or "abs_sum"


def fraction_name(fraction: float) -> str:
    """``0.1`` -> "0.1", ``0`` -> "0": the shortest exact decimal, so two fractions never share a folder."""
    return format(float(fraction), "g")


def shard_set_dir(shards_root, estimator: str, reduce: str, mode: str, fill: str, fraction: float) -> Path:
    """outputs/<name>/shards/<ranking>/<mode>/<fill>/<fraction>/"""
    return Path(shards_root) / ranking_name(estimator, reduce) / mode / fill / fraction_name(fraction)


def eval_file(eval_root, ranking: str, fill: str) -> Path:
    """outputs/<name>/eval/<model>-<augment>/<fill>/<ranking>.json: one no-retrain evaluation."""
    return Path(eval_root) / fill / f"{ranking}.json"
