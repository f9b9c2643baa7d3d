"""Keys from a composed config: every stage's config (name, paths, data, model, augment, fill) resolves
to the typed keys of roar.store.keys here, and to the experiment's own folders (report, logs, toy).

Only roar-train knows a base model's training settings; the stages after it (and retrain runs, whose
seed is not the base model's) find it as the one finished base of their data, model and augment, or
by ``base=<its folder name>`` (``find_base``).
"""

import functools
from pathlib import Path

from roar.errors import RoarError, check_probability
from roar.store.io import read_json
from roar.store.keys import IDENTITY, NOT_WEIGHTS, BaseKey, BucketSetKey, EvalKey, MapsKey, RunKey, ShardSetKey
from roar.store.names import check_name, fill_label, parse_ranking, ranking_name, settings_hash
from roar.store.shards import sha256_file
from roar.utils.plain import to_plain


def experiment_dir(cfg) -> Path:
    return Path(str(cfg.paths.output_root)) / check_name(cfg.name)


# data keys that say where and how the same samples are read, not which: never part of a run's identity
DATA_NOT_WEIGHTS = ("root", "num_workers", "on_error", "in_memory", "in_memory_mb")


def retrain_variant(cfg) -> dict | None:
    """A retrain run's own ``{model, augment}`` where ``model@retrain.model=`` or ``augment@retrain.augment=``
    gives one (overinterpretation Table 1 retrains without the base's crops and flips, Table S2 another
    architecture); None for a base model and for a retrain run with the base model's (the default)."""
    chosen = cfg.get("retrain") or {}
    if not is_retrain(cfg) or (chosen.get("model") is None and chosen.get("augment") is None):
        return None
    return {
        "model": to_plain(chosen.get("model") or cfg.model),
        "augment": to_plain(chosen.get("augment") or cfg.augment),
    }


def retrained_as(cfg) -> str | None:
    """The folder a retrain variant's runs take below their setting: ``as-<model>-<augment>-<digest>``."""
    variant = retrain_variant(cfg)
    if variant is None:
        return None
    return f"as-{variant['model']['name']}-{variant['augment']['name']}-{settings_hash(variant)[:8]}"


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def pretrained_sha256(cfg) -> str | None:
    """The sha256 of ``base_checkpoint=`` (a model trained elsewhere as the base model), or None; read once
    per file version."""
    given = cfg.get("base_checkpoint")
    if given is None:
        return None
    path = Path(str(given)).expanduser()
    if not path.is_file():
        raise RoarError(f"base_checkpoint={given}: no such file. Give the path of the trained model's weights file.")
    stat = path.stat()
    return _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def training_settings(cfg, run: bool = False) -> dict:
    """Everything besides a run's key that changes what it trains: optimizer and schedule, model and
    augmentation parameters, data settings (not where the data lie), the Trainer's epochs, precision,
    limits and devices. ``run``: the settings this run trains with (a retrain variant's own model and
    augmentation); otherwise the base model's. A base model from ``base_checkpoint=`` trains nothing: its
    settings are the file's sha256, the model and the data."""
    data = {k: v for k, v in to_plain(cfg.data).items() if k not in DATA_NOT_WEIGHTS}
    if pretrained_sha256(cfg) and not (run and is_retrain(cfg)):
        return {"pretrained_sha256": pretrained_sha256(cfg), "model": to_plain(cfg.model), "data": data}
    variant = retrain_variant(cfg) if run else None
    return {
        "optim": to_plain(cfg.optim),
        "model": variant["model"] if variant else to_plain(cfg.model),
        "augment": variant["augment"] if variant else to_plain(cfg.augment),
        "data": data,
        "trainer": {k: v for k, v in to_plain(cfg.trainer).items() if k not in NOT_WEIGHTS},
    }


def base_digest(cfg) -> str:
    """The base model's digest: its training settings and its seed (a config that trains, roar-train's), or for
    ``base_checkpoint=`` the file's sha256, the model and the data (no seed: nothing is drawn)."""
    if pretrained_sha256(cfg):
        return settings_hash({"training": training_settings(cfg)})[:8]
    return settings_hash({"training": training_settings(cfg), "seed": int(cfg.seed)})[:8]


def trains(cfg) -> bool:
    """A config of roar-train or roar-pipeline: it holds the train section (``optim`` and ``retrain``).
    An experiment's ``optim.lr`` alone, composed into another stage's config, does not make one."""
    return "optim" in cfg and "retrain" in cfg


def base_key(cfg) -> BaseKey:
    """The base model of ``cfg``: the one roar-train makes with it, the one ``base=`` names, the one
    ``base_checkpoint=`` makes, or the one finished base of the config's data, model and augment (``find_base``)."""
    exp, data, model, augment = experiment_dir(cfg), str(cfg.data.name), str(cfg.model.name), str(cfg.augment.name)
    prefix = f"{data}-{model}-{augment}"
    if cfg.get("base"):
        chosen = str(cfg.base)
        if not chosen.startswith(prefix + "-"):
            raise RoarError(
                f"base={chosen} is not a base model of data={data} model={model} augment={augment} "
                f"(their folders are named {prefix}-<digest>); pick one under {exp / 'base'}."
            )
        return BaseKey(exp, data, model, augment, chosen[len(prefix) + 1 :])
    if (trains(cfg) and not is_retrain(cfg)) or pretrained_sha256(cfg):
        return BaseKey(exp, data, model, augment, base_digest(cfg))
    return find_base(cfg, exp, data, model, augment)


def find_base(cfg, exp: Path, data: str, model: str, augment: str) -> BaseKey:
    """The one finished base model of (data, model, augment) under the experiment; among several, a retrain
    run takes the one trained with its own training settings. None or several left: an error that lists them."""
    prefix, folder = f"{data}-{model}-{augment}", exp / "base"
    found = (
        sorted(p.name for p in folder.glob(f"{prefix}-*") if (p / "metrics.json").is_file()) if folder.is_dir() else []
    )
    if len(found) > 1 and trains(cfg):
        mine = training_settings(cfg)
        found = [n for n in found if (read_json(folder / n / IDENTITY) or {}).get("training") == mine] or found
    if len(found) == 1:
        return BaseKey(exp, data, model, augment, found[0][len(prefix) + 1 :])
    if not found:
        raise RoarError(
            f"No finished base model of data={data} model={model} augment={augment} under {folder}. "
            f"Run roar-train with the same name/data/model/augment (and recipe) first, or roar-pipeline."
        )
    raise RoarError(
        f"{len(found)} finished base models of data={data} model={model} augment={augment} under {folder}: "
        f"{', '.join(found)}. Pass base=<one of them>."
    )


def maps_key(cfg, estimator: str) -> MapsKey:
    target = (cfg.get("attribute") or {}).get("target", "predicted")
    return MapsKey(base_key(cfg), str(estimator), str(target))


def shard_set_key(cfg, estimator: str, mode: str, fraction: float, reduce: str | None = None) -> ShardSetKey:
    return ShardSetKey(
        base_key(cfg),
        str(estimator),
        str(reduce or cfg.reduce),
        str(mode),
        fill_label(cfg.fill),
        float(fraction),
        ranking_patch(cfg),
    )


def bucket_set_key(cfg, estimator: str) -> BucketSetKey:
    """The rank-bucket set of ``estimator``'s ranking (``reduce=``, ``granularity=``): every mode, fill and fraction."""
    return BucketSetKey(base_key(cfg), str(estimator), str(cfg.reduce), ranking_patch(cfg))


def is_retrain(cfg) -> bool:
    """A run trains on masked shards when it names the ranking (estimator=) it retrains on."""
    return cfg.get("estimator") is not None


def run_key(cfg) -> RunKey:
    """The run ``roar-train`` with this config makes: the base model, or a retrain run (estimator= set)."""
    try:
        seed = int(cfg.seed)
    except (TypeError, ValueError):
        seed = -1
    if seed < 0 or str(seed) != str(cfg.seed).strip():  # 1.5 and "abc" are no seeds; 0 is one
        raise RoarError(f"seed={cfg.get('seed')}: give a non-negative integer seed (0 is a seed).")
    if not is_retrain(cfg):
        return RunKey(base_key(cfg), seed)
    if cfg.get("fraction") is None:
        raise RoarError(
            "A retrain run needs fraction=... as well as estimator=... (which masked data to train on), "
            "e.g. estimator=grad fraction=0.5 mode=remove."
        )
    fraction = check_probability("fraction", cfg.fraction, "the share of features masked (ROAR's t)")
    return RunKey(base_key(cfg), seed, shard_set_key(cfg, cfg.estimator, cfg.mode, fraction), retrained_as(cfg))


def eval_key(cfg, ranking: str, order_from: str | None = None) -> EvalKey:
    """The roar-eval file of ``ranking`` (``ig.sum``), at the config's granularity (``ig.sum.patch4``);
    ``order_from``: ranked by another base model's maps (``eval.order_from``)."""
    estimator, reduce, _ = parse_ranking(ranking)
    key = base_key(cfg)
    other = None if order_from in (None, key.name) else str(order_from)
    return EvalKey(key, fill_label(cfg.fill), ranking_name(estimator, reduce, ranking_patch(cfg)), other)


def ranking_patch(cfg):
    """The patch size features are ranked by (``granularity=patch``), or None for pixels: ``patch_size``,
    or the model's own (a ViT's ``model.params.patch_size``) when it is null."""
    granularity = str(cfg.get("granularity") or "pixel")
    if granularity == "pixel":
        return None
    if granularity != "patch":
        raise RoarError(f"granularity={granularity!r}; valid: pixel, patch.")
    size = cfg.get("patch_size") or (cfg.model.get("params") or {}).get("patch_size")
    if not size:
        raise RoarError(
            f"granularity=patch needs a patch size: model={cfg.model.name} has none of its own; pass "
            f"patch_size=<pixels>."
        )
    return int(size)


def report_dir(cfg) -> Path:
    """The experiment's report: index.html, the CSV tables, the figures (roar-report)."""
    return experiment_dir(cfg) / "report"


def logs_dir(cfg) -> Path:
    """Hydra's .hydra/ of the stages that are not runs, and the sweeps' own logs."""
    return experiment_dir(cfg) / "logs"


def chain_file(cfg) -> Path:
    """roar-pipeline's last submission of the experiment's chain to SLURM (its job ids per stage); submitit's
    job folders sit beside it."""
    return logs_dir(cfg) / "cluster" / "chain.json"


def report_page(cfg) -> Path:
    """The report's page: present once a report was built."""
    return report_dir(cfg) / "index.html"


def run_logs_dir(cfg) -> Path:
    """Hydra's own files of one roar-train run (.hydra/, train.log): beside the run, under logs/, so a
    command refused by the stage's checks leaves no run folder behind."""
    return logs_dir(cfg) / "runs" / run_key(cfg).folder.relative_to(experiment_dir(cfg))


def stand_in_checkpoint(cfg) -> Path:
    """A dry run's stand-in weights for an experiment whose base model is pretrained (roar.stages.dry_run)."""
    return experiment_dir(cfg) / "stand_in_base.pt"


def toy_file(cfg) -> Path:
    """ROAR's toy check (experiment=roar_toy)."""
    return experiment_dir(cfg) / "toy" / "results.json"
