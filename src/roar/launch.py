"""Pre-flight checks of a sweep, run by Hydra before it launches anything (``hydra.callbacks``).

A sweep on a cluster that would fail in every job should fail once, here, in a second: a SLURM
launcher config without partition or time, DDP jobs whose
tasks per node differ from trainer.devices, a retrain grid naming shards that do not exist.
"""

import itertools
import sys

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from roar.artifacts import shard_set_dir
from roar.config import CONFIG_DIR
from roar.data.manifest import MANIFEST
from roar.errors import RoarError


def check_cluster(config) -> None:
    launcher = config.hydra.launcher
    if "SlurmLauncher" not in str(launcher.get("_target_", "")):
        return
    choice = config.hydra.runtime.choices.get("hydra/launcher")
    for key in ("partition", "timeout_min"):
        if OmegaConf.is_missing(launcher, key) or launcher.get(key) in (None, ""):
            raise RoarError(
                f"hydra.launcher.{key} is not set (hydra/launcher={choice}). Copy slurm/cluster.yaml to "
                f"conf/hydra/launcher/<name>.yaml, fill in partition and timeout_min, and pass hydra/launcher=<name>."
            )
    tasks, devices = int(launcher.get("tasks_per_node") or 1), config.trainer.devices
    if tasks > 1 or config.trainer.strategy == "ddp":
        if not isinstance(devices, int) or tasks != devices:
            raise RoarError(
                f"hydra.launcher.tasks_per_node={tasks} but trainer.devices={devices}: SLURM must start one task per device "
                f"(hydra/launcher=slurm_ddp sets tasks_per_node=trainer.devices)."
            )
        gpus = launcher.get("gpus_per_node")
        if config.trainer.accelerator in ("gpu", "cuda") and gpus != devices:
            raise RoarError(f"hydra.launcher.gpus_per_node={gpus} but trainer.devices={devices}: one GPU per task.")


def sweep_values(config, key: str, default):
    """The values a multirun override sweeps for ``key`` (estimator=grad,ig or estimator=glob(*)), else [default]."""
    for override in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
        if override.get_key_element() == key:
            if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
                options = sorted(p.stem for p in (CONFIG_DIR / key).glob("*.yaml"))
                return override.value().filter(options)
            return list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
    return [default]


def check_shards(config) -> None:
    if config.data.name != "shards":
        return
    missing = []
    defaults = {"estimator": config.estimator, "mode": config.mode, "fill": config.fill.name, "fraction": config.fraction}
    combos = itertools.product(*(sweep_values(config, k, v) for k, v in defaults.items()))
    for estimator, mode, fill, fraction in combos:
        if estimator is None or fraction is None:
            raise RoarError("A data=shards sweep needs estimator=... and fraction=... (e.g. estimator=grad,ig fraction=0.1,0.5).")
        folder = shard_set_dir(config.paths.shards, estimator, config.reduce, mode, fill, float(fraction))
        if not (folder / MANIFEST).exists():
            missing.append(str(folder))
    if missing:
        raise RoarError(
            f"{len(missing)} setting(s) of this sweep have no masked shards, e.g. {missing[0]}. "
            f"Run roar-attribute and then roar-mask for them first (or roar-pipeline)."
        )


class Preflight(Callback):
    def on_multirun_start(self, config, **kwargs) -> None:
        # Hydra turns a callback's exceptions into warnings and carries on; a failed check must stop the sweep
        try:
            check_cluster(config)
            check_shards(config)
        except Exception as err:  # fail closed: a check that cannot run must not let the sweep through
            print(f"roar: error: {err} Nothing was launched.", file=sys.stderr)
            sys.exit(2)
