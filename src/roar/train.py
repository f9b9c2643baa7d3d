"""``roar-train``: train one classifier (base model or retrain) and write its metrics.json.

    roar-train data=digits model=resnet8 augment=fpa seed=0

Writes into ``run_dir``: ``metrics.json`` (test accuracy and the settings that name the run),
``checkpoints/last.ckpt``, ``config.yaml`` (resolved). A run whose metrics.json is complete is
skipped; one with a last.ckpt resumes from it; ``overwrite=true`` redoes it.
"""

import time
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf

from roar.augment import BatchAugment
from roar.config import CONFIG_DIR, to_plain
from roar.data import ImageDataModule, available as datasets_available
from roar.errors import RoarError, reported, unknown_name
from roar.logging_setup import build_logger, finishing_wandb
from roar.models import available as models_available
from roar.models.checkpoint import check_compatible, read_checkpoint
from roar.models.module import Classifier
from roar.utils.io import atomic_write_bytes, atomic_write_json, read_json

METRICS = "metrics.json"


def validate(cfg: DictConfig) -> None:
    """Every check that needs no data or compute, so bad input fails in a second."""
    if cfg.data.name not in datasets_available():
        raise unknown_name("data", cfg.data.name, datasets_available())
    if cfg.model.name not in models_available():
        raise unknown_name("model", cfg.model.name, models_available())
    BatchAugment(cfg.augment, mean=[0.5, 0.5, 0.5])  # names and probabilities
    if cfg.get("seed") is None or int(cfg.seed) < 0:
        raise RoarError(f"seed={cfg.get('seed')}: give a non-negative integer seed (0 is a seed).")


def identity(cfg) -> dict:
    """The settings that name a run: two runs with different identities never share a run_dir."""
    ident = {"dataset": cfg.data.name, "model": cfg.model.name, "augment": cfg.augment.name, "seed": int(cfg.seed)}
    if cfg.data.name == "shards":  # a retrain run on masked data
        ident.update(estimator=cfg.estimator, reduce=cfg.reduce, mode=cfg.mode, fill=cfg.fill.name, fraction=float(cfg.fraction))
    return ident


def check_run_dir_identity(cfg, run_dir: Path) -> None:
    """Refuse to resume or skip into a run_dir that holds a run of other settings."""
    saved = run_dir / "config.yaml"
    if cfg.overwrite or not saved.is_file():
        return
    before = identity(OmegaConf.load(saved))
    if before != identity(cfg):
        raise RoarError(
            f"{run_dir} holds a run with {before}, not {identity(cfg)}. "
            f"Give this run its own name (name=...) or run_dir, or pass overwrite=true to replace that run."
        )


def completed_metrics(run_dir: Path):
    """The run's metrics when its metrics.json is complete (parses and holds test_acc), else None."""
    metrics = read_json(run_dir / METRICS)
    return metrics if isinstance(metrics, dict) and "test_acc" in metrics else None


def train(cfg: DictConfig, callbacks=()) -> dict:
    """Train and test one run as ``cfg`` says; returns the metrics written to ``run_dir/metrics.json``.

    ``callbacks`` are extra Lightning callbacks (profilers, fault injection in tests).
    """
    validate(cfg)
    run_dir = Path(cfg.run_dir)
    check_run_dir_identity(cfg, run_dir)
    done = completed_metrics(run_dir)
    if done and not cfg.overwrite:
        print(f"[roar-train] {run_dir}/{METRICS} is complete (test_acc={done['test_acc']:.4f}); skipping. overwrite=true redoes it.")
        return done
    ckpt_dir = run_dir / "checkpoints"
    resume = ckpt_dir / "last.ckpt"
    if cfg.overwrite:
        for stale in (run_dir / METRICS, resume):
            stale.unlink(missing_ok=True)

    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    data = ImageDataModule(cfg.data, seed=int(cfg.seed), cache_dir=cfg.paths.cache_dir)
    data.setup()
    model = Classifier(
        model=to_plain(cfg.model),
        optim=to_plain(cfg.optim),
        augment=to_plain(cfg.augment),
        num_classes=data.num_classes,
        image_shape=list(data.image_shape),
        mean=data.stats["mean"],
        std=data.stats["std"],
        max_epochs=int(cfg.trainer.max_epochs),
        seed=int(cfg.seed),
    )
    ckpt_path = None
    if resume.is_file():
        try:
            saved = read_checkpoint(resume)
        except RoarError as err:  # a checkpoint cut off mid-write: start again rather than trust it
            print(f"[roar-train] {err} Starting this run from scratch.")
            resume.unlink()
        else:
            check_compatible(saved, resume, model=to_plain(cfg.model), num_classes=data.num_classes, image_shape=list(data.image_shape))
            ckpt_path = str(resume)
            print(f"[roar-train] resuming from {resume}")

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    started = time.time()
    with finishing_wandb():
        trainer = L.Trainer(
            **to_plain(cfg.trainer),
            logger=build_logger(cfg, run_dir, getattr(data.train_set, "dataset", cfg.data.name)),
            callbacks=[ModelCheckpoint(dirpath=ckpt_dir, filename="last", save_top_k=1, enable_version_counter=False), *callbacks],
            default_root_dir=str(run_dir),
            limit_val_batches=0,
            use_distributed_sampler=False,  # ImageDataModule shards by rank itself
            # under SLURM, ranks come from SLURM; requeueing is submitit's job (max_num_timeout), not Lightning's
            plugins=[SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else None,
            num_sanity_val_steps=0,
        )
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
        if trainer.interrupted:  # Ctrl-C or a scheduler's signal: last.ckpt is kept, metrics.json is not written
            raise KeyboardInterrupt(f"training interrupted; run the same command again to resume from {resume}")
        train_acc = trainer.callback_metrics.get("train_acc")
        tested = trainer.test(model, datamodule=data, verbose=False)[0]
        metrics = {
            **{k: float(v) for k, v in tested.items()},
            "train_acc": None if train_acc is None else float(train_acc),
            **identity(cfg),
            "dataset": getattr(data.train_set, "dataset", cfg.data.name),
            "stage": cfg.stage,
            "name": cfg.name,
            "epochs": int(trainer.current_epoch),
            "world_size": int(trainer.world_size),
            "num_classes": int(data.num_classes),
            "num_train": int(getattr(data.train_set, "num_samples", len(data.train_set))),
            "num_test": int(getattr(data.test_set, "num_samples", len(data.test_set))),
            "train_seconds": round(time.time() - started, 2),
            "checkpoint": str(resume),
        }
        if hasattr(data.train_set, "skipped"):  # data.on_error=skip: broken samples are counted, not hidden
            metrics["skipped_samples"] = int(data.train_set.skipped.value + data.test_set.skipped.value)
        if trainer.is_global_zero:
            atomic_write_json(run_dir / METRICS, metrics)
            for lg in trainer.loggers:
                if hasattr(lg, "experiment") and lg.__class__.__name__ == "WandbLogger":
                    lg.experiment.summary.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig):
    with reported("roar-train"):
        metrics = train(cfg)
    print(f"[roar-train] test_acc={metrics['test_acc']:.4f} -> {Path(cfg.run_dir) / METRICS}")
    return metrics["test_acc"]


if __name__ == "__main__":
    main()
