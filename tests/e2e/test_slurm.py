"""Sweeps on a real one-node SLURM cluster (slurm-wlm + munge, started here): job arrays through
hydra-submitit-launcher, a 2-task DDP job, and a requeued job that resumes from last.ckpt."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TESTS, TINY, base_name
from slurm_cluster import SlurmCluster, ensure_installed

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
ROAR_TRAIN = str(Path(sys.executable).parent / "roar-train")
COMMON = TINY
LAUNCHER = """# @package hydra.launcher
defaults:
  - {base}
partition: debug
timeout_min: 10
cpus_per_task: 1
mem_gb: null
max_num_timeout: 3
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ensure_installed()
    c = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    c.env["PYTHONPATH"] = str(TESTS)  # the jobs import the test-only callback (hold.py)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def local(tiny_pipeline):
    """The same grid run locally (the shared tiny pipeline): shards to sweep over and numbers to compare with."""
    root, _, runs = tiny_pipeline
    conf = root / "conf" / "hydra" / "launcher"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "test_slurm.yaml").write_text(LAUNCHER.format(base="slurm"))
    (conf / "test_slurm_ddp.yaml").write_text(LAUNCHER.format(base="slurm_ddp"))
    return root, runs


def sweep(cluster, root, *overrides, timeout=600):
    cmd = [ROAR_TRAIN, "-m", f"hydra.searchpath=[file://{root}/conf]", f"paths.output_root={root}", *COMMON, *overrides]
    out = cluster.run(*cmd, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def metrics(root, name):
    return [json.loads(p.read_text()) for p in sorted((root / name).rglob("metrics.json"))]


def test_grid_sweep_is_one_job_array_equal_to_the_local_pipeline(cluster, local):
    """``sweep=grid`` on SLURM runs the grid's settings, t = 0 included, as one job array."""
    import shutil

    root, runs = local
    for part in ("base", "attributions", "shards"):  # the same experiment under another root, without its runs
        shutil.copytree(root / "roar_digits" / part, root / "on_slurm" / "roar_digits" / part)
    (root / "on_slurm" / "conf").symlink_to(root / "conf")
    sweep(cluster, root / "on_slurm", "hydra/launcher=test_slurm", "sweep=grid")
    got = {
        (m["estimator"], m["fraction"], m["seed"]): m["test_acc"]
        for m in metrics(root / "on_slurm", "roar_digits/runs")
    }
    want = {(m["estimator"], m["fraction"], m["seed"]): m["test_acc"] for m in runs}
    assert got == want and len(got) == 6 and (("random", 0.0, 0) in got)
    job_dirs = [
        p.name for p in (root / "on_slurm" / "roar_digits" / "logs" / "multirun").glob("*/.submitit/*_*") if p.is_dir()
    ]
    assert len(job_dirs) == 6 and len({d.split("_")[0] for d in job_dirs}) == 1  # one array, six tasks


def test_ddp_job_with_two_tasks(cluster, local):
    root, _ = local
    sweep(
        cluster,
        root,
        "hydra/launcher=test_slurm_ddp",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "name=ddp_on_slurm",
        "seed=0",
    )
    (m,) = metrics(root, "ddp_on_slurm/base")
    (single,) = [r for r in metrics(root, "roar_digits/base")]
    assert m["world_size"] == 2 and m["num_test"] == single["num_test"] == 450  # both ranks' test shards counted once
    assert (
        m["test_acc"] != single["test_acc"] or m["test_loss"] != single["test_loss"]
    )  # two ranks: other batches, other weights


def test_requeued_job_resumes_to_the_same_accuracy(cluster, local):
    """The job is held at the start of epoch 2 (a test-only callback), after epoch 1's last.ckpt is on
    disk, and requeued there: no race with a job that finishes seconds later."""
    root, _ = local
    marker = root / "requeued.held"
    slow = ["trainer.max_epochs=3", "trainer.limit_train_batches=null"]
    hold = ["+callbacks.hold._target_=hold.HoldAtEpoch", "+callbacks.hold.epoch=2", f"+callbacks.hold.marker={marker}"]
    cmd = [
        ROAR_TRAIN,
        "-m",
        f"hydra.searchpath=[file://{root}/conf]",
        f"paths.output_root={root}",
        *COMMON,
        *slow,
        "hydra/launcher=test_slurm",
        "name=requeued",
        "seed=0",
        *hold,
    ]
    driver = subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt = root / "requeued" / "base" / base_name(*COMMON, *slow, "seed=0") / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not marker.exists() and time.time() < deadline and driver.poll() is None:
        time.sleep(0.2)
    assert marker.exists() and ckpt.exists(), "the job never reached its hold with a checkpoint"
    job = next(
        p for p in (root / "requeued" / "logs" / "multirun").glob("*/.submitit/*") if p.is_dir()
    ).name  # one run: no array
    out = cluster.requeue(job)
    assert out.returncode == 0, out.stderr
    log, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, log[-4000:]
    (requeued,) = metrics(root, "requeued/base")
    train_log = "".join(p.read_text() for p in (root / "requeued" / "logs" / "multirun").rglob("*_log.out"))
    assert "resuming from" in train_log
    straight = subprocess.run(
        [ROAR_TRAIN, f"paths.output_root={root}", *COMMON, *slow, "name=straight", "seed=0"],
        capture_output=True,
        text=True,
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    (uninterrupted,) = metrics(root, "straight/base")
    assert requeued["test_acc"] == uninterrupted["test_acc"] and requeued["test_loss"] == uninterrupted["test_loss"]


def test_bad_launcher_settings_fail_before_submitting(cluster, local, tmp_path):
    import shutil

    root, _ = local
    shutil.copytree(root / "roar_digits" / "base", tmp_path / "roar_digits" / "base")  # a base model, no shards
    cmd = [ROAR_TRAIN, "-m", f"hydra.searchpath=[file://{root}/conf]", f"paths.output_root={tmp_path}", *COMMON]
    out = cluster.run(*cmd, "hydra/launcher=slurm", "seed=0,1")
    assert out.returncode != 0 and "hydra.launcher.partition is not set" in out.stderr
    out = cluster.run(*cmd, "hydra/launcher=test_slurm", "trainer=ddp", "seed=0")
    assert out.returncode != 0 and "tasks_per_node=1 but trainer.devices=2" in out.stderr
    out = cluster.run(*cmd, "hydra/launcher=test_slurm", "estimator=ig", "fraction=0.5", "seed=0")
    assert (
        out.returncode != 0
        and "have no masked shards" in out.stderr
        and "Run roar-attribute and then roar-mask" in out.stderr
    )
    squeue = cluster.run("squeue", "-h")
    assert squeue.stdout.strip() == ""  # nothing was submitted


def test_packed_tasks_write_the_same_runs_as_one_run_per_task(cluster, local):
    """``runs_per_task=4``: the grid's six runs in two array tasks, each one process; the same folders and
    numbers as the local pipeline, and a second sweep skips every run."""
    import shutil

    root, runs = local
    packed = root / "packed"
    for part in ("base", "attributions", "shards"):
        shutil.copytree(root / "roar_digits" / part, packed / "roar_digits" / part)
    (packed / "conf").symlink_to(root / "conf")
    out = sweep(cluster, packed, "hydra/launcher=test_slurm", "sweep=grid", "runs_per_task=4")
    assert "6 runs in 2 array tasks of up to 4" in out.stdout + out.stderr
    got = {(m["estimator"], m["fraction"], m["seed"]): m["test_acc"] for m in metrics(packed, "roar_digits/runs")}
    assert got == {(m["estimator"], m["fraction"], m["seed"]): m["test_acc"] for m in runs}

    def tree(top):
        return sorted(
            str(p.relative_to(top)) for p in top.rglob("*") if p.is_file() and "wandb" not in p.relative_to(top).parts
        )

    assert tree(packed / "roar_digits" / "runs") == tree(root / "roar_digits" / "runs")
    tasks = [p for p in (packed / "roar_digits" / "logs" / "multirun").glob("*/.submitit/*_*") if p.is_dir()]
    assert len(tasks) == 2 and len({p.name.split("_")[0] for p in tasks}) == 1  # one array, two tasks
    before = {p: p.stat().st_mtime_ns for p in (packed / "roar_digits" / "runs").rglob("metrics.json")}
    sweep(cluster, packed, "hydra/launcher=test_slurm", "sweep=grid", "runs_per_task=4")
    assert {p: p.stat().st_mtime_ns for p in before} == before  # every run skipped, none retrained


ROAR_PIPELINE = str(Path(sys.executable).parent / "roar-pipeline")


def chain(cluster, root, here, *extra):
    """``roar-pipeline hydra/launcher=test_slurm`` of the local tiny pipeline's experiment under ``here``: it
    must return at once, having submitted the chain; returns its overrides."""
    overrides = [
        f"hydra.searchpath=[file://{root}/conf]",
        f"paths.output_root={here}",
        *TINY,
        "attribute.params.samples=2",
        "hydra/launcher=test_slurm",
        "pipeline.num_shards=2",
        "pipeline.runs_per_task=3",
        *extra,
    ]
    started = time.time()
    out = cluster.run(ROAR_PIPELINE, *overrides, timeout=180)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert "Follow it: roar-pipeline status" in out.stdout + out.stderr
    assert time.time() - started < 90  # the checks and the plan, then it returns: nothing trains here
    return overrides


def chain_jobs(here) -> dict:
    return json.loads((here / "roar_digits" / "logs" / "cluster" / "chain.json").read_text())["jobs"]


def drain(cluster, timeout=900) -> None:
    """Wait until SLURM holds no job, or only jobs that wait on a job that failed (the rest of a broken chain)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs = [line.split(" ", 1) for line in cluster.run("squeue", "-h", "-o", "%T %r").stdout.splitlines() if line]
        waiting = all(state == "PENDING" and reason.startswith("Dependency") for state, reason in jobs)
        if not jobs or (waiting and any("NeverSatisfied" in reason for _, reason in jobs)):
            return
        time.sleep(1)
    raise AssertionError(f"the chain did not finish within {timeout} s: {cluster.run('squeue').stdout}")


def local_numbers(root) -> tuple:
    """Every retrain run's test numbers, every no-retrain fidelity, every map's bytes of ``root``'s experiment."""
    exp = root / "roar_digits"
    runs = {
        (m["estimator"], m["fraction"], m["seed"]): (m["test_acc"], m["test_loss"])
        for m in metrics(root, "roar_digits/runs")
    }
    evals = {p.name: json.loads(p.read_text()).get("fidelity") for p in sorted((exp / "eval").glob("*/*/*.json"))}
    maps = {str(p.relative_to(exp)): p.read_bytes() for p in sorted((exp / "attributions").rglob("*.tar"))}
    return runs, evals, maps


def running(cluster, task: str) -> None:
    """Wait until array task ``task`` runs (it must not end first)."""
    deadline = time.time() + 300
    while time.time() < deadline:
        state = cluster.run("squeue", "-h", "-r", "-j", task.split("_")[0], "-o", "%i %T").stdout
        if f"{task} RUNNING" in state:
            return
        assert task in state, f"task {task} ended before the test could act on it"
        time.sleep(0.1)
    raise AssertionError(f"task {task} did not start within 300 s")


def test_roar_pipeline_submits_the_whole_chain_which_survives_a_requeue_and_a_kill(cluster, local, tmp_path):
    """One command submits the chain and returns. A running attribution task requeued by SLURM (as on
    preemption) starts again and skips the shards it finished; another one killed (scancel) leaves the chain
    stuck, which ``roar-pipeline status`` names; the same command resubmits only what is missing (not the
    base model) and clears the stuck jobs; the chain then ends in the local pipeline's numbers, maps byte for
    byte, and a third call submits nothing."""
    root, _ = local
    overrides = chain(cluster, root, tmp_path)
    jobs = chain_jobs(tmp_path)
    assert sorted(jobs) == sorted(["base", "attribute", "mask", "retrain", "eval", "report"])
    assert len(jobs["attribute"]) == len(jobs["mask"]) == 2 and len(jobs["retrain"]) == 2  # 6 runs, 3 per task
    requeued, victim = jobs["attribute"]
    running(cluster, requeued)
    requeue = cluster.requeue(requeued)
    assert requeue.returncode == 0, requeue.stderr
    running(cluster, victim)  # kill it mid-way
    assert cluster.run("scancel", victim).returncode == 0
    drain(cluster)
    status = cluster.run(ROAR_PIPELINE, "status", *overrides)
    said = status.stdout + status.stderr
    assert f"attribute job {victim}" in said and "run the same roar-pipeline command again" in said, said
    chain(cluster, root, tmp_path)  # the same command: base skipped, the rest submitted, the stuck jobs cancelled
    assert "base" not in chain_jobs(tmp_path)
    drain(cluster)
    assert local_numbers(tmp_path) == local_numbers(root)  # every run, every no-retrain number, every map byte
    assert (tmp_path / "roar_digits" / "report" / "index.html").is_file()
    status = cluster.run(ROAR_PIPELINE, "status", *overrides)
    said = status.stdout + status.stderr
    assert status.returncode == 0 and "Every stage is done" in said and "retrain   6/6 done" in said, said
    again = cluster.run(ROAR_PIPELINE, *overrides)
    assert "every stage is done; nothing submitted" in again.stdout + again.stderr
