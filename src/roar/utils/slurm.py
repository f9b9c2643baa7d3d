"""SLURM through submitit: an executor from a Hydra launcher config, and what the scheduler says of jobs.

One executor for every way roar submits (the packing sweep launcher, roar-pipeline's chain): built as
hydra-submitit-launcher builds it (its ``launch``, up to ``map_array``), so a launcher file means the same
thing to both.
"""

import subprocess

from omegaconf import OmegaConf

from roar.errors import RoarError

INIT_KEYS = ("max_num_timeout", "submitit_folder")  # the executor's constructor takes these
NOT_SUBMITIT = ("_target_", "runs_per_task")  # roar's own keys of the launcher file


def slurm_executor(params: dict, folder: str, **overrides):
    """A submitit SLURM executor from a launcher config's ``params`` (hydra/launcher=<file>), writing its
    job files into ``folder`` (``%j`` becomes the job id); ``overrides`` replace launcher keys."""
    import submitit
    from omegaconf import OmegaConf

    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = {**{k: v for k, v in params.items() if k not in NOT_SUBMITIT}, **overrides}
    executor = submitit.AutoExecutor(
        cluster="slurm",
        folder=folder,
        **({"slurm_max_num_timeout": params["max_num_timeout"]} if "max_num_timeout" in params else {}),
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items() if k not in INIT_KEYS})
    return executor


def check_cluster(config) -> None:
    """A SLURM launcher that can submit what ``config`` asks: partition and time set, one task per DDP device,
    one GPU per task."""
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
                f"hydra.launcher.tasks_per_node={tasks} but trainer.devices={devices}: SLURM must start one task "
                f"per device "
                f"(hydra/launcher=slurm_ddp sets tasks_per_node=trainer.devices)."
            )
        gpus = launcher.get("gpus_per_node")
        if config.trainer.accelerator in ("gpu", "cuda") and gpus != devices:
            raise RoarError(f"hydra.launcher.gpus_per_node={gpus} but trainer.devices={devices}: one GPU per task.")


def queued(job_ids) -> dict:
    """{job id: (state, reason)} of the jobs SLURM still holds (pending, running, completing); array tasks
    by their own id (``123_4``); an ended job is absent."""
    ids = sorted({str(j).split("_")[0] for j in job_ids})
    if not ids:
        return {}
    out = subprocess.run(
        ["squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%i|%T|%r"], capture_output=True, text=True, check=False
    )
    states = {}
    for line in out.stdout.splitlines():
        job, state, reason = (line.split("|") + ["", ""])[:3]
        states[job.strip()] = (state.strip(), reason.strip())
    return states


def accounted(job_ids) -> dict:
    """{job id: state} from SLURM's accounting (``sacct``) for ended jobs; {} where accounting is off."""
    ids = sorted({str(j).split("_")[0] for j in job_ids})
    if not ids:
        return {}
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", ",".join(ids), "-o", "JobID,State"], capture_output=True, text=True
    )
    if out.returncode != 0:
        return {}
    return dict(line.split("|", 1) for line in out.stdout.splitlines() if "|" in line)


def cancel(job_ids) -> None:
    if job_ids:
        subprocess.run(["scancel", *map(str, job_ids)], capture_output=True, check=False)
