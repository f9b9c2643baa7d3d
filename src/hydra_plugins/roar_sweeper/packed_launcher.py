"""``hydra/launcher=slurm`` with ``runs_per_task``: several runs of a sweep trained one after the other in
one process of one array task, so each run pays for its training, not for a Python start-up (imports,
a wandb service, a CUDA context: seconds, against a fast recipe's seconds of compute).

Each run still goes through Hydra's ``run_job`` with its own overrides (hydra-submitit-launcher's
``__call__``), so its folder, metrics.json, config, wandb run, skip and resume are those of a run in
a task of its own. A requeued task (time limit, preemption) runs its pack again: finished runs skip,
the interrupted one resumes from its last.ckpt. ``runs_per_task=1`` (the default) is
hydra-submitit-launcher's launch, unchanged.
"""

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from roar.utils.log import get_logger
from roar.utils.slurm import slurm_executor

log = get_logger(__name__)


class Pack:
    """One array task: its runs' ``SlurmLauncher.__call__`` arguments, run in order in this process."""

    def __init__(self, launcher: "PackingSlurmLauncher", runs: list):
        self.launcher, self.runs = launcher, runs

    def __call__(self) -> list:
        return [SlurmLauncher.__call__(self.launcher, *run) for run in self.runs]

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(Pack(self.launcher, self.runs))


def packs(items: list, size: int) -> list:
    """``items`` in consecutive groups of ``size`` (the last one shorter)."""
    return [items[i : i + size] for i in range(0, len(items), size)]


class PackingSlurmLauncher(SlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        size = int(self.config.get("runs_per_task", 1) or 1)
        if size <= 1:
            return super().launch(job_overrides, initial_job_idx)
        executor = slurm_executor(dict(self.params), self.params["submitit_folder"])
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        runs = [
            (
                list(overrides),
                "hydra.sweep.dir",
                initial_job_idx + i,
                f"job_id_for_{initial_job_idx + i}",
                Singleton.get_state(),
            )
            for i, overrides in enumerate(job_overrides)
        ]
        groups = packs(runs, size)
        log.info(
            f"[roar] {len(runs)} runs in {math.ceil(len(runs) / size)} array tasks of up to {size} (runs_per_task)"
        )
        with executor.batch():  # one job array; each task's callable is its Pack, which requeues itself
            jobs = [executor.submit(Pack(self, group)) for group in groups]
        return [result for job in jobs for result in job.results()[0]]
