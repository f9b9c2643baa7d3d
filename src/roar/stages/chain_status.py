"""``roar-pipeline status <overrides>``: where a submitted chain stands, from the store and from SLURM.

Each stage's outputs are counted in the store (what is done is what verifies there, whatever ran it);
the jobs of the last submission (logs/cluster/chain.json) are asked of SLURM: still queued or running
(``squeue``), else how they ended (``sacct`` where accounting is on, else submitit's result file: a task
that ended without one was cancelled or killed). A failed task is listed with its log file.
"""

import pickle
from collections import Counter

from roar.evaluate.run import check_config as eval_rankings
from roar.stages.chain import STAGES
from roar.store.experiment import set_folder
from roar.store.io import read_json
from roar.store.manifest import read_manifest
from roar.store.resolve import chain_file, eval_key, maps_key, report_page, run_key
from roar.training.status import finished_metrics
from roar.utils.slurm import accounted, queued

OK = ("COMPLETED",)
NAMES = {"STUCK": "waiting on a failed job", "ENDED": "ended without a result (cancelled or killed)"}


def done_counts(cfg, runs_cfg: list) -> dict:
    """{stage: (done, total)} read from the store."""
    estimators = [str(e) for e in cfg.attribute.estimators]
    sets = {set_folder(run_key(c).shards) for c in runs_cfg}
    rankings = [name for name, _, _ in eval_rankings(cfg)]
    return {
        "base": (int(finished_metrics(run_key(cfg)) is not None), 1),
        "attribute": (sum(read_manifest(maps_key(cfg, e).folder) is not None for e in estimators), len(estimators)),
        "mask": (sum(read_manifest(f) is not None for f in sets), len(sets)),
        "retrain": (sum(finished_metrics(run_key(c)) is not None for c in runs_cfg), len(runs_cfg)),
        "eval": (sum(eval_key(cfg, r).file.is_file() for r in rankings), len(rankings)),
        "report": (int(report_page(cfg).is_file()), 1),
    }


def ended(folder: str, job_id: str) -> str:
    """How a job SLURM no longer holds ended, by submitit's result file: COMPLETED, FAILED, or ENDED (no result:
    cancelled, killed, or its node failed)."""
    from submitit.core.utils import JobPaths

    paths = JobPaths(folder, job_id=job_id, task_id=0)
    if not paths.result_pickle.is_file():
        return "ENDED"
    with open(paths.result_pickle, "rb") as f:
        outcome = pickle.load(f)[0]
    return "COMPLETED" if outcome == "success" else "FAILED"


def job_states(cfg) -> tuple:
    """({stage: Counter of states}, [(stage, job id, state, log file) of every task that did not complete])."""
    from submitit.core.utils import JobPaths

    record = read_json(chain_file(cfg)) or {}
    jobs = record.get("jobs", {})
    folder = str(chain_file(cfg).parent / "%j")
    ids = [j for stage in STAGES for j in jobs.get(stage, [])]
    live, acct = queued(ids), accounted(ids)
    broken = any("NeverSatisfied" in reason for _, reason in live.values())  # the rest waits on a failed job
    counts, failed = {}, []
    for stage in STAGES:
        for job in jobs.get(stage, []):
            state = live[job][0] if job in live else acct.get(job, "").split(" ")[0] or ended(folder, job)
            if broken and state == "PENDING" and live[job][1].startswith("Dependency"):
                state = "STUCK"
            counts.setdefault(stage, Counter())[state] += 1
            if job not in live and state not in OK:
                failed.append((stage, job, state, JobPaths(folder, job_id=job, task_id=0).stderr))
    return counts, failed


def status_lines(cfg, runs_cfg: list) -> list:
    """The lines ``roar-pipeline status`` prints."""
    done = done_counts(cfg, runs_cfg)
    counts, failed = job_states(cfg)
    lines = [f"[roar-pipeline] {cfg.name}: stage, outputs done in the store, the last submission's jobs"]
    for stage in STAGES:
        have, total = done[stage]
        jobs = ", ".join(f"{n} {NAMES.get(s, s.lower())}" for s, n in sorted(counts.get(stage, {}).items()))
        jobs = jobs or "none submitted"
        lines.append(f"  {stage:9s} {have}/{total} done   jobs: {jobs}")
    for stage, job, state, log in failed:
        lines.append(f"  {stage} job {job} {state.lower()}: see {log}")
    if all(have == total for have, total in done.values()):
        lines.append(f"Every stage is done. Report: {report_page(cfg)}")
    elif failed and not any(s in ("PENDING", "RUNNING") for c in counts.values() for s in c):
        lines.append("Some work is missing: run the same roar-pipeline command again to submit only that.")
    return lines
