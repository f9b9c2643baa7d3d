"""``roar-pipeline hydra/launcher=<slurm launcher>``: the whole chain submitted to SLURM as dependent jobs.

    base training -> attribution array -> masking array -> retrain array (packed, runs_per_task)
                         \\-> roar-eval (after the attribution: it reads the base model and the maps)
    -> roar-report (afterany: a failed run is reported as missing)

Each job runs what the local pipeline runs for its stage, through the same library calls and the same
config (conf/pipeline.yaml with the command's overrides), so the chain ends in the numbers the local
pipeline gives. Attribution and masking are job arrays over ``pipeline.num_shards`` shards of the data
(roar.store.sharded: task i writes shards i, i + n, ...; the task that completes a set writes its
manifest). A job the scheduler ends early (time limit, preemption) is requeued by submitit and resumes:
finished shards and runs are skipped. The same command again submits only what is missing (a stage
whose outputs are all there is skipped) and cancels the previous submission's jobs that wait on a job
that failed; while that submission still runs, it refuses.
"""

import math
from dataclasses import dataclass, field

from roar.attribution.imported import import_maps
from roar.attribution.run import attribute
from roar.config import compose_config
from roar.errors import RoarError
from roar.evaluate.leakage import audit_sets
from roar.evaluate.run import evaluate
from roar.masking.run import write_masks
from roar.report.run import build_report
from roar.store.experiment import set_folder
from roar.store.io import atomic_write_json, read_json
from roar.store.manifest import read_manifest
from roar.store.resolve import base_key, chain_file, maps_key, report_page, run_key
from roar.tracking import finishing_wandb, quiet_lightning
from roar.training.run import train
from roar.training.status import finished_metrics
from roar.utils.log import get_logger
from roar.utils.plain import to_plain
from roar.utils.slurm import cancel, queued, slurm_executor

log = get_logger(__name__)
STAGES = ("base", "attribute", "mask", "retrain", "eval", "report")
WAITING_FOREVER = "DependencyNeverSatisfied"


@dataclass
class Task:
    """One job (or one array task) of the chain: a stage, the pipeline's overrides, and its part of the work
    (``shard`` of ``shards`` for attribution and masking, ``runs`` for a retrain task)."""

    stage: str
    overrides: list
    shard: int = 0
    shards: int = 1
    runs: list = field(default_factory=list)

    def __call__(self):
        quiet_lightning()
        cfg = compose_config("pipeline", self.stage_overrides())
        if self.stage == "base":
            train(cfg, quiet=True)
        elif self.stage == "attribute":
            if cfg.get("import") is not None:
                import_maps(cfg)
            attribute(cfg)
        elif self.stage == "mask":
            audit_sets(write_masks(cfg), int(cfg.mask.audit_steps), int(cfg.maps_seed))
        elif self.stage == "retrain":
            for run in self.runs:
                with finishing_wandb():
                    train(compose_config("pipeline", [*self.overrides, *run]), quiet=True)
        elif self.stage == "eval":
            evaluate(cfg)
        else:
            build_report(cfg)

    def stage_overrides(self) -> list:
        section = {"attribute": "attribute", "mask": "mask"}.get(self.stage)
        if section is None:
            return list(self.overrides)
        return [*self.overrides, f"{section}.shard_id={self.shard}", f"{section}.num_shards={self.shards}"]

    def checkpoint(self, *args, **kwargs):
        """submitit's requeue on a time limit or preemption: the same task again (finished work is skipped)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def missing_work(cfg, runs_cfg: list, run_overrides: list) -> dict:
    """What each stage still has to do: {stage: True/False, "retrain": [overrides of the unfinished runs]}."""
    base = finished_metrics(run_key(cfg)) is None
    maps = any(read_manifest(maps_key(cfg, str(e)).folder) is None for e in cfg.attribute.estimators)
    sets = any(read_manifest(set_folder(run_key(c).shards)) is None for c in runs_cfg)
    runs = [o for c, o in zip(runs_cfg, run_overrides) if finished_metrics(run_key(c)) is None]
    upstream = base or maps or sets or bool(runs)
    return {
        "base": base,
        "attribute": base or maps,
        "mask": base or maps or sets,
        "retrain": runs,
        "eval": True,
        "report": upstream or not report_page(cfg).is_file(),
    }


def num_shards(cfg, plan: dict) -> int:
    """``pipeline.num_shards``, or as many as the planner's attribution hours fill at ``pipeline.shard_minutes``
    each (one when the plan has no device time), never more than the data has shards."""
    most = math.ceil(max(plan["data"]["num_train"], plan["data"]["num_test"]) / int(cfg.attribute.shard_size))
    given = cfg.pipeline.get("num_shards")
    if given is not None:
        if int(given) < 1:
            raise RoarError(f"pipeline.num_shards={given}: give a positive count, or null to size it from the plan.")
        return min(int(given), most)
    hours = plan.get("time", {}).get("hours", {}).get("attribution")
    if not hours:
        return 1
    return max(1, min(most, math.ceil(hours * 60 / float(cfg.pipeline.shard_minutes))))


def previous_jobs(cfg) -> list:
    """The jobs of the last submission of this chain that SLURM still holds. When all of them only wait on
    dependencies and one of those can never be met (a job it waits on failed or was cancelled), the rest of
    that chain can never run: they are cancelled and returned. Any other job still queued or running refuses
    a new submission."""
    record = read_json(chain_file(cfg)) or {}
    ids = [j for stage in STAGES for j in record.get("jobs", {}).get(stage, [])]
    states = queued(ids)
    waiting = {j for j, (state, reason) in states.items() if state == "PENDING" and reason.startswith("Dependency")}
    broken = any(WAITING_FOREVER in reason for _, reason in states.values())
    if states and (waiting != set(states) or not broken):
        live = sorted(states)
        raise RoarError(
            f"the chain submitted for {cfg.name} is still in SLURM's queue ({len(live)} job(s), e.g. {live[0]}): "
            f"follow it with roar-pipeline status <the same overrides>, or cancel it (scancel {' '.join(live[:4])}) "
            f"before submitting again."
        )
    stuck = sorted(states)
    cancel(stuck)
    return stuck


def launcher_params(cfg) -> dict:
    """The launcher file's keys, resolved one by one (``tasks_per_node: ${trainer.devices}``), without its
    submitit_folder (the chain has its own, under logs/cluster/)."""
    launcher = cfg.hydra.launcher
    return {k: to_plain(launcher[k]) for k in launcher if k != "submitit_folder"}


def is_cluster(cfg) -> bool:
    """Whether the composed config's launcher submits to SLURM (hydra/launcher=slurm or a file built on it)."""
    return "hydra" in cfg and "SlurmLauncher" in str(cfg.hydra.launcher.get("_target_", ""))


def submit_chain(cfg, overrides: list, runs_cfg: list, run_overrides: list, plan: dict) -> dict:
    """Submit what is missing as dependent SLURM jobs; returns {stage: [job ids]} (also written to chain.json)."""
    params = launcher_params(cfg)
    folder = str(chain_file(cfg).parent / "%j")
    size = max(1, int(cfg.pipeline.runs_per_task or 1))
    shards = num_shards(cfg, plan)
    cancelled = previous_jobs(cfg)
    todo = missing_work(cfg, runs_cfg, run_overrides)
    one_task = {"tasks_per_node": 1, "nodes": 1}  # only training runs DDP across the launcher's tasks
    submitted = {}

    def submit(stage: str, tasks: list, needs: list, kind: str = "afterok", **launcher) -> None:
        deps = [j for s in needs for j in submitted.get(s, [])]
        executor = slurm_executor(params, folder, **launcher)
        extra = dict(params.get("additional_parameters") or {})
        if deps:
            extra["dependency"] = f"{kind}:" + ":".join(sorted({j.split("_")[0] for j in deps}))
        executor.update_parameters(slurm_additional_parameters=extra, name=f"roar-{cfg.name}-{stage}")
        with executor.batch():
            jobs = [executor.submit(t) for t in tasks]
        submitted[stage] = [j.job_id for j in jobs]

    if todo["base"]:
        submit("base", [Task("base", overrides)], [])
    if todo["attribute"]:
        submit("attribute", [Task("attribute", overrides, i, shards) for i in range(shards)], ["base"], **one_task)
    if todo["mask"]:
        submit("mask", [Task("mask", overrides, i, shards) for i in range(shards)], ["attribute"], **one_task)
    if todo["retrain"]:
        packs = [todo["retrain"][i : i + size] for i in range(0, len(todo["retrain"]), size)]
        submit("retrain", [Task("retrain", overrides, runs=p) for p in packs], ["mask"])
    if todo["report"]:
        submit("eval", [Task("eval", overrides)], ["attribute"], **one_task)
        submit("report", [Task("report", overrides)], ["retrain", "eval"], "afterany", **one_task)
    record = {"jobs": submitted, "num_shards": shards, "overrides": overrides, "cancelled": cancelled}
    atomic_write_json(chain_file(cfg), record)
    return submitted


def describe(cfg, submitted: dict, overrides: list) -> str:
    """The lines roar-pipeline prints after submitting: each stage's jobs, and how to follow them."""
    if not submitted:
        return f"[roar-pipeline] {cfg.name}: every stage is done; nothing submitted. Report: {report_page(cfg)}"
    lines = [f"[roar-pipeline] {cfg.name}: submitted to SLURM (base model {base_key(cfg).name})"]
    for stage in STAGES:
        ids = submitted.get(stage)
        if ids:
            array = ids[0].split("_")[0]
            lines.append(f"  {stage:9s} {len(ids)} task(s), job {array}" + (" (array)" if len(ids) > 1 else ""))
    shown = " ".join(o for o in overrides if not o.startswith("hydra.searchpath"))
    lines.append(f"Follow it: roar-pipeline status {shown}")
    return "\n".join(lines)
