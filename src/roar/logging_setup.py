"""Experiment loggers: wandb (offline by default) or CSV; the wandb run is always finished."""

import contextlib
import os

from roar.errors import RoarError

LOGGERS = ("wandb", "csv", "none")


def setting_name(cfg) -> str:
    """The run's setting without its seed: the wandb group, so the seeds of one setting plot together."""
    name = f"{cfg.name}/{cfg.stage}/{cfg.model.name}-{cfg.augment.name}"
    if cfg.data.name == "shards":
        from roar.artifacts import fraction_name, ranking_name

        name += f"/{ranking_name(cfg.estimator, cfg.reduce)}/{cfg.mode}/{cfg.fill.name}/{fraction_name(cfg.fraction)}"
    return name


def wandb_mode(cfg) -> str:
    """logger.mode, checked: online | offline | disabled."""
    mode = cfg.logger.get("mode", "offline")
    if mode not in ("online", "offline", "disabled"):
        raise RoarError(f"logger.mode={mode!r}: use online, offline or disabled.")
    os.environ.setdefault("WANDB_SILENT", "true")
    return mode


def build_logger(cfg, run_dir, dataset: str):
    """The run's logger; ``dataset`` is the data's real name (a retrain run's shards come from one)."""
    kind = cfg.logger.name
    if kind not in LOGGERS:
        raise RoarError(f"logger={kind}: valid loggers are {', '.join(LOGGERS)}.")
    if kind == "none":
        return False
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(run_dir), name="csv")
    from lightning.pytorch.loggers import WandbLogger

    from roar.config import to_plain

    mode = wandb_mode(cfg)
    extra = {"mode": "disabled"} if mode == "disabled" else {}
    return WandbLogger(
        project=cfg.logger.project,
        entity=cfg.logger.get("entity"),
        save_dir=str(run_dir),
        name=f"{setting_name(cfg)}/seed={cfg.seed}",
        group=setting_name(cfg),
        job_type=cfg.stage,
        tags=list(dict.fromkeys([cfg.name, dataset, *cfg.get("tags", [])])),
        config=to_plain(cfg),
        offline=mode == "offline",
        **extra,
    )


def start_wandb_run(cfg, directory, job_type: str, name: str):
    """A plain wandb run for the stages that do not train (``eval``, ``report``), or None when the
    logger is not wandb or is disabled. Same project, entity, mode and tags as the training runs;
    the caller finishes it (``finishing_wandb``)."""
    mode = wandb_mode(cfg) if cfg.logger.name == "wandb" else "disabled"
    if mode == "disabled":
        return None
    import wandb

    from roar.config import to_plain

    os.makedirs(directory, exist_ok=True)
    return wandb.init(
        project=cfg.logger.project, entity=cfg.logger.get("entity"), dir=str(directory), mode=mode,
        job_type=job_type, group=f"{cfg.name}/{job_type}", name=name,
        tags=list(dict.fromkeys([cfg.name, cfg.data.name, job_type, *cfg.get("tags", [])])), config=to_plain(cfg),
    )


@contextlib.contextmanager
def finishing_wandb():
    """Finish any wandb run on the way out, failure included, so the next job of a multirun never
    logs into this one (lightning-hydra-template's ``task_wrapper`` habit)."""
    try:
        yield
    finally:
        import sys

        if "wandb" in sys.modules:
            import wandb

            if wandb.run is not None:
                wandb.finish()
