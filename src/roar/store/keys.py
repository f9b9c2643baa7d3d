"""Typed keys: the one owner of every artifact's folder, wandb group and identity.

    outputs/<name>/
      base/<data>-<model>-<augment>-<digest>/                          BaseKey (digest: training settings and seed)
      attributions/<base>/<estimator>[@second]/                        MapsKey (@second: maps of the runner-up class)
      shards/<base>/<ranking>/<mode>/<fill>/<fraction>/                ShardSetKey (ranking: grad, ig.sum, grad.patch4)
      runs/<base>/<ranking>/<mode>/<fill>/<fraction>/seed=<seed>/      RunKey (a retrain run)
      eval/<base>/<fill>/<ranking>.json                                EvalKey (and eval/<base>/soundness/<ranking>.json)
      report/  logs/

A key carries what its artifact is made from, so a changed input gets another folder or another
settings hash, never a finished output of other inputs: the base key names its dataset and a digest
of everything that changes its weights (``training_settings`` and the seed), shard sets and runs
name their base model, and the fill's folder name is a digest of its whole config (``fill_label``).

Only roar-train knows a base model's training settings; the stages after it (and retrain runs, whose
seed is not the base model's) find it as the one finished base of their data, model and augment, or
by ``base=<its folder name>`` (``find_base``). YAML gets paths from these keys through one resolver (``${roar.key:run}``,
roar.config); nothing else spells a folder.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from roar.errors import RoarError, check_probability
from roar.store.io import read_json
from roar.utils.plain import to_plain

IDENTITY = "identity.json"  # what a run was trained with: its key's identity and its training settings
NOT_WEIGHTS = (
    "accelerator",
    "enable_progress_bar",
    "enable_model_summary",
    "log_every_n_steps",
)  # trainer keys that train nothing


def settings_hash(settings: dict) -> str:
    """sha256 of a JSON-able dict, independent of key order: the identity of a set of settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def feature_label(reduce: str, patch: int | None = None) -> str:
    """What a ranking ranks, in one string (the report's ``reduce`` column): ``abs_sum``, ``sum.patch4``."""
    return str(reduce) if patch is None else f"{reduce}.patch{int(patch)}"


def split_feature(label: str):
    """(reduce, patch) of a ``feature_label``."""
    reduce, _, patch = str(label).partition(".patch")
    return reduce, (int(patch) if patch else None)


def ranking_name(estimator: str, reduce: str = "abs_sum", patch: int | None = None) -> str:
    """The folder name of an estimator's ranking: ``grad`` (abs_sum per pixel, the default),
    ``grad_x_input.sum`` (signed sum), ``grad.patch4`` (4x4 patches ranked by their mean).
    ``reduce`` may be a ``feature_label`` that carries the patch (``sum.patch4``)."""
    reduce, named = split_feature(reduce)
    patch = named if patch is None else patch
    name = estimator if reduce == "abs_sum" else f"{estimator}.{reduce}"
    return name if patch is None else f"{name}.patch{int(patch)}"


def parse_ranking(name: str):
    """(estimator, reduce, patch) of a ranking name, the inverse of ``ranking_name``: ``ig.sum`` ->
    (ig, sum, None), ``grad.patch4`` -> (grad, abs_sum, 4). A dot between two digits belongs to a number
    in the estimator's name (``mask-tv0.01.sum`` -> (mask-tv0.01, sum, None))."""
    estimator, *parts = re.split(r"(?<!\d)\.|\.(?!\d)", str(name))
    patch = None
    if parts and parts[-1].startswith("patch") and parts[-1][5:].isdigit():
        patch = int(parts.pop()[5:])
    if len(parts) > 1:
        raise RoarError(f"ranking {name!r}: write <estimator>[.<reduce>][.patch<size>], e.g. ig.sum or grad.patch4.")
    return estimator, (parts[0] if parts else "abs_sum"), patch


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
            f"granularity=patch needs a patch size: model={cfg.model.name} has none of its own; pass patch_size=<pixels>."
        )
    return int(size)


def fraction_name(fraction: float) -> str:
    """``0.1`` -> "0.1", ``0`` -> "0": the shortest exact decimal, so two fractions never share a folder."""
    return format(float(fraction), "g")


def fill_label(fill) -> str:
    """A fill's name in paths: its name alone when its config is only the name (``channel_mean``),
    else the name and a digest of the whole config (``constant-1f3a9c2e``), so ``fill.value=[0.2]``
    and ``fill.value=[0.8]`` never share a folder."""
    plain = dict(to_plain(fill))
    if set(plain) == {"name"}:
        return str(plain["name"])
    return f"{plain['name']}-{settings_hash(plain)[:8]}"


@dataclass(frozen=True)
class BaseKey:
    """The base model: trained by roar-train on the source dataset."""

    experiment_dir: Path
    data: str
    model: str
    augment: str
    digest: str  # of the training settings and seed (base_digest)

    @property
    def prefix(self) -> str:
        return f"{self.data}-{self.model}-{self.augment}"

    @property
    def name(self) -> str:
        return f"{self.prefix}-{self.digest}"

    @property
    def folder(self) -> Path:
        return Path(self.experiment_dir) / "base" / self.name

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoints" / "last.ckpt"

    @property
    def identity(self) -> dict:
        return {"dataset": self.data, "model": self.model, "augment": self.augment, "base": self.name}

    @classmethod
    def from_folder(cls, folder) -> "BaseKey":
        """The key of a base folder ``<experiment>/base/<data>-<model>-<augment>-<digest>``."""
        folder = Path(folder)
        parts = folder.name.rsplit("-", 3)
        if len(parts) != 4:
            raise RoarError(f"{folder} is not a base-model folder (<data>-<model>-<augment>-<digest>, under base/).")
        return cls(folder.parent.parent, *parts)


@dataclass(frozen=True)
class MapsKey:
    """One estimator's maps of every train and test image, computed from one base model."""

    base: BaseKey
    estimator: str
    target: str = "predicted"  # attribute.target; maps of the runner-up class (second) live beside the others

    @property
    def folder(self) -> Path:
        name = f"{self.estimator}@second" if self.target == "second" else self.estimator
        return Path(self.base.experiment_dir) / "attributions" / self.base.name / name


@dataclass(frozen=True)
class ShardSetKey:
    """Ranked-masked shards: one (ranking, mode, fill, fraction) of one base model's maps."""

    base: BaseKey
    estimator: str
    reduce: str
    mode: str
    fill: str  # fill_label
    fraction: float
    patch: int | None = None  # ranked by patches of this size (granularity=patch), else by pixels

    @property
    def ranking(self) -> str:
        return ranking_name(self.estimator, self.reduce, self.patch)

    @property
    def relative(self) -> Path:
        return Path(self.base.name) / self.ranking / self.mode / self.fill / fraction_name(self.fraction)

    @property
    def folder(self) -> Path:
        return Path(self.base.experiment_dir) / "shards" / self.relative

    @property
    def identity(self) -> dict:
        return {
            **self.base.identity,
            "estimator": self.estimator,
            "reduce": self.reduce,
            "mode": self.mode,
            "fill": self.fill,
            "fraction": float(self.fraction),
            **({"patch": int(self.patch)} if self.patch else {}),  # pixel rankings: as before patches existed
        }

    @property
    def buckets(self) -> "BucketSetKey":
        """The ranking's bucket set, which serves this (mode, fill, fraction) too."""
        return BucketSetKey(self.base, self.estimator, self.reduce, self.patch)


@dataclass(frozen=True)
class ImageSetKey:
    """The source images of a base model's data, stored once as the source holds them; every bucket set of
    the base model is read in lockstep with it (``mask.format=buckets``)."""

    base: BaseKey

    @property
    def folder(self) -> Path:
        return Path(self.base.experiment_dir) / "shards" / self.base.name / "images"

    @property
    def identity(self) -> dict:
        return dict(self.base.identity)


@dataclass(frozen=True)
class BucketSetKey:
    """Rank buckets (``mask.format=buckets``): one set per (base model, ranking) that serves every mode,
    fill and grid fraction, masked at load (roar.masking.at_load); its images are the base model's image
    set (``images``)."""

    base: BaseKey
    estimator: str
    reduce: str
    patch: int | None = None

    @property
    def ranking(self) -> str:
        return ranking_name(self.estimator, self.reduce, self.patch)

    @property
    def folder(self) -> Path:
        return Path(self.base.experiment_dir) / "shards" / self.base.name / self.ranking / "buckets"

    @property
    def images(self) -> ImageSetKey:
        return ImageSetKey(self.base)

    @property
    def identity(self) -> dict:
        return {
            **self.base.identity,
            "estimator": self.estimator,
            "reduce": self.reduce,
            **({"patch": int(self.patch)} if self.patch else {}),
        }


@dataclass(frozen=True)
class RunKey:
    """A training run: the base model (``shards`` None) or a retrain run on a shard set."""

    base: BaseKey
    seed: int
    shards: ShardSetKey | None = None
    retrained_as: str | None = None  # a retrain run's own model and augmentation (``retrain_variant``)

    @property
    def stage(self) -> str:
        return "base" if self.shards is None else "retrain"

    @property
    def folder(self) -> Path:
        if self.shards is None:
            return self.base.folder
        setting = Path(self.base.experiment_dir) / "runs" / self.shards.relative
        return (setting / self.retrained_as if self.retrained_as else setting) / f"seed={self.seed}"

    @property
    def group(self) -> str:
        """The wandb group: the setting without its seed, so the seeds of one setting plot together."""
        name = f"{Path(self.base.experiment_dir).name}/{self.stage}/{self.base.name}"
        if self.shards is None:
            return name
        name = f"{name}/{self.shards.relative.relative_to(self.base.name)}"
        return f"{name}/{self.retrained_as}" if self.retrained_as else name

    @property
    def identity(self) -> dict:
        """The settings that name the run: two runs with different identities never share a folder."""
        ident = dict(self.shards.identity if self.shards else self.base.identity)
        return {**ident, **({"retrained_as": self.retrained_as} if self.retrained_as else {}), "seed": int(self.seed)}


@dataclass(frozen=True)
class EvalKey:
    """A no-retrain evaluation (roar-eval) of one ranking on one base model with one fill."""

    base: BaseKey
    fill: str  # fill_label
    ranking: str
    order_from: str | None = None  # another base model whose maps ordered the features (eval.order_from)

    @property
    def folder(self) -> Path:
        return Path(self.base.experiment_dir) / "eval" / self.base.name / self.fill

    @property
    def file(self) -> Path:
        source = f".from-{self.order_from}" if self.order_from else ""
        return self.folder / f"{self.ranking}{source}.json"

    @property
    def consistency_file(self) -> Path:
        """LIME's consistency across baseline colours of this base model (roar.evaluate.consistency)."""
        return self.folder / "lime-consistency.json"

    @property
    def soundness_file(self) -> Path:
        """Completeness and soundness of this ranking (roar.evaluate.soundness); replacements are its own."""
        return self.folder.parent / "soundness" / f"{self.ranking}.json"


# --- keys from a composed config (every stage's config has name, paths, data, model, augment, fill) ---


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(name) -> str:
    """An experiment name is one folder below the output root: letters, digits, '.', '_' and '-', not
    starting with '.' or '-' (so ``..``, an absolute path or an empty name never write elsewhere)."""
    name = "" if name is None else str(name)  # name=2024 reaches us as a number
    if not NAME.fullmatch(name):
        raise RoarError(
            f"name={name!r}: an experiment name is one folder name of letters, digits, '.', '_' and '-' "
            f"(starting with a letter or digit), e.g. name=roar_digits_try2. Choose where outputs go with "
            f"paths.output_root=... (or ROAR_OUTPUTS)."
        )
    return name


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


def training_settings(cfg, run: bool = False) -> dict:
    """Everything besides a run's key that changes what it trains: optimizer and schedule, model and
    augmentation parameters, data settings (not where the data lie), the Trainer's epochs, precision,
    limits and devices. ``run``: the settings this run trains with (a retrain variant's own model and
    augmentation); otherwise the base model's."""
    variant = retrain_variant(cfg) if run else None
    return {
        "optim": to_plain(cfg.optim),
        "model": variant["model"] if variant else to_plain(cfg.model),
        "augment": variant["augment"] if variant else to_plain(cfg.augment),
        "data": {k: v for k, v in to_plain(cfg.data).items() if k not in DATA_NOT_WEIGHTS},
        "trainer": {k: v for k, v in to_plain(cfg.trainer).items() if k not in NOT_WEIGHTS},
    }


def base_digest(cfg) -> str:
    """The base model's digest: its training settings and its seed (a config that trains, roar-train's)."""
    return settings_hash({"training": training_settings(cfg), "seed": int(cfg.seed)})[:8]


def trains(cfg) -> bool:
    """A config of roar-train or roar-pipeline: it holds the train section (``optim`` and ``retrain``).
    An experiment's ``optim.lr`` alone, composed into another stage's config, does not make one."""
    return "optim" in cfg and "retrain" in cfg


def base_key(cfg) -> BaseKey:
    """The base model of ``cfg``: the one roar-train makes with it, the one ``base=`` names, or the one
    finished base of the config's data, model and augment (``find_base``)."""
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
    if trains(cfg) and not is_retrain(cfg):
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


def report_dir(cfg) -> Path:
    """The experiment's report: index.html, the CSV tables, the figures (roar-report)."""
    return experiment_dir(cfg) / "report"


def logs_dir(cfg) -> Path:
    """Hydra's .hydra/ of the stages that are not runs, and the sweeps' own logs."""
    return experiment_dir(cfg) / "logs"


def toy_file(cfg) -> Path:
    """ROAR's toy check (experiment=roar_toy)."""
    return experiment_dir(cfg) / "toy" / "results.json"
