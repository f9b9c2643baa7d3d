"""Sweeps on a real one-node SLURM cluster (slurm-wlm + munge, started here): job arrays through
hydra-submitit-launcher, a 2-task DDP job, and a requeued job that resumes from last.ckpt."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roar.pipeline import run_pipeline
from slurm_cluster import SlurmCluster, ensure_installed

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
ROAR_TRAIN = str(Path(sys.executable).parent / "roar-train")
COMMON = ["experiment=roar_digits", "grid.estimators=[grad,random]", "grid.fractions=[0.5]", "grid.seeds=2", "trainer.max_epochs=2",
          "trainer.limit_train_batches=4", "logger=csv", "trainer.enable_progress_bar=false", "estimator_params.samples=2"]
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
    yield c
    c.stop()


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The same grid run locally: shards to sweep over and numbers to compare with."""
    root = tmp_path_factory.mktemp("outputs")
    runs = run_pipeline([f"paths.output_root={root}", *COMMON])
    conf = root / "conf" / "hydra" / "launcher"
    conf.mkdir(parents=True)
    (conf / "test_slurm.yaml").write_text(LAUNCHER.format(base="slurm"))
    (conf / "test_slurm_ddp.yaml").write_text(LAUNCHER.format(base="slurm_ddp"))
    return root, runs


def sweep(cluster, root, *overrides, timeout=600):
    cmd = [ROAR_TRAIN, "-m", f"hydra.searchpath=[file://{root}/conf]", f"paths.output_root={root}", *COMMON,
           f"paths.shards={root}/roar_digits/shards", *overrides]
    out = cluster.run(*cmd, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def metrics(root, name):
    return [json.loads(p.read_text()) for p in sorted((root / name).rglob("metrics.json"))]


def test_sweep_is_one_job_array_equal_to_the_local_sweep(cluster, local):
    root, runs = local
    sweep(cluster, root, "hydra/launcher=test_slurm", "name=on_slurm", "data=shards", "estimator=grad,random", "fraction=0.5", "seed=0,1")
    got = {(m["estimator"], m["seed"]): m["test_acc"] for m in metrics(root, "on_slurm/runs")}
    want = {(m["estimator"], m["seed"]): m["test_acc"] for m in runs if m["fraction"] == 0.5}
    assert got == want and len(got) == 4
    job_dirs = [p.name for p in (root / "on_slurm" / "logs" / "multirun").glob("*/.submitit/*_*") if p.is_dir()]
    assert len(job_dirs) == 4 and len({d.split("_")[0] for d in job_dirs}) == 1  # one array, four tasks


def test_ddp_job_with_two_tasks(cluster, local):
    root, _ = local
    sweep(cluster, root, "hydra/launcher=test_slurm_ddp", "trainer=ddp", "trainer.accelerator=cpu", "name=ddp_on_slurm", "seed=0")
    (m,) = metrics(root, "ddp_on_slurm/base")
    assert m["world_size"] == 2 and m["test_acc"] > 0


def test_requeued_job_resumes_to_the_same_accuracy(cluster, local):
    root, _ = local
    slow = ["trainer.max_epochs=12", "trainer.limit_train_batches=null"]
    cmd = [ROAR_TRAIN, "-m", f"hydra.searchpath=[file://{root}/conf]", f"paths.output_root={root}", *COMMON, *slow,
           "hydra/launcher=test_slurm", "name=requeued", "seed=0"]
    driver = subprocess.Popen(cmd, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt = root / "requeued" / "base" / "resnet8-none" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert ckpt.exists(), "the job never wrote a checkpoint"
    job = next(p for p in (root / "requeued" / "logs" / "multirun").glob("*/.submitit/*") if p.is_dir()).name  # one run: no array
    out = cluster.run("scontrol", "requeue", job)
    assert out.returncode == 0, out.stderr
    log, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, log[-4000:]
    (requeued,) = metrics(root, "requeued/base")
    train_log = "".join(p.read_text() for p in (root / "requeued" / "logs" / "multirun").rglob("*_log.out"))
    assert "resuming from" in train_log
    straight = subprocess.run([ROAR_TRAIN, f"paths.output_root={root}", *COMMON, *slow, "name=straight", "seed=0"], capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr[-3000:]
    (uninterrupted,) = metrics(root, "straight/base")
    assert requeued["test_acc"] == uninterrupted["test_acc"] and requeued["test_loss"] == uninterrupted["test_loss"]


def test_bad_launcher_settings_fail_before_submitting(cluster, local, tmp_path):
    root, _ = local
    cmd = [ROAR_TRAIN, "-m", f"hydra.searchpath=[file://{root}/conf]", f"paths.output_root={tmp_path}", *COMMON]
    out = cluster.run(*cmd, "hydra/launcher=slurm", "seed=0,1")
    assert out.returncode != 0 and "hydra.launcher.partition is not set" in out.stderr
    out = cluster.run(*cmd, "hydra/launcher=test_slurm", "trainer=ddp", "seed=0")
    assert out.returncode != 0 and "tasks_per_node=1 but trainer.devices=2" in out.stderr
    out = cluster.run(*cmd, "hydra/launcher=test_slurm", "data=shards", "estimator=ig", "fraction=0.5", "seed=0")
    assert out.returncode != 0 and "have no masked shards" in out.stderr and "Run roar-attribute and then roar-mask" in out.stderr
    squeue = cluster.run("squeue", "-h")
    assert squeue.stdout.strip() == ""  # nothing was submitted
