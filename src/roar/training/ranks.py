"""How the processes of a multi-device run start, so that a sweep or a chain never runs once per rank.

Lightning starts the other ranks of a local ``strategy=ddp`` run by executing the command line again, once
per extra device (its ``_SubprocessScriptLauncher``; under Hydra with the run's overrides appended). For
one ``roar-train`` run that is the command line of that run, and Lightning's way is kept. Under a Hydra
multirun (``-m``) or roar-pipeline (or the Python API) the command line is the whole sweep or chain, and
every rank would run all of it again (the Hydra + Lightning trap). There the ranks are spawned instead
(``ddp_spawn``: each rank a fresh process that runs this fit alone and hands its results back). Under
SLURM or torchrun the ranks already exist and nothing changes (``slurm_ddp``: one job per run).
"""

import os

from lightning.pytorch.strategies import StrategyRegistry

from roar.tracking import under_slurm
from roar.utils.log import get_logger

log = get_logger(__name__)
_told = []  # say it once per process, not once per run of a sweep


def processes(trainer: dict) -> int | None:
    """How many processes ``trainer`` asks for (devices x nodes); None when Lightning decides (``auto``, -1)."""
    devices, nodes = trainer.get("devices", "auto"), int(trainer.get("num_nodes", 1) or 1)
    if isinstance(devices, (list, tuple)):
        return len(devices) * nodes
    text = str(devices).strip()
    if text.isdigit():
        return int(text) * nodes
    return None


def ranks_exist() -> bool:
    """Started by a launcher that made every rank already: SLURM's tasks, torchrun, or Lightning's own
    re-executed rank of a single run."""
    return under_slurm() or any(v in os.environ for v in ("TORCHELASTIC_RUN_ID", "LOCAL_RANK"))


def one_hydra_run() -> bool:
    """A single Hydra run (not a multirun), whose command line is this run alone."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.RUN


def spawned(strategy: str) -> str | None:
    """The spawning twin of a strategy that re-executes the command line (``ddp`` -> ``ddp_spawn``,
    ``ddp_find_unused_parameters_true`` -> ``ddp_spawn_find_unused_parameters_true``), else None."""
    if not strategy.startswith("ddp") or any(w in strategy for w in ("spawn", "fork", "notebook")):
        return None
    twin = strategy.replace("ddp", "ddp_spawn", 1)
    return twin if twin in StrategyRegistry else None


def launch_strategy(trainer: dict) -> dict:
    """``trainer`` (the trainer section, plain) with its strategy made safe for a sweep or a chain (module doc)."""
    twin = spawned(str(trainer.get("strategy", "auto")))
    n = processes(trainer)
    if twin is None or (n is not None and n <= 1) or ranks_exist() or one_hydra_run():
        return trainer
    if not _told:
        _told.append(twin)
        log.info(
            f"[roar-train] trainer.strategy={trainer['strategy']} inside a sweep or a pipeline: each run's ranks are "
            f"spawned ({twin}), so the sweep is not run again once per device."
        )
    return {**trainer, "strategy": twin}
