"""Typed keys: the one owner of every artifact's folder, wandb group and identity.

    outputs/<name>/
      base/<data>-<model>-<augment>-<digest>/                          BaseKey (digest: training settings and seed)
      attributions/<base>/<estimator>[@second]/                        MapsKey (@second: maps of the runner-up class)
      shards/<base>/<ranking>/<mode>/<fill>/<fraction>/                ShardSetKey (ranking: grad, ig.sum, grad.patch4)
      runs/<base>/<ranking>/<mode>/<fill>/<fraction>/seed=<seed>/      RunKey (a retrain run)
      eval/<base>/<fill>/<ranking>.json                                EvalKey (soundness: eval/<base>/soundness/)
      report/  logs/

A key carries what its artifact is made from, so a changed input gets another folder or another
settings hash, never a finished output of other inputs: the base key names its dataset and a digest
of everything that changes its weights (``training_settings`` and the seed), shard sets and runs
name their base model, and the fill's folder name is a digest of its whole config (``fill_label``).

Only roar-train knows a base model's training settings; the stages after it (and retrain runs, whose
seed is not the base model's) find it as the one finished base of their data, model and augment, or
by ``base=<its folder name>`` (``find_base``, roar.store.resolve). YAML gets paths from these keys through
one resolver (``${roar.key:run}``, roar.config); nothing else spells a folder.
"""

from dataclasses import dataclass
from pathlib import Path

from roar.errors import RoarError
from roar.store.names import fraction_name, ranking_name

IDENTITY = "identity.json"  # what a run was trained with: its key's identity and its training settings
METRICS = "metrics.json"  # a finished run's numbers: written last, so its presence marks the run done
CHECKPOINTS = "checkpoints"  # a run's Lightning checkpoints; last.ckpt resumes it
AUDIT = "audit.json"  # a shard set's leakage audit (roar.evaluate.leakage), beside its manifest
NOT_WEIGHTS = (
    "accelerator",
    "enable_progress_bar",
    "enable_model_summary",
    "log_every_n_steps",
)  # trainer keys that train nothing


class RunFiles:
    """The files of a training run's folder (``self.folder``): a base model's or a retrain run's."""

    @property
    def checkpoints(self) -> Path:
        return self.folder / CHECKPOINTS

    @property
    def checkpoint(self) -> Path:
        """The last checkpoint: a run that has one and no metrics resumes from it."""
        return self.checkpoints / "last.ckpt"

    @property
    def metrics(self) -> Path:
        return self.folder / METRICS

    @property
    def identity_file(self) -> Path:
        return self.folder / IDENTITY


@dataclass(frozen=True)
class BaseKey(RunFiles):
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
    def maps_root(self) -> Path:
        """The folder of every estimator's maps of this base model (each a MapsKey below it)."""
        return Path(self.experiment_dir) / "attributions" / self.name

    @property
    def shards_root(self) -> Path:
        """The folder of every shard, bucket and image set made from this base model's maps."""
        return Path(self.experiment_dir) / "shards" / self.name

    @property
    def identity(self) -> dict:
        return {"dataset": self.data, "model": self.model, "augment": self.augment, "base": self.name}

    @classmethod
    def from_folder(cls, folder) -> "BaseKey":
        """The key of a base folder ``<experiment>/base/<data>-<model>-<augment>-<digest>``."""
        folder = Path(folder)
        return cls.named(folder.parent.parent, folder.name)

    @classmethod
    def named(cls, experiment_dir, name: str) -> "BaseKey":
        """The key of the base model ``name`` (``<data>-<model>-<augment>-<digest>``, as runs record it)."""
        parts = str(name).rsplit("-", 3)
        if len(parts) != 4:
            raise RoarError(
                f"{name!r} is not a base model's name (<data>-<model>-<augment>-<digest>, a folder under "
                f"{Path(experiment_dir) / 'base'})."
            )
        return cls(Path(experiment_dir), *parts)


@dataclass(frozen=True)
class MapsKey:
    """One estimator's maps of every train and test image, computed from one base model."""

    base: BaseKey
    estimator: str
    target: str = "predicted"  # attribute.target; maps of the runner-up class (second) live beside the others

    @property
    def folder(self) -> Path:
        name = f"{self.estimator}@second" if self.target == "second" else self.estimator
        return self.base.maps_root / name


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
    def audit(self) -> Path:
        return self.folder / AUDIT

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
        return self.base.shards_root / "images"

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
        return self.base.shards_root / self.ranking / "buckets"

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
class RunKey(RunFiles):
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
    def group(self) -> str:
        """The wandb group of the base model's no-retrain evaluations with this fill."""
        return f"{Path(self.base.experiment_dir).name}/eval/{self.base.name}/{self.fill}"

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
