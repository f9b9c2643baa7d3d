"""Experiment tracking: wandb (offline by default) or CSV loggers, plain wandb runs for the stages
that do not train, the wandb run always finished, and Lightning's cluster environment chosen so a
run outside SLURM says nothing about SLURM."""

import contextlib
import hashlib
import logging
import os
import warnings

from roar.errors import RoarError
from roar.utils.plain import to_plain

LOGGERS = ("wandb", "csv", "none")


def under_slurm() -> bool:
    """A process started by SLURM as a task of a job (srun, sbatch's batch step), not a login-node
    shell that merely has SLURM installed. Asking Lightning (``SLURMEnvironment.detect``) would print
    its "srun is available but not used" block on every run there."""
    return "SLURM_NTASKS" in os.environ and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def cluster_plugins() -> list:
    """Lightning's cluster environment, chosen here: under SLURM the ranks come from SLURM (requeueing
    is submitit's job, so Lightning's is off); elsewhere Lightning's own. Lightning still probes for
    SLURM on every fresh fit (its checkpoint connector calls ``SLURMEnvironment.detect``), and on a
    machine with SLURM installed that probe prints its "srun is available but not used" block; the
    choice made here makes the advice moot, so that one warning is filtered."""
    from lightning.pytorch.plugins.environments import LightningEnvironment, SLURMEnvironment

    warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used")
    return [SLURMEnvironment(auto_requeue=False)] if under_slurm() else [LightningEnvironment()]


def wandb_mode(cfg) -> str:
    """logger.mode, checked: online | offline | disabled."""
    mode = cfg.logger.get("mode", "offline")
    if mode not in ("online", "offline", "disabled"):
        raise RoarError(f"logger.mode={mode!r}: use online, offline or disabled.")
    os.environ.setdefault("WANDB_SILENT", "true")
    return mode


def build_logger(cfg, key):
    """The run's logger; ``key`` is its RunKey (folder, wandb group, identity)."""
    kind = cfg.logger.name
    if kind not in LOGGERS:
        raise RoarError(f"logger={kind}: valid loggers are {', '.join(LOGGERS)}.")
    if kind == "none":
        return False
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(key.folder), name="csv")
    from lightning.pytorch.loggers import WandbLogger

    mode = wandb_mode(cfg)
    extra = {"mode": "disabled"} if mode == "disabled" else {}
    logger = WandbLogger(
        project=cfg.logger.project,
        entity=cfg.logger.get("entity"),
        save_dir=str(key.folder),
        name=f"{key.group}/seed={key.seed}",
        group=key.group,
        job_type=key.stage,
        tags=list(dict.fromkeys([cfg.name, key.base.data, *cfg.get("tags", [])])),
        config=to_plain(cfg),
        offline=mode == "offline",
        **extra,
    )
    # Lightning always passes anonymous=None, and wandb warns that the setting is deprecated on every run
    logger._wandb_init.pop("anonymous", None)
    return logger


def start_wandb_run(cfg, directory, job_type: str, name: str):
    """A plain wandb run for the stages that do not train (``eval``, ``report``), or None when the
    logger is not wandb or is disabled. Same project, entity, mode and tags as the training runs;
    the caller finishes it (``finishing_wandb``)."""
    mode = wandb_mode(cfg) if cfg.logger.name == "wandb" else "disabled"
    if mode == "disabled":
        return None
    import wandb

    os.makedirs(directory, exist_ok=True)
    # one wandb run per (folder, name): a repeated eval or report resumes it instead of adding a run of the same name
    run_id = hashlib.sha256(f"{os.path.abspath(directory)}|{name}".encode()).hexdigest()[:16]
    return wandb.init(
        id=run_id,
        resume="allow",
        project=cfg.logger.project,
        entity=cfg.logger.get("entity"),
        dir=str(directory),
        mode=mode,
        job_type=job_type,
        group=f"{cfg.name}/{job_type}",
        name=name,
        tags=list(dict.fromkeys([cfg.name, cfg.data.name, job_type, *cfg.get("tags", [])])),
        config=to_plain(cfg),
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


def quiet_lightning() -> None:
    """Keep Lightning's per-run banners (devices, tips) off the console: a sweep prints one line per
    run, roar-pipeline one progress line; Lightning's warnings about the run itself still show."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated")  # inside Lightning, not ours to fix
    # retrain runs split their samples by worker themselves (roar.data.masked_shards), which this warning cannot see
    warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")
    # short runs (fast recipes, tests) have fewer batches than the logging interval: nothing to act on
    warnings.filterwarnings("ignore", message=r"The number of training batches .* is smaller than the logging interval")
