"""Training one run (a base model, or a retrain run on masked shards) and writing its metrics.json.

The run's folder, wandb group and identity come from its RunKey (roar.store.keys): ``estimator=``
set makes it a retrain run on the shard set of (base model, ranking, mode, fill, fraction).
Writes ``metrics.json`` (test accuracy and the settings that name the run; a retrain run also the
settings hash of the shard set it trained on), ``checkpoints/last.ckpt``, ``config.yaml``
(resolved). A complete run is skipped; one with a last.ckpt resumes from it; ``overwrite=true``
redoes it; a run whose shard set was rewritten since is redone, never skipped with old numbers.
"""

import signal
import time
from contextlib import contextmanager
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from roar.augment import BatchAugment
from roar.data import DATASETS, ImageDataModule, build_dataset
from roar.data.masked import set_folder
from roar.errors import RoarError, positive_int
from roar.masking.at_load import LoadMasker
from roar.masking.fills import fill_of
from roar.masking.masks import check_granularity
from roar.models import MODELS
from roar.models.checkpoint import check_compatible, check_not_damaged, check_trained_on, read_checkpoint
from roar.models.module import Classifier
from roar.store.io import atomic_write_bytes, atomic_write_json, folder_lock, read_json
from roar.store.keys import IDENTITY, RunKey
from roar.store.manifest import read_manifest, verify_manifest
from roar.store.resolve import retrain_variant, run_key, training_settings
from roar.store.shards import sha256_file
from roar.tracking import build_logger, cluster_plugins, finishing_wandb
from roar.utils.device import resolve_device
from roar.utils.plain import to_plain


def validate(cfg: DictConfig) -> RunKey:
    """Every check that needs no data or compute, so bad input fails in a second; the run's key."""
    model, augment = trained_with(cfg)
    DATASETS[cfg.data.name], MODELS[cfg.model.name], MODELS[model["name"]]  # unknown names list the valid ones
    BatchAugment(cfg.augment, mean=[0.5, 0.5, 0.5])  # names and probabilities
    BatchAugment(augment, mean=[0.5, 0.5, 0.5])
    positive_int(cfg.data.batch_size, "data.batch_size")
    positive_int(cfg.trainer.max_epochs, "trainer.max_epochs")
    key = run_key(cfg)  # seed, fraction and base checked there
    if key.shards is not None:  # token-drop shards hold whole tokens of the model's patch size
        check_granularity(fill_of(cfg.fill), key.shards.patch, (model.get("params") or {}).get("patch_size"))
    return key


def trained_with(cfg) -> tuple:
    """(model, augment) this run trains with, as plain dicts: the base model's, or a retrain variant's own
    (``model@retrain.model=``, ``augment@retrain.augment=``; roar.store.resolve.retrain_variant)."""
    variant = retrain_variant(cfg)
    return (variant["model"], variant["augment"]) if variant else (to_plain(cfg.model), to_plain(cfg.augment))


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def check_run_dir_identity(cfg, key: RunKey) -> dict:
    """The run's identity (its key and its training settings), after refusing a folder that holds a run
    trained with other ones: a changed recipe never resumes or skips into an old run, nor does a run whose
    identity is missing. A folder whose run never trained (no checkpoint, no metrics) is taken over by the
    corrected command."""
    now = {"identity": key.identity, "training": training_settings(cfg, run=True)}
    saved = read_json(key.identity_file)
    trained = key.metrics.exists() or key.checkpoint.exists()
    if cfg.overwrite or not trained or saved == now:
        return now
    if not isinstance(saved, dict):  # settings unknown: never skipped or resumed into
        raise RoarError(
            f"{key.folder} holds a trained run whose settings are unknown ({IDENTITY} is missing or unreadable), so "
            f"it cannot be checked against this command. Pass overwrite=true to retrain it with these settings, or "
            f"give this run its own name (name=...)."
        )
    before, after = flat(saved), flat(now)
    changed = [
        f"{k}: {before.get(k)!r} -> {after.get(k)!r}"
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    ]
    raise RoarError(
        f"{key.folder} holds a run trained with other settings ({'; '.join(changed[:6])}{' ...' if len(changed) > 6 else ''}). "
        f"Give this run its own name (name=...), or pass overwrite=true to replace that run."
    )


@contextmanager
def exit_on_sigterm(trainer, run_dir):
    """A SIGTERM (SLURM's time limit or preemption, ``timeout``, ``kill``) ends the run unfinished: Lightning
    stops at the next step with a SystemExit that carries no code (exit 0, as if done), so this says so in
    one line and exits 128 + 15, and ``roar-train ... && next`` does not go on. The last checkpoint stays;
    the same command resumes."""
    try:
        yield
    except SIGTERMException:
        print(
            f"[roar-train] {run_dir}: interrupted by SIGTERM after epoch {trainer.current_epoch}; rerun the same "
            f"command to resume from its last checkpoint.",
            flush=True,
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


def shard_set_hash(key: RunKey):
    """The settings hash of the shard set a retrain run trains on (None for a base model or a missing set)."""
    manifest = read_manifest(set_folder(key.shards)) if key.shards else None
    return manifest.get("settings_hash") if manifest else None


def check_same_data(cfg, base, metrics: dict) -> None:
    """A complete base model of this name and settings is trusted only on the data it was trained on
    (``check_trained_on``); data read from a folder only: the embedded data cannot differ."""
    if metrics.get("data_fingerprints") and cfg.data.get("root") is not None:
        now = {split: build_dataset(cfg.data, split).fingerprint() for split in metrics["data_fingerprints"]}
        check_trained_on(base.folder, metrics, now, Path(str(cfg.data.root)).resolve())


def finished_metrics(key: RunKey):
    """The run's metrics when its metrics.json is finished (parses and holds test_acc), else None."""
    metrics = read_json(key.metrics)
    return metrics if isinstance(metrics, dict) and "test_acc" in metrics else None


def outdated(key: RunKey, metrics) -> str | None:
    """Why a finished retrain run no longer stands for its setting, or None: its shard set was
    rewritten since it trained (other maps, fill, maps seed or format), or it trained around broken
    samples (retrain.on_error=skip) and its shard set verifies now; or, for an ensemble, a member's
    checkpoint changed since it was assembled."""
    if metrics is None:
        return None
    for path, digest in (metrics.get("members") or {}).items():
        if not Path(path).is_file() or sha256_file(path) != digest:
            return f"ensemble member {path} changed after {key.folder} was assembled"
    if key.shards is None:
        return None
    if metrics.get("shards_settings_hash") != shard_set_hash(key):
        return f"{set_folder(key.shards)} was rewritten after {key.folder} trained on it"
    if metrics.get("skipped_samples") and shards_verify(key):
        return f"{key.folder} skipped {metrics['skipped_samples']} broken samples and its shards verify now"
    if metrics.get("manifest_mismatch") and shards_verify(key):
        return f"{key.folder} trained on shards that did not verify, and they verify now"
    return None


def shards_verify(key: RunKey) -> bool:
    try:
        verify_manifest(set_folder(key.shards))
    except RoarError:
        return False
    return True


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


def train_locked(cfg: DictConfig, key: RunKey, callbacks, quiet: bool) -> dict:
    """``train`` inside the run folder's lock."""
    run_dir = key.folder
    identity = check_run_dir_identity(cfg, key)
    done = finished_metrics(key)
    stale = outdated(key, done)  # read once: outdated may re-hash the whole shard set
    if done and not stale and not cfg.overwrite:
        if key.shards is None:  # a base model is trusted by every later stage: only as it was written
            check_not_damaged(key.base.checkpoint, done)
            check_same_data(cfg, key.base, done)
        if not quiet:
            print(
                f"[roar-train] {key.metrics} is complete (test_acc={done['test_acc']:.4f}); skipping. overwrite=true redoes it."
            )
        return done
    ckpt_dir, resume = key.checkpoints, key.checkpoint
    if stale:
        print(f"[roar-train] {stale}: retraining that run.")
    if cfg.overwrite or stale:
        for old in (key.metrics, resume):
            old.unlink(missing_ok=True)

    L.seed_everything(key.seed, workers=True, verbose=False)
    data = run_data(cfg, key)
    note = data.train_set.upsampling_note(cfg.data) if hasattr(data.train_set, "upsampling_note") else None
    if note and key.shards is None and not quiet:  # the base model: its retrains share its image size
        print(note)
    shards_hash = shard_set_hash(key)
    model = build_classifier(cfg, data, key.seed)
    ckpt_path = None
    if resume.is_file():
        try:
            saved = read_checkpoint(resume)
        except RoarError as err:  # a checkpoint cut off mid-write: start again rather than trust it
            print(f"[roar-train] {err} Starting this run from scratch.")
            resume.unlink()
        else:
            check_compatible(
                saved,
                resume,
                model=trained_with(cfg)[0],
                num_classes=data.num_classes,
                image_shape=list(data.image_shape),
            )
            ckpt_path = str(resume)
            if not quiet:
                print(f"[roar-train] resuming from {resume}")

    if ckpt_path is None and model.initializes_from_data:  # fastnet's whitening layer; a resumed run has it
        model.prepare(data.first_images(model.INIT_IMAGES))
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    atomic_write_json(key.identity_file, identity)
    started = time.time()
    with finishing_wandb():
        trainer = L.Trainer(
            **to_plain(cfg.trainer),
            logger=build_logger(cfg, key),
            callbacks=[
                ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1, enable_version_counter=False),
                *configured_callbacks(cfg),
                *callbacks,
            ],
            default_root_dir=str(run_dir),
            limit_val_batches=0,
            use_distributed_sampler=False,  # ImageDataModule shards by rank itself
            plugins=cluster_plugins(),
            num_sanity_val_steps=0,
        )
        fits = any(p.requires_grad for p in model.parameters())  # an ensemble of trained members: nothing to fit
        with exit_on_sigterm(trainer, run_dir):
            if fits:
                trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
            if trainer.interrupted:  # Ctrl-C or a scheduler's signal: last.ckpt is kept, metrics.json is not written
                raise KeyboardInterrupt(f"training interrupted; run the same command again to resume from {resume}")
            train_acc = trainer.callback_metrics.get("train_acc")
            tested = trainer.test(model, datamodule=data, verbose=False)[0]
        if not fits:
            trainer.save_checkpoint(resume, weights_only=True)
        metrics = {
            **{k: float(v) for k, v in tested.items()},
            "train_acc": None if train_acc is None else float(train_acc),
            **key.identity,
            "identity": key.identity,
            "shards_settings_hash": shards_hash,
            "stage": key.stage,
            "name": cfg.name,
            "epochs": int(trainer.current_epoch),
            "world_size": int(trainer.world_size),
            "num_classes": int(data.num_classes),
            "num_train": int(getattr(data.train_set, "num_samples", len(data.train_set))),
            "num_test": int(getattr(data.test_set, "num_samples", len(data.test_set))),
            "train_seconds": round(time.time() - started, 2),
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
        if trainer.is_global_zero:
            atomic_write_json(key.metrics, metrics)
            for lg in trainer.loggers:
                if hasattr(lg, "experiment") and lg.__class__.__name__ == "WandbLogger":
                    lg.experiment.summary.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    return metrics
