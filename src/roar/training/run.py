"""Training one run (a base model, or a retrain run on masked shards) and writing its metrics.json.

The run's folder, wandb group and identity come from its RunKey (roar.store.keys): ``estimator=``
set makes it a retrain run on the shard set of (base model, ranking, mode, fill, fraction).
Writes ``metrics.json`` (test accuracy and the settings that name the run; a retrain run also the
settings hash of the shard set it trained on), ``checkpoints/last.ckpt``, ``config.yaml``
(resolved). A complete run is skipped; one with a last.ckpt resumes from it; ``overwrite=true``
redoes it; a run whose shard set was rewritten since is redone, never skipped with old numbers.
"""

import inspect
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from roar.augment import BatchAugment
from roar.classifier.module import Classifier
from roar.data import DATASETS, ImageDataModule
from roar.errors import RoarError, positive_int
from roar.lineage import training_lineage
from roar.masking.at_load import LoadMasker
from roar.masking.fills import fill_of
from roar.masking.removal import check_granularity
from roar.models import MODELS
from roar.models.checkpoint import check_compatible, read_checkpoint
from roar.models.pretrained import load_pretrained
from roar.store.io import atomic_write_bytes, atomic_write_json, folder_lock
from roar.store.keys import RunKey
from roar.store.resolve import retrain_variant, run_key
from roar.store.shards import sha256_file
from roar.tracking import build_logger, cluster_plugins, finishing_wandb
from roar.training.checkpoint_io import AtomicCheckpointIO
from roar.training.ranks import launch_strategy
from roar.training.status import finished_run, shard_set_hash
from roar.utils.device import resolve_device
from roar.utils.log import get_logger
from roar.utils.plain import to_plain

log = get_logger(__name__)


def validate(cfg: DictConfig) -> RunKey:
    """Every check that needs no data or compute, so bad input fails in a second; the run's key."""
    model, augment = trained_with(cfg)
    DATASETS[cfg.data.name], MODELS[cfg.model.name], MODELS[model["name"]]  # unknown names list the valid ones
    BatchAugment(cfg.augment, mean=[0.5, 0.5, 0.5])  # names and probabilities
    BatchAugment(augment, mean=[0.5, 0.5, 0.5])
    positive_int(cfg.data.batch_size, "data.batch_size")
    positive_int(cfg.trainer.max_epochs, "trainer.max_epochs")
    check_trainer(cfg)
    key = run_key(cfg)  # seed, fraction and base checked there
    if key.shards is not None:  # token-drop shards hold whole tokens of the model's patch size
        check_granularity(fill_of(cfg.fill), key.shards.patch, (model.get("params") or {}).get("patch_size"))
    return key


def trained_with(cfg) -> tuple:
    """(model, augment) this run trains with, as plain dicts: the base model's, or a retrain variant's own
    (``model@retrain.model=``, ``augment@retrain.augment=``; roar.store.resolve.retrain_variant)."""
    variant = retrain_variant(cfg)
    return (variant["model"], variant["augment"]) if variant else (to_plain(cfg.model), to_plain(cfg.augment))


@contextmanager
def exit_on_sigterm(trainer, run_dir):
    """A SIGTERM (SLURM's time limit or preemption, ``timeout``, ``kill``) ends the run unfinished: Lightning
    stops at the next step with a SystemExit that carries no code (exit 0, as if done), so this says so in
    one line and exits 128 + 15, and ``roar-train ... && next`` does not go on. The last checkpoint stays;
    the same command resumes."""
    try:
        yield
    except SIGTERMException:
        log.info(
            f"[roar-train] {run_dir}: interrupted by SIGTERM after epoch {trainer.current_epoch}; rerun the same "
            f"command to resume from its last checkpoint."
        )
        raise SystemExit(128 + signal.SIGTERM) from None


def configured_callbacks(cfg) -> list:
    """The Lightning callbacks of the config's ``callbacks`` section (``{name: {_target_: ...}}``)."""
    from hydra.utils import instantiate

    return [instantiate(spec) for _, spec in sorted((cfg.get("callbacks") or {}).items())]


def run_data(cfg, key: RunKey) -> ImageDataModule:
    """The run's data, set up: the source dataset, or its shard set, with the masking at load of a uint8
    or bucket set (roar.masking.at_load) for the run's mode, fraction and fill."""
    data = ImageDataModule(
        cfg.data, seed=key.seed, cache_dir=cfg.paths.cache_dir, shards=key.shards, retrain_cfg=cfg.get("retrain")
    )
    data.setup()
    if getattr(data.train_set, "masked_at_load", False):
        data.masker = LoadMasker(data.train_set.manifest, cfg.fill, key.shards.mode, key.shards.fraction)
    return data


def build_classifier(cfg, data: ImageDataModule, seed: int) -> Classifier:
    """The LightningModule ``cfg`` trains on ``data`` (set up: its classes, image shape, channel stats)."""
    model, augment = trained_with(cfg)
    return Classifier(
        model=model,
        optim=to_plain(cfg.optim),
        augment=augment,
        num_classes=data.num_classes,
        image_shape=list(data.image_shape),
        mean=data.stats["mean"],
        std=data.stats["std"],
        max_epochs=int(cfg.trainer.max_epochs),
        seed=seed,
    )


def train(cfg: DictConfig, callbacks=(), quiet: bool = False) -> dict:
    """Train and test one run as ``cfg`` says; returns the metrics written to its folder's metrics.json.

    ``callbacks`` are extra Lightning callbacks (profilers, fault injection in tests); ``quiet`` keeps
    the skip and resume lines off the console (roar-pipeline shows one progress line instead).
    """
    key = validate(cfg)
    resolve_device(str(cfg.trainer.accelerator))  # an accelerator this machine lacks: one paragraph, not Lightning's
    with folder_lock(key.folder):  # one process per run folder: a second is refused with the first's PID
        return train_locked(cfg, key, callbacks, quiet)


def resume_path(cfg, key: RunKey, data, quiet: bool) -> str | None:
    """The checkpoint to resume from: the run's last.ckpt when it reads and fits this run, else None (a
    checkpoint cut off mid-write is removed and the run starts again)."""
    resume = key.checkpoint
    if not resume.is_file():
        return None
    try:
        saved = read_checkpoint(resume)
    except RoarError as err:  # a checkpoint cut off mid-write: start again rather than trust it
        log.info(f"[roar-train] {err} Starting this run from scratch.")
        resume.unlink()
        return None
    model = trained_with(cfg)[0]
    check_compatible(saved, resume, model=model, num_classes=data.num_classes, image_shape=list(data.image_shape))
    if not quiet:
        log.info(f"[roar-train] resuming from {resume}")
    return str(resume)


SET_BY_ROAR = (
    "logger",
    "callbacks",
    "default_root_dir",
    "limit_val_batches",
    "use_distributed_sampler",
    "plugins",
    "num_sanity_val_steps",
)


def check_trainer(cfg) -> None:
    """``trainer.*`` holds only Lightning Trainer arguments roar does not set itself, and a logger is chosen:
    a misspelt or removed key is one paragraph, not Lightning's TypeError mid-run."""
    if cfg.get("logger") is None:
        raise RoarError("No logger is set (~logger removes it): choose logger=wandb, logger=csv or logger=none.")
    accepted = set(inspect.signature(L.Trainer.__init__).parameters) - {"self", *SET_BY_ROAR}
    unknown = sorted(set(cfg.trainer) - accepted)
    if unknown:
        raise RoarError(
            f"trainer.{unknown[0]} is not a Lightning Trainer argument roar passes on (roar sets "
            f"{', '.join(SET_BY_ROAR)} itself). Remove it (~trainer.{unknown[0]}) or use one of: "
            f"{', '.join(sorted(accepted))}."
        )


def make_trainer(cfg, key: RunKey, callbacks) -> L.Trainer:
    return L.Trainer(
        **launch_strategy(to_plain(cfg.trainer)),
        logger=build_logger(cfg, key),
        callbacks=[
            ModelCheckpoint(dirpath=key.checkpoints, filename="last", save_top_k=1, enable_version_counter=False),
            *configured_callbacks(cfg),
            *callbacks,
        ],
        default_root_dir=str(key.folder),
        limit_val_batches=0,
        use_distributed_sampler=False,  # ImageDataModule shards by rank itself
        plugins=[*cluster_plugins(), AtomicCheckpointIO()],
        num_sanity_val_steps=0,
    )


def run_metrics(cfg, key: RunKey, data, model, trainer, measured: dict) -> dict:
    """What metrics.json records: the test metrics and train accuracy (``measured``), the run's identity, its
    data and checkpoint, and for a base model the data it was trained on."""
    resume = key.checkpoint
    metrics = {
        **measured["tested"],
        "train_acc": measured["train_acc"],
        **key.identity,
        "identity": key.identity,
        "shards_settings_hash": measured["shards_hash"],
        "stage": key.stage,
        "name": cfg.name,
        "epochs": int(trainer.current_epoch),
        "world_size": int(trainer.world_size),
        "num_classes": int(data.num_classes),
        "num_train": int(getattr(data.train_set, "num_samples", len(data.train_set))),
        "num_test": int(getattr(data.test_set, "num_samples", len(data.test_set))),
        "train_seconds": measured["train_seconds"],
        "checkpoint": str(resume),
    }
    if hasattr(model.net, "member_sha256"):
        metrics["members"] = {str(p): d for (p, _, _), d in zip(model.net.member_stats, model.net.member_sha256)}
    if hasattr(data.train_set, "skipped"):  # data.on_error=skip: broken samples are counted, not hidden
        metrics["skipped_samples"] = int(data.train_set.skipped.value + data.test_set.skipped.value)
    if getattr(data.train_set, "manifest_problem", None):  # retrain.on_error=skip on a set that did not verify
        metrics["manifest_mismatch"] = data.train_set.manifest_problem
    if resume.is_file():  # every later stage checks the base checkpoint against it (check_not_damaged)
        metrics["checkpoint_sha256"] = sha256_file(resume)
    if key.shards is None:  # what it was trained and tested on (check_same_data)
        metrics["data_fingerprints"] = {"train": data.train_set.fingerprint(), "test": data.test_set.fingerprint()}
        metrics["data_root"] = None if cfg.data.get("root") is None else str(Path(str(cfg.data.root)).resolve())
    return metrics


def fit_and_test(trainer, model, data, ckpt_path, key: RunKey, trained: bool = False) -> dict:
    """Fit (an ensemble of trained members, or a model ``trained`` elsewhere, has nothing to fit: its checkpoint
    is saved as it is) and test; {tested, train_acc}. An interrupted fit keeps last.ckpt and raises."""
    fits = not trained and any(p.requires_grad for p in model.parameters())
    with exit_on_sigterm(trainer, key.folder):
        if fits:
            trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
        if trainer.interrupted:  # Ctrl-C or a scheduler's signal: last.ckpt is kept, metrics.json is not written
            raise KeyboardInterrupt(f"training interrupted; run the same command again to resume from {key.checkpoint}")
        train_acc = trainer.callback_metrics.get("train_acc")
        tested = trainer.test(model, datamodule=data, verbose=False)[0]
    if not fits:
        trainer.save_checkpoint(key.checkpoint, weights_only=True)
    return {
        "tested": {k: float(v) for k, v in tested.items()},
        "train_acc": None if train_acc is None else float(train_acc),
    }


def train_locked(cfg: DictConfig, key: RunKey, callbacks, quiet: bool) -> dict:
    """``train`` inside the run folder's lock."""
    done, identity = finished_run(cfg, key, quiet)
    if done:
        return done
    L.seed_everything(key.seed, workers=True, verbose=False)
    data = run_data(cfg, key)
    note = data.train_set.upsampling_note(cfg.data) if hasattr(data.train_set, "upsampling_note") else None
    if note and key.shards is None and not quiet:  # the base model: its retrains share its image size
        log.info(note)
    shards_hash = shard_set_hash(key)
    model = build_classifier(cfg, data, key.seed)
    pretrained = cfg.get("base_checkpoint") if key.shards is None else None  # a model trained elsewhere
    if pretrained is not None:
        load_pretrained(model.net, Path(str(pretrained)).expanduser(), str(cfg.model.name))
    ckpt_path = None if pretrained is not None else resume_path(cfg, key, data, quiet)
    if ckpt_path is None and pretrained is None and model.initializes_from_data:  # fastnet's whitening (resumed: kept)
        model.prepare(data.first_images(model.INIT_IMAGES))
    key.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(key.folder / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    atomic_write_json(key.identity_file, identity)
    started = time.time()
    with finishing_wandb():
        trainer = make_trainer(cfg, key, callbacks)
        measured = fit_and_test(trainer, model, data, ckpt_path, key, trained=pretrained is not None)
        measured.update(shards_hash=shards_hash, train_seconds=round(time.time() - started, 2))
        metrics = run_metrics(cfg, key, data, model, trainer, measured)
        if pretrained is not None:  # its identity: the file's sha256 (roar.store.resolve.pretrained_sha256)
            made = Path(str(pretrained)).expanduser().resolve()
            metrics["pretrained"] = {"file": str(made), "sha256": identity["training"]["pretrained_sha256"]}
        if trainer.is_global_zero:
            atomic_write_json(key.metrics, metrics)
            for lg in trainer.loggers:
                if hasattr(lg, "experiment") and lg.__class__.__name__ == "WandbLogger":
                    lg.experiment.summary.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
                    training_lineage(lg.experiment, key)
    return metrics
